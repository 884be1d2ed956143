/* llm_client.c - concurrent OpenAI-compatible requests with retries (see llm_client.h). */
#include "llm_client.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#define LLM_MAX_BODY ((size_t)64 << 20) /* a reply larger than this is refused */

enum { R_WAIT, R_ACTIVE };

typedef struct req {
    uint64_t tag;
    char *body; /* [len] request JSON, owned */
    size_t len;
    int attempts;  /* attempts made so far */
    int attempt0;
    double due;    /* monotonic time when it may (re)start */
    CURL *easy;
    struct curl_slist *hdrs;
    et_buf resp;
    double retry_after; /* seconds from the last reply, < 0 = none */
    char errbuf[CURL_ERROR_SIZE];
    long status;
    int ok;
    char error[512];
} req;

struct et_llm {
    et_llm_opts o;
    char *url, *key, *auth; /* owned */
    CURLM *multi;
    req **wait;   /* [n_wait] queued or backing off, submission order */
    size_t n_wait, cap_wait;
    req **active; /* [n_active] in flight */
    size_t n_active, cap_active;
    req **done;   /* [n_done] finished, FIFO from done_head */
    size_t n_done, done_head, cap_done;
    uint64_t rng;
    et_llm_stats st;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* ---- key scrubbing --------------------------------------------------------------- */

void et_llm_scrub(char *s, size_t cap, const char *key) {
    static const char red[] = "[REDACTED]";
    if (!s || !key || !*key || !cap) return;
    size_t kl = strlen(key), rl = sizeof(red) - 1;
    char *p = s;
    while ((p = strstr(p, key))) {
        size_t tail = strlen(p + kl), off = (size_t)(p - s);
        /* room for red + tail + NUL within cap */
        size_t keep = off + rl < cap ? cap - 1 - off - rl : 0;
        if (off + rl >= cap) { /* not even the marker fits */
            s[off] = 0;
            return;
        }
        if (tail > keep) tail = keep;
        memmove(p + rl, p + kl, tail);
        memcpy(p, red, rl);
        p[rl + tail] = 0;
        p += rl;
    }
}

/* Replaces the key in a body of known length (may hold NUL bytes). */
static int scrub_buf(et_buf *b, const char *key, et_error *err) {
    if (!key || !*key || !b->len) return ET_OK;
    size_t kl = strlen(key);
    if (!memmem(b->data, b->len, key, kl)) return ET_OK;
    et_buf o = {0};
    size_t pos = 0;
    int rc = ET_OK;
    while (!rc && pos < b->len) {
        char *p = memmem(b->data + pos, b->len - pos, key, kl);
        size_t end = p ? (size_t)(p - b->data) : b->len;
        rc = et_buf_append(&o, b->data + pos, end - pos, err);
        if (!rc && p) rc = et_buf_puts(&o, "[REDACTED]", err);
        pos = p ? end + kl : b->len;
    }
    if (rc) {
        et_buf_free(&o);
        return rc;
    }
    et_buf_free(b);
    *b = o;
    return ET_OK;
}

/* ---- URL --------------------------------------------------------------------------- */

char *et_llm_endpoint(const char *base, const char *path, et_error *err) {
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') n--;
    et_buf b = {0};
    int rc = et_buf_append(&b, base, n, err);
    const char *tail = path; /* e.g. "/chat/completions" */
    if (!rc) {
        if (n >= strlen(path) && !memcmp(base + n - strlen(path), path, strlen(path))) tail = "";
        else if (n >= 3 && !memcmp(base + n - 3, "/v1", 3)) tail = path;
        else rc = et_buf_puts(&b, "/v1", err);
    }
    if (!rc) rc = et_buf_puts(&b, tail, err);
    if (rc) {
        et_buf_free(&b);
        return NULL;
    }
    return b.data;
}

/* ---- callbacks --------------------------------------------------------------------------- */

static size_t on_write(char *p, size_t size, size_t nmemb, void *ud) {
    req *r = ud;
    size_t n = size * nmemb;
    if (r->resp.len + n > LLM_MAX_BODY) return 0; /* CURLE_WRITE_ERROR */
    if (et_buf_append(&r->resp, p, n, NULL)) return 0;
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud) {
    req *r = ud;
    size_t n = size * nmemb;
    char line[256];
    size_t k = n < sizeof(line) - 1 ? n : sizeof(line) - 1;
    memcpy(line, p, k);
    line[k] = 0;
    if (!strncmp(line, "HTTP/", 5)) r->retry_after = -1; /* a new response (after 100-continue etc.) */
    int ms = !strncasecmp(line, "retry-after-ms:", 15);
    if (ms || !strncasecmp(line, "retry-after:", 12)) {
        char *v = line + (ms ? 15 : 12);
        while (*v == ' ' || *v == '\t') v++;
        char *e = v + strlen(v);
        while (e > v && isspace((unsigned char)e[-1])) *--e = 0;
        char *end;
        double d = strtod(v, &end);
        if (end != v && !*end && isfinite(d) && d >= 0) {
            r->retry_after = ms ? d / 1000.0 : d;
        } else if (!ms) {
            time_t t = curl_getdate(v, NULL);
            if (t != (time_t)-1) {
                double delta = difftime(t, time(NULL));
                r->retry_after = delta > 0 ? delta : 0;
            }
        }
    }
    return n;
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int et_llm_new(et_llm **out, const et_llm_opts *opts, et_error *err) {
    *out = NULL;
    if (!opts->url || !*opts->url) return et_err_set(err, ET_EINVAL, "LLM client: no URL");
    if (opts->concurrency < 1) return et_err_set(err, ET_EINVAL, "LLM client: concurrency must be >= 1");
    if (!(opts->timeout > 0)) return et_err_set(err, ET_EINVAL, "LLM client: timeout must be > 0");
    if (opts->retries < 0) return et_err_set(err, ET_EINVAL, "LLM client: retries must be >= 0");
    pthread_once(&curl_once, curl_init_once);
    et_llm *c = et_calloc(1, sizeof(*c), err);
    if (!c) return ET_ENOMEM;
    c->o = *opts;
    if (!(c->o.backoff_base > 0)) c->o.backoff_base = 0.5;
    if (!(c->o.backoff_max > 0)) c->o.backoff_max = 30;
    if (!(c->o.retry_after_max > 0)) c->o.retry_after_max = 120;
    c->rng = opts->seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    c->url = et_strdup(opts->url, err);
    if (c->url && opts->api_key && *opts->api_key) {
        c->key = et_strdup(opts->api_key, err);
        et_buf a = {0};
        if (c->key && !et_buf_printf(&a, err, "Authorization: Bearer %s", c->key)) c->auth = a.data;
        else et_buf_free(&a);
    }
    c->multi = curl_multi_init();
    if (!c->url || (opts->api_key && *opts->api_key && !c->auth) || !c->multi) {
        int rc = c->multi ? ET_ENOMEM : et_err_set(err, ET_ENET, "LLM client: curl_multi_init failed");
        et_llm_free(c);
        return rc ? rc : ET_ENOMEM;
    }
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)opts->concurrency + 4);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)opts->concurrency);
    c->o.url = c->url;
    c->o.api_key = c->key;
    *out = c;
    return ET_OK;
}

