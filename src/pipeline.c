/* pipeline.c - et_pipeline: documents -> chunks -> queries -> fine-tuned
 * model -> report, in one run directory, resumable (see embtune.h and
 * pipeline.h for the manifest).
 *
 * For each stage in order: compute its key (its options as canonical JSON
 * and the SHA-256 of each input: documents, the base model's files, the
 * outputs of the stages it reads); if the manifest holds a finished run with
 * the same key and its outputs still hash as recorded, skip it; otherwise
 * delete the outputs recorded for it, mark it running in the manifest, run
 * it (resuming generate from its journal and finetune from its checkpoint
 * when the interrupted attempt had the same key), fingerprint its outputs and
 * mark it done. Keys chain through output hashes, so a stage whose inputs
 * came out identical is not rerun even when a stage before it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bm25.h"
#include "dataset.h"
#include "eval.h"
#include "eval_model.h"
#include "json.h"
#include "pipeline.h"
#include "report.h"

/* A field added to a stage's options must be added to that stage's key below
 * (opts_ingest / opts_generate / opts_finetune), or the pipeline would skip a
 * stage whose option changed. These checks make the compiler say so. */
#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(et_ingest_opts) == 88, "et_ingest_opts changed: update opts_ingest() in pipeline.c");
_Static_assert(sizeof(et_generate_opts) == 176, "et_generate_opts changed: update opts_generate() in pipeline.c");
_Static_assert(sizeof(et_finetune_opts) == 456, "et_finetune_opts changed: update opts_finetune() in pipeline.c");
#endif

enum { S_INGEST_VAL, S_INGEST_TRAIN, S_GEN_VAL, S_GEN_TRAIN, S_FINETUNE, S_EVAL, N_STAGES };
_Static_assert(N_STAGES == ET_PIPELINE_STAGES, "stage count");

static const char *const stage_names[N_STAGES] = {"ingest-val",     "ingest-train", "generate-val",
                                                  "generate-train", "finetune",     "eval"};
static const char *const stage_titles[N_STAGES] = {
    "chunking the validation documents", "chunking the training documents",  "queries for the validation chunks",
    "queries for the training chunks",   "fine-tuning the base model",       "base vs fine-tuned vs BM25 on the validation queries"};

#define F_CHUNKS_VAL "chunks-val.jsonl"
#define F_CHUNKS_TRAIN "chunks-train.jsonl"
#define F_VAL "val.json"
#define F_TRAIN "train.json"
#define D_MODEL "model"
#define D_ADAPTER "adapter"
#define D_REPORT "report"

typedef struct stage {
    int id;
    et_buf options;     /* canonical JSON object */
    et_pl_files inputs;
    et_pl_files outputs;
    char key[65];
    const cJSON *prev;  /* its record in the previous manifest, or NULL */
    const char *status; /* NULL = not reached in this call (the previous record is kept) */
    const char *action;
    char started[32], finished[32];
    double seconds;     /* of the run that produced the outputs */
    double spent;       /* in this call */
    char summary[256];
    char error[1024];
    char *result;       /* stage data as a JSON object text, or NULL */
} stage;

typedef struct pl {
    const et_pipeline_opts *o;
    et_pipeline_result *res;
    char *run_dir;      /* absolute */
    char *base_dir;     /* absolute */
    char *guide_dir;    /* absolute, or NULL */
    char *manifest_path;
    cJSON *old;
    et_pl_memo memo;
    stage st[N_STAGES];
    int lock_fd;
    int adapter_mode;
    et_pl_files docs[2]; /* [0] validation, [1] training */
    et_tokenizer *tok;
    size_t max_tokens;
    int tok_loaded;
} pl;

/* ---- small helpers ------------------------------------------------------------------------------ */

static void note(const pl *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const pl *p, const char *fmt, ...) {
    if (p->o->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("pipeline: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static char *run_path(const pl *p, const char *rel, et_error *err) { return et_path_join(p->run_dir, rel, err); }

static int json_str(et_buf *b, const char *s, et_error *err) {
    if (!s) return et_buf_puts(b, "null", err);
    return et_buf_json_string(b, s, strlen(s), err);
}

static int json_strs(et_buf *b, const char *const *v, size_t n, et_error *err) {
    int rc = et_buf_puts(b, "[", err);
    for (size_t i = 0; i < n && !rc; i++) {
        if (i) rc = et_buf_puts(b, ", ", err);
        if (!rc) rc = json_str(b, v[i], err);
    }
    if (!rc) rc = et_buf_puts(b, "]", err);
    return rc;
}

/* Removes dir and its empty parents up to (not including) stop. */
static void rmdir_up(char *dir, const char *stop) {
    size_t ls = strlen(stop);
    while (strlen(dir) > ls && !strncmp(dir, stop, ls) && rmdir(dir) == 0) {
        char *s = strrchr(dir, '/');
        if (!s) break;
        *s = 0;
    }
}

/* Removes the empty directories of a tree, depth first (an exported model's
 * file-less module directories, such as 1_Normalize/); never follows links. */
static void rmdir_empty_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        et_error err;
        char *sub = et_path_join(dir, e->d_name, &err);
        struct stat st;
        if (sub && lstat(sub, &st) == 0 && S_ISDIR(st.st_mode)) rmdir_empty_tree(sub);
        free(sub);
    }
    closedir(d);
    rmdir(dir);
}

/* ---- the previous manifest ---------------------------------------------------------------------- */

static const cJSON *prev_record(const cJSON *old, const char *name) {
    const cJSON *stages = old ? cJSON_GetObjectItemCaseSensitive(old, "stages") : NULL, *s;
    if (!cJSON_IsArray(stages)) return NULL;
    cJSON_ArrayForEach(s, stages) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(s, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name) && cJSON_IsObject(s)) return s;
    }
    return NULL;
}

static const char *prev_str(const cJSON *rec, const char *field) {
    const cJSON *v = rec ? cJSON_GetObjectItemCaseSensitive(rec, field) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void load_old_manifest(pl *p) {
    if (!et_file_exists(p->manifest_path)) return;
    et_error e = {0};
    cJSON *m = NULL;
    if (et_json_load(&m, p->manifest_path, &e) == ET_OK) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(m, "format");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, "version");
        if (!cJSON_IsString(f) || strcmp(f->valuestring, "embtune-pipeline") || !cJSON_IsNumber(v) ||
            v->valuedouble != 1) {
            snprintf(e.msg, sizeof(e.msg), "%s: not an embtune pipeline manifest (version 1)", p->manifest_path);
            cJSON_Delete(m);
            m = NULL;
        }
    }
    if (!m) {
        fprintf(stderr, "pipeline: warning: ignoring %s (%s): every stage runs again\n", p->manifest_path, e.msg);
        return;
    }
    p->old = m;
    if (et_pl_memo_add_manifest(&p->memo, m, &e)) {
        /* out of memory for the memo: files are hashed again, nothing is lost */
    }
}

