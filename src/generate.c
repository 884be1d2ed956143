/* generate.c - the `generate` job: chunks -> (query, chunk) training data.
 *
 * Flow: load chunks -> open (or resume) the journal -> generate the chunks not
 * finished yet (LLM over libcurl multi, or the embedded generator) appending
 * one journal record per finished chunk -> assemble the dataset(s) from the
 * journal in chunk order -> write them atomically, plus a failures file.
 *
 * Journal "<output>.journal", JSONL:
 *   line 1  {"embtune_journal": "generate", "version": 1, "input": sha256 of
 *           the chunks, "options": sha256 of the options that shape the
 *           questions, "chunks": N}
 *   then    {"i": index, "id": chunk id, "status": "ok"|"short"|"failed",
 *            "questions": [...], "error": "..."}
 * Each record is one write() on an O_APPEND descriptor followed by fdatasync
 * (LLM mode; the embedded generator syncs once a second). A torn last line
 * (kill -9, power loss) is ignored and cut off when the run resumes. A chunk
 * with a "failed" record is tried again by the next run; the last record of a
 * chunk wins. After a complete run (every chunk has all its questions) the
 * journal is deleted, unless keep_journal; with short or failed chunks it
 * stays so that a rerun asks again for those only. opts->stop (a signal)
 * stops the run between chunks: what finished is journaled and synced, the
 * requests in flight are dropped, and the result is ET_ECANCELED.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunks.h"
#include "dataset.h"
#include "generate_local.h"
#include "generate_parse.h"
#include "json.h"
#include "llm_client.h"
#include "strmap.h"

#define GEN_MAX_ROUNDS 3     /* one request + up to two follow-ups for missing questions */
#define GEN_LOCAL_SYNC_S 1.0 /* embedded generator: seconds between fdatasyncs */

static const char default_prompt[] =
    "Context information is below.\n"
    "---------------------\n"
    "{context}\n"
    "---------------------\n"
    "Given the context information and no prior knowledge, write {n} questions that a reader could ask "
    "and that can be answered only from the context above. The questions must be diverse in nature "
    "across the context, each one self-contained (do not refer to \"the context\" or \"the text\"), "
    "and must not copy sentences from the context. Output only the questions, one per line, "
    "without numbering, answers or any other text.";

void et_generate_opts_init(et_generate_opts *o) {
    memset(o, 0, sizeof(*o));
    o->format = "llama";
    o->questions_per_chunk = 2;
    o->concurrency = 8;
    o->timeout = 120;
    o->retries = 5;
    o->temperature = 0.7;
    o->top_p = -1;
    o->max_tokens = 512;
}

/* ---- per-chunk results --------------------------------------------------------------------- */

enum { ST_TODO = 0, ST_OK, ST_SHORT, ST_FAILED };

typedef struct chunk_state {
    int status;
    et_strlist q;   /* kept questions */
    int round;      /* requests answered so far (LLM) */
    int in_flight;
    int attempts;   /* HTTP attempts over all rounds */
    char error[512];
} chunk_state;

typedef struct job {
    const et_generate_opts *o;
    et_chunks cs;          /* distinct chunks, input order */
    size_t n_dup;          /* duplicate chunk ids skipped */
    chunk_state *st;       /* [cs.n] */
    char *journal_path;
    int jfd;
    size_t jbatch;         /* records written since the last fsync */
    char *prompt;          /* template, owned */
    char *model;           /* resolved model name, owned (may be NULL) */
    char input_hash[65], opts_hash[65];
    int use_mct;           /* send max_completion_tokens instead of max_tokens */
    int no_temperature;    /* the server rejected temperature */
    et_generate_summary sum;
} job;

/* ---- hashing of input and options -------------------------------------------------------------- */

static void hash_input(job *j) {
    et_sha256_ctx c;
    et_sha256_init(&c);
    for (size_t i = 0; i < j->cs.n; i++) {
        const et_chunk *ch = &j->cs.items[i];
        et_sha256_update(&c, ch->id, strlen(ch->id) + 1);
        et_sha256_update(&c, ch->text, strlen(ch->text) + 1);
    }
    uint8_t h[32];
    et_sha256_final(&c, h);
    et_hex(j->input_hash, h, 32);
}

static int hash_options(job *j, et_error *err) {
    const et_generate_opts *o = j->o;
    et_buf b = {0};
    int rc;
    if (o->llm_url) {
        uint8_t ph[32];
        char phex[65];
        et_sha256(j->prompt, strlen(j->prompt), ph);
        et_hex(phex, ph, 32);
        rc = et_buf_printf(&b, err, "llm v1 model=%s n=%zu temperature=%.17g top_p=%.17g max_tokens=%ld seed=%s%llu "
                           "prompt=%s", j->model ? j->model : "", o->questions_per_chunk, o->temperature, o->top_p,
                           o->max_tokens, o->has_seed ? "" : "none/", (unsigned long long)o->seed, phex);
    } else {
        rc = et_buf_printf(&b, err, "local v1 n=%zu seed=%llu", o->questions_per_chunk, (unsigned long long)o->seed);
    }
    if (!rc) {
        uint8_t h[32];
        et_sha256(b.data, b.len, h);
        et_hex(j->opts_hash, h, 32);
    }
    et_buf_free(&b);
    return rc;
}

