/* kernels_bwd.c - training kernels: reference and dispatched (threaded,
 * AVX2+FMA, OpenBLAS) versions. See kernels_bwd.h for the contracts.
 *
 * Threads split work so that every output element is written by exactly one
 * thread in a fixed order: results do not depend on timing. Parameter
 * gradients that sum over tokens (layernorm, bias, embedding tables) are split
 * by channel, so they do not depend on the thread count either.
 */
#include "kernels_bwd.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "embtune.h"
#include "kernels_gemm.h"
#include "threads.h"
#include "util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ET_X86 1
#define ET_AVX2 __attribute__((target("avx2,fma")))
#else
#define ET_X86 0
#endif

enum { POOL_CLS = ET_POOL_CLS, POOL_MEAN = ET_POOL_MEAN, POOL_MAX = ET_POOL_MAX, POOL_LAST = ET_POOL_LAST };

/* ==== dispatch =================================================================== */

static int bwd_ref = -1; /* ET_KERNELS=ref */
static int bwd_avx2 = -1;

static int use_ref(void) {
    if (bwd_ref < 0) {
        const char *e = getenv("ET_KERNELS");
        bwd_ref = e && !strcmp(e, "ref");
    }
    return bwd_ref;
}

static int have_avx2(void) {
    if (bwd_avx2 < 0) {
#if ET_X86
        __builtin_cpu_init();
        bwd_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        bwd_avx2 = 0;
#endif
    }
    return bwd_avx2;
}

/* ==== dropout RNG ================================================================== */

#define GOLD64 0x9E3779B97F4A7C15ull
#define GOLD32 0x9E3779B9u

uint64_t et_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t et_dropout_key(uint64_t seed, uint64_t stream) { return et_mix64(seed ^ et_mix64(stream)); }

static inline uint32_t lowbias32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

/* Per-row constants of the element hash. */
typedef struct {
    uint32_t add, xr, thr;
} drow;

static inline drow drop_row(const et_dropout *d, uint64_t row) {
    uint64_t r = et_mix64(d->key + row * GOLD64);
    drow o = {(uint32_t)(r >> 32), (uint32_t)r, (uint32_t)((double)d->p * 16777216.0 + 0.5)};
    return o;
}

static inline int drop_keep(drow r, uint32_t col) {
    return (lowbias32((col * GOLD32 + r.add) ^ r.xr) >> 8) >= r.thr;
}

int et_dropout_keep(const et_dropout *d, uint64_t row, uint32_t col) {
    return drop_keep(drop_row(d, row), col);
}

static inline int drop_on(const et_dropout *d) { return d && d->p > 0.0f; }

/* m[j] = keep(row, c0 + j) ? scale : 0 for j < n. */
static void drop_mask_scalar(float *m, drow r, uint32_t c0, size_t n, float scale) {
    for (size_t j = 0; j < n; j++) m[j] = drop_keep(r, c0 + (uint32_t)j) ? scale : 0.0f;
}

#if ET_X86
ET_AVX2 static inline __m256 drop_mask8(drow r, __m256i cols, __m256 scale) {
    __m256i x = _mm256_add_epi32(_mm256_mullo_epi32(cols, _mm256_set1_epi32((int)GOLD32)),
                                 _mm256_set1_epi32((int)r.add));
    x = _mm256_xor_si256(x, _mm256_set1_epi32((int)r.xr));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32(0x7feb352d));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 15));
    x = _mm256_mullo_epi32(x, _mm256_set1_epi32((int)0x846ca68bu));
    x = _mm256_xor_si256(x, _mm256_srli_epi32(x, 16));
    x = _mm256_srli_epi32(x, 8); /* < 2^24: signed compare is safe */
    __m256i keep = _mm256_cmpgt_epi32(x, _mm256_set1_epi32((int)r.thr - 1));
    return _mm256_and_ps(_mm256_castsi256_ps(keep), scale);
}

ET_AVX2 static void drop_mask_avx2(float *m, drow r, uint32_t c0, size_t n, float scale) {
    const __m256i step = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 vs = _mm256_set1_ps(scale);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256i cols = _mm256_add_epi32(_mm256_set1_epi32((int)(c0 + (uint32_t)j)), step);
        _mm256_storeu_ps(m + j, drop_mask8(r, cols, vs));
    }
    drop_mask_scalar(m + j, r, c0 + (uint32_t)j, n - j, scale);
}
#endif

static void drop_mask(float *m, drow r, uint32_t c0, size_t n, float scale) {
#if ET_X86
    if (have_avx2()) {
        drop_mask_avx2(m, r, c0, n, scale);
        return;
    }
#endif
    drop_mask_scalar(m, r, c0, n, scale);
}

static inline float drop_scale(const et_dropout *d) { return 1.0f / (1.0f - d->p); }

void dropout_hidden_ref(float *x, const et_dropout *d, const size_t *offs, size_t B, size_t C) {
    if (!drop_on(d)) return;
    float scale = drop_scale(d);
    for (size_t b = 0; b < B; b++)
        for (size_t t = offs[b]; t < offs[b + 1]; t++) {
            drow r = drop_row(d, (uint64_t)b * 65536 + (t - offs[b]));
            for (size_t c = 0; c < C; c++)
                x[t * C + c] = drop_keep(r, (uint32_t)c) ? x[t * C + c] * scale : 0.0f;
        }
}

typedef struct {
    float *x;
    const et_dropout *d;
    const size_t *offs;
    size_t B, C;
    float *scratch; /* [nth, C] */
} dh_task;

static void dh_run(void *p, int ith, int nth) {
    dh_task *t = p;
    size_t N = t->offs[t->B], C = t->C;
    long lo, hi;
    et_split((long)N, ith, nth, &lo, &hi);
    float *m = t->scratch + (size_t)ith * C;
    float scale = drop_scale(t->d);
    size_t b = 0;
    for (long n = lo; n < hi; n++) {
        while (t->offs[b + 1] <= (size_t)n) b++;
        drow r = drop_row(t->d, (uint64_t)b * 65536 + ((size_t)n - t->offs[b]));
        drop_mask(m, r, 0, C, scale);
        float *x = t->x + (size_t)n * C;
        for (size_t c = 0; c < C; c++) x[c] *= m[c];
    }
}

void dropout_hidden(float *x, const et_dropout *d, const size_t *offs, size_t B, size_t C) {
    if (!drop_on(d)) return;
    if (use_ref()) {
        dropout_hidden_ref(x, d, offs, B, C);
        return;
    }
    int nth = et_get_threads();
    float *scratch = malloc((size_t)nth * C * sizeof(float) + 1);
    if (!scratch) {
        dropout_hidden_ref(x, d, offs, B, C);
        return;
    }
    dh_task t = {x, d, offs, B, C, scratch};
    et_parallel_n(dh_run, &t, nth);
    free(scratch);
}

/* ==== vector math (AVX2) ============================================================== */
#if ET_X86
ET_AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* exp(x): x = k ln2 + r with |r| <= ln2/2 (ln2 split in two for accuracy),
 * exp(r) by its degree-6 Taylor-like minimax polynomial, times 2^k built in the
 * exponent bits. Relative error ~2 ulp; x < -87.3 gives 0. */
