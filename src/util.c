/* util.c - errors, checked allocation, files, buffers, hashing, progress. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ------------------------------------------------------------------ */

const char *et_status_str(int code) {
    switch (code) {
    case ET_OK: return "ok";
    case ET_EINVAL: return "invalid argument";
    case ET_EIO: return "I/O error";
    case ET_EFORMAT: return "malformed file";
    case ET_ENOMEM: return "out of memory";
    case ET_EUNSUPPORTED: return "unsupported";
    case ET_ENOTFOUND: return "not found";
    case ET_ENET: return "network error";
    case ET_ECANCELED: return "canceled";
    case ET_ENUMERIC: return "numeric error";
    default: return "unknown error";
    }
}

int et_err_set(et_error *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

int et_err_prefix(et_error *err, const char *fmt, ...) {
    if (!err) return ET_OK;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    char old[sizeof(err->msg)];
    memcpy(old, err->msg, sizeof(old));
    old[sizeof(old) - 1] = 0;
    snprintf(err->msg, sizeof(err->msg), "%s: %s", prefix, old);
    return err->code;
}

/* ---- allocation ---------------------------------------------------------------- */

void *et_malloc(size_t size, et_error *err) {
    void *p = malloc(size ? size : 1);
    if (!p) et_err_set(err, ET_ENOMEM, "out of memory allocating %zu bytes", size);
    return p;
}

void *et_calloc(size_t n, size_t size, et_error *err) {
    size_t total;
    if (!et_size_mul(n, size, &total)) {
        et_err_set(err, ET_ENOMEM, "allocation size overflow (%zu x %zu)", n, size);
        return NULL;
    }
    void *p = calloc(total ? n : 1, total ? size : 1);
    if (!p) et_err_set(err, ET_ENOMEM, "out of memory allocating %zu bytes", total);
    return p;
}

void *et_malloc_n(size_t n, size_t size, et_error *err) {
    size_t total;
    if (!et_size_mul(n, size, &total)) {
        et_err_set(err, ET_ENOMEM, "allocation size overflow (%zu x %zu)", n, size);
        return NULL;
    }
    return et_malloc(total, err);
}

void *et_realloc_n(void *p, size_t n, size_t size, et_error *err) {
    size_t total;
    if (!et_size_mul(n, size, &total)) {
        et_err_set(err, ET_ENOMEM, "allocation size overflow (%zu x %zu)", n, size);
        return NULL;
    }
    void *q = realloc(p, total ? total : 1);
    if (!q) et_err_set(err, ET_ENOMEM, "out of memory allocating %zu bytes", total);
    return q;
}

char *et_strndup(const char *s, size_t n, et_error *err) {
    size_t total;
    if (!et_size_add(n, 1, &total)) {
        et_err_set(err, ET_ENOMEM, "string too long");
        return NULL;
    }
    char *d = et_malloc(total, err);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = 0;
    return d;
}

char *et_strdup(const char *s, et_error *err) { return et_strndup(s, strlen(s), err); }

/* ---- buffers --------------------------------------------------------------------- */

int et_buf_reserve(et_buf *b, size_t extra, et_error *err) {
    size_t need;
    if (!et_size_add(b->len, extra, &need) || !et_size_add(need, 1, &need))
        return et_err_set(err, ET_ENOMEM, "buffer size overflow");
    if (need <= b->cap) return ET_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) return et_err_set(err, ET_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->data = d;
    b->cap = cap;
    return ET_OK;
}

int et_buf_append(et_buf *b, const void *p, size_t n, et_error *err) {
    int rc = et_buf_reserve(b, n, err);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return ET_OK;
}

int et_buf_puts(et_buf *b, const char *s, et_error *err) {
    return et_buf_append(b, s, strlen(s), err);
}

int et_buf_printf(et_buf *b, et_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return et_err_set(err, ET_EINVAL, "bad format string");
    int rc = et_buf_reserve(b, (size_t)n, err);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return ET_OK;
}

int et_buf_json_string(et_buf *b, const char *s, size_t n, et_error *err) {
    int rc = et_buf_append(b, "\"", 1, err);
    for (size_t i = 0; i < n && !rc; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': rc = et_buf_append(b, "\\\"", 2, err); break;
        case '\\': rc = et_buf_append(b, "\\\\", 2, err); break;
        case '\n': rc = et_buf_append(b, "\\n", 2, err); break;
        case '\r': rc = et_buf_append(b, "\\r", 2, err); break;
        case '\t': rc = et_buf_append(b, "\\t", 2, err); break;
        case '\b': rc = et_buf_append(b, "\\b", 2, err); break;
        case '\f': rc = et_buf_append(b, "\\f", 2, err); break;
        default:
            if (c < 0x20 || c == 0x7f) rc = et_buf_printf(b, err, "\\u%04x", c);
            else rc = et_buf_append(b, &s[i], 1, err);
        }
    }
    if (!rc) rc = et_buf_append(b, "\"", 1, err);
    return rc;
}

