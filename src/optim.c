/* optim.c - AdamW, the linear warm-up/decay schedule and gradient clipping;
 * see optim.h. Element-wise loops are split over threads by rows; every
 * element's arithmetic is the same whatever the split. */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "threads.h"
#include "util.h"

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
        double acc = 0;
        for (size_t i = s; i < e; i++) acc += (double)c->g[i] * c->g[i];
        c->part[b] = acc;
    }
}

double et_grad_norm(const float *g, size_t n) {
    size_t nblk = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    double stack[64], *part = nblk <= 64 ? stack : malloc(nblk * sizeof(double));
    if (!part) { /* serial fallback, same block order */
        double tot = 0;
        for (size_t b = 0; b < nblk; b++) {
            double acc = 0;
            for (size_t i = b * NORM_BLOCK; i < ET_MIN((b + 1) * NORM_BLOCK, n); i++) acc += (double)g[i] * g[i];
            tot += acc;
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
    float step_size, bc2_sqrt, decay, omb1, omb2, b1, b2, eps;
} adam_ctx;

static void adam_task(void *arg, int ith, int nth) {
    adam_ctx *c = arg;
    et_adamw *o = c->o;
    const float b1 = c->b1, b2 = c->b2, eps = c->eps, omb1 = c->omb1, omb2 = c->omb2;
    long lo, hi;
    et_split((long)o->n, ith, nth, &lo, &hi);
    float *p = c->p, *m = o->m, *v = o->v;
    const float *g = c->g;
    for (long i = lo; i < hi; i++) {
        if (!c->mask || c->mask[i]) p[i] *= c->decay;
        m[i] = m[i] * b1 + omb1 * g[i];
        v[i] = v[i] * b2 + omb2 * g[i] * g[i];
        float denom = sqrtf(v[i]) / c->bc2_sqrt + eps;
        p[i] -= c->step_size * (m[i] / denom);
    }
}

void et_adamw_step(et_adamw *o, float *params, const float *grads, const uint8_t *decay_mask, double lr) {
    o->t++;
    const et_adamw_cfg *k = &o->cfg;
    double bc1 = 1.0 - pow(k->beta1, (double)o->t), bc2 = 1.0 - pow(k->beta2, (double)o->t);
    adam_ctx c = {o, params, grads, decay_mask, (float)(lr / bc1), (float)sqrt(bc2),
                  (float)(1.0 - lr * k->weight_decay), (float)(1.0 - k->beta1), (float)(1.0 - k->beta2),
                  (float)k->beta1, (float)k->beta2, (float)k->eps};
    et_parallel(adam_task, &c);
}
