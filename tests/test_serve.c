/* test_serve.c - the HTTP layer of `embtune serve` with a fake embedding backend
 * (deterministic vectors computed from token ids), driven by libcurl over loopback:
 * every route, every error path, auth, base64, dimensions, prompts/adapter, token-id
 * inputs, limits, truncation, concurrent requests checked against their own inputs,
 * dynamic batching, and a drain with requests in flight. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "serve.h"
#include "test_util.h"

/* ---- fake backend: words -> ids, ids -> vectors ------------------------------------------- */

typedef struct fake {
    size_t dim, max_length, vocab;
    int delay_ms;           /* per embed_ids call, to create batching / in-flight requests */
    pthread_mutex_t mu;
    size_t calls;
} fake;

static int fake_encode(void *ctx, const char *text, size_t len, size_t max_len, et_encoding *enc, et_error *err) {
    fake *f = ctx;
    (void)err;
    size_t cap = len + 2;
    if (enc->cap < cap) {
        enc->ids = realloc(enc->ids, cap * sizeof(int32_t));
        enc->special_mask = realloc(enc->special_mask, cap);
        enc->cap = cap;
    }
    size_t n = 0;
    enc->ids[n] = 1, enc->special_mask[n++] = 1; /* [CLS] */
    for (size_t i = 0; i < len;) {
        while (i < len && text[i] == ' ') i++;
        if (i >= len) break;
        uint32_t h = 2166136261u;
        while (i < len && text[i] != ' ') h = (h ^ (unsigned char)text[i++]) * 16777619u;
        enc->ids[n] = (int32_t)(3 + h % (uint32_t)(f->vocab - 3));
        enc->special_mask[n++] = 0;
    }
    enc->ids[n] = 2, enc->special_mask[n++] = 1; /* [SEP] */
    if (max_len && n > max_len) { /* HF truncation: keep [CLS] .. [SEP] */
        enc->ids[max_len - 1] = 2;
        enc->special_mask[max_len - 1] = 1;
        n = max_len;
    }
    enc->n = n;
    return 0;
}

static int fake_tokenize(void *ctx, et_encoding *enc, const char *text, size_t len, size_t max_len, int left,
                         int32_t **ids, size_t *n, size_t *n_full, et_error *err) {
    fake_encode(ctx, text, len, 0, enc, err);
    *n_full = enc->n;
    if (max_len && enc->n > max_len) {
        if (left) return serve_cut_left(enc, max_len, ids, n) ? ET_ENOMEM : 0;
        fake_encode(ctx, text, len, max_len, enc, err);
    }
    *n = enc->n;
    return (*ids = serve_copy_ids(enc->ids, enc->n)) ? 0 : ET_ENOMEM;
}

static void fake_encoding_free(void *ctx, et_encoding *enc) {
    (void)ctx;
    free(enc->ids);
    free(enc->special_mask);
    memset(enc, 0, sizeof(*enc));
}

static void fake_vec(const fake *f, const int32_t *ids, size_t n, float *v) {
    double ss = 0;
    for (size_t k = 0; k < f->dim; k++) {
        double a = 0;
        for (size_t t = 0; t < n; t++) a += cos(0.37 * ids[t] * (double)(k + 1) + 0.01 * (double)t);
        v[k] = (float)(a / (double)n + 0.05 * (double)k);
        ss += (double)v[k] * v[k];
    }
    for (size_t k = 0; k < f->dim; k++) v[k] = (float)(v[k] / sqrt(ss) * 0.5); /* not unit norm */
}

static int fake_embed(void *ctx, const int32_t *const *ids, const size_t *lens, size_t n, float *out, et_error *err) {
    fake *f = ctx;
    (void)err;
    if (f->delay_ms) usleep((useconds_t)f->delay_ms * 1000);
    for (size_t i = 0; i < n; i++) fake_vec(f, ids[i], lens[i], out + i * f->dim);
    return 0;
}

/* the server's forward passes (counted; the test's own reference calls are not) */
static int fake_embed_srv(void *ctx, const int32_t *const *ids, const size_t *lens, size_t n, float *out,
                          et_error *err) {
    fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->calls++;
    pthread_mutex_unlock(&f->mu);
    return fake_embed(ctx, ids, lens, n, out, err);
}

static const char *fake_prompt(void *ctx, const char *name) {
    (void)ctx;
    if (!strcmp(name, "query")) return "query: ";
    if (!strcmp(name, "custom")) return "custom prompt: ";
    return NULL;
}

