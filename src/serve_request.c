/* serve_request.c - request bodies of the embeddings server: parse + validate
 * (OpenAI /v1/embeddings and TEI /embed), and the JSON replies.
 *
 * Every body is hostile: the parser never trusts a type, a count or a number;
 * every failure becomes a 400/413 with a message naming the field. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "json.h"
#include "serve.h"

void serve_error_set(serve_error *e, int status, const char *type, const char *param,
                     const char *code, const char *fmt, ...) {
    e->status = status;
    e->type = type;
    e->param = param;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

#define BAD(param, code, ...) \
    (serve_error_set(e, 400, "invalid_request_error", param, code, __VA_ARGS__), 400)

void serve_request_free(serve_request *req) {
    if (req->ids)
        for (size_t i = 0; i < req->n; i++) free(req->ids[i]);
    free(req->ids);
    free(req->id_lens);
    free(req->texts);
    free(req->text_lens);
    free(req->prompt_name);
    cJSON_Delete(req->json);
    memset(req, 0, sizeof(*req));
}

/* One token-id array -> malloc'd int32 ids. */
static int parse_ids(const cJSON *arr, const char *param, size_t idx, const serve_limits *lim,
                     int32_t **out, size_t *n_out, serve_error *e) {
    size_t n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) n++;
    if (n == 0) return BAD(param, "empty_input", "'%s'[%zu] is an empty token array", param, idx);
    int32_t *ids = malloc(n * sizeof(int32_t));
    if (!ids) {
        serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
        return 500;
    }
    size_t i = 0;
    cJSON_ArrayForEach(v, arr) {
        long x;
        if (!cJSON_IsNumber(v) || et_json_as_long(v, 0, INT32_MAX, &x) ||
            (lim->vocab_size && (size_t)x >= lim->vocab_size)) {
            free(ids);
            return BAD(param, "invalid_token",
                       "'%s'[%zu]: token ids must be integers in [0, %zu), got %s at position %zu",
                       param, idx, lim->vocab_size, cJSON_IsNumber(v) ? "an out-of-range number"
                                                                       : et_json_type_name(v), i);
        }
        ids[i++] = (int32_t)x;
    }
    *out = ids;
    *n_out = n;
    return 0;
}

static int parse_input(serve_request *req, const cJSON *in, const char *param,
                       const serve_limits *lim, serve_error *e) {
    if (cJSON_IsString(in)) {
        req->n = 1;
        req->texts = malloc(sizeof(char *));
        req->text_lens = malloc(sizeof(size_t));
        if (!req->texts || !req->text_lens) goto oom;
        req->texts[0] = in->valuestring;
        req->text_lens[0] = strlen(in->valuestring);
        if (!req->text_lens[0]) return BAD(param, "empty_input", "'%s' is an empty string", param);
        return 0;
    }
    if (!cJSON_IsArray(in))
        return BAD(param, "invalid_type",
                   "'%s' must be a string, an array of strings, an array of token ids or an array "
                   "of token-id arrays; got %s", param, et_json_type_name(in));
    const cJSON *first = in->child;
    if (!first) return BAD(param, "empty_input", "'%s' is an empty array", param);
    size_t n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, in) n++;
    if (cJSON_IsNumber(first)) { /* one sequence of token ids */
        req->n = 1;
        req->ids = calloc(1, sizeof(int32_t *));
        req->id_lens = calloc(1, sizeof(size_t));
        if (!req->ids || !req->id_lens) goto oom;
        return parse_ids(in, param, 0, lim, &req->ids[0], &req->id_lens[0], e);
    }
    if (n > lim->max_inputs) {
        serve_error_set(e, 413, "invalid_request_error", param, "too_many_inputs",
                        "'%s' has %zu inputs, more than this server's limit of %zu per request",
                        param, n, lim->max_inputs);
        return 413;
    }
    req->n = n;
    if (cJSON_IsString(first)) {
        req->texts = malloc(n * sizeof(char *));
        req->text_lens = malloc(n * sizeof(size_t));
        if (!req->texts || !req->text_lens) goto oom;
        size_t i = 0;
        cJSON_ArrayForEach(v, in) {
            if (!cJSON_IsString(v))
                return BAD(param, "invalid_type",
                           "'%s'[%zu]: expected a string like the other inputs, got %s", param, i,
                           et_json_type_name(v));
            req->texts[i] = v->valuestring;
            req->text_lens[i] = strlen(v->valuestring);
            if (!req->text_lens[i])
                return BAD(param, "empty_input", "'%s'[%zu] is an empty string", param, i);
            i++;
        }
        return 0;
    }
    if (cJSON_IsArray(first)) {
        req->ids = calloc(n, sizeof(int32_t *));
        req->id_lens = calloc(n, sizeof(size_t));
        if (!req->ids || !req->id_lens) goto oom;
        size_t i = 0;
        cJSON_ArrayForEach(v, in) {
            if (!cJSON_IsArray(v))
                return BAD(param, "invalid_type",
                           "'%s'[%zu]: expected an array of token ids like the other inputs, got %s",
                           param, i, et_json_type_name(v));
            int rc = parse_ids(v, param, i, lim, &req->ids[i], &req->id_lens[i], e);
            if (rc) return rc;
            i++;
        }
        return 0;
    }
    return BAD(param, "invalid_type", "'%s'[0]: expected a string, a token id or a token-id array, got %s",
               param, et_json_type_name(first));