static void active_remove(et_llm *c, req *r) {
    for (size_t i = 0; i < c->n_active; i++)
        if (c->active[i] == r) {
            c->active[i] = c->active[--c->n_active];
            return;
        }
}

static void req_release_easy(et_llm *c, req *r) {
    if (r->easy) {
        curl_multi_remove_handle(c->multi, r->easy);
        curl_easy_cleanup(r->easy);
        r->easy = NULL;
    }
    curl_slist_free_all(r->hdrs);
    r->hdrs = NULL;
}

static void req_free(et_llm *c, req *r) {
    if (!r) return;
    req_release_easy(c, r);
    free(r->body);
    et_buf_free(&r->resp);
    free(r);
}

void et_llm_free(et_llm *c) {
    if (!c) return;
    for (size_t i = 0; i < c->n_wait; i++) req_free(c, c->wait[i]);
    for (size_t i = c->done_head; i < c->n_done; i++) req_free(c, c->done[i]);
    for (size_t i = 0; i < c->n_active; i++) req_free(c, c->active[i]);
    if (c->multi) curl_multi_cleanup(c->multi);
    free(c->active);
    free(c->wait);
    free(c->done);
    free(c->url);
    if (c->key) memset(c->key, 0, strlen(c->key));
    if (c->auth) memset(c->auth, 0, strlen(c->auth));
    free(c->key);
    free(c->auth);
    free(c);
}

