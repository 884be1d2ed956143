/* gemm_bench.c - GFLOP/s of the matmul kernels on the bge-small shapes
 * (N = 32 x 128 tokens): embtune's AVX2 GEMM vs OpenBLAS sgemm, same thread
 * count. Built and run by bench/run.sh. */
#include <stdio.h>
#include <stdlib.h>

#include "embtune.h"
#include "kernels.h"
#include "kernels_gemm.h"
#include "util.h"

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
    size_t shapes[][3] = {{4096, 384, 1152}, {4096, 384, 384}, {4096, 384, 1536}, {4096, 1536, 384}};
    printf("%-22s %12s %12s %12s\n", "N x C -> OC", "gemm GF/s", "avx2 GF/s", "blas GF/s");
    for (int s = 0; s < 4; s++) {
        size_t N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        float *x = malloc(N * C * 4), *w = malloc(OC * C * 4), *b = malloc(OC * 4), *o = malloc(N * OC * 4);
        for (size_t i = 0; i < N * C; i++) x[i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < OC * C; i++) w[i] = (float)(i % 5) * 0.1f;
        for (size_t i = 0; i < OC; i++) b[i] = 0.5f;
        double gg = run(mm_gemm, o, x, w, b, N, C, OC);
        double ga = run(matmul_forward_avx2, o, x, w, b, N, C, OC);
        double gb = run(matmul_forward_blas, o, x, w, b, N, C, OC);
        printf("%4zu x %4zu -> %4zu   %12.1f %12.1f %12.1f\n", N, C, OC, gg, ga, gb);
        free(x); free(w); free(b); free(o);
    }
    return 0;
}
