/* ref_file.h - reads the safetensors files written by tests/ref/ scripts (via
 * st_io.py) into named arrays, for the fine-tuning tests. Test-only code:
 * aborts the test (returns NULL / -1) on any malformed input.
 *
 *   ref_file *r = ref_open(path);          // NULL on error (message printed)
 *   float *x = ref_f32(r, "case0.emb0", &n);  // F32/F64 converted to float, malloc'd
 *   double v = ref_scalar(r, "case0.loss");
 *   const char *meta = ref_meta(r, "cases"); // __metadata__ string, borrowed
 */
#ifndef ET_REF_FILE_H
#define ET_REF_FILE_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ref_file {
    uint8_t *data;
    size_t size, base;
    cJSON *header;
} ref_file;

static inline void ref_close(ref_file *r) {
    if (!r) return;
    cJSON_Delete(r->header);
    free(r->data);
    free(r);
}

static inline ref_file *ref_open(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "ref_open: cannot open %s\n", path);
        return NULL;
    }
    ref_file *r = calloc(1, sizeof(*r));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    r->data = malloc(sz > 0 ? (size_t)sz : 1);
    r->size = fread(r->data, 1, (size_t)sz, f);
    fclose(f);
    uint64_t n = 0;
    if (r->size < 8) goto bad;
    memcpy(&n, r->data, 8);
    if (n > r->size - 8) goto bad;
    r->header = cJSON_ParseWithLength((const char *)r->data + 8, (size_t)n);
    if (!r->header) goto bad;
    r->base = 8 + (size_t)n;
    return r;
bad:
    fprintf(stderr, "ref_open: %s is not a safetensors file\n", path);
    ref_close(r);
    return NULL;
}

static inline const char *ref_meta(const ref_file *r, const char *key) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(r->header, "__metadata__");
    const cJSON *v = m ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static inline int ref_has(const ref_file *r, const char *name) {
    return cJSON_GetObjectItemCaseSensitive(r->header, name) != NULL;
}

/* Shape of a tensor into shape[4]; returns ndim or -1. */
static inline int ref_shape(const ref_file *r, const char *name, size_t shape[4]) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->header, name);
    const cJSON *s = t ? cJSON_GetObjectItemCaseSensitive(t, "shape") : NULL;
    if (!s) return -1;
    int nd = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, s) if (nd < 4) shape[nd++] = (size_t)e->valuedouble;
    return nd;
}

/* Any numeric tensor as a malloc'd double array; *n = element count. */
static inline double *ref_f64(const ref_file *r, const char *name, size_t *n) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(r->header, name);
    if (!t) {
        fprintf(stderr, "ref: no tensor '%s'\n", name);
        return NULL;
    }
    const char *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype")->valuestring;
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    size_t a = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, b = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
    if (b < a || r->base + b > r->size) return NULL;
    size_t es = (!strcmp(dt, "F64") || !strcmp(dt, "I64")) ? 8 : 4, cnt = (b - a) / es;
    double *out = malloc((cnt ? cnt : 1) * sizeof(double));
    const uint8_t *p = r->data + r->base + a;
    for (size_t i = 0; i < cnt; i++) {
        if (!strcmp(dt, "F32")) { float v; memcpy(&v, p + 4 * i, 4); out[i] = v; }
        else if (!strcmp(dt, "F64")) { double v; memcpy(&v, p + 8 * i, 8); out[i] = v; }
        else if (!strcmp(dt, "I32")) { int32_t v; memcpy(&v, p + 4 * i, 4); out[i] = v; }
        else { int64_t v; memcpy(&v, p + 8 * i, 8); out[i] = (double)v; }
    }
    if (n) *n = cnt;
    return out;
}

static inline float *ref_f32(const ref_file *r, const char *name, size_t *n) {
    size_t cnt = 0;
    double *d = ref_f64(r, name, &cnt);
    if (!d) return NULL;
    float *f = malloc((cnt ? cnt : 1) * sizeof(float));
    for (size_t i = 0; i < cnt; i++) f[i] = (float)d[i];
    free(d);
    if (n) *n = cnt;
    return f;
}

static inline double ref_scalar(const ref_file *r, const char *name) {
    double *d = ref_f64(r, name, NULL);
    double v = d ? d[0] : NAN;
    free(d);
    return v;
}

/* Runs `$TORCH_PY script args` (from the repo root); returns its exit status. */
static inline int ref_run_python(const char *script_and_args) {
    const char *py = getenv("TORCH_PY") ? getenv("TORCH_PY") : "/usr/bin/python3";
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "%s %s", py, script_and_args);
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "reference script failed (%d): %s\n", rc, cmd);
    return rc;
}

#endif