static int fake_adapt(void *ctx, float *v, size_t n, int is_query, et_error *err) {
    fake *f = ctx;
    (void)err;
    if (!is_query) return 0;
    for (size_t i = 0; i < n; i++) /* reverse each vector: easy to check */
        for (size_t a = 0, b = f->dim - 1; a < b; a++, b--) {
            float t = v[i * f->dim + a];
            v[i * f->dim + a] = v[i * f->dim + b];
            v[i * f->dim + b] = t;
        }
    return 0;
}

static fake F = {.dim = 16, .max_length = 12, .vocab = 1000, .mu = PTHREAD_MUTEX_INITIALIZER};

static serve_backend backend(fake *f) {
    serve_backend be = {.ctx = f, .dim = f->dim, .max_length = f->max_length, .vocab_size = f->vocab,
                        .tokenize = fake_tokenize, .encoding_free = fake_encoding_free, .tokenize_threadsafe = 1,
                        .embed_ids = fake_embed_srv, .prompt = fake_prompt, .adapt = fake_adapt};
    return be;
}

/* expected vector of a text (prompt prepended, truncated to limit, optional adapter) */
static void expect_text(const char *prompt, const char *text, size_t limit, int adapt, float *v) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s%s", prompt ? prompt : "", text);
    et_encoding enc = {0};
    fake_encode(&F, buf, strlen(buf), limit, &enc, NULL);
    const int32_t *ids = enc.ids;
    fake_embed(&F, &ids, &enc.n, 1, v, NULL);
    if (adapt) fake_adapt(&F, v, 1, 1, NULL);
    fake_encoding_free(&F, &enc);
}

static void normalize(float *v, size_t n) {
    double ss = 0;
    for (size_t k = 0; k < n; k++) ss += (double)v[k] * v[k];
    for (size_t k = 0; k < n; k++) v[k] = (float)(v[k] / sqrt(ss));
}

/* ---- a tiny HTTP client ---------------------------------------------------------------------- */

typedef struct reply {
    long status;
    et_buf body;
    et_buf headers;
    int curl_rc;
} reply;

static size_t on_body(char *p, size_t s, size_t n, void *ud) {
    et_buf_append(ud, p, s * n, NULL);
    return s * n;
}

static void http(int port, const char *method, const char *path, const char *body, const char *auth, reply *r) {
    memset(r, 0, sizeof(*r));
    CURL *c = curl_easy_init();
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char ah[256];
    if (auth) {
        snprintf(ah, sizeof(ah), "Authorization: %s", auth);
        h = curl_slist_append(h, ah);
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    r->curl_rc = (int)curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static void reply_free(reply *r) {
    et_buf_free(&r->body);
    et_buf_free(&r->headers);
}

/* the floats of data[i].embedding (OpenAI, float or base64) or row i (TEI) */
static size_t get_vec(const cJSON *j, int tei, size_t i, float *v, size_t cap) {
    const cJSON *e;
    if (tei) e = cJSON_GetArrayItem(j, (int)i);
    else e = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), (int)i), "embedding");
    if (cJSON_IsString(e)) { /* base64 little-endian float32 */
        static const char *tbl = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const char *s = e->valuestring;
        uint8_t bytes[4096];
        size_t nb = 0;
        uint32_t acc = 0;
        int bits = 0;
        for (; *s && *s != '='; s++) {
            const char *p = strchr(tbl, *s);
            if (!p) return 0;
            acc = acc << 6 | (uint32_t)(p - tbl);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                bytes[nb++] = (uint8_t)(acc >> bits);
            }
        }
        size_t n = nb / 4;
        for (size_t k = 0; k < n && k < cap; k++) {
            uint32_t u = bytes[4 * k] | (uint32_t)bytes[4 * k + 1] << 8 | (uint32_t)bytes[4 * k + 2] << 16 |
                         (uint32_t)bytes[4 * k + 3] << 24;
            memcpy(&v[k], &u, 4);
        }
        return n;
    }
    size_t n = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, e) {
        if (n < cap) v[n] = (float)x->valuedouble;
        n++;
    }
    return n;
}

static int vec_eq(const float *a, const float *b, size_t n, double tol) {
    for (size_t k = 0; k < n; k++)
        if (!(fabs((double)a[k] - (double)b[k]) <= tol)) return 0;
    return 1;
}