static int write_manifest(pl *p, et_error *err) {
    et_buf b = {0};
    char now[32];
    et_pl_now_iso(now);
    int rc = et_buf_puts(&b, "{\n  \"format\": \"embtune-pipeline\",\n  \"version\": 1,\n  \"embtune\": \"" ET_VERSION "\",\n  \"run_dir\": ", err);
    if (!rc) rc = json_str(&b, p->run_dir, err);
    if (!rc) rc = et_buf_puts(&b, ",\n  \"base_model\": ", err);
    if (!rc) rc = json_str(&b, p->o->base, err);
    if (!rc) rc = et_buf_puts(&b, ",\n  \"base_dir\": ", err);
    if (!rc) rc = json_str(&b, p->base_dir, err);
    if (!rc) rc = et_buf_printf(&b, err, ",\n  \"updated\": \"%s\",\n  \"stages\": [", now);
    int first = 1;
    for (int i = 0; i < N_STAGES && !rc; i++) {
        const stage *s = &p->st[i];
        if (!s->status) { /* not reached in this call: keep the old record */
            if (!s->prev) continue;
            char *t = cJSON_PrintUnformatted(s->prev);
            if (!t) return ET_ENOMEM;
            rc = et_buf_printf(&b, err, "%s\n    %s", first ? "" : ",", t);
            free(t);
            first = 0;
            continue;
        }
        rc = et_buf_printf(&b, err, "%s\n    {\"name\": \"%s\", \"status\": \"%s\", \"action\": \"%s\", \"key\": \"%s\",",
                           first ? "" : ",", stage_names[i], s->status, s->action ? s->action : "", s->key);
        first = 0;
        if (!rc) rc = et_buf_printf(&b, err, "\n     \"started\": \"%s\", \"finished\": \"%s\", \"seconds\": %.3f,",
                                    s->started, s->finished, s->seconds);
        if (!rc) rc = et_buf_puts(&b, "\n     \"summary\": ", err);
        if (!rc) rc = json_str(&b, s->summary, err);
        if (!rc && s->error[0]) {
            rc = et_buf_puts(&b, ",\n     \"error\": ", err);
            if (!rc) rc = json_str(&b, s->error, err);
        }
        if (!rc) rc = et_buf_printf(&b, err, ",\n     \"options\": %s,\n     \"inputs\": ", s->options.data);
        if (!rc) rc = et_pl_files_to_json(&b, &s->inputs, err);
        if (!rc) rc = et_buf_puts(&b, ",\n     \"outputs\": ", err);
        if (!rc) rc = et_pl_files_to_json(&b, &s->outputs, err);
        if (!rc && s->result) rc = et_buf_printf(&b, err, ",\n     \"result\": %s", s->result);
        if (!rc) rc = et_buf_puts(&b, "}", err);
    }
    if (!rc) rc = et_buf_puts(&b, "\n  ]\n}\n", err);
    if (!rc) rc = et_write_file_atomic(p->manifest_path, b.data, b.len, err);
    et_buf_free(&b);
    return rc;
}

/* ---- stage keys ----------------------------------------------------------------------------------- */

static int opts_ingest(pl *p, et_buf *b, et_error *err) {
    const et_ingest_opts *o = &p->o->ingest;
    int rc = et_buf_printf(b, err, "{\"chunk_size\": %zu, \"chunk_overlap\": %zu, \"strict\": %s, \"include\": ",
                           o->chunk_size, o->chunk_overlap, o->strict ? "true" : "false");
    if (!rc) rc = json_strs(b, o->include, o->n_include, err);
    if (!rc) rc = et_buf_puts(b, ", \"exclude\": ", err);
    if (!rc) rc = json_strs(b, o->exclude, o->n_exclude, err);
    if (!rc) rc = et_buf_puts(b, "}", err);
    return rc;
}

/* Only what shapes the questions (as generate's own journal check): not
 * concurrency, timeouts or retries. The server URL counts when no model name
 * is given (the server then picks the model). */
static int opts_generate(pl *p, et_buf *b, et_error *err) {
    const et_generate_opts *o = &p->o->generate;
    int rc = et_buf_printf(b, err, "{\"questions_per_chunk\": %zu, ", o->questions_per_chunk);
    if (rc) return rc;
    if (!o->llm_url) return et_buf_printf(b, err, "\"generator\": \"embedded\", \"seed\": %llu}", (unsigned long long)o->seed);
    rc = et_buf_puts(b, "\"generator\": \"llm\", \"llm_model\": ", err);
    if (!rc) rc = json_str(b, o->llm_model, err);
    if (!rc && !o->llm_model) {
        rc = et_buf_puts(b, ", \"llm_url\": ", err);
        if (!rc) rc = json_str(b, o->llm_url, err);
    }
    if (!rc)
        rc = et_buf_printf(b, err, ", \"temperature\": %.17g, \"top_p\": %.17g, \"max_tokens\": %ld", o->temperature,
                           o->top_p, o->max_tokens);
    if (!rc && o->has_seed) rc = et_buf_printf(b, err, ", \"seed\": %llu", (unsigned long long)o->seed);
    if (!rc) rc = et_buf_printf(b, err, ", \"prompt_file\": %s}", o->prompt_file ? "true" : "false");
    return rc;
}

static int opts_finetune(pl *p, et_buf *b, et_error *err) {
    const et_finetune_opts *o = &p->o->finetune;
    int rc = et_buf_puts(b, "{\"mode\": ", err);
    if (!rc) rc = json_str(b, o->mode ? o->mode : "full", err);
    if (!rc) rc = et_buf_puts(b, ", \"adapter\": ", err);
    if (!rc) rc = json_str(b, o->adapter, err);
    if (!rc)
        rc = et_buf_printf(b, err, ", \"adapter_hidden\": %zu, \"adapter_bias\": %d, \"adapter_both\": %d, \"loss\": ",
                           o->adapter_hidden, o->adapter_bias, o->adapter_both);
    if (!rc) rc = json_str(b, o->loss, err);
    if (!rc) rc = et_buf_printf(b, err, ", \"scale\": %.9g, \"temperature\": %.9g, \"dims\": [", o->scale, o->temperature);
    for (size_t i = 0; i < o->n_dims && i < 16 && !rc; i++)
        rc = et_buf_printf(b, err, "%s[%zu, %.9g]", i ? ", " : "", o->dims[i], o->dim_weights[i]);
    if (!rc)
        rc = et_buf_printf(b, err,
                           "], \"mini_batch\": %zu, \"epochs\": %zu, \"lr\": %.17g, \"batch_size\": %zu, "
                           "\"grad_accum\": %zu, \"warmup\": %.17g, \"weight_decay\": %.17g, \"max_grad_norm\": %.9g, "
                           "\"max_length\": %zu, \"seed\": %llu, \"eval_steps\": %zu, \"negatives\": %ld, "
                           "\"no_dropout\": %d, \"select_best\": %d, \"prompt_name\": ",
                           o->mini_batch, o->epochs, o->lr, o->batch_size, o->grad_accum, o->warmup, o->weight_decay,
                           o->max_grad_norm, o->max_length, (unsigned long long)o->seed, o->eval_steps, o->negatives,
                           o->no_dropout, p->o->select_best);
    if (!rc) rc = json_str(b, o->prompt_name, err);
    if (!rc) rc = et_buf_puts(b, ", \"format\": ", err);
    if (!rc) rc = json_str(b, o->format, err);
    if (!rc) rc = et_buf_puts(b, "}", err);
    return rc;
}

