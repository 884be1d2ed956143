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
#include "kernels_gemm.h"
#include "kernels_simd.h"
#include "threads.h"
#include "util.h"

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

/* ---- vector math (AVX2): et_exp8, et_erf8, et_gelu8, et_hsum8 in kernels_simd.h ------ */
#if ET_X86
ET_AVX2 static void gelu_avx2(float *out, const float *inp, size_t N) {
    size_t i = 0;
    for (; i + 8 <= N; i += 8) _mm256_storeu_ps(out + i, et_gelu8(_mm256_loadu_ps(inp + i)));
    for (; i < N; i++) out[i] = et_gelu1(inp[i]);
}

ET_AVX2 static void gelu_tanh_avx2(float *out, const float *inp, size_t N) {
    size_t i = 0;
    for (; i + 8 <= N; i += 8) _mm256_storeu_ps(out + i, et_gelu_tanh8(_mm256_loadu_ps(inp + i)));
    for (; i < N; i++) out[i] = et_gelu_tanh1(inp[i]);
}

ET_AVX2 static inline float hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
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
    float sum = et_hsum8(_mm256_add_ps(s0, s1));
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
    float var = et_hsum8(_mm256_add_ps(s0, s1));
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
        __m256 e = et_exp8(_mm256_sub_ps(_mm256_loadu_ps(p + j), vmx));
        _mm256_storeu_ps(p + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    float sum = et_hsum8(vs);
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

/* Inference attention in query blocks (no [T, T] scores, no probabilities
 * kept): per (sequence, head), K^T and V are packed once as GEMM panels
 * (et_gemm_pack_b); then for each block of ATT_QB query rows
 *   S = Q K^T            [qb, len]   et_gemm_packed
 *   P = softmax(S scale) [qb, len]   in place, row by row
 *   O = P V              [qb, HS]    et_gemm_packed, straight into out
 * Scratch per thread: packed K and V (2 x len x HS, rounded to 16) and one
 * score block [ATT_QB, len]. Each (sequence, head) is one thread's work, so
 * the result does not depend on the thread count. */
#define ATT_QB 48

static void softmax_scaled_scalar(float *p, size_t n, float scale) {
    float mx = -INFINITY, sum = 0.0f;
    for (size_t j = 0; j < n; j++) mx = p[j] > mx ? p[j] : mx;
    for (size_t j = 0; j < n; j++) sum += (p[j] = expf((p[j] - mx) * scale));
    float inv = 1.0f / sum;
    for (size_t j = 0; j < n; j++) p[j] *= inv;
}

#if ET_X86
ET_AVX2 static void softmax_scaled_avx2(float *p, size_t n, float scale) {
    size_t j = 0;
    __m256 vm = _mm256_set1_ps(-INFINITY);
    for (; j + 8 <= n; j += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(p + j));
    float mx = hmax256(vm);
    for (; j < n; j++) mx = p[j] > mx ? p[j] : mx;
    __m256 vmx = _mm256_set1_ps(mx), vsc = _mm256_set1_ps(scale), vs = _mm256_setzero_ps();
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 e = et_exp8(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(p + j), vmx), vsc));
        _mm256_storeu_ps(p + j, e);
        vs = _mm256_add_ps(vs, e);
    }
    float sum = et_hsum8(vs);
    for (; j < n; j++) sum += (p[j] = expf((p[j] - mx) * scale));
    __m256 vi = _mm256_set1_ps(1.0f / sum);
    for (j = 0; j + 8 <= n; j += 8) _mm256_storeu_ps(p + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), vi));
    for (; j < n; j++) p[j] *= 1.0f / sum;
}
#endif

static size_t attq_scratch(size_t T, size_t HS) {
    return et_gemm_packed_floats(HS, T) + et_gemm_packed_floats(T, HS) + (size_t)ATT_QB * T + 16;
}

