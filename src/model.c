/* model.c - loads a model directory (Hugging Face / sentence-transformers
 * layout): config, modules, weights (converted to one fp32 buffer), tokenizer. */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "util.h"

/* ---- weights: one file or shards --------------------------------------------- */

typedef struct weights {
    et_safetensors *files; /* [n_files] */
    size_t n_files;
    const char *prefix;    /* detected name prefix */
    int dtype_mask;        /* bit per et_dtype seen among loaded tensors */
} weights;

static void weights_close(weights *w) {
    for (size_t i = 0; i < w->n_files; i++) et_safetensors_close(&w->files[i]);
    free(w->files);
    memset(w, 0, sizeof(*w));
}

static int weights_add_file(weights *w, const char *path, et_error *err) {
    for (size_t i = 0; i < w->n_files; i++)
        if (!strcmp(w->files[i].path, path)) return ET_OK;
    et_safetensors *f = et_realloc_n(w->files, w->n_files + 1, sizeof(*f), err);
    if (!f) return ET_ENOMEM;
    w->files = f;
    int rc = et_safetensors_open(&w->files[w->n_files], path, err);
    if (rc) return rc;
    w->n_files++;
    return ET_OK;
}

/* Opens dir/model.safetensors, or every shard named by model.safetensors.index.json. */
static int weights_open(weights *w, const char *dir, char **weights_file, et_error *err) {
    memset(w, 0, sizeof(*w));
    char *single = et_path_join(dir, "model.safetensors", err);
    char *index = et_path_join(dir, "model.safetensors.index.json", err);
    int rc = ET_OK;
    if (!single || !index) {
        rc = ET_ENOMEM;
        goto done;
    }
    if (et_file_exists(single)) {
        rc = weights_add_file(w, single, err);
        *weights_file = et_strdup("model.safetensors", err);
        goto done;
    }
    if (!et_file_exists(index)) {
        char *bin = et_path_join(dir, "pytorch_model.bin", err);
        if (bin && et_file_exists(bin))
            rc = et_err_set(err, ET_EUNSUPPORTED, "%s: only pytorch_model.bin (a pickle) was found; "
                            "convert the weights to model.safetensors", dir);
        else
            rc = et_err_set(err, ET_ENOTFOUND, "%s: no model.safetensors or "
                            "model.safetensors.index.json", dir);
        free(bin);
        goto done;
    }
    *weights_file = et_strdup("model.safetensors.index.json", err);
    cJSON *root;
    if ((rc = et_json_load(&root, index, err))) goto done;
    const cJSON *map;
    if (!(rc = et_json_req_obj(root, index, "weight_map", &map, err))) {
        for (const cJSON *e = map->child; e && !rc; e = e->next) {
            if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || !strcmp(e->valuestring, "..")) {
                rc = et_err_set(err, ET_EFORMAT, "%s: field 'weight_map.%s': expected a file name in "
                                "the model directory", index, e->string ? e->string : "");
                break;
            }
            char *p = et_path_join(dir, e->valuestring, err);
            if (!p) rc = ET_ENOMEM;
            else rc = weights_add_file(w, p, err);
            free(p);
        }
        if (!rc && w->n_files == 0)
            rc = et_err_set(err, ET_EFORMAT, "%s: field 'weight_map' is empty", index);
    }
    cJSON_Delete(root);
done:
    free(single);
    free(index);
    if (rc) weights_close(w);
    return rc;
}

static const et_st_tensor *weights_find(const weights *w, const char *name, const char **file) {
    for (size_t i = 0; i < w->n_files; i++) {
        const et_st_tensor *t = et_safetensors_find(&w->files[i], name);
        if (t) {
            if (file) *file = w->files[i].path;
            return t;
        }
    }
    return NULL;
}

