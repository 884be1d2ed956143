/* serve.c - the embeddings HTTP server: routes, limits, auth, the batching
 * queue, the worker that owns the model, graceful drain. See serve.h.
 *
 * Dynamic batching: the worker sleeps until a job is queued; then, as long as
 * other requests are still arriving (bodies being read or parsed) and the
 * queue holds fewer than max_batch inputs, it waits for them, at most
 * max_wait_ms after the oldest job was queued. An idle server therefore adds
 * no latency, and a loaded one merges concurrent requests into one forward
 * pass. A request is never split; one larger than max_batch runs alone.
 *
 * Suspend/resume ordering: a poll thread suspends its connection and queues
 * the job under `mu`; the worker resumes it under `mu` after taking it from
 * the queue, so a resume always follows its suspend. */
#include <arpa/inet.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"
#include "threads.h"

enum route {
    ROUTE_NONE = 0,
    ROUTE_BAD_METHOD,
    ROUTE_HEALTH,
    ROUTE_MODELS,
    ROUTE_OPENAI,
    ROUTE_TEI
};

typedef struct job {
    serve_request req;
    const char *prompt;   /* borrowed from the backend; NULL = none */
    int adapt;            /* a query: the adapter applies (documents: only if trained on them) */
    int truncate;         /* effective: 1 cut long inputs, 0 refuse them */
    struct MHD_Connection *conn;
    double t_queued;
    struct job *next;
    /* results, filled by the worker */
    float *out;           /* [n, dims] final vectors (dims = req.dimensions or dim) */
    size_t dims;
    size_t tokens;        /* usage: tokens embedded, special tokens included */
    int failed;
    serve_error err;
} job;

typedef struct req_state {
    int route, api;
    et_buf body;
    int too_big, oom;
    int incoming;         /* counted in srv->incoming */
    int replied;
    int status;
    size_t n_inputs;
    double t0;
    job *job;
    char method[8];
    char path[64];
} req_state;

struct et_server {
    struct MHD_Daemon *d;
    serve_backend be;
    et_serve_opts o;      /* with defaults applied; strings below */
    char *api_key;
    char *model_name;
    size_t max_tokens;    /* effective limit per input */
    int port;

    pthread_mutex_t mu;
    pthread_cond_t cv;      /* worker: a job arrived / stop */
    pthread_cond_t cv_idle; /* drain: active reached 0 */
    job *head, *tail;
    size_t queued_inputs;
    size_t incoming;        /* requests being received / parsed */
    size_t active;          /* requests between their first callback and completion */
    int draining, stop;
    pthread_t worker;
    int worker_started;
    serve_stats stats;
};

/* ---- small helpers ---------------------------------------------------------------------- */

static void job_free(job *j) {
    if (!j) return;
    serve_request_free(&j->req);
    free(j->out);
    free(j);
}

static int route_of(const char *url, const char *method, int *api) {
    int get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int post = !strcmp(method, "POST");
    *api = SERVE_OPENAI;
    if (!strcmp(url, "/health")) return get ? ROUTE_HEALTH : ROUTE_BAD_METHOD;
    if (!strcmp(url, "/v1/models") || !strcmp(url, "/models")) return get ? ROUTE_MODELS : ROUTE_BAD_METHOD;
    if (!strcmp(url, "/v1/embeddings") || !strcmp(url, "/embeddings"))
        return post ? ROUTE_OPENAI : ROUTE_BAD_METHOD;
    if (!strcmp(url, "/embed")) {
        *api = SERVE_TEI;
        return post ? ROUTE_TEI : ROUTE_BAD_METHOD;
    }
    return ROUTE_NONE;
}

/* Constant-time comparison of the Authorization header with "Bearer KEY". */
static int auth_ok(et_server *s, struct MHD_Connection *c) {
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7)) return 0;
    h += 7;
    while (*h == ' ') h++;
    size_t a = strlen(h), b = strlen(s->api_key);
    unsigned diff = (unsigned)(a != b);
    for (size_t i = 0; i < b; i++) diff |= (unsigned)(unsigned char)s->api_key[i] ^ (unsigned)(unsigned char)(i < a ? h[i] : 0);
    return diff == 0;
}