oom:
    serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
    return 500;
}

/* Optional field: absent or null leaves the default; else it must be `want`. */
static const cJSON *opt_field(const cJSON *j, const char *name) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, name);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int serve_parse_request(serve_request *req, int api, const char *body, size_t len,
                        const serve_limits *lim, serve_error *e) {
    memset(req, 0, sizeof(*req));
    req->api = api;
    req->truncate = -1;
    req->normalize = api == SERVE_TEI;
    if (len == 0) return BAD(NULL, "invalid_json", "the request body is empty: expected a JSON object");
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j) {
        size_t off = end && end >= body ? (size_t)(end - body) : 0;
        return BAD(NULL, "invalid_json", "the request body is not valid JSON (error near byte %zu)", off);
    }
    req->json = j;
    if (!cJSON_IsObject(j))
        return BAD(NULL, "invalid_json", "the request body must be a JSON object, got %s",
                   et_json_type_name(j));
    /* "input" (OpenAI) or "inputs" (TEI); either is accepted on both routes */
    const char *key = api == SERVE_TEI ? "inputs" : "input";
    const char *alt = api == SERVE_TEI ? "input" : "inputs";
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!in) {
        in = cJSON_GetObjectItemCaseSensitive(j, alt);
        if (in) key = alt;
    }
    if (!in || cJSON_IsNull(in))
        return BAD(key, "missing_field", "missing field '%s' (the text(s) to embed)", key);
    int rc = parse_input(req, in, key, lim, e);
    if (rc) return rc;

    const cJSON *v;
    if ((v = opt_field(j, "model")) && !cJSON_IsString(v))
        return BAD("model", "invalid_type", "'model' must be a string, got %s", et_json_type_name(v));
    if ((v = opt_field(j, "user")) && !cJSON_IsString(v))
        return BAD("user", "invalid_type", "'user' must be a string, got %s", et_json_type_name(v));
    if ((v = opt_field(j, "encoding_format"))) {
        if (cJSON_IsString(v) && !strcmp(v->valuestring, "float")) req->encoding = SERVE_FLOAT;
        else if (cJSON_IsString(v) && !strcmp(v->valuestring, "base64")) req->encoding = SERVE_BASE64;
        else
            return BAD("encoding_format", "invalid_value",
                       "'encoding_format' must be \"float\" or \"base64\"");
    }
    if ((v = opt_field(j, "dimensions"))) {
        long d;
        if (!cJSON_IsNumber(v) || et_json_as_long(v, 1, (long)lim->dim, &d))
            return BAD("dimensions", "invalid_value",
                       "'dimensions' must be an integer from 1 to %zu (this model's width)", lim->dim);
        req->dimensions = (size_t)d;
    }
    if ((v = opt_field(j, "input_type"))) {
        static const struct { const char *name; int type; } types[] = {
            {"query", SERVE_INPUT_QUERY},       {"search_query", SERVE_INPUT_QUERY},
            {"document", SERVE_INPUT_DOCUMENT}, {"passage", SERVE_INPUT_DOCUMENT},
            {"search_document", SERVE_INPUT_DOCUMENT}};
        int found = 0;
        for (size_t i = 0; cJSON_IsString(v) && i < ET_ARRAY_LEN(types); i++)
            if (!strcmp(v->valuestring, types[i].name)) {
                req->input_type = types[i].type;
                found = 1;
            }
        if (!found)
            return BAD("input_type", "invalid_value",
                       "'input_type' must be \"query\" or \"document\" (also accepted: "
                       "search_query, search_document, passage)");
    }
    if ((v = opt_field(j, "prompt_name"))) {
        if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > 128)
            return BAD("prompt_name", "invalid_value", "'prompt_name' must be a non-empty string");
        if (!(req->prompt_name = strdup(v->valuestring))) {
            serve_error_set(e, 500, "server_error", NULL, NULL, "out of memory");
            return 500;
        }
    }
    if ((v = opt_field(j, "truncate"))) {
        if (!cJSON_IsBool(v)) return BAD("truncate", "invalid_type", "'truncate' must be true or false");
        req->truncate = cJSON_IsTrue(v);
    }
    if ((v = opt_field(j, "truncation_direction"))) {
        if (cJSON_IsString(v) && !strcasecmp(v->valuestring, "right")) req->truncate_left = 0;
        else if (cJSON_IsString(v) && !strcasecmp(v->valuestring, "left")) req->truncate_left = 1;
        else
            return BAD("truncation_direction", "invalid_value",
                       "'truncation_direction' must be \"right\" or \"left\"");
    }
    if ((v = opt_field(j, "normalize"))) {
        if (!cJSON_IsBool(v)) return BAD("normalize", "invalid_type", "'normalize' must be true or false");
        req->normalize = cJSON_IsTrue(v);
    }
    return 0;
}