/* Finds `prefix + name`, checks its shape, converts it into dst [numel]. */
static int load_tensor(weights *w, const char *name, float *dst, size_t ndim, size_t d0, size_t d1,
                       et_error *err) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", w->prefix, name);
    const char *file = NULL;
    const et_st_tensor *t = weights_find(w, full, &file);
    if (!t)
        return et_err_set(err, ET_ENOTFOUND, "%s: missing tensor '%s'",
                          w->n_files == 1 ? w->files[0].path : "model weights", full);
    size_t want[2] = {d0, d1};
    int ok = t->ndim == ndim;
    for (size_t i = 0; ok && i < ndim; i++) ok = t->shape[i] == want[i];
    if (!ok) {
        char got[128] = "", exp[64];
        size_t o = 0;
        for (size_t i = 0; i < t->ndim && o < sizeof got - 24; i++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%zu", i ? ", " : "", t->shape[i]);
        if (ndim == 1) snprintf(exp, sizeof exp, "[%zu]", d0);
        else snprintf(exp, sizeof exp, "[%zu, %zu]", d0, d1);
        return et_err_set(err, ET_EFORMAT, "%s: tensor '%s': shape [%s], expected %s", file, full, got,
                          exp);
    }
    w->dtype_mask |= 1 << t->dtype;
    return et_st_to_f32(t, dst, file, err);
}

static const char *dtype_label(int mask) {
    if (mask == 1 << ET_DT_F32) return "F32";
    if (mask == 1 << ET_DT_F16) return "F16";
    if (mask == 1 << ET_DT_BF16) return "BF16";
    if (mask == 1 << ET_DT_F64) return "F64";
    return "mixed";
}

static float *alloc_params(size_t n, et_error *err) {
    size_t bytes;
    if (!et_size_mul(n ? n : 1, sizeof(float), &bytes)) {
        et_err_set(err, ET_ENOMEM, "parameter buffer too large");
        return NULL;
    }
    bytes = (bytes + 63) & ~(size_t)63;
    float *p = aligned_alloc(64, bytes);
    if (!p) et_err_set(err, ET_ENOMEM, "out of memory allocating %zu bytes of parameters", bytes);
    return p;
}

/* ---- BERT / XLM-R --------------------------------------------------------------- */

static int load_bert_weights(et_model *m, weights *w, et_error *err) {
    static const char *const prefixes[] = {"", "bert.", "roberta.", "model.", "encoder."};
    w->prefix = NULL;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]) && !w->prefix; i++) {
        char n[64];
        snprintf(n, sizeof n, "%sembeddings.word_embeddings.weight", prefixes[i]);
        if (weights_find(w, n, NULL)) w->prefix = prefixes[i];
    }
    if (!w->prefix)
        return et_err_set(err, ET_ENOTFOUND, "%s: missing tensor 'embeddings.word_embeddings.weight' "
                          "(also looked for the bert./roberta. prefixed names)",
                          w->n_files == 1 ? w->files[0].path : "model weights");
    m->prefix = et_strdup(w->prefix, err);
    if (!m->prefix) return ET_ENOMEM;
    et_model_config *c = &m->cfg;
    char n[256];
    snprintf(n, sizeof n, "%spooler.dense.weight", w->prefix);
    c->has_pooler = weights_find(w, n, NULL) != NULL;
    m->n_params = et_bert_param_sizes(c, m->sizes);
    if (!m->n_params) return et_err_set(err, ET_EFORMAT, "config.json: model sizes overflow");
    if (!(m->params = alloc_params(m->n_params, err))) return ET_ENOMEM;
    et_bert_point_params(&m->p, m->params, m->sizes);
    et_bert_params *p = &m->p;
    size_t C = c->hidden, F = c->intermediate, CC = C * C;
    int rc;
    if ((rc = load_tensor(w, "embeddings.word_embeddings.weight", p->wte, 2, c->vocab_size, C, err)) ||
        (rc = load_tensor(w, "embeddings.position_embeddings.weight", p->wpe, 2, c->max_position, C, err)) ||
        (c->type_vocab_size &&
         (rc = load_tensor(w, "embeddings.token_type_embeddings.weight", p->wtt, 2, c->type_vocab_size, C, err))) ||
        (rc = load_tensor(w, "embeddings.LayerNorm.weight", p->emb_lnw, 1, C, 0, err)) ||
        (rc = load_tensor(w, "embeddings.LayerNorm.bias", p->emb_lnb, 1, C, 0, err)))
        return rc;
    for (size_t l = 0; l < c->n_layers; l++) {
        static const char *const qkv[3] = {"query", "key", "value"};
        for (int k = 0; k < 3; k++) {
            snprintf(n, sizeof n, "encoder.layer.%zu.attention.self.%s.weight", l, qkv[k]);
            if ((rc = load_tensor(w, n, p->qkvw + l * 3 * CC + (size_t)k * CC, 2, C, C, err))) return rc;
            snprintf(n, sizeof n, "encoder.layer.%zu.attention.self.%s.bias", l, qkv[k]);
            if ((rc = load_tensor(w, n, p->qkvb + l * 3 * C + (size_t)k * C, 1, C, 0, err))) return rc;
        }
        struct { const char *name; float *dst; size_t ndim, d0, d1; } t[] = {
            {"attention.output.dense.weight", p->attprojw + l * CC, 2, C, C},
            {"attention.output.dense.bias", p->attprojb + l * C, 1, C, 0},
            {"attention.output.LayerNorm.weight", p->ln1w + l * C, 1, C, 0},
            {"attention.output.LayerNorm.bias", p->ln1b + l * C, 1, C, 0},
            {"intermediate.dense.weight", p->fcw + l * F * C, 2, F, C},
            {"intermediate.dense.bias", p->fcb + l * F, 1, F, 0},
            {"output.dense.weight", p->fcprojw + l * C * F, 2, C, F},
            {"output.dense.bias", p->fcprojb + l * C, 1, C, 0},
            {"output.LayerNorm.weight", p->ln2w + l * C, 1, C, 0},
            {"output.LayerNorm.bias", p->ln2b + l * C, 1, C, 0},
        };
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
            snprintf(n, sizeof n, "encoder.layer.%zu.%s", l, t[i].name);
            if ((rc = load_tensor(w, n, t[i].dst, t[i].ndim, t[i].d0, t[i].d1, err))) return rc;
        }
    }
    if (c->has_pooler &&
        ((rc = load_tensor(w, "pooler.dense.weight", p->poolw, 2, C, C, err)) ||
         (rc = load_tensor(w, "pooler.dense.bias", p->poolb, 1, C, 0, err))))
        return rc;
    m->dtype = dtype_label(w->dtype_mask);
    return ET_OK;
}

