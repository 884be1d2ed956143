/* pipeline.h - internals of `embtune pipeline`: pipeline.c runs the stages,
 * pipeline_manifest.c fingerprints files and keeps RUN_DIR/manifest.json.
 *
 * manifest.json (written atomically after every change of a stage's state):
 *   {"format": "embtune-pipeline", "version": 1, "embtune": "0.1.0",
 *    "run_dir": "/abs/run", "base_model": "spec", "updated": "ISO-8601 UTC",
 *    "stages": [
 *      {"name": "ingest-val", "status": "done" | "running" | "failed" | "interrupted",
 *       "action": what the last call did ("ran", "resumed", "up to date", ...),
 *       "key": SHA-256 over the options and the inputs' hashes,
 *       "options": {...}, "inputs": [FILE...], "outputs": [FILE...],
 *       "started", "finished": ISO-8601 UTC, "seconds": of the last run,
 *       "summary": "...", "error": "..." (failed), "result": {...} (stage data)}]}
 *   FILE = {"role", "path", "file", "size", "stat", "sha256"}: path as the
 *   key uses it (a document as given, a model file relative to its model,
 *   an output relative to the run directory), file the absolute path read,
 *   stat "size:mtime_ns:ctime_ns:inode" (a file whose stat is unchanged is
 *   not hashed again).
 * The manifest is read as untrusted input: a malformed one is ignored with a
 * warning (every stage then runs again), and an output path that is absolute,
 * contains "..", or lies outside the stage's own outputs is never touched.
 */
#ifndef ET_PIPELINE_H
#define ET_PIPELINE_H

#include <cjson/cJSON.h>

#include "strmap.h"
#include "util.h"

typedef struct et_pl_file {
    char *role;      /* "doc", "tokenizer", "model", "chunks", ...; NULL for outputs */
    char *path;      /* as recorded and keyed (see above) */
    char *file;      /* absolute path */
    uint64_t size;
    char stat[96];   /* "size:mtime_ns:ctime_ns:inode" */
    char sha[65];    /* SHA-256, lowercase hex */
} et_pl_file;

typedef struct et_pl_files {
    et_pl_file *v; /* [n] */
    size_t n, cap;
} et_pl_files;

void et_pl_files_free(et_pl_files *fs);

/* Fingerprints found in an earlier manifest, by absolute path. */
typedef struct et_pl_memo {
    et_strmap idx;  /* file -> index in v */
    et_pl_file *v;  /* [n] (role and path unused) */
    size_t n, cap;
} et_pl_memo;

void et_pl_memo_init(et_pl_memo *m);
void et_pl_memo_free(et_pl_memo *m);
/* Adds every input and output FILE of a parsed manifest. */
int et_pl_memo_add_manifest(et_pl_memo *m, const cJSON *manifest, et_error *err);

/* Appends a fingerprint of `file` (absolute) recorded as (role, path): the
 * memoized hash when its stat is unchanged, else SHA-256 of its bytes (and
 * the memo is updated). A missing file is ET_ENOTFOUND naming it. */
int et_pl_add_file(et_pl_files *fs, et_pl_memo *memo, const char *role, const char *path, const char *file,
                   et_error *err);

/* Regular files under dir (recursively, sorted by relative path, hidden
 * entries and `skip_dir` skipped), as paths relative to dir. With
 * model_only, only the files a model loader reads (*.json, *.txt,
 * *.safetensors, *.model). Caller frees with et_ingest_list_free. */
int et_pl_list_dir(const char *dir, const char *skip_dir, int model_only, char ***rel, size_t *n, et_error *err);

/* Current stat signature of a file ("" when missing). */
void et_pl_stat_sig(const char *file, char sig[96], uint64_t *size);

/* Parses one FILE array of a manifest stage (field "inputs"/"outputs").
 * Entries that are malformed make the whole call fail (ET_EFORMAT). */
int et_pl_files_from_json(et_pl_files *fs, const cJSON *arr, const char *what, et_error *err);
/* Appends fs as a JSON array. */
int et_pl_files_to_json(et_buf *b, const et_pl_files *fs, et_error *err);

/* 1 if rel is a safe path inside the run directory starting with one of the
 * prefixes (each "name" or "dir/"): relative, no "..", no empty component. */
int et_pl_safe_output(const char *rel, const char *const *prefixes, size_t n_prefixes);

/* ISO-8601 UTC time of now into out. */
void et_pl_now_iso(char out[32]);

#endif
