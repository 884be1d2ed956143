/* optim.c - AdamW, the linear warm-up/decay schedule and gradient clipping;
 * see optim.h. Element-wise loops are split over threads by rows; every
 * element's arithmetic is the same whatever the split. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "threads.h"
#include "util.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OPT_X86 1
#else
#define OPT_X86 0
#endif

static int use_ref = -1; /* ET_KERNELS=ref: the plain kernels */
static int fast(void) {
    if (use_ref < 0) {
        const char *e = getenv("ET_KERNELS");
        use_ref = e && !strcmp(e, "ref");
    }
    return !use_ref && OPT_X86 && kernels_have_avx2();
}

/* ---- kernels: sum of squares of a block, in double --------------------------------- */

double et_sumsq_ref(const float *g /* [n] */, size_t n) {
    double acc = 0;
    for (size_t i = 0; i < n; i++) acc += (double)g[i] * g[i];
    return acc;
}

#if OPT_X86
/* Two accumulators of 4 doubles; the lane sums are added in a fixed order, so
 * the result is deterministic (it differs from the reference in the last bits:
 * another summation order). */
__attribute__((target("avx2,fma"))) static double sumsq_avx2(const float *g, size_t n) {
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(g + i);
        __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(x)), hi = _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1));
        a0 = _mm256_fmadd_pd(lo, lo, a0); /* float*float is exact in double: fma == mul + add */
        a1 = _mm256_fmadd_pd(hi, hi, a1);
    }
    double l[4], h[4];
    _mm256_storeu_pd(l, a0);
    _mm256_storeu_pd(h, a1);
    double acc = ((l[0] + h[0]) + (l[1] + h[1])) + ((l[2] + h[2]) + (l[3] + h[3]));
    for (; i < n; i++) acc += (double)g[i] * g[i];
    return acc;
}
#endif

static double sumsq(const float *g, size_t n) {
#if OPT_X86
    if (fast()) return sumsq_avx2(g, n);
#endif
    return et_sumsq_ref(g, n);
}

/* ---- kernels: the AdamW update of a range ---------------------------------------------- */

void et_adamw_update_ref(float *p /* [n] */, float *m /* [n] */, float *v /* [n] */, const float *g /* [n] */,
                         const uint8_t *mask /* [n] or NULL */, size_t n, const et_adamw_consts *k) {
    for (size_t i = 0; i < n; i++) {
        if (!mask || mask[i]) p[i] *= k->decay;
        m[i] = m[i] * k->b1 + k->omb1 * g[i];
        v[i] = v[i] * k->b2 + k->omb2 * g[i] * g[i];
        float denom = sqrtf(v[i]) / k->bc2_sqrt + k->eps;
        p[i] -= k->step_size * (m[i] / denom);
    }
}

#if OPT_X86
/* The same operations in the same order on 8 lanes (no FMA contraction, IEEE
 * sqrt and division): bitwise equal to the reference. */
__attribute__((target("avx2"))) static void adamw_update_avx2(float *p, float *m, float *v, const float *g,
                                                               const uint8_t *mask, size_t n,
                                                               const et_adamw_consts *k) {
    const __m256 decay = _mm256_set1_ps(k->decay), one = _mm256_set1_ps(1.0f), b1 = _mm256_set1_ps(k->b1),
                 b2 = _mm256_set1_ps(k->b2), omb1 = _mm256_set1_ps(k->omb1), omb2 = _mm256_set1_ps(k->omb2),
                 bc2 = _mm256_set1_ps(k->bc2_sqrt), eps = _mm256_set1_ps(k->eps), step = _mm256_set1_ps(k->step_size);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 pp = _mm256_loadu_ps(p + i), mm = _mm256_loadu_ps(m + i), vv = _mm256_loadu_ps(v + i),
               gg = _mm256_loadu_ps(g + i), dec = decay;
        if (mask) {
            __m128i mb = _mm_loadl_epi64((const __m128i *)(mask + i));
            __m256i mi = _mm256_cvtepu8_epi32(mb);
            __m256 sel = _mm256_castsi256_ps(_mm256_cmpeq_epi32(mi, _mm256_setzero_si256()));
            dec = _mm256_blendv_ps(decay, one, sel); /* x * 1.0f == x exactly */
        }
        pp = _mm256_mul_ps(pp, dec);
        mm = _mm256_add_ps(_mm256_mul_ps(mm, b1), _mm256_mul_ps(omb1, gg));
        vv = _mm256_add_ps(_mm256_mul_ps(vv, b2), _mm256_mul_ps(_mm256_mul_ps(omb2, gg), gg));
        __m256 denom = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vv), bc2), eps);
        pp = _mm256_sub_ps(pp, _mm256_mul_ps(step, _mm256_div_ps(mm, denom)));
        _mm256_storeu_ps(p + i, pp);
        _mm256_storeu_ps(m + i, mm);
        _mm256_storeu_ps(v + i, vv);
    }
    if (i < n) et_adamw_update_ref(p + i, m + i, v + i, g + i, mask ? mask + i : NULL, n - i, k);
}
#endif