/* ---- journal ------------------------------------------------------------------------------------ */

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int journal_header(job *j, et_buf *b, et_error *err) {
    return et_buf_printf(b, err,
                         "{\"embtune_journal\": \"generate\", \"version\": 1, \"input\": \"%s\", \"options\": \"%s\", "
                         "\"chunks\": %zu}\n",
                         j->input_hash, j->opts_hash, j->cs.n);
}

static const char *status_name(int s) {
    return s == ST_OK ? "ok" : s == ST_SHORT ? "short" : "failed";
}

/* Appends chunk i's record; sync = fdatasync now. */
static int journal_append(job *j, size_t i, int sync, et_error *err) {
    const chunk_state *s = &j->st[i];
    et_buf b = {0};
    int rc = et_buf_printf(&b, err, "{\"i\": %zu, \"id\": ", i);
    if (!rc) rc = et_buf_json_string(&b, j->cs.items[i].id, strlen(j->cs.items[i].id), err);
    if (!rc) rc = et_buf_printf(&b, err, ", \"status\": \"%s\", \"questions\": [", status_name(s->status));
    for (size_t k = 0; k < s->q.n && !rc; k++) {
        if (k) rc = et_buf_puts(&b, ", ", err);
        if (!rc) rc = et_buf_json_string(&b, s->q.v[k], strlen(s->q.v[k]), err);
    }
    if (!rc) rc = et_buf_puts(&b, "]", err);
    if (!rc && s->error[0]) {
        rc = et_buf_puts(&b, ", \"error\": ", err);
        if (!rc) rc = et_buf_json_string(&b, s->error, strlen(s->error), err);
    }
    if (!rc) rc = et_buf_puts(&b, "}\n", err);
    if (!rc && write_all(j->jfd, b.data, b.len))
        rc = et_err_set(err, ET_EIO, "%s: write failed: %s", j->journal_path, strerror(errno));
    et_buf_free(&b);
    if (!rc) j->jbatch++;
    if (!rc && sync && j->jbatch) {
        if (fdatasync(j->jfd)) rc = et_err_set(err, ET_EIO, "%s: fsync failed: %s", j->journal_path, strerror(errno));
        j->jbatch = 0;
    }
    return rc;
}

static int journal_sync(job *j, et_error *err) {
    if (j->jfd < 0 || !j->jbatch) return ET_OK;
    j->jbatch = 0;
    if (fdatasync(j->jfd)) return et_err_set(err, ET_EIO, "%s: fsync failed: %s", j->journal_path, strerror(errno));
    return ET_OK;
}

/* Applies one record line (JSON) to the state. */
static int journal_record(job *j, const char *line, size_t len, size_t lineno, et_strmap *ids, et_error *err) {
    char where[1100];
    snprintf(where, sizeof(where), "%s:%zu", j->journal_path, lineno);
    cJSON *r = NULL;
    int rc = et_json_parse(&r, line, len, where, err);
    if (rc) return rc;
    size_t i = 0;
    const char *id = NULL, *status = NULL, *error = NULL;
    const cJSON *qs = NULL;
    if (!rc) rc = et_json_req_size(r, where, "i", &i, err);
    if (!rc) rc = et_json_req_str(r, where, "id", &id, err);
    if (!rc) rc = et_json_req_str(r, where, "status", &status, err);
    if (!rc) rc = et_json_req_arr(r, where, "questions", &qs, err);
    if (!rc) rc = et_json_opt_str(r, where, "error", &error, err);
    if (!rc && (i >= j->cs.n || strcmp(j->cs.items[i].id, id)))
        rc = et_err_set(err, ET_EFORMAT, "%s: record for chunk %zu '%s' does not match the input", where, i, id);
    int st = 0;
    if (!rc) {
        st = !strcmp(status, "ok") ? ST_OK : !strcmp(status, "short") ? ST_SHORT : !strcmp(status, "failed") ? ST_FAILED : 0;
        if (!st) rc = et_err_set(err, ET_EFORMAT, "%s: field 'status': expected ok, short or failed", where);
    }
    (void)ids;
    if (!rc) {
        chunk_state *s = &j->st[i];
        et_strlist_free(&s->q);
        const cJSON *q;
        cJSON_ArrayForEach(q, qs) {
            if (!cJSON_IsString(q)) {
                rc = et_err_set(err, ET_EFORMAT, "%s: field 'questions': expected strings", where);
                break;
            }
            if ((rc = et_strlist_push(&s->q, q->valuestring, strlen(q->valuestring), err))) break;
        }
        s->status = st;
        snprintf(s->error, sizeof(s->error), "%s", error ? error : "");
    }
    cJSON_Delete(r);
    return rc;
}