/* POST and expect an error: status, and for OpenAI an error object with message/type/param/code */
static void expect_error(int port, const char *path, const char *body, long status, const char *param, const char *what) {
    reply r;
    http(port, "POST", path, body, NULL, &r);
    TEST_CHECK(r.status == status, "%s: status %ld, expected %ld (%s)", what, r.status, status,
               r.body.data ? r.body.data : "");
    cJSON *j = r.body.data ? cJSON_Parse(r.body.data) : NULL;
    if (strstr(path, "/embed") == path) {
        TEST_CHECK(j && cJSON_IsString(cJSON_GetObjectItem(j, "error")) &&
                       cJSON_IsString(cJSON_GetObjectItem(j, "error_type")),
                   "%s: TEI error shape: %s", what, r.body.data ? r.body.data : "");
    } else {
        const cJSON *e = j ? cJSON_GetObjectItem(j, "error") : NULL;
        TEST_CHECK(e && cJSON_IsString(cJSON_GetObjectItem(e, "message")) &&
                       cJSON_IsString(cJSON_GetObjectItem(e, "type")) && cJSON_GetObjectItem(e, "param") &&
                       cJSON_GetObjectItem(e, "code"),
                   "%s: OpenAI error shape: %s", what, r.body.data ? r.body.data : "");
        if (e && param) {
            const cJSON *p = cJSON_GetObjectItem(e, "param");
            TEST_CHECK(cJSON_IsString(p) && !strcmp(p->valuestring, param), "%s: param %s, expected %s", what,
                       cJSON_IsString(p) ? p->valuestring : "null", param);
        }
    }
    cJSON_Delete(j);
    reply_free(&r);
}

/* POST an OpenAI request and compare data[i] with expected rows */
static void expect_vectors(int port, const char *path, const char *body, const float *want, size_t n, size_t dims,
                           double tol, const char *what) {
    reply r;
    http(port, "POST", path, body, NULL, &r);
    TEST_CHECK(r.status == 200, "%s: status %ld (%s)", what, r.status, r.body.data ? r.body.data : "");
    cJSON *j = r.body.data ? cJSON_Parse(r.body.data) : NULL;
    int tei = !strcmp(path, "/embed");
    TEST_CHECK(j != NULL, "%s: reply is JSON", what);
    for (size_t i = 0; j && i < n; i++) {
        float v[64];
        size_t got = get_vec(j, tei, i, v, 64);
        TEST_CHECK(got == dims, "%s: row %zu has %zu values, expected %zu", what, i, got, dims);
        TEST_CHECK(got == dims && vec_eq(v, want + i * dims, dims, tol), "%s: row %zu differs", what, i);
        if (!tei) {
            const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), (int)i);
            TEST_CHECK(cJSON_GetObjectItem(d, "index") && cJSON_GetObjectItem(d, "index")->valueint == (int)i,
                       "%s: index", what);
        }
    }
    cJSON_Delete(j);
    reply_free(&r);
}

/* ---- concurrency ------------------------------------------------------------------------------- */

typedef struct client_task {
    int port, id, n_req, ok, bad;
} client_task;

static void *client_main(void *arg) {
    client_task *t = arg;
    for (int q = 0; q < t->n_req; q++) {
        char text[128], body[256];
        snprintf(text, sizeof(text), "client %d request %d words %d", t->id, q, t->id * 31 + q);
        snprintf(body, sizeof(body), "{\"input\":[\"%s\",\"second %s\"]}", text, text);
        reply r;
        http(t->port, "POST", "/v1/embeddings", body, NULL, &r);
        cJSON *j = r.status == 200 && r.body.data ? cJSON_Parse(r.body.data) : NULL;
        int good = j != NULL;
        for (int i = 0; good && i < 2; i++) {
            char t2[160];
            snprintf(t2, sizeof(t2), i ? "second %s" : "%s", text);
            float want[16], got[64];
            expect_text(NULL, t2, F.max_length, 0, want);
            good = get_vec(j, 0, (size_t)i, got, 64) == 16 && vec_eq(got, want, 16, 0);
        }
        if (good) t->ok++;
        else t->bad++;
        cJSON_Delete(j);
        reply_free(&r);
    }
    return NULL;
}

