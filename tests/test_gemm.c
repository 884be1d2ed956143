/* test_gemm.c - the blocked GEMM (kernels_gemm.h) against its reference on
 * odd shapes: every operand layout (A / A^T, weight [N, K] / row-major
 * [K, N], fp32 / bf16 B), every epilogue (bias, GELU, tanh GELU, ReLU,
 * residual, accumulate), sizes not multiples of 6, 8 or 16 and of the K
 * block (256), sizes 0 and 1; and bitwise equality across thread counts. */
#include <stdint.h>

#include "embtune.h"
#include "kernels_gemm.h"
#include "test_util.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform [-1, 1), xorshift64* */
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (float)((double)((rng * 0x2545F4914F6CDD1Dull) >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}
static float *randv(size_t n, float scale) {
    float *v = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}
static uint16_t to_bf16(float f) { /* round to nearest even */
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7FFF + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static void check(size_t M, size_t N, size_t K, int a_trans, int b_nt, int b_type, int act, int bias, int res,
                  int acc) {
    size_t lda = (a_trans ? M : K) + 3, ldb = (b_nt ? K : N) + 5, ldc = N + 2, ldr = N + 7;
    size_t na = (a_trans ? K : M) * lda, nb = (b_nt ? N : K) * ldb;
    float *a = randv(na, 1), *bf = randv(nb, 0.5f), *bv = randv(N, 1), *rv = randv(M * ldr, 1);
    float *c0 = randv(M * ldc, 1), *cr = malloc((M * ldc + 1) * sizeof(float)), *cf = malloc((M * ldc + 1) * 4);
    uint16_t *bh = malloc((nb + 1) * sizeof(uint16_t));
    for (size_t i = 0; i < nb; i++) bh[i] = to_bf16(bf[i]);
    const void *b = b_type == ET_GEMM_BF16 ? (const void *)bh : (const void *)bf;
    et_gemm_epi e = {bias ? bv : NULL, res ? rv : NULL, ldr, act, acc};
    memcpy(cr, c0, M * ldc * sizeof(float));
    memcpy(cf, c0, M * ldc * sizeof(float));
    et_gemm_ref(cr, ldc, a, lda, a_trans, b, ldb, b_nt, b_type, M, N, K, &e);
    int rc = et_gemm(cf, ldc, a, lda, a_trans, b, ldb, b_nt, b_type, M, N, K, &e);
    TEST_CHECK(rc == 0, "et_gemm returned %d", rc);
    char name[160];
    snprintf(name, sizeof name, "gemm M=%zu N=%zu K=%zu aT=%d bNT=%d %s act=%d bias=%d res=%d acc=%d", M, N, K,
             a_trans, b_nt, b_type ? "bf16" : "f32", act, bias, res, acc);
    /* fp32 accumulation of K terms |a b| <= 0.5 against a double reference;
     * the padding columns of c (ldc > N) must stay untouched */
    test_max_err(name, cf, cr, M * ldc, 1e-6 * (double)(K + 1), 1e-5);
    free(a), free(bf), free(bv), free(rv), free(c0), free(cr), free(cf), free(bh);
}

/* Same product with 1, 2 and 3 threads: bitwise equal. */
static void check_threads(size_t M, size_t N, size_t K) {
    float *a = randv(M * K, 1), *w = randv(N * K, 1), *bias = randv(N, 1);
    float *c[3];
    et_gemm_epi e = {bias, NULL, 0, ET_GEMM_ACT_GELU, 0};
    for (int t = 0; t < 3; t++) {
        c[t] = malloc(M * N * sizeof(float));
        et_set_threads(t + 1);
        et_gemm(c[t], N, a, K, 0, w, K, 1, ET_GEMM_F32, M, N, K, &e);
    }
    et_set_threads(0);
    TEST_CHECK(!memcmp(c[0], c[1], M * N * 4) && !memcmp(c[0], c[2], M * N * 4),
               "gemm %zux%zux%zu differs across thread counts", M, N, K);
    for (int t = 0; t < 3; t++) free(c[t]);
    free(a), free(w), free(bias);
}

int main(void) {
    printf("fast path: %s\n", et_gemm_fast() ? "AVX2+FMA" : "reference");
    static const size_t shapes[][3] = {{1, 1, 1},   {1, 17, 5},  {7, 16, 8},   {13, 33, 31}, {6, 48, 1},
                                       {73, 47, 70}, {5, 100, 300}, {150, 20, 513}, {2, 3, 0},   {0, 5, 5}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int at = 0; at < 2; at++)
            for (int nt = 0; nt < 2; nt++)
                for (int ty = 0; ty < 2; ty++)
                    check(shapes[s][0], shapes[s][1], shapes[s][2], at, nt, ty, ET_GEMM_ACT_NONE, 0, 0, 0);
    /* epilogues on the shapes with edge tiles in both directions */
    for (int act = 0; act < 4; act++)
        for (int bias = 0; bias < 2; bias++)
            for (int res = 0; res < 2; res++)
                for (int acc = 0; acc < 2; acc++) {
                    check(73, 47, 70, 0, 1, ET_GEMM_F32, act, bias, res, acc);
                    check(11, 35, 300, 1, 0, ET_GEMM_BF16, act, bias, res, acc);
                }
    check(2, 3, 0, 0, 1, ET_GEMM_F32, ET_GEMM_ACT_GELU, 1, 1, 1);
    check(2, 3, 0, 0, 1, ET_GEMM_F32, ET_GEMM_ACT_NONE, 1, 0, 0);
    /* a BERT-sized product, threaded */
    check(200, 384, 384, 0, 1, ET_GEMM_F32, ET_GEMM_ACT_GELU, 1, 0, 0);
    check_threads(301, 200, 270);
    check_threads(5, 520, 64);
    return test_summary("test_gemm");
}
