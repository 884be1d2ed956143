/* kernels.c - forward kernels: the plain reference kernels and the dispatched
 * (threaded, vectorized) ones. See kernels.h for the contracts.
 *
 * The AVX2/FMA code is compiled per function with target attributes and
 * chosen at run time (__builtin_cpu_supports), never with a global -march.
 */
#include "kernels.h"

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
#else
#define ET_X86 0
#endif

/* ==== dispatch ================================================================== */

static int use_ref = -1; /* ET_KERNELS=ref */
static int have_avx2 = -1;

static int kernels_ref(void) {
    if (use_ref < 0) {
        const char *e = getenv("ET_KERNELS");
        use_ref = e && !strcmp(e, "ref");
    }
    return use_ref;
}

int kernels_have_avx2(void) {
    if (have_avx2 < 0) {
#if ET_X86
        __builtin_cpu_init();
        have_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        have_avx2 = 0;
#endif
    }
    return have_avx2;
}

/* ==== reference kernels ============================================================ */

void matmul_forward_ref(float *out, const float *inp, const float *w, const float *bias,
                        size_t N, size_t C, size_t OC) {
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        for (size_t o = 0; o < OC; o++) {
            const float *wr = w + o * C;
            double acc = bias ? bias[o] : 0.0;
            for (size_t c = 0; c < C; c++) acc += (double)x[c] * wr[c];
            out[n * OC + o] = (float)acc;
        }
    }
}

void layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                           const float *w, const float *b, size_t N, size_t C, float eps) {
    for (size_t n = 0; n < N; n++) {
        const float *x = inp + n * C;
        double m = 0, v = 0;
        for (size_t c = 0; c < C; c++) m += x[c];
        m /= (double)C;
        for (size_t c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= (double)C;
        double s = 1.0 / sqrt(v + eps);
        float *o = out + n * C;
        for (size_t c = 0; c < C; c++) o[c] = (float)((x[c] - m) * s * w[c] + b[c]);
        if (mean) mean[n] = (float)m;
        if (rstd) rstd[n] = (float)s;
    }
}

void residual_layernorm_forward_ref(float *out, float *res, float *mean, float *rstd,
                                    const float *a, const float *r, const float *w,
                                    const float *b, size_t N, size_t C, float eps) {
    float *tmp = malloc(C * sizeof(float));
    if (!tmp) return; /* reference kernel: only used in tests */
    for (size_t n = 0; n < N; n++) {
        for (size_t c = 0; c < C; c++) tmp[c] = a[n * C + c] + r[n * C + c];
        if (res) memcpy(res + n * C, tmp, C * sizeof(float));
        layernorm_forward_ref(out + n * C, mean ? mean + n : NULL, rstd ? rstd + n : NULL, tmp,
                              w, b, 1, C, eps);
    }
    free(tmp);
}

void gelu_forward_ref(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + erf(x * 0.70710678118654752440)));
    }
}

void gelu_tanh_forward_ref(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) {
        double x = inp[i];
        out[i] = (float)(0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x))));
    }
}

void attention_forward_ref(float *out, float *att, const float *qkv, const size_t *lens,
                           size_t B, size_t T, size_t C, size_t NH) {
    size_t HS = C / NH, C3 = 3 * C;
    double scale = 1.0 / sqrt((double)HS);
    for (size_t b = 0; b < B; b++) {
        size_t len = lens[b] < T ? lens[b] : T;
        for (size_t h = 0; h < NH; h++) {
            for (size_t i = 0; i < T; i++) {
                float *a = att + ((b * NH + h) * T + i) * T;
                float *o = out + (b * T + i) * C + h * HS;
                memset(a, 0, T * sizeof(float));
                if (i >= len) {
                    memset(o, 0, HS * sizeof(float));
                    continue;
                }
                const float *q = qkv + (b * T + i) * C3 + h * HS;
                double mx = -INFINITY;
                for (size_t j = 0; j < len; j++) {
                    const float *k = qkv + (b * T + j) * C3 + C + h * HS;
                    double s = 0;
                    for (size_t d = 0; d < HS; d++) s += (double)q[d] * k[d];
                    s *= scale;
                    a[j] = (float)s;
                    if (s > mx) mx = s;
                }
                double sum = 0;
                for (size_t j = 0; j < len; j++) {
                    double e = exp((double)a[j] - mx);
                    a[j] = (float)e;
                    sum += e;
                }
                for (size_t j = 0; j < len; j++) a[j] = (float)(a[j] / sum);
                for (size_t d = 0; d < HS; d++) {
                    double acc = 0;
                    for (size_t j = 0; j < len; j++)
                        acc += (double)a[j] * qkv[(b * T + j) * C3 + 2 * C + h * HS + d];
                    o[d] = (float)acc;
                }
            }
        }
    }
}

