/* encoder_static.c - trainable static (model2vec) embeddings.
 *
 * Parameters: one full table [V, D] (a vocabulary-quantized model2vec table is
 * expanded first: row v = weights[v] * embeddings[mapping[v]]).
 * Forward of a sequence: mean of the rows of its ids (the UNK id dropped, as
 * model2vec does), then L2-normalized when the model has a Normalize module.
 * Backward: through the normalization, then each id's row gets d_mean / n
 * (scatter-add, in sequence order, so it is deterministic).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_impl.h"
#include "loss.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

typedef struct static_slot {
    int32_t *ids;   /* [n_ids] kept ids of all sequences */
    size_t *off;    /* [B + 1] offsets into ids */
    float *mean;    /* [B, D] before normalization */
    float *out;     /* [B, D] output */
    size_t B, cap_ids;
    int valid;      /* forward(train=1) ran since the last backward */
} static_slot;

typedef struct static_impl {
    size_t V, D;
    int normalize;
    int32_t unk_id;
    static_slot slots[ET_ENCODER_MAX_SLOTS];
} static_impl;

static void st_destroy(et_encoder *enc) {
    static_impl *s = enc->impl;
    if (s)
        for (int i = 0; i < ET_ENCODER_MAX_SLOTS; i++) {
            free(s->slots[i].ids);
            free(s->slots[i].off);
            free(s->slots[i].mean);
            free(s->slots[i].out);
        }
    free(s);
    free(enc->params);
    free(enc->grads);
    free(enc->decay_mask);
    free(enc);
}

static int st_forward(et_encoder *enc, int slot, const int32_t *const *ids, const size_t *lens, size_t B,
                      int train, float *emb, et_error *err) {
    static_impl *s = enc->impl;
    const size_t D = s->D;
    static_slot *sl = train ? &s->slots[slot] : NULL;
    size_t total = 0;
    for (size_t b = 0; b < B; b++) {
        if (!et_size_add(total, lens[b], &total)) return et_err_set(err, ET_EINVAL, "encoder: size overflow");
        for (size_t t = 0; t < lens[b]; t++)
            if (ids[b][t] < 0 || (size_t)ids[b][t] >= s->V)
                return et_err_set(err, ET_EINVAL, "encoder: token id %d of sequence %zu outside the vocabulary (%zu)",
                                  (int)ids[b][t], b, s->V);
    }
    if (sl) {
        sl->valid = 0;
        if (total > sl->cap_ids) {
            int32_t *p = et_realloc_n(sl->ids, total, sizeof(int32_t), err);
            if (!p) return ET_ENOMEM;
            sl->ids = p;
            sl->cap_ids = total;
        }
        if (!sl->off) {
            sl->off = et_malloc_n(enc->opts.max_batch + 1, sizeof(size_t), err);
            sl->mean = et_malloc_n(enc->opts.max_batch * D, sizeof(float), err);
            sl->out = et_malloc_n(enc->opts.max_batch * D, sizeof(float), err);
            if (!sl->off || !sl->mean || !sl->out) return ET_ENOMEM;
        }
        sl->off[0] = 0;
    }
    double *acc = et_malloc_n(D, sizeof(double), err);
    if (!acc) return ET_ENOMEM;
    size_t pos = 0;
    for (size_t b = 0; b < B; b++) {
        memset(acc, 0, D * sizeof(double));
        size_t n = 0;
        for (size_t t = 0; t < lens[b]; t++) {
            int32_t id = ids[b][t];
            if (id == s->unk_id) continue;
            const float *row = enc->params + (size_t)id * D;
            for (size_t k = 0; k < D; k++) acc[k] += row[k];
            if (sl) sl->ids[pos++] = id;
            n++;
        }
        float *mean = sl ? sl->mean + b * D : emb + b * D;
        for (size_t k = 0; k < D; k++) mean[k] = n ? (float)(acc[k] / (double)n) : 0.0f;
        if (s->normalize) et_l2norm_forward(emb + b * D, mean, 1, D, D);
        else if (sl) memcpy(emb + b * D, mean, D * sizeof(float));
        if (sl) {
            memcpy(sl->out + b * D, emb + b * D, D * sizeof(float));
            sl->off[b + 1] = pos;
        }
    }
    free(acc);
    if (sl) {
        sl->B = B;
        sl->valid = 1;
    }
    return ET_OK;
}