int et_model_hf_tensors(const et_model *m, et_hf_tensor **out, size_t *n, et_error *err) {
    *out = NULL;
    *n = 0;
    const et_model_config *c = &m->cfg;
    if (c->arch == ET_ARCH_STATIC) {
        et_hf_tensor *t = et_calloc(1, sizeof(*t), err);
        if (!t) return ET_ENOMEM;
        snprintf(t->name, sizeof t->name, "%s", m->prefix && m->prefix[0] ? m->prefix : "embeddings");
        t->offset = 0;
        t->shape[0] = m->static_rows;
        t->shape[1] = c->hidden;
        t->ndim = 2;
        *out = t;
        *n = 1;
        return ET_OK;
    }
    size_t cap = 5 + 16 * c->n_layers + 2, k = 0;
    et_hf_tensor *t = et_calloc(cap, sizeof(*t), err);
    if (!t) return ET_ENOMEM;
    size_t base[ET_BERT_NUM_TENSORS], off = 0;
    for (int i = 0; i < ET_BERT_NUM_TENSORS; i++) {
        base[i] = off;
        off += m->sizes[i];
    }
    size_t C = c->hidden, F = c->intermediate, CC = C * C;
    const char *px = m->prefix ? m->prefix : "";
#define ADD(nm, o, d0, d1, nd)                                                     \
    do {                                                                           \
        snprintf(t[k].name, sizeof t[k].name, "%s%s", px, nm);                     \
        t[k].offset = (o);                                                         \
        t[k].shape[0] = (d0);                                                      \
        t[k].shape[1] = (d1);                                                      \
        t[k].ndim = (nd);                                                          \
        k++;                                                                       \
    } while (0)
    ADD("embeddings.word_embeddings.weight", base[ET_BERT_WTE], c->vocab_size, C, 2);
    ADD("embeddings.position_embeddings.weight", base[ET_BERT_WPE], c->max_position, C, 2);
    if (c->type_vocab_size)
        ADD("embeddings.token_type_embeddings.weight", base[ET_BERT_WTT], c->type_vocab_size, C, 2);
    ADD("embeddings.LayerNorm.weight", base[ET_BERT_EMB_LNW], C, 0, 1);
    ADD("embeddings.LayerNorm.bias", base[ET_BERT_EMB_LNB], C, 0, 1);
    char nm[128];
    for (size_t l = 0; l < c->n_layers; l++) {
        static const char *const qkv[3] = {"query", "key", "value"};
        for (size_t q = 0; q < 3; q++) {
            snprintf(nm, sizeof nm, "encoder.layer.%zu.attention.self.%s.weight", l, qkv[q]);
            ADD(nm, base[ET_BERT_QKVW] + l * 3 * CC + q * CC, C, C, 2);
            snprintf(nm, sizeof nm, "encoder.layer.%zu.attention.self.%s.bias", l, qkv[q]);
            ADD(nm, base[ET_BERT_QKVB] + l * 3 * C + q * C, C, 0, 1);
        }
#define LAYER(s, id, stride, d0, d1, nd)                                            \
    do {                                                                           \
        snprintf(nm, sizeof nm, "encoder.layer.%zu.%s", l, s);                     \
        ADD(nm, base[id] + l * (stride), d0, d1, nd);                              \
    } while (0)
        LAYER("attention.output.dense.weight", ET_BERT_ATTPROJW, CC, C, C, 2);
        LAYER("attention.output.dense.bias", ET_BERT_ATTPROJB, C, C, 0, 1);
        LAYER("attention.output.LayerNorm.weight", ET_BERT_LN1W, C, C, 0, 1);
        LAYER("attention.output.LayerNorm.bias", ET_BERT_LN1B, C, C, 0, 1);
        LAYER("intermediate.dense.weight", ET_BERT_FCW, F * C, F, C, 2);
        LAYER("intermediate.dense.bias", ET_BERT_FCB, F, F, 0, 1);
        LAYER("output.dense.weight", ET_BERT_FCPROJW, C * F, C, F, 2);
        LAYER("output.dense.bias", ET_BERT_FCPROJB, C, C, 0, 1);
        LAYER("output.LayerNorm.weight", ET_BERT_LN2W, C, C, 0, 1);
        LAYER("output.LayerNorm.bias", ET_BERT_LN2B, C, C, 0, 1);
#undef LAYER
    }
    if (c->has_pooler) {
        ADD("pooler.dense.weight", base[ET_BERT_POOLW], C, C, 2);
        ADD("pooler.dense.bias", base[ET_BERT_POOLB], C, 0, 1);
    }
#undef ADD
    *out = t;
    *n = k;
    return ET_OK;
}

