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

/* db[o] += sum_n dout[n, o], threads split the columns; rows summed in order. */
static void colsum_run(void *p, int ith, int nth) {
    colsum_task *t = p;
    long lo, hi;
    et_split((long)((t->OC + 7) / 8), ith, nth, &lo, &hi);
    size_t c0 = (size_t)lo * 8, c1 = ET_MIN((size_t)hi * 8, t->OC);
    if (c0 >= c1) return;
    float acc[256];
    for (size_t cb = c0; cb < c1; cb += 256) {
        size_t ce = ET_MIN(cb + 256, c1), w = ce - cb;
        memset(acc, 0, w * sizeof(float));
        for (size_t n = 0; n < t->N; n++) {
            const float *r = t->dout + n * t->OC + cb;
            for (size_t j = 0; j < w; j++) acc[j] += r[j];
        }
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
    pthread_once(&blas_once, blas_init);
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)N, (blasint)C, (blasint)OC,
                    1.0f, dout, (blasint)OC, w, (blasint)C, 1.0f, dinp, (blasint)C);
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)OC, (blasint)C, (blasint)N,
                    1.0f, dout, (blasint)OC, inp, (blasint)C, 1.0f, dw, (blasint)C);
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
    float aw[64], ab[64];
    for (size_t cb = c0; cb < c1; cb += 64) {
        size_t ce = ET_MIN(cb + 64, c1), wd = ce - cb;
        memset(aw, 0, sizeof aw);
        memset(ab, 0, sizeof ab);
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

typedef struct {
    float *out, *lse, *dqkv;
    const float *qkv, *dout, *fout, *flse;
    const size_t *offs;
    size_t B, C, NH, Tmax;
    const et_dropout *drop;
    float *scratch; /* [nth, per_thread] */
    size_t per_thread;
} at_task;

/* s[j] = scale * q . k_j for j < T, from kt [HS, T] (k transposed). */
static void scores_scalar(float *s, const float *q, const float *kt, size_t T, size_t HS, float scale) {
    for (size_t j = 0; j < T; j++) s[j] = 0.0f;
    for (size_t d = 0; d < HS; d++) {
        float qd = q[d] * scale;
        const float *k = kt + d * T;
        for (size_t j = 0; j < T; j++) s[j] += qd * k[j];
    }
}

#if ET_X86
ET_AVX2 static void scores_avx2(float *s, const float *q, const float *kt, size_t T, size_t HS,
                                float scale) {
    size_t j = 0;
    /* 32 columns at a time in registers, over all of d */
    for (; j + 32 <= T; j += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t d = 0; d < HS; d++) {
            __m256 qd = _mm256_set1_ps(q[d] * scale);
            const float *k = kt + d * T + j;
            a0 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k), a0);
            a1 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 8), a1);
            a2 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 16), a2);
            a3 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + 24), a3);
        }
        _mm256_storeu_ps(s + j, a0);
        _mm256_storeu_ps(s + j + 8, a1);
        _mm256_storeu_ps(s + j + 16, a2);
        _mm256_storeu_ps(s + j + 24, a3);
    }
    for (; j + 8 <= T; j += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (size_t d = 0; d < HS; d++)
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(q[d] * scale), _mm256_loadu_ps(kt + d * T + j), a0);
        _mm256_storeu_ps(s + j, a0);
    }
    for (; j < T; j++) {
        float a = 0.0f;
        for (size_t d = 0; d < HS; d++) a += q[d] * scale * kt[d * T + j];
        s[j] = a;
    }
}

/* p[j] = exp(s[j] - m); returns the sum. */
ET_AVX2 static float exp_sum_avx2(float *p, const float *s, float m, size_t T) {
    __m256 vm = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    size_t j = 0;
    for (; j + 8 <= T; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(p + j, e);
        acc = _mm256_add_ps(acc, e);
    }
    float sum = hsum8(acc);
    for (; j < T; j++) sum += (p[j] = expf(s[j] - m));
    return sum;
}