static void leave_incoming(et_server *s, req_state *r) {
    if (!r->incoming) return;
    pthread_mutex_lock(&s->mu);
    s->incoming--;
    r->incoming = 0;
    pthread_mutex_unlock(&s->mu);
    pthread_cond_signal(&s->cv);
}

/* Queues a reply; takes ownership of the malloc'd body. */
static enum MHD_Result respond(et_server *s, struct MHD_Connection *c, req_state *r, int status,
                               char *body, size_t len, const char *allow) {
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (allow) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
    if (status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    pthread_mutex_lock(&s->mu);
    int draining = s->draining;
    pthread_mutex_unlock(&s->mu);
    if (draining) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
    r->status = status;
    leave_incoming(s, r);
    return ret;
}

static enum MHD_Result respond_buf(et_server *s, struct MHD_Connection *c, req_state *r, int status,
                                   et_buf *b, const char *allow) {
    char *data = b->data;
    size_t len = b->len;
    if (!data) { /* an empty buffer still needs a malloc'd body */
        data = malloc(1);
        if (!data) return MHD_NO;
        len = 0;
    }
    b->data = NULL;
    b->len = b->cap = 0;
    return respond(s, c, r, status, data, len, allow);
}

static enum MHD_Result respond_error(et_server *s, struct MHD_Connection *c, req_state *r,
                                     const serve_error *e) {
    et_buf b = {0};
    if (serve_format_error(&b, r->api, e, NULL)) {
        et_buf_free(&b);
        return MHD_NO;
    }
    const char *allow = NULL;
    if (e->status == 405)
        allow = r->route == ROUTE_BAD_METHOD && (r->api == SERVE_TEI || strstr(r->path, "embed"))
                    ? "POST" : "GET, HEAD";
    return respond_buf(s, c, r, e->status, &b, allow);
}

static enum MHD_Result respond_errorf(et_server *s, struct MHD_Connection *c, req_state *r, int status,
                                      const char *type, const char *param, const char *code,
                                      const char *fmt, ...) __attribute__((format(printf, 8, 9)));
static enum MHD_Result respond_errorf(et_server *s, struct MHD_Connection *c, req_state *r, int status,
                                      const char *type, const char *param, const char *code,
                                      const char *fmt, ...) {
    serve_error e = {.status = status, .type = type, .param = param, .code = code};
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e.message, sizeof(e.message), fmt, ap);
    va_end(ap);
    return respond_error(s, c, r, &e);
}

/* ---- request handling (poll threads) ------------------------------------------------------ */

