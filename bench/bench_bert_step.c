/* bench_bert_step.c - one fine-tuning step of a BERT encoder, timed: forward of B
 * queries (Tq tokens) and B passages (Tp tokens) in two activation slots,
 * MNRL loss (cosine x 20, in-batch negatives), backward of both slots, AdamW.
 * The same step as bench/bert_step_torch.py. Prints one JSON line: median
 * seconds per step after a warm-up step, forward / backward / optimizer split,
 * peak RSS, and the loss of every step. Usage: bench_bert_step MODEL_DIR [B Tq Tp
 * steps dropout] (dropout: -1 = the model config's, 0 = off). Token ids: an LCG
 * (r = r * 6364136223846793005 + 1 mod 2^64, id = 1000 + (r >> 33) % 28000, r0 = 2),
 * queries then passages; bench/bert_step_torch.py with MODEL_DIR uses the same. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "embtune.h"
#include "encoder.h"
#include "loss.h"
#include "optim.h"
#include "util.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_bert_step MODEL_DIR [B Tq Tp steps dropout]\n");
        return 2;
    }
    size_t B = argc > 2 ? (size_t)atol(argv[2]) : 16, Tq = argc > 3 ? (size_t)atol(argv[3]) : 32;
    size_t Tp = argc > 4 ? (size_t)atol(argv[4]) : 128, steps = argc > 5 ? (size_t)atol(argv[5]) : 5;
    float dropout = argc > 6 ? (float)atof(argv[6]) : 0.0f;
    et_error err = {0};
    et_model *m = NULL;
    et_model_opts mo = {.quiet = 1};
    if (et_model_load(&m, argv[1], &mo, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    et_encoder_opts eo = {.dropout = dropout, .seed = 1, .max_batch = B, .max_len = Tp > Tq ? Tp : Tq};
    et_encoder *enc = NULL;
    if (et_encoder_init(&enc, m, &eo, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t n = 0, C = et_encoder_dim(enc);
    float *params = et_encoder_params(enc, &n), *grads = et_encoder_grads(enc, NULL);
    et_adamw_cfg ac;
    et_adamw_cfg_default(&ac);
    ac.lr = 1e-5;
    ac.weight_decay = 0.01;
    /* constant lr, no clipping: torch.optim.AdamW as bench/bert_step_torch.py runs it */
    ac.warmup_steps = 0;
    ac.total_steps = (size_t)1 << 40;
    ac.max_grad_norm = 0;
    et_adamw opt;
    if (et_adamw_init(&opt, n, &ac, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t *qids = malloc(B * Tq * sizeof(int32_t)), *pids = malloc(B * Tp * sizeof(int32_t));
    const int32_t **qp = malloc(B * sizeof(int32_t *)), **pp = malloc(B * sizeof(int32_t *));
    size_t *ql = malloc(B * sizeof(size_t)), *pl = malloc(B * sizeof(size_t));
    uint64_t r = 2;
    for (size_t i = 0; i < B * Tq; i++) qids[i] = 1000 + (int32_t)((r = r * 6364136223846793005ull + 1) >> 33) % 28000;
    for (size_t i = 0; i < B * Tp; i++) pids[i] = 1000 + (int32_t)((r = r * 6364136223846793005ull + 1) >> 33) % 28000;
    for (size_t b = 0; b < B; b++) qp[b] = qids + b * Tq, pp[b] = pids + b * Tp, ql[b] = Tq, pl[b] = Tp;
    float *eq = malloc(B * C * sizeof(float)), *ep = malloc(B * C * sizeof(float));
    float *dq = malloc(B * C * sizeof(float)), *dp = malloc(B * C * sizeof(float));
    et_loss_cfg lc;
    et_loss_cfg_default(&lc, ET_LOSS_MNRL);
    double *tstep = calloc(steps, sizeof(double)), *tf = calloc(steps, sizeof(double)),
           *tb = calloc(steps, sizeof(double)), *to = calloc(steps, sizeof(double)), *tc = calloc(steps, sizeof(double)), loss = 0, *losses = calloc(steps, sizeof(double));
    for (size_t s = 0; s < steps; s++) {
        double t0 = et_now(), c0 = cpu_now();
        memset(grads, 0, n * sizeof(float));
        int rc = et_encoder_forward(enc, 0, qp, ql, B, 1, eq, &err);
        if (!rc) rc = et_encoder_forward(enc, 1, pp, pl, B, 1, ep, &err);
        const float *cols[2] = {eq, ep};
        float *dcols[2] = {dq, dp};
        et_loss_batch lb = {.B = B, .d = C, .n_cols = 2, .emb = cols};
        if (!rc) rc = et_loss_compute(&lc, &lb, &loss, dcols, &err);
        double t1 = et_now();
        if (!rc) rc = et_encoder_backward(enc, 1, dp, &err);
        if (!rc) rc = et_encoder_backward(enc, 0, dq, &err);
        double t2 = et_now();
        if (rc) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        losses[s] = loss;
        et_adamw_step(&opt, params, grads, et_encoder_decay_mask(enc), et_lr_at(&ac, s));
        double t3 = et_now();
        tc[s] = cpu_now() - c0;
        tstep[s] = t3 - t0, tf[s] = t1 - t0, tb[s] = t2 - t1, to[s] = t3 - t2;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    size_t w = steps > 1 ? 1 : 0, k = steps - w;
    qsort(tstep + w, k, sizeof(double), cmp_d);
    qsort(tf + w, k, sizeof(double), cmp_d);
    qsort(tb + w, k, sizeof(double), cmp_d);
    qsort(to + w, k, sizeof(double), cmp_d);
    qsort(tc + w, k, sizeof(double), cmp_d);
    printf("{\"impl\": \"embtune\", \"threads\": %d, \"B\": %zu, \"Tq\": %zu, \"Tp\": %zu, \"dropout\": %g, "
           "\"step_s\": %.4f, \"cpu_s\": %.4f, \"forward_s\": %.4f, \"backward_s\": %.4f, \"adamw_s\": %.4f, \"first_s\": %.4f, "
           "\"pairs_per_s\": %.3f, \"peak_rss_mb\": %.1f, \"loss\": %.6f, \"losses\": [",
           et_get_threads(), B, Tq, Tp, (double)dropout, tstep[w + k / 2], tc[w + k / 2], tf[w + k / 2], tb[w + k / 2],
           to[w + k / 2], tstep[0], (double)B / tstep[w + k / 2], (double)ru.ru_maxrss / 1024.0, loss);
    for (size_t s = 0; s < steps; s++) printf("%s%.7f", s ? ", " : "", losses[s]);
    printf("]}\n");
    et_adamw_free(&opt);
    et_encoder_free(enc);
    et_model_free(m);
    return 0;
}