ET_AVX2 static inline __m256 exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.37626f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

/* erf(x) = 1 - erfc(|x|) with sign, erfc(z) = t exp(-z^2 + poly(t)),
 * t = 1 / (1 + z/2) (Numerical Recipes' erfcc, relative error < 1.2e-7). */
ET_AVX2 static inline __m256 erf8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    __m256 sx = _mm256_and_ps(x, sign), z = _mm256_andnot_ps(sign, x);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, one));
    static const float c[10] = {0.17087277f,  -0.82215223f, 1.48851587f, -1.13520398f,
                                0.27886807f,  -0.18628806f, 0.09678418f, 0.37409196f,
                                1.00002368f,  -1.26551223f};
    __m256 p = _mm256_set1_ps(c[0]);
    for (int i = 1; i < 10; i++) p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(c[i]));
    __m256 erfc = _mm256_mul_ps(t, exp8(_mm256_fnmadd_ps(z, z, p)));
    return _mm256_or_ps(_mm256_sub_ps(one, erfc), sx);
}
#endif

/* ==== matmul ============================================================================ */

void matmul_backward_ref(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                         const float *w, size_t N, size_t C, size_t OC) {
    if (dinp)
        for (size_t n = 0; n < N; n++)
            for (size_t c = 0; c < C; c++) {
                double acc = 0;
                for (size_t o = 0; o < OC; o++) acc += (double)dout[n * OC + o] * w[o * C + c];
                dinp[n * C + c] += (float)acc;
            }
    if (dw)
        for (size_t o = 0; o < OC; o++)
            for (size_t c = 0; c < C; c++) {
                double acc = 0;
                for (size_t n = 0; n < N; n++) acc += (double)dout[n * OC + o] * inp[n * C + c];
                dw[o * C + c] += (float)acc;
            }
    if (dbias)
        for (size_t o = 0; o < OC; o++) {
            double acc = 0;
            for (size_t n = 0; n < N; n++) acc += dout[n * OC + o];
            dbias[o] += (float)acc;
        }
}

static int bwd_gemm = -1; /* 1 = et_gemm, 0 = OpenBLAS (ET_GEMM=blas) */
static int bwd_gemm_ours(void) {
    if (bwd_gemm < 0) {
        const char *e = getenv("ET_GEMM");
        bwd_gemm = !(e && !strcmp(e, "blas")) && et_gemm_fast();
    }
    return bwd_gemm;
}

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) {
    extern void openblas_set_num_threads(int);
    openblas_set_num_threads(et_get_threads());
}

typedef struct {
    float *db;
    const float *dout;
    size_t N, OC;
} colsum_task;

/* acc[j] += sum_n x[n * ld + j] for j < w (rows in order). */
static void colsum_block_scalar(float *acc, const float *x, size_t ld, size_t N, size_t w) {
    for (size_t n = 0; n < N; n++)
        for (size_t j = 0; j < w; j++) acc[j] += x[n * ld + j];
}

#if ET_X86
/* 64 columns in 8 registers over all rows; w <= 64. */
ET_AVX2 static void colsum_block_avx2(float *acc, const float *x, size_t ld, size_t N, size_t w) {
    if (w % 8) {
        colsum_block_scalar(acc, x, ld, N, w);
        return;
    }
    size_t nv = w / 8;
    __m256 a[8];
    for (size_t u = 0; u < nv; u++) a[u] = _mm256_loadu_ps(acc + 8 * u);
    for (size_t n = 0; n < N; n++) {
        const float *r = x + n * ld;
        for (size_t u = 0; u < nv; u++) a[u] = _mm256_add_ps(a[u], _mm256_loadu_ps(r + 8 * u));
    }
    for (size_t u = 0; u < nv; u++) _mm256_storeu_ps(acc + 8 * u, a[u]);
}
#endif

static void colsum_block(float *acc, const float *x, size_t ld, size_t N, size_t w) {
#if ET_X86
    if (have_avx2()) {
        colsum_block_avx2(acc, x, ld, N, w);
        return;
    }
#endif
    colsum_block_scalar(acc, x, ld, N, w);
}

/* db[o] += sum_n dout[n, o], threads split the columns; rows summed in order. */
static void colsum_run(void *p, int ith, int nth) {
    colsum_task *t = p;
    long lo, hi;
    et_split((long)((t->OC + 7) / 8), ith, nth, &lo, &hi);
    size_t c0 = (size_t)lo * 8, c1 = ET_MIN((size_t)hi * 8, t->OC);
    float acc[64];
    for (size_t cb = c0; cb < c1; cb += 64) {
        size_t w = ET_MIN((size_t)64, c1 - cb);
        memset(acc, 0, sizeof acc);
        colsum_block(acc, t->dout + cb, t->OC, t->N, w);
        for (size_t j = 0; j < w; j++) t->db[cb + j] += acc[j];
    }
}

void matmul_backward(float *dinp, float *dw, float *dbias, const float *dout, const float *inp,
                     const float *w, size_t N, size_t C, size_t OC) {
    if (use_ref()) {
        matmul_backward_ref(dinp, dw, dbias, dout, inp, w, N, C, OC);
        return;
    }
    if (N == 0 || C == 0 || OC == 0) return;
    /* et_gemm (kernels_gemm.h) by default: no OpenBLAS threads spinning beside the pool's, and
     * results independent of the thread count; ET_GEMM=blas (or an allocation failure) uses
     * OpenBLAS sgemm. */
    const et_gemm_epi acc = {.accumulate = 1};
    if (dinp && !(bwd_gemm_ours() && et_gemm(dinp, C, dout, OC, 0, w, C, 0, ET_GEMM_F32, N, C, OC, &acc) == ET_OK)) {
        pthread_once(&blas_once, blas_init);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)N, (blasint)C, (blasint)OC,
                    1.0f, dout, (blasint)OC, w, (blasint)C, 1.0f, dinp, (blasint)C);
    }
    if (dw && !(bwd_gemm_ours() && et_gemm(dw, C, dout, OC, 1, inp, C, 0, ET_GEMM_F32, OC, C, N, &acc) == ET_OK)) {
        pthread_once(&blas_once, blas_init);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)OC, (blasint)C, (blasint)N,
                    1.0f, dout, (blasint)OC, inp, (blasint)C, 1.0f, dw, (blasint)C);
    }
    if (dbias) {
        colsum_task t = {dbias, dout, N, OC};
        if (N * OC < 32768) colsum_run(&t, 0, 1);
        else et_parallel(colsum_run, &t);
    }
}

/* ==== layernorm ============================================================================ */

void layernorm_backward_ref(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                            const float *mean, const float *rstd, const float *w, size_t N,
                            size_t C) {
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C, *g = dout + n * C;
        double m = mean[n], s = rstd[n], sg = 0, sgx = 0;
        for (size_t c = 0; c < C; c++) {
            double xh = (x[c] - m) * s, gw = (double)g[c] * w[c];
            sg += gw;
            sgx += gw * xh;
            if (dw) dw[c] += (float)(g[c] * xh);
            if (db) db[c] += g[c];
        }
        sg /= (double)C;
        sgx /= (double)C;
        for (size_t c = 0; c < C; c++) {
            double xh = (x[c] - m) * s, gw = (double)g[c] * w[c];
            dinp[n * C + c] += (float)(s * (gw - sg - xh * sgx));
        }
    }
}

