/* bench_gemm.c - the machine's compute peak and the GEMM rate embtune gets, for
 * `make bench` (same run, same threads).
 *
 *   bench_gemm peak ISA THREADS   ISA = avx2 | avx512 | amx: peak GFLOP/s of
 *       independent FMA chains (fp32 vfmadd on ymm / zmm) or AMX bf16 tile
 *       dot products (tdpbf16ps, fp32 accumulate), THREADS threads. Prints
 *       {"isa", "threads", "gflops"}; exits 3 if the CPU lacks the ISA. Each
 *       thread's rate is over its own CPU time (CLOCK_THREAD_CPUTIME_ID), so
 *       the sum is the cores' peak even when other processes share them.
 *   bench_gemm gemm THREADS       GFLOP/s of matmul_forward (embtune's
 *       dispatched kernel) and matmul_forward_blas (OpenBLAS sgemm) on the
 *       linear layers of bge-small and bge-base, N = 32 x 128 tokens. Prints
 *       one JSON list; each row also gives max |dispatched - blas| and the
 *       rates over process CPU time / threads ("_cpu").
 * Best of 5 timed runs after a warm-up. */
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "embtune.h"
#include "kernels.h"
#include "util.h"

#define ITERS 40000000L

/* 12 independent accumulators in named registers: enough to cover FMA latency
 * x 2 pipes (an array here gets spilled to the stack at -O2). */
#define FMA12(F, T)                                                                                      \
    T a0 = F(a0_, m, c), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0, a9 = a0,  \
      a10 = a0, a11 = a0;                                                                                \
    for (long it = 0; it < iters; it++) {                                                                \
        a0 = F(a0, m, c), a1 = F(a1, m, c), a2 = F(a2, m, c), a3 = F(a3, m, c);                          \
        a4 = F(a4, m, c), a5 = F(a5, m, c), a6 = F(a6, m, c), a7 = F(a7, m, c);                          \
        a8 = F(a8, m, c), a9 = F(a9, m, c), a10 = F(a10, m, c), a11 = F(a11, m, c);                      \
        __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));               \
    }

__attribute__((target("avx2,fma"))) static float fma_avx2(long iters) {
    __m256 m = _mm256_set1_ps(0.9999f), c = _mm256_set1_ps(1e-6f), a0_ = _mm256_set1_ps(1.0f);
    FMA12(_mm256_fmadd_ps, __m256)
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                             _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
    float r[8];
    _mm256_storeu_ps(r, s);
    return r[0];
}

__attribute__((target("avx512f"))) static float fma_avx512(long iters) {
    __m512 m = _mm512_set1_ps(0.9999f), c = _mm512_set1_ps(1e-6f), a0_ = _mm512_set1_ps(1.0f);
    FMA12(_mm512_fmadd_ps, __m512)
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    return _mm512_reduce_add_ps(s);
}

/* AMX: 4 accumulator tiles C[16 x 16] fp32 += A[16 x 32 bf16] . B[16 x 32 bf16 pairs];
 * 2 * 16 * 16 * 32 flops per tdpbf16ps. Inline asm so no AMX compiler flag is
 * needed; only reached when the CPU reports amx-bf16 and the kernel grants
 * the tile state. */
static float amx_bf16(long iters) {
    struct __attribute__((packed, aligned(64))) {
        uint8_t palette, start_row, rsv[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    static uint16_t buf[16 * 32] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 32; i++) buf[i] = 0x3c00; /* bf16 ~0.0078 */
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
    __asm__ volatile("tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3" ::);
    __asm__ volatile("tileloadd (%0,%1,1), %%tmm4\n\ttileloadd (%0,%1,1), %%tmm5\n\t"
                     "tileloadd (%0,%1,1), %%tmm6\n\ttileloadd (%0,%1,1), %%tmm7" ::"r"(buf), "r"((long)64));
    for (long it = 0; it < iters; it++)
        __asm__ volatile("tdpbf16ps %%tmm6, %%tmm4, %%tmm0\n\ttdpbf16ps %%tmm7, %%tmm4, %%tmm1\n\t"
                         "tdpbf16ps %%tmm6, %%tmm5, %%tmm2\n\ttdpbf16ps %%tmm7, %%tmm5, %%tmm3" ::);
    static float out[16 * 16] __attribute__((aligned(64)));
    __asm__ volatile("tilestored %%tmm0, (%0,%1,1)" ::"r"(out), "r"((long)64) : "memory");
    __asm__ volatile("tilerelease" ::);
    return out[0];
}

typedef struct { const char *isa; long iters; double seconds; float sink; } peak_job;

static void *peak_thread(void *p) {
    peak_job *j = p;
    struct timespec a, b;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    if (!strcmp(j->isa, "avx2")) j->sink = fma_avx2(j->iters);
    else if (!strcmp(j->isa, "avx512")) j->sink = fma_avx512(j->iters);
    else j->sink = amx_bf16(j->iters);
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    j->seconds = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
    return NULL;
}

static int peak(const char *isa, int threads) {
    double flops_per_iter;
    long iters;
    __builtin_cpu_init();
    if (!strcmp(isa, "avx2")) {
        if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 3;
        flops_per_iter = 12 * 8 * 2, iters = ITERS;
    } else if (!strcmp(isa, "avx512")) {
        if (!__builtin_cpu_supports("avx512f")) return 3;
        flops_per_iter = 12 * 16 * 2, iters = ITERS / 2;
    } else if (!strcmp(isa, "amx")) {
        /* amx-bf16: CPUID.(EAX=7,ECX=0):EDX[22]; then ask Linux for the tile state */
        unsigned a = 7, b, c = 0, d;
        __asm__ volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d));
        if (!(d & (1u << 22))) return 3;
        if (syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */)) return 3;
        flops_per_iter = 4.0 * 2 * 16 * 16 * 32, iters = ITERS / 4;
    } else {
        return 2;
    }
    peak_job jobs[64];
    pthread_t th[64];
    if (threads < 1 || threads > 64) return 2;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        for (int t = 0; t < threads; t++) {
            jobs[t] = (peak_job){.isa = isa, .iters = iters};
            pthread_create(&th[t], NULL, peak_thread, &jobs[t]);
        }
        double g = 0;
        for (int t = 0; t < threads; t++) {
            pthread_join(th[t], NULL);
            g += flops_per_iter * (double)iters / jobs[t].seconds / 1e9;
        }
        if (g > best) best = g;
    }
    printf("{\"isa\": \"%s\", \"threads\": %d, \"gflops\": %.1f, \"sink\": %g}\n", isa, threads, best,
           (double)jobs[0].sink);
    return 0;
}