static int push_ptr(req ***arr, size_t *n, size_t *cap, req *r, et_error *err) {
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        req **p = et_realloc_n(*arr, nc, sizeof(req *), err);
        if (!p) return ET_ENOMEM;
        *arr = p;
        *cap = nc;
    }
    (*arr)[(*n)++] = r;
    return ET_OK;
}

int et_llm_submit(et_llm *c, uint64_t tag, const char *body, size_t len, int attempt0, et_error *err) {
    req *r = et_calloc(1, sizeof(*r), err);
    if (!r) return ET_ENOMEM;
    r->tag = tag;
    r->attempt0 = attempt0;
    r->retry_after = -1;
    r->body = et_strndup(body, len, err);
    r->len = len;
    r->due = 0;
    if (!r->body || push_ptr(&c->wait, &c->n_wait, &c->cap_wait, r, err)) {
        req_free(c, r);
        return ET_ENOMEM;
    }
    return ET_OK;
}

size_t et_llm_pending(const et_llm *c) { return c->n_wait + c->n_active + (c->n_done - c->done_head); }

void et_llm_get_stats(const et_llm *c, et_llm_stats *st) { *st = c->st; }

/* ---- one attempt --------------------------------------------------------------------------------- */

static int start(et_llm *c, req *r, et_error *err) {
    r->resp.len = 0;
    r->retry_after = -1;
    r->errbuf[0] = 0;
    r->status = 0;
    CURL *e = curl_easy_init();
    if (!e) return et_err_set(err, ET_ENOMEM, "curl_easy_init failed");
    char attempt[64];
    snprintf(attempt, sizeof(attempt), "X-Embtune-Attempt: %d", r->attempt0 + r->attempts);
    struct curl_slist *h = NULL, *t;
    const char *lines[] = {"Content-Type: application/json", "Accept: application/json", "Expect:", attempt,
                           c->auth};
    for (size_t i = 0; i < ET_ARRAY_LEN(lines); i++) {
        if (!lines[i]) continue;
        t = curl_slist_append(h, lines[i]);
        if (!t) {
            curl_slist_free_all(h);
            curl_easy_cleanup(e);
            return et_err_set(err, ET_ENOMEM, "out of memory (headers)");
        }
        h = t;
    }
    long tmo = (long)(c->o.timeout * 1000.0);
    if (tmo < 1) tmo = 1;
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, tmo < 10000 ? tmo : 10000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_USERAGENT, "embtune/" ET_VERSION);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (push_ptr(&c->active, &c->n_active, &c->cap_active, r, err)) {
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        return ET_ENOMEM;
    }
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        c->n_active--;
        curl_slist_free_all(h);
        curl_easy_cleanup(e);
        return et_err_set(err, ET_ENET, "curl_multi_add_handle failed");
    }
    r->easy = e;
    r->hdrs = h;
    r->attempts++;
    c->st.attempts++;
    if (r->attempts > 1) c->st.retries++;
    if (c->n_active > c->st.max_in_flight) c->st.max_in_flight = c->n_active;
    return ET_OK;
}

static double rand01(et_llm *c) {
    uint64_t x = c->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    c->rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
}

/* A one-line, printable, tag-free snippet of an error body. */
static void snippet(char *out, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    int in_tag = 0, sp = 1;
    for (size_t i = 0; i < n && o + 1 < cap && o < 200; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '<') { in_tag = 1; continue; }
        if (in_tag) { if (ch == '>') in_tag = 0; continue; }
        if (isspace(ch) || ch < 0x20 || ch == 0x7f) {
            if (!sp) out[o++] = ' ';
            sp = 1;
            continue;
        }
        out[o++] = (char)ch;
        sp = 0;
    }
    while (o && out[o - 1] == ' ') o--;
    out[o] = 0;
}