static void eval_ks(const et_pipeline_opts *o, const size_t **ks, size_t *n_k) {
    static const size_t def[4] = {1, 3, 5, 10};
    if (o->n_k) *ks = o->ks, *n_k = o->n_k;
    else *ks = def, *n_k = 4;
}

static int opts_eval(pl *p, et_buf *b, et_error *err) {
    const size_t *ks;
    size_t n_k;
    eval_ks(p->o, &ks, &n_k);
    et_bm25_opts bo;
    et_bm25_opts_default(&bo);
    int rc = et_buf_puts(b, "{\"k\": [", err);
    for (size_t i = 0; i < n_k && !rc; i++) rc = et_buf_printf(b, err, "%s%zu", i ? ", " : "", ks[i]);
    if (!rc)
        rc = et_buf_printf(b, err, "], \"bm25\": {\"k1\": %.9g, \"b\": %.9g, \"stopwords\": %d}, \"max_length\": %zu, "
                                   "\"mode\": \"%s\", \"prompt_name\": ",
                           bo.k1, bo.b, bo.stopwords, p->o->finetune.max_length, p->adapter_mode ? "adapter" : "full");
    if (!rc) rc = json_str(b, p->o->finetune.prompt_name, err);
    if (!rc) rc = et_buf_puts(b, "}", err);
    return rc;
}

static void compute_key(stage *s) {
    et_sha256_ctx c;
    et_sha256_init(&c);
    const char *hdr = "embtune-pipeline/1\n";
    et_sha256_update(&c, hdr, strlen(hdr));
    et_sha256_update(&c, stage_names[s->id], strlen(stage_names[s->id]) + 1);
    et_sha256_update(&c, s->options.data, s->options.len + 1);
    for (size_t i = 0; i < s->inputs.n; i++) {
        const et_pl_file *f = &s->inputs.v[i];
        et_sha256_update(&c, f->role, strlen(f->role) + 1);
        et_sha256_update(&c, f->path, strlen(f->path) + 1);
        et_sha256_update(&c, f->sha, 64);
    }
    uint8_t dg[32];
    et_sha256_final(&c, dg);
    et_hex(s->key, dg, 32);
}

/* Adds the files of a model directory as inputs; tokenizer_only: the files
 * that decide how ingest counts tokens. */
static int add_model_inputs(pl *p, stage *s, const char *role, const char *dir, int tokenizer_only, et_error *err) {
    static const char *const tok_files[] = {"tokenizer.json", "tokenizer_config.json", "vocab.txt",
                                            "special_tokens_map.json", "added_tokens.json", "config.json",
                                            "sentence_bert_config.json", "sentencepiece.bpe.model", "spiece.model"};
    char **rel = NULL;
    size_t n = 0;
    int rc = et_pl_list_dir(dir, "checkpoint", 1, &rel, &n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        if (tokenizer_only) {
            int keep = 0;
            for (size_t k = 0; k < ET_ARRAY_LEN(tok_files); k++) keep |= !strcmp(rel[i], tok_files[k]);
            if (!keep) continue;
        }
        char *f = et_path_join(dir, rel[i], err);
        rc = f ? et_pl_add_file(&s->inputs, &p->memo, role, rel[i], f, err) : ET_ENOMEM;
        free(f);
    }
    et_ingest_list_free(rel, n);
    if (!rc && !n) rc = et_err_set(err, ET_ENOTFOUND, "%s: no model files (config, tokenizer, weights)", dir);
    return rc;
}

/* Adds the outputs of stage `from` as inputs of s with the given role. */
static int add_stage_outputs(stage *s, const stage *from, const char *role, et_error *err) {
    for (size_t i = 0; i < from->outputs.n; i++) {
        const et_pl_file *o = &from->outputs.v[i];
        et_pl_file *f;
        if (s->inputs.n == s->inputs.cap) {
            size_t cap = s->inputs.cap ? 2 * s->inputs.cap : 16;
            et_pl_file *v = et_realloc_n(s->inputs.v, cap, sizeof(*v), err);
            if (!v) return ET_ENOMEM;
            s->inputs.v = v;
            s->inputs.cap = cap;
        }
        f = &s->inputs.v[s->inputs.n];
        memset(f, 0, sizeof(*f));
        f->role = et_strdup(role, err);
        f->path = et_strdup(o->path, err);
        f->file = et_strdup(o->file, err);
        f->size = o->size;
        memcpy(f->stat, o->stat, sizeof(f->stat));
        memcpy(f->sha, o->sha, sizeof(f->sha));
        s->inputs.n++;
        if (!f->role || !f->path || !f->file) return ET_ENOMEM;
    }
    return ET_OK;
}

static const char *tuned_dir_name(const pl *p) { return p->adapter_mode ? D_ADAPTER : D_MODEL; }