static enum MHD_Result handle_embed(et_server *s, struct MHD_Connection *c, req_state *r) {
    job *j = calloc(1, sizeof(*j));
    if (!j) return respond_errorf(s, c, r, 500, "server_error", NULL, NULL, "out of memory");
    serve_limits lim = {s->o.max_inputs, s->be.dim, s->be.vocab_size};
    serve_error e;
    int rc = serve_parse_request(&j->req, r->api, r->body.data ? r->body.data : "", r->body.len, &lim, &e);
    et_buf_free(&r->body);
    if (rc) {
        job_free(j);
        return respond_error(s, c, r, &e);
    }
    r->n_inputs = j->req.n;
    const char *pname = j->req.prompt_name;
    if (pname) {
        j->prompt = s->be.prompt ? s->be.prompt(s->be.ctx, pname) : NULL;
        if (!j->prompt) {
            serve_error_set(&e, 400, "invalid_request_error", "prompt_name", "unknown_prompt",
                            "this model defines no prompt named '%.128s' (prompts come from "
                            "config_sentence_transformers.json)", pname);
            job_free(j);
            return respond_error(s, c, r, &e);
        }
        j->adapt = !strcmp(pname, "query");
    } else { /* as sentence-transformers' encode_query / encode_document / encode */
        static const char *const qnames[] = {"query", NULL};
        static const char *const dnames[] = {"document", "passage", "corpus", NULL};
        const char *const *names = j->req.input_type == SERVE_INPUT_QUERY      ? qnames
                                   : j->req.input_type == SERVE_INPUT_DOCUMENT ? dnames
                                                                               : NULL;
        for (size_t k = 0; names && names[k] && !j->prompt && s->be.prompt; k++)
            j->prompt = s->be.prompt(s->be.ctx, names[k]);
        if (!j->prompt) j->prompt = s->be.default_prompt;
        j->adapt = j->req.input_type == SERVE_INPUT_QUERY;
    }
    if (j->prompt && s->be.prompt_excluded) {
        serve_error_set(&e, 501, "invalid_request_error", pname ? "prompt_name" : "input_type",
                        "prompt_excluded_pooling",
                        "this model pools without its prompt's tokens (1_Pooling include_prompt: false), "
                        "which embtune serve does not implement yet; send inputs without a prompt, or use "
                        "`embtune embed --prompt-name`");
        job_free(j);
        return respond_error(s, c, r, &e);
    }
    if (j->prompt && !j->prompt[0]) j->prompt = NULL;
    if (j->prompt && j->req.ids) {
        serve_error_set(&e, 400, "invalid_request_error", pname ? "prompt_name" : "input_type",
                        "prompt_with_token_ids",
                        "this model prepends a prompt to %.128s inputs, which cannot be applied to "
                        "token-id inputs: send text, or the ids of prompt + text without "
                        "input_type/prompt_name", pname ? pname : "these");
        job_free(j);
        return respond_error(s, c, r, &e);
    }
    j->truncate = j->req.truncate >= 0 ? j->req.truncate : !s->o.no_truncate;
    j->dims = j->req.dimensions ? j->req.dimensions : s->be.dim;
    j->conn = c;
    r->job = j;
    MHD_suspend_connection(c); /* before the job is visible: its resume comes after */
    pthread_mutex_lock(&s->mu);
    j->t_queued = et_now();
    if (s->tail) s->tail->next = j;
    else s->head = j;
    s->tail = j;
    s->queued_inputs += j->req.n;
    if (r->incoming) {
        s->incoming--;
        r->incoming = 0;
    }
    pthread_mutex_unlock(&s->mu);
    pthread_cond_signal(&s->cv);
    return MHD_YES;
}

