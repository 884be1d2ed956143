/* adapter.c - linear and residual-MLP adapters on frozen embeddings: init,
 * forward/backward for training, save/load, apply. See adapter.h. */
#include "adapter.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "rng.h"
#include "safetensors.h"

int et_adapter_parse_kind(const char *name, int *kind) {
    if (!strcmp(name, "linear")) *kind = ET_ADAPTER_LINEAR;
    else if (!strcmp(name, "mlp")) *kind = ET_ADAPTER_MLP;
    else return -1;
    return 0;
}

static int layout(et_adapter *a, et_error *err) {
    size_t d = a->dim, h = a->hidden, n = 0, t;
    a->off_w1 = a->off_b1 = a->off_w2 = a->off_b2 = a->off_r = SIZE_MAX;
#define TAKE(field, cnt)                                                   \
    do {                                                                   \
        a->field = n;                                                      \
        if (!et_size_add(n, (cnt), &n)) goto overflow;                     \
    } while (0)
    if (!et_size_mul(d, d, &t)) goto overflow;
    if (a->kind == ET_ADAPTER_LINEAR) {
        TAKE(off_w1, t);
        if (a->bias) TAKE(off_b1, d);
    } else {
        if (!et_size_mul(h, d, &t)) goto overflow;
        TAKE(off_w1, t);
        TAKE(off_b1, h);
        TAKE(off_w2, t);
        TAKE(off_b2, d);
        TAKE(off_r, 1);
    }
#undef TAKE
    a->n_params = n;
    return ET_OK;
overflow:
    return et_err_set(err, ET_EINVAL, "adapter: sizes overflow (dim %zu, hidden %zu)", d, h);
}

void et_adapter_free(et_adapter *a) {
    if (!a) return;
    free(a->params);
    free(a->base_model);
    free(a);
}

static et_adapter *alloc_adapter(int kind, size_t dim, size_t hidden, int bias, et_error *err) {
    if (dim == 0 || (kind == ET_ADAPTER_MLP && hidden == 0)) {
        et_err_set(err, ET_EINVAL, "adapter: dim and hidden size must be >= 1");
        return NULL;
    }
    if (kind != ET_ADAPTER_LINEAR && kind != ET_ADAPTER_MLP) {
        et_err_set(err, ET_EINVAL, "adapter: unknown kind %d", kind);
        return NULL;
    }
    et_adapter *a = et_calloc(1, sizeof(*a), err);
    if (!a) return NULL;
    a->kind = kind, a->dim = dim, a->hidden = kind == ET_ADAPTER_MLP ? hidden : 0;
    a->bias = kind == ET_ADAPTER_MLP ? 1 : bias;
    a->normalize = 1;
    if (layout(a, err) || !(a->params = et_calloc(a->n_params, sizeof(float), err)) ||
        !(a->base_model = et_strdup("", err))) {
        et_adapter_free(a);
        return NULL;
    }
    return a;
}

int et_adapter_new(et_adapter **out, int kind, size_t dim, size_t hidden, int bias, uint64_t seed, et_error *err) {
    *out = NULL;
    et_adapter *a = alloc_adapter(kind, dim, hidden, bias, err);
    if (!a) return err ? err->code : ET_ENOMEM;
    float *p = a->params;
    if (kind == ET_ADAPTER_LINEAR) {
        for (size_t i = 0; i < dim; i++) p[a->off_w1 + i * dim + i] = 1.0f;
    } else {
        et_rng r;
        et_rng_seed(&r, seed, 0xada9);
        float b1 = 1.0f / sqrtf((float)dim), b2 = 1.0f / sqrtf((float)hidden);
        for (size_t i = 0; i < hidden * dim; i++) p[a->off_w1 + i] = (2 * et_rng_float(&r) - 1) * b1;
        for (size_t i = 0; i < hidden; i++) p[a->off_b1 + i] = (2 * et_rng_float(&r) - 1) * b1;
        for (size_t i = 0; i < dim * hidden; i++) p[a->off_w2 + i] = (2 * et_rng_float(&r) - 1) * b2;
        for (size_t i = 0; i < dim; i++) p[a->off_b2 + i] = (2 * et_rng_float(&r) - 1) * b2;
        p[a->off_r] = 0.0f;
    }
    *out = a;
    return ET_OK;
}

void et_adapter_decay_mask(const et_adapter *a, uint8_t *mask) {
    memset(mask, 1, a->n_params);
    if (a->off_b1 != SIZE_MAX) memset(mask + a->off_b1, 0, a->kind == ET_ADAPTER_MLP ? a->hidden : a->dim);
    if (a->off_b2 != SIZE_MAX) memset(mask + a->off_b2, 0, a->dim);
}

