/* fuzz_ckpt.c - the training checkpoint reader (train_ckpt.c) on arbitrary
 * bytes. The checksum trailer is recomputed before the file is written, so
 * the fuzzer gets past it and into the header, JSON state and sizes. Loads
 * with a 4-parameter model (the seeds are 4-parameter checkpoints written by
 * et_ckpt_save), with and without optimizer moments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_tmp.h"
#include "train_ckpt.h"

/* the checksum of train_ckpt.c (word-wise multiply-xorshift) */
static uint64_t mix(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x9e3779b97f4a7c15ULL;
    return h ^ (h >> 29);
}
static uint64_t csum(const uint8_t *p, size_t n) {
    uint64_t h = 0x243f6a8885a308d3ULL, w;
    for (; n >= 8; p += 8, n -= 8) memcpy(&w, p, 8), h = mix(h, w);
    if (n) {
        uint8_t t[8] = {0};
        memcpy(t, p, n);
        memcpy(&w, t, 8);
        h = mix(h, w ^ ((uint64_t)n << 56));
    }
    return mix(h, 0x5bd1e995);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *buf = malloc(size + 8);
    if (!buf) return 0;
    memcpy(buf, data, size);
    if (size >= 16) {
        uint64_t c = csum(buf, size - 8);
        memcpy(buf + size - 8, &c, 8);
    }
    char path[256];
    fuzz_write(path, sizeof(path), "c.ckpt", buf, size);
    free(buf);
    et_ckpt_state st;
    float p[4], m[4], v[4];
    uint8_t rng[64];
    size_t rn = 0;
    et_error err = {0};
    if (et_ckpt_load(path, &st, p, m, v, 4, rng, sizeof(rng), &rn, &err)) {
        if (!err.msg[0]) abort();
    } else if (rn > sizeof(rng) || memchr(st.config, 0, sizeof(st.config)) == NULL) {
        abort();
    }
    et_ckpt_load(path, &st, p, NULL, NULL, 4, NULL, 0, NULL, &err);
    return 0;
}