/* ---- static (model2vec) ----------------------------------------------------------- */

static int load_static_weights(et_model *m, weights *w, et_error *err) {
    const char *file = NULL;
    const et_st_tensor *e = weights_find(w, "embeddings", &file);
    const char *ename = "embeddings";
    if (!e) {
        e = weights_find(w, "embedding.weight", &file);
        ename = "embedding.weight";
    }
    const char *path = w->n_files ? w->files[0].path : "model.safetensors";
    if (!e)
        return et_err_set(err, ET_ENOTFOUND, "%s: missing tensor 'embeddings' (or 'embedding.weight')",
                          path);
    if (e->ndim != 2 || e->shape[0] == 0 || e->shape[1] == 0)
        return et_err_set(err, ET_EFORMAT, "%s: tensor '%s': expected a non-empty 2-D table", file, ename);
    if (!(m->prefix = et_strdup(ename, err))) return ET_ENOMEM;
    m->static_rows = e->shape[0];
    m->cfg.hidden = e->shape[1];
    m->n_params = e->numel;
    if (!(m->params = alloc_params(m->n_params, err))) return ET_ENOMEM;
    m->static_emb = m->params;
    int rc = et_st_to_f32(e, m->params, file, err);
    if (rc) return rc;
    w->dtype_mask |= 1 << e->dtype;
    const char *mfile = NULL, *wfile = NULL;
    const et_st_tensor *map = weights_find(w, "mapping", &mfile);
    const et_st_tensor *wt = weights_find(w, "weights", &wfile);
    size_t V = map ? map->numel : (wt ? wt->numel : m->static_rows);
    if (map) {
        if (map->ndim != 1)
            return et_err_set(err, ET_EFORMAT, "%s: tensor 'mapping': expected 1-D", mfile);
        if (!(m->mapping = et_malloc_n(V, sizeof(int32_t), err))) return ET_ENOMEM;
        if ((rc = et_st_to_i32(map, m->mapping, mfile, err))) return rc;
        for (size_t i = 0; i < V; i++)
            if (m->mapping[i] < 0 || (size_t)m->mapping[i] >= m->static_rows)
                return et_err_set(err, ET_EFORMAT, "%s: tensor 'mapping': entry %zu = %d is outside the "
                                  "%zu rows of '%s'", mfile, i, m->mapping[i], m->static_rows, ename);
    }
    if (wt) {
        if (wt->ndim != 1 || wt->numel != V)
            return et_err_set(err, ET_EFORMAT, "%s: tensor 'weights': expected shape [%zu]", wfile, V);
        if (!(m->tok_weights = et_malloc_n(V, sizeof(float), err))) return ET_ENOMEM;
        if ((rc = et_st_to_f32(wt, m->tok_weights, wfile, err))) return rc;
        w->dtype_mask |= 1 << wt->dtype;
    }
    if (!map && V != m->static_rows)
        return et_err_set(err, ET_EFORMAT, "%s: tensor 'weights' has %zu entries but '%s' has %zu rows",
                          wfile, V, ename, m->static_rows);
    m->cfg.vocab_size = V;
    m->dtype = dtype_label(w->dtype_mask);
    return ET_OK;
}