void et_adamw_update(float *p, float *m, float *v, const float *g, const uint8_t *mask, size_t n,
                     const et_adamw_consts *k) {
#if OPT_X86
    if (fast()) {
        adamw_update_avx2(p, m, v, g, mask, n, k);
        return;
    }
#endif
    et_adamw_update_ref(p, m, v, g, mask, n, k);
}

#define NORM_BLOCK 65536

void et_adamw_cfg_default(et_adamw_cfg *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->lr = 2e-5;
    cfg->beta1 = 0.9;
    cfg->beta2 = 0.999;
    cfg->eps = 1e-8;
    cfg->weight_decay = 0.01;
    cfg->max_grad_norm = 1.0f;
}

int et_adamw_init(et_adamw *o, size_t n, const et_adamw_cfg *cfg, et_error *err) {
    memset(o, 0, sizeof(*o));
    o->cfg = *cfg;
    o->n = n;
    o->m = et_calloc(n ? n : 1, sizeof(float), err);
    o->v = et_calloc(n ? n : 1, sizeof(float), err);
    if (!o->m || !o->v) {
        et_adamw_free(o);
        return ET_ENOMEM;
    }
    return ET_OK;
}

void et_adamw_free(et_adamw *o) {
    free(o->m);
    free(o->v);
    o->m = o->v = NULL;
}

double et_lr_at(const et_adamw_cfg *c, size_t k) {
    double f;
    if (k < c->warmup_steps)
        f = (double)k / (double)(c->warmup_steps ? c->warmup_steps : 1);
    else {
        size_t span = c->total_steps > c->warmup_steps ? c->total_steps - c->warmup_steps : 0;
        double rem = c->total_steps > k ? (double)(c->total_steps - k) : 0.0;
        f = rem / (double)(span ? span : 1);
        if (f < 0) f = 0;
    }
    return c->lr * f;
}

typedef struct norm_ctx {
    const float *g;
    size_t n, nblk;
    double *part; /* [nblk] */
} norm_ctx;

static void norm_task(void *p, int ith, int nth) {
    norm_ctx *c = p;
    long lo, hi;
    et_split((long)c->nblk, ith, nth, &lo, &hi);
    for (long b = lo; b < hi; b++) {
        size_t s = (size_t)b * NORM_BLOCK, e = ET_MIN(s + NORM_BLOCK, c->n);
        c->part[b] = sumsq(c->g + s, e - s);
    }
}

double et_grad_norm(const float *g, size_t n) {
    size_t nblk = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double stack[64], *part = nblk <= 64 ? stack : malloc(nblk * sizeof(double));
    if (!part) { /* serial fallback, same block order */
        double tot = 0;
        for (size_t b = 0; b < nblk; b++) {
            size_t s = b * NORM_BLOCK;
            tot += sumsq(g + s, ET_MIN(s + NORM_BLOCK, n) - s);
        }
        return sqrt(tot);
    }
    norm_ctx c = {g, n, nblk, part};
    if (nblk > 1) et_parallel(norm_task, &c);
    else norm_task(&c, 0, 1);
    double tot = 0;
    for (size_t b = 0; b < nblk; b++) tot += part[b];
    if (part != stack) free(part);
    return sqrt(tot);
}

typedef struct scale_ctx {
    float *g;
    size_t n;
    float s;
} scale_ctx;

static void scale_task(void *p, int ith, int nth) {
    scale_ctx *c = p;
    long lo, hi;
    et_split((long)c->n, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) c->g[i] *= c->s;
}

double et_clip_grad_norm(float *g, size_t n, float max_norm) {
    double nrm = et_grad_norm(g, n);
    if (max_norm > 0) {
        double coef = (double)max_norm / (nrm + 1e-6);
        if (coef < 1.0) {
            scale_ctx c = {g, n, (float)coef};
            et_parallel(scale_task, &c);
        }
    }
    return nrm;
}

typedef struct adam_ctx {
    et_adamw *o;
    float *p;
    const float *g;
    const uint8_t *mask;
    et_adamw_consts k;
} adam_ctx;

static void adam_task(void *arg, int ith, int nth) {
    adam_ctx *c = arg;
    long lo, hi;
    et_split((long)c->o->n, ith, nth, &lo, &hi);
    if (hi > lo)
        et_adamw_update(c->p + lo, c->o->m + lo, c->o->v + lo, c->g + lo, c->mask ? c->mask + lo : NULL,
                        (size_t)(hi - lo), &c->k);
}

void et_adamw_step(et_adamw *o, float *params, const float *grads, const uint8_t *decay_mask, double lr) {
    o->t++;
    const et_adamw_cfg *k = &o->cfg;
    double bc1 = 1.0 - pow(k->beta1, (double)o->t), bc2 = 1.0 - pow(k->beta2, (double)o->t);
    adam_ctx c = {o, params, grads, decay_mask,
                  {(float)(lr / bc1), (float)sqrt(bc2), (float)(1.0 - lr * k->weight_decay), (float)(1.0 - k->beta1),
                   (float)(1.0 - k->beta2), (float)k->beta1, (float)k->beta2, (float)k->eps}};
    et_parallel(adam_task, &c);
}