/* Opens the journal: resumes a matching one, or starts a new one. */
static int journal_open(job *j, et_error *err) {
    const char *path = j->journal_path;
    int rc = ET_OK;
    if (!j->o->restart && et_file_exists(path)) {
        char *data = NULL;
        size_t len = 0;
        if ((rc = et_read_file(path, (size_t)8 << 30, &data, &len, err))) return rc;
        char *nl = memchr(data, '\n', len);
        size_t good = 0; /* bytes of complete, valid lines */
        if (nl) {
            cJSON *h = cJSON_ParseWithLength(data, (size_t)(nl - data));
            const char *kind = NULL, *in = NULL, *op = NULL;
            size_t n = 0;
            if (!h || et_json_req_str(h, path, "embtune_journal", &kind, NULL) || strcmp(kind, "generate") ||
                et_json_req_str(h, path, "input", &in, NULL) || et_json_req_str(h, path, "options", &op, NULL) ||
                et_json_req_size(h, path, "chunks", &n, NULL)) {
                rc = et_err_set(err, ET_EFORMAT, "%s: not a generate journal (delete it or use --restart)", path);
            } else if (strcmp(in, j->input_hash) || n != j->cs.n) {
                rc = et_err_set(err, ET_EINVAL,
                                "%s: the journal belongs to another input (the chunk file changed); delete it or "
                                "use --restart to start over",
                                path);
            } else if (strcmp(op, j->opts_hash)) {
                rc = et_err_set(err, ET_EINVAL,
                                "%s: the journal was written with other generation options (model, questions per "
                                "chunk, prompt, sampling or seed); rerun with the same options, or use --restart",
                                path);
            }
            cJSON_Delete(h);
            good = (size_t)(nl - data) + 1;
            size_t lineno = 1;
            for (size_t pos = good; !rc && pos < len;) {
                char *e = memchr(data + pos, '\n', len - pos);
                lineno++;
                if (!e) break; /* torn last line: ignored */
                size_t end = (size_t)(e - data);
                et_error lerr = {0};
                int lrc = journal_record(j, data + pos, end - pos, lineno, NULL, &lerr);
                if (lrc) {
                    /* a bad line followed by nothing but whitespace is a torn tail too */
                    size_t k = end + 1;
                    while (k < len && (data[k] == '\n' || data[k] == ' ' || data[k] == 0)) k++;
                    if (k < len || lrc == ET_ENOMEM) {
                        rc = lrc;
                        if (err) *err = lerr;
                        if (lrc != ET_ENOMEM) et_err_prefix(err, "corrupt journal (delete it or use --restart)");
                    }
                    break;
                }
                good = end + 1;
                pos = end + 1;
            }
        }
        free(data);
        if (rc) return rc;
        if (good) {
            j->jfd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
            if (j->jfd < 0) return et_err_set(err, ET_EIO, "%s: cannot open: %s", path, strerror(errno));
            if (good < len && ftruncate(j->jfd, (off_t)good))
                return et_err_set(err, ET_EIO, "%s: cannot cut the torn tail: %s", path, strerror(errno));
            for (size_t i = 0; i < j->cs.n; i++)
                if (j->st[i].status == ST_OK || j->st[i].status == ST_SHORT) j->sum.n_resumed++;
            return ET_OK;
        }
        /* no complete header line: start over */
    }
    for (size_t i = 0; i < j->cs.n; i++) {
        et_strlist_free(&j->st[i].q);
        j->st[i].status = ST_TODO;
    }
    j->jfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (j->jfd < 0) return et_err_set(err, ET_EIO, "%s: cannot create: %s", path, strerror(errno));
    et_buf b = {0};
    rc = journal_header(j, &b, err);
    if (!rc && (write_all(j->jfd, b.data, b.len) || fsync(j->jfd)))
        rc = et_err_set(err, ET_EIO, "%s: write failed: %s", path, strerror(errno));
    et_buf_free(&b);
    return rc;
}

/* ---- the embedded generator ------------------------------------------------------------------------ */

static int run_local(job *j, et_error *err) {
    et_genlocal *g = NULL;
    int rc = et_genlocal_new(&g, &j->cs, j->o->seed, err);
    if (rc) return rc;
    et_progress pr;
    et_progress_init(&pr, "generate", "chunks/s", j->cs.n);
    size_t done = j->sum.n_resumed;
    size_t n = j->o->questions_per_chunk;
    double last_sync = et_now();
    for (size_t i = 0; i < j->cs.n && !rc; i++) {
        chunk_state *s = &j->st[i];
        if (s->status == ST_OK || s->status == ST_SHORT) continue;
        if (j->o->stop && *j->o->stop) {
            rc = et_err_set(err, ET_ECANCELED, "interrupted");
            break;
        }
        et_strlist_free(&s->q);
        rc = et_genlocal_questions(g, i, n, &s->q, err);
        if (rc) break;
        s->status = s->q.n == n ? ST_OK : s->q.n ? ST_SHORT : ST_FAILED;
        snprintf(s->error, sizeof(s->error), "%s",
                 s->q.n == n ? "" : "the chunk has too few distinct content words for more questions");
        rc = journal_append(j, i, 0, err);
        /* each record is written at once (a kill loses nothing written); fdatasync, for
           power loss, at most once a second: regenerating a second of work is cheap */
        if (!rc && et_now() - last_sync >= GEN_LOCAL_SYNC_S) {
            rc = journal_sync(j, err);
            last_sync = et_now();
        }
        et_progress_update(&pr, ++done, NULL);
    }
    if (!rc || rc == ET_ECANCELED) {
        int src = journal_sync(j, rc ? NULL : err);
        if (!rc) rc = src;
    }
    et_progress_done(&pr, done);
    et_genlocal_free(g);
    return rc;
}

