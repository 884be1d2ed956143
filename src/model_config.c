/* model_config.c - config.json and sentence-transformers module configs, parsed
 * from bytes (so the fuzzers reach exactly the loader's code). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "model.h"

/* Bounds that keep a hostile config from asking for absurd allocations. */
#define MAX_HIDDEN 65536
#define MAX_LAYERS 1024
#define MAX_VOCAB (1 << 24)
#define MAX_POSITIONS (1 << 20)
#define MAX_TYPES 1024

static int get_size(const cJSON *o, const char *what, const char *f, int required, size_t lo,
                    size_t hi, size_t *out, et_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f);
    if (!v) {
        if (required)
            return et_err_set(err, ET_ENOTFOUND, "%s: missing field '%s' (expected an integer)", what, f);
        return ET_OK;
    }
    long x;
    if (et_json_as_long(v, (long)lo, (long)hi, &x))
        return et_err_set(err, ET_EFORMAT, "%s: field '%s': expected an integer in [%zu, %zu]", what, f,
                          lo, hi);
    *out = (size_t)x;
    return ET_OK;
}

static int get_float(const cJSON *o, const char *what, const char *f, double lo, double hi,
                     float *out, et_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, f);
    if (!v || cJSON_IsNull(v)) return ET_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo || v->valuedouble > hi)
        return et_err_set(err, ET_EFORMAT, "%s: field '%s': expected a number in [%g, %g]", what, f, lo,
                          hi);
    *out = (float)v->valuedouble;
    return ET_OK;
}

