/* safetensors.c - safetensors reader (mmap, validated) and writer (atomic). */
#include "safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "strmap.h"

#define ST_MAX_HEADER ((size_t)100 << 20) /* the reference implementation's limit */

static const struct {
    const char *name;
    size_t size;
} dtypes[ET_DT_COUNT] = {
    [ET_DT_F32] = {"F32", 4}, [ET_DT_F16] = {"F16", 2}, [ET_DT_BF16] = {"BF16", 2},
    [ET_DT_F64] = {"F64", 8}, [ET_DT_I64] = {"I64", 8}, [ET_DT_I32] = {"I32", 4},
    [ET_DT_I16] = {"I16", 2}, [ET_DT_I8] = {"I8", 1},   [ET_DT_U8] = {"U8", 1},
    [ET_DT_BOOL] = {"BOOL", 1},
};

const char *et_dtype_name(et_dtype dt) { return (unsigned)dt < ET_DT_COUNT ? dtypes[dt].name : "?"; }
size_t et_dtype_size(et_dtype dt) { return (unsigned)dt < ET_DT_COUNT ? dtypes[dt].size : 0; }

float et_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t et_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float et_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, man = h & 0x3ffu, u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else { /* subnormal: normalize */
            exp = 127 - 15 + 1;
            while (!(man & 0x400u)) {
                man <<= 1;
                exp--;
            }
            man &= 0x3ffu;
            u = sign | (exp << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp - 15 + 127) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

void et_safetensors_close(et_safetensors *st) {
    if (!st) return;
    free(st->tensors);
    free(st->names);
    free(st->path);
    et_mmap_close(&st->map);
    memset(st, 0, sizeof(*st));
}

static int cmp_by_offset(const void *a, const void *b) {
    const et_st_tensor *x = *(const et_st_tensor *const *)a, *y = *(const et_st_tensor *const *)b;
    return x->data < y->data ? -1 : x->data > y->data ? 1 : 0;
}

static int read_u64_le(const uint8_t *p, uint64_t *out) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    *out = v;
    return 0;
}

/* An exact non-negative integer that fits size_t (JSON numbers are doubles in cJSON;
 * anything >= 2^53 is rejected as it cannot be represented exactly). */
static int json_size(const cJSON *v, size_t *out) {
    long x;
    if (et_json_as_long(v, 0, (long)1 << 53, &x)) return -1;
    *out = (size_t)x;
    return 0;
}