typedef struct {
    float *dinp, *dw, *db;
    const float *dout, *inp, *mean, *rstd, *w;
    size_t N, C;
} lnb_task;

static void lnb_row_scalar(float *dx, const float *g, const float *x, float m, float s,
                           const float *w, size_t C) {
    float sg = 0, sgx = 0;
    for (size_t c = 0; c < C; c++) {
        float gw = g[c] * w[c];
        sg += gw;
        sgx += gw * (x[c] - m) * s;
    }
    sg /= (float)C;
    sgx /= (float)C;
    for (size_t c = 0; c < C; c++) dx[c] += s * (g[c] * w[c] - sg - (x[c] - m) * s * sgx);
}

#if ET_X86
ET_AVX2 static void lnb_row_avx2(float *dx, const float *g, const float *x, float m, float s,
                                 const float *w, size_t C) {
    __m256 vm = _mm256_set1_ps(m), vs = _mm256_set1_ps(s);
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 gw = _mm256_mul_ps(_mm256_loadu_ps(g + c), _mm256_loadu_ps(w + c));
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vs);
        a0 = _mm256_add_ps(a0, gw);
        a1 = _mm256_fmadd_ps(gw, xh, a1);
    }
    float sg = hsum8(a0), sgx = hsum8(a1);
    for (; c < C; c++) {
        float gw = g[c] * w[c];
        sg += gw;
        sgx += gw * (x[c] - m) * s;
    }
    sg /= (float)C;
    sgx /= (float)C;
    __m256 vsg = _mm256_set1_ps(sg), vsgx = _mm256_set1_ps(sgx);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 gw = _mm256_mul_ps(_mm256_loadu_ps(g + c), _mm256_loadu_ps(w + c));
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vs);
        __m256 t = _mm256_fnmadd_ps(xh, vsgx, _mm256_sub_ps(gw, vsg));
        _mm256_storeu_ps(dx + c, _mm256_fmadd_ps(vs, t, _mm256_loadu_ps(dx + c)));
    }
    for (; c < C; c++) dx[c] += s * (g[c] * w[c] - sg - (x[c] - m) * s * sgx);
}
#endif

#if ET_X86
/* aw[j] += sum_n g[n,j] xhat[n,j], ab[j] += sum_n g[n,j] for j < w (w % 8 == 0, w <= 32). */
ET_AVX2 static void lnb_cols_avx2(float *aw, float *ab, const float *g, const float *x, const float *mean,
                                  const float *rstd, size_t N, size_t ld, size_t w) {
    size_t nv = w / 8;
    __m256 vw[4], vb[4];
    for (size_t u = 0; u < nv; u++) vw[u] = _mm256_loadu_ps(aw + 8 * u), vb[u] = _mm256_loadu_ps(ab + 8 * u);
    for (size_t n = 0; n < N; n++) {
        __m256 m = _mm256_set1_ps(mean[n]), s = _mm256_set1_ps(rstd[n]);
        const float *gr = g + n * ld, *xr = x + n * ld;
        for (size_t u = 0; u < nv; u++) {
            __m256 gv = _mm256_loadu_ps(gr + 8 * u);
            __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(xr + 8 * u), m), s);
            vw[u] = _mm256_fmadd_ps(gv, xh, vw[u]);
            vb[u] = _mm256_add_ps(vb[u], gv);
        }
    }
    for (size_t u = 0; u < nv; u++) _mm256_storeu_ps(aw + 8 * u, vw[u]), _mm256_storeu_ps(ab + 8 * u, vb[u]);
}
#endif

/* Each thread: its share of rows for dinp, then its share of channels for dw/db. */
static void lnb_run(void *p, int ith, int nth) {
    lnb_task *t = p;
    size_t C = t->C;
    long lo, hi;
    et_split((long)t->N, ith, nth, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        size_t off = (size_t)n * C;
#if ET_X86
        if (have_avx2())
            lnb_row_avx2(t->dinp + off, t->dout + off, t->inp + off, t->mean[n], t->rstd[n], t->w, C);
        else
#endif
            lnb_row_scalar(t->dinp + off, t->dout + off, t->inp + off, t->mean[n], t->rstd[n], t->w, C);
    }
    if (!t->dw && !t->db) return;
    et_split((long)((C + 7) / 8), ith, nth, &lo, &hi);
    size_t c0 = (size_t)lo * 8, c1 = ET_MIN((size_t)hi * 8, C);
    float aw[32], ab[32];
    for (size_t cb = c0; cb < c1; cb += 32) {
        size_t wd = ET_MIN((size_t)32, c1 - cb);
        memset(aw, 0, sizeof aw);
        memset(ab, 0, sizeof ab);
#if ET_X86
        if (have_avx2() && wd % 8 == 0)
            lnb_cols_avx2(aw, ab, t->dout + cb, t->inp + cb, t->mean, t->rstd, t->N, C, wd);
        else
#endif
            for (size_t n = 0; n < t->N; n++) {
                const float *x = t->inp + n * C + cb, *g = t->dout + n * C + cb;
                float m = t->mean[n], s = t->rstd[n];
                for (size_t j = 0; j < wd; j++) {
                    aw[j] += g[j] * ((x[j] - m) * s);
                    ab[j] += g[j];
                }
            }
        for (size_t j = 0; j < wd; j++) {
            if (t->dw) t->dw[cb + j] += aw[j];
            if (t->db) t->db[cb + j] += ab[j];
        }
    }
}

void layernorm_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp,
                        const float *mean, const float *rstd, const float *w, size_t N, size_t C) {
    if (use_ref()) {
        layernorm_backward_ref(dinp, dw, db, dout, inp, mean, rstd, w, N, C);
        return;
    }
    lnb_task t = {dinp, dw, db, dout, inp, mean, rstd, w, N, C};
    if (N * C < 16384) lnb_run(&t, 0, 1);
    else et_parallel(lnb_run, &t);
}

/* ==== activations ============================================================================ */

#define INV_SQRT2 0.70710678118654752440
#define INV_SQRT_2PI 0.39894228040143267794
#define GELU_K0 0.79788456080286535588 /* sqrt(2/pi) */
#define GELU_K1 0.044715

void gelu_backward_ref(float *dinp, const float *inp, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        double x = inp[i];
        double d = 0.5 * (1.0 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * exp(-0.5 * x * x);
        dinp[i] += (float)(dout[i] * d);
    }
}

void gelu_tanh_backward_ref(float *dinp, const float *inp, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        double x = inp[i], u = GELU_K0 * (x + GELU_K1 * x * x * x), t = tanh(u);
        double d = 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_K0 * (1.0 + 3.0 * GELU_K1 * x * x);
        dinp[i] += (float)(dout[i] * d);
    }
}

void relu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++)
        if (inp[i] > 0.0f) dinp[i] += dout[i];
}