int et_config_parse(et_model_config *cfg, const char *json, size_t len, const char *what,
                    et_error *err) {
    memset(cfg, 0, sizeof(*cfg));
    cJSON *root;
    int rc = et_json_parse(&root, json, len, what, err);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) {
        rc = et_err_set(err, ET_EFORMAT, "%s: expected a JSON object", what);
        goto done;
    }
    const char *mt = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (v && !cJSON_IsString(v)) {
        rc = et_err_set(err, ET_EFORMAT, "%s: field 'model_type': expected a string, got %s", what,
                        et_json_type_name(v));
        goto done;
    }
    if (v) mt = v->valuestring;
    if (!mt) { /* fall back to architectures[0] */
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "architectures");
        if (cJSON_IsArray(a) && cJSON_IsString(a->child)) {
            const char *s = a->child->valuestring;
            if (strstr(s, "XLMRoberta") || strstr(s, "Roberta")) mt = "xlm-roberta";
            else if (strstr(s, "Bert")) mt = "bert";
            else if (strstr(s, "StaticModel")) mt = "model2vec";
        }
    }
    if (!mt) {
        rc = et_err_set(err, ET_ENOTFOUND, "%s: missing field 'model_type' (expected bert, "
                        "xlm-roberta, roberta or model2vec)", what);
        goto done;
    }
    if (!strcmp(mt, "bert")) cfg->arch = ET_ARCH_BERT;
    else if (!strcmp(mt, "xlm-roberta") || !strcmp(mt, "roberta") || !strcmp(mt, "camembert"))
        cfg->arch = ET_ARCH_XLMR;
    else if (!strcmp(mt, "model2vec")) cfg->arch = ET_ARCH_STATIC;
    else {
        rc = et_err_set(err, ET_EUNSUPPORTED, "%s: field 'model_type': unsupported architecture '%s' "
                        "(supported: bert, xlm-roberta, roberta, model2vec)", what, mt);
        goto done;
    }
    if (cfg->arch == ET_ARCH_STATIC) {
        /* model2vec: the width comes from the weights; hidden_dim is informational */
        rc = get_size(root, what, "hidden_dim", 0, 1, MAX_HIDDEN, &cfg->hidden, err);
        goto done;
    }
    int bert = cfg->arch == ET_ARCH_BERT;
    cfg->type_vocab_size = bert ? 2 : 1;
    cfg->ln_eps = bert ? 1e-12f : 1e-5f;
    cfg->pad_token_id = bert ? 0 : 1;
    cfg->hidden_dropout = cfg->attn_dropout = 0.1f;
    if ((rc = get_size(root, what, "vocab_size", 1, 1, MAX_VOCAB, &cfg->vocab_size, err)) ||
        (rc = get_size(root, what, "hidden_size", 1, 1, MAX_HIDDEN, &cfg->hidden, err)) ||
        (rc = get_size(root, what, "num_hidden_layers", 1, 1, MAX_LAYERS, &cfg->n_layers, err)) ||
        (rc = get_size(root, what, "num_attention_heads", 1, 1, MAX_HIDDEN, &cfg->n_heads, err)) ||
        (rc = get_size(root, what, "intermediate_size", 1, 1, 16 * MAX_HIDDEN, &cfg->intermediate, err)) ||
        (rc = get_size(root, what, "max_position_embeddings", 1, 1, MAX_POSITIONS, &cfg->max_position, err)) ||
        (rc = get_size(root, what, "type_vocab_size", 0, 0, MAX_TYPES, &cfg->type_vocab_size, err)) ||
        (rc = get_float(root, what, "layer_norm_eps", 0, 1, &cfg->ln_eps, err)) ||
        (rc = get_float(root, what, "hidden_dropout_prob", 0, 1, &cfg->hidden_dropout, err)) ||
        (rc = get_float(root, what, "attention_probs_dropout_prob", 0, 1, &cfg->attn_dropout, err)))
        goto done;
    if (cfg->hidden % cfg->n_heads) {
        rc = et_err_set(err, ET_EFORMAT, "%s: field 'hidden_size' (%zu) is not a multiple of "
                        "'num_attention_heads' (%zu)", what, cfg->hidden, cfg->n_heads);
        goto done;
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "pad_token_id");
    if (v && !cJSON_IsNull(v)) {
        long x;
        if (et_json_as_long(v, 0, MAX_VOCAB, &x)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: field 'pad_token_id': expected a non-negative integer",
                            what);
            goto done;
        }
        cfg->pad_token_id = (int)x;
    }
    const char *act = "gelu";
    if ((rc = et_json_opt_str(root, what, "hidden_act", &act, err))) goto done;
    if (!strcmp(act, "gelu")) cfg->act = ET_ACT_GELU;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_fast"))
        cfg->act = ET_ACT_GELU_TANH;
    else if (!strcmp(act, "relu")) cfg->act = ET_ACT_RELU;
    else {
        rc = et_err_set(err, ET_EUNSUPPORTED, "%s: field 'hidden_act': unsupported activation '%s' "
                        "(supported: gelu, gelu_new, gelu_pytorch_tanh, gelu_fast, relu)", what, act);
        goto done;
    }
    const char *pet = "absolute";
    if ((rc = et_json_opt_str(root, what, "position_embedding_type", &pet, err))) goto done;
    if (strcmp(pet, "absolute")) {
        rc = et_err_set(err, ET_EUNSUPPORTED, "%s: field 'position_embedding_type': '%s' is not "
                        "supported (only 'absolute')", what, pet);
        goto done;
    }
    if (cfg->arch == ET_ARCH_XLMR) {
        cfg->pos_offset = (size_t)cfg->pad_token_id + 1;
        if (cfg->pos_offset >= cfg->max_position) {
            rc = et_err_set(err, ET_EFORMAT, "%s: 'max_position_embeddings' (%zu) leaves no positions "
                            "after padding_idx %d", what, cfg->max_position, cfg->pad_token_id);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    return rc;
}

static int pooling_from_name(const char *s) {
    if (!strcmp(s, "cls")) return ET_POOL_CLS;
    if (!strcmp(s, "mean")) return ET_POOL_MEAN;
    if (!strcmp(s, "max")) return ET_POOL_MAX;
    if (!strcmp(s, "lasttoken") || !strcmp(s, "last")) return ET_POOL_LAST;
    if (!strcmp(s, "weightedmean")) return ET_POOL_WEIGHTEDMEAN;
    if (!strcmp(s, "mean_sqrt_len_tokens") || !strcmp(s, "mean_sqrt_len")) return ET_POOL_MEAN_SQRT_LEN;
    return 0;
}

int et_pooling_config_parse(int *pooling, int *include_prompt, const char *json, size_t len,
                            const char *what, et_error *err) {
    *pooling = 0;
    *include_prompt = 1;
    cJSON *root;
    int rc = et_json_parse(&root, json, len, what, err);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return et_err_set(err, ET_EFORMAT, "%s: expected a JSON object", what);
    }
    static const struct { const char *field; int mode; } modes[] = {
        {"pooling_mode_cls_token", ET_POOL_CLS},
        {"pooling_mode_mean_tokens", ET_POOL_MEAN},
        {"pooling_mode_max_tokens", ET_POOL_MAX},
        {"pooling_mode_lasttoken", ET_POOL_LAST},
        {"pooling_mode_mean_sqrt_len_tokens", ET_POOL_MEAN_SQRT_LEN},
        {"pooling_mode_weightedmean_tokens", ET_POOL_WEIGHTEDMEAN},
    };
    int n_on = 0, mode = 0;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]) && !rc; i++) {
        int on = 0;
        rc = et_json_opt_bool(root, what, modes[i].field, &on, err);
        if (rc || !on) continue;
        n_on++;
        mode = modes[i].mode;
    }
    if (!rc && n_on == 0) { /* newer files may only name the mode */
        const char *name = NULL;
        rc = et_json_opt_str(root, what, "pooling_mode", &name, err);
        if (!rc && name && !(mode = pooling_from_name(name)))
            rc = et_err_set(err, ET_EUNSUPPORTED, "%s: field 'pooling_mode': unsupported mode '%s'",
                            what, name);
        if (!rc && !name)
            rc = et_err_set(err, ET_EFORMAT, "%s: no pooling mode is enabled (expected one of "
                            "pooling_mode_cls_token, pooling_mode_mean_tokens, ...)", what);
        n_on = 1;
    }
    if (!rc && n_on > 1)
        rc = et_err_set(err, ET_EUNSUPPORTED, "%s: %d pooling modes enabled at once (concatenated "
                        "pooling is not supported)", what, n_on);
    if (!rc) rc = et_json_opt_bool(root, what, "include_prompt", include_prompt, err);
    if (!rc) *pooling = mode;
    cJSON_Delete(root);
    return rc;
}

