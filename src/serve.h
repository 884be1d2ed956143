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
    /* Tokenizes `len` bytes (prompt already prepended) with special tokens;
     * max_len > 0 truncates as Hugging Face does. Reuses enc's arrays; freed
     * with encoding_free. Called by the worker (and its et_parallel helpers). */
    int (*encode)(void *ctx, const char *text, size_t len, size_t max_len, et_encoding *enc,
                  et_error *err);
    void (*encoding_free)(void *ctx, et_encoding *enc);
    int encode_threadsafe; /* 1 = encode may run on several threads at once */
    /* Embeds n token sequences into out [n, dim]. Worker only. */
    int (*embed_ids)(void *ctx, const int32_t *const *ids, const size_t *lens, size_t n,
                     float *out /* [n, dim] */, et_error *err);
    /* Prompt text for a prompt name, NULL if the model has none. Any thread. */
    const char *(*prompt)(void *ctx, const char *name);
    /* Query-side adapter applied in place to n vectors [n, dim]; NULL = none. Worker only. */
    int (*adapt_query)(void *ctx, float *vecs /* [n, dim] */, size_t n, et_error *err);
} serve_backend;

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
} serve_stats;

/* Starts a server over a backend (borrowed; must outlive the server). */
int serve_start_backend(et_server **out, const serve_backend *be, const et_serve_opts *opts,
                        et_error *err);
void serve_get_stats(et_server *s, serve_stats *st);

#endif
