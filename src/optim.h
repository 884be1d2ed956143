/* optim.h - AdamW over flat parameter buffers, as torch.optim.AdamW with the
 * Hugging Face Trainer's parameter groups and schedule:
 *
 *   p <- p * (1 - lr * wd * mask)                 (decoupled weight decay)
 *   m <- b1 m + (1 - b1) g,  v <- b2 v + (1 - b2) g^2
 *   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *
 * Learning rate at optimizer step k (0-based), get_linear_schedule_with_warmup:
 *   k < warmup: lr * k / max(1, warmup); else lr * max(0, (total - k) / max(1, total - warmup)).
 * Gradient clipping as torch.nn.utils.clip_grad_norm_: g *= min(1, max / (|g| + 1e-6)).
 *
 * Hyper-parameters are doubles and the per-step constants are rounded to
 * float as PyTorch rounds its Python scalars, so trajectories match closely.
 * The norm is summed in double over fixed 64K blocks in order, so results do
 * not depend on the thread count (a resumed run equals an uninterrupted one).
 */
#ifndef ET_OPTIM_H
#define ET_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "embtune.h"

typedef struct et_adamw_cfg {
    double lr;           /* peak learning rate */
    double beta1, beta2; /* 0.9, 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* applied where the decay mask is 1 */
    size_t warmup_steps;
    size_t total_steps;  /* optimizer steps of the whole run */
    float max_grad_norm; /* <= 0: no clipping */
} et_adamw_cfg;

void et_adamw_cfg_default(et_adamw_cfg *cfg);

typedef struct et_adamw {
    et_adamw_cfg cfg;
    size_t n;
    float *m;       /* [n] first moments, owned */
    float *v;       /* [n] second moments, owned */
    uint64_t t;     /* optimizer steps taken so far */
} et_adamw;

int et_adamw_init(et_adamw *o, size_t n, const et_adamw_cfg *cfg, et_error *err);
void et_adamw_free(et_adamw *o);

/* Learning rate of optimizer step k (0-based). */
double et_lr_at(const et_adamw_cfg *cfg, size_t k);

/* L2 norm of g [n] (double accumulation, thread-count independent). */
double et_grad_norm(const float *g, size_t n);
/* Scales g in place so its norm is at most max_norm; returns the norm before. */
double et_clip_grad_norm(float *g, size_t n, float max_norm);

/* One AdamW step at learning rate lr: params [n] updated from grads [n];
 * decay_mask [n] (1 = weight decay) may be NULL (decay everywhere).
 * Increments o->t. */
void et_adamw_step(et_adamw *o, float *params, const float *grads, const uint8_t *decay_mask, double lr);

/* ---- kernels (exposed for the tests: fast vs reference) ---- */

/* Per-step constants, rounded to float as PyTorch rounds its scalars. */
typedef struct et_adamw_consts {
    float step_size, bc2_sqrt, decay, omb1, omb2, b1, b2, eps;
} et_adamw_consts;

/* The update of n elements (dispatched: AVX2 when available, bitwise equal to
 * the reference; ET_KERNELS=ref forces the reference). */
void et_adamw_update(float *p /* [n] */, float *m /* [n] */, float *v /* [n] */, const float *g /* [n] */,
                     const uint8_t *mask /* [n] or NULL */, size_t n, const et_adamw_consts *k);
void et_adamw_update_ref(float *p, float *m, float *v, const float *g, const uint8_t *mask, size_t n,
                         const et_adamw_consts *k);
/* Sum of squares in double (reference order). */
double et_sumsq_ref(const float *g /* [n] */, size_t n);

#endif