size_t et_adapter_dim(const et_adapter *a) { return a->dim; }
int et_adapter_applies_to_docs(const et_adapter *a) { return a->apply_docs; }
const char *et_adapter_base_model(const et_adapter *a) { return a->base_model ? a->base_model : ""; }

/* out [B, NO] = in [B, NI] @ W^T [NO, NI] (+ bias [NO]) */
static void linear(float *out, const float *in, const float *w, const float *bias, size_t B, size_t NI, size_t NO) {
    if (bias)
        for (size_t b = 0; b < B; b++) memcpy(out + b * NO, bias, NO * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)NO, (int)NI, 1.0f, in, (int)NI, w, (int)NI,
                bias ? 1.0f : 0.0f, out, (int)NO);
}

void et_adapter_forward(const et_adapter *a, const float *x, size_t B, float *y, float *h, float *z) {
    const float *p = a->params;
    const size_t d = a->dim, hid = a->hidden;
    if (a->kind == ET_ADAPTER_LINEAR) {
        linear(y, x, p + a->off_w1, a->bias ? p + a->off_b1 : NULL, B, d, d);
        return;
    }
    linear(h, x, p + a->off_w1, p + a->off_b1, B, d, hid);
    for (size_t i = 0; i < B * hid; i++) h[i] = h[i] > 0 ? h[i] : 0.0f;
    linear(z, h, p + a->off_w2, p + a->off_b2, B, hid, d);
    const float r = p[a->off_r];
    for (size_t i = 0; i < B * d; i++) y[i] = r * z[i] + x[i];
}

void et_adapter_backward(const et_adapter *a, const float *x, const float *h, const float *z, const float *dy,
                         size_t B, float *g) {
    const float *p = a->params;
    const size_t d = a->dim, hid = a->hidden;
    if (a->kind == ET_ADAPTER_LINEAR) {
        /* dW [d, d] += dy^T [d, B] @ x [B, d]; db += sum_b dy */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)d, (int)B, 1.0f, dy, (int)d, x, (int)d,
                    1.0f, g + a->off_w1, (int)d);
        if (a->bias)
            for (size_t b = 0; b < B; b++)
                for (size_t k = 0; k < d; k++) g[a->off_b1 + k] += dy[b * d + k];
        return;
    }
    const float r = p[a->off_r];
    double dr = 0;
    float *dz = malloc(B * d * sizeof(float)), *dh = malloc(B * hid * sizeof(float));
    if (!dz || !dh) { /* tiny buffers; fall back to nothing is not an option: do it row by row */
        free(dz), free(dh);
        for (size_t b = 0; b < B; b++) et_adapter_backward(a, x + b * d, h + b * hid, z + b * d, dy + b * d, 1, g);
        return;
    }
    for (size_t i = 0; i < B * d; i++) {
        dr += (double)dy[i] * z[i];
        dz[i] = r * dy[i];
    }
    g[a->off_r] += (float)dr;
    /* dW2 [d, hid] += dz^T @ h; db2 += sum dz; dh = dz @ W2 masked by h > 0 */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)d, (int)hid, (int)B, 1.0f, dz, (int)d, h, (int)hid,
                1.0f, g + a->off_w2, (int)hid);
    for (size_t b = 0; b < B; b++)
        for (size_t k = 0; k < d; k++) g[a->off_b2 + k] += dz[b * d + k];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)hid, (int)d, 1.0f, dz, (int)d,
                p + a->off_w2, (int)hid, 0.0f, dh, (int)hid);
    for (size_t i = 0; i < B * hid; i++)
        if (!(h[i] > 0)) dh[i] = 0.0f;
    /* dW1 [hid, d] += dh^T @ x; db1 += sum dh */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)hid, (int)d, (int)B, 1.0f, dh, (int)hid, x, (int)d,
                1.0f, g + a->off_w1, (int)d);
    for (size_t b = 0; b < B; b++)
        for (size_t k = 0; k < hid; k++) g[a->off_b1 + k] += dh[b * hid + k];
    free(dz);
    free(dh);
}