/* o[d] = sum_j p[j] v_j[d], v rows at stride vs. */
ET_AVX2 static void pv_avx2(float *o, const float *p, const float *v, size_t vs, size_t T, size_t HS) {
    size_t d = 0;
    for (; d + 32 <= HS; d += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t j = 0; j < T; j++) {
            __m256 pj = _mm256_set1_ps(p[j]);
            const float *vr = v + j * vs + d;
            a0 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr), a0);
            a1 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 8), a1);
            a2 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 16), a2);
            a3 = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vr + 24), a3);
        }
        _mm256_storeu_ps(o + d, a0);
        _mm256_storeu_ps(o + d + 8, a1);
        _mm256_storeu_ps(o + d + 16, a2);
        _mm256_storeu_ps(o + d + 24, a3);
    }
    for (; d + 8 <= HS; d += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (size_t j = 0; j < T; j++)
            a0 = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + j * vs + d), a0);
        _mm256_storeu_ps(o + d, a0);
    }
    for (; d < HS; d++) {
        float a = 0.0f;
        for (size_t j = 0; j < T; j++) a += p[j] * v[j * vs + d];
        o[d] = a;
    }
}
#endif

static void scores(float *s, const float *q, const float *kt, size_t T, size_t HS, float scale) {
#if ET_X86
    if (have_avx2()) {
        scores_avx2(s, q, kt, T, HS, scale);
        return;
    }
#endif
    scores_scalar(s, q, kt, T, HS, scale);
}

static float exp_sum(float *p, const float *s, float m, size_t T) {
#if ET_X86
    if (have_avx2()) return exp_sum_avx2(p, s, m, T);
#endif
    float sum = 0.0f;
    for (size_t j = 0; j < T; j++) sum += (p[j] = expf(s[j] - m));
    return sum;
}

static void pv(float *o, const float *p, const float *v, size_t vs, size_t T, size_t HS) {
#if ET_X86
    if (have_avx2()) {
        pv_avx2(o, p, v, vs, T, HS);
        return;
    }
#endif
    for (size_t d = 0; d < HS; d++) o[d] = 0.0f;
    for (size_t j = 0; j < T; j++)
        for (size_t d = 0; d < HS; d++) o[d] += p[j] * v[j * vs + d];
}

/* Copies head h's k (or v) columns of rows o0..o0+T-1 transposed into kt [HS, T]. */
static void gather_t(float *kt, const float *base, size_t stride, size_t T, size_t HS) {
    for (size_t j = 0; j < T; j++)
        for (size_t d = 0; d < HS; d++) kt[d * T + j] = base[j * stride + d];
}

static void atf_run(void *ctx, int ith, int nth) {
    at_task *t = ctx;
    size_t C = t->C, NH = t->NH, HS = C / NH, C3 = 3 * C, N = t->offs[t->B];
    float scale = 1.0f / sqrtf((float)HS);
    float *kt = t->scratch + (size_t)ith * t->per_thread; /* [HS, Tmax] */
    float *s = kt + HS * t->Tmax, *m = s + t->Tmax;       /* [Tmax] each */
    int dr = drop_on(t->drop);
    float dscale = dr ? drop_scale(t->drop) : 1.0f;
    long lo, hi;
    et_split((long)(t->B * NH), ith, nth, &lo, &hi);
    for (long bh = lo; bh < hi; bh++) {
        size_t b = (size_t)bh / NH, h = (size_t)bh % NH;
        size_t o0 = t->offs[b], T = t->offs[b + 1] - o0;
        const float *base = t->qkv + o0 * C3;
        gather_t(kt, base + C + h * HS, C3, T, HS);
        for (size_t i = 0; i < T; i++) {
            scores(s, base + i * C3 + h * HS, kt, T, HS, scale);
            float mx = -INFINITY;
            for (size_t j = 0; j < T; j++) mx = s[j] > mx ? s[j] : mx;
            float sum = exp_sum(s, s, mx, T), inv = 1.0f / sum;
            t->lse[h * N + o0 + i] = mx + logf(sum);
            if (dr) {
                drop_mask(m, drop_row(t->drop, ((uint64_t)b * NH + h) * 65536 + i), 0, T, dscale);
                for (size_t j = 0; j < T; j++) s[j] = s[j] * inv * m[j];
            } else {
                for (size_t j = 0; j < T; j++) s[j] *= inv;
            }
            pv(t->out + (o0 + i) * C + h * HS, s, base + 2 * C + h * HS, C3, T, HS);
        }
    }
}