static void gelu_bwd_scalar(float *dinp, const float *inp, const float *dout, size_t N, int tanh_) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i], d;
        if (!tanh_) {
            d = 0.5f * (1.0f + erff(x * (float)INV_SQRT2)) + x * (float)INV_SQRT_2PI * expf(-0.5f * x * x);
        } else {
            float u = (float)GELU_K0 * (x + (float)GELU_K1 * x * x * x), t = tanhf(u);
            float ch = coshf(u), sech2 = 1.0f / (ch * ch); /* not 1 - t*t: cancellation */
            d = 0.5f * (1.0f + t) + 0.5f * x * sech2 * (float)GELU_K0 * (1.0f + 3.0f * (float)GELU_K1 * x * x);
        }
        dinp[i] += dout[i] * d;
    }
}

#if ET_X86
ET_AVX2 static void gelu_bwd_avx2(float *dinp, const float *inp, const float *dout, size_t N) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f),
                 rs2 = _mm256_set1_ps((float)INV_SQRT2), ir2p = _mm256_set1_ps((float)INV_SQRT_2PI),
                 mhalf = _mm256_set1_ps(-0.5f);
    size_t i = 0;
    for (; i + 8 <= N; i += 8) {
        __m256 x = _mm256_loadu_ps(inp + i);
        __m256 cdf = _mm256_mul_ps(half, _mm256_add_ps(one, erf8(_mm256_mul_ps(x, rs2))));
        __m256 pdf = _mm256_mul_ps(ir2p, exp8(_mm256_mul_ps(mhalf, _mm256_mul_ps(x, x))));
        __m256 d = _mm256_fmadd_ps(x, pdf, cdf);
        _mm256_storeu_ps(dinp + i, _mm256_fmadd_ps(_mm256_loadu_ps(dout + i), d, _mm256_loadu_ps(dinp + i)));
    }
    gelu_bwd_scalar(dinp + i, inp + i, dout + i, N - i, 0);
}

/* tanh(u) = 1 - 2 / (exp(2u) + 1), u clamped to +-20 (tanh is +-1 there in float). */
ET_AVX2 static void gelu_tanh_bwd_avx2(float *dinp, const float *inp, const float *dout, size_t N) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f),
                 k0 = _mm256_set1_ps((float)GELU_K0), k1 = _mm256_set1_ps((float)GELU_K1),
                 k3 = _mm256_set1_ps(3.0f * (float)GELU_K1), lim = _mm256_set1_ps(20.0f);
    size_t i = 0;
    for (; i + 8 <= N; i += 8) {
        __m256 x = _mm256_loadu_ps(inp + i), x2 = _mm256_mul_ps(x, x);
        __m256 u = _mm256_mul_ps(k0, _mm256_fmadd_ps(_mm256_mul_ps(k1, x2), x, x));
        u = _mm256_min_ps(_mm256_max_ps(u, _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim);
        __m256 e = exp8(_mm256_mul_ps(two, u)), e1 = _mm256_add_ps(e, one);
        __m256 t = _mm256_sub_ps(one, _mm256_div_ps(two, e1));
        /* 1 - tanh^2 = 4e / (1 + e)^2, without the cancellation of 1 - t*t */
        __m256 sech2 = _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(4.0f), e), _mm256_mul_ps(e1, e1));
        __m256 du = _mm256_mul_ps(k0, _mm256_fmadd_ps(k3, x2, one));
        __m256 a = _mm256_mul_ps(half, _mm256_add_ps(one, t));
        __m256 b = _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_mul_ps(sech2, du));
        __m256 d = _mm256_add_ps(a, b);
        _mm256_storeu_ps(dinp + i, _mm256_fmadd_ps(_mm256_loadu_ps(dout + i), d, _mm256_loadu_ps(dinp + i)));
    }
    gelu_bwd_scalar(dinp + i, inp + i, dout + i, N - i, 1);
}
#endif

typedef struct {
    float *dinp;
    const float *inp, *dout;
    size_t N;
    int tanh_;
} gb_task;

static void gb_run(void *p, int ith, int nth) {
    gb_task *t = p;
    long lo, hi;
    et_split((long)((t->N + 63) / 64), ith, nth, &lo, &hi);
    size_t a = (size_t)lo * 64, e = ET_MIN((size_t)hi * 64, t->N);
    if (a >= e) return;
#if ET_X86
    if (have_avx2()) {
        if (t->tanh_) gelu_tanh_bwd_avx2(t->dinp + a, t->inp + a, t->dout + a, e - a);
        else gelu_bwd_avx2(t->dinp + a, t->inp + a, t->dout + a, e - a);
        return;
    }
#endif
    gelu_bwd_scalar(t->dinp + a, t->inp + a, t->dout + a, e - a, t->tanh_);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    if (use_ref()) {
        gelu_backward_ref(dinp, inp, dout, N);
        return;
    }
    gb_task t = {dinp, inp, dout, N, 0};
    if (N < 8192) gb_run(&t, 0, 1);
    else et_parallel(gb_run, &t);
}

void gelu_tanh_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    if (use_ref()) {
        gelu_tanh_backward_ref(dinp, inp, dout, N);
        return;
    }
    gb_task t = {dinp, inp, dout, N, 1};
    if (N < 8192) gb_run(&t, 0, 1);
    else et_parallel(gb_run, &t);
}

/* ==== attention ============================================================================== */

/* Reference: per (b, h), scores and probabilities in double, P materialized. */
void attention_forward_train_ref(float *out, float *lse, const float *qkv, const size_t *offs,
                                 size_t B, size_t C, size_t NH, const et_dropout *drop) {
    size_t HS = C / NH, C3 = 3 * C, N = offs[B];
    double scale = 1.0 / sqrt((double)HS), dscale = drop_on(drop) ? 1.0 / (1.0 - drop->p) : 1.0;
    for (size_t b = 0; b < B; b++) {
        size_t o0 = offs[b], T = offs[b + 1] - o0;
        double *p = malloc((T + 1) * sizeof(double));
        if (!p) return; /* reference kernel: tests only */
        for (size_t h = 0; h < NH; h++)
            for (size_t i = 0; i < T; i++) {
                const float *q = qkv + (o0 + i) * C3 + h * HS;
                double mx = -INFINITY, sum = 0;
                for (size_t j = 0; j < T; j++) {
                    const float *k = qkv + (o0 + j) * C3 + C + h * HS;
                    double s = 0;
                    for (size_t d = 0; d < HS; d++) s += (double)q[d] * k[d];
                    p[j] = s * scale;
                    if (p[j] > mx) mx = p[j];
                }
                for (size_t j = 0; j < T; j++) sum += (p[j] = exp(p[j] - mx));
                lse[h * N + o0 + i] = (float)(mx + log(sum));
                drow r = {0, 0, 0};
                if (drop_on(drop)) r = drop_row(drop, ((uint64_t)b * NH + h) * 65536 + i);
                for (size_t j = 0; j < T; j++) {
                    p[j] /= sum;
                    if (drop_on(drop)) p[j] = drop_keep(r, (uint32_t)j) ? p[j] * dscale : 0.0;
                }
                for (size_t d = 0; d < HS; d++) {
                    double acc = 0;
                    for (size_t j = 0; j < T; j++) acc += p[j] * qkv[(o0 + j) * C3 + 2 * C + h * HS + d];
                    out[(o0 + i) * C + h * HS + d] = (float)acc;
                }
            }
        free(p);
    }
}