/* UNK token id from tokenizer.json's model (model2vec drops it), -1 if none. */
static int32_t find_unk(const et_tokenizer *tok, const char *tok_json) {
    cJSON *root = NULL;
    et_error e2 = {0};
    int32_t id = -1;
    if (!tok_json || et_json_load(&root, tok_json, &e2)) return -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *u = model ? cJSON_GetObjectItemCaseSensitive(model, "unk_id") : NULL;
    const cJSON *ut = model ? cJSON_GetObjectItemCaseSensitive(model, "unk_token") : NULL;
    long x;
    if (u && !et_json_as_long(u, 0, INT32_MAX, &x)) id = (int32_t)x;
    else if (cJSON_IsString(ut)) id = et_tokenizer_token_to_id(tok, ut->valuestring);
    cJSON_Delete(root);
    return id;
}

/* ---- the directory ------------------------------------------------------------------- */

/* Reads dir/name into a buffer if it exists: 1 = read, 0 = absent, <0 = error (err set). */
static int read_opt(const char *dir, const char *name, char **data, size_t *len, char **path,
                    et_error *err) {
    *data = NULL;
    *path = et_path_join(dir, name, err);
    if (!*path) return -ET_ENOMEM;
    if (!et_file_exists(*path)) return 0;
    int rc = et_read_file(*path, (size_t)64 << 20, data, len, err);
    return rc ? -rc : 1;
}

void et_model_free(et_model *m) {
    if (!m) return;
    free(m->params);
    free(m->mapping);
    free(m->tok_weights);
    if (m->tok) et_tokenizer_free(m->tok);
    free(m->dir);
    free(m->prefix);
    free(m->weights_file);
    for (size_t i = 0; i < m->n_prompts; i++) {
        free(m->prompt_names[i]);
        free(m->prompt_texts[i]);
    }
    free(m->default_prompt);
    free(m);
}

static const char *pool_name(int p) {
    switch (p) {
    case ET_POOL_CLS: return "cls";
    case ET_POOL_MAX: return "max";
    case ET_POOL_LAST: return "last";
    case ET_POOL_WEIGHTEDMEAN: return "weightedmean";
    case ET_POOL_MEAN_SQRT_LEN: return "mean_sqrt_len";
    default: return "mean";
    }
}