static size_t seq_max(const size_t *offs, size_t B) {
    size_t m = 0;
    for (size_t b = 0; b < B; b++) m = ET_MAX(m, offs[b + 1] - offs[b]);
    return m;
}

void attention_forward_train(float *out, float *lse, const float *qkv, const size_t *offs, size_t B,
                             size_t C, size_t NH, const et_dropout *drop) {
    size_t Tmax = seq_max(offs, B), HS = C / NH;
    int nth = et_get_threads();
    size_t per = (HS + 2) * Tmax + 16;
    float *scratch = use_ref() ? NULL : malloc((size_t)nth * per * sizeof(float));
    if (!scratch) {
        attention_forward_train_ref(out, lse, qkv, offs, B, C, NH, drop);
        return;
    }
    at_task t = {out, lse, NULL, qkv, NULL, NULL, NULL, offs, B, C, NH, Tmax, drop, scratch, per};
    et_parallel_n(atf_run, &t, nth);
    free(scratch);
}

/* Backward of one query row i of one head, given p [T] = P[i, :], dpd [T] =
 * dO_i . v_j, the dropout multipliers m [T] (or NULL), and D = dO_i . O_i:
 *   ds_j = p_j (dpd_j m_j - D);  dq_i += scale sum_j ds_j k_j;
 *   dk_j += scale ds_j q_i;       dv_j += p_j m_j dO_i.
 * k, dk, dv are [T, HS] contiguous. */
static void atb_row_scalar(float *dq, float *dk, float *dv, const float *p, const float *dpd,
                           const float *m, float D, const float *q, const float *dO,
                           const float *k, size_t T, size_t HS, float scale) {
    for (size_t j = 0; j < T; j++) {
        float mj = m ? m[j] : 1.0f;
        float ds = p[j] * (dpd[j] * mj - D) * scale, pd = p[j] * mj;
        for (size_t d = 0; d < HS; d++) {
            dq[d] += ds * k[j * HS + d];
            dk[j * HS + d] += ds * q[d];
            dv[j * HS + d] += pd * dO[d];
        }
    }
}

#if ET_X86
ET_AVX2 static void atb_row_avx2(float *dq, float *dk, float *dv, const float *p, const float *dpd,
                                 const float *m, float D, const float *q, const float *dO,
                                 const float *k, size_t T, size_t HS, float scale) {
    if (HS % 8) {
        atb_row_scalar(dq, dk, dv, p, dpd, m, D, q, dO, k, T, HS, scale);
        return;
    }
    for (size_t d0 = 0; d0 < HS; d0 += 32) {
        size_t nd = ET_MIN((size_t)32, HS - d0) / 8;
        __m256 vq[4], vo[4], aq[4];
        for (size_t u = 0; u < nd; u++) {
            vq[u] = _mm256_loadu_ps(q + d0 + 8 * u);
            vo[u] = _mm256_loadu_ps(dO + d0 + 8 * u);
            aq[u] = _mm256_loadu_ps(dq + d0 + 8 * u);
        }
        for (size_t j = 0; j < T; j++) {
            float mj = m ? m[j] : 1.0f;
            __m256 ds = _mm256_set1_ps(p[j] * (dpd[j] * mj - D) * scale);
            __m256 pd = _mm256_set1_ps(p[j] * mj);
            const float *kr = k + j * HS + d0;
            float *dkr = dk + j * HS + d0, *dvr = dv + j * HS + d0;
            for (size_t u = 0; u < nd; u++) {
                aq[u] = _mm256_fmadd_ps(ds, _mm256_loadu_ps(kr + 8 * u), aq[u]);
                _mm256_storeu_ps(dkr + 8 * u, _mm256_fmadd_ps(ds, vq[u], _mm256_loadu_ps(dkr + 8 * u)));
                _mm256_storeu_ps(dvr + 8 * u, _mm256_fmadd_ps(pd, vo[u], _mm256_loadu_ps(dvr + 8 * u)));
            }
        }
        for (size_t u = 0; u < nd; u++) _mm256_storeu_ps(dq + d0 + 8 * u, aq[u]);
    }
}
#endif