/* Reference backward, independent of the forward's lse/out: P is rebuilt in
 * double from qkv, then dPd = dO V^T, dV = Pd^T dO, dP = dPd * mask,
 * dS = P (dP - rowsum(P dP)), dQ = scale dS K, dK = scale dS^T Q. */
void attention_backward_ref(float *dqkv, const float *dout, const float *qkv, const float *out,
                            const float *lse, const size_t *offs, size_t B, size_t C, size_t NH,
                            const et_dropout *drop) {
    (void)out;
    (void)lse;
    size_t HS = C / NH, C3 = 3 * C;
    double scale = 1.0 / sqrt((double)HS), dscale = drop_on(drop) ? 1.0 / (1.0 - drop->p) : 1.0;
    for (size_t b = 0; b < B; b++) {
        size_t o0 = offs[b], T = offs[b + 1] - o0;
        double *P = malloc((T * T + 1) * sizeof(double)), *M = malloc((T * T + 1) * sizeof(double));
        double *dS = malloc((T * T + 1) * sizeof(double));
        if (!P || !M || !dS) {
            free(P), free(M), free(dS);
            return;
        }
        for (size_t h = 0; h < NH; h++) {
#define Q_(i, d) ((double)qkv[(o0 + (i)) * C3 + h * HS + (d)])
#define K_(i, d) ((double)qkv[(o0 + (i)) * C3 + C + h * HS + (d)])
#define V_(i, d) ((double)qkv[(o0 + (i)) * C3 + 2 * C + h * HS + (d)])
#define DO_(i, d) ((double)dout[(o0 + (i)) * C + h * HS + (d)])
            for (size_t i = 0; i < T; i++) {
                double mx = -INFINITY, sum = 0;
                for (size_t j = 0; j < T; j++) {
                    double s = 0;
                    for (size_t d = 0; d < HS; d++) s += Q_(i, d) * K_(j, d);
                    P[i * T + j] = s * scale;
                    if (P[i * T + j] > mx) mx = P[i * T + j];
                }
                for (size_t j = 0; j < T; j++) sum += (P[i * T + j] = exp(P[i * T + j] - mx));
                drow r = {0, 0, 0};
                if (drop_on(drop)) r = drop_row(drop, ((uint64_t)b * NH + h) * 65536 + i);
                for (size_t j = 0; j < T; j++) {
                    P[i * T + j] /= sum;
                    M[i * T + j] = drop_on(drop) ? (drop_keep(r, (uint32_t)j) ? dscale : 0.0) : 1.0;
                }
            }
            /* dV[j] = sum_i Pd[i,j] dO[i] */
            for (size_t j = 0; j < T; j++)
                for (size_t d = 0; d < HS; d++) {
                    double acc = 0;
                    for (size_t i = 0; i < T; i++) acc += P[i * T + j] * M[i * T + j] * DO_(i, d);
                    dqkv[(o0 + j) * C3 + 2 * C + h * HS + d] += (float)acc;
                }
            for (size_t i = 0; i < T; i++) {
                double rs = 0;
                for (size_t j = 0; j < T; j++) {
                    double dpd = 0;
                    for (size_t d = 0; d < HS; d++) dpd += DO_(i, d) * V_(j, d);
                    dS[i * T + j] = dpd * M[i * T + j]; /* dP */
                    rs += dS[i * T + j] * P[i * T + j];
                }
                for (size_t j = 0; j < T; j++) dS[i * T + j] = P[i * T + j] * (dS[i * T + j] - rs);
            }
            for (size_t i = 0; i < T; i++)
                for (size_t d = 0; d < HS; d++) {
                    double aq = 0, ak = 0;
                    for (size_t j = 0; j < T; j++) {
                        aq += dS[i * T + j] * K_(j, d);
                        ak += dS[j * T + i] * Q_(j, d);
                    }
                    dqkv[(o0 + i) * C3 + h * HS + d] += (float)(aq * scale);
                    dqkv[(o0 + i) * C3 + C + h * HS + d] += (float)(ak * scale);
                }
#undef Q_
#undef K_
#undef V_
#undef DO_
        }
        free(P), free(M), free(dS);
    }
}

/* ---- fast attention: one (sequence, head) pair per work item ------------------------------- */
/* Per (sequence b, head h) with T tokens, in per-thread scratch: contiguous
 * copies Q, K, V, dO [T, HS] and transposes KT, VT [HS, T], so that every
 * product is one call of gemm_small, a register-blocked kernel for these
 * small shapes (2 rows x 32 columns per block). The forward and backward
 * passes compute the scores S = Q KT with the same kernel on the same data,
 * so backward rebuilds exactly the forward's probabilities from lse. */

typedef struct {
    float *out, *lse, *dqkv;
    const float *qkv, *dout, *fout, *flse;
    const size_t *offs;
    size_t B, C, NH, Tmax;
    const et_dropout *drop;
    float *scratch; /* [nth, per_thread] */
    size_t per_thread;
} at_task;

#if ET_X86
/* s[j] = exp(s[j] * scale - mx); returns the sum. */
ET_AVX2 static float softmax_exp_avx2(float *s, size_t T, float scale, float mx) {
    __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(mx), acc = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= T; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(s + j), vs), vm));
        _mm256_storeu_ps(s + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum8(acc);
    for (; j < T; j++) sum += (s[j] = expf(s[j] * scale - mx));
    return sum;
}

ET_AVX2 static void attn_bwd_row_avx2(float *s, float *dp, const float *m, float lse, float D, size_t T,
                                      float scale) {
    __m256 vs = _mm256_set1_ps(scale), vl = _mm256_set1_ps(lse), vd = _mm256_set1_ps(D);
    size_t j = 0;
    for (; j + 8 <= T; j += 8) {
        __m256 p = exp8(_mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(s + j), vs), vl));
        __m256 mj = m ? _mm256_loadu_ps(m + j) : _mm256_set1_ps(1.0f);
        __m256 g = _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(dp + j), mj), vd);
        _mm256_storeu_ps(s + j, _mm256_mul_ps(vs, _mm256_mul_ps(p, g)));
        _mm256_storeu_ps(dp + j, _mm256_mul_ps(p, mj));
    }
    for (; j < T; j++) {
        float p = expf(s[j] * scale - lse), mj = m ? m[j] : 1.0f;
        s[j] = scale * (p * (dp[j] * mj - D));
        dp[j] = p * mj;
    }
}
#endif

/* out[M, Nc] (row stride ldo) += A[M, K] @ B[K, Nc] (row stride ldb), where
 * A(m, k) = A[m * sm + k * sk] (sm, sk = lda, 1 for A, 1, lda for A^T). */
static void gemm_small_scalar(float *out, size_t ldo, const float *A, size_t sm, size_t sk, const float *B,
                              size_t ldb, size_t M, size_t K, size_t Nc) {
    for (size_t m = 0; m < M; m++)
        for (size_t k = 0; k < K; k++) {
            float a = A[m * sm + k * sk];
            for (size_t n = 0; n < Nc; n++) out[m * ldo + n] += a * B[k * ldb + n];
        }
}

