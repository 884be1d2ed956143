/* serve.h - INTERNAL: the embeddings HTTP server (libmicrohttpd).
 *
 * Threads: libmicrohttpd's poll threads read requests, parse and validate the
 * JSON (serve_request.c), then suspend the connection and queue a job; ONE
 * worker thread takes the queued jobs as a batch (dynamic batching, see
 * serve.c), tokenizes and embeds all their inputs in one forward pass through
 * the backend, and resumes the connections; the poll threads format and send
 * the replies. The model is only ever used by the worker.
 *
 * The backend is an interface so the HTTP layer can be tested with a fake
 * embedding function; serve_model.c implements it over et_model.
 */
#ifndef ET_SERVE_H
#define ET_SERVE_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* ---- backend ------------------------------------------------------------------------- */

typedef struct serve_backend {
    void *ctx;
    size_t dim;        /* embedding width */
    size_t max_length; /* tokens per sequence the model accepts (special tokens included) */
    size_t vocab_size; /* token ids must be < vocab_size */
    /* Token ids of `len` bytes of text (prompt already prepended) exactly as the
     * model embeds them (special tokens, unknown-token handling). *n_full = the
     * count before truncation; if it exceeds max_len (> 0) the ids are cut to
     * max_len the way the model truncates (right), or keeping the end (left = 1).
     * *ids: [*n], malloc'd, caller frees. `scratch` is a per-thread encoding the
     * caller zeroes first and releases with encoding_free. Called by the worker
     * (and, if tokenize_threadsafe, by several of its helper threads at once). */
    int (*tokenize)(void *ctx, et_encoding *scratch, const char *text, size_t len, size_t max_len,
                    int left, int32_t **ids, size_t *n, size_t *n_full, et_error *err);
    void (*encoding_free)(void *ctx, et_encoding *scratch);
    int tokenize_threadsafe;
    /* Embeds n token sequences into out [n, dim]. Worker only. */
    int (*embed_ids)(void *ctx, const int32_t *const *ids, const size_t *lens, size_t n,
                     float *out /* [n, dim] */, et_error *err);
    /* Prompt applied when a request names none (sentence-transformers'
     * default_prompt_name, as `embtune embed` does), or NULL. */
    const char *default_prompt;
    /* Prompt text for a prompt name, NULL if the model has none. Any thread. */
    const char *(*prompt)(void *ctx, const char *name);
    /* 1: the model pools without its prompt's tokens (1_Pooling include_prompt:
     * false), which the batched path does not implement: requests that would
     * apply a prompt get 501 instead of vectors that differ from `embtune embed`. */
    int prompt_excluded;
    /* Adapter applied in place to n vectors [n, dim] of one request; is_query says
     * whether they are queries (query-only adapters leave documents alone).
     * NULL = no adapter. Worker only. */
    int (*adapt)(void *ctx, float *vecs /* [n, dim] */, size_t n, int is_query, et_error *err);
    /* Called once by et_server_free (after the worker stopped); NULL = nothing. */
    void (*destroy)(void *ctx);
} serve_backend;

/* Helper for backends: ids of enc cut to keep its last tokens (left truncation):
 * the leading and trailing special tokens stay, the content before them goes.
 * *ids malloc'd [*n]. Returns 0, or -1 when out of memory. */
int serve_cut_left(const et_encoding *enc, size_t max_len, int32_t **ids, size_t *n);
/* Copy of n ids (malloc'd); NULL when out of memory. */
int32_t *serve_copy_ids(const int32_t *ids, size_t n);

/* ---- requests (serve_request.c) --------------------------------------------------------- */

enum serve_api { SERVE_OPENAI = 0, SERVE_TEI = 1 };
enum serve_encoding { SERVE_FLOAT = 0, SERVE_BASE64 = 1 };
enum serve_input_type { SERVE_INPUT_NONE = 0, SERVE_INPUT_QUERY, SERVE_INPUT_DOCUMENT };

/* An error reply: HTTP status + an OpenAI-style error (type, param, code). */
typedef struct serve_error {
    int status;      /* 400, 401, 404, 405, 413, 500, 503 */
    const char *type;  /* "invalid_request_error", "authentication_error", "server_error" */
    const char *param; /* the offending field, or NULL */
    const char *code;  /* machine-readable code, or NULL */
    char message[512];
} serve_error;

typedef struct serve_limits {
    size_t max_inputs; /* inputs per request */
    size_t dim;        /* for `dimensions` */
    size_t vocab_size; /* for token-id inputs */
} serve_limits;

/* A parsed, validated request. Texts point into the parsed JSON (owned here). */
typedef struct serve_request {
    int api;            /* enum serve_api */
    size_t n;           /* number of inputs (>= 1) */
    const char **texts; /* [n] text inputs (NULL when ids are given) */
    size_t *text_lens;  /* [n] */
    int32_t **ids;      /* [n] token-id inputs (NULL when texts are given), each malloc'd */
    size_t *id_lens;    /* [n] */
    int encoding;       /* enum serve_encoding */
    size_t dimensions;  /* 0 = the model's width */
    int normalize;      /* 1 = L2-normalize the output (TEI default), 0 = as the model gives */
    int truncate;       /* -1 = server default, 0 = refuse long inputs, 1 = cut them */
    int truncate_left;  /* 1 = keep the end of long inputs (TEI truncation_direction) */
    int input_type;     /* enum serve_input_type */
    char *prompt_name;  /* explicit prompt name (TEI prompt_name), or NULL */
    void *json;         /* the cJSON tree */
} serve_request;

/* Parses a request body for `api`. Returns 0, or fills e (status 400/413). */
int serve_parse_request(serve_request *req, int api, const char *body, size_t len,
                        const serve_limits *lim, serve_error *e);
void serve_request_free(serve_request *req);

/* Response bodies (malloc'd into b). vecs [n, dims], already final. */
int serve_format_openai(et_buf *b, const float *vecs, size_t n, size_t dims, int encoding,
                        const char *model, size_t prompt_tokens, et_error *err);
int serve_format_tei(et_buf *b, const float *vecs, size_t n, size_t dims, et_error *err);
int serve_format_error(et_buf *b, int api, const serve_error *e, et_error *err);
void serve_error_set(serve_error *e, int status, const char *type, const char *param,
                     const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* Standard base64 (with padding) of n bytes; out must hold 4*ceil(n/3)+1. */
size_t serve_base64(char *out, const uint8_t *in, size_t n);

/* ---- the server (serve.c) ------------------------------------------------------------------ */

typedef struct serve_stats {
    uint64_t requests;   /* HTTP requests answered */
    uint64_t jobs;       /* embedding requests run */
    uint64_t batches;    /* forward passes */
    uint64_t inputs;     /* texts embedded */
    uint64_t max_batch_jobs; /* most requests merged into one forward pass */
    uint64_t cancelled;  /* queued requests dropped because their client had gone */
} serve_stats;

/* Starts a server over a backend (borrowed; must outlive the server). */
int serve_start_backend(et_server **out, const serve_backend *be, const et_serve_opts *opts,
                        et_error *err);
void serve_get_stats(et_server *s, serve_stats *st);

#endif