int et_safetensors_parse(et_safetensors *st, const uint8_t *data, size_t size, const char *what,
                         et_error *err) {
    memset(st, 0, sizeof(*st));
    if (size < 8)
        return et_err_set(err, ET_EFORMAT, "%s: file too short for a safetensors header (%zu bytes)",
                          what, size);
    uint64_t hlen;
    read_u64_le(data, &hlen);
    if (hlen > size - 8)
        return et_err_set(err, ET_EFORMAT,
                          "%s: header length %llu runs past the end of the file (%zu bytes)", what,
                          (unsigned long long)hlen, size);
    if (hlen > ST_MAX_HEADER)
        return et_err_set(err, ET_EFORMAT, "%s: header length %llu exceeds the 100 MiB limit", what,
                          (unsigned long long)hlen);
    if (hlen < 2 || data[8] != '{')
        return et_err_set(err, ET_EFORMAT, "%s: header is not a JSON object", what);
    cJSON *root = NULL;
    char jwhat[512];
    snprintf(jwhat, sizeof jwhat, "%s: header", what);
    int rc = et_json_parse(&root, (const char *)data + 8, (size_t)hlen, jwhat, err);
    if (rc) return rc;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return et_err_set(err, ET_EFORMAT, "%s: header is not a JSON object", what);
    }
    const uint8_t *base = data + 8 + hlen;
    size_t dsize = size - 8 - (size_t)hlen;
    size_t count = 0, names_len = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) continue;
        if (!strcmp(e->string, "__metadata__")) continue;
        count++;
        names_len += strlen(e->string) + 1;
    }
    et_st_tensor **order = NULL;
    et_strmap seen;
    et_strmap_init(&seen);
    st->tensors = et_calloc(count ? count : 1, sizeof(et_st_tensor), err);
    st->names = et_malloc(names_len ? names_len : 1, err);
    order = et_calloc(count ? count : 1, sizeof(*order), err);
    if (!st->tensors || !st->names || !order) {
        rc = ET_ENOMEM;
        goto done;
    }
    size_t ni = 0, noff = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        const char *name = e->string;
        if (!name) continue;
        if (!strcmp(name, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                rc = et_err_set(err, ET_EFORMAT, "%s: __metadata__ is not an object", what);
                goto done;
            }
            for (const cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    rc = et_err_set(err, ET_EFORMAT, "%s: __metadata__ value '%s' is not a string",
                                    what, m->string ? m->string : "");
                    goto done;
                }
            continue;
        }
        size_t nl = strlen(name);
        int64_t dummy;
        int dup = et_strmap_put_new(&seen, name, nl, (int64_t)ni, &dummy, err);
        if (dup < 0) {
            rc = ET_ENOMEM;
            goto done;
        }
        if (dup == 1) {
            rc = et_err_set(err, ET_EFORMAT, "%s: tensor '%s' appears twice in the header", what, name);
            goto done;
        }
        et_st_tensor *t = &st->tensors[ni];
        memcpy(st->names + noff, name, nl + 1);
        t->name = st->names + noff;
        noff += nl + 1;
        if (!cJSON_IsObject(e)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: tensor '%s': expected an object, got %s", what,
                            name, et_json_type_name(e));
            goto done;
        }
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
        const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
        if (!cJSON_IsString(dt)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: tensor '%s': field 'dtype': expected a string",
                            what, name);
            goto done;
        }
        int found = 0;
        for (int d = 0; d < ET_DT_COUNT; d++)
            if (!strcmp(dt->valuestring, dtypes[d].name)) {
                t->dtype = (et_dtype)d;
                found = 1;
            }
        if (!found) {
            rc = et_err_set(err, ET_EUNSUPPORTED, "%s: tensor '%s': unsupported dtype '%s'", what,
                            name, dt->valuestring);
            goto done;
        }
        if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > ET_ST_MAX_DIMS) {
            rc = et_err_set(err, ET_EFORMAT,
                            "%s: tensor '%s': field 'shape': expected an array of at most %d sizes",
                            what, name, ET_ST_MAX_DIMS);
            goto done;
        }
        t->numel = 1;
        for (const cJSON *d = sh->child; d; d = d->next) {
            size_t v;
            if (json_size(d, &v) || !et_size_mul(t->numel, v, &t->numel)) {
                rc = et_err_set(err, ET_EFORMAT,
                                "%s: tensor '%s': field 'shape': expected non-negative integers "
                                "whose product fits in memory",
                                what, name);
                goto done;
            }
            t->shape[t->ndim++] = v;
        }
        size_t b0, b1;
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || json_size(of->child, &b0) ||
            json_size(of->child->next, &b1)) {
            rc = et_err_set(err, ET_EFORMAT,
                            "%s: tensor '%s': field 'data_offsets': expected [begin, end]", what, name);
            goto done;
        }
        if (b1 < b0 || b1 > dsize) {
            rc = et_err_set(err, ET_EFORMAT,
                            "%s: tensor '%s': data_offsets [%zu, %zu] out of range (data section "
                            "has %zu bytes)",
                            what, name, b0, b1, dsize);
            goto done;
        }
        size_t want;
        if (!et_size_mul(t->numel, dtypes[t->dtype].size, &want) || want != b1 - b0) {
            rc = et_err_set(err, ET_EFORMAT,
                            "%s: tensor '%s': data_offsets cover %zu bytes but dtype %s and its "
                            "shape need %zu",
                            what, name, b1 - b0, dtypes[t->dtype].name, want);
            goto done;
        }
        t->data = base + b0;
        t->nbytes = b1 - b0;
        order[ni] = t;
        ni++;
    }
    st->n = ni;
    qsort(order, ni, sizeof(*order), cmp_by_offset);
    for (size_t i = 1; i < ni; i++) {
        const et_st_tensor *a = order[i - 1], *b = order[i];
        if (a->data + a->nbytes > b->data) {
            rc = et_err_set(err, ET_EFORMAT, "%s: tensors '%s' and '%s' overlap in the data section",
                            what, a->name, b->name);
            goto done;
        }
    }
done:
    et_strmap_free(&seen);
    free(order);
    cJSON_Delete(root);
    if (rc) {
        free(st->tensors);
        free(st->names);
        memset(st, 0, sizeof(*st));
    }
    return rc;
}

int et_safetensors_open(et_safetensors *st, const char *path, et_error *err) {
    memset(st, 0, sizeof(*st));
    et_mmap map;
    int rc = et_mmap_open(&map, path, err);
    if (rc) return rc;
    rc = et_safetensors_parse(st, map.data, map.size, path, err);
    if (rc) {
        et_mmap_close(&map);
        return rc;
    }
    st->map = map;
    st->path = et_strdup(path, err);
    if (!st->path) {
        et_safetensors_close(st);
        return ET_ENOMEM;
    }
    return ET_OK;
}

