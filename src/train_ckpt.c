/* train_ckpt.c - checkpoint files; see train_ckpt.h. */
#include "train_ckpt.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json.h"
#include "util.h"

static const char MAGIC[8] = {'E', 'T', 'C', 'K', 'P', 'T', '0', '2'};

/* 64-bit checksum over 8-byte words (multiply-xorshift; the bytes are padded
 * to a multiple of 8 by the layout). Several GB/s: a 1 GB checkpoint costs
 * well under a second, unlike SHA-256. */
typedef struct csum {
    uint64_t h;
    uint8_t tail[8];
    size_t nt;
} csum;

static inline uint64_t mix(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}

static void csum_update(csum *c, const void *data, size_t n) {
    const uint8_t *p = data;
    while (n && c->nt) {
        c->tail[c->nt++] = *p++, n--;
        if (c->nt == 8) {
            uint64_t w;
            memcpy(&w, c->tail, 8);
            c->h = mix(c->h, w);
            c->nt = 0;
        }
    }
    uint64_t h = c->h;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = mix(h, w);
    }
    c->h = h;
    while (n) c->tail[c->nt++] = *p++, n--;
}

static uint64_t csum_final(csum *c) {
    if (c->nt) {
        memset(c->tail + c->nt, 0, 8 - c->nt);
        uint64_t w;
        memcpy(&w, c->tail, 8);
        c->h = mix(c->h, w ^ ((uint64_t)c->nt << 56));
        c->nt = 0;
    }
    return mix(c->h, 0x5bd1e995);
}

static uint64_t csum_of(const void *p, size_t n) {
    csum c = {0x243f6a8885a308d3ULL, {0}, 0};
    csum_update(&c, p, n);
    return csum_final(&c);
}

typedef struct wr {
    et_afile f;
    csum h;
} wr;

static void put(wr *w, const void *p, size_t n) {
    if (!n || w->f.failed) return;
    if (fwrite(p, 1, n, w->f.fp) != n) w->f.failed = 1;
    csum_update(&w->h, p, n);
}

static void put_u64(wr *w, uint64_t v) { put(w, &v, 8); }

static void pad8(wr *w, size_t n) {
    static const uint8_t z[8] = {0};
    if (n % 8) put(w, z, 8 - n % 8);
}