static int build_stage(pl *p, stage *s, et_error *err) {
    int rc = ET_OK;
    switch (s->id) {
    case S_INGEST_VAL:
    case S_INGEST_TRAIN: {
        rc = opts_ingest(p, &s->options, err);
        const et_pl_files *d = &p->docs[s->id == S_INGEST_TRAIN];
        for (size_t i = 0; i < d->n && !rc; i++)
            rc = et_pl_add_file(&s->inputs, &p->memo, "doc", d->v[i].path, d->v[i].file, err);
        if (!rc) rc = add_model_inputs(p, s, "tokenizer", p->base_dir, 1, err);
        break;
    }
    case S_GEN_VAL:
    case S_GEN_TRAIN: {
        rc = opts_generate(p, &s->options, err);
        if (!rc) rc = add_stage_outputs(s, &p->st[s->id == S_GEN_VAL ? S_INGEST_VAL : S_INGEST_TRAIN], "chunks", err);
        const char *pf = p->o->generate.prompt_file;
        if (!rc && p->o->generate.llm_url && pf) {
            char *abs = realpath(pf, NULL);
            if (!abs) rc = et_err_set(err, ET_ENOTFOUND, "--prompt-file %s: %s", pf, strerror(errno));
            else rc = et_pl_add_file(&s->inputs, &p->memo, "prompt", pf, abs, err);
            free(abs);
        }
        break;
    }
    case S_FINETUNE:
        rc = opts_finetune(p, &s->options, err);
        if (!rc) rc = add_stage_outputs(s, &p->st[S_GEN_TRAIN], "train", err);
        if (!rc) rc = add_stage_outputs(s, &p->st[S_GEN_VAL], "val", err);
        if (!rc) rc = add_model_inputs(p, s, "model", p->base_dir, 0, err);
        if (!rc && p->guide_dir) rc = add_model_inputs(p, s, "guide", p->guide_dir, 0, err);
        break;
    case S_EVAL:
        rc = opts_eval(p, &s->options, err);
        if (!rc) rc = add_stage_outputs(s, &p->st[S_GEN_VAL], "val", err);
        if (!rc) rc = add_model_inputs(p, s, "model", p->base_dir, 0, err);
        if (!rc) rc = add_stage_outputs(s, &p->st[S_FINETUNE], "tuned", err);
        break;
    }
    if (!rc) compute_key(s);
    return rc;
}

/* Output prefixes a stage may own (manifest paths are checked against them
 * before anything is deleted). */
static size_t stage_prefixes(int id, const char *const **out) {
    static const char *const iv[] = {F_CHUNKS_VAL}, *const it[] = {F_CHUNKS_TRAIN}, *const gv[] = {F_VAL},
                             *const gt[] = {F_TRAIN}, *const ft[] = {D_MODEL "/", D_ADAPTER "/"},
                             *const ev[] = {D_REPORT "/"};
    static const char *const *const all[N_STAGES] = {iv, it, gv, gt, ft, ev};
    static const size_t n[N_STAGES] = {1, 1, 1, 1, 2, 1};
    *out = all[id];
    return n[id];
}

/* Fingerprints the outputs a stage produced (files, or every file of an
 * output directory but the checkpoint). */
static int fingerprint_outputs(pl *p, stage *s, et_error *err) {
    et_pl_files_free(&s->outputs);
    const char *single = s->id == S_INGEST_VAL ? F_CHUNKS_VAL
                         : s->id == S_INGEST_TRAIN ? F_CHUNKS_TRAIN
                         : s->id == S_GEN_VAL ? F_VAL
                         : s->id == S_GEN_TRAIN ? F_TRAIN
                                                : NULL;
    if (single) {
        char *f = run_path(p, single, err);
        int rc = f ? et_pl_add_file(&s->outputs, &p->memo, NULL, single, f, err) : ET_ENOMEM;
        free(f);
        return rc;
    }
    const char *dname = s->id == S_FINETUNE ? tuned_dir_name(p) : D_REPORT;
    char *dir = run_path(p, dname, err);
    if (!dir) return ET_ENOMEM;
    char **rel = NULL;
    size_t n = 0;
    int rc = et_pl_list_dir(dir, "checkpoint", 0, &rel, &n, err);
    for (size_t i = 0; i < n && !rc; i++) {
        char *r = et_path_join(dname, rel[i], err);
        char *f = r ? et_path_join(p->run_dir, r, err) : NULL;
        rc = f ? et_pl_add_file(&s->outputs, &p->memo, NULL, r, f, err) : ET_ENOMEM;
        free(r);
        free(f);
    }
    et_ingest_list_free(rel, n);
    free(dir);
    if (!rc && !s->outputs.n) rc = et_err_set(err, ET_EFORMAT, "%s/%s: the stage left no output", p->run_dir, dname);
    return rc;
}

/* 1 if the previous record says done with this key and every recorded
 * output still hashes the same (s->outputs then holds them). */
static int up_to_date(pl *p, stage *s) {
    const cJSON *r = s->prev;
    const char *st = prev_str(r, "status"), *key = prev_str(r, "key");
    if (!st || strcmp(st, "done") || !key || strcmp(key, s->key)) return 0;
    et_pl_files rec = {0};
    et_error e;
    int ok = et_pl_files_from_json(&rec, cJSON_GetObjectItemCaseSensitive(r, "outputs"), "outputs", &e) == ET_OK &&
             rec.n > 0;
    const char *const *pre;
    size_t npre = stage_prefixes(s->id, &pre);
    et_pl_files_free(&s->outputs);
    for (size_t i = 0; i < rec.n && ok; i++) {
        char *f = et_pl_safe_output(rec.v[i].path, pre, npre) ? run_path(p, rec.v[i].path, &e) : NULL;
        ok = f && et_pl_add_file(&s->outputs, &p->memo, NULL, rec.v[i].path, f, &e) == ET_OK &&
             !strcmp(s->outputs.v[s->outputs.n - 1].sha, rec.v[i].sha);
        if (f && !ok) note(p, "%s: %s is missing or changed since it was written: the stage runs again", stage_names[s->id], rec.v[i].path);
        free(f);
    }
    et_pl_files_free(&rec);
    if (!ok) et_pl_files_free(&s->outputs);
    return ok;
}

/* Deletes the outputs the previous record lists (safe paths only). */
static void delete_prev_outputs(pl *p, stage *s) {
    et_pl_files rec = {0};
    et_error e;
    const cJSON *arr = s->prev ? cJSON_GetObjectItemCaseSensitive(s->prev, "outputs") : NULL;
    if (!arr || et_pl_files_from_json(&rec, arr, "outputs", &e)) {
        et_pl_files_free(&rec);
        return;
    }
    const char *const *pre;
    size_t npre = stage_prefixes(s->id, &pre);
    for (size_t i = 0; i < rec.n; i++) {
        if (!et_pl_safe_output(rec.v[i].path, pre, npre)) continue;
        char *f = run_path(p, rec.v[i].path, &e);
        if (!f) continue;
        unlink(f);
        char *slash = strrchr(f, '/');
        if (slash && strchr(rec.v[i].path, '/')) {
            *slash = 0;
            rmdir_up(f, p->run_dir);
        }
        free(f);
    }
    et_pl_files_free(&rec);
    for (size_t i = 0; i < npre; i++) { /* directory outputs: their now-empty subdirectories too */
        size_t l = strlen(pre[i]);
        if (!l || pre[i][l - 1] != '/') continue;
        char *d = run_path(p, pre[i], &e);
        if (d) rmdir_empty_tree(d);
        free(d);
    }
}

