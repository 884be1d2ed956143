/* rng.h - a small seeded random number generator (xoshiro256**, seeded with
 * splitmix64), for shuffling, sampling and dropout. Its state is 32 bytes
 * and goes into checkpoints as is, so a resumed run draws the same numbers. */
#ifndef ET_RNG_H
#define ET_RNG_H

#include <stdint.h>

typedef struct et_rng {
    uint64_t s[4];
} et_rng;

static inline uint64_t et_splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Seeds from a seed and a stream number (e.g. the epoch), so independent
 * streams need no stored state. */
static inline void et_rng_seed(et_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL);
    for (int i = 0; i < 4; i++) r->s[i] = et_splitmix64(&x);
}

static inline uint64_t et_rng_next(et_rng *r) {
    uint64_t *s = r->s;
    uint64_t x = s[1] * 5, result = ((x << 7) | (x >> 57)) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = (s[3] << 45) | (s[3] >> 19);
    return result;
}

/* Uniform in [0, n) without modulo bias (n >= 1). */
static inline uint64_t et_rng_below(et_rng *r, uint64_t n) {
    uint64_t lim = -n % n; /* 2^64 mod n */
    for (;;) {
        uint64_t x = et_rng_next(r);
        if (x >= lim) return x % n;
    }
}

/* Uniform float in [0, 1) with 24 random bits. */
static inline float et_rng_float(et_rng *r) { return (float)(et_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

#endif