/* ==== shared small kernels (single implementation; simple enough) ================= */

void relu_forward(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = inp[i] > 0 ? inp[i] : 0.0f;
}

void residual_forward(float *out, const float *a, const float *b, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

void embedding_forward(float *out, const int32_t *ids, const int32_t *pos, const int32_t *types,
                       const float *wte, const float *wpe, const float *wtt, size_t N, size_t C) {
    for (size_t n = 0; n < N; n++) {
        const float *e = wte + (size_t)ids[n] * C;
        const float *p = wpe + (size_t)pos[n] * C;
        float *o = out + n * C;
        if (wtt) {
            const float *t = wtt + (size_t)(types ? types[n] : 0) * C;
            for (size_t c = 0; c < C; c++) o[c] = e[c] + p[c] + t[c];
        } else {
            for (size_t c = 0; c < C; c++) o[c] = e[c] + p[c];
        }
    }
}

void pool_forward(float *out, const float *inp, const size_t *lens, size_t skip, size_t B, size_t T,
                  size_t C, int mode) {
    for (size_t b = 0; b < B; b++) {
        size_t len = lens[b] < T ? lens[b] : T, t0 = skip < len ? skip : len;
        const float *x = inp + b * T * C;
        float *o = out + b * C;
        if (len == 0) {
            memset(o, 0, C * sizeof(float));
            continue;
        }
        switch (mode) {
        case ET_POOL_CLS:
            memcpy(o, x, C * sizeof(float));
            break;
        case ET_POOL_LAST:
            memcpy(o, x + (t0 < len ? len - 1 : 0) * C, C * sizeof(float));
            break;
        case ET_POOL_MAX:
            for (size_t c = 0; c < C; c++) o[c] = -1e9f;
            for (size_t t = t0; t < len; t++)
                for (size_t c = 0; c < C; c++)
                    if (x[t * C + c] > o[c]) o[c] = x[t * C + c];
            break;
        case ET_POOL_WEIGHTEDMEAN: {
            float ws = 0;
            for (size_t t = t0; t < len; t++) ws += (float)(t + 1);
            for (size_t c = 0; c < C; c++) {
                float s = 0;
                for (size_t t = t0; t < len; t++) s += (float)(t + 1) * x[t * C + c];
                o[c] = ws > 0 ? s / ws : 0;
            }
            break;
        }
        default: { /* mean, mean_sqrt_len */
            size_t cnt = len - t0;
            float d = mode == ET_POOL_MEAN_SQRT_LEN ? sqrtf((float)cnt) : (float)cnt;
            for (size_t c = 0; c < C; c++) {
                float s = 0;
                for (size_t t = t0; t < len; t++) s += x[t * C + c];
                o[c] = cnt ? s / d : 0;
            }
            break;
        }
        }
    }
}

void l2norm_forward(float *out, float *norm, const float *inp, size_t B, size_t C) {
    for (size_t b = 0; b < B; b++) {
        double s = 0;
        for (size_t c = 0; c < C; c++) s += (double)inp[b * C + c] * inp[b * C + c];
        double nr = sqrt(s);
        if (norm) norm[b] = (float)nr;
        float d = (float)(nr > 1e-12 ? nr : 1e-12);
        for (size_t c = 0; c < C; c++) out[b * C + c] = inp[b * C + c] / d;
    }
}

/* ==== fast kernels ====================================================================== */

/* ---- vector math (AVX2) ---------------------------------------------------------- */
#if ET_X86
#define ET_AVX2 __attribute__((target("avx2,fma")))

/* exp(x) for x in float range, Cephes-style: x = n ln2 + r, |r| <= ln2/2,
 * degree-6 polynomial; max rel error ~2 ulp. Inputs < -87.3 flush to 0. */
ET_AVX2 static inline __m256 exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, z, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, y);
}