/* ---- LLM mode ----------------------------------------------------------------------------------------- */

/* Prompt text for chunk i: the template with {context} and {n}; plus, for a
 * follow-up, the questions already kept. */
static int build_prompt(job *j, size_t i, size_t want, et_buf *b, et_error *err) {
    const char *t = j->prompt;
    int rc = ET_OK;
    while (*t && !rc) {
        if (!strncmp(t, "{context}", 9)) {
            rc = et_buf_puts(b, j->cs.items[i].text, err);
            t += 9;
        } else if (!strncmp(t, "{n}", 3)) {
            rc = et_buf_printf(b, err, "%zu", want);
            t += 3;
        } else {
            rc = et_buf_append(b, t, 1, err);
            t++;
        }
    }
    const et_strlist *q = &j->st[i].q;
    if (!rc && q->n) {
        rc = et_buf_puts(b, "\n\nThese questions were already written; do not repeat or rephrase them:\n", err);
        for (size_t k = 0; k < q->n && !rc; k++) rc = et_buf_printf(b, err, "- %s\n", q->v[k]);
        if (!rc) rc = et_buf_printf(b, err, "Write %zu more, different question%s.", want, want == 1 ? "" : "s");
    }
    return rc;
}

static int build_body(job *j, size_t i, et_buf *b, et_error *err) {
    size_t want = j->o->questions_per_chunk - j->st[i].q.n;
    et_buf p = {0};
    int rc = build_prompt(j, i, want, &p, err);
    if (!rc) rc = et_buf_puts(b, "{", err);
    if (!rc && j->model) {
        rc = et_buf_puts(b, "\"model\": ", err);
        if (!rc) rc = et_buf_json_string(b, j->model, strlen(j->model), err);
        if (!rc) rc = et_buf_puts(b, ", ", err);
    }
    if (!rc) rc = et_buf_puts(b, "\"messages\": [{\"role\": \"user\", \"content\": ", err);
    if (!rc) rc = et_buf_json_string(b, p.data, p.len, err);
    if (!rc) rc = et_buf_puts(b, "}], \"stream\": false", err);
    const et_generate_opts *o = j->o;
    if (!rc && o->temperature >= 0 && !j->no_temperature) rc = et_buf_printf(b, err, ", \"temperature\": %.6g", o->temperature);
    if (!rc && o->top_p >= 0) rc = et_buf_printf(b, err, ", \"top_p\": %.6g", o->top_p);
    if (!rc && o->max_tokens > 0)
        rc = et_buf_printf(b, err, ", \"%s\": %ld", j->use_mct ? "max_completion_tokens" : "max_tokens", o->max_tokens);
    if (!rc && o->has_seed) rc = et_buf_printf(b, err, ", \"seed\": %llu", (unsigned long long)(o->seed & 0x7fffffffull));
    if (!rc) rc = et_buf_puts(b, "}", err);
    et_buf_free(&p);
    return rc;
}

static int submit(job *j, et_llm *c, size_t i, et_error *err) {
    et_buf b = {0};
    int rc = build_body(j, i, &b, err);
    if (!rc) rc = et_llm_submit(c, (uint64_t)i, b.data, b.len, 0, err);
    if (!rc) j->st[i].in_flight = 1;
    et_buf_free(&b);
    return rc;
}

/* A 2xx body is usable when it holds assistant text; otherwise it is retried. */
static int accept_body(void *ud, uint64_t tag, const char *body, size_t len, char *why, size_t why_len) {
    (void)ud;
    (void)tag;
    char *text = NULL;
    int trunc = 0;
    et_error e = {0};
    int rc = et_gen_reply_text(body, len, &text, &trunc, &e);
    free(text);
    if (rc) snprintf(why, why_len, "%s", e.msg);
    return rc == ET_OK;
}

/* Resolves the model name from /v1/models when none was given. Fails fast
 * when the server cannot be reached at all. */
static int resolve_model(job *j, et_error *err) {
    const et_generate_opts *o = j->o;
    if (o->llm_model && *o->llm_model) {
        j->model = et_strdup(o->llm_model, err);
        return j->model ? ET_OK : ET_ENOMEM;
    }
    char *url = et_llm_endpoint(o->llm_url, "/models", err);
    if (!url) return ET_ENOMEM;
    char *body = NULL;
    size_t len = 0;
    long status = 0;
    double tmo = o->timeout < 30 ? o->timeout : 30;
    int rc = et_llm_get(url, o->api_key, tmo, &body, &len, &status, err);
    if (rc) {
        et_err_prefix(err, "cannot reach the LLM server (--llm-url)");
    } else if (status == 401 || status == 403) {
        rc = et_err_set(err, ET_ENET, "%s: HTTP %ld: the server refused the API key (EMBTUNE_API_KEY / OPENAI_API_KEY)",
                        url, status);
    } else if (status >= 200 && status < 300) {
        cJSON *r = cJSON_ParseWithLength(body, len);
        const cJSON *data = r ? cJSON_GetObjectItemCaseSensitive(r, "data") : NULL;
        const cJSON *m0 = cJSON_IsArray(data) ? cJSON_GetArrayItem(data, 0) : NULL;
        const cJSON *id = cJSON_IsObject(m0) ? cJSON_GetObjectItemCaseSensitive(m0, "id") : NULL;
        if (cJSON_IsString(id) && *id->valuestring) {
            j->model = et_strdup(id->valuestring, err);
            if (!j->model) rc = ET_ENOMEM;
        }
        cJSON_Delete(r);
    }
    /* other statuses: the server has no /models; send no model name */
    free(body);
    free(url);
    return rc;
}

