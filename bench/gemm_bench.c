/* gemm_bench.c - GFLOP/s of the matmul kernels on the bge-small shapes
 * and bge-base shapes (N = 32 x 128 tokens), same thread count: et_gemm (kernels_gemm.c, the
 * blocked GEMM behind every dense layer), the earlier unblocked AVX2 kernel
 * (matmul_forward_avx2) and OpenBLAS sgemm. Built and run by bench/run.sh. */
#include <stdio.h>
#include <stdlib.h>

#include "embtune.h"
#include "kernels.h"
#include "kernels_gemm.h"
#include "threads.h"
#include "util.h"

#if defined(__x86_64__)
#include <immintrin.h>
/* The machine's FMA peak, measured: each thread runs 12 independent chains
 * of 8-wide fp32 FMAs (enough to cover the FMA latency on Zen 3 and Intel). */
#define PEAK_ITERS 20000000L
__attribute__((target("avx2,fma"))) static void peak_run(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    __m256 a = _mm256_set1_ps(1e-8f), b = _mm256_set1_ps(0.999999f);
    __m256 c0 = a, c1 = a, c2 = a, c3 = a, c4 = a, c5 = a, c6 = a, c7 = a, c8 = a, c9 = a, c10 = a, c11 = a;
    for (long i = 0; i < PEAK_ITERS; i++) {
        c0 = _mm256_fmadd_ps(c0, b, a), c1 = _mm256_fmadd_ps(c1, b, a), c2 = _mm256_fmadd_ps(c2, b, a);
        c3 = _mm256_fmadd_ps(c3, b, a), c4 = _mm256_fmadd_ps(c4, b, a), c5 = _mm256_fmadd_ps(c5, b, a);
        c6 = _mm256_fmadd_ps(c6, b, a), c7 = _mm256_fmadd_ps(c7, b, a), c8 = _mm256_fmadd_ps(c8, b, a);
        c9 = _mm256_fmadd_ps(c9, b, a), c10 = _mm256_fmadd_ps(c10, b, a), c11 = _mm256_fmadd_ps(c11, b, a);
    }
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(c0, c1), _mm256_add_ps(c2, c3)),
                             _mm256_add_ps(_mm256_add_ps(c4, c5), _mm256_add_ps(c6, c7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(c8, c9), _mm256_add_ps(c10, c11)));
    float v[8];
    _mm256_storeu_ps(v, s);
    *(volatile float *)ctx = v[0];
}

static double peak_gflops(void) {
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    float sink;
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = et_now();
        et_parallel(peak_run, &sink);
        double dt = et_now() - t0;
        if (dt < best) best = dt;
    }
    return (double)et_get_threads() * PEAK_ITERS * 12 * 16 / best / 1e9;
}
#else
static double peak_gflops(void) { return 0; }
#endif

static void mm_gemm(float *out, const float *x, const float *w, const float *b, size_t N, size_t C,
                    size_t OC) {
    et_gemm_epi e = {.bias = b};
    et_gemm(out, OC, x, C, 0, w, C, 1, ET_GEMM_F32, N, OC, C, &e);
}

typedef void (*mm_fn)(float *, const float *, const float *, const float *, size_t, size_t, size_t);

static double run(mm_fn f, float *out, const float *x, const float *w, const float *b, size_t N, size_t C,
                  size_t OC) {
    f(out, x, w, b, N, C, OC); /* warm-up */
    double best = 1e9;
    for (int r = 0; r < 5; r++) {
        double t0 = et_now();
        f(out, x, w, b, N, C, OC);
        double dt = et_now() - t0;
        if (dt < best) best = dt;
    }
    return 2.0 * N * C * OC / best / 1e9;
}

int main(int argc, char **argv) {
    et_set_threads(argc > 1 ? atoi(argv[1]) : 2);
    /* bge-small, then bge-base */
    size_t shapes[][3] = {{4096, 384, 1152}, {4096, 384, 384},  {4096, 384, 1536}, {4096, 1536, 384},
                          {4096, 768, 2304}, {4096, 768, 768}, {4096, 768, 3072}, {4096, 3072, 768}};
    double peak = peak_gflops();
    printf("AVX2 FMA peak (measured, %d threads): %.1f GFLOP/s\n", et_get_threads(), peak);
    printf("%-22s %12s %7s %12s %12s\n", "N x C -> OC", "gemm GF/s", "of peak", "avx2 GF/s", "blas GF/s");
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        size_t N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *x = malloc(N * C * 4), *w = malloc(OC * C * 4), *b = malloc(OC * 4), *o = malloc(N * OC * 4);
        for (size_t i = 0; i < N * C; i++) x[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < OC * C; i++) w[i] = (float)(i % 5) * 0.1f;
        for (size_t i = 0; i < OC; i++) b[i] = 0.5f;
        double gg = run(mm_gemm, o, x, w, b, N, C, OC);
        double ga = run(matmul_forward_avx2, o, x, w, b, N, C, OC);
        double gb = run(matmul_forward_blas, o, x, w, b, N, C, OC);
        printf("%4zu x %4zu -> %4zu   %12.1f %6.0f%% %12.1f %12.1f\n", N, C, OC, gg, peak > 0 ? 100 * gg / peak : 0,
               ga, gb);
        free(x); free(w); free(b); free(o);
    }
    return 0;
}