/* erf(x): Abramowitz-Stegun 7.1.26 is too coarse (1.5e-7 abs is fine but the
 * exp inside dominates); we use erf(x) = 1 - t*exp(-x^2 + P(t)) (Numerical
 * Recipes erfc, rel err < 1.2e-7) on |x|, sign restored. */
ET_AVX2 static inline __m256 erf256(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 sx = _mm256_and_ps(x, sign);
    __m256 z = _mm256_andnot_ps(sign, x);
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, one));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    __m256 arg = _mm256_sub_ps(p, _mm256_mul_ps(z, z));
    __m256 erfc = _mm256_mul_ps(t, exp256(arg));
    __m256 r = _mm256_sub_ps(one, erfc);
    return _mm256_or_ps(r, sx);
}

ET_AVX2 static void gelu_avx2(float *out, const float *inp, size_t N) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f),
                 rs2 = _mm256_set1_ps(0.70710678118654752f);
    size_t i = 0;
    for (; i + 8 <= N; i += 8) {
        __m256 x = _mm256_loadu_ps(inp + i);
        __m256 e = erf256(_mm256_mul_ps(x, rs2));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, e)));
    }
    for (; i < N; i++) out[i] = 0.5f * inp[i] * (1.0f + erff(inp[i] * 0.70710678118654752f));
}

/* tanh(u) = 1 - 2 / (exp(2u) + 1) */
ET_AVX2 static void gelu_tanh_avx2(float *out, const float *inp, size_t N) {
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f),
                 k0 = _mm256_set1_ps(0.79788456080286535588f), k1 = _mm256_set1_ps(0.044715f);
    size_t i = 0;
    for (; i + 8 <= N; i += 8) {
        __m256 x = _mm256_loadu_ps(inp + i);
        __m256 u = _mm256_mul_ps(k0, _mm256_fmadd_ps(_mm256_mul_ps(k1, x), _mm256_mul_ps(x, x), x));
        u = _mm256_min_ps(_mm256_max_ps(u, _mm256_set1_ps(-20.0f)), _mm256_set1_ps(20.0f));
        __m256 e = exp256(_mm256_mul_ps(two, u));
        __m256 th = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(e, one)));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(half, x), _mm256_add_ps(one, th)));
    }
    for (; i < N; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
    }
}

ET_AVX2 static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One row of layernorm (two-pass, float accumulation in 8 lanes x 2). */
ET_AVX2 static void layernorm_row_avx2(float *o, float *mean, float *rstd, const float *x,
                                       const float *w, const float *b, size_t C, float eps) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 16 <= C; c += 16) {
        s0 = _mm256_add_ps(s0, _mm256_loadu_ps(x + c));
        s1 = _mm256_add_ps(s1, _mm256_loadu_ps(x + c + 8));
    }
    float sum = hsum256(_mm256_add_ps(s0, s1));
    for (; c < C; c++) sum += x[c];
    float m = sum / (float)C;
    __m256 vm = _mm256_set1_ps(m);
    s0 = _mm256_setzero_ps();
    s1 = _mm256_setzero_ps();
    for (c = 0; c + 16 <= C; c += 16) {
        __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + c), vm);
        __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(x + c + 8), vm);
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
    }
    float var = hsum256(_mm256_add_ps(s0, s1));
    for (; c < C; c++) var += (x[c] - m) * (x[c] - m);
    var /= (float)C;
    float s = 1.0f / sqrtf(var + eps);
    __m256 vs = _mm256_set1_ps(s);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), vm), vs);
        _mm256_storeu_ps(o + c, _mm256_fmadd_ps(d, _mm256_loadu_ps(w + c), _mm256_loadu_ps(b + c)));
    }
    for (; c < C; c++) o[c] = (x[c] - m) * s * w[c] + b[c];
    if (mean) *mean = m;
    if (rstd) *rstd = s;
}
#endif /* ET_X86 */

static void layernorm_row(float *o, float *mean, float *rstd, const float *x, const float *w,
                          const float *b, size_t C, float eps) {
#if ET_X86
    if (kernels_have_avx2()) {
        layernorm_row_avx2(o, mean, rstd, x, w, b, C, eps);
        return;
    }
#endif
    layernorm_forward_ref(o, mean, rstd, x, w, b, 1, C, eps);
}

/* ---- layernorm (threaded over rows) --------------------------------------------------- */