typedef void (*mm_fn)(float *, const float *, const float *, const float *, size_t, size_t, size_t);

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* GFLOP/s over wall time (best of 5); *per_cpu: over the process CPU time of
 * the best run divided by the threads (the rate while the cores were ours,
 * comparable with the peak when other processes share the machine). */
static double time_mm(mm_fn f, float *out, const float *x, const float *w, const float *b, size_t N, size_t C,
                      size_t OC, double *per_cpu) {
    f(out, x, w, b, N, C, OC); /* warm-up */
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r < 5; r++) {
        double t0 = et_now(), c0 = cpu_now();
        f(out, x, w, b, N, C, OC);
        double dt = et_now() - t0, dc = cpu_now() - c0;
        if (dt < best) best = dt;
        if (dc < best_cpu) best_cpu = dc;
    }
    double flops = 2.0 * (double)N * (double)C * (double)OC;
    *per_cpu = flops / (best_cpu / et_get_threads()) / 1e9;
    return flops / best / 1e9;
}

static int gemm(void) {
    const struct { const char *model; size_t N, C, OC; } shapes[] = {
        {"bge-small", 4096, 384, 1152},  {"bge-small", 4096, 384, 1536},  {"bge-small", 4096, 1536, 384},
        {"bge-base", 4096, 768, 2304},   {"bge-base", 4096, 768, 3072},   {"bge-base", 4096, 3072, 768},
    };
    size_t ns = sizeof shapes / sizeof shapes[0];
    printf("[");
    for (size_t s = 0; s < ns; s++) {
        size_t N = shapes[s].N, C = shapes[s].C, OC = shapes[s].OC;
        float *x = malloc(N * C * 4), *w = malloc(OC * C * 4), *b = malloc(OC * 4);
        float *o1 = malloc(N * OC * 4), *o2 = malloc(N * OC * 4);
        if (!x || !w || !b || !o1 || !o2) return 1;
        uint64_t r = 1;
        for (size_t i = 0; i < N * C; i++) x[i] = (float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
        for (size_t i = 0; i < OC * C; i++) w[i] = (float)((r = r * 6364136223846793005ull + 1) >> 40) / 16777216.0f - 0.5f;
        for (size_t i = 0; i < OC; i++) b[i] = 0.1f;
        double c1, c2;
        double g1 = time_mm(matmul_forward, o1, x, w, b, N, C, OC, &c1);
        double g2 = time_mm(matmul_forward_blas, o2, x, w, b, N, C, OC, &c2);
        double err = 0;
        for (size_t i = 0; i < N * OC; i++) err = fmax(err, fabs((double)o1[i] - (double)o2[i]));
        printf("%s{\"model\": \"%s\", \"N\": %zu, \"C\": %zu, \"OC\": %zu, \"embtune_gflops\": %.1f, "
               "\"openblas_gflops\": %.1f, \"embtune_gflops_cpu\": %.1f, \"openblas_gflops_cpu\": %.1f, "
               "\"max_abs_diff\": %.3g}",
               s ? ",\n " : "", shapes[s].model, N, C, OC, g1, g2, c1, c2, err);
        free(x), free(w), free(b), free(o1), free(o2);
    }
    printf("]\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 4 && !strcmp(argv[1], "peak")) return peak(argv[2], atoi(argv[3]));
    if (argc >= 3 && !strcmp(argv[1], "gemm")) {
        et_set_threads(atoi(argv[2]));
        return gemm();
    }
    fprintf(stderr, "usage: bench_gemm peak avx2|avx512|amx THREADS | bench_gemm gemm THREADS\n");
    return 2;
}