static void atb_run(void *ctx, int ith, int nth) {
    at_task *t = ctx;
    size_t C = t->C, NH = t->NH, HS = C / NH, C3 = 3 * C, N = t->offs[t->B], Tm = t->Tmax;
    float scale = 1.0f / sqrtf((float)HS);
    float *kt = t->scratch + (size_t)ith * t->per_thread; /* [HS, Tm] */
    float *vt = kt + HS * Tm;                              /* [HS, Tm] */
    float *k = vt + HS * Tm;                               /* [Tm, HS] */
    float *dk = k + HS * Tm, *dv = dk + HS * Tm;           /* [Tm, HS] */
    float *p = dv + HS * Tm, *dpd = p + Tm, *m = dpd + Tm; /* [Tm] */
    float *dq = m + Tm;                                    /* [HS] */
    int dr = drop_on(t->drop);
    float dscale = dr ? drop_scale(t->drop) : 1.0f;
    long lo, hi;
    et_split((long)(t->B * NH), ith, nth, &lo, &hi);
    for (long bh = lo; bh < hi; bh++) {
        size_t b = (size_t)bh / NH, h = (size_t)bh % NH;
        size_t o0 = t->offs[b], T = t->offs[b + 1] - o0;
        const float *base = t->qkv + o0 * C3;
        gather_t(kt, base + C + h * HS, C3, T, HS);
        gather_t(vt, base + 2 * C + h * HS, C3, T, HS);
        for (size_t j = 0; j < T; j++) memcpy(k + j * HS, base + j * C3 + C + h * HS, HS * sizeof(float));
        memset(dk, 0, T * HS * sizeof(float));
        memset(dv, 0, T * HS * sizeof(float));
        for (size_t i = 0; i < T; i++) {
            const float *q = base + i * C3 + h * HS;
            const float *dO = t->dout + (o0 + i) * C + h * HS;
            const float *O = t->fout + (o0 + i) * C + h * HS;
            float D = 0.0f;
            for (size_t d = 0; d < HS; d++) D += dO[d] * O[d];
            scores(dpd, q, kt, T, HS, scale);
            exp_sum(p, dpd, t->flse[h * N + o0 + i], T);
            scores(dpd, dO, vt, T, HS, 1.0f);
            if (dr) drop_mask(m, drop_row(t->drop, ((uint64_t)b * NH + h) * 65536 + i), 0, T, dscale);
            memset(dq, 0, HS * sizeof(float));
#if ET_X86
            if (have_avx2()) atb_row_avx2(dq, dk, dv, p, dpd, dr ? m : NULL, D, q, dO, k, T, HS, scale);
            else
#endif
                atb_row_scalar(dq, dk, dv, p, dpd, dr ? m : NULL, D, q, dO, k, T, HS, scale);
            float *g = t->dqkv + (o0 + i) * C3 + h * HS;
            for (size_t d = 0; d < HS; d++) g[d] += dq[d];
        }
        for (size_t j = 0; j < T; j++) {
            float *gk = t->dqkv + (o0 + j) * C3 + C + h * HS, *gv = gk + C;
            for (size_t d = 0; d < HS; d++) {
                gk[d] += dk[j * HS + d];
                gv[d] += dv[j * HS + d];
            }
        }
    }
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *out,
                        const float *lse, const size_t *offs, size_t B, size_t C, size_t NH,
                        const et_dropout *drop) {
    size_t Tmax = seq_max(offs, B), HS = C / NH;
    int nth = et_get_threads();
    size_t per = 5 * HS * Tmax + 3 * Tmax + HS + 16;
    float *scratch = use_ref() ? NULL : malloc((size_t)nth * per * sizeof(float));
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