#if ET_X86
ET_AVX2 static void gemm_small_avx2(float *out, size_t ldo, const float *A, size_t sm, size_t sk,
                                    const float *B, size_t ldb, size_t M, size_t K, size_t Nc) {
    size_t n = 0;
    for (; n + 32 <= Nc; n += 32) {
        size_t m = 0;
        for (; m + 2 <= M; m += 2) {
            float *o0 = out + m * ldo + n, *o1 = o0 + ldo;
            __m256 c00 = _mm256_loadu_ps(o0), c01 = _mm256_loadu_ps(o0 + 8), c02 = _mm256_loadu_ps(o0 + 16),
                   c03 = _mm256_loadu_ps(o0 + 24);
            __m256 c10 = _mm256_loadu_ps(o1), c11 = _mm256_loadu_ps(o1 + 8), c12 = _mm256_loadu_ps(o1 + 16),
                   c13 = _mm256_loadu_ps(o1 + 24);
            const float *a0 = A + m * sm, *a1 = a0 + sm, *b = B + n;
            for (size_t k = 0; k < K; k++, a0 += sk, a1 += sk, b += ldb) {
                __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8), b2 = _mm256_loadu_ps(b + 16),
                       b3 = _mm256_loadu_ps(b + 24);
                __m256 x = _mm256_broadcast_ss(a0);
                c00 = _mm256_fmadd_ps(x, b0, c00);
                c01 = _mm256_fmadd_ps(x, b1, c01);
                c02 = _mm256_fmadd_ps(x, b2, c02);
                c03 = _mm256_fmadd_ps(x, b3, c03);
                x = _mm256_broadcast_ss(a1);
                c10 = _mm256_fmadd_ps(x, b0, c10);
                c11 = _mm256_fmadd_ps(x, b1, c11);
                c12 = _mm256_fmadd_ps(x, b2, c12);
                c13 = _mm256_fmadd_ps(x, b3, c13);
            }
            _mm256_storeu_ps(o0, c00), _mm256_storeu_ps(o0 + 8, c01), _mm256_storeu_ps(o0 + 16, c02),
                _mm256_storeu_ps(o0 + 24, c03);
            _mm256_storeu_ps(o1, c10), _mm256_storeu_ps(o1 + 8, c11), _mm256_storeu_ps(o1 + 16, c12),
                _mm256_storeu_ps(o1 + 24, c13);
        }
        for (; m < M; m++) {
            float *o0 = out + m * ldo + n;
            __m256 c00 = _mm256_loadu_ps(o0), c01 = _mm256_loadu_ps(o0 + 8), c02 = _mm256_loadu_ps(o0 + 16),
                   c03 = _mm256_loadu_ps(o0 + 24);
            const float *a0 = A + m * sm, *b = B + n;
            for (size_t k = 0; k < K; k++, a0 += sk, b += ldb) {
                __m256 x = _mm256_broadcast_ss(a0);
                c00 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b), c00);
                c01 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 8), c01);
                c02 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 16), c02);
                c03 = _mm256_fmadd_ps(x, _mm256_loadu_ps(b + 24), c03);
            }
            _mm256_storeu_ps(o0, c00), _mm256_storeu_ps(o0 + 8, c01), _mm256_storeu_ps(o0 + 16, c02),
                _mm256_storeu_ps(o0 + 24, c03);
        }
    }
    for (; n + 8 <= Nc; n += 8) {
        size_t m = 0;
        for (; m + 4 <= M; m += 4) {
            float *o = out + m * ldo + n;
            __m256 c0 = _mm256_loadu_ps(o), c1 = _mm256_loadu_ps(o + ldo), c2 = _mm256_loadu_ps(o + 2 * ldo),
                   c3 = _mm256_loadu_ps(o + 3 * ldo);
            const float *a = A + m * sm, *b = B + n;
            for (size_t k = 0; k < K; k++, a += sk, b += ldb) {
                __m256 bv = _mm256_loadu_ps(b);
                c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), bv, c0);
                c1 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + sm), bv, c1);
                c2 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 2 * sm), bv, c2);
                c3 = _mm256_fmadd_ps(_mm256_broadcast_ss(a + 3 * sm), bv, c3);
            }
            _mm256_storeu_ps(o, c0), _mm256_storeu_ps(o + ldo, c1), _mm256_storeu_ps(o + 2 * ldo, c2),
                _mm256_storeu_ps(o + 3 * ldo, c3);
        }
        for (; m < M; m++) {
            float *o = out + m * ldo + n;
            __m256 c0 = _mm256_loadu_ps(o);
            const float *a = A + m * sm, *b = B + n;
            for (size_t k = 0; k < K; k++, a += sk, b += ldb)
                c0 = _mm256_fmadd_ps(_mm256_broadcast_ss(a), _mm256_loadu_ps(b), c0);
            _mm256_storeu_ps(o, c0);
        }
    }
    if (n < Nc) gemm_small_scalar(out + n, ldo, A, sm, sk, B + n, ldb, M, K, Nc - n);
}
#endif

static void gemm_small(float *out, size_t ldo, const float *A, size_t sm, size_t sk, const float *B, size_t ldb,
                       size_t M, size_t K, size_t Nc) {
#if ET_X86
    if (have_avx2()) {
        gemm_small_avx2(out, ldo, A, sm, sk, B, ldb, M, K, Nc);
        return;
    }
#endif
    gemm_small_scalar(out, ldo, A, sm, sk, B, ldb, M, K, Nc);
}

/* y[i] += x[i], and the dot product of x and y. */
#if ET_X86
ET_AVX2 static void vadd_avx2(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

ET_AVX2 static float vdot_avx2(const float *x, const float *y, size_t n) {
    __m256 a = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a);
    float s = hsum8(a);
    for (; i < n; i++) s += x[i] * y[i];
    return s;
}
#endif

