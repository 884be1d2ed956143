/* kernels_bwd.h - training kernels: the backward pass of every transformer
 * op, the training-only forward ops (attention that keeps its softmax
 * statistics, dropout, pooling over packed tokens), and the counter-based
 * dropout RNG.
 *
 * Conventions (as kernels.h): outputs first, const inputs, sizes last, a
 * shape comment on every pointer, row-major, linear weights [out, in].
 * Backward kernels ACCUMULATE (+=) into every gradient they write (input
 * gradients and parameter gradients alike); callers zero what they need.
 * Each op has a plain reference kernel (`*_ref`: obvious loops, double
 * accumulation, single-threaded) beside the dispatched one (threaded with
 * et_parallel, AVX2+FMA when the CPU has it, OpenBLAS sgemm for matrix
 * products); tests/test_grad_ops.c checks the reference kernels against
 * finite differences in double and the fast kernels against the reference
 * ones on odd shapes. ET_KERNELS=ref makes the dispatched kernels call the
 * reference ones.
 *
 * Packed tokens: a training batch of B sequences is stored without padding,
 * sequence b occupying rows offs[b] .. offs[b+1]-1 of every [N, ...] tensor
 * (N = offs[B]). Padding therefore neither receives nor leaks gradient, and
 * costs nothing. Results equal a padded batch with HF's additive mask: a
 * masked key's probability there is exp(-3.4e38 - max) = 0 exactly.
 *
 * Dropout (PyTorch semantics: keep with probability 1-p, kept values scaled
 * by 1/(1-p)) uses a counter-based RNG, so the mask of any element can be
 * regenerated in backward instead of stored, and a checkpoint needs only
 * (seed, draw counter):
 *   key     = mix64(seed ^ mix64(stream))          one key per dropout site
 *   R       = mix64(key + row * 0x9E3779B97F4A7C15)
 *   x       = ((uint32)col * 0x9E3779B9 + hi32(R)) ^ lo32(R)
 *   keep    = (lowbias32(x) >> 8) >= round(p * 2^24)
 * mix64 is SplitMix64's finalizer, lowbias32 is C. Wellons' 32-bit mixer.
 * Rows are (sequence, position) for hidden-state sites and
 * ((sequence * NH + head), query) for attention probabilities; columns are
 * channels resp. key positions: row = hi * 65536 + lo (so T <= 65536). The
 * PyTorch reference (tests/ref/bert_ref.py) implements the same function.
 */
#ifndef ET_KERNELS_BWD_H
#define ET_KERNELS_BWD_H

#include <stddef.h>
#include <stdint.h>

/* ---- dropout ---------------------------------------------------------------- */

typedef struct et_dropout {
    float p;        /* drop probability in [0, 1); 0 = identity */
    uint64_t key;   /* et_dropout_key(seed, stream) */
} et_dropout;

uint64_t et_mix64(uint64_t z);
uint64_t et_dropout_key(uint64_t seed, uint64_t stream);
/* 1 if element (row, col) of the site is kept. */
int et_dropout_keep(const et_dropout *d, uint64_t row, uint32_t col);

/* In place x[n, c] *= keep(row(n), c) / (1 - p) for packed hidden states:
 * row(n) = b * 65536 + t for token t of sequence b. The same call is the
 * backward (applied to the gradient). d == NULL or d->p == 0: no-op. */
void dropout_hidden(float *x /* [N, C] */, const et_dropout *d, const size_t *offs /* [B+1] */,
                    size_t B, size_t C);
void dropout_hidden_ref(float *x, const et_dropout *d, const size_t *offs, size_t B, size_t C);

/* ---- matmul: out = inp @ w^T + bias ------------------------------------------- */
/* dinp += dout @ w; dw += dout^T @ inp; dbias += colsum(dout). Any of dinp,
 * dw, dbias may be NULL (not wanted). */
void matmul_backward(float *dinp /* [N, C] or NULL */, float *dw /* [OC, C] or NULL */,
                     float *dbias /* [OC] or NULL */, const float *dout /* [N, OC] */,
                     const float *inp /* [N, C] */, const float *w /* [OC, C] */,
                     size_t N, size_t C, size_t OC);
void matmul_backward_ref(float *dinp, float *dw, float *dbias, const float *dout,
                         const float *inp, const float *w, size_t N, size_t C, size_t OC);

/* ---- layernorm ---------------------------------------------------------------- */
/* Backward of out = (inp - mean) * rstd * w + b with the forward's mean/rstd:
 * dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w;
 * dw += sum_n dout * xhat; db += sum_n dout. dw/db may be NULL. */
void layernorm_backward(float *dinp /* [N, C] */, float *dw /* [C] or NULL */,
                        float *db /* [C] or NULL */, const float *dout /* [N, C] */,
                        const float *inp /* [N, C] */, const float *mean /* [N] */,
                        const float *rstd /* [N] */, const float *w /* [C] */, size_t N, size_t C);
