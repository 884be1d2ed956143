/* llm_client.h - many OpenAI-compatible HTTP requests in flight (libcurl multi).
 *
 * The caller submits request bodies with a tag and collects results one at a
 * time. The client keeps up to `concurrency` requests in flight, applies a
 * per-request timeout, and retries with exponential backoff and full jitter on
 * connection errors, timeouts, 408/409/425/429 and 5xx, honouring Retry-After
 * (seconds or an HTTP date) and retry-after-ms. A 2xx body that the caller's
 * accept() callback rejects (truncated JSON, an HTML page) is retried too.
 *
 * The API key is sent as "Authorization: Bearer KEY"; it is never printed, and
 * every error message and response body handed out has it replaced by
 * "[REDACTED]".
 */
#ifndef ET_LLM_CLIENT_H
#define ET_LLM_CLIENT_H

#include "util.h"

typedef struct et_llm et_llm;

/* Returns 1 to accept a 2xx body, 0 to retry it (why: a short reason). */
typedef int (*et_llm_accept_fn)(void *ud, uint64_t tag, const char *body, size_t len, char *why, size_t why_len);

typedef struct et_llm_opts {
    const char *url;        /* full endpoint URL (see et_llm_endpoint) */
    const char *api_key;    /* NULL or "" = no Authorization header; copied */
    size_t concurrency;     /* requests in flight (>= 1) */
    double timeout;         /* seconds per attempt (> 0) */
    int retries;            /* retries after the first attempt (>= 0) */
    double backoff_base;    /* first backoff, seconds (default 0.5) */
    double backoff_max;     /* cap of one backoff, seconds (default 30) */
    double retry_after_max; /* cap on a server's Retry-After, seconds (default 120) */
    uint64_t seed;          /* jitter generator seed */
    et_llm_accept_fn accept; /* may be NULL: every 2xx body is accepted */
    void *accept_ud;
    volatile int *stop;     /* may be NULL; when it turns non-zero (e.g. set by a signal
                               handler) et_llm_next returns -ET_ECANCELED within ~1 s */
} et_llm_opts;

typedef struct et_llm_result {
    uint64_t tag;
    int ok;            /* 1: a 2xx body was accepted */
    long http_status;  /* status of the last attempt; 0 = no HTTP response */
    char *body;        /* [len] response body of the last attempt, key scrubbed; caller frees */
    size_t len;
    int attempts;
    char error[512];   /* when !ok: what went wrong on the last attempt (key scrubbed) */
} et_llm_result;

typedef struct et_llm_stats {
    size_t attempts;       /* HTTP attempts started */
    size_t retries;        /* attempts that were retries */
    size_t max_in_flight;  /* highest number of simultaneous transfers */
} et_llm_stats;

/* Endpoint URL from a base: "http://h:p" -> "http://h:p/v1/chat/completions",
 * "http://h:p/v1" -> ".../v1/chat/completions", a full ".../chat/completions"
 * unchanged. Caller frees. */
char *et_llm_endpoint(const char *base, const char *path, et_error *err);

int et_llm_new(et_llm **out, const et_llm_opts *opts, et_error *err);
void et_llm_free(et_llm *c);

/* Queues a POST of `body` (JSON, copied). The tag comes back in the result.
 * `attempt0` numbers the first attempt (sent as header X-Embtune-Attempt,
 * which a test server uses to answer deterministically). */
int et_llm_submit(et_llm *c, uint64_t tag, const char *body, size_t len, int attempt0, et_error *err);

/* Runs transfers until one request finishes (with success or after its last
 * retry) and fills *res (caller frees res->body). Returns 1 when *res was
 * filled, 0 when nothing is queued, or an error status < 0 ... see below.
 * On a curl failure it returns -ET_ENET with err set; when *opts.stop is set,
 * -ET_ECANCELED (requests in flight are abandoned: et_llm_free drops them). */
int et_llm_next(et_llm *c, et_llm_result *res, et_error *err);

/* Requests queued, waiting for a retry, or in flight. */
size_t et_llm_pending(const et_llm *c);
void et_llm_get_stats(const et_llm *c, et_llm_stats *st);

/* Replaces every occurrence of key in s (NUL-terminated) by "[REDACTED]",
 * truncating to cap bytes (with NUL). */
void et_llm_scrub(char *s, size_t cap, const char *key);

/* One blocking GET (e.g. /v1/models), same auth and scrubbing; caller frees *body. */
int et_llm_get(const char *url, const char *api_key, double timeout, char **body, size_t *len, long *status,
               et_error *err);

#endif