static int retriable_status(long s) { return s == 408 || s == 409 || s == 425 || s == 429 || (s >= 500 && s <= 599); }

static int retriable_curl(CURLcode rc) {
    switch (rc) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_OUT_OF_MEMORY:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_WRITE_ERROR: /* reply too large */
    case CURLE_LOGIN_DENIED:
        return 0;
    default:
        return 1;
    }
}

/* A transfer finished: retry it or move it to done. */
static int finish(et_llm *c, req *r, CURLcode cc, et_error *err) {
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    req_release_easy(c, r);
    active_remove(c, r);
    r->status = status;
    int rc = scrub_buf(&r->resp, c->key, err);
    if (rc) return rc;
    int retry = 0, ok = 0;
    if (cc != CURLE_OK) {
        if (cc == CURLE_OPERATION_TIMEDOUT)
            snprintf(r->error, sizeof(r->error), "timed out after %gs", c->o.timeout);
        else if (cc == CURLE_WRITE_ERROR)
            snprintf(r->error, sizeof(r->error), "reply larger than %zu bytes", LLM_MAX_BODY);
        else
            snprintf(r->error, sizeof(r->error), "%s%s%s", curl_easy_strerror(cc), r->errbuf[0] ? ": " : "",
                     r->errbuf);
        retry = retriable_curl(cc);
    } else if (status >= 200 && status <= 299) {
        char why[256] = "";
        ok = !c->o.accept || c->o.accept(c->o.accept_ud, r->tag, r->resp.data ? r->resp.data : "", r->resp.len,
                                         why, sizeof(why));
        if (!ok) {
            snprintf(r->error, sizeof(r->error), "HTTP %ld with an unusable body: %s", status, why);
            retry = 1;
        }
    } else {
        char snip[256];
        snippet(snip, sizeof(snip), r->resp.data ? r->resp.data : "", r->resp.len);
        snprintf(r->error, sizeof(r->error), "HTTP %ld%s%s", status, snip[0] ? ": " : "", snip);
        retry = retriable_status(status);
    }
    et_llm_scrub(r->error, sizeof(r->error), c->key);
    if (ok) r->error[0] = 0;
    if (!ok && retry && r->attempts <= c->o.retries) {
        double d;
        if (r->retry_after >= 0) {
            d = r->retry_after < c->o.retry_after_max ? r->retry_after : c->o.retry_after_max;
        } else {
            d = c->o.backoff_base * pow(2.0, (double)(r->attempts - 1));
            if (d > c->o.backoff_max) d = c->o.backoff_max;
            d *= 0.5 + 0.5 * rand01(c); /* equal jitter: [d/2, d] */
        }
        r->due = et_now() + d;
        return push_ptr(&c->wait, &c->n_wait, &c->cap_wait, r, err);
    }
    r->ok = ok;
    return push_ptr(&c->done, &c->n_done, &c->cap_done, r, err);
}

static int start_due(et_llm *c, double now, et_error *err) {
    size_t o = 0;
    int rc = ET_OK;
    for (size_t i = 0; i < c->n_wait; i++) {
        req *r = c->wait[i];
        if (!rc && c->n_active < c->o.concurrency && r->due <= now) {
            rc = start(c, r, err);
            if (!rc) continue;
        }
        c->wait[o++] = r;
    }
    c->n_wait = o;
    return rc;
}