typedef struct {
    float *out, *res, *mean, *rstd;
    const float *a, *r, *w, *b;
    size_t N, C;
    float eps;
} ln_task;

static void ln_run(void *p, int ith, int nth) {
    ln_task *t = p;
    long lo, hi;
    et_split((long)t->N, ith, nth, &lo, &hi);
    for (long n = lo; n < hi; n++) {
        size_t off = (size_t)n * t->C;
        const float *x = t->a + off;
        if (t->r) {
            /* res = a + r, then normalize it; written into res (or out when res is NULL,
             * which is safe because each row is read before it is written). */
            float *dst = t->res ? t->res + off : t->out + off;
            for (size_t c = 0; c < t->C; c++) dst[c] = x[c] + t->r[off + c];
            x = dst;
        }
        layernorm_row(t->out + off, t->mean ? t->mean + n : NULL, t->rstd ? t->rstd + n : NULL, x,
                      t->w, t->b, t->C, t->eps);
    }
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *w,
                       const float *b, size_t N, size_t C, float eps) {
    if (kernels_ref()) {
        layernorm_forward_ref(out, mean, rstd, inp, w, b, N, C, eps);
        return;
    }
    ln_task t = {out, NULL, mean, rstd, inp, NULL, w, b, N, C, eps};
    if (N * C < 16384) ln_run(&t, 0, 1);
    else et_parallel(ln_run, &t);
}

void residual_layernorm_forward(float *out, float *res, float *mean, float *rstd, const float *a,
                                const float *r, const float *w, const float *b, size_t N, size_t C,
                                float eps) {
    if (kernels_ref()) {
        residual_layernorm_forward_ref(out, res, mean, rstd, a, r, w, b, N, C, eps);
        return;
    }
    ln_task t = {out, res, mean, rstd, a, r, w, b, N, C, eps};
    if (N * C < 16384) ln_run(&t, 0, 1);
    else et_parallel(ln_run, &t);
}

/* ---- elementwise activations (threaded over blocks) ------------------------------------- */

typedef struct {
    float *out;
    const float *inp;
    size_t N;
    int kind; /* 0 gelu, 1 gelu_tanh */
} act_task;

static void act_run(void *p, int ith, int nth) {
    act_task *t = p;
    long lo, hi;
    et_split((long)((t->N + 63) / 64), ith, nth, &lo, &hi);
    size_t a = (size_t)lo * 64, e = ET_MIN((size_t)hi * 64, t->N);
    if (a >= e) return;
#if ET_X86
    if (kernels_have_avx2()) {
        if (t->kind == 0) gelu_avx2(t->out + a, t->inp + a, e - a);
        else gelu_tanh_avx2(t->out + a, t->inp + a, e - a);
        return;
    }
#endif
    if (t->kind == 0) gelu_forward_ref(t->out + a, t->inp + a, e - a);
    else gelu_tanh_forward_ref(t->out + a, t->inp + a, e - a);
}

void gelu_forward(float *out, const float *inp, size_t N) {
    if (kernels_ref()) {
        gelu_forward_ref(out, inp, N);
        return;
    }
    act_task t = {out, inp, N, 0};
    if (N < 8192) act_run(&t, 0, 1);
    else et_parallel(act_run, &t);
}

void gelu_tanh_forward(float *out, const float *inp, size_t N) {
    if (kernels_ref()) {
        gelu_tanh_forward_ref(out, inp, N);
        return;
    }
    act_task t = {out, inp, N, 1};
    if (N < 8192) act_run(&t, 0, 1);
    else et_parallel(act_run, &t);
}

/* ---- attention ----------------------------------------------------------------------- */

/* The training kernel keeps the probabilities; it threads the reference
 * computation over (b, h) pairs with float accumulation. */
typedef struct {
    float *out, *att;
    const float *qkv;
    const size_t *lens;
    size_t B, T, C, NH;
    float *scratch; /* [nth, HS * T + T] (infer only) */
} attn_task;