/* fsync the directory holding path, so the rename itself is durable */
static void sync_dir_of(const char *path) {
    char *d = strdup(path);
    if (!d) return;
    char *s = strrchr(d, '/');
    if (s) *s = 0;
    int fd = open(s ? d : ".", O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(d);
}

int et_ckpt_save(const char *path, const et_ckpt_state *st, const float *params, const float *m, const float *v,
                 size_t n, const void *rng, size_t rng_n, et_error *err) {
    et_buf js = {0};
    int rc = et_buf_printf(&js, err,
                           "{\"step\": %llu, \"epoch\": %llu, \"batch\": %llu, \"opt_t\": %llu, \"log_bytes\": %llu, "
                           "\"best_step\": %llu, \"best_score\": %.17g, \"last_loss\": %.17g, \"done\": %d, "
                           "\"config\": \"%s\"}",
                           (unsigned long long)st->step, (unsigned long long)st->epoch,
                           (unsigned long long)st->batch, (unsigned long long)st->opt_t,
                           (unsigned long long)st->log_bytes, (unsigned long long)st->best_step, st->best_score,
                           st->last_loss, st->done, st->config);
    if (rc) return rc;
    wr w;
    rc = et_afile_open(&w.f, path, err);
    if (rc) {
        et_buf_free(&js);
        return rc;
    }
    w.h = (csum){0x243f6a8885a308d3ULL, {0}, 0};
    put(&w, MAGIC, 8);
    put_u64(&w, js.len);
    put(&w, js.data, js.len);
    pad8(&w, js.len);
    put_u64(&w, n);
    put_u64(&w, m && v ? 1 : 0);
    put_u64(&w, rng_n);
    put(&w, params, n * sizeof(float));
    if (m && v) {
        put(&w, m, n * sizeof(float));
        put(&w, v, n * sizeof(float));
    }
    put(&w, rng, rng_n);
    pad8(&w, rng_n);
    uint64_t sum = csum_final(&w.h);
    if (!w.f.failed && fwrite(&sum, 1, 8, w.f.fp) != 8) w.f.failed = 1;
    et_buf_free(&js);
    rc = et_afile_commit(&w.f, err);
    if (rc) return et_err_prefix(err, "checkpoint");
    sync_dir_of(path);
    return ET_OK;
}

static uint64_t get_u64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

int et_ckpt_load(const char *path, et_ckpt_state *st, float *params, float *m, float *v, size_t n, void *rng,
                 size_t rng_cap, size_t *rng_n, et_error *err) {
    et_mmap mp;
    int rc = et_mmap_open(&mp, path, err);
    if (rc) return rc;
    const uint8_t *d = mp.data;
    size_t sz = mp.size, pos = 0;
    cJSON *js = NULL;
#define BAD(what) do { rc = et_err_set(err, ET_EFORMAT, "%s: damaged checkpoint (%s)", path, what); goto done; } while (0)
    if (sz < 8 + 8 + 8 || memcmp(d, MAGIC, 8)) BAD("bad magic or too short");
    if (csum_of(d, sz - 8) != get_u64(d + sz - 8)) BAD("checksum mismatch");
    sz -= 8;
    uint64_t jl = get_u64(d + 8);
    pos = 16;
    if (jl > sz - pos) BAD("header length");
    if ((rc = et_json_parse(&js, (const char *)d + pos, (size_t)jl, path, err))) goto done;
    pos += (size_t)jl;
    pos += (8 - jl % 8) % 8;
    if (pos + 24 > sz) BAD("truncated");
    uint64_t fn = get_u64(d + pos), has_mv = get_u64(d + pos + 8), rn = get_u64(d + pos + 16);
    pos += 24;
    if (fn != n)
        { rc = et_err_set(err, ET_EFORMAT, "%s: checkpoint has %llu parameters, the model has %zu", path,
                          (unsigned long long)fn, n); goto done; }
    size_t bytes = n * sizeof(float) * (has_mv ? 3 : 1);
    if (bytes / sizeof(float) / (has_mv ? 3 : 1) != n || bytes > sz - pos || rn > sz - pos - bytes) BAD("truncated data");
    if (params) memcpy(params, d + pos, n * sizeof(float));
    pos += n * sizeof(float);
    if (has_mv) {
        if (m) memcpy(m, d + pos, n * sizeof(float));
        if (v) memcpy(v, d + pos + n * sizeof(float), n * sizeof(float));
        pos += 2 * n * sizeof(float);
    } else if (m || v) {
        BAD("no optimizer state");
    }
    if (rn > rng_cap) BAD("RNG state larger than expected");
    if (rn) memcpy(rng, d + pos, (size_t)rn);
    if (rng_n) *rng_n = (size_t)rn;
    memset(st, 0, sizeof(*st));
    long l;
    double x;
    const char *cfg = NULL;
#define U(field) do { l = 0; if ((rc = et_json_opt_long(js, path, #field, &l, err))) goto done; st->field = (uint64_t)l; } while (0)
    U(step);
    U(epoch);
    U(batch);
    U(opt_t);
    U(log_bytes);
    U(best_step);
#undef U
    x = -1;
    if ((rc = et_json_opt_double(js, path, "best_score", &x, err))) goto done;
    st->best_score = x;
    x = 0;
    if ((rc = et_json_opt_double(js, path, "last_loss", &x, err))) goto done;
    st->last_loss = x;
    l = 0;
    if ((rc = et_json_opt_long(js, path, "done", &l, err))) goto done;
    st->done = (int)l;
    if ((rc = et_json_req_str(js, path, "config", &cfg, err))) goto done;
    snprintf(st->config, sizeof(st->config), "%s", cfg);
#undef BAD
done:
    cJSON_Delete(js);
    et_mmap_close(&mp);
    return rc;
}