int et_model_load(et_model **out, const char *dir, const et_model_opts *opts, et_error *err) {
    *out = NULL;
    et_model_opts o = {0};
    if (opts) o = *opts;
    if (!dir || !et_is_dir(dir))
        return et_err_set(err, ET_ENOTFOUND, "%s: model directory not found", dir ? dir : "(null)");
    et_model *m = et_calloc(1, sizeof(*m), err);
    if (!m) return ET_ENOMEM;
    m->quiet = o.quiet;
    m->batch_size = 32;
    m->unk_id = -1;
    weights w = {0};
    char *data = NULL, *path = NULL, *wdir = NULL, *tokjson = NULL;
    size_t len = 0;
    int rc = ET_OK, r;
    et_st_modules mods = {0};
    if (!(m->dir = et_strdup(dir, err))) { rc = ET_ENOMEM; goto fail; }

    /* modules.json first: a StaticEmbedding module needs no config.json */
    r = read_opt(dir, "modules.json", &data, &len, &path, err);
    if (r < 0) { rc = -r; goto fail; }
    if (r == 1) {
        m->has_modules = 1;
        if ((rc = et_modules_parse(&mods, data, len, path, err))) goto fail;
    }
    free(data); free(path); data = NULL; path = NULL;

    r = read_opt(dir, "config.json", &data, &len, &path, err);
    if (r < 0) { rc = -r; goto fail; }
    if (r == 1) {
        if ((rc = et_config_parse(&m->cfg, data, len, path, err))) goto fail;
    } else if (mods.has_static) {
        m->cfg.arch = ET_ARCH_STATIC;
    } else {
        rc = et_err_set(err, ET_ENOTFOUND, "%s: missing config.json", dir);
        goto fail;
    }
    if (mods.has_static) m->cfg.arch = ET_ARCH_STATIC;
    int is_static = m->cfg.arch == ET_ARCH_STATIC;
    if (m->cfg.arch == ET_ARCH_STATIC) {
        cJSON *cj = NULL;
        if (r == 1 && !et_json_parse(&cj, data, len, path, NULL)) {
            int nz = 0;
            et_error e2;
            if (!et_json_opt_bool(cj, path, "normalize", &nz, &e2)) m->normalize = nz;
            cJSON_Delete(cj);
        }
    }
    free(data); free(path); data = NULL; path = NULL;

    /* weights */
    if (is_static && mods.has_static && mods.static_path[0] && strcmp(mods.static_path, "."))
        wdir = et_path_join(dir, mods.static_path, err);
    else
        wdir = et_strdup(dir, err);
    if (!wdir) { rc = ET_ENOMEM; goto fail; }
    if ((rc = weights_open(&w, wdir, &m->weights_file, err))) goto fail;
    rc = is_static ? load_static_weights(m, &w, err) : load_bert_weights(m, &w, err);
    weights_close(&w);
    if (rc) goto fail;

    /* tokenizer (module dir first for static models) */
    rc = et_tokenizer_load_dir(&m->tok, wdir, err);
    if (rc && strcmp(wdir, dir)) rc = et_tokenizer_load_dir(&m->tok, dir, err);
    if (rc) goto fail;
    if (is_static) {
        if (!(tokjson = et_path_join(wdir, "tokenizer.json", err))) { rc = ET_ENOMEM; goto fail; }
        m->unk_id = find_unk(m->tok, tokjson);
        size_t tv = et_tokenizer_vocab_size(m->tok);
        if (!m->mapping && !m->tok_weights && tv > m->static_rows) {
            rc = et_err_set(err, ET_EFORMAT, "%s: the tokenizer has %zu tokens but '%s' has only %zu "
                            "rows", wdir, tv, m->prefix, m->static_rows);
            goto fail;
        }
    }

    /* pooling, normalization */
    int pooling = 0;
    m->include_prompt = 1;
    if (!is_static && mods.has_pooling) {
        char *pdir = et_path_join(dir, mods.pooling_path, err);
        if (!pdir) { rc = ET_ENOMEM; goto fail; }
        r = read_opt(pdir, "config.json", &data, &len, &path, err);
        free(pdir);
        if (r < 0) { rc = -r; goto fail; }
        if (r == 0) {
            rc = et_err_set(err, ET_ENOTFOUND, "%s: missing (named by modules.json's Pooling module)",
                            path);
            goto fail;
        }
        if ((rc = et_pooling_config_parse(&pooling, &m->include_prompt, data, len, path, err))) goto fail;
        free(data); free(path); data = NULL; path = NULL;
    }
    if (!is_static) m->normalize = mods.has_normalize;
    else m->normalize = m->normalize || mods.has_normalize;
    if (o.pooling) {
        if (o.pooling < ET_POOL_CLS || o.pooling > ET_POOL_MEAN_SQRT_LEN) {
            rc = et_err_set(err, ET_EINVAL, "pooling option %d is not a valid et_pooling", o.pooling);
            goto fail;
        }
        pooling = o.pooling;
    } else if (!pooling) {
        pooling = ET_POOL_MEAN;
        if (!is_static && !o.quiet)
            fprintf(stderr, "embtune: %s: %s; using mean pooling (as sentence-transformers does)\n", dir,
                    m->has_modules ? "modules.json has no Pooling module" : "no modules.json");
    }
    if (is_static && pooling != ET_POOL_MEAN) {
        rc = et_err_set(err, ET_EUNSUPPORTED, "%s: static models only pool by mean", dir);
        goto fail;
    }
    m->pooling = pooling;

    /* max length */
    size_t st_max = 0;
    m->do_lower_case = -1;
    r = read_opt(dir, "sentence_bert_config.json", &data, &len, &path, err);
    if (r < 0) { rc = -r; goto fail; }
    if (r == 1 && (rc = et_st_config_parse(&st_max, &m->do_lower_case, data, len, path, err))) goto fail;
    free(data); free(path); data = NULL; path = NULL;
    /* sentence-transformers' Transformer lowercases the input (str.lower) before its tokenizer */
    if (!is_static && m->do_lower_case == 1) et_tokenizer_set_lower_input(m->tok, 1);
    if (is_static) {
        m->max_length = o.max_length ? o.max_length : 512; /* model2vec's encode() default */
    } else {
        size_t limit = m->cfg.max_position - m->cfg.pos_offset;
        m->max_length = st_max ? st_max : limit;
        if (m->max_length > limit) m->max_length = limit;
        if (o.max_length) {
            if (o.max_length > limit) {
                rc = et_err_set(err, ET_EINVAL, "%s: max_length %zu exceeds the model's %zu positions "
                                "(config.json max_position_embeddings)", dir, o.max_length, limit);
                goto fail;
            }
            m->max_length = o.max_length;
        }
        size_t nsp = et_tokenizer_num_special(m->tok);
        if (m->max_length <= nsp) {
            rc = et_err_set(err, ET_EINVAL, "max_length %zu leaves no room for text after %zu special "
                            "tokens", m->max_length, nsp);
            goto fail;
        }
    }

    /* prompts */
    r = read_opt(dir, "config_sentence_transformers.json", &data, &len, &path, err);
    if (r < 0) { rc = -r; goto fail; }
    if (r == 1 && (rc = et_prompts_parse(m, data, len, path, err))) goto fail;
    free(data); free(path); data = NULL; path = NULL;

    (void)pool_name;
    free(wdir);
    free(tokjson);
    *out = m;
    return ET_OK;
fail:
    weights_close(&w);
    free(data);
    free(path);
    free(wdir);
    free(tokjson);
    et_model_free(m);
    return rc;
}