static void attq_run(void *ctx, int ith, int nth) {
    attn_task *t = ctx;
    size_t T = t->T, C = t->C, NH = t->NH, HS = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    float *kp = t->scratch + (size_t)ith * attq_scratch(T, HS); /* K^T panels [round16(len)/16][HS][16] */
    float *vp = kp + et_gemm_packed_floats(HS, T);              /* V panels [round16(HS)/16][len][16] */
    float *sc = vp + et_gemm_packed_floats(T, HS);              /* [ATT_QB, len] */
    long lo, hi;
    et_split((long)(t->B * NH), ith, nth, &lo, &hi);
    for (long bh = lo; bh < hi; bh++) {
        size_t b = (size_t)bh / NH, h = (size_t)bh % NH;
        size_t len = t->lens[b] < T ? t->lens[b] : T;
        const float *base = t->qkv + b * T * C3 + h * HS;
        float *ob = t->out + b * T * C + h * HS;
        et_gemm_pack_b(kp, base + C, C3, 1, ET_GEMM_F32, HS, 0, len);     /* B(d, j) = k_j[d] */
        et_gemm_pack_b(vp, base + 2 * C, C3, 0, ET_GEMM_F32, len, 0, HS); /* B(j, d) = v_j[d] */
        for (size_t i0 = 0; i0 < len; i0 += ATT_QB) {
            size_t qb = ET_MIN((size_t)ATT_QB, len - i0);
            et_gemm_packed(sc, len, base + i0 * C3, C3, 0, kp, qb, 0, len, HS, NULL);
            for (size_t i = 0; i < qb; i++) {
#if ET_X86
                if (kernels_have_avx2()) softmax_scaled_avx2(sc + i * len, len, scale);
                else
#endif
                    softmax_scaled_scalar(sc + i * len, len, scale);
            }
            et_gemm_packed(ob + i0 * C, C, sc, len, 0, vp, qb, 0, HS, len, NULL);
        }
        for (size_t i = len; i < T; i++) memset(ob + i * C, 0, HS * sizeof(float));
    }
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
    if (B == 0 || T == 0) return ET_OK;
    size_t HS = C / NH, per = attq_scratch(T, HS), total;
    int nth = et_get_threads();
    if (!et_size_mul(per, (size_t)nth, &total)) return ET_ENOMEM;
    float *scratch = malloc(total * sizeof(float));
    if (!scratch) return ET_ENOMEM;
    attn_task t = {out, NULL, qkv, lens, B, T, C, NH, scratch};
    et_parallel_n(attq_run, &t, nth);
    free(scratch);
    return ET_OK;
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

static int gemm_choice = -1; /* 0 = blas, 1 = et_gemm */

static int gemm_pick(void) {
    if (gemm_choice < 0) {
        const char *e = getenv("ET_GEMM");
        /* default: embtune's blocked GEMM (kernels_gemm.c). Its results do not depend on the thread
         * count, which callers rely on (eval's top-k); OpenBLAS's do. ET_GEMM=blas selects OpenBLAS
         * sgemm (and the separate epilogue passes). */
        gemm_choice = e && !strcmp(e, "blas") ? 0 : 1;
        if (!et_gemm_fast()) gemm_choice = 0;
    }
    return gemm_choice;
}

void matmul_forward(float *out, const float *inp, const float *w, const float *bias, size_t N,
                    size_t C, size_t OC) {
    linear_forward(out, inp, w, bias, NULL, ET_GEMM_ACT_NONE, N, C, OC);
}

static void act_apply(float *x, size_t n, int act, int ref) {
    if (act == ET_GEMM_ACT_GELU) (ref ? gelu_forward_ref : gelu_forward)(x, x, n);
    else if (act == ET_GEMM_ACT_GELU_TANH) (ref ? gelu_tanh_forward_ref : gelu_tanh_forward)(x, x, n);
    else if (act == ET_GEMM_ACT_RELU) relu_forward(x, x, n);
}

void linear_forward_ref(float *out, const float *inp, const float *w, const float *bias,
                        const float *res, int act, size_t N, size_t C, size_t OC) {
    matmul_forward_ref(out, inp, w, bias, N, C, OC);
    act_apply(out, N * OC, act, 1);
    if (res)
        for (size_t i = 0; i < N * OC; i++) out[i] += res[i];
}

void linear_forward(float *out, const float *inp, const float *w, const float *bias,
                    const float *res, int act, size_t N, size_t C, size_t OC) {
    if (kernels_ref()) {
        linear_forward_ref(out, inp, w, bias, res, act, N, C, OC);
        return;
    }
    if (gemm_pick() == 1) {
        et_gemm_epi e = {.bias = bias, .res = res, .ldr = OC, .act = act};
        if (et_gemm(out, OC, inp, C, 0, w, C, 1, ET_GEMM_F32, N, OC, C, &e) == ET_OK) return;
    }
    matmul_forward_blas(out, inp, w, bias, N, C, OC);
    act_apply(out, N * OC, act, 0);
    if (res) residual_forward(out, out, res, N * OC);
}