static enum MHD_Result reply_job(et_server *s, struct MHD_Connection *c, req_state *r) {
    job *j = r->job;
    if (j->failed) return respond_error(s, c, r, &j->err);
    et_buf b = {0};
    et_error err = {0};
    int rc = r->api == SERVE_TEI
                 ? serve_format_tei(&b, j->out, j->req.n, j->dims, &err)
                 : serve_format_openai(&b, j->out, j->req.n, j->dims, j->req.encoding, s->model_name,
                                       j->tokens, &err);
    if (rc) {
        et_buf_free(&b);
        return respond_errorf(s, c, r, 500, "server_error", NULL, NULL, "formatting the reply: %s", err.msg);
    }
    return respond_buf(s, c, r, 200, &b, NULL);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_size,
                                 void **con_cls) {
    et_server *s = cls;
    req_state *r = *con_cls;
    (void)version;
    if (!r) { /* headers are in */
        r = calloc(1, sizeof(*r));
        if (!r) return MHD_NO;
        *con_cls = r;
        r->t0 = et_now();
        snprintf(r->method, sizeof(r->method), "%s", method);
        snprintf(r->path, sizeof(r->path), "%s", url);
        r->route = route_of(url, method, &r->api);
        pthread_mutex_lock(&s->mu);
        s->active++;
        s->incoming++;
        r->incoming = 1;
        int draining = s->draining;
        pthread_mutex_unlock(&s->mu);
        if (draining)
            return respond_errorf(s, c, r, 503, "server_error", NULL, "shutting_down",
                                  "the server is shutting down");
        if (r->route == ROUTE_NONE)
            return respond_errorf(s, c, r, 404, "invalid_request_error", NULL, "not_found",
                                  "no route %s %.60s (routes: POST /v1/embeddings, POST /embed, "
                                  "GET /health, GET /v1/models)", method, url);
        if (r->route == ROUTE_BAD_METHOD)
            return respond_errorf(s, c, r, 405, "invalid_request_error", NULL, "method_not_allowed",
                                  "method %s is not allowed on %.60s", method, url);
        if (s->api_key && r->route != ROUTE_HEALTH && !auth_ok(s, c))
            return respond_errorf(s, c, r, 401, "authentication_error", NULL, "invalid_api_key",
                                  "missing or wrong API key: send the header "
                                  "'Authorization: Bearer <key>'");
        if (r->route == ROUTE_OPENAI || r->route == ROUTE_TEI) {
            const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
            long v;
            if (cl && (et_parse_long(cl, 0, LONG_MAX, &v) || (unsigned long)v > s->o.max_body))
                return respond_errorf(s, c, r, 413, "invalid_request_error", NULL, "request_too_large",
                                      "the request body is larger than this server's limit of %zu bytes",
                                      s->o.max_body);
        }
        return MHD_YES;
    }
    if (*upload_size) {
        if (!r->replied && !r->too_big && !r->oom) {
            if (r->body.len + *upload_size > s->o.max_body) {
                r->too_big = 1;
                et_buf_free(&r->body);
            } else if (et_buf_append(&r->body, upload_data, *upload_size, NULL)) {
                r->oom = 1;
                et_buf_free(&r->body);
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->replied) return MHD_YES;
    if (r->job) return reply_job(s, c, r); /* resumed by the worker */
    if (r->too_big)
        return respond_errorf(s, c, r, 413, "invalid_request_error", NULL, "request_too_large",
                              "the request body is larger than this server's limit of %zu bytes",
                              s->o.max_body);
    if (r->oom) return respond_errorf(s, c, r, 500, "server_error", NULL, NULL, "out of memory");
    switch (r->route) {
    case ROUTE_HEALTH: {
        const char *h = "{\"status\":\"ok\"}";
        char *b = strdup(h);
        return b ? respond(s, c, r, 200, b, strlen(b), NULL) : MHD_NO;
    }
    case ROUTE_MODELS: {
        et_buf b = {0};
        int rc = et_buf_puts(&b, "{\"object\":\"list\",\"data\":[{\"id\":", NULL);
        if (!rc) rc = et_buf_json_string(&b, s->model_name, strlen(s->model_name), NULL);
        if (!rc)
            rc = et_buf_printf(&b, NULL, ",\"object\":\"model\",\"created\":0,\"owned_by\":\"embtune\","
                                         "\"dimensions\":%zu,\"max_tokens\":%zu}]}", s->be.dim, s->max_tokens);
        if (rc) {
            et_buf_free(&b);
            return MHD_NO;
        }
        return respond_buf(s, c, r, 200, &b, NULL);
    }
    default:
        return handle_embed(s, c, r);
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    et_server *s = cls;
    req_state *r = *con_cls;
    (void)c;
    if (!r) return;
    *con_cls = NULL;
    if (s->o.log_requests)
        fprintf(stderr, "embtune serve: %s %s %d %zu input%s %.1f ms%s\n", r->method, r->path,
                r->replied ? r->status : 0, r->n_inputs, r->n_inputs == 1 ? "" : "s",
                (et_now() - r->t0) * 1e3,
                toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (connection closed early)");
    pthread_mutex_lock(&s->mu);
    if (r->incoming) s->incoming--;
    s->active--;
    s->stats.requests++;
    if (s->active == 0) pthread_cond_broadcast(&s->cv_idle);
    pthread_mutex_unlock(&s->mu);
    pthread_cond_signal(&s->cv);
    job_free(r->job);
    et_buf_free(&r->body);
    free(r);
}

static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    fprintf(stderr, "embtune serve: libmicrohttpd: %s\n", msg);
}

/* ---- the worker ------------------------------------------------------------------------------- */

/* One input being prepared for the forward pass. */
typedef struct item {
    job *j;
    size_t i;          /* index in the job */
    int32_t *ids;      /* final ids (owned unless `borrowed`) */
    size_t n;
    int borrowed;
    int failed;        /* too long and not truncated, or a tokenizer error */
    char why[200];
} item;

typedef struct tok_task {
    et_server *s;
    item *items;
    size_t n_items;
    et_encoding *encs; /* [nth] per-thread scratch */
    int nth_max;
} tok_task;

int32_t *serve_copy_ids(const int32_t *ids, size_t n) {
    int32_t *out = malloc((n ? n : 1) * sizeof(int32_t));
    if (out && n) memcpy(out, ids, n * sizeof(int32_t));
    return out;
}

int serve_cut_left(const et_encoding *enc, size_t max_len, int32_t **ids, size_t *n) {
    size_t pre = 0, post = 0, len = enc->n;
    if (len <= max_len) {
        *n = len;
        return (*ids = serve_copy_ids(enc->ids, len)) ? 0 : -1;
    }
    while (pre < len && enc->special_mask && enc->special_mask[pre]) pre++;
    while (post < len - pre && enc->special_mask && enc->special_mask[len - 1 - post]) post++;
    if (pre + post >= max_len) { /* nothing but special tokens fits: the first max_len */
        *n = max_len;
        return (*ids = serve_copy_ids(enc->ids, max_len)) ? 0 : -1;
    }
    size_t keep = max_len - pre - post;
    int32_t *out = malloc(max_len * sizeof(int32_t));
    if (!out) return -1;
    memcpy(out, enc->ids, pre * sizeof(int32_t));
    memcpy(out + pre, enc->ids + (len - post - keep), keep * sizeof(int32_t));
    memcpy(out + pre + keep, enc->ids + (len - post), post * sizeof(int32_t));
    *ids = out;
    *n = max_len;
    return 0;
}

static void prepare_item(et_server *s, item *it, et_encoding *enc) {
    job *j = it->j;
    if (j->failed) return; /* e.g. the client went away */
    size_t limit = s->max_tokens;
    if (j->req.ids) { /* token ids: used as given, cut or refused beyond the limit */
        int32_t *ids = j->req.ids[it->i];
        size_t n = j->req.id_lens[it->i];
        if (n > limit) {
            if (!j->truncate) {
                it->failed = 413;
                snprintf(it->why, sizeof(it->why), "input[%zu] has %zu tokens, more than the limit of %zu",
                         it->i, n, limit);
                return;
            }
            if (j->req.truncate_left) ids += n - limit;
            n = limit;
        }
        it->ids = ids;
        it->n = n;
        it->borrowed = 1;
        return;
    }
    const char *text = j->req.texts[it->i];
    size_t len = j->req.text_lens[it->i];
    char *joined = NULL;
    if (j->prompt) {
        size_t pl = strlen(j->prompt), tot;
        if (!et_size_add(pl, len, &tot) || !(joined = malloc(tot + 1))) {
            it->failed = 500;
            snprintf(it->why, sizeof(it->why), "out of memory");
            return;
        }
        memcpy(joined, j->prompt, pl);
        memcpy(joined + pl, text, len);
        joined[tot] = 0;
        text = joined;
        len = tot;
    }
    et_error err = {0};
    size_t n_full = 0;
    if (s->be.tokenize(s->be.ctx, enc, text, len, limit, j->req.truncate_left, &it->ids, &it->n, &n_full,
                       &err)) {
        it->failed = 500;
        snprintf(it->why, sizeof(it->why), "input[%zu]: tokenizer: %.150s", it->i, err.msg);
    } else if (n_full > limit && !j->truncate) {
        it->failed = 413;
        snprintf(it->why, sizeof(it->why), "input[%zu] has %zu tokens, more than the limit of %zu",
                 it->i, n_full, limit);
    }
    free(joined);
}

static void tok_run(void *ctx, int ith, int nth) {
    tok_task *t = ctx;
    long lo, hi;
    et_split((long)t->n_items, ith, nth, &lo, &hi);
    for (long k = lo; k < hi; k++) prepare_item(t->s, &t->items[k], &t->encs[ith]);
}

static void fail_job(job *j, int status, const char *type, const char *msg) {
    if (j->failed) return;
    j->failed = 1;
    serve_error_set(&j->err, status, type, status == 413 ? "input" : NULL,
                    status == 413 ? "context_length_exceeded" : NULL, "%s", msg);
    if (status == 413)
        snprintf(j->err.message + strlen(j->err.message), sizeof(j->err.message) - strlen(j->err.message),
                 " (send shorter inputs, or \"truncate\": true to cut them)");
}

/* Did the client close its connection while its request waited in the queue?
 * (A suspended connection is not polled by libmicrohttpd.) */
static int client_gone(struct MHD_Connection *c) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    return (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

/* Truncates rows of x [n, dim] to dims in place (row-compacting) and normalizes if asked. */
static int finish_vectors(float *x, size_t n, size_t dim, size_t dims, int normalize) {
    for (size_t i = 0; i < n; i++) {
        float *src = x + (size_t)i * dim, *dst = x + (size_t)i * dims;
        memmove(dst, src, dims * sizeof(float));
        double ss = 0;
        for (size_t k = 0; k < dims; k++) {
            if (!isfinite(dst[k])) return -1;
            ss += (double)dst[k] * dst[k];
        }
        if (normalize && ss > 0) {
            float inv = (float)(1.0 / sqrt(ss));
            for (size_t k = 0; k < dims; k++) dst[k] *= inv;
        }
    }
    return 0;
}

static void run_batch(et_server *s, job *batch, et_encoding *encs, int nenc) {
    size_t n_items = 0;
    for (job *j = batch; j; j = j->next) n_items += j->req.n;
    item *items = calloc(n_items ? n_items : 1, sizeof(item));
    const int32_t **ids = malloc((n_items ? n_items : 1) * sizeof(int32_t *));
    size_t *lens = malloc((n_items ? n_items : 1) * sizeof(size_t));
    float *out = NULL;
    if (!items || !ids || !lens) {
        for (job *j = batch; j; j = j->next) fail_job(j, 500, "server_error", "out of memory");
        goto done;
    }
    size_t k = 0;
    for (job *j = batch; j; j = j->next)
        for (size_t i = 0; i < j->req.n; i++, k++) {
            items[k].j = j;
            items[k].i = i;
        }
    tok_task t = {s, items, n_items, encs, nenc};
    /* waking the pool costs about as much as tokenizing a few short texts */
    if (s->be.tokenize_threadsafe && nenc > 1 && n_items >= 32) et_parallel_n(tok_run, &t, nenc);
    else tok_run(&t, 0, 1);
    for (k = 0; k < n_items; k++)
        if (items[k].failed)
            fail_job(items[k].j, items[k].failed, items[k].failed == 413 ? "invalid_request_error"
                                                                          : "server_error", items[k].why);
    /* one forward pass over the inputs of every job still standing */
    size_t m = 0;
    for (k = 0; k < n_items; k++)
        if (!items[k].j->failed) {
            ids[m] = items[k].ids;
            lens[m] = items[k].n;
            m++;
        }
    if (m) {
        size_t dim = s->be.dim;
        out = malloc((size_t)m * dim * sizeof(float));
        et_error err = {0};
        if (!out || s->be.embed_ids(s->be.ctx, ids, lens, m, out, &err)) {
            for (job *j = batch; j; j = j->next)
                fail_job(j, 500, "server_error", out ? err.msg : "out of memory");
            goto done;
        }
        size_t row = 0;
        k = 0;
        for (job *j = batch; j; j = j->next) {
            if (j->failed) {
                k += j->req.n;
                continue;
            }
            size_t n = j->req.n;
            j->out = malloc((size_t)n * dim * sizeof(float));
            if (!j->out) {
                fail_job(j, 500, "server_error", "out of memory");
                row += n;
                k += n;
                continue;
            }
            memcpy(j->out, out + row * dim, (size_t)n * dim * sizeof(float));
            for (size_t i = 0; i < n; i++) j->tokens += items[k + i].n;
            row += n;
            k += n;
            if (s->be.adapt && s->be.adapt(s->be.ctx, j->out, n, j->adapt, &err)) {
                fail_job(j, 500, "server_error", err.msg);
                continue;
            }
            int renorm = j->req.normalize || j->dims < dim;
            if (finish_vectors(j->out, n, dim, j->dims, renorm))
                fail_job(j, 500, "server_error", "the model produced a non-finite value (NaN or inf)");
        }
    }
done:
    if (items)
        for (k = 0; k < n_items; k++)
            if (!items[k].borrowed) free(items[k].ids);
    free(items);
    free(ids);
    free(lens);
    free(out);
}

static void *worker_main(void *arg) {
    et_server *s = arg;
    int nenc = s->be.tokenize_threadsafe ? et_get_threads() : 1;
    et_encoding *encs = calloc((size_t)nenc, sizeof(et_encoding));
    if (!encs) nenc = 0;
    double wait = s->o.max_wait_ms / 1e3;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        if (!s->head) break; /* stop with an empty queue */
        if (wait > 0 && !s->stop) {
            double deadline = s->head->t_queued + wait;
            while (!s->stop && s->queued_inputs < s->o.max_batch && s->incoming > 0) {
                double now = et_now();
                if (now >= deadline) break;
                struct timespec ts;
                clock_gettime(CLOCK_MONOTONIC, &ts);
                double dt = deadline - now;
                ts.tv_sec += (time_t)dt;
                ts.tv_nsec += (long)((dt - (double)(time_t)dt) * 1e9);
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&s->cv, &s->mu, &ts);
            }
        }
        /* take whole jobs up to max_batch inputs (at least one job) */
        job *batch = s->head, *last = s->head;
        size_t taken = last->req.n, n_jobs = 1;
        while (last->next && taken + last->next->req.n <= s->o.max_batch) {
            last = last->next;
            taken += last->req.n;
            n_jobs++;
        }
        s->head = last->next;
        if (!s->head) s->tail = NULL;
        last->next = NULL;
        s->queued_inputs -= taken;
        int stopping = s->stop;
        size_t n_gone = 0;
        pthread_mutex_unlock(&s->mu);

        if (stopping) { /* drain timed out: answer the rest with 503 */
            for (job *j = batch; j; j = j->next) fail_job(j, 503, "server_error", "the server is shutting down");
        } else if (!encs) {
            for (job *j = batch; j; j = j->next) fail_job(j, 500, "server_error", "out of memory");
        } else {
            for (job *j = batch; j; j = j->next)
                if (client_gone(j->conn)) { /* nobody to answer: skip the work */
                    j->failed = 1;
                    serve_error_set(&j->err, 499, "server_error", NULL, "client_closed",
                                    "the client closed the connection");
                    n_gone++;
                }
            run_batch(s, batch, encs, nenc);
        }

        /* hand the replies back; a resumed job may be freed at once, so read next first
         * (no lock held while calling into libmicrohttpd) */
        for (job *j = batch, *next; j; j = next) {
            next = j->next;
            j->next = NULL;
            MHD_resume_connection(j->conn);
        }
        pthread_mutex_lock(&s->mu);
        s->stats.batches++;
        s->stats.jobs += n_jobs;
        s->stats.inputs += taken;
        if (n_jobs > s->stats.max_batch_jobs) s->stats.max_batch_jobs = n_jobs;
        s->stats.cancelled += n_gone;
    }
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < nenc; i++)
        if (s->be.encoding_free) s->be.encoding_free(s->be.ctx, &encs[i]);
    free(encs);
    return NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------------------ */

int serve_start_backend(et_server **out, const serve_backend *be, const et_serve_opts *opts,
                        et_error *err) {
    *out = NULL;
    if (!be || !be->tokenize || !be->embed_ids || !be->dim || !be->max_length)
        return et_err_set(err, ET_EINVAL, "serve: incomplete model backend");
    et_server *s = calloc(1, sizeof(*s));
    if (!s) return et_err_set(err, ET_ENOMEM, "out of memory");
    s->be = *be;
    s->be.destroy = NULL; /* set on success only: on failure the caller still owns ctx */
    if (opts) s->o = *opts;
    else s->o.max_wait_ms = -1;
    if (!s->o.max_batch) s->o.max_batch = 64;
    if (s->o.max_wait_ms < 0) s->o.max_wait_ms = 5;
    if (!s->o.max_inputs) s->o.max_inputs = 2048;
    if (!s->o.max_body) s->o.max_body = (size_t)16 << 20;
    if (s->o.threads <= 0) s->o.threads = 2;
    s->max_tokens = s->o.max_tokens && s->o.max_tokens < be->max_length ? s->o.max_tokens : be->max_length;
    int want_key = s->o.api_key && s->o.api_key[0];
    s->model_name = strdup(s->o.model_name ? s->o.model_name : "embtune");
    s->api_key = want_key ? strdup(s->o.api_key) : NULL;
    s->o.model_name = NULL; /* the copies above are the ones used */
    s->o.api_key = NULL;
    if (!s->model_name || (want_key && !s->api_key)) {
        et_server_free(s);
        return et_err_set(err, ET_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->cv_idle, NULL);

    /* address */
    const char *host = s->o.host && s->o.host[0] ? s->o.host : "127.0.0.1";
    s->o.host = NULL;
    if (s->o.port < 0 || s->o.port > 65535) {
        int port = s->o.port;
        et_server_free(s);
        return et_err_set(err, ET_EINVAL, "serve: port %d: expected 0..65535", port);
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof(port), "%d", s->o.port);
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai || !ai) {
        et_server_free(s);
        return et_err_set(err, ET_EINVAL, "serve: cannot resolve host '%s': %s", host, gai_strerror(gai));
    }
    struct sockaddr_storage addr;
    memcpy(&addr, ai->ai_addr, ET_MIN((size_t)ai->ai_addrlen, sizeof(addr)));
    int v6 = ai->ai_family == AF_INET6;
    freeaddrinfo(ai);

    if (pthread_create(&s->worker, NULL, worker_main, s)) {
        et_server_free(s);
        return et_err_set(err, ET_ENOMEM, "serve: cannot start the worker thread");
    }
    s->worker_started = 1;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_access, s,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)s->o.threads,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                            MHD_OPTION_END);
    if (!s->d) {
        et_server_free(s);
        return et_err_set(err, ET_EIO, "serve: cannot listen on %s:%d (in use, or not an address of "
                                       "this machine?)", host, opts ? opts->port : 0);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? (int)di->port : s->o.port;
    s->be.destroy = be->destroy;
    *out = s;
    return ET_OK;
}

int et_server_port(const et_server *s) { return s ? s->port : 0; }

void serve_get_stats(et_server *s, serve_stats *st) {
    pthread_mutex_lock(&s->mu);
    *st = s->stats;
    pthread_mutex_unlock(&s->mu);
}

int et_server_drain(et_server *s, double timeout_s) {
    if (!s || !s->d) return ET_OK;
    if (timeout_s <= 0) timeout_s = 30;
    pthread_mutex_lock(&s->mu);
    int first = !s->draining;
    s->draining = 1;
    pthread_mutex_unlock(&s->mu);
    if (first) {
        MHD_socket ls = MHD_quiesce_daemon(s->d); /* no new connections */
        if (ls != MHD_INVALID_SOCKET) close(ls);
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)timeout_s;
    int rc = ET_OK;
    pthread_mutex_lock(&s->mu);
    while (s->active > 0) {
        if (pthread_cond_timedwait(&s->cv_idle, &s->mu, &ts)) {
            rc = s->active > 0 ? ET_ECANCELED : ET_OK;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void et_server_free(et_server *s) {
    if (!s) return;
    if (s->d) et_server_drain(s, 5);
    if (s->worker_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_mutex_unlock(&s->mu);
        pthread_cond_broadcast(&s->cv);
        pthread_join(s->worker, NULL); /* answers what is still queued with 503 */
    }
    if (s->d) MHD_stop_daemon(s->d);
    if (s->be.destroy) s->be.destroy(s->be.ctx);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->cv_idle);
    free(s->api_key);
    free(s->model_name);
    free(s);
}