void et_buf_free(et_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- files ------------------------------------------------------------------------ */

int et_read_file(const char *path, size_t max_size, char **out, size_t *out_len, et_error *err) {
    *out = NULL;
    if (out_len) *out_len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return et_err_set(err, errno == ENOENT ? ET_ENOTFOUND : ET_EIO, "%s: cannot open: %s",
                          path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return et_err_set(err, ET_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (max_size && size > max_size) {
        close(fd);
        return et_err_set(err, ET_EFORMAT, "%s: file is %zu bytes, more than the %zu allowed",
                          path, size, max_size);
    }
    char *buf = et_malloc(size + 1, err);
    if (!buf) {
        close(fd);
        return ET_ENOMEM;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        free(buf);
        return et_err_set(err, ET_EIO, "%s: short read (%zu of %zu bytes)", path, got, size);
    }
    buf[size] = 0;
    *out = buf;
    if (out_len) *out_len = size;
    return ET_OK;
}

int et_mmap_open(et_mmap *m, const char *path, et_error *err) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return et_err_set(err, errno == ENOENT ? ET_ENOTFOUND : ET_EIO, "%s: cannot open: %s",
                          path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return et_err_set(err, ET_EIO, "%s: not a regular file", path);
    }
    if (st.st_size == 0) {
        close(fd);
        return ET_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return et_err_set(err, ET_EIO, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return ET_OK;
}

void et_mmap_close(et_mmap *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int et_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int et_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int et_mkdir_p(const char *path, et_error *err) {
    char *p = et_strdup(path, err);
    if (!p) return ET_ENOMEM;
    for (char *s = p + 1; ; s++) {
        if (*s == '/' || *s == 0) {
            char c = *s;
            *s = 0;
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                int e = errno;
                free(p);
                return et_err_set(err, ET_EIO, "%s: cannot create directory: %s", path, strerror(e));
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    if (!et_is_dir(path)) return et_err_set(err, ET_EIO, "%s: exists and is not a directory", path);
    return ET_OK;
}

char *et_path_join(const char *a, const char *b, et_error *err) {
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/') la--;
    size_t total;
    if (!et_size_add(la, lb, &total) || !et_size_add(total, 2, &total)) {
        et_err_set(err, ET_ENOMEM, "path too long");
        return NULL;
    }
    char *p = et_malloc(total, err);
    if (!p) return NULL;
    memcpy(p, a, la);
    size_t o = la;
    if (la && a[la - 1] != '/') p[o++] = '/';
    memcpy(p + o, b, lb);
    p[o + lb] = 0;
    return p;
}

int et_afile_open(et_afile *f, const char *path, et_error *err) {
    memset(f, 0, sizeof(*f));
    f->path = et_strdup(path, err);
    if (!f->path) return ET_ENOMEM;
    size_t n = strlen(path) + 32;
    f->tmp_path = et_malloc(n, err);
    if (!f->tmp_path) {
        free(f->path);
        return ET_ENOMEM;
    }
    snprintf(f->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp_path, "wb");
    if (!f->fp) {
        int e = errno;
        free(f->path);
        free(f->tmp_path);
        memset(f, 0, sizeof(*f));
        return et_err_set(err, ET_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    return ET_OK;
}

int et_afile_commit(et_afile *f, et_error *err) {
    int rc = ET_OK;
    if (!f->fp) return et_err_set(err, ET_EIO, "atomic file not open");
    if (ferror(f->fp) || f->failed) rc = et_err_set(err, ET_EIO, "%s: write failed", f->path);
    if (!rc && fflush(f->fp) != 0)
        rc = et_err_set(err, ET_EIO, "%s: write failed: %s", f->path, strerror(errno));
    if (!rc && fsync(fileno(f->fp)) != 0)
        rc = et_err_set(err, ET_EIO, "%s: fsync failed: %s", f->path, strerror(errno));
    if (fclose(f->fp) != 0 && !rc)
        rc = et_err_set(err, ET_EIO, "%s: close failed: %s", f->path, strerror(errno));
    f->fp = NULL;
    if (!rc && rename(f->tmp_path, f->path) != 0)
        rc = et_err_set(err, ET_EIO, "%s: rename failed: %s", f->path, strerror(errno));
    if (rc) unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    f->path = f->tmp_path = NULL;
    return rc;
}

void et_afile_abort(et_afile *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp_path) unlink(f->tmp_path);
    free(f->path);
    free(f->tmp_path);
    memset(f, 0, sizeof(*f));
}

int et_write_file_atomic(const char *path, const void *data, size_t n, et_error *err) {
    et_afile f;
    int rc = et_afile_open(&f, path, err);
    if (rc) return rc;
    if (n && fwrite(data, 1, n, f.fp) != n) f.failed = 1;
    return et_afile_commit(&f, err);
}

/* ---- hashing ------------------------------------------------------------------------ */

uint64_t et_hash64(const void *data, size_t n, uint64_t seed) {
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static const uint32_t sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define ROR32(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(uint32_t h[8], const uint8_t *b) {
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 |
               (uint32_t)b[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR32(w[i - 15], 7) ^ ROR32(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR32(w[i - 2], 17) ^ ROR32(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t S1 = ROR32(e, 6) ^ ROR32(e, 11) ^ ROR32(e, 25);
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = hh + S1 + ch + sha256_k[i] + w[i];
        uint32_t S0 = ROR32(a, 2) ^ ROR32(a, 13) ^ ROR32(a, 22);
        uint32_t mj = (a & bb) ^ (a & c) ^ (bb & c);
        uint32_t t2 = S0 + mj;
        hh = g; g = f; f = e; e = d + t1; d = c; c = bb; bb = a; a = t1 + t2;
    }
    h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

void et_sha256_init(et_sha256_ctx *c) {
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof(iv));
    c->total = 0;
    c->fill = 0;
}

void et_sha256_update(et_sha256_ctx *c, const void *data, size_t n) {
    const uint8_t *p = data;
    c->total += n;
    while (n) {
        size_t take = 64 - c->fill;
        if (take > n) take = n;
        memcpy(c->block + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill == 64) {
            sha256_block(c->h, c->block);
            c->fill = 0;
        }
    }
}

void et_sha256_final(et_sha256_ctx *c, uint8_t out[32]) {
    uint64_t bits = c->total * 8;
    uint8_t pad = 0x80;
    et_sha256_update(c, &pad, 1);
    uint8_t zero = 0;
    while (c->fill != 56) et_sha256_update(c, &zero, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    et_sha256_update(c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void et_sha256(const void *data, size_t n, uint8_t out[32]) {
    et_sha256_ctx c;
    et_sha256_init(&c);
    et_sha256_update(&c, data, n);
    et_sha256_final(&c, out);
}

void et_hex(char *out, const uint8_t *in, size_t n) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = 0;
}

/* ---- time and progress -------------------------------------------------------------- */

double et_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void et_progress_init(et_progress *p, const char *label, const char *unit, size_t total) {
    memset(p, 0, sizeof(*p));
    p->label = label;
    p->unit = unit;
    p->total = total;
    p->t0 = et_now();
    p->delay = 1.0;
    const char *env = getenv("ET_PROGRESS");
    if (env) p->enabled = strcmp(env, "0") != 0;
    else p->enabled = isatty(STDERR_FILENO);
    if (env && !strcmp(env, "all")) p->delay = 0; /* tests: show from the first update */
}

static void fmt_duration(char *out, size_t n, double s) {
    if (!isfinite(s) || s < 0) snprintf(out, n, "?");
    else if (s < 90) snprintf(out, n, "%.0fs", s);
    else if (s < 5400) snprintf(out, n, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else snprintf(out, n, "%.0fh%02.0fm", floor(s / 3600), fmod(floor(s / 60), 60));
}

static void progress_print(et_progress *p, size_t done, const char *extra, int final) {
    double t = et_now() - p->t0;
    double rate = t > 0 ? (double)done / t : 0;
    char eta[32] = "";
    if (p->total && !final && rate > 0) {
        char d[24];
        fmt_duration(d, sizeof(d), (double)(p->total - (done < p->total ? done : p->total)) / rate);
        snprintf(eta, sizeof(eta), " ETA %s", d);
    }
    if (p->total)
        fprintf(stderr, "\r%s %zu/%zu (%.0f%%) %.1f %s%s%s%s\033[K", p->label, done, p->total,
                100.0 * (double)done / (double)p->total, rate, p->unit, eta, extra ? " " : "",
                extra ? extra : "");
    else
        fprintf(stderr, "\r%s %zu %.1f %s%s%s\033[K", p->label, done, rate, p->unit,
                extra ? " " : "", extra ? extra : "");
    if (final) fputc('\n', stderr);
    fflush(stderr);
}

void et_progress_update(et_progress *p, size_t done, const char *extra) {
    if (!p->enabled) return;
    double now = et_now();
    if (now - p->t0 < p->delay) return;
    if (p->shown && now - p->last < 0.25) return;
    p->shown = 1;
    p->last = now;
    progress_print(p, done, extra, 0);
}

void et_progress_done(et_progress *p, size_t done) {
    if (p->enabled && p->shown) progress_print(p, done, NULL, 1);
}

/* ---- misc ---------------------------------------------------------------------------- */

int et_parse_long(const char *s, long min, long max, long *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int et_parse_double(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

int et_ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}
