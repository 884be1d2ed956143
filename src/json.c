/* json.c - cJSON helpers with messages that name the file and field. */
#include "json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int et_json_parse(cJSON **out, const char *data, size_t len, const char *what, et_error *err) {
    *out = NULL;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!j) {
        size_t off = end && end >= data ? (size_t)(end - data) : 0;
        size_t line = 1;
        for (size_t i = 0; i < off && i < len; i++) line += data[i] == '\n';
        return et_err_set(err, ET_EFORMAT, "%s: invalid JSON near byte %zu (line %zu)", what, off, line);
    }
    *out = j;
    return ET_OK;
}

int et_json_load(cJSON **out, const char *path, et_error *err) {
    char *data;
    size_t len;
    *out = NULL;
    int rc = et_read_file(path, (size_t)1 << 30, &data, &len, err);
    if (rc) return rc;
    rc = et_json_parse(out, data, len, path, err);
    free(data);
    return rc;
}

const char *et_json_type_name(const cJSON *v) {
    if (!v) return "nothing";
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsArray(v)) return "array";
    if (cJSON_IsObject(v)) return "object";
    return "invalid";
}

static const cJSON *field(const cJSON *o, const char *name) {
    return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

static int missing(const char *file, const char *f, const char *want, et_error *err) {
    return et_err_set(err, ET_ENOTFOUND, "%s: missing field '%s' (expected %s)", file, f, want);
}

static int wrong(const char *file, const char *f, const char *want, const cJSON *v, et_error *err) {
    return et_err_set(err, ET_EFORMAT, "%s: field '%s': expected %s, got %s", file, f, want,
                      et_json_type_name(v));
}

int et_json_req_obj(const cJSON *o, const char *file, const char *f, const cJSON **out, et_error *err) {
    const cJSON *v = field(o, f);
    if (!v) return missing(file, f, "an object", err);
    if (!cJSON_IsObject(v)) return wrong(file, f, "an object", v, err);
    *out = v;
    return ET_OK;
}

int et_json_req_arr(const cJSON *o, const char *file, const char *f, const cJSON **out, et_error *err) {
    const cJSON *v = field(o, f);
    if (!v) return missing(file, f, "an array", err);
    if (!cJSON_IsArray(v)) return wrong(file, f, "an array", v, err);
    *out = v;
    return ET_OK;
}

int et_json_req_str(const cJSON *o, const char *file, const char *f, const char **out, et_error *err) {
    const cJSON *v = field(o, f);
    if (!v) return missing(file, f, "a string", err);
    if (!cJSON_IsString(v)) return wrong(file, f, "a string", v, err);
    *out = v->valuestring;
    return ET_OK;
}

int et_json_as_long(const cJSON *v, long min, long max, long *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max) return -1;
    *out = (long)d;
    return 0;
}

int et_json_req_size(const cJSON *o, const char *file, const char *f, size_t *out, et_error *err) {
    const cJSON *v = field(o, f);
    if (!v) return missing(file, f, "a non-negative integer", err);
    long x;
    if (et_json_as_long(v, 0, 1L << 40, &x)) return wrong(file, f, "a non-negative integer", v, err);
    *out = (size_t)x;
    return ET_OK;
}

int et_json_opt_str(const cJSON *o, const char *file, const char *f, const char **out, et_error *err) {
    const cJSON *v = field(o, f);
    if (!v || cJSON_IsNull(v)) return ET_OK;
    if (!cJSON_IsString(v)) return wrong(file, f, "a string", v, err);
    *out = v->valuestring;
    return ET_OK;
}

int et_json_opt_size(const cJSON *o, const char *file, const char *f, size_t *out, et_error *err) {
    const cJSON *v = field(o, f);
    if (!v || cJSON_IsNull(v)) return ET_OK;
    long x;
    if (et_json_as_long(v, 0, 1L << 40, &x)) return wrong(file, f, "a non-negative integer", v, err);
    *out = (size_t)x;
    return ET_OK;
}

int et_json_opt_long(const cJSON *o, const char *file, const char *f, long *out, et_error *err) {
    const cJSON *v = field(o, f);
    if (!v || cJSON_IsNull(v)) return ET_OK;
    long x;
    if (et_json_as_long(v, -(1L << 40), 1L << 40, &x)) return wrong(file, f, "an integer", v, err);
    *out = x;
    return ET_OK;
}

int et_json_opt_double(const cJSON *o, const char *file, const char *f, double *out, et_error *err) {
    const cJSON *v = field(o, f);
    if (!v || cJSON_IsNull(v)) return ET_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) return wrong(file, f, "a finite number", v, err);
    *out = v->valuedouble;
    return ET_OK;
}

int et_json_opt_bool(const cJSON *o, const char *file, const char *f, int *out, et_error *err) {
    const cJSON *v = field(o, f);
    if (!v || cJSON_IsNull(v)) return ET_OK;
    if (!cJSON_IsBool(v)) return wrong(file, f, "true or false", v, err);
    *out = cJSON_IsTrue(v);
    return ET_OK;
}