int et_adapter_apply(const et_adapter *a, const float *x, size_t n, float *out, et_error *err) {
    if (!a || (n && (!x || !out))) return et_err_set(err, ET_EINVAL, "et_adapter_apply: NULL argument");
    const size_t d = a->dim, chunk = 256;
    float *y = et_malloc_n(chunk * d, sizeof(float), err);
    float *h = a->kind == ET_ADAPTER_MLP ? et_malloc_n(chunk * a->hidden, sizeof(float), err) : NULL;
    float *z = a->kind == ET_ADAPTER_MLP ? et_malloc_n(chunk * d, sizeof(float), err) : NULL;
    if (!y || (a->kind == ET_ADAPTER_MLP && (!h || !z))) {
        free(y), free(h), free(z);
        return ET_ENOMEM;
    }
    for (size_t s = 0; s < n; s += chunk) {
        size_t B = ET_MIN(chunk, n - s);
        et_adapter_forward(a, x + s * d, B, y, h, z);
        for (size_t b = 0; b < B; b++) {
            float *row = y + b * d;
            if (a->normalize) {
                double ss = 0;
                for (size_t k = 0; k < d; k++) ss += (double)row[k] * row[k];
                double nr = sqrt(ss);
                float inv = nr > 1e-12 ? (float)(1.0 / nr) : 0.0f;
                for (size_t k = 0; k < d; k++) row[k] *= inv;
            }
            memcpy(out + (s + b) * d, row, d * sizeof(float));
        }
    }
    free(y), free(h), free(z);
    return ET_OK;
}

/* ---- files -------------------------------------------------------------------- */

int et_adapter_save(const et_adapter *a, const char *dir, et_error *err) {
    int rc = et_mkdir_p(dir, err);
    if (rc) return rc;
    et_st_out t[5];
    size_t nt = 0;
    const size_t d = a->dim, h = a->hidden;
    if (a->kind == ET_ADAPTER_LINEAR) {
        t[nt++] = (et_st_out){"linear.weight", a->params + a->off_w1, 2, {d, d}};
        if (a->bias) t[nt++] = (et_st_out){"linear.bias", a->params + a->off_b1, 1, {d}};
    } else {
        t[nt++] = (et_st_out){"linear1.weight", a->params + a->off_w1, 2, {h, d}};
        t[nt++] = (et_st_out){"linear1.bias", a->params + a->off_b1, 1, {h}};
        t[nt++] = (et_st_out){"linear2.weight", a->params + a->off_w2, 2, {d, h}};
        t[nt++] = (et_st_out){"linear2.bias", a->params + a->off_b2, 1, {d}};
        t[nt++] = (et_st_out){"residual_weight", a->params + a->off_r, 1, {1}};
    }
    char *path = et_path_join(dir, "adapter.safetensors", err);
    if (!path) return ET_ENOMEM;
    rc = et_safetensors_write(path, t, nt, err);
    free(path);
    if (rc) return rc;
    et_buf b = {0};
    rc = et_buf_printf(&b, err, "{\n  \"adapter_type\": \"%s\",\n  \"in_features\": %zu,\n  \"out_features\": %zu,\n",
                       a->kind == ET_ADAPTER_LINEAR ? "linear" : "mlp", d, d);
    if (!rc && a->kind == ET_ADAPTER_MLP)
        rc = et_buf_printf(&b, err, "  \"hidden_features\": %zu,\n  \"activation_fn_str\": \"relu\",\n"
                                    "  \"add_residual\": true,\n", h);
    if (!rc)
        rc = et_buf_printf(&b, err, "  \"bias\": %s,\n  \"apply_to\": \"%s\",\n  \"normalize\": %s,\n  \"base_model\": ",
                           a->bias ? "true" : "false", a->apply_docs ? "both" : "query",
                           a->normalize ? "true" : "false");
    if (!rc) rc = et_buf_json_string(&b, a->base_model, strlen(a->base_model), err);
    if (!rc) rc = et_buf_puts(&b, "\n}\n", err);
    if (!rc) {
        path = et_path_join(dir, "config.json", err);
        rc = path ? et_write_file_atomic(path, b.data, b.len, err) : ET_ENOMEM;
        free(path);
    }
    et_buf_free(&b);
    return rc;
}

static int load_tensor(const et_safetensors *st, const char *file, const char *name, float *dst, size_t n0, size_t n1,
                       size_t ndim, et_error *err) {
    const et_st_tensor *t = et_safetensors_find(st, name);
    if (!t) return et_err_set(err, ET_ENOTFOUND, "%s: tensor '%s' is missing", file, name);
    int ok = t->ndim == ndim && t->shape[0] == n0 && (ndim == 1 || t->shape[1] == n1);
    if (!ok)
        return ndim == 1 ? et_err_set(err, ET_EFORMAT, "%s: tensor '%s': expected shape [%zu]", file, name, n0)
                         : et_err_set(err, ET_EFORMAT, "%s: tensor '%s': expected shape [%zu, %zu]", file, name, n0, n1);
    return et_st_to_f32(t, dst, file, err);
}