/* A chunk's request finished: parse, keep, ask again or record. */
static int on_result(job *j, et_llm *c, et_llm_result *r, size_t *done, et_error *err) {
    size_t i = (size_t)r->tag;
    chunk_state *s = &j->st[i];
    size_t n = j->o->questions_per_chunk;
    s->in_flight = 0;
    s->attempts += r->attempts;
    if (!r->ok) {
        /* server quirks: OpenAI's reasoning models want max_completion_tokens and no temperature */
        if (r->http_status == 400 && !j->use_mct && strstr(r->error, "max_completion_tokens")) {
            j->use_mct = 1;
            return submit(j, c, i, err);
        }
        if (r->http_status == 400 && !j->no_temperature && strstr(r->error, "temperature")) {
            j->no_temperature = 1;
            return submit(j, c, i, err);
        }
        if (r->http_status == 401 || r->http_status == 403)
            return et_err_set(err, ET_ENET, "the LLM server refused the request (%s); check EMBTUNE_API_KEY / OPENAI_API_KEY",
                              r->error);
        if (r->http_status == 404)
            return et_err_set(err, ET_ENET, "the LLM server answered %s; check --llm-url and --llm-model", r->error);
        snprintf(s->error, sizeof(s->error), "%s (after %d attempt%s)", r->error, r->attempts, r->attempts == 1 ? "" : "s");
    } else {
        char *text = NULL;
        int trunc = 0;
        et_error e = {0};
        if (et_gen_reply_text(r->body, r->len, &text, &trunc, &e)) {
            snprintf(s->error, sizeof(s->error), "%s", e.msg);
        } else {
            size_t before = s->q.n;
            int rc = et_gen_parse_questions(text, strlen(text), j->cs.items[i].text, &s->q, n - s->q.n, trunc,
                                            &s->q, err);
            free(text);
            if (rc) return rc;
            if (s->q.n < n)
                snprintf(s->error, sizeof(s->error), "the reply had %zu usable question%s of %zu asked",
                         s->q.n - before, s->q.n - before == 1 ? "" : "s", n - before);
            else
                s->error[0] = 0;
        }
    }
    s->round++;
    /* ask again for missing questions after a usable reply; a request that
       failed through all its retries is final */
    if (r->ok && s->q.n < n && s->round < GEN_MAX_ROUNDS) return submit(j, c, i, err);
    s->status = s->q.n >= n ? ST_OK : s->q.n ? ST_SHORT : ST_FAILED;
    if (s->status == ST_OK) s->error[0] = 0;
    (*done)++;
    return journal_append(j, i, 1, err);
}

static int run_llm(job *j, et_error *err) {
    const et_generate_opts *o = j->o;
    char *url = et_llm_endpoint(o->llm_url, "/chat/completions", err);
    if (!url) return ET_ENOMEM;
    et_llm_opts lo = {0};
    lo.url = url;
    lo.api_key = o->api_key;
    lo.concurrency = o->concurrency;
    lo.timeout = o->timeout;
    lo.retries = o->retries;
    lo.seed = o->seed;
    lo.accept = accept_body;
    lo.stop = o->stop;
    const char *bb = getenv("EMBTUNE_BACKOFF_BASE"); /* tests: shorter backoff */
    if (bb) et_parse_double(bb, &lo.backoff_base);
    et_llm *c = NULL;
    int rc = et_llm_new(&c, &lo, err);
    free(url);
    if (rc) return rc;
    et_progress pr;
    et_progress_init(&pr, "generate", "chunks/s", j->cs.n);
    size_t done = j->sum.n_resumed, next = 0, failed = 0;
    for (;;) {
        /* keep the client fed, but no more than in flight: a kill loses at most those */
        while (!rc && next < j->cs.n && et_llm_pending(c) < o->concurrency && !(o->stop && *o->stop)) {
            chunk_state *s = &j->st[next];
            if (s->status != ST_OK && s->status != ST_SHORT) {
                et_strlist_free(&s->q);
                s->round = 0;
                s->error[0] = 0;
                rc = submit(j, c, next, err);
            }
            next++;
        }
        if (rc) break;
        et_llm_result r;
        int got = et_llm_next(c, &r, err);
        if (got < 0) {
            rc = -got;
            break;
        }
        if (got == 0) break;
        int st_before = j->st[r.tag].status;
        rc = on_result(j, c, &r, &done, err);
        if (!rc && j->st[r.tag].status == ST_FAILED && st_before != ST_FAILED) failed++;
        free(r.body);
        if (rc) break;
        char extra[64];
        snprintf(extra, sizeof(extra), "failed %zu", failed);
        et_progress_update(&pr, done, extra);
    }
    if (rc == ET_ECANCELED) journal_sync(j, NULL); /* each record was synced already; belt and braces */
    et_progress_done(&pr, done);
    et_llm_stats st;
    et_llm_get_stats(c, &st);
    j->sum.requests = st.attempts;
    j->sum.retries = st.retries;
    j->sum.max_in_flight = st.max_in_flight;
    et_llm_free(c);
    return rc;
}