int et_llm_next(et_llm *c, et_llm_result *res, et_error *err) {
    memset(res, 0, sizeof(*res));
    for (;;) {
        if (c->done_head < c->n_done) {
            req *r = c->done[c->done_head++];
            if (c->done_head == c->n_done) c->done_head = c->n_done = 0;
            res->tag = r->tag;
            res->ok = r->ok;
            res->http_status = r->status;
            res->attempts = r->attempts;
            memcpy(res->error, r->error, sizeof(res->error));
            res->body = r->resp.data ? r->resp.data : NULL;
            res->len = r->resp.len;
            r->resp.data = NULL;
            r->resp.len = r->resp.cap = 0;
            if (!res->body) res->body = et_strdup("", err);
            req_free(c, r);
            if (!res->body) return -ET_ENOMEM;
            return 1;
        }
        /* finished results first (the caller journals them), then the stop request */
        if (c->o.stop && *c->o.stop) return -et_err_set(err, ET_ECANCELED, "interrupted");
        double now = et_now();
        int rc = start_due(c, now, err);
        if (rc) return -rc;
        if (!c->n_active && !c->n_wait) return 0;
        int running = 0;
        CURLMcode mc = curl_multi_perform(c->multi, &running);
        if (mc != CURLM_OK) return -et_err_set(err, ET_ENET, "curl_multi_perform: %s", curl_multi_strerror(mc));
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(c->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            req *r = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            CURLcode cc = m->data.result;
            if ((rc = finish(c, r, cc, err))) return -rc;
        }
        if (c->done_head < c->n_done) continue;
        /* sleep until a transfer progresses or a backoff expires */
        double wake = now + 1.0;
        if (c->n_active < c->o.concurrency)
            for (size_t i = 0; i < c->n_wait; i++)
                if (c->wait[i]->due < wake) wake = c->wait[i]->due;
        double dt = wake - et_now();
        int ms = dt <= 0 ? 0 : (int)(dt * 1000.0) + 1;
        if (c->n_active) {
            mc = curl_multi_poll(c->multi, NULL, 0, ms, NULL);
            if (mc != CURLM_OK) return -et_err_set(err, ET_ENET, "curl_multi_poll: %s", curl_multi_strerror(mc));
        } else if (ms > 0) {
            struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

/* ---- one blocking GET ---------------------------------------------------------------------------- */

int et_llm_get(const char *url, const char *api_key, double timeout, char **body, size_t *len, long *status,
               et_error *err) {
    *body = NULL;
    *len = 0;
    *status = 0;
    pthread_once(&curl_once, curl_init_once);
    CURL *e = curl_easy_init();
    if (!e) return et_err_set(err, ET_ENOMEM, "curl_easy_init failed");
    req r = {0};
    r.retry_after = -1;
    struct curl_slist *h = curl_slist_append(NULL, "Accept: application/json");
    et_buf auth = {0};
    int rc = ET_OK;
    if (api_key && *api_key) {
        rc = et_buf_printf(&auth, err, "Authorization: Bearer %s", api_key);
        struct curl_slist *t = rc ? NULL : curl_slist_append(h, auth.data);
        if (!rc && !t) rc = et_err_set(err, ET_ENOMEM, "out of memory (headers)");
        if (t) h = t;
    }
    if (!h && !rc) rc = et_err_set(err, ET_ENOMEM, "out of memory (headers)");
    if (!rc) {
        long tmo = (long)(timeout * 1000.0);
        if (tmo < 1) tmo = 1;
        curl_easy_setopt(e, CURLOPT_URL, url);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, tmo);
        curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
        curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r.errbuf);
        curl_easy_setopt(e, CURLOPT_USERAGENT, "embtune/" ET_VERSION);
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
        CURLcode cc = curl_easy_perform(e);
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
        if (cc != CURLE_OK) {
            char msg[512];
            snprintf(msg, sizeof(msg), "%s: %s%s%s", url, curl_easy_strerror(cc), r.errbuf[0] ? ": " : "", r.errbuf);
            et_llm_scrub(msg, sizeof(msg), api_key);
            rc = et_err_set(err, ET_ENET, "%s", msg);
        }
    }
    if (!rc) rc = scrub_buf(&r.resp, api_key, err);
    if (!rc) {
        *body = r.resp.data ? r.resp.data : et_strdup("", err);
        *len = r.resp.len;
        r.resp.data = NULL;
        if (!*body) rc = ET_ENOMEM;
    }
    et_buf_free(&r.resp);
    if (auth.data) memset(auth.data, 0, auth.len);
    et_buf_free(&auth);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return rc;
}