int et_adapter_load(et_adapter **out, const char *dir, et_error *err) {
    *out = NULL;
    char *cfg_path = et_path_join(dir, "config.json", err), *w_path = et_path_join(dir, "adapter.safetensors", err);
    cJSON *cfg = NULL;
    et_adapter *a = NULL;
    et_safetensors st = {0};
    int rc = !cfg_path || !w_path ? ET_ENOMEM : et_json_load(&cfg, cfg_path, err);
    if (rc) goto done;
    const char *type = "linear", *apply = "query", *base = "";
    size_t din = 0, dout = 0, hid = 0;
    int bias = 0, norm = 1;
    if ((rc = et_json_opt_str(cfg, cfg_path, "adapter_type", &type, err)) ||
        (rc = et_json_req_size(cfg, cfg_path, "in_features", &din, err)) ||
        (rc = et_json_req_size(cfg, cfg_path, "out_features", &dout, err)) ||
        (rc = et_json_opt_size(cfg, cfg_path, "hidden_features", &hid, err)) ||
        (rc = et_json_opt_bool(cfg, cfg_path, "bias", &bias, err)) ||
        (rc = et_json_opt_str(cfg, cfg_path, "apply_to", &apply, err)) ||
        (rc = et_json_opt_bool(cfg, cfg_path, "normalize", &norm, err)) ||
        (rc = et_json_opt_str(cfg, cfg_path, "base_model", &base, err)))
        goto done;
    int kind;
    if (et_adapter_parse_kind(type, &kind)) {
        rc = et_err_set(err, ET_EFORMAT, "%s: field 'adapter_type': expected \"linear\" or \"mlp\", got \"%s\"",
                        cfg_path, type);
        goto done;
    }
    if (din != dout || din == 0 || din > (1u << 20) || hid > (1u << 22)) {
        rc = et_err_set(err, ET_EUNSUPPORTED, "%s: in_features %zu / out_features %zu: expected equal sizes in 1..%u",
                        cfg_path, din, dout, 1u << 20);
        goto done;
    }
    if (strcmp(apply, "query") && strcmp(apply, "both")) {
        rc = et_err_set(err, ET_EFORMAT, "%s: field 'apply_to': expected \"query\" or \"both\", got \"%s\"", cfg_path,
                        apply);
        goto done;
    }
    if (kind == ET_ADAPTER_MLP && hid == 0) {
        rc = et_err_set(err, ET_EFORMAT, "%s: field 'hidden_features': expected >= 1 for an mlp adapter", cfg_path);
        goto done;
    }
    a = alloc_adapter(kind, din, hid, bias, err);
    if (!a) {
        rc = err ? err->code : ET_ENOMEM;
        goto done;
    }
    a->apply_docs = !strcmp(apply, "both");
    a->normalize = norm;
    free(a->base_model);
    if (!(a->base_model = et_strdup(base, err))) {
        rc = ET_ENOMEM;
        goto done;
    }
    if ((rc = et_safetensors_open(&st, w_path, err))) goto done;
    const size_t d = din;
    if (kind == ET_ADAPTER_LINEAR) {
        rc = load_tensor(&st, w_path, "linear.weight", a->params + a->off_w1, d, d, 2, err);
        if (!rc && bias) rc = load_tensor(&st, w_path, "linear.bias", a->params + a->off_b1, d, 0, 1, err);
    } else {
        rc = load_tensor(&st, w_path, "linear1.weight", a->params + a->off_w1, hid, d, 2, err);
        if (!rc) rc = load_tensor(&st, w_path, "linear1.bias", a->params + a->off_b1, hid, 0, 1, err);
        if (!rc) rc = load_tensor(&st, w_path, "linear2.weight", a->params + a->off_w2, d, hid, 2, err);
        if (!rc) rc = load_tensor(&st, w_path, "linear2.bias", a->params + a->off_b2, d, 0, 1, err);
        if (!rc) rc = load_tensor(&st, w_path, "residual_weight", a->params + a->off_r, 1, 0, 1, err);
    }
    for (size_t i = 0; !rc && i < a->n_params; i++)
        if (!isfinite(a->params[i])) rc = et_err_set(err, ET_ENUMERIC, "%s: parameter %zu is not finite", w_path, i);
done:
    et_safetensors_close(&st);
    cJSON_Delete(cfg);
    free(cfg_path);
    free(w_path);
    if (rc) et_adapter_free(a);
    else *out = a;
    return rc;
}
