/* util.h - internal helpers shared by every module: errors, checked sizes,
 * files (read, mmap, atomic write), growable buffers, hashing, time, progress.
 *
 * Nothing here exits or aborts. Functions that can fail take an `et_error *`
 * (may be NULL) and return an ET_* status (0 = ET_OK).
 */
#ifndef ET_UTIL_H
#define ET_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "embtune.h"

#define ET_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define ET_MIN(a, b) ((a) < (b) ? (a) : (b))
#define ET_MAX(a, b) ((a) > (b) ? (a) : (b))

/* ---- errors ---------------------------------------------------------------- */

/* Sets err (if non-NULL) to code + formatted message; returns code. */
int et_err_set(et_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "prefix: " to an already-set message (e.g. the file name). */
int et_err_prefix(et_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- checked size arithmetic (return 0 on overflow, 1 on success) ---------- */

static inline int et_size_mul(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline int et_size_add(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}

/* malloc/calloc/realloc wrappers that set err on failure and return NULL.
 * et_malloc_n(n, size) checks n*size for overflow. Free with free(). */
void *et_malloc(size_t size, et_error *err);
void *et_calloc(size_t n, size_t size, et_error *err);
void *et_malloc_n(size_t n, size_t size, et_error *err);
void *et_realloc_n(void *p, size_t n, size_t size, et_error *err);
char *et_strdup(const char *s, et_error *err);
char *et_strndup(const char *s, size_t n, et_error *err);

/* ---- growable byte buffer (always NUL-terminated when len > 0) ------------- */

typedef struct et_buf {
    char *data;   /* [cap], owned */
    size_t len;
    size_t cap;
} et_buf;

int et_buf_reserve(et_buf *b, size_t extra, et_error *err);
int et_buf_append(et_buf *b, const void *p, size_t n, et_error *err);
int et_buf_puts(et_buf *b, const char *s, et_error *err);
int et_buf_printf(et_buf *b, et_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Appends s as a JSON string literal (with quotes), escaping as RFC 8259. */
int et_buf_json_string(et_buf *b, const char *s, size_t n, et_error *err);
void et_buf_free(et_buf *b);

/* ---- files ------------------------------------------------------------------ */

/* Reads a whole file into a NUL-terminated malloc'd buffer (caller frees).
 * `max_size` bounds the file size (0 = no bound). */
int et_read_file(const char *path, size_t max_size, char **out, size_t *out_len,
                 et_error *err);

/* Read-only mapping of a whole file. Empty files map to data=NULL, size=0. */
typedef struct et_mmap {
    const uint8_t *data; /* [size], borrowed from the kernel until et_mmap_close */
    size_t size;
} et_mmap;
int et_mmap_open(et_mmap *m, const char *path, et_error *err);
void et_mmap_close(et_mmap *m);

int et_file_exists(const char *path);
int et_is_dir(const char *path);
/* mkdir -p; mode 0777 & ~umask. */
int et_mkdir_p(const char *path, et_error *err);
/* Joins a and b with one '/', malloc'd (caller frees); NULL + err on OOM. */
char *et_path_join(const char *a, const char *b, et_error *err);

/* Atomic output: writes go to "<path>.tmp.<pid>" in the same directory; commit
 * flushes, fsyncs and renames over `path`; abort (or a failed commit) removes the
 * temp file, so `path` is either the old file or the complete new one. */
typedef struct et_afile {
    FILE *fp;
    char *path;
    char *tmp_path;
    int failed;
} et_afile;
int et_afile_open(et_afile *f, const char *path, et_error *err);
int et_afile_commit(et_afile *f, et_error *err);
void et_afile_abort(et_afile *f);
/* Convenience: atomically replace `path` with `n` bytes. */
int et_write_file_atomic(const char *path, const void *data, size_t n, et_error *err);

/* ---- hashing ----------------------------------------------------------------- */

/* 64-bit FNV-1a; stable across platforms and runs. */
uint64_t et_hash64(const void *data, size_t n, uint64_t seed);
/* SHA-256 (FIPS 180-4) of a buffer; out is 32 bytes. */
void et_sha256(const void *data, size_t n, uint8_t out[32]);
typedef struct et_sha256_ctx {
    uint32_t h[8];
    uint64_t total;
    uint8_t block[64];
    size_t fill;
} et_sha256_ctx;
void et_sha256_init(et_sha256_ctx *c);
void et_sha256_update(et_sha256_ctx *c, const void *data, size_t n);
void et_sha256_final(et_sha256_ctx *c, uint8_t out[32]);
/* Writes 2*n lowercase hex chars + NUL into out. */
void et_hex(char *out, const uint8_t *in, size_t n);

/* ---- time and progress ------------------------------------------------------- */

double et_now(void); /* monotonic seconds */

/* Progress line on stderr ("label 120/1000 (12%) 35.2/s ETA 25s"), shown only
 * once the job has run for more than `delay` seconds and only when stderr is
 * a terminal or ET_PROGRESS=1 (ET_PROGRESS=all: no delay); updates at most every 0.25 s. */
typedef struct et_progress {
    const char *label;
    const char *unit;   /* e.g. "texts/s" */
    size_t total;       /* 0 = unknown */
    double t0, last;
    double delay;
    int shown;
    int enabled;
} et_progress;
void et_progress_init(et_progress *p, const char *label, const char *unit, size_t total);
void et_progress_update(et_progress *p, size_t done, const char *extra);
void et_progress_done(et_progress *p, size_t done);

/* ---- misc ---------------------------------------------------------------------- */

/* Strict base-10 parsers for CLI/config values; 0 on success. */
int et_parse_long(const char *s, long min, long max, long *out);
int et_parse_double(const char *s, double *out);
/* True if s ends with suffix (case-sensitive). */
int et_ends_with(const char *s, const char *suffix);

#endif