/* ---- the stages ---------------------------------------------------------------------------------- */

typedef struct skip_ctx {
    const pl *p;
    const char *stage;
} skip_ctx;

static void on_skip(void *ctx, const char *path, const char *reason, const char *msg) {
    const skip_ctx *c = ctx;
    if (!c->p->o->quiet) fprintf(stderr, "pipeline: %s: warning: skipped %s (%s): %s\n", c->stage, path, reason, msg);
}

static int load_tokenizer(pl *p, et_error *err) {
    if (p->tok_loaded) return ET_OK;
    int rc = et_tokenizer_load_dir(&p->tok, p->base_dir, err);
    if (!rc) rc = et_ingest_model_limit(p->base_dir, p->tok, &p->max_tokens, err);
    if (rc) return et_err_prefix(err, "base model %s", p->o->base);
    p->tok_loaded = 1;
    return ET_OK;
}

static int run_ingest(pl *p, stage *s, et_error *err) {
    int val = s->id == S_INGEST_VAL;
    int rc = load_tokenizer(p, err);
    if (rc) return rc;
    et_ingest_opts io = p->o->ingest;
    io.tokenizer = p->tok;
    io.max_tokens = p->max_tokens;
    io.progress = !p->o->quiet;
    skip_ctx sc = {p, stage_names[s->id]};
    io.on_skip = on_skip;
    io.cb_ctx = &sc;
    char *out = run_path(p, val ? F_CHUNKS_VAL : F_CHUNKS_TRAIN, err);
    if (!out) return ET_ENOMEM;
    et_ingest_stats st;
    rc = et_ingest(val ? p->o->val_docs : p->o->train_docs, val ? p->o->n_val_docs : p->o->n_train_docs, out, &io,
                   &st, err);
    free(out);
    if (rc) return et_err_prefix(err, "%s documents", val ? "validation" : "training");
    snprintf(s->summary, sizeof(s->summary), "%zu chunks from %zu file%s (%zu pages, %zu tokens%s) -> %s", st.chunks,
             st.files, st.files == 1 ? "" : "s", st.pages, st.tokens,
             st.skipped ? ", some files skipped" : "", val ? F_CHUNKS_VAL : F_CHUNKS_TRAIN);
    et_buf r = {0};
    rc = et_buf_printf(&r, err,
                       "{\"files\": %zu, \"pages\": %zu, \"chunks\": %zu, \"tokens\": %zu, \"max_chunk_tokens\": %zu, "
                       "\"skipped_files\": %zu}",
                       st.files, st.pages, st.chunks, st.tokens, st.max_chunk_tokens, st.skipped);
    s->result = r.data;
    return rc;
}

static int run_generate(pl *p, stage *s, int same_key, et_error *err) {
    int val = s->id == S_GEN_VAL;
    et_generate_opts go = p->o->generate;
    char *in = run_path(p, val ? F_CHUNKS_VAL : F_CHUNKS_TRAIN, err);
    char *out = run_path(p, val ? F_VAL : F_TRAIN, err);
    int rc = in && out ? ET_OK : ET_ENOMEM;
    go.input = in;
    go.output = out;
    go.format = "llama";
    go.val_docs = NULL;
    go.val_fraction = 0;
    go.val_output = NULL;
    go.restart = !same_key; /* the journal continues an attempt with the same key only */
    go.quiet = p->o->quiet;
    /* the run directory is the pipeline's own: the journal stays there as the record of every
       answer, so a deleted dataset or --rerun generate never asks an LLM again for a chunk */
    go.keep_journal = 1;
    go.stop = p->o->stop; /* Ctrl-C: finished chunks are journaled, a rerun continues */
    et_generate_summary sum;
    memset(&sum, 0, sizeof(sum));
    if (!rc) {
        if (p->o->stop_polled) *p->o->stop_polled = 1;
        rc = et_generate(&go, &sum, err);
        if (p->o->stop_polled) *p->o->stop_polled = 0;
    }
    if (rc) {
        et_err_prefix(err, "%s", val ? "the validation documents' chunks" : "the training documents' chunks");
    } else {
        size_t nbad = sum.n_failed + sum.n_short;
        char bad[128] = "";
        if (nbad)
            snprintf(bad, sizeof(bad), " (%zu chunk%s short of questions: %s.failures.jsonl)", nbad, nbad == 1 ? "" : "s",
                     val ? F_VAL : F_TRAIN);
        snprintf(s->summary, sizeof(s->summary), "%zu queries for %zu chunks%s -> %s", sum.n_queries, sum.n_chunks, bad,
                 val ? F_VAL : F_TRAIN);
        if (val && sum.n_queries < 50)
            note(p, "%s: warning: only %zu validation queries: differences between models of a few points are noise",
                 stage_names[s->id], sum.n_queries);
        et_buf r = {0};
        rc = et_buf_printf(&r, err,
                           "{\"chunks\": %zu, \"queries\": %zu, \"ok\": %zu, \"short\": %zu, \"failed\": %zu, "
                           "\"resumed\": %zu, \"requests\": %zu, \"retries\": %zu}",
                           sum.n_chunks, sum.n_queries, sum.n_ok, sum.n_short, sum.n_failed, sum.n_resumed,
                           sum.requests, sum.retries);
        s->result = r.data;
        if (sum.n_resumed) s->action = "resumed";
    }
    free(in);
    free(out);
    return rc;
}