/* Scores of query row q against keys kt [HS, len] (transposed), softmax into p [len]. */
static void attn_row_scalar(float *o, float *p, const float *q, const float *kt, const float *v0,
                            size_t vstride, size_t len, size_t HS, float scale) {
    float mx = -INFINITY;
    for (size_t j = 0; j < len; j++) p[j] = 0.0f;
    for (size_t d = 0; d < HS; d++) {
        float qd = q[d] * scale;
        const float *k = kt + d * len;
        for (size_t j = 0; j < len; j++) p[j] += qd * k[j];
    }
    for (size_t j = 0; j < len; j++) mx = p[j] > mx ? p[j] : mx;
    float sum = 0.0f;
    for (size_t j = 0; j < len; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    float inv = 1.0f / sum;
    for (size_t d = 0; d < HS; d++) o[d] = 0.0f;
    for (size_t j = 0; j < len; j++) {
        float pj = p[j] * inv;
        p[j] = pj;
        const float *v = v0 + j * vstride;
        for (size_t d = 0; d < HS; d++) o[d] += pj * v[d];
    }
}

#if ET_X86
ET_AVX2 static void attn_row_avx2(float *o, float *p, const float *q, const float *kt,
                                  const float *v0, size_t vstride, size_t len, size_t HS,
                                  float scale) {
    size_t j;
    for (j = 0; j < len; j++) p[j] = 0.0f;
    for (size_t d = 0; d < HS; d++) {
        __m256 qd = _mm256_set1_ps(q[d] * scale);
        float qs = q[d] * scale;
        const float *k = kt + d * len;
        for (j = 0; j + 8 <= len; j += 8)
            _mm256_storeu_ps(p + j, _mm256_fmadd_ps(qd, _mm256_loadu_ps(k + j), _mm256_loadu_ps(p + j)));
        for (; j < len; j++) p[j] += qs * k[j];
    }
    float mx = -INFINITY;
    for (j = 0; j < len; j++) mx = p[j] > mx ? p[j] : mx;
    __m256 vmx = _mm256_set1_ps(mx), vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= len; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(p + j), vmx));
        _mm256_storeu_ps(p + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    float sum = hsum256(vs);
    for (; j < len; j++) {
        p[j] = expf(p[j] - mx);
        sum += p[j];
    }
    float inv = 1.0f / sum;
    size_t d;
    for (d = 0; d < HS; d++) o[d] = 0.0f;
    for (j = 0; j < len; j++) {
        float pj = p[j] * inv;
        p[j] = pj;
        __m256 vp = _mm256_set1_ps(pj);
        const float *v = v0 + j * vstride;
        for (d = 0; d + 8 <= HS; d += 8)
            _mm256_storeu_ps(o + d, _mm256_fmadd_ps(vp, _mm256_loadu_ps(v + d), _mm256_loadu_ps(o + d)));
        for (; d < HS; d++) o[d] += pj * v[d];
    }
}
#endif

static void attn_run(void *ctx, int ith, int nth) {
    attn_task *t = ctx;
    size_t T = t->T, C = t->C, NH = t->NH, HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    float *kt = t->scratch + (size_t)ith * (HS * T + T); /* [HS, len] */
    float *prow = kt + HS * T;                            /* [T] */
    long lo, hi;
    et_split((long)(t->B * NH), ith, nth, &lo, &hi);
    for (long bh = lo; bh < hi; bh++) {
        size_t b = (size_t)bh / NH, h = (size_t)bh % NH;
        size_t len = t->lens[b] < T ? t->lens[b] : T;
        const float *base = t->qkv + b * T * C3;
        for (size_t j = 0; j < len; j++)
            for (size_t d = 0; d < HS; d++) kt[d * len + j] = base[j * C3 + C + h * HS + d];
        for (size_t i = 0; i < T; i++) {
            float *o = t->out + (b * T + i) * C + h * HS;
            float *p = t->att ? t->att + ((b * NH + h) * T + i) * T : prow;
            if (i >= len) {
                memset(o, 0, HS * sizeof(float));
                if (t->att) memset(p, 0, T * sizeof(float));
                continue;
            }
            const float *q = base + i * C3 + h * HS;
            const float *v0 = base + 2 * C + h * HS;
#if ET_X86
            if (kernels_have_avx2()) attn_row_avx2(o, p, q, kt, v0, C3, len, HS, scale);
            else
#endif
                attn_row_scalar(o, p, q, kt, v0, C3, len, HS, scale);
            if (t->att && len < T) memset(p + len, 0, (T - len) * sizeof(float));
        }
    }
}

