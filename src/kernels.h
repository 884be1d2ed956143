/* kernels.h - forward compute kernels for the transformer encoders.
 *
 * Plain functions: outputs first, const inputs, sizes last, a shape comment on
 * every pointer. Row-major. Linear weights are PyTorch's [out, in].
 *
 * Each op has a plain reference kernel (`*_ref`, single-threaded, obvious
 * loops, double accumulation where it matters) and the dispatched kernel
 * (no suffix) which picks the fast implementation at run time (AVX2+FMA when
 * the CPU has it, OpenBLAS sgemm for large matrix products) and threads
 * with et_parallel. tests/test_kernels.c compares every pair on odd shapes.
 * ET_KERNELS=ref in the environment makes the dispatched kernels call the
 * reference ones (whole-model cross-checks).
 *
 * Padding: sequences of a batch are right-padded to T; `lens[b]` (1..T) is
 * the number of real tokens of sequence b. Padded keys are masked out of
 * attention (as HF's additive -inf mask does); rows of padded queries are set
 * to zero in the attention output (their values never reach a valid row).
 */
#ifndef ET_KERNELS_H
#define ET_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- matmul: out = inp @ w^T + bias ------------------------------------------ */
/* The dispatched matmul gives bit-identical results for any thread count (on a
 * given CPU path): AVX2 by default, OpenBLAS with ET_GEMM=blas (not invariant). */
void matmul_forward(float *out /* [N, OC] */, const float *inp /* [N, C] */,
                    const float *w /* [OC, C] */, const float *bias /* [OC] or NULL */,
                    size_t N, size_t C, size_t OC);
void matmul_forward_ref(float *out, const float *inp, const float *w, const float *bias,
                        size_t N, size_t C, size_t OC);
/* Individual implementations, for tests and the bench (same contract). */
void matmul_forward_blas(float *out, const float *inp, const float *w, const float *bias,
                         size_t N, size_t C, size_t OC);
void matmul_forward_avx2(float *out, const float *inp, const float *w, const float *bias,
                         size_t N, size_t C, size_t OC);
int kernels_have_avx2(void);

/* ---- layernorm: out = (inp - mean) * rstd * w + b, per row --------------------- */
/* mean/rstd may be NULL (inference); training saves them for backward. */
void layernorm_forward(float *out /* [N, C] */, float *mean /* [N] or NULL */,
                       float *rstd /* [N] or NULL */, const float *inp /* [N, C] */,
                       const float *w /* [C] */, const float *b /* [C] */,
                       size_t N, size_t C, float eps);
void layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, size_t N, size_t C, float eps);

/* out = layernorm(a + r): the residual add fused with the layernorm that
 * follows it in BERT (post-LN). `res` [N, C] (may be NULL) receives a + r,
 * which backward needs. out may alias a. */
void residual_layernorm_forward(float *out /* [N, C] */, float *res /* [N, C] or NULL */,
                                float *mean /* [N] or NULL */, float *rstd /* [N] or NULL */,
                                const float *a /* [N, C] */, const float *r /* [N, C] */,
                                const float *w /* [C] */, const float *b /* [C] */,
                                size_t N, size_t C, float eps);
void residual_layernorm_forward_ref(float *out, float *res, float *mean, float *rstd,
                                    const float *a, const float *r, const float *w,
                                    const float *b, size_t N, size_t C, float eps);

/* ---- activations (out may alias inp) ---------------------------------------------- */
/* erf GELU: x * 0.5 * (1 + erf(x / sqrt(2))) */
void gelu_forward(float *out /* [N] */, const float *inp /* [N] */, size_t N);
void gelu_forward_ref(float *out, const float *inp, size_t N);
/* tanh GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void gelu_tanh_forward(float *out /* [N] */, const float *inp /* [N] */, size_t N);
void gelu_tanh_forward_ref(float *out, const float *inp, size_t N);
void relu_forward(float *out /* [N] */, const float *inp /* [N] */, size_t N);

/* out = a + b (out may alias a or b) */
void residual_forward(float *out /* [N] */, const float *a /* [N] */, const float *b /* [N] */,
                      size_t N);

/* ---- embeddings ------------------------------------------------------------------ */
/* out[i] = wte[ids[i]] + wpe[pos[i]] + wtt[types[i]] (types NULL = 0; wtt NULL = none).
 * Ids and positions must be in range (checked by the caller). */
void embedding_forward(float *out /* [N, C] */, const int32_t *ids /* [N] */,
                       const int32_t *pos /* [N] */, const int32_t *types /* [N] or NULL */,
                       const float *wte /* [V, C] */, const float *wpe /* [P, C] */,
                       const float *wtt /* [TV, C] or NULL */, size_t N, size_t C);

/* ---- attention ------------------------------------------------------------------- */
/* Multi-head self-attention from the fused projection qkv [B, T, 3C]
 * (per token: q[C], k[C], v[C]; head h uses columns h*HS..(h+1)*HS-1 of
 * each, HS = C / NH), scale 1/sqrt(HS), keys >= lens[b] masked.
 * out [B, T, C] = softmax(q k^T * scale) v, heads concatenated.
 * att [B, NH, T, T] receives the softmax probabilities (training saves them
 * for backward; masked entries and padded query rows are 0). */
void attention_forward(float *out /* [B, T, C] */, float *att /* [B, NH, T, T] */,
                       const float *qkv /* [B, T, 3C] */, const size_t *lens /* [B] */,
                       size_t B, size_t T, size_t C, size_t NH);
void attention_forward_ref(float *out, float *att, const float *qkv, const size_t *lens,
                           size_t B, size_t T, size_t C, size_t NH);
/* Inference attention: same out, no probabilities kept; works row by row
 * with O(T * HS) scratch per thread instead of a [B, NH, T, T] tensor.
 * Returns 0, or ET_ENOMEM if its scratch could not be allocated. */
int attention_forward_infer(float *out /* [B, T, C] */, const float *qkv /* [B, T, 3C] */,
                             const size_t *lens /* [B] */, size_t B, size_t T, size_t C,
                             size_t NH);

/* ---- pooling and normalization ------------------------------------------------------ */
/* mode: enum et_pooling, as sentence-transformers' Pooling. Tokens t of
 * sequence b are pooled when skip <= t < lens[b] (skip > 0: the prompt with
 * include_prompt false). cls = token 0 (never masked); last = token
 * lens[b]-1 (token 0 if nothing is pooled); mean = sum / count (0 if none);
 * mean_sqrt_len = sum / sqrt(count); weightedmean = sum (t+1) x_t / sum (t+1);
 * max = max over pooled tokens (-1e9 if none). */
void pool_forward(float *out /* [B, C] */, const float *inp /* [B, T, C] */,
                  const size_t *lens /* [B] */, size_t skip, size_t B, size_t T, size_t C, int mode);
/* out = inp / max(||inp||_2, 1e-12) per row (torch.nn.functional.normalize);
 * norm (may be NULL) receives ||inp||_2. out may alias inp. */
void l2norm_forward(float *out /* [B, C] */, float *norm /* [B] or NULL */,
                    const float *inp /* [B, C] */, size_t B, size_t C);

#endif
