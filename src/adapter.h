/* adapter.h - INTERNAL: adapters (see embtune.h) for training.
 *
 * Parameters are one flat buffer, in llama-index state-dict order:
 *   linear: W [dim, dim] ("linear.weight"), b [dim] ("linear.bias", if bias)
 *   mlp:    W1 [hid, dim] ("linear1.weight"), b1 [hid], W2 [dim, hid]
 *           ("linear2.weight"), b2 [dim], r [1] ("residual_weight")
 * Training forward y = adapter(x) is NOT normalized (the loss normalizes);
 * et_adapter_apply normalizes when a->normalize.
 */
#ifndef ET_ADAPTER_H
#define ET_ADAPTER_H

#include "util.h"

enum et_adapter_kind { ET_ADAPTER_LINEAR = 0, ET_ADAPTER_MLP };

struct et_adapter {
    int kind;            /* enum et_adapter_kind */
    size_t dim, hidden;  /* hidden: mlp only */
    int bias;            /* linear: has a bias (mlp: always) */
    int apply_docs;      /* 1 = applied to documents too */
    int normalize;       /* et_adapter_apply L2-normalizes its output */
    float *params;       /* [n_params], owned */
    size_t n_params;
    size_t off_w1, off_b1, off_w2, off_b2, off_r; /* offsets into params (SIZE_MAX = absent) */
    char *base_model;    /* owned, may be "" */
};

/* A fresh adapter: linear = identity (+ zero bias); mlp = nn.Linear's default
 * init (uniform +-1/sqrt(fan_in)) from `seed`, residual weight 0 (so it
 * starts as the identity too). Caller frees with et_adapter_free. */
int et_adapter_new(et_adapter **out, int kind, size_t dim, size_t hidden, int bias, uint64_t seed,
                   et_error *err);
/* AdamW weight-decay mask [n_params]: 1 for weights and the residual weight,
 * 0 for biases (the Hugging Face Trainer's grouping). */
void et_adapter_decay_mask(const et_adapter *a, uint8_t *mask /* [n_params] */);
/* y = adapter(x), not normalized. mlp saves h = relu(W1 x + b1) [B, hid] and
 * z = W2 h + b2 [B, dim] for backward (both required for mlp; ignored for linear). */
void et_adapter_forward(const et_adapter *a, const float *x /* [B, dim] */, size_t B, float *y /* [B, dim] */,
                        float *h /* [B, hid] */, float *z /* [B, dim] */);
/* Accumulates parameter gradients grads [n_params] from dy [B, dim]. */
void et_adapter_backward(const et_adapter *a, const float *x /* [B, dim] */, const float *h, const float *z,
                         const float *dy /* [B, dim] */, size_t B, float *grads /* [n_params] */);
/* Writes dir/config.json and dir/adapter.safetensors (each atomically). */
int et_adapter_save(const et_adapter *a, const char *dir, et_error *err);

int et_adapter_parse_kind(const char *name, int *kind); /* "linear", "mlp" */

#endif