static int run_finetune(pl *p, stage *s, int same_key, et_error *err) {
    et_finetune_opts fo = p->o->finetune;
    char *train = run_path(p, F_TRAIN, err), *val = run_path(p, F_VAL, err);
    char *out = run_path(p, tuned_dir_name(p), err);
    char *ckpt = out ? et_path_join(out, "checkpoint/state.bin", err) : NULL;
    int rc = train && val && out && ckpt ? ET_OK : ET_ENOMEM;
    fo.base = p->base_dir;
    fo.guide = p->guide_dir;
    fo.train = train;
    fo.val = val;
    fo.out_dir = out;
    fo.save_last = !p->o->select_best;
    fo.stop = p->o->stop;
    fo.quiet = p->o->quiet;
    fo.resume = same_key && ckpt && et_file_exists(ckpt);
    fo.overwrite = !fo.resume;
    et_finetune_result r;
    memset(&r, 0, sizeof(r));
    if (!rc) {
        if (fo.resume) s->action = "resumed";
        if (p->o->stop_polled) *p->o->stop_polled = 1;
        rc = et_finetune(&fo, &r, err);
        if (rc == ET_EINVAL && fo.resume) {
            note(p, "finetune: cannot resume (%s): starting over", err ? err->msg : "");
            fo.resume = 0;
            fo.overwrite = 1;
            s->action = "ran";
            rc = et_finetune(&fo, &r, err);
        }
        if (p->o->stop_polled) *p->o->stop_polled = 0;
    }
    if (!rc) {
        snprintf(s->summary, sizeof(s->summary), "%zu steps over %zu pairs, last loss %.4f; val MRR@10 %.4f -> %.4f -> %s/",
                 r.steps, r.rows, r.last_loss, r.base_mrr10, r.best_mrr10, tuned_dir_name(p));
        et_buf b = {0};
        rc = et_buf_printf(&b, err,
                           "{\"steps\": %zu, \"pairs\": %zu, \"last_loss\": %.6g, \"train_seconds\": %.3f, "
                           "\"pairs_per_s\": %.1f, \"kept_step\": %zu, \"val_mrr@10_base\": %.6f, "
                           "\"val_mrr@10_kept\": %.6f}",
                           r.steps, r.rows, isfinite(r.last_loss) ? r.last_loss : 0.0, r.seconds, r.pairs_per_s,
                           r.best_step, r.base_mrr10, r.best_mrr10);
        s->result = b.data;
    }
    free(train);
    free(val);
    free(out);
    free(ckpt);
    return rc;
}

/* Row label of the base model: the Hub id as given, else the directory name. */
static const char *base_label(const pl *p) {
    const char *spec = p->o->base;
    if (!et_is_dir(spec)) return spec;
    size_t n = strlen(p->base_dir);
    const char *s = p->base_dir + n;
    while (s > p->base_dir && s[-1] != '/') s--;
    return *s ? s : p->base_dir;
}

static int system_json(et_buf *b, const char *what, const et_eval_run *r, et_error *err) {
    static const size_t std_k[4] = {1, 3, 5, 10};
    int rc = et_buf_printf(b, err, "\"%s\": {\"name\": ", what);
    if (!rc) rc = json_str(b, r->name, err);
    if (!rc) rc = et_buf_puts(b, ", \"accuracy\": [", err);
    for (int j = 0; j < 4 && !rc; j++) {
        const char *v = "null";
        char num[32];
        for (size_t i = 0; i < r->m.n_k; i++)
            if (r->m.k[i] == std_k[j]) {
                snprintf(num, sizeof(num), "%.6f", r->m.accuracy[i]);
                v = num;
            }
        rc = et_buf_printf(b, err, "%s%s", j ? ", " : "", v);
    }
    if (!rc) rc = et_buf_printf(b, err, "], \"mrr@10\": %.6f, \"ndcg@10\": %.6f}", r->m.mrr10, r->m.ndcg10);
    return rc;
}

static int run_eval(pl *p, stage *s, et_error *err) {
    const et_pipeline_opts *o = p->o;
    const size_t *ks;
    size_t n_k;
    eval_ks(o, &ks, &n_k);
    char *val = run_path(p, F_VAL, err), *tuned = run_path(p, tuned_dir_name(p), err);
    char *report = run_path(p, D_REPORT, err);
    et_dataset *ds = NULL;
    et_eval_run runs[3];
    size_t n_runs = 0;
    int rc = val && tuned && report ? ET_OK : ET_ENOMEM;
    if (!rc) rc = et_dataset_load(&ds, val, ET_DS_LLAMA, NULL, err);
    et_eval_model_opts mo;
    et_eval_model_opts_default(&mo);
    mo.prompt_name = o->finetune.prompt_name;
    mo.max_length = o->finetune.max_length;
    mo.use_cache = !(o->finetune.cache && !*o->finetune.cache);
    mo.quiet = o->quiet;
    if (!rc) {
        const char *ad[1] = {tuned};
        rc = et_eval_model(runs, ds, p->base_dir, base_label(p), ad, p->adapter_mode ? 1 : 0, &mo, ks, n_k, err);
        if (!rc) n_runs = p->adapter_mode ? 2 : 1;
    }
    if (!rc && !p->adapter_mode) {
        rc = et_eval_model(runs + 1, ds, tuned, "fine-tuned", NULL, 0, &mo, ks, n_k, err);
        if (!rc) n_runs = 2;
    }
    if (!rc) {
        rc = et_eval_run_init(&runs[n_runs], "bm25", "bm25", NULL, err);
        if (!rc) {
            rc = et_eval_bm25(&runs[n_runs], ds, NULL, ks, n_k, err);
            if (rc) et_eval_run_free(&runs[n_runs]);
            else n_runs++;
        }
    }
    et_buf t = {0}, r = {0};
    if (!rc) rc = et_eval_table(&t, runs, n_runs, err);
    if (!rc) rc = et_eval_write(report, val, ds, runs, n_runs, err);
    if (!rc) rc = et_report_write(report, val, ds, runs, n_runs, err);
    if (!rc) {
        rc = et_buf_printf(&r, err, "{\"n_queries\": %zu, \"n_docs\": %zu, \"table\": ", ds->n_queries, ds->n_docs);
        if (!rc) rc = et_buf_json_string(&r, t.data ? t.data : "", t.len, err);
        if (!rc) rc = et_buf_puts(&r, ", ", err);
        if (!rc) rc = system_json(&r, "base", &runs[0], err);
        if (!rc) rc = et_buf_puts(&r, ", ", err);
        if (!rc) rc = system_json(&r, "tuned", &runs[1], err);
        if (!rc) rc = et_buf_puts(&r, ", ", err);
        if (!rc) rc = system_json(&r, "bm25", &runs[2], err);
        if (!rc) rc = et_buf_puts(&r, "}", err);
    }
    if (!rc) {
        s->result = r.data;
        r.data = NULL;
        snprintf(s->summary, sizeof(s->summary), "%zu queries, %zu documents: %s vs %s vs bm25 -> %s/report.html",
                 ds->n_queries, ds->n_docs, runs[0].name, runs[1].name, D_REPORT);
    }
    for (size_t i = 0; i < n_runs; i++) et_eval_run_free(&runs[i]);
    et_buf_free(&t);
    et_buf_free(&r);
    et_dataset_free(ds);
    free(val);
    free(tuned);
    free(report);
    return rc;
}