size_t et_model_dim(const et_model *m) { return m->cfg.hidden; }
size_t et_model_max_length(const et_model *m) { return m->max_length; }
const et_tokenizer *et_model_tokenizer(const et_model *m) { return m->tok; }
void et_model_set_batch_size(et_model *m, size_t bs) { m->batch_size = bs ? bs : 32; }

const char *et_model_prompt(const et_model *m, const char *name) {
    for (size_t i = 0; name && i < m->n_prompts; i++)
        if (!strcmp(m->prompt_names[i], name)) return m->prompt_texts[i];
    return NULL;
}

int et_model_get_static_info(const et_model *m, et_model_static_info *si) {
    memset(si, 0, sizeof(*si));
    if (m->cfg.arch != ET_ARCH_STATIC) return ET_EINVAL;
    si->rows = m->static_rows;
    si->weighted = m->tok_weights != NULL;
    return ET_OK;
}

const char *et_model_default_prompt(const et_model *m) { return m->default_prompt; }

void et_model_get_info(const et_model *m, et_model_info *info) {
    memset(info, 0, sizeof(*info));
    const et_model_config *c = &m->cfg;
    info->architecture = c->arch == ET_ARCH_BERT ? "bert" : c->arch == ET_ARCH_XLMR ? "xlm-roberta" : "model2vec";
    info->dtype = m->dtype ? m->dtype : "F32";
    info->pooling = pool_name(m->pooling);
    info->include_prompt = m->include_prompt;
    info->lower_case = m->do_lower_case == 1 && c->arch != ET_ARCH_STATIC;
    info->tokenizer = m->tok ? et_tokenizer_type(m->tok) : "none";
    info->n_params = m->n_params;
    info->dim = c->hidden;
    info->max_length = m->max_length;
    if (c->arch != ET_ARCH_STATIC) {
        info->n_layers = c->n_layers;
        info->n_heads = c->n_heads;
        info->intermediate = c->intermediate;
    }
    info->vocab_size = c->vocab_size;
    info->normalize = m->normalize;
}