static int attention_fast(float *out, float *att, const float *qkv, const size_t *lens, size_t B,
                          size_t T, size_t C, size_t NH) {
    size_t HS = C / NH, per, total;
    int nth = et_get_threads();
    if (!et_size_mul(HS + 1, T, &per) || !et_size_mul(per, (size_t)nth, &total)) return ET_ENOMEM;
    float *scratch = malloc(total * sizeof(float) + 1);
    if (!scratch) return ET_ENOMEM;
    attn_task t = {out, att, qkv, lens, B, T, C, NH, scratch};
    et_parallel_n(attn_run, &t, nth);
    free(scratch);
    return ET_OK;
}

void attention_forward(float *out, float *att, const float *qkv, const size_t *lens, size_t B,
                       size_t T, size_t C, size_t NH) {
    if (kernels_ref() || attention_fast(out, att, qkv, lens, B, T, C, NH) != ET_OK)
        attention_forward_ref(out, att, qkv, lens, B, T, C, NH);
}

int attention_forward_infer(float *out, const float *qkv, const size_t *lens, size_t B, size_t T,
                            size_t C, size_t NH) {
    if (kernels_ref()) {
        /* whole-model cross-check path: the reference needs the probabilities */
        size_t n;
        if (!et_size_mul(B * NH, T * T, &n)) return ET_ENOMEM;
        float *att = malloc(n * sizeof(float) + 1);
        if (!att) return ET_ENOMEM;
        attention_forward_ref(out, att, qkv, lens, B, T, C, NH);
        free(att);
        return ET_OK;
    }
    return attention_fast(out, NULL, qkv, lens, B, T, C, NH);
}

/* ---- matmul ---------------------------------------------------------------------------- */

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static void blas_init(void) {
    extern void openblas_set_num_threads(int);
    openblas_set_num_threads(et_get_threads());
}

void matmul_forward_blas(float *out, const float *inp, const float *w, const float *bias, size_t N,
                         size_t C, size_t OC) {
    pthread_once(&blas_once, blas_init);
    if (bias) {
        for (size_t n = 0; n < N; n++) memcpy(out + n * OC, bias, OC * sizeof(float));
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)N, (blasint)OC, (blasint)C, 1.0f,
                inp, (blasint)C, w, (blasint)C, bias ? 1.0f : 0.0f, out, (blasint)OC);
}

/* Own AVX2/FMA GEMM: w is packed into panels of 16 output columns [K][16]
 * (zero-padded), then 6x16 register tiles are computed over the full K. */
#define MR 6
#define NR 16
#define MC 48

typedef struct {
    float *out;
    const float *inp, *w, *bias;
    size_t N, C, OC, npanels;
    float *packed; /* [npanels, C, NR] */
} mm_task;

static void mm_pack(void *ctx, int ith, int nth) {
    mm_task *t = ctx;
    long lo, hi;
    et_split((long)t->npanels, ith, nth, &lo, &hi);
    size_t C = t->C;
    for (long p = lo; p < hi; p++) {
        float *dst = t->packed + (size_t)p * C * NR;
        for (size_t jj = 0; jj < NR; jj++) {
            size_t o = (size_t)p * NR + jj;
            if (o < t->OC) {
                const float *src = t->w + o * C;
                for (size_t k = 0; k < C; k++) dst[k * NR + jj] = src[k];
            } else {
                for (size_t k = 0; k < C; k++) dst[k * NR + jj] = 0.0f;
            }
        }
    }
}

#if ET_X86
/* c[MR x NR] tile: rows a[0..mr), panel bp [K][16], bias b16 [16] or NULL. */
ET_AVX2 static void mm_tile(float *out, size_t ldo, const float *a, size_t lda, size_t mr,
                            const float *bp, size_t K, const float *b16, size_t nc) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    __m256 i0 = b16 ? _mm256_loadu_ps(b16) : _mm256_setzero_ps();
    __m256 i1 = b16 ? _mm256_loadu_ps(b16 + 8) : _mm256_setzero_ps();
    c00 = c10 = c20 = c30 = c40 = c50 = i0;
    c01 = c11 = c21 = c31 = c41 = c51 = i1;
    const float *a0 = a, *a1 = a + (mr > 1 ? 1 : 0) * lda, *a2 = a + (mr > 2 ? 2 : 0) * lda,
                *a3 = a + (mr > 3 ? 3 : 0) * lda, *a4 = a + (mr > 4 ? 4 : 0) * lda,
                *a5 = a + (mr > 5 ? 5 : 0) * lda;
    for (size_t k = 0; k < K; k++) {
        __m256 b0 = _mm256_loadu_ps(bp + k * NR), b1 = _mm256_loadu_ps(bp + k * NR + 8);
        __m256 x;
        x = _mm256_broadcast_ss(a0 + k); c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a1 + k); c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a2 + k); c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a3 + k); c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a4 + k); c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a5 + k); c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    __m256 r[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
    for (size_t i = 0; i < mr; i++) {
        float *o = out + i * ldo;
        if (nc == NR) {
            _mm256_storeu_ps(o, r[i][0]);
            _mm256_storeu_ps(o + 8, r[i][1]);
        } else {
            float tmp[NR];
            _mm256_storeu_ps(tmp, r[i][0]);
            _mm256_storeu_ps(tmp + 8, r[i][1]);
            for (size_t j = 0; j < nc; j++) o[j] = tmp[j];
        }
    }
}