/* Fills res's metrics from the eval stage's result object. */
static void fill_metrics(pl *p, const char *result) {
    et_pipeline_result *res = p->res;
    cJSON *j = result ? cJSON_Parse(result) : NULL;
    if (!j) return;
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(j, "table");
    const cJSON *nq = cJSON_GetObjectItemCaseSensitive(j, "n_queries");
    const char *what[3] = {"base", "tuned", "bm25"};
    double *acc[3] = {res->base_acc, res->tuned_acc, res->bm25_acc};
    double *mrr[3] = {&res->base_mrr10, &res->tuned_mrr10, &res->bm25_mrr10};
    double *ndcg[3] = {&res->base_ndcg10, &res->tuned_ndcg10, &res->bm25_ndcg10};
    int ok = cJSON_IsString(tb) && cJSON_IsNumber(nq);
    for (int s = 0; s < 3 && ok; s++) {
        const cJSON *sys = cJSON_GetObjectItemCaseSensitive(j, what[s]);
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(sys, "accuracy");
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(sys, "mrr@10");
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(sys, "ndcg@10");
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(sys, "name");
        ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == 4 && cJSON_IsNumber(m) && cJSON_IsNumber(n) &&
             cJSON_IsString(nm);
        for (int k = 0; k < 4 && ok; k++) {
            const cJSON *v = cJSON_GetArrayItem(a, k);
            acc[s][k] = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        }
        if (ok) {
            *mrr[s] = m->valuedouble;
            *ndcg[s] = n->valuedouble;
            if (s == 0) snprintf(res->base_name, sizeof(res->base_name), "%s", nm->valuestring);
            if (s == 1) snprintf(res->tuned_name, sizeof(res->tuned_name), "%s", nm->valuestring);
        }
    }
    if (ok) {
        snprintf(res->table, sizeof(res->table), "%s", tb->valuestring);
        res->n_val_queries = (size_t)nq->valuedouble;
        res->evaluated = 1;
    }
    cJSON_Delete(j);
}

/* ---- setup ---------------------------------------------------------------------------------------- */

static int list_docs(pl *p, int train, et_error *err) {
    const et_pipeline_opts *o = p->o;
    const char *const *paths = train ? o->train_docs : o->val_docs;
    size_t n_paths = train ? o->n_train_docs : o->n_val_docs;
    const char *what = train ? "training documents (--train-docs)" : "validation documents (--val-docs)";
    if (!n_paths) return et_err_set(err, ET_EINVAL, "no %s given", what);
    char **files = NULL;
    size_t n = 0;
    int rc = et_ingest_list(paths, n_paths, &o->ingest, &files, &n, err);
    if (rc) return et_err_prefix(err, "%s", what);
    if (!n) {
        et_ingest_list_free(files, n);
        return et_err_set(err, ET_ENOTFOUND,
                          "%s: no document files in %s%s (known extensions: pdf html htm xhtml md markdown txt text "
                          "rst; or --include GLOB)",
                          what, paths[0], n_paths > 1 ? " ..." : "");
    }
    for (size_t i = 0; i < n && !rc; i++) {
        char *abs = realpath(files[i], NULL);
        if (!abs) rc = et_err_set(err, ET_EIO, "%s: %s: %s", what, files[i], strerror(errno));
        else rc = et_pl_add_file(&p->docs[train], &p->memo, "doc", files[i], abs, err);
        free(abs);
    }
    et_ingest_list_free(files, n);
    return rc;
}

/* A document in both sets would put validation answers into training. */
static int check_disjoint(const pl *p, et_error *err) {
    et_strmap m;
    et_strmap_init(&m);
    int rc = ET_OK;
    const et_pl_files *tr = &p->docs[1], *va = &p->docs[0];
    for (size_t i = 0; i < tr->n && !rc; i++)
        if (et_strmap_put(&m, tr->v[i].sha, 64, (int64_t)i, err)) rc = ET_ENOMEM;
    for (size_t i = 0; i < va->n && !rc; i++) {
        int64_t at;
        if (et_strmap_get(&m, va->v[i].sha, 64, &at))
            rc = et_err_set(err, ET_EINVAL,
                            "%s (validation) and %s (training) are the same document: validation documents must "
                            "not be trained on",
                            va->v[i].path, tr->v[at].path);
    }
    et_strmap_free(&m);
    return rc;
}

static int take_lock(pl *p, et_error *err) {
    char *lp = run_path(p, ".lock", err);
    if (!lp) return ET_ENOMEM;
    p->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int rc = ET_OK;
    if (p->lock_fd < 0) rc = et_err_set(err, ET_EIO, "%s: cannot create: %s", lp, strerror(errno));
    else if (flock(p->lock_fd, LOCK_EX | LOCK_NB) != 0)
        rc = et_err_set(err, ET_EINVAL,
                        errno == EWOULDBLOCK ? "%s: another embtune pipeline is running in this run directory"
                                             : "%s: cannot lock: %s",
                        p->run_dir, strerror(errno));
    free(lp);
    return rc;
}

void et_pipeline_opts_default(et_pipeline_opts *o) {
    memset(o, 0, sizeof(*o));
    et_ingest_opts_default(&o->ingest);
    et_generate_opts_init(&o->generate);
    et_finetune_opts_default(&o->finetune);
}

static void free_pl(pl *p) {
    for (int i = 0; i < N_STAGES; i++) {
        et_buf_free(&p->st[i].options);
        et_pl_files_free(&p->st[i].inputs);
        et_pl_files_free(&p->st[i].outputs);
        free(p->st[i].result);
    }
    et_pl_files_free(&p->docs[0]);
    et_pl_files_free(&p->docs[1]);
    et_pl_memo_free(&p->memo);
    cJSON_Delete(p->old);
    et_tokenizer_free(p->tok);
    free(p->run_dir);
    free(p->base_dir);
    free(p->guide_dir);
    free(p->manifest_path);
    if (p->lock_fd >= 0) close(p->lock_fd); /* releases the lock */
}

static int resolve_dir(const char *spec, const char *what, char **out, et_error *err) {
    char *dir = NULL;
    int rc = et_resolve_model(spec, &dir, err);
    if (rc) return et_err_prefix(err, "%s", what);
    *out = realpath(dir, NULL);
    free(dir);
    if (!*out) return et_err_set(err, ET_EIO, "%s %s: %s", what, spec, strerror(errno));
    return ET_OK;
}

/* ---- the run -------------------------------------------------------------------------------------- */

