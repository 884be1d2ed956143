/* train_ckpt.h - training checkpoints: one file written atomically (temp +
 * fsync + rename) holding the position, the optimizer step, the parameters,
 * the AdamW moments and the dropout RNG state, with a checksum trailer.
 *
 * Layout: "ETCKPT02" | u64 json_len | JSON state (zero-padded to 8) |
 * u64 n_params | u64 has_moments | u64 rng_bytes | params f32[n] |
 * (m f32[n] | v f32[n]) | rng bytes (zero-padded to 8) | u64 checksum of all
 * the bytes before it (word-wise multiply-xorshift, see train_ckpt.c).
 * Little-endian (the machines we run on).
 */
#ifndef ET_TRAIN_CKPT_H
#define ET_TRAIN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "embtune.h"

typedef struct et_ckpt_state {
    uint64_t step;        /* optimizer steps done */
    uint64_t epoch;       /* position: next epoch ... */
    uint64_t batch;       /* ... and next batch index in its plan */
    uint64_t opt_t;       /* AdamW step counter */
    uint64_t log_bytes;   /* train_log.jsonl length at this point */
    uint64_t best_step;   /* step of the best validated parameters (best.bin) */
    double best_score;    /* its MRR@10; < 0 = none yet */
    double last_loss;
    int done;             /* training finished; only the model remained to write */
    char config[65];      /* hash of the options and data that fix the trajectory */
} et_ckpt_state;

/* m and v may both be NULL (parameters only). rng may be NULL when rng_n = 0. */
int et_ckpt_save(const char *path, const et_ckpt_state *st, const float *params, const float *m, const float *v,
                 size_t n, const void *rng, size_t rng_n, et_error *err);
/* Reads a checkpoint: st always; params/m/v (each may be NULL) must hold n
 * floats and n must match the file; rng gets up to rng_cap bytes (*rng_n =
 * the stored count). ET_EFORMAT on a damaged file. */
int et_ckpt_load(const char *path, et_ckpt_state *st, float *params, float *m, float *v, size_t n, void *rng,
                 size_t rng_cap, size_t *rng_n, et_error *err);

#endif