static void vadd(float *y, const float *x, size_t n) {
#if ET_X86
    if (have_avx2()) {
        vadd_avx2(y, x, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static float vdot(const float *x, const float *y, size_t n) {
#if ET_X86
    if (have_avx2()) return vdot_avx2(x, y, n);
#endif
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += x[i] * y[i];
    return s;
}

/* Softmax of row s [T] scaled by `scale`, in place into probabilities;
 * returns the log-normalizer lse = max + log(sum exp(scale s - max)). */
static float softmax_row(float *s, size_t T, float scale) {
    float mx = -INFINITY;
    for (size_t j = 0; j < T; j++) mx = s[j] > mx ? s[j] : mx;
    mx *= scale; /* fl(scale * max s) == max fl(scale * s_j): rounding is monotonic */
    float sum;
#if ET_X86
    if (have_avx2()) sum = softmax_exp_avx2(s, T, scale, mx);
    else
#endif
    {
        sum = 0.0f;
        for (size_t j = 0; j < T; j++) sum += (s[j] = expf(s[j] * scale - mx));
    }
    float inv = 1.0f / sum;
    for (size_t j = 0; j < T; j++) s[j] *= inv;
    return mx + logf(sum);
}

/* Copies head h of rows [T] of qkv (stride C3) at column offset off into
 * dst [T, HS] and, when dt != NULL, its transpose dt [HS, T]. */
static void gather_head(float *dst, float *dt, const float *src, size_t stride, size_t T, size_t HS) {
    for (size_t j = 0; j < T; j++) memcpy(dst + j * HS, src + j * stride, HS * sizeof(float));
    if (dt)
        for (size_t j = 0; j < T; j++)
            for (size_t d = 0; d < HS; d++) dt[d * T + j] = dst[j * HS + d];
}

static void atf_run(void *ctx, int ith, int nth) {
    at_task *t = ctx;
    size_t C = t->C, NH = t->NH, HS = C / NH, C3 = 3 * C, N = t->offs[t->B], Tm = t->Tmax;
    float scale = 1.0f / sqrtf((float)HS);
    float *Q = t->scratch + (size_t)ith * t->per_thread;   /* [Tm, HS] */
    float *V = Q + Tm * HS, *O = V + Tm * HS;               /* [Tm, HS] */
    float *KT = O + Tm * HS;                                /* [HS, Tm] */
    float *S = KT + HS * Tm, *m = S + Tm * Tm;              /* [Tm, Tm], [Tm] */
    int dr = drop_on(t->drop);
    float dscale = dr ? drop_scale(t->drop) : 1.0f;
    long lo, hi;
    et_split((long)(t->B * NH), ith, nth, &lo, &hi);
    for (long bh = lo; bh < hi; bh++) {
        size_t b = (size_t)bh / NH, h = (size_t)bh % NH;
        size_t o0 = t->offs[b], T = t->offs[b + 1] - o0;
        const float *base = t->qkv + o0 * C3 + h * HS;
        gather_head(Q, NULL, base, C3, T, HS);
        gather_head(O, KT, base + C, C3, T, HS); /* O holds K for the transpose */
        gather_head(V, NULL, base + 2 * C, C3, T, HS);
        memset(S, 0, T * T * sizeof(float));
        gemm_small(S, T, Q, HS, 1, KT, T, T, HS, T);
        for (size_t i = 0; i < T; i++) {
            float *p = S + i * T;
            t->lse[h * N + o0 + i] = softmax_row(p, T, scale);
            if (dr) {
                drop_mask(m, drop_row(t->drop, ((uint64_t)b * NH + h) * 65536 + i), 0, T, dscale);
                for (size_t j = 0; j < T; j++) p[j] *= m[j];
            }
        }
        memset(O, 0, T * HS * sizeof(float));
        gemm_small(O, HS, S, T, 1, V, HS, T, T, HS);
        for (size_t i = 0; i < T; i++) memcpy(t->out + (o0 + i) * C + h * HS, O + i * HS, HS * sizeof(float));
    }
}

static size_t seq_max(const size_t *offs, size_t B) {
    size_t m = 0;
    for (size_t b = 0; b < B; b++) m = ET_MAX(m, offs[b + 1] - offs[b]);
    return m;
}

void attention_forward_train(float *out, float *lse, const float *qkv, const size_t *offs, size_t B,
                             size_t C, size_t NH, const et_dropout *drop) {
    size_t Tmax = seq_max(offs, B), HS = C / NH, per;
    int nth = et_get_threads();
    float *scratch = NULL;
    /* per thread: Q, V, O, KT [T, HS] each, S [T, T], mask [T] */
    if (!use_ref() && et_size_mul(Tmax, 4 * HS + Tmax + 1, &per) && et_size_add(per, 16, &per))
        scratch = et_malloc_n((size_t)nth, per * sizeof(float), NULL);
    if (!scratch) {
        attention_forward_train_ref(out, lse, qkv, offs, B, C, NH, drop);
        return;
    }
    at_task t = {out, lse, NULL, qkv, NULL, NULL, NULL, offs, B, C, NH, Tmax, drop, scratch, per};
    et_parallel_n(atf_run, &t, nth);
    free(scratch);
}

/* One row of the backward: s [T] holds the scores (unscaled) and becomes dS
 * (scaled by `scale`, the factor of the score gradient); dp [T] holds
 * dO_i . v_j and becomes Pd = P * mask. m [T] = mask * 1/(1-p) or NULL. */
static void attn_bwd_row(float *s, float *dp, const float *m, float lse, float D, size_t T, float scale) {
#if ET_X86
    if (have_avx2()) {
        attn_bwd_row_avx2(s, dp, m, lse, D, T, scale);
        return;
    }
#endif
    for (size_t j = 0; j < T; j++) {
        float p = expf(s[j] * scale - lse), mj = m ? m[j] : 1.0f;
        s[j] = scale * (p * (dp[j] * mj - D));
        dp[j] = p * mj;
    }
}

static void atb_run(void *ctx, int ith, int nth) {
    at_task *t = ctx;
    size_t C = t->C, NH = t->NH, HS = C / NH, C3 = 3 * C, N = t->offs[t->B], Tm = t->Tmax;
    float scale = 1.0f / sqrtf((float)HS);
    size_t th = Tm * HS;
    float *Q = t->scratch + (size_t)ith * t->per_thread;       /* [Tm, HS] each: */
    float *K = Q + th, *V = K + th, *dO = V + th, *dQ = dO + th, *dK = dQ + th, *dV = dK + th;
    float *KT = dV + th, *VT = KT + th;                        /* [HS, Tm] */
    float *S = VT + th, *P = S + Tm * Tm, *m = P + Tm * Tm;    /* [Tm, Tm] x 2, [Tm] */
    int dr = drop_on(t->drop);
    float dscale = dr ? drop_scale(t->drop) : 1.0f;
    long lo, hi;
    et_split((long)(t->B * NH), ith, nth, &lo, &hi);
    for (long bh = lo; bh < hi; bh++) {
        size_t b = (size_t)bh / NH, h = (size_t)bh % NH;
        size_t o0 = t->offs[b], T = t->offs[b + 1] - o0;
        const float *base = t->qkv + o0 * C3 + h * HS;
        gather_head(Q, NULL, base, C3, T, HS);
        gather_head(K, KT, base + C, C3, T, HS);
        gather_head(V, VT, base + 2 * C, C3, T, HS);
        gather_head(dO, NULL, t->dout + o0 * C + h * HS, C, T, HS);
        memset(S, 0, T * T * sizeof(float));
        memset(P, 0, T * T * sizeof(float));
        gemm_small(S, T, Q, HS, 1, KT, T, T, HS, T);  /* scores */
        gemm_small(P, T, dO, HS, 1, VT, T, T, HS, T); /* dO v_j */
        for (size_t i = 0; i < T; i++) {
            float D = vdot(dO + i * HS, t->fout + (o0 + i) * C + h * HS, HS);
            if (dr) drop_mask(m, drop_row(t->drop, ((uint64_t)b * NH + h) * 65536 + i), 0, T, dscale);
            attn_bwd_row(S + i * T, P + i * T, dr ? m : NULL, t->flse[h * N + o0 + i], D, T, scale);
        }
        memset(dQ, 0, 3 * th * sizeof(float)); /* dQ, dK, dV */
        gemm_small(dQ, HS, S, T, 1, K, HS, T, T, HS);  /* dQ = dS K */
        gemm_small(dK, HS, S, 1, T, Q, HS, T, T, HS);  /* dK = dS^T Q */
        gemm_small(dV, HS, P, 1, T, dO, HS, T, T, HS); /* dV = Pd^T dO */
        for (size_t i = 0; i < T; i++) {
            float *g = t->dqkv + (o0 + i) * C3 + h * HS;
            vadd(g, dQ + i * HS, HS);
            vadd(g + C, dK + i * HS, HS);
            vadd(g + 2 * C, dV + i * HS, HS);
        }
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                        const float *lse, const size_t *offs, size_t B, size_t C, size_t NH,
                        const et_dropout *drop) {
    size_t Tmax = seq_max(offs, B), HS = C / NH, per;
    int nth = et_get_threads();
    float *scratch = NULL;
    /* per thread: Q, K, V, dO, dQ, dK, dV, KT, VT [T, HS] each, S, P [T, T], mask [T] */
    if (!use_ref() && et_size_mul(Tmax, 9 * HS + 2 * Tmax + 1, &per) && et_size_add(per, 16, &per))
        scratch = et_malloc_n((size_t)nth, per * sizeof(float), NULL);
    if (!scratch) {
        attention_backward_ref(dqkv, dout, qkv, out, lse, offs, B, C, NH, drop);
        return;
    }
    at_task t = {NULL, NULL, dqkv, qkv, dout, out, lse, offs, B, C, NH, Tmax, drop, scratch, per};
    et_parallel_n(atb_run, &t, nth);
    free(scratch);
}

/* ==== embeddings ================================================================================ */

void embedding_backward_ref(float *dwte, float *dwpe, float *dwtt, const float *dout,
                            const int32_t *ids, const int32_t *pos, const int32_t *types,
                            int32_t skip_id, int32_t skip_pos, size_t N, size_t C) {
    for (size_t n = 0; n < N; n++) {
        const float *g = dout + n * C;
        for (size_t c = 0; c < C; c++) {
            if (ids[n] != skip_id) dwte[(size_t)ids[n] * C + c] += g[c];
            if (pos[n] != skip_pos) dwpe[(size_t)pos[n] * C + c] += g[c];
            if (dwtt) dwtt[(size_t)(types ? types[n] : 0) * C + c] += g[c];
        }
    }
}

typedef struct {
    float *dwte, *dwpe, *dwtt;
    const float *dout;
    const int32_t *ids, *pos, *types;
    int32_t skip_id, skip_pos;
    size_t N, C;
} eb_task;

static void eb_run(void *p, int ith, int nth) {
    eb_task *t = p;
    long lo, hi;
    et_split((long)((t->C + 7) / 8), ith, nth, &lo, &hi);
    size_t c0 = (size_t)lo * 8, c1 = ET_MIN((size_t)hi * 8, t->C), C = t->C;
    for (size_t n = 0; n < t->N; n++) {
        const float *g = t->dout + n * C;
        if (t->ids[n] != t->skip_id) {
            float *d = t->dwte + (size_t)t->ids[n] * C;
            for (size_t c = c0; c < c1; c++) d[c] += g[c];
        }
        if (t->pos[n] != t->skip_pos) {
            float *d = t->dwpe + (size_t)t->pos[n] * C;
            for (size_t c = c0; c < c1; c++) d[c] += g[c];
        }
        if (t->dwtt) {
            float *d = t->dwtt + (size_t)(t->types ? t->types[n] : 0) * C;
            for (size_t c = c0; c < c1; c++) d[c] += g[c];
        }
    }
}

void embedding_backward(float *dwte, float *dwpe, float *dwtt, const float *dout, const int32_t *ids,
                        const int32_t *pos, const int32_t *types, int32_t skip_id, int32_t skip_pos,
                        size_t N, size_t C) {
    if (use_ref()) {
        embedding_backward_ref(dwte, dwpe, dwtt, dout, ids, pos, types, skip_id, skip_pos, N, C);
        return;
    }
    eb_task t = {dwte, dwpe, dwtt, dout, ids, pos, types, skip_id, skip_pos, N, C};
    if (N * C < 16384) eb_run(&t, 0, 1);
    else et_parallel(eb_run, &t);
}

/* ==== pooling and normalization ==================================================================== */

void pool_forward_packed(float *out, const float *inp, const size_t *offs, size_t B, size_t C,
                         int mode) {
    for (size_t b = 0; b < B; b++) {
        size_t o0 = offs[b], T = offs[b + 1] - o0;
        float *o = out + b * C;
        if (mode == POOL_MEAN || mode == POOL_MAX) {
            memcpy(o, inp + o0 * C, C * sizeof(float));
            for (size_t t = 1; t < T; t++) {
                const float *x = inp + (o0 + t) * C;
                if (mode == POOL_MEAN)
                    for (size_t c = 0; c < C; c++) o[c] += x[c];
                else
                    for (size_t c = 0; c < C; c++) o[c] = x[c] > o[c] ? x[c] : o[c];
            }
            if (mode == POOL_MEAN)
                for (size_t c = 0; c < C; c++) o[c] /= (float)T;
        } else {
            size_t t = mode == POOL_LAST ? T - 1 : 0;
            memcpy(o, inp + (o0 + t) * C, C * sizeof(float));
        }
    }
}

void pool_backward_packed(float *dinp, const float *dout, const float *inp, const size_t *offs,
                          size_t B, size_t C, int mode) {
    for (size_t b = 0; b < B; b++) {
        size_t o0 = offs[b], T = offs[b + 1] - o0;
        const float *g = dout + b * C;
        if (mode == POOL_MEAN) {
            for (size_t t = 0; t < T; t++)
                for (size_t c = 0; c < C; c++) dinp[(o0 + t) * C + c] += g[c] / (float)T;
        } else if (mode == POOL_MAX) {
            for (size_t c = 0; c < C; c++) {
                size_t best = 0;
                for (size_t t = 1; t < T; t++)
                    if (inp[(o0 + t) * C + c] > inp[(o0 + best) * C + c]) best = t;
                dinp[(o0 + best) * C + c] += g[c];
            }
        } else {
            size_t t = mode == POOL_LAST ? T - 1 : 0;
            for (size_t c = 0; c < C; c++) dinp[(o0 + t) * C + c] += g[c];
        }
    }
}

void l2norm_backward(float *dinp, const float *dout, const float *out, const float *norm, size_t B,
                     size_t C) {
    for (size_t b = 0; b < B; b++) {
        const float *g = dout + b * C, *y = out + b * C;
        float *dx = dinp + b * C;
        if (norm[b] < 1e-12f) {
            for (size_t c = 0; c < C; c++) dx[c] += g[c] / 1e-12f;
            continue;
        }
        double dot = 0;
        for (size_t c = 0; c < C; c++) dot += (double)g[c] * y[c];
        float inv = 1.0f / norm[b];
        for (size_t c = 0; c < C; c++) dx[c] += (g[c] - y[c] * (float)dot) * inv;
    }
}