int et_pipeline(const et_pipeline_opts *o, et_pipeline_result *res, et_error *err) {
    et_pipeline_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof(*res));
    for (int i = 0; i < N_STAGES; i++) {
        res->stages[i].name = stage_names[i];
        res->stages[i].action = "not run";
    }
    for (int k = 0; k < 4; k++) res->base_acc[k] = res->tuned_acc[k] = res->bm25_acc[k] = NAN;
    if (!o || !o->base || !o->run_dir || !*o->run_dir)
        return et_err_set(err, ET_EINVAL, "pipeline: a base model and a run directory are required");
    int rerun_from = N_STAGES;
    if (o->rerun) {
        if (!strcmp(o->rerun, "all")) rerun_from = 0;
        for (int i = 0; i < N_STAGES; i++)
            if (!strcmp(o->rerun, stage_names[i]) ||
                (!strcmp(o->rerun, "ingest") && i == S_INGEST_VAL) || (!strcmp(o->rerun, "generate") && i == S_GEN_VAL))
                rerun_from = i;
        if (rerun_from == N_STAGES)
            return et_err_set(err, ET_EINVAL,
                              "--rerun '%s': expected all, ingest, generate, ingest-val, ingest-train, generate-val, "
                              "generate-train, finetune or eval",
                              o->rerun);
    }
    const char *mode = o->finetune.mode ? o->finetune.mode : "full";
    if (strcmp(mode, "full") && strcmp(mode, "adapter"))
        return et_err_set(err, ET_EINVAL, "--mode '%s': expected full or adapter", mode);
    double t0 = et_now();
    pl P, *p = &P;
    memset(p, 0, sizeof(*p));
    p->o = o;
    p->res = res;
    p->lock_fd = -1;
    p->adapter_mode = !strcmp(mode, "adapter");
    et_pl_memo_init(&p->memo);
    for (int i = 0; i < N_STAGES; i++) p->st[i].id = i;
    int rc = et_mkdir_p(o->run_dir, err);
    if (!rc && !(p->run_dir = realpath(o->run_dir, NULL)))
        rc = et_err_set(err, ET_EIO, "%s: %s", o->run_dir, strerror(errno));
    if (!rc && !(p->manifest_path = run_path(p, "manifest.json", err))) rc = ET_ENOMEM;
    if (!rc) rc = take_lock(p, err);
    if (!rc) snprintf(res->manifest, sizeof(res->manifest), "%s", p->manifest_path);
    if (!rc) load_old_manifest(p);
    if (!rc) rc = resolve_dir(o->base, "base model", &p->base_dir, err);
    if (!rc && o->finetune.guide) rc = resolve_dir(o->finetune.guide, "guide model", &p->guide_dir, err);
    if (!rc) rc = list_docs(p, 0, err);
    if (!rc) rc = list_docs(p, 1, err);
    if (!rc) rc = check_disjoint(p, err);
    if (!rc)
        note(p, "%s: base model %s (%s), %zu training and %zu validation document%s", p->run_dir, o->base, mode,
             p->docs[1].n, p->docs[0].n, p->docs[0].n == 1 ? "" : "s");

    for (int i = 0; i < N_STAGES && !rc; i++) {
        stage *s = &p->st[i];
        s->prev = prev_record(p->old, stage_names[i]);
        if ((rc = build_stage(p, s, err))) {
            et_err_prefix(err, "%s", stage_names[i]);
            break;
        }
        if (i < rerun_from && up_to_date(p, s)) {
            s->status = "done";
            s->action = "up to date";
            const char *v;
            snprintf(s->started, sizeof(s->started), "%s", (v = prev_str(s->prev, "started")) ? v : "");
            snprintf(s->finished, sizeof(s->finished), "%s", (v = prev_str(s->prev, "finished")) ? v : "");
            snprintf(s->summary, sizeof(s->summary), "%s", (v = prev_str(s->prev, "summary")) ? v : "");
            const cJSON *sec = cJSON_GetObjectItemCaseSensitive(s->prev, "seconds");
            s->seconds = cJSON_IsNumber(sec) ? sec->valuedouble : 0;
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(s->prev, "result");
            if (cJSON_IsObject(r) && !(s->result = cJSON_PrintUnformatted(r))) rc = ET_ENOMEM;
            note(p, "[%d/%d] %s: up to date (%s)", i + 1, N_STAGES, stage_names[i], s->summary);
        } else {
            const char *pk = prev_str(s->prev, "key"), *ps = prev_str(s->prev, "status");
            /* an earlier attempt with the same key can be continued; --rerun starts over, except
             * that generate keeps its journal (only the chunks that failed are asked again) */
            int same_key = pk && !strcmp(pk, s->key);
            if (i >= rerun_from && i != S_GEN_VAL && i != S_GEN_TRAIN) same_key = 0;
            note(p, "[%d/%d] %s: %s%s", i + 1, N_STAGES, stage_names[i], stage_titles[i],
                 same_key && ps && strcmp(ps, "done") ? " (continuing the interrupted run)" : "");
            delete_prev_outputs(p, s);
            s->status = "running";
            s->action = "ran";
            et_pl_now_iso(s->started);
            s->finished[0] = 0;
            et_pl_files_free(&s->outputs);
            if ((rc = write_manifest(p, err))) break;
            double ts = et_now();
            switch (i) {
            case S_INGEST_VAL:
            case S_INGEST_TRAIN: rc = run_ingest(p, s, err); break;
            case S_GEN_VAL:
            case S_GEN_TRAIN: rc = run_generate(p, s, same_key, err); break;
            case S_FINETUNE: rc = run_finetune(p, s, same_key, err); break;
            case S_EVAL: rc = run_eval(p, s, err); break;
            }
            if (!rc) rc = fingerprint_outputs(p, s, err);
            s->seconds = s->spent = et_now() - ts;
            et_pl_now_iso(s->finished);
            if (rc) {
                s->status = rc == ET_ECANCELED ? "interrupted" : "failed";
                s->action = s->status;
                et_err_prefix(err, "%s", stage_names[i]);
                snprintf(s->error, sizeof(s->error), "%s", err ? err->msg : "failed");
                if (rc == ET_ECANCELED && err)
                    snprintf(err->msg + strlen(err->msg), sizeof(err->msg) - strlen(err->msg),
                             "; rerun the same command to continue");
                et_error e2 = {0};
                write_manifest(p, &e2); /* best effort: the stage's error is the one to report */
                break;
            }
            s->status = "done";
            if ((rc = write_manifest(p, err))) break;
            note(p, "[%d/%d] %s: %s (%.1f s)", i + 1, N_STAGES, stage_names[i], s->summary, s->spent);
        }
    }
    for (int i = 0; i < N_STAGES; i++)
        if (p->st[i].status) {
            res->stages[i].action = p->st[i].action;
            res->stages[i].seconds = p->st[i].spent;
            snprintf(res->stages[i].summary, sizeof(res->stages[i].summary), "%s", p->st[i].summary);
        }
    if (!rc) rc = write_manifest(p, err); /* records what this call did ("up to date", ...) */
    if (!rc) {
        fill_metrics(p, p->st[S_EVAL].result);
        char *rp = run_path(p, D_REPORT "/report.html", err);
        if (rp) snprintf(res->report, sizeof(res->report), "%s", rp);
        free(rp);
    }
    res->seconds = et_now() - t0;
    free_pl(p);
    return rc;
}