const et_st_tensor *et_safetensors_find(const et_safetensors *st, const char *name) {
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
    return NULL;
}

int et_st_to_f32(const et_st_tensor *t, float *out, const char *what, et_error *err) {
    const uint8_t *p = t->data;
    size_t n = t->numel;
    switch (t->dtype) {
    case ET_DT_F32:
        memcpy(out, p, n * 4);
        break;
    case ET_DT_F16:
        for (size_t i = 0; i < n; i++) out[i] = et_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case ET_DT_BF16:
        for (size_t i = 0; i < n; i++) out[i] = et_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        break;
    case ET_DT_F64:
        for (size_t i = 0; i < n; i++) {
            double d;
            memcpy(&d, p + 8 * i, 8);
            out[i] = (float)d;
        }
        break;
    default:
        return et_err_set(err, ET_EFORMAT,
                          "%s: tensor '%s': dtype %s, expected a floating type (F32, F16, BF16, F64)",
                          what, t->name, et_dtype_name(t->dtype));
    }
    return ET_OK;
}

int et_st_to_i32(const et_st_tensor *t, int32_t *out, const char *what, et_error *err) {
    const uint8_t *p = t->data;
    for (size_t i = 0; i < t->numel; i++) {
        int64_t v;
        switch (t->dtype) {
        case ET_DT_I64: { int64_t x; memcpy(&x, p + 8 * i, 8); v = x; break; }
        case ET_DT_I32: { int32_t x; memcpy(&x, p + 4 * i, 4); v = x; break; }
        case ET_DT_I16: { int16_t x; memcpy(&x, p + 2 * i, 2); v = x; break; }
        case ET_DT_I8: v = (int8_t)p[i]; break;
        case ET_DT_U8: v = p[i]; break;
        default:
            return et_err_set(err, ET_EFORMAT, "%s: tensor '%s': dtype %s, expected an integer type",
                              what, t->name, et_dtype_name(t->dtype));
        }
        if (v < INT32_MIN || v > INT32_MAX)
            return et_err_set(err, ET_EFORMAT, "%s: tensor '%s': value %lld at %zu out of int32 range",
                              what, t->name, (long long)v, i);
        out[i] = (int32_t)v;
    }
    return ET_OK;
}

int et_safetensors_write(const char *path, const et_st_out *t, size_t n, et_error *err) {
    et_buf h = {0};
    int rc = et_buf_puts(&h, "{\"__metadata__\":{\"format\":\"pt\"}", err);
    size_t off = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        size_t numel = 1, nb;
        for (size_t d = 0; d < t[i].ndim; d++)
            if (!et_size_mul(numel, t[i].shape[d], &numel))
                return et_buf_free(&h), et_err_set(err, ET_EINVAL, "%s: tensor '%s' too large", path, t[i].name);
        if (!et_size_mul(numel, 4, &nb))
            return et_buf_free(&h), et_err_set(err, ET_EINVAL, "%s: tensor '%s' too large", path, t[i].name);
        rc = et_buf_puts(&h, ",", err);
        if (!rc) rc = et_buf_json_string(&h, t[i].name, strlen(t[i].name), err);
        if (!rc) rc = et_buf_puts(&h, ":{\"dtype\":\"F32\",\"shape\":[", err);
        for (size_t d = 0; d < t[i].ndim && !rc; d++)
            rc = et_buf_printf(&h, err, "%s%zu", d ? "," : "", t[i].shape[d]);
        if (!rc) rc = et_buf_printf(&h, err, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    if (!rc) rc = et_buf_puts(&h, "}", err);
    while (!rc && h.len % 8) rc = et_buf_puts(&h, " ", err);
    if (rc) {
        et_buf_free(&h);
        return rc;
    }
    et_afile f;
    rc = et_afile_open(&f, path, err);
    if (rc) {
        et_buf_free(&h);
        return rc;
    }
    uint8_t len8[8];
    uint64_t hl = h.len;
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(hl >> (8 * i));
    if (fwrite(len8, 1, 8, f.fp) != 8 || fwrite(h.data, 1, h.len, f.fp) != h.len) f.failed = 1;
    for (size_t i = 0; i < n && !f.failed; i++) {
        size_t numel = 1;
        for (size_t d = 0; d < t[i].ndim; d++) numel *= t[i].shape[d];
        if (numel && fwrite(t[i].data, 4, numel, f.fp) != numel) f.failed = 1;
    }
    et_buf_free(&h);
    return et_afile_commit(&f, err);
}