static int st_backward(et_encoder *enc, int slot, const float *d_emb, et_error *err) {
    static_impl *s = enc->impl;
    static_slot *sl = &s->slots[slot];
    const size_t D = s->D;
    if (!sl->valid) return et_err_set(err, ET_EINVAL, "encoder backward: slot %d has no saved forward pass", slot);
    float *dm = et_malloc_n(D, sizeof(float), err);
    if (!dm) return ET_ENOMEM;
    for (size_t b = 0; b < sl->B; b++) {
        if (s->normalize)
            et_l2norm_backward(dm, D, d_emb + b * D, sl->out + b * D, sl->mean + b * D, D, 1, D, 1.0f, 0);
        else
            memcpy(dm, d_emb + b * D, D * sizeof(float));
        size_t n = sl->off[b + 1] - sl->off[b];
        if (!n) continue;
        float inv = 1.0f / (float)n;
        for (size_t k = 0; k < D; k++) dm[k] *= inv;
        for (size_t i = sl->off[b]; i < sl->off[b + 1]; i++) {
            float *g = enc->grads + (size_t)sl->ids[i] * D;
            for (size_t k = 0; k < D; k++) g[k] += dm[k];
        }
    }
    free(dm);
    sl->valid = 0;
    return ET_OK;
}

/* Writes the model2vec layout of the fixture, with the full table:
 * model.safetensors {"embeddings": F32 [V, D]} (no mapping, no weights),
 * config.json (the base's, else a minimal one), tokenizer files,
 * modules.json (StaticEmbedding at ".", Normalize at "1_Normalize" when the
 * model normalizes), config_sentence_transformers.json (the base's prompts). */
static int st_save(const et_encoder *enc, const char *dir, et_error *err) {
    const static_impl *s = enc->impl;
    const et_model *m = enc->model;
    if (!m) return et_err_set(err, ET_EUNSUPPORTED, "static encoder without a base model cannot save");
    int rc = et_mkdir_p(dir, err);
    if (rc) return rc;
    char *path = et_path_join(dir, "model.safetensors", err);
    if (!path) return ET_ENOMEM;
    et_st_out t = {.name = "embeddings", .data = enc->params, .ndim = 2, .shape = {s->V, s->D}};
    rc = et_safetensors_write(path, &t, 1, err);
    free(path);
    if (rc) return rc;
    const char *tok_files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"};
    for (size_t i = 0; i < ET_ARRAY_LEN(tok_files) && !rc; i++)
        rc = et_encoder_copy_file(m->dir, tok_files[i], dir, i == 0, err);
    if (rc) return rc;
    et_buf b = {0};
    char *cfg_src = et_path_join(m->dir, "config.json", err);
    if (!cfg_src) return ET_ENOMEM;
    int have_cfg = et_file_exists(cfg_src);
    free(cfg_src);
    if (have_cfg) rc = et_encoder_copy_file(m->dir, "config.json", dir, 1, err);
    else {
        rc = et_buf_printf(&b, err,
                           "{\n    \"model_type\": \"model2vec\",\n    \"architectures\": [\"StaticModel\"],\n"
                           "    \"hidden_dim\": %zu,\n    \"normalize\": %s\n}\n",
                           s->D, s->normalize ? "true" : "false");
        char *p = rc ? NULL : et_path_join(dir, "config.json", err);
        if (!rc) rc = p ? et_write_file_atomic(p, b.data, b.len, err) : ET_ENOMEM;
        free(p);
    }
    if (rc) goto done;
    b.len = 0;
    rc = et_buf_printf(&b, err,
                       "[\n    {\n        \"idx\": 0,\n        \"name\": \"0\",\n        \"path\": \".\",\n"
                       "        \"type\": \"sentence_transformers.models.StaticEmbedding\"\n    }%s\n]\n",
                       s->normalize ? ",\n    {\n        \"idx\": 1,\n        \"name\": \"1\",\n"
                                      "        \"path\": \"1_Normalize\",\n"
                                      "        \"type\": \"sentence_transformers.models.Normalize\"\n    }"
                                    : "");
    if (rc) goto done;
    char *p = et_path_join(dir, "modules.json", err);
    rc = p ? et_write_file_atomic(p, b.data, b.len, err) : ET_ENOMEM;
    free(p);
    if (rc) goto done;
    if (s->normalize) {
        p = et_path_join(dir, "1_Normalize", err);
        rc = p ? et_mkdir_p(p, err) : ET_ENOMEM;
        free(p);
        if (rc) goto done;
    }
    rc = et_encoder_copy_file(m->dir, "config_sentence_transformers.json", dir, 0, err);
    if (rc) goto done;
    p = et_path_join(dir, "config_sentence_transformers.json", err);
    if (!p) {
        rc = ET_ENOMEM;
        goto done;
    }
    if (!et_file_exists(p)) {
        static const char st_cfg[] = "{\n    \"prompts\": {},\n    \"default_prompt_name\": null,\n"
                                     "    \"similarity_fn_name\": \"cosine\"\n}\n";
        rc = et_write_file_atomic(p, st_cfg, sizeof(st_cfg) - 1, err);
    }
    free(p);
done:
    et_buf_free(&b);
    return rc;
}