/* ---- replies ------------------------------------------------------------------------------- */

size_t serve_base64(char *out, const uint8_t *in, size_t n) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = tbl[(v >> 6) & 63];
        out[o++] = tbl[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = tbl[v >> 18];
        out[o++] = tbl[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[o++] = '=';
    }
    out[o] = 0;
    return o;
}

/* A JSON array of floats; %.9g round-trips every float32 exactly. */
static int append_floats(et_buf *b, const float *v, size_t n, et_error *err) {
    size_t need;
    if (!et_size_mul(n, 18, &need) || et_buf_reserve(b, need + 2, err))
        return err ? (err->code ? err->code : ET_ENOMEM) : ET_ENOMEM;
    char *p = b->data + b->len;
    *p++ = '[';
    for (size_t i = 0; i < n; i++) {
        if (i) *p++ = ',';
        p += snprintf(p, 17, "%.9g", (double)v[i]);
    }
    *p++ = ']';
    *p = 0;
    b->len = (size_t)(p - b->data);
    return ET_OK;
}

int serve_format_openai(et_buf *b, const float *vecs, size_t n, size_t dims, int encoding,
                        const char *model, size_t prompt_tokens, et_error *err) {
    int rc = et_buf_puts(b, "{\"object\":\"list\",\"data\":[", err);
    char *b64 = NULL;
    if (!rc && encoding == SERVE_BASE64) {
        size_t bytes = dims * sizeof(float);
        b64 = et_malloc((bytes + 2) / 3 * 4 + 1, err);
        if (!b64) rc = ET_ENOMEM;
    }
    uint8_t *le = encoding == SERVE_BASE64 && !rc ? et_malloc(dims * sizeof(float), err) : NULL;
    if (encoding == SERVE_BASE64 && !rc && !le) rc = ET_ENOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        rc = et_buf_printf(b, err, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":",
                           i ? "," : "", i);
        if (rc) break;
        const float *v = vecs + (size_t)i * dims;
        if (encoding == SERVE_BASE64) {
            for (size_t k = 0; k < dims; k++) { /* little-endian float32, whatever the host */
                uint32_t u;
                memcpy(&u, &v[k], 4);
                le[4 * k] = (uint8_t)u;
                le[4 * k + 1] = (uint8_t)(u >> 8);
                le[4 * k + 2] = (uint8_t)(u >> 16);
                le[4 * k + 3] = (uint8_t)(u >> 24);
            }
            size_t m = serve_base64(b64, le, dims * sizeof(float));
            rc = et_buf_puts(b, "\"", err);
            if (!rc) rc = et_buf_append(b, b64, m, err);
            if (!rc) rc = et_buf_puts(b, "\"", err);
        } else {
            rc = append_floats(b, v, dims, err);
        }
        if (!rc) rc = et_buf_puts(b, "}", err);
    }
    if (!rc) rc = et_buf_puts(b, "],\"model\":", err);
    if (!rc) rc = et_buf_json_string(b, model, strlen(model), err);
    if (!rc)
        rc = et_buf_printf(b, err, ",\"usage\":{\"prompt_tokens\":%zu,\"total_tokens\":%zu}}",
                           prompt_tokens, prompt_tokens);
    free(b64);
    free(le);
    return rc;
}

