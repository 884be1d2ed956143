/* kernels_gemm.h - the blocked fp32 GEMM behind every dense layer (forward
 * and backward) and the attention kernels.
 *
 *   c [M, N] = (accumulate ? c : 0) + op(A) op(B) + bias, then
 *              c = act(c), then c += res      (the epilogue, per tile)
 *
 * op(A) [M, K]: a_trans = 0: A(m, k) = a[m * lda + k] (row-major activations)
 *               a_trans = 1: A(m, k) = a[k * lda + m] (A^T, e.g. dout^T in dW)
 * op(B) [K, N]: b_nt = 1:   B(k, n) = b[n * ldb + k] (a Linear weight [N, K])
 *               b_nt = 0:   B(k, n) = b[k * ldb + n] (row-major [K, N])
 * b may be fp32 or bf16 (uint16_t, the upper half of an fp32): bf16 is
 * widened while packing, so compute and accumulation are always fp32.
 *
 * How it is fast (AVX2+FMA, BLIS-style): B is packed per call into panels of
 * 16 columns, [K][16] each (this also transposes a weight and widens bf16);
 * a 6 x 16 register tile (12 ymm accumulators, 2 B loads + 6 broadcasts of A
 * per k) runs over K in blocks of <= 256, so a B panel block (16 KB) stays
 * in L1 while the 6-row strips of a 72-row block of A stream from L2. The
 * epilogue runs on each finished tile while it is in L1 (bias, GELU,
 * residual: no extra pass over the output). Threads (et_parallel) split the
 * packing by panels and the product by (72-row block, panel group) tasks;
 * every output element is the same sequence of fp32 FMAs for any thread
 * count, so results do not depend on the number of threads.
 *
 * Every function has the contract above; et_gemm_ref is the plain reference
 * (double accumulation), tests/test_gemm.c compares them on odd shapes.
 */
#ifndef ET_KERNELS_GEMM_H
#define ET_KERNELS_GEMM_H

#include <stddef.h>
#include <stdint.h>

enum { ET_GEMM_ACT_NONE = 0, ET_GEMM_ACT_GELU, ET_GEMM_ACT_GELU_TANH, ET_GEMM_ACT_RELU };
enum { ET_GEMM_F32 = 0, ET_GEMM_BF16 = 1 };

typedef struct et_gemm_epi {
    const float *bias; /* [N] or NULL */
    const float *res;  /* [M, N] row stride ldr, or NULL: added after the activation */
    size_t ldr;
    int act;           /* ET_GEMM_ACT_* */
    int accumulate;    /* 1: c += ..., 0: c = ... */
} et_gemm_epi;

/* Threaded (et_parallel; serial when called from inside a task). epi may be
 * NULL (c = op(A) op(B)). b_type: ET_GEMM_F32 or ET_GEMM_BF16. Returns 0, or
 * ET_ENOMEM if the packing buffer could not be allocated (c untouched). */
int et_gemm(float *c /* [M, N] ldc */, size_t ldc, const float *a, size_t lda, int a_trans,
            const void *b, size_t ldb, int b_nt, int b_type, size_t M, size_t N, size_t K,
            const et_gemm_epi *epi);
void et_gemm_ref(float *c, size_t ldc, const float *a, size_t lda, int a_trans, const void *b,
                 size_t ldb, int b_nt, int b_type, size_t M, size_t N, size_t K,
                 const et_gemm_epi *epi);

/* ---- serial building blocks (attention kernels call these per head) ------- */
#define ET_GEMM_NR 16
/* Floats of the packed panels of an op(B) [K, N]: ceil(N / 16) * 16 * K. */
size_t et_gemm_packed_floats(size_t K, size_t N);
/* Packs columns [n0, n1) of op(B) (n0 a multiple of 16) into dst, panel
 * (n - n0) / 16 at dst + ((n - n0) / 16) * K * 16, zero-padded to 16 columns. */
void et_gemm_pack_b(float *dst, const void *b, size_t ldb, int b_nt, int b_type, size_t K,
                    size_t n0, size_t n1);
/* c rows [0, M), columns [n0, n1) from packed panels bp (as packed above for
 * the same n0), single thread. */
void et_gemm_packed(float *c, size_t ldc, const float *a, size_t lda, int a_trans,
                    const float *bp, size_t M, size_t n0, size_t n1, size_t K,
                    const et_gemm_epi *epi);

/* 1 when the AVX2+FMA kernels are in use (CPU support, ET_KERNELS != ref). */
int et_gemm_fast(void);

#endif