/* a client that gives up after 150 ms */
static void *impatient_main(void *arg) {
    int port = *(int *)arg;
    CURL *c = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/embeddings", port);
    et_buf body = {0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "{\"input\":\"abandoned\"}");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 150L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_perform(c);
    curl_easy_cleanup(c);
    et_buf_free(&body);
    return NULL;
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    serve_backend be = backend(&F);
    et_error err = {0};
    et_server *s = NULL;
    et_serve_opts o = {.port = 0, .model_name = "fake-model", .max_inputs = 4, .max_body = 4096,
                       .max_tokens = 8, .max_wait_ms = -1};
    TEST_CHECK(serve_start_backend(&s, &be, &o, &err) == ET_OK, "start: %s", err.msg);
    if (!s) return test_summary("test_serve");
    int port = et_server_port(s);
    TEST_CHECK(port > 0, "bound port %d", port);
    reply r;

    /* routes */
    http(port, "GET", "/health", NULL, NULL, &r);
    TEST_CHECK(r.status == 200 && strstr(r.body.data, "\"ok\""), "health: %ld", r.status);
    reply_free(&r);
    http(port, "GET", "/v1/models", NULL, NULL, &r);
    TEST_CHECK(r.status == 200 && strstr(r.body.data, "\"fake-model\"") && strstr(r.body.data, "\"dimensions\":16"),
               "models: %s", r.body.data ? r.body.data : "");
    reply_free(&r);
    http(port, "GET", "/nope", NULL, NULL, &r);
    TEST_CHECK(r.status == 404 && strstr(r.body.data, "\"error\""), "404: %ld", r.status);
    reply_free(&r);
    http(port, "GET", "/v1/embeddings", NULL, NULL, &r);
    TEST_CHECK(r.status == 405 && strstr(r.headers.data, "Allow: POST"), "405: %ld", r.status);
    reply_free(&r);

    /* vectors: one string, a batch, usage */
    float want[4 * 16];
    expect_text(NULL, "hello world", 8, 0, want);
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"hello world\",\"model\":\"x\"}", want, 1, 16, 0, "single");
    const char *texts[3] = {"a b c", "the quick brown fox", "zeta"};
    for (int i = 0; i < 3; i++) expect_text(NULL, texts[i], 8, 0, want + i * 16);
    expect_vectors(port, "/v1/embeddings", "{\"input\":[\"a b c\",\"the quick brown fox\",\"zeta\"]}", want, 3, 16, 0,
                   "batch");
    expect_vectors(port, "/embeddings", "{\"input\":[\"a b c\",\"the quick brown fox\",\"zeta\"]}", want, 3, 16, 0,
                   "/embeddings alias");
    http(port, "POST", "/v1/embeddings", "{\"input\":[\"a b c\",\"zeta\"]}", NULL, &r);
    TEST_CHECK(r.status == 200 && strstr(r.body.data, "\"prompt_tokens\":8,\"total_tokens\":8") &&
                   strstr(r.body.data, "\"model\":\"fake-model\"") && strstr(r.body.data, "\"object\":\"list\""),
               "usage (5+3 tokens): %s", r.body.data ? r.body.data : "");
    reply_free(&r);
    /* base64 = exact little-endian float32 */
    expect_vectors(port, "/v1/embeddings", "{\"input\":[\"a b c\",\"the quick brown fox\"],\"encoding_format\":\"base64\"}",
                   want, 2, 16, 0, "base64");
    /* dimensions: truncated and re-normalized */
    float d5[3 * 5];
    for (int i = 0; i < 3; i++) {
        memcpy(d5 + i * 5, want + i * 16, 5 * sizeof(float));
        normalize(d5 + i * 5, 5);
    }
    expect_vectors(port, "/v1/embeddings", "{\"input\":[\"a b c\",\"the quick brown fox\",\"zeta\"],\"dimensions\":5}",
                   d5, 3, 5, 1e-6, "dimensions");
    expect_vectors(port, "/v1/embeddings",
                   "{\"input\":[\"a b c\",\"the quick brown fox\"],\"dimensions\":5,\"encoding_format\":\"base64\"}",
                   d5, 2, 5, 1e-6, "dimensions + base64");
    /* queries: the query prompt and the adapter; documents: no prompt defined here */
    float q[16];
    expect_text("query: ", "what is r", 8, 1, q);
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"what is r\",\"input_type\":\"query\"}", q, 1, 16, 0, "query");
    expect_vectors(port, "/embed", "{\"inputs\":\"what is r\",\"prompt_name\":\"query\",\"normalize\":false}", q, 1, 16,
                   0, "TEI prompt_name query");
    expect_text(NULL, "what is r", 8, 0, q);
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"what is r\",\"input_type\":\"document\"}", q, 1, 16, 0,
                   "document");
    expect_text("custom prompt: ", "what", 8, 0, q);
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"what\",\"prompt_name\":\"custom\"}", q, 1, 16, 0, "custom prompt");
    /* TEI: normalized by default, a list even for one string */
    expect_text(NULL, "hello world", 8, 0, q);
    normalize(q, 16);
    expect_vectors(port, "/embed", "{\"inputs\":\"hello world\"}", q, 1, 16, 1e-6, "TEI normalized");
    expect_text(NULL, "hello world", 8, 0, q);
    expect_vectors(port, "/embed", "{\"inputs\":[\"hello world\"],\"normalize\":false}", q, 1, 16, 0, "TEI raw");
    /* token ids */
    int32_t ids[4] = {1, 5, 7, 2};
    const int32_t *idp = ids;
    size_t nid = 4;
    fake_embed(&F, &idp, &nid, 1, q, NULL);
    expect_vectors(port, "/v1/embeddings", "{\"input\":[1,5,7,2]}", q, 1, 16, 0, "token ids");
    expect_vectors(port, "/v1/embeddings", "{\"input\":[[1,5,7,2],[1,5,7,2]],\"encoding_format\":\"base64\"}", q, 1, 16,
                   0, "token id arrays");
    /* truncation at max_tokens = 8: default cut (keeps [CLS] ... [SEP]) */
    const char *longt = "one two three four five six seven eight nine ten";
    expect_text(NULL, longt, 8, 0, q);
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"one two three four five six seven eight nine ten\"}", q, 1, 16,
                   0, "truncated right");
    /* left truncation keeps [CLS] + the last 6 words + [SEP] */
    expect_text(NULL, "five six seven eight nine ten", 8, 0, q);
    expect_vectors(port, "/embed",
                   "{\"inputs\":\"one two three four five six seven eight nine ten\",\"truncation_direction\":\"left\","
                   "\"normalize\":false}",
                   q, 1, 16, 0, "truncated left");
    expect_error(port, "/v1/embeddings", "{\"input\":[\"ok\",\"one two three four five six seven eight nine ten\"],"
                 "\"truncate\":false}", 413, "input", "too long, truncate false");

    /* malformed requests */
    expect_error(port, "/v1/embeddings", "{\"input\": [\"a\",", 400, NULL, "malformed JSON");
    expect_error(port, "/v1/embeddings", "", 400, NULL, "empty body");
    expect_error(port, "/v1/embeddings", "[\"a\"]", 400, NULL, "not an object");
    expect_error(port, "/v1/embeddings", "{\"model\":\"m\"}", 400, "input", "missing input");
    expect_error(port, "/v1/embeddings", "{\"input\":null}", 400, "input", "null input");
    expect_error(port, "/v1/embeddings", "{\"input\":5}", 400, "input", "number input");
    expect_error(port, "/v1/embeddings", "{\"input\":[]}", 400, "input", "empty array");
    expect_error(port, "/v1/embeddings", "{\"input\":\"\"}", 400, "input", "empty string");
    expect_error(port, "/v1/embeddings", "{\"input\":[\"a\",\"\"]}", 400, "input", "empty string in array");
    expect_error(port, "/v1/embeddings", "{\"input\":[\"a\",3]}", 400, "input", "mixed array");
    expect_error(port, "/v1/embeddings", "{\"input\":[1,\"a\"]}", 400, "input", "mixed ids");
    expect_error(port, "/v1/embeddings", "{\"input\":[[1,2],[]]}", 400, "input", "empty id array");
    expect_error(port, "/v1/embeddings", "{\"input\":[1,1000]}", 400, "input", "id out of range");
    expect_error(port, "/v1/embeddings", "{\"input\":[1,-1]}", 400, "input", "negative id");
    expect_error(port, "/v1/embeddings", "{\"input\":[1,2.5]}", 400, "input", "fractional id");
    expect_error(port, "/v1/embeddings", "{\"input\":[{\"a\":1}]}", 400, "input", "object in array");
    expect_error(port, "/v1/embeddings", "{\"input\":\"a\",\"encoding_format\":\"hex\"}", 400, "encoding_format", "bad format");
    expect_error(port, "/v1/embeddings", "{\"input\":\"a\",\"dimensions\":0}", 400, "dimensions", "dimensions 0");
    expect_error(port, "/v1/embeddings", "{\"input\":\"a\",\"dimensions\":17}", 400, "dimensions", "dimensions > dim");
    expect_error(port, "/v1/embeddings", "{\"input\":\"a\",\"dimensions\":\"5\"}", 400, "dimensions", "dimensions string");
    expect_error(port, "/v1/embeddings", "{\"input\":\"a\",\"model\":5}", 400, "model", "model number");
    expect_error(port, "/v1/embeddings", "{\"input\":\"a\",\"input_type\":\"code\"}", 400, "input_type", "input_type");
    expect_error(port, "/v1/embeddings", "{\"input\":\"a\",\"prompt_name\":\"nope\"}", 400, "prompt_name", "unknown prompt");
    expect_error(port, "/v1/embeddings", "{\"input\":[1,2],\"input_type\":\"query\"}", 400, "input_type",
                 "prompt on token ids");
    expect_error(port, "/v1/embeddings", "{\"input\":\"a\",\"truncate\":\"yes\"}", 400, "truncate", "truncate type");
    expect_error(port, "/embed", "{\"inputs\":[]}", 400, NULL, "TEI empty");
    expect_error(port, "/embed", "{\"inputs\":\"a\",\"normalize\":1}", 400, NULL, "TEI normalize type");
    /* limits */
    expect_error(port, "/v1/embeddings", "{\"input\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 413, "input", "too many inputs");
    char big[5000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    memcpy(big, "{\"input\":\"", 10);
    memcpy(big + sizeof(big) - 3, "\"}", 2);
    expect_error(port, "/v1/embeddings", big, 413, NULL, "body too large");
    expect_error(port, "/embed", big, 413, NULL, "TEI body too large");
    http(port, "GET", "/health", NULL, NULL, &r); /* still serving */
    TEST_CHECK(r.status == 200, "health after errors: %ld", r.status);
    reply_free(&r);

    /* concurrency: every reply checked against its own inputs; requests get merged */
    et_server_free(s);
    s = NULL;
    F.delay_ms = 20;
    et_serve_opts o2 = {.port = 0, .max_batch = 64, .max_wait_ms = 10};
    TEST_CHECK(serve_start_backend(&s, &be, &o2, &err) == ET_OK, "start 2: %s", err.msg);
    port = et_server_port(s);
    enum { NCLI = 16, NREQ = 6 };
    pthread_t th[NCLI];
    client_task ct[NCLI];
    for (int i = 0; i < NCLI; i++) {
        ct[i] = (client_task){.port = port, .id = i, .n_req = NREQ};
        pthread_create(&th[i], NULL, client_main, &ct[i]);
    }
    int ok = 0, bad = 0;
    for (int i = 0; i < NCLI; i++) {
        pthread_join(th[i], NULL);
        ok += ct[i].ok;
        bad += ct[i].bad;
    }
    serve_stats st;
    serve_get_stats(s, &st);
    printf("concurrent: %d ok, %d bad; %llu jobs in %llu forward passes, at most %llu merged\n", ok, bad,
           (unsigned long long)st.jobs, (unsigned long long)st.batches, (unsigned long long)st.max_batch_jobs);
    TEST_CHECK(ok == NCLI * NREQ && bad == 0, "concurrent replies: %d ok, %d bad", ok, bad);
    TEST_CHECK(st.jobs == NCLI * NREQ && st.batches < st.jobs && st.max_batch_jobs >= 2,
               "requests were batched (%llu jobs, %llu batches)", (unsigned long long)st.jobs,
               (unsigned long long)st.batches);

    /* drain with requests in flight: every accepted request is answered, then no new ones */
    F.delay_ms = 150;
    for (int i = 0; i < 8; i++) {
        ct[i] = (client_task){.port = port, .id = 100 + i, .n_req = 1};
        pthread_create(&th[i], NULL, client_main, &ct[i]);
    }
    usleep(60 * 1000);
    TEST_CHECK(et_server_drain(s, 10) == ET_OK, "drain finished in time");
    ok = bad = 0;
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        ok += ct[i].ok;
        bad += ct[i].bad;
    }
    TEST_CHECK(ok == 8 && bad == 0, "in-flight requests answered during drain: %d ok, %d bad", ok, bad);
    http(port, "GET", "/health", NULL, NULL, &r);
    TEST_CHECK(r.status == 0 || r.status == 503, "after drain: new requests refused (%ld)", r.status);
    reply_free(&r);
    et_server_free(s);

    /* clients that give up while queued are dropped without computing their request */
    et_serve_opts o5 = {.port = 0, .max_wait_ms = 0};
    TEST_CHECK(serve_start_backend(&s, &be, &o5, &err) == ET_OK, "start 5: %s", err.msg);
    port = et_server_port(s);
    F.delay_ms = 400;
    ct[0] = (client_task){.port = port, .id = 200, .n_req = 1};
    pthread_create(&th[0], NULL, client_main, &ct[0]);
    usleep(100 * 1000); /* the first request is now in the forward pass */
    size_t calls0 = F.calls;
    pthread_t qt[4];
    for (int i = 0; i < 4; i++) pthread_create(&qt[i], NULL, impatient_main, &port);
    for (int i = 0; i < 4; i++) pthread_join(qt[i], NULL);
    pthread_join(th[0], NULL);
    usleep(100 * 1000);
    serve_get_stats(s, &st);
    TEST_CHECK(ct[0].ok == 1, "the patient request was answered");
    TEST_CHECK(st.cancelled == 4 && F.calls == calls0,
               "4 abandoned requests dropped without a forward pass (cancelled %llu, forward passes %zu)",
               (unsigned long long)st.cancelled, F.calls - calls0);
    et_server_free(s);
    F.delay_ms = 0;

    /* the batching wait is bounded: a client that sent its headers and then stalls in the
     * middle of its body counts as "a request arriving", yet must not hold back a queued
     * request beyond max_wait_ms (1 s here; the client gives up after 20 s) */
    et_serve_opts o6 = {.port = 0, .max_wait_ms = 1000};
    TEST_CHECK(serve_start_backend(&s, &be, &o6, &err) == ET_OK, "start 6: %s", err.msg);
    port = et_server_port(s);
    int sk = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const char stall[] = "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         "Content-Length: 100\r\n\r\n{\"input\": \"sta";
    TEST_CHECK(sk >= 0 && connect(sk, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
                   write(sk, stall, sizeof(stall) - 1) == (ssize_t)(sizeof(stall) - 1),
               "stalled client connected");
    usleep(200 * 1000); /* its headers are in: the server counts it as incoming */
    expect_text(NULL, "not held back", 8, 0, q);
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"not held back\"}", q, 1, 16, 0,
                   "a request queued while another client stalls mid-body is answered");
    /* the stalled client was kept waiting, not dropped: its body completes and gets a 200 */
    char rest[100 - (sizeof("{\"input\": \"sta") - 1) + 1];
    memset(rest, ' ', sizeof(rest) - 1);
    rest[sizeof(rest) - 1] = 0;
    memcpy(rest, "lled\"}", 6);
    struct timeval tv = {.tv_sec = 20};
    char resp[64] = {0};
    size_t got = 0;
    if (sk >= 0) {
        setsockopt(sk, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (write(sk, rest, sizeof(rest) - 1) == (ssize_t)(sizeof(rest) - 1))
            for (ssize_t k; got < 12 && (k = read(sk, resp + got, sizeof(resp) - 1 - got)) > 0;) got += (size_t)k;
    }
    TEST_CHECK(got >= 12 && !strncmp(resp, "HTTP/1.1 200", 12), "the stalled request completes later: '%.12s'", resp);
    if (sk >= 0) close(sk);
    et_server_free(s);

    /* token-id inputs longer than the limit: cut by default, 413 with truncate false */
    et_serve_opts o7 = {.port = 0, .max_tokens = 8, .max_wait_ms = 0};
    TEST_CHECK(serve_start_backend(&s, &be, &o7, &err) == ET_OK, "start 7: %s", err.msg);
    port = et_server_port(s);
    int32_t ids10[10] = {1, 11, 12, 13, 14, 15, 16, 17, 18, 2};
    idp = ids10;
    nid = 8;
    fake_embed(&F, &idp, &nid, 1, q, NULL);
    expect_vectors(port, "/v1/embeddings", "{\"input\":[1,11,12,13,14,15,16,17,18,2]}", q, 1, 16, 0,
                   "10 token ids cut to the first 8");
    idp = ids10 + 2;
    fake_embed(&F, &idp, &nid, 1, q, NULL);
    expect_vectors(port, "/embed", "{\"inputs\":[1,11,12,13,14,15,16,17,18,2],\"truncation_direction\":\"left\","
                   "\"normalize\":false}", q, 1, 16, 0, "10 token ids cut to the last 8");
    expect_error(port, "/v1/embeddings", "{\"input\":[[1,2],[1,11,12,13,14,15,16,17,18,2]],\"truncate\":false}", 413,
                 "input", "token ids over the limit with truncate false");
    et_server_free(s);

    /* API key */
    F.delay_ms = 0;
    et_serve_opts o3 = {.port = 0, .api_key = "sekret-key", .max_wait_ms = 0};
    TEST_CHECK(serve_start_backend(&s, &be, &o3, &err) == ET_OK, "start 3: %s", err.msg);
    port = et_server_port(s);
    http(port, "POST", "/v1/embeddings", "{\"input\":\"a\"}", NULL, &r);
    TEST_CHECK(r.status == 401 && strstr(r.body.data, "invalid_api_key") && strstr(r.headers.data, "WWW-Authenticate"),
               "no key: %ld", r.status);
    TEST_CHECK(!strstr(r.body.data, "sekret"), "the key is not echoed");
    reply_free(&r);
    http(port, "POST", "/v1/embeddings", "{\"input\":\"a\"}", "Bearer sekret-kez", &r);
    TEST_CHECK(r.status == 401, "wrong key: %ld", r.status);
    reply_free(&r);
    http(port, "POST", "/v1/embeddings", "{\"input\":\"a\"}", "Bearer sekret-key-longer", &r);
    TEST_CHECK(r.status == 401, "longer key: %ld", r.status);
    reply_free(&r);
    http(port, "GET", "/v1/models", NULL, "Basic sekret-key", &r);
    TEST_CHECK(r.status == 401, "basic auth: %ld", r.status);
    reply_free(&r);
    http(port, "POST", "/v1/embeddings", "{\"input\":\"a\"}", "Bearer sekret-key", &r);
    TEST_CHECK(r.status == 200, "right key: %ld", r.status);
    reply_free(&r);
    http(port, "POST", "/embed", "{\"inputs\":\"a\"}", "bearer sekret-key", &r);
    TEST_CHECK(r.status == 200, "right key, lowercase scheme, TEI: %ld", r.status);
    reply_free(&r);
    http(port, "GET", "/health", NULL, NULL, &r);
    TEST_CHECK(r.status == 200, "health needs no key: %ld", r.status);
    reply_free(&r);
    et_server_free(s);

    /* no truncation by default (--no-truncate); the request may still ask for it.
     * And a model with a default prompt: used unless the request selects another */
    et_serve_opts o4 = {.port = 0, .no_truncate = 1, .max_wait_ms = 0};
    serve_backend be4 = be;
    be4.default_prompt = "default: ";
    TEST_CHECK(serve_start_backend(&s, &be4, &o4, &err) == ET_OK, "start 4: %s", err.msg);
    port = et_server_port(s);
    expect_text("default: ", "x y", 12, 0, q);
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"x y\"}", q, 1, 16, 0, "default prompt");
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"x y\",\"input_type\":\"document\"}", q, 1, 16, 0,
                   "default prompt for documents without a document prompt");
    expect_text("query: ", "x y", 12, 1, q);
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"x y\",\"input_type\":\"query\"}", q, 1, 16, 0,
                   "query prompt wins over the default");
    char lb[512];
    snprintf(lb, sizeof(lb), "{\"input\":\"%s eleven twelve\"}", longt); /* 14 tokens > 12 */
    expect_error(port, "/v1/embeddings", lb, 413, "input", "no-truncate server");
    expect_text("default: ", "one two three four five six seven eight nine ten eleven twelve", 12, 0, q);
    snprintf(lb, sizeof(lb), "{\"input\":\"%s eleven twelve\",\"truncate\":true}", longt);
    expect_vectors(port, "/v1/embeddings", lb, q, 1, 16, 0, "truncate: true overrides");
    et_server_free(s);

    /* a model whose pooling leaves the prompt out (include_prompt: false): a request that
     * would apply a prompt gets 501, never vectors that differ from `embtune embed`'s;
     * requests without a prompt are served as usual */
    serve_backend be7 = be;
    be7.prompt_excluded = 1;
    et_serve_opts o_px = {.port = 0, .max_wait_ms = 0};
    TEST_CHECK(serve_start_backend(&s, &be7, &o_px, &err) == ET_OK, "start 7: %s", err.msg);
    port = et_server_port(s);
    expect_error(port, "/v1/embeddings", "{\"input\":\"x y\",\"input_type\":\"query\"}", 501, "input_type",
                 "query prompt with include_prompt false");
    expect_error(port, "/v1/embeddings", "{\"input\":\"x y\",\"prompt_name\":\"custom\"}", 501, "prompt_name",
                 "named prompt with include_prompt false");
    expect_text(NULL, "x y", 8, 0, q);
    expect_vectors(port, "/v1/embeddings", "{\"input\":\"x y\"}", q, 1, 16, 0, "no prompt with include_prompt false");
    et_server_free(s);

    /* a port in use is refused, never shared (SO_REUSEPORT would let a second server, or
     * another user's, take half of the connections; with port 0 the kernel could even pick
     * a port another server is listening on) */
    et_serve_opts o8 = {.port = 0};
    TEST_CHECK(serve_start_backend(&s, &be, &o8, &err) == ET_OK, "start 8: %s", err.msg);
    et_server *s2 = NULL;
    et_serve_opts o9 = {.port = et_server_port(s)};
    TEST_CHECK(serve_start_backend(&s2, &be, &o9, &err) != ET_OK && !s2, "a second server on port %d is refused",
               o9.port);
    et_server_free(s2);
    et_server_free(s);
    s = NULL;

    et_serve_opts bad_o = {.port = 70000};
    TEST_CHECK(serve_start_backend(&s, &be, &bad_o, &err) == ET_EINVAL && !s, "bad port refused");
    et_serve_opts bad_h = {.host = "no-such-host.invalid"};
    TEST_CHECK(serve_start_backend(&s, &be, &bad_h, &err) != ET_OK && !s, "bad host refused: %s", err.msg);
    curl_global_cleanup();
    return test_summary("test_serve");
}