/* ---- assembling the outputs ------------------------------------------------------------------------- */

/* Marks validation chunks (1) by --val-docs or --val-fraction. */
static int split_val(job *j, uint8_t *is_val, et_error *err) {
    const et_generate_opts *o = j->o;
    size_t nval = 0;
    if (o->val_docs) {
        for (size_t i = 0; i < j->cs.n; i++) {
            const char *d = j->cs.items[i].doc;
            const char *base = strrchr(d, '/');
            is_val[i] = !fnmatch(o->val_docs, d, 0) || (base && !fnmatch(o->val_docs, base + 1, 0));
            nval += is_val[i];
        }
        if (!nval) return et_err_set(err, ET_EINVAL, "--val-docs '%s' matches no chunk's document", o->val_docs);
        if (nval == j->cs.n) return et_err_set(err, ET_EINVAL, "--val-docs '%s' matches every document: nothing left to train on", o->val_docs);
        return ET_OK;
    }
    /* whole documents, in an order given by a hash of their names, until the fraction is reached */
    et_strmap docs;
    et_strmap_init(&docs);
    size_t nd = 0;
    size_t *first = et_malloc_n(j->cs.n, sizeof(size_t), err), *count = et_calloc(j->cs.n, sizeof(size_t), err);
    size_t *doc_of = et_malloc_n(j->cs.n, sizeof(size_t), err);
    int rc = first && count && doc_of ? ET_OK : ET_ENOMEM;
    for (size_t i = 0; i < j->cs.n && !rc; i++) {
        const char *d = j->cs.items[i].doc;
        int64_t id;
        int r = et_strmap_put_new(&docs, d, strlen(d), (int64_t)nd, &id, err);
        if (r < 0) { rc = err ? err->code : ET_ENOMEM; break; }
        if (r == 0) { id = (int64_t)nd; first[nd++] = i; }
        doc_of[i] = (size_t)id;
        count[id]++;
    }
    if (!rc && nd < 2)
        rc = et_err_set(err, ET_EINVAL, "--val-fraction splits by document, and the input has only one document");
    if (!rc) {
        /* order documents by hash(name, seed) */
        uint64_t *key = et_malloc_n(nd, sizeof(uint64_t), err);
        size_t *ord = et_malloc_n(nd, sizeof(size_t), err);
        uint8_t *vd = et_calloc(nd, 1, err);
        if (!key || !ord || !vd) rc = ET_ENOMEM;
        for (size_t d = 0; d < nd && !rc; d++) {
            const char *name = j->cs.items[first[d]].doc;
            key[d] = et_hash64(name, strlen(name), o->seed ^ 0x76616cull);
            ord[d] = d;
        }
        for (size_t a = 1; a < nd && !rc; a++)
            for (size_t b = a; b > 0 && key[ord[b - 1]] > key[ord[b]]; b--) {
                size_t t = ord[b];
                ord[b] = ord[b - 1];
                ord[b - 1] = t;
            }
        double target = o->val_fraction * (double)j->cs.n;
        for (size_t k = 0; k + 1 < nd && !rc && (double)nval < target; k++) {
            vd[ord[k]] = 1;
            nval += count[ord[k]];
        }
        for (size_t i = 0; i < j->cs.n && !rc; i++) is_val[i] = vd[doc_of[i]];
        free(key);
        free(ord);
        free(vd);
    }
    free(first);
    free(count);
    free(doc_of);
    et_strmap_free(&docs);
    return rc;
}

static int build_dataset(job *j, const uint8_t *is_val, int want_val, et_dataset **out, size_t *nq, et_error *err) {
    et_dataset *ds = et_dataset_new(err);
    if (!ds) return ET_ENOMEM;
    int rc = ET_OK;
    *nq = 0;
    for (size_t i = 0; i < j->cs.n && !rc; i++) {
        if (is_val && is_val[i] != want_val) continue;
        const et_chunk *ch = &j->cs.items[i];
        size_t di;
        rc = et_dataset_add_doc(ds, ch->id, ch->text, &di, err);
        const chunk_state *s = &j->st[i];
        for (size_t k = 0; k < s->q.n && !rc; k++) {
            char qid[96];
            snprintf(qid, sizeof(qid), "%.80s-q%zu", ch->id, k);
            rc = et_dataset_add_query(ds, qid, s->q.v[k], &di, 1, NULL, 0, err);
            (*nq)++;
        }
    }
    if (rc) {
        et_dataset_free(ds);
        return rc;
    }
    *out = ds;
    return ET_OK;
}