int et_modules_parse(et_st_modules *mods, const char *json, size_t len, const char *what,
                     et_error *err) {
    memset(mods, 0, sizeof(*mods));
    cJSON *root;
    int rc = et_json_parse(&root, json, len, what, err);
    if (rc) return rc;
    if (!cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return et_err_set(err, ET_EFORMAT, "%s: expected a JSON array of modules", what);
    }
    int i = 0;
    for (const cJSON *m = root->child; m && !rc; m = m->next, i++) {
        const char *type = NULL, *path = "";
        char field[32];
        snprintf(field, sizeof field, "[%d]", i);
        if (!cJSON_IsObject(m)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: module %s: expected an object", what, field);
            break;
        }
        if ((rc = et_json_req_str(m, what, "type", &type, err))) break;
        if ((rc = et_json_opt_str(m, what, "path", &path, err))) break;
        const char *base = strrchr(type, '.');
        base = base ? base + 1 : type;
        if (strlen(path) >= sizeof(mods->pooling_path) || strstr(path, "..") || path[0] == '/') {
            rc = et_err_set(err, ET_EFORMAT, "%s: module %s: field 'path': '%s' is not a relative "
                            "module directory", what, field, path);
            break;
        }
        if (!strcmp(base, "Transformer")) {
            mods->has_transformer = 1;
        } else if (!strcmp(base, "StaticEmbedding")) {
            mods->has_static = 1;
            snprintf(mods->static_path, sizeof mods->static_path, "%s", path);
        } else if (!strcmp(base, "Pooling")) {
            mods->has_pooling = 1;
            snprintf(mods->pooling_path, sizeof mods->pooling_path, "%s", path);
        } else if (!strcmp(base, "Normalize")) {
            mods->has_normalize = 1;
        } else {
            rc = et_err_set(err, ET_EUNSUPPORTED, "%s: module %s: type '%s' is not supported "
                            "(supported: Transformer, StaticEmbedding, Pooling, Normalize)", what,
                            field, type);
        }
    }
    cJSON_Delete(root);
    return rc;
}

int et_st_config_parse(size_t *max_seq_length, int *do_lower_case, const char *json, size_t len,
                       const char *what, et_error *err) {
    *max_seq_length = 0;
    *do_lower_case = -1;
    cJSON *root;
    int rc = et_json_parse(&root, json, len, what, err);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) rc = et_err_set(err, ET_EFORMAT, "%s: expected a JSON object", what);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "max_seq_length");
    if (!rc && v && !cJSON_IsNull(v))
        rc = get_size(root, what, "max_seq_length", 1, 1, MAX_POSITIONS, max_seq_length, err);
    v = cJSON_GetObjectItemCaseSensitive(root, "do_lower_case");
    if (!rc && v) {
        int b = 0;
        rc = et_json_opt_bool(root, what, "do_lower_case", &b, err);
        if (!rc) *do_lower_case = b;
    }
    cJSON_Delete(root);
    return rc;
}

int et_prompts_parse(et_model *m, const char *json, size_t len, const char *what, et_error *err) {
    cJSON *root;
    int rc = et_json_parse(&root, json, len, what, err);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return et_err_set(err, ET_EFORMAT, "%s: expected a JSON object", what);
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompts");
    if (p && !cJSON_IsNull(p)) {
        if (!cJSON_IsObject(p)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: field 'prompts': expected an object, got %s", what,
                            et_json_type_name(p));
        }
        for (const cJSON *e = p->child; e && !rc; e = e->next) {
            if (!cJSON_IsString(e)) {
                rc = et_err_set(err, ET_EFORMAT, "%s: field 'prompts.%s': expected a string", what,
                                e->string ? e->string : "");
                break;
            }
            if (m->n_prompts >= ET_MAX_PROMPTS) break; /* more than we keep: ignore the rest */
            char *name = et_strdup(e->string ? e->string : "", err);
            char *text = name ? et_strdup(e->valuestring, err) : NULL;
            if (!text) {
                free(name);
                rc = ET_ENOMEM;
                break;
            }
            m->prompt_names[m->n_prompts] = name;
            m->prompt_texts[m->n_prompts] = text;
            m->n_prompts++;
        }
    }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "default_prompt_name");
    if (!rc && d && !cJSON_IsNull(d)) {
        if (!cJSON_IsString(d))
            rc = et_err_set(err, ET_EFORMAT, "%s: field 'default_prompt_name': expected a string", what);
        else if (!(m->default_prompt = et_strdup(d->valuestring, err)))
            rc = ET_ENOMEM;
    }
    cJSON_Delete(root);
    return rc;
}