static const et_encoder_ops static_ops = {
    .name = "static",
    .destroy = st_destroy,
    .forward = st_forward,
    .backward = st_backward,
    .rng_state = NULL,
    .set_rng_state = NULL,
    .save = st_save,
};

int et_encoder_static_from_table(et_encoder **out, const et_model *m, const float *table, size_t V, size_t D,
                                 int normalize, int32_t unk_id, const et_encoder_opts *opts, et_error *err) {
    *out = NULL;
    size_t n;
    if (V == 0 || D == 0 || !et_size_mul(V, D, &n))
        return et_err_set(err, ET_EINVAL, "static encoder: bad table shape [%zu, %zu]", V, D);
    et_encoder *enc = et_calloc(1, sizeof(*enc), err);
    static_impl *s = enc ? et_calloc(1, sizeof(*s), err) : NULL;
    if (!s) {
        free(enc);
        return ET_ENOMEM;
    }
    enc->ops = &static_ops;
    enc->model = m;
    enc->impl = s;
    enc->opts = *opts;
    if (enc->opts.max_batch == 0) enc->opts.max_batch = 32;
    if (enc->opts.max_len == 0) enc->opts.max_len = 512;
    enc->dim = D;
    enc->n_params = n;
    enc->params = et_malloc_n(n, sizeof(float), err);
    enc->grads = et_calloc(n, sizeof(float), err);
    enc->decay_mask = et_malloc(n, err);
    if (!enc->params || !enc->grads || !enc->decay_mask) {
        st_destroy(enc);
        return ET_ENOMEM;
    }
    memcpy(enc->params, table, n * sizeof(float));
    memset(enc->decay_mask, 1, n); /* embedding.weight decays in the HF Trainer's groups */
    s->V = V, s->D = D, s->normalize = normalize, s->unk_id = unk_id;
    *out = enc;
    return ET_OK;
}

int et_encoder_init_static(et_encoder **out, const et_model *m, const et_encoder_opts *opts, et_error *err) {
    *out = NULL;
    const size_t V = m->cfg.vocab_size, D = m->cfg.hidden;
    size_t n;
    if (m->cfg.arch != ET_ARCH_STATIC || !m->static_emb || V == 0 || D == 0 || !et_size_mul(V, D, &n))
        return et_err_set(err, ET_EINVAL, "static encoder: %s is not a static model", m->dir ? m->dir : "model");
    float *table = et_malloc_n(n, sizeof(float), err);
    if (!table) return ET_ENOMEM;
    for (size_t v = 0; v < V; v++) { /* expand: row v = weights[v] * embeddings[mapping[v]] */
        size_t row = m->mapping ? (size_t)m->mapping[v] : v;
        if (row >= m->static_rows) {
            free(table);
            return et_err_set(err, ET_EFORMAT, "%s: mapping[%zu] = %zu is outside the table (%zu rows)", m->dir, v,
                              row, m->static_rows);
        }
        double w = m->tok_weights ? m->tok_weights[v] : 1.0;
        for (size_t k = 0; k < D; k++) table[v * D + k] = (float)((double)m->static_emb[row * D + k] * w);
    }
    et_encoder_opts o = *opts;
    if (!o.max_len) o.max_len = m->max_length;
    int rc = et_encoder_static_from_table(out, m, table, V, D, m->normalize, m->unk_id, &o, err);
    free(table);
    return rc;
}