static int write_failures(job *j, const char *path, et_error *err) {
    et_buf b = {0};
    int rc = ET_OK;
    size_t n = 0;
    for (size_t i = 0; i < j->cs.n && !rc; i++) {
        const chunk_state *s = &j->st[i];
        if (s->status == ST_OK) continue;
        n++;
        rc = et_buf_puts(&b, "{\"id\": ", err);
        if (!rc) rc = et_buf_json_string(&b, j->cs.items[i].id, strlen(j->cs.items[i].id), err);
        if (!rc) rc = et_buf_puts(&b, ", \"doc\": ", err);
        if (!rc) rc = et_buf_json_string(&b, j->cs.items[i].doc, strlen(j->cs.items[i].doc), err);
        if (!rc) rc = et_buf_printf(&b, err, ", \"page_start\": %zu, \"status\": \"%s\", \"questions\": %zu, \"error\": ",
                                    j->cs.items[i].page_start, status_name(s->status ? s->status : ST_FAILED), s->q.n);
        const char *e = s->error[0] ? s->error : "not generated";
        if (!rc) rc = et_buf_json_string(&b, e, strlen(e), err);
        if (!rc) rc = et_buf_puts(&b, "}\n", err);
    }
    if (!rc && n) rc = et_write_file_atomic(path, b.data, b.len, err);
    if (!rc && !n) unlink(path);
    et_buf_free(&b);
    return rc;
}

static int assemble(job *j, int format, et_error *err) {
    const et_generate_opts *o = j->o;
    uint8_t *is_val = NULL;
    int rc = ET_OK;
    if (o->val_docs || o->val_fraction > 0) {
        is_val = et_calloc(j->cs.n ? j->cs.n : 1, 1, err);
        if (!is_val) return ET_ENOMEM;
        rc = split_val(j, is_val, err);
    }
    et_dataset *tr = NULL, *va = NULL;
    size_t ntr = 0, nva = 0;
    if (!rc) rc = build_dataset(j, is_val, 0, &tr, &ntr, err);
    if (!rc && is_val) rc = build_dataset(j, is_val, 1, &va, &nva, err);
    if (!rc && ntr == 0)
        rc = et_err_set(err, ET_EINVAL, "no questions were generated%s (see %s)", is_val ? " for the training set" : "",
                        j->sum.failures);
    if (!rc) rc = et_dataset_save(tr, o->output, format, err);
    if (!rc && va) rc = et_dataset_save(va, o->val_output, format, err);
    j->sum.n_queries = ntr + nva;
    j->sum.n_val_queries = nva;
    et_dataset_free(tr);
    et_dataset_free(va);
    free(is_val);
    return rc;
}

/* ---- the job ------------------------------------------------------------------------------------------ */

static int check_opts(const et_generate_opts *o, int *format, et_error *err) {
    if (!o->input || !*o->input) return et_err_set(err, ET_EINVAL, "no input chunk file (-i)");
    if (!o->output || !*o->output) return et_err_set(err, ET_EINVAL, "no output path (-o)");
    const char *f = o->format ? o->format : "llama";
    if (et_dataset_format_parse(f, format) || *format == ET_DS_AUTO)
        return et_err_set(err, ET_EINVAL, "--format '%s': expected llama, pairs, flag or beir", f);
    if (o->questions_per_chunk < 1 || o->questions_per_chunk > 100)
        return et_err_set(err, ET_EINVAL, "--questions-per-chunk must be in 1..100");
    if (o->concurrency < 1 || o->concurrency > 1024) return et_err_set(err, ET_EINVAL, "--concurrency must be in 1..1024");
    if (!(o->timeout > 0)) return et_err_set(err, ET_EINVAL, "--timeout must be > 0 seconds");
    if (o->retries < 0 || o->retries > 100) return et_err_set(err, ET_EINVAL, "--retries must be in 0..100");
    if (o->val_docs && o->val_fraction > 0) return et_err_set(err, ET_EINVAL, "use --val-docs or --val-fraction, not both");
    if (!(o->val_fraction >= 0 && o->val_fraction < 1)) return et_err_set(err, ET_EINVAL, "--val-fraction must be in [0, 1)");
    if ((o->val_docs || o->val_fraction > 0) && !o->val_output)
        return et_err_set(err, ET_EINVAL, "--val-docs / --val-fraction need --val-output PATH");
    if (o->val_output && !o->val_docs && !(o->val_fraction > 0))
        return et_err_set(err, ET_EINVAL, "--val-output needs --val-docs or --val-fraction");
    if (o->val_output && !strcmp(o->val_output, o->output))
        return et_err_set(err, ET_EINVAL, "--val-output must differ from -o");
    return ET_OK;
}