static void mm_run(void *ctx, int ith, int nth) {
    mm_task *t = ctx;
    size_t nblocks = (t->N + MC - 1) / MC;
    /* 2-D split: row blocks when there are enough of them, else panels too */
    size_t ncolgroups = nblocks >= (size_t)nth ? 1 : (size_t)nth;
    if (ncolgroups > t->npanels) ncolgroups = t->npanels;
    long lo, hi;
    et_split((long)(nblocks * ncolgroups), ith, nth, &lo, &hi);
    for (long w = lo; w < hi; w++) {
        size_t blk = (size_t)w / ncolgroups, cg = (size_t)w % ncolgroups;
        long plo, phi;
        et_split((long)t->npanels, (int)cg, (int)ncolgroups, &plo, &phi);
        size_t r0 = blk * MC, r1 = ET_MIN(r0 + MC, t->N);
        for (long p = plo; p < phi; p++) {
            size_t c0 = (size_t)p * NR, nc = ET_MIN((size_t)NR, t->OC - c0);
            float b16[NR];
            if (t->bias) {
                for (size_t j = 0; j < NR; j++) b16[j] = j < nc ? t->bias[c0 + j] : 0.0f;
            }
            const float *bp = t->packed + (size_t)p * t->C * NR;
            for (size_t r = r0; r < r1; r += MR) {
                size_t mr = ET_MIN((size_t)MR, r1 - r);
                mm_tile(t->out + r * t->OC + c0, t->OC, t->inp + r * t->C, t->C, mr, bp, t->C,
                        t->bias ? b16 : NULL, nc);
            }
        }
    }
}
#endif

void matmul_forward_avx2(float *out, const float *inp, const float *w, const float *bias, size_t N,
                         size_t C, size_t OC) {
#if ET_X86
    if (kernels_have_avx2() && N > 0 && OC > 0 && C > 0) {
        size_t npanels = (OC + NR - 1) / NR, n;
        float *packed = NULL;
        if (et_size_mul(npanels * NR, C, &n)) packed = malloc(n * sizeof(float));
        if (packed) {
            mm_task t = {out, inp, w, bias, N, C, OC, npanels, packed};
            et_parallel(mm_pack, &t);
            et_parallel(mm_run, &t);
            free(packed);
            return;
        }
    }
#endif
    matmul_forward_blas(out, inp, w, bias, N, C, OC);
}

static int gemm_choice = -1; /* 0 = blas, 1 = avx2 */

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, size_t N,
                    size_t C, size_t OC) {
    if (kernels_ref()) {
        matmul_forward_ref(out, inp, w, bias, N, C, OC);
        return;
    }
    if (gemm_choice < 0) {
        const char *e = getenv("ET_GEMM");
        /* default: embtune's packed AVX2/FMA kernel. Its results do not depend on the thread
         * count (each output is one register accumulation over the full K), which callers rely
         * on (eval's top-k); OpenBLAS's do, and it was not consistently faster in `make bench`.
         * ET_GEMM=blas selects OpenBLAS sgemm. */
        gemm_choice = e && !strcmp(e, "blas") ? 0 : 1;
        if (!kernels_have_avx2()) gemm_choice = 0;
    }
    if (gemm_choice == 1) matmul_forward_avx2(out, inp, w, bias, N, C, OC);
    else matmul_forward_blas(out, inp, w, bias, N, C, OC);
}