int serve_format_tei(et_buf *b, const float *vecs, size_t n, size_t dims, et_error *err) {
    int rc = et_buf_puts(b, "[", err);
    for (size_t i = 0; !rc && i < n; i++) {
        if (i) rc = et_buf_puts(b, ",", err);
        if (!rc) rc = append_floats(b, vecs + (size_t)i * dims, dims, err);
    }
    if (!rc) rc = et_buf_puts(b, "]", err);
    return rc;
}

static const char *tei_error_type(const serve_error *e) {
    switch (e->status) {
    case 400: return e->code && !strcmp(e->code, "empty_input") ? "Empty" : "Validation";
    case 401: return "Unauthorized";
    case 404: case 405: return "NotFound";
    case 413: return "Validation";
    case 503: return "Unhealthy";
    default: return "Backend";
    }
}

int serve_format_error(et_buf *b, int api, const serve_error *e, et_error *err) {
    int rc;
    if (api == SERVE_TEI) {
        rc = et_buf_puts(b, "{\"error\":", err);
        if (!rc) rc = et_buf_json_string(b, e->message, strlen(e->message), err);
        if (!rc) rc = et_buf_printf(b, err, ",\"error_type\":\"%s\"}", tei_error_type(e));
        return rc;
    }
    rc = et_buf_puts(b, "{\"error\":{\"message\":", err);
    if (!rc) rc = et_buf_json_string(b, e->message, strlen(e->message), err);
    if (!rc) rc = et_buf_printf(b, err, ",\"type\":\"%s\",\"param\":", e->type ? e->type : "server_error");
    if (!rc) rc = e->param ? et_buf_json_string(b, e->param, strlen(e->param), err) : et_buf_puts(b, "null", err);
    if (!rc) rc = et_buf_puts(b, ",\"code\":", err);
    if (!rc) rc = e->code ? et_buf_json_string(b, e->code, strlen(e->code), err) : et_buf_puts(b, "null", err);
    if (!rc) rc = et_buf_puts(b, "}}", err);
    return rc;
}