static int load_prompt(job *j, et_error *err) {
    const et_generate_opts *o = j->o;
    if (!o->prompt_file) {
        j->prompt = et_strdup(default_prompt, err);
        return j->prompt ? ET_OK : ET_ENOMEM;
    }
    size_t len;
    int rc = et_read_file(o->prompt_file, (size_t)1 << 20, &j->prompt, &len, err);
    if (rc) return rc;
    if (strlen(j->prompt) != len) return et_err_set(err, ET_EFORMAT, "%s: the prompt contains a NUL byte", o->prompt_file);
    if (!strstr(j->prompt, "{context}"))
        return et_err_set(err, ET_EFORMAT, "%s: the prompt has no {context} placeholder (where the chunk goes)", o->prompt_file);
    if (!strstr(j->prompt, "{n}"))
        return et_err_set(err, ET_EFORMAT, "%s: the prompt has no {n} placeholder (the number of questions)", o->prompt_file);
    return ET_OK;
}

/* Keeps the first chunk of each id. */
static int dedup_chunks(job *j, et_error *err) {
    et_strmap seen;
    et_strmap_init(&seen);
    size_t o = 0;
    int rc = ET_OK;
    for (size_t i = 0; i < j->cs.n; i++) {
        et_chunk *c = &j->cs.items[i];
        int r = et_strmap_put_new(&seen, c->id, strlen(c->id), (int64_t)i, NULL, err);
        if (r < 0) {
            rc = err ? err->code : ET_ENOMEM;
            for (size_t k = i; k < j->cs.n; k++) j->cs.items[o++] = j->cs.items[k];
            break;
        }
        if (r == 1) {
            free(c->id);
            free(c->doc);
            free(c->text);
            j->n_dup++;
            continue;
        }
        j->cs.items[o++] = *c;
    }
    j->cs.n = o;
    et_strmap_free(&seen);
    return rc;
}

int et_generate(const et_generate_opts *o, et_generate_summary *sum, et_error *err) {
    int format;
    int rc = check_opts(o, &format, err);
    if (rc) return rc;
    double t0 = et_now();
    job j = {0};
    j.o = o;
    j.jfd = -1;
    if ((rc = et_chunks_load(&j.cs, o->input, err))) return rc;
    if ((rc = dedup_chunks(&j, err))) goto done;
    j.sum.n_chunks = j.cs.n;
    j.st = et_calloc(j.cs.n, sizeof(chunk_state), err);
    if (!j.st) { rc = ET_ENOMEM; goto done; }
    if (o->llm_url && ((rc = load_prompt(&j, err)) || (rc = resolve_model(&j, err)))) goto done;
    hash_input(&j);
    if ((rc = hash_options(&j, err))) goto done;
    {
        size_t n = strlen(o->output);
        while (n > 1 && o->output[n - 1] == '/') n--;
        snprintf(j.sum.journal, sizeof(j.sum.journal), "%.*s.journal", (int)n, o->output);
        snprintf(j.sum.failures, sizeof(j.sum.failures), "%.*s.failures.jsonl", (int)n, o->output);
        j.journal_path = j.sum.journal;
    }
    if ((rc = journal_open(&j, err))) goto done;
    if (!o->quiet && j.sum.n_resumed)
        fprintf(stderr, "embtune generate: resuming from %s: %zu of %zu chunks already done\n", j.journal_path,
                j.sum.n_resumed, j.cs.n);
    rc = o->llm_url ? run_llm(&j, err) : run_local(&j, err);
    if (rc == ET_ECANCELED) {
        size_t nd = 0;
        for (size_t i = 0; i < j.cs.n; i++) nd += j.st[i].status == ST_OK || j.st[i].status == ST_SHORT;
        et_err_set(err, ET_ECANCELED,
                   "interrupted: %zu of %zu chunks are done and kept in %s; rerun the same command to resume",
                   nd, j.cs.n, j.journal_path);
    }
    if (rc) goto done;
    if (j.jfd >= 0) {
        close(j.jfd);
        j.jfd = -1;
    }
    for (size_t i = 0; i < j.cs.n; i++) {
        int s = j.st[i].status;
        j.sum.n_ok += s == ST_OK;
        j.sum.n_short += s == ST_SHORT;
        j.sum.n_failed += s == ST_FAILED || s == ST_TODO;
    }
    if ((rc = write_failures(&j, j.sum.failures, err))) goto done;
    if (!j.sum.n_short && !j.sum.n_failed) j.sum.failures[0] = 0;
    rc = assemble(&j, format, err);
    /* A complete run: the outputs hold everything the journal holds, so it goes (a rerun then
     * starts over, which is what a rerun of a finished job is for). With short or failed
     * chunks it stays, so that a rerun asks again for those only. */
    if (!rc && !j.sum.n_short && !j.sum.n_failed && !o->keep_journal) {
        if (unlink(j.journal_path) && errno != ENOENT)
            rc = et_err_set(err, ET_EIO, "%s: cannot delete the journal of the finished run: %s", j.journal_path,
                            strerror(errno));
        else
            j.sum.journal[0] = 0;
    }
done:
    if (j.jfd >= 0) close(j.jfd);
    j.sum.seconds = et_now() - t0;
    if (!o->quiet && j.n_dup)
        fprintf(stderr, "embtune generate: %zu chunks with a repeated id were skipped\n", j.n_dup);
    if (sum) *sum = j.sum;
    for (size_t i = 0; j.st && i < j.cs.n; i++) et_strlist_free(&j.st[i].q);
    free(j.st);
    free(j.prompt);
    free(j.model);
    et_chunks_free(&j.cs);
    return rc;
}