void layernorm_backward_ref(float *dinp, float *dw, float *db, const float *dout,
                            const float *inp, const float *mean, const float *rstd,
                            const float *w, size_t N, size_t C);

/* ---- activations ---------------------------------------------------------------- */
/* dinp += dout * gelu'(inp), erf GELU. */
void gelu_backward(float *dinp /* [N] */, const float *inp /* [N] */, const float *dout /* [N] */,
                   size_t N);
void gelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t N);
/* tanh GELU. */
void gelu_tanh_backward(float *dinp /* [N] */, const float *inp /* [N] */,
                        const float *dout /* [N] */, size_t N);
void gelu_tanh_backward_ref(float *dinp, const float *inp, const float *dout, size_t N);
/* dinp += dout * (inp > 0). */
void relu_backward(float *dinp /* [N] */, const float *inp /* [N] */, const float *dout /* [N] */,
                   size_t N);

/* ---- attention over packed sequences --------------------------------------------- */
/* qkv [N, 3C] per token: q[C], k[C], v[C]; head h uses columns h*HS..h*HS+HS-1
 * of each (HS = C / NH); scale 1/sqrt(HS). Sequence b attends only within its
 * own rows. Per head: P = softmax(q k^T * scale); out = drop(P) v.
 * lse [NH, N] receives each query row's log-sum-exp of its scaled scores,
 * all backward needs to rebuild P (flash-attention style: the [T, T]
 * probabilities are never stored). drop may be NULL (no dropout); its rows are
 * (b * NH + h) * 65536 + i, columns j. */
void attention_forward_train(float *out /* [N, C] */, float *lse /* [NH, N] */,
                             const float *qkv /* [N, 3C] */, const size_t *offs /* [B+1] */,
                             size_t B, size_t C, size_t NH, const et_dropout *drop);
void attention_forward_train_ref(float *out, float *lse, const float *qkv, const size_t *offs,
                                 size_t B, size_t C, size_t NH, const et_dropout *drop);
/* dqkv += gradient of the attention with respect to qkv, given dout and the
 * forward's out and lse (P is recomputed). */
void attention_backward(float *dqkv /* [N, 3C] */, const float *dout /* [N, C] */,
                        const float *qkv /* [N, 3C] */, const float *out /* [N, C] */,
                        const float *lse /* [NH, N] */, const size_t *offs /* [B+1] */,
                        size_t B, size_t C, size_t NH, const et_dropout *drop);
void attention_backward_ref(float *dqkv, const float *dout, const float *qkv, const float *out,
                            const float *lse, const size_t *offs, size_t B, size_t C, size_t NH,
                            const et_dropout *drop);

/* ---- embeddings -------------------------------------------------------------------- */
/* Backward of out[n] = wte[ids[n]] + wpe[pos[n]] + wtt[types[n]]:
 * dwte[ids[n]] += dout[n] except for ids[n] == skip_id (HF's padding_idx rows
 * never get gradient; -1 = none), same for dwpe with skip_pos; dwtt may be
 * NULL, types NULL = type 0. Deterministic (threads split channels). */
void embedding_backward(float *dwte /* [V, C] */, float *dwpe /* [P, C] */,
                        float *dwtt /* [TV, C] or NULL */, const float *dout /* [N, C] */,
                        const int32_t *ids /* [N] */, const int32_t *pos /* [N] */,
                        const int32_t *types /* [N] or NULL */, int32_t skip_id,
                        int32_t skip_pos, size_t N, size_t C);
void embedding_backward_ref(float *dwte, float *dwpe, float *dwtt, const float *dout,
                            const int32_t *ids, const int32_t *pos, const int32_t *types,
                            int32_t skip_id, int32_t skip_pos, size_t N, size_t C);

/* ---- pooling over packed sequences and L2 normalization ----------------------------- */
/* mode: enum et_pooling (ET_POOL_CLS, ET_POOL_MEAN, ET_POOL_MAX, ET_POOL_LAST), as
 * sentence-transformers: cls = first token; mean = sum / len; max = per-channel
 * max; last = last token. */
void pool_forward_packed(float *out /* [B, C] */, const float *inp /* [N, C] */,
                         const size_t *offs /* [B+1] */, size_t B, size_t C, int mode);
/* dinp += d(pool)/d(inp) applied to dout; max pooling needs the forward's inp
 * (the first maximal token of a channel gets the gradient, as torch.max). */
void pool_backward_packed(float *dinp /* [N, C] */, const float *dout /* [B, C] */,
                          const float *inp /* [N, C] (max only, else may be NULL) */,
                          const size_t *offs /* [B+1] */, size_t B, size_t C, int mode);
/* Backward of out = inp / max(||inp||, 1e-12) (F.normalize), given the
 * forward's out and norm: dinp += (dout - out * <out, dout>) / norm (norm >=
 * 1e-12), or dout / 1e-12 when the norm was clamped. */
void l2norm_backward(float *dinp /* [B, C] */, const float *dout /* [B, C] */,
                     const float *out /* [B, C] */, const float *norm /* [B] */, size_t B,
                     size_t C);

#endif
