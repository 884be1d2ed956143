/* test_optim.c - AdamW + schedule + clipping against torch.optim.AdamW,
 * LambdaLR(get_linear_schedule_with_warmup) and clip_grad_norm_
 * (tests/ref/optim_ref.py), 10 steps; tolerance: max abs diff 1e-6 on the
 * parameters after every step, learning rates exact to 1e-12. Also: the norm
 * does not depend on the thread count. */
#include "optim.h"
#include "ref_file.h"
#include "test_util.h"
#include "util.h"

int main(void) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char path[1024], cmd[2048];
    snprintf(path, sizeof(path), "%s/test-out/optim_ref.safetensors", build);
    snprintf(cmd, sizeof(cmd), "tests/ref/optim_ref.py %s", path);
    if (ref_run_python(cmd) != 0) return 1;
    ref_file *rf = ref_open(path);
    TEST_CHECK(rf != NULL, "open");
    if (!rf) return test_summary("test_optim");
    size_t n = 0, nm = 0;
    float *p = ref_f32(rf, "params0", &n), *grads = ref_f32(rf, "grads", NULL), *traj = ref_f32(rf, "traj", NULL);
    double *maskd = ref_f64(rf, "mask", &nm), *lrs = ref_f64(rf, "lrs", NULL), *norms = ref_f64(rf, "norms", NULL);
    uint8_t *mask = malloc(nm);
    for (size_t i = 0; i < nm; i++) mask[i] = maskd[i] != 0;
    et_adamw_cfg cfg;
    et_adamw_cfg_default(&cfg);
    cfg.lr = 1e-3, cfg.warmup_steps = 3, cfg.total_steps = 10, cfg.weight_decay = 0.01, cfg.max_grad_norm = 1.0f;
    et_adamw o;
    et_error err = {0};
    TEST_CHECK(et_adamw_init(&o, n, &cfg, &err) == 0, "init");
    float *g = malloc(n * sizeof(float));
    double worst = 0;
    for (size_t s = 0; s < 10; s++) {
        memcpy(g, grads + s * n, n * sizeof(float));
        double nrm = et_clip_grad_norm(g, n, cfg.max_grad_norm);
        TEST_CLOSE(nrm, norms[s], 1e-9, 1e-6);
        double lr = et_lr_at(&cfg, s);
        TEST_CLOSE(lr, lrs[s], 1e-15, 1e-12);
        et_adamw_step(&o, p, g, mask, lr);
        char name[64];
        snprintf(name, sizeof(name), "step %zu params", s + 1);
        worst = fmax(worst, test_max_err(name, p, traj + s * n, n, 1e-6, 0));
    }
    printf("AdamW 10-step trajectory: max abs diff %.3g (tol 1e-6)\n", worst);
    TEST_CHECK(et_lr_at(&cfg, 10) == 0.0 && et_lr_at(&cfg, 50) == 0.0, "lr after the end is 0");

    /* the norm is the same with 1 and 2 threads (fixed-block summation) */
    size_t big = 300001;
    float *x = malloc(big * sizeof(float));
    for (size_t i = 0; i < big; i++) x[i] = (float)((i * 2654435761u) % 1000) / 997.0f - 0.5f;
    et_set_threads(1);
    double n1 = et_grad_norm(x, big);
    et_set_threads(2);
    double n2 = et_grad_norm(x, big);
    et_set_threads(0);
    TEST_CHECK(n1 == n2, "grad norm differs across thread counts: %.17g vs %.17g", n1, n2);
    free(x);
    /* the dispatched update kernel is bitwise equal to the reference (odd sizes, with
     * and without a mask); the fast sum of squares agrees to 1e-12 */
    for (size_t nn = 1; nn <= 1003; nn += 167) {
        float *p1 = malloc(nn * 4), *p2 = malloc(nn * 4), *m1 = malloc(nn * 4), *m2 = malloc(nn * 4);
        float *v1 = malloc(nn * 4), *v2 = malloc(nn * 4), *gg = malloc(nn * 4);
        uint8_t *mk = malloc(nn);
        for (size_t i = 0; i < nn; i++) {
            p1[i] = p2[i] = sinf((float)i);
            m1[i] = m2[i] = 0.01f * cosf((float)i * 3);
            v1[i] = v2[i] = 1e-4f * (1 + sinf((float)i * 7));
            gg[i] = 0.1f * sinf((float)i * 11);
            mk[i] = (i / 5) % 2;
        }
        et_adamw_consts k = {1.3e-3f, 0.3f, 0.99999f, 0.1f, 0.001f, 0.9f, 0.999f, 1e-8f};
        for (int rep = 0; rep < 3; rep++) {
            et_adamw_update(p1, m1, v1, gg, rep == 1 ? NULL : mk, nn, &k);
            et_adamw_update_ref(p2, m2, v2, gg, rep == 1 ? NULL : mk, nn, &k);
        }
        TEST_CHECK(!memcmp(p1, p2, nn * 4) && !memcmp(m1, m2, nn * 4) && !memcmp(v1, v2, nn * 4),
                   "AdamW kernel n=%zu differs from the reference", nn);
        double s1 = et_grad_norm(gg, nn), s2 = sqrt(et_sumsq_ref(gg, nn));
        TEST_CLOSE(s1, s2, 0, 1e-12);
        free(p1), free(p2), free(m1), free(m2), free(v1), free(v2), free(gg), free(mk);
    }
    printf("AdamW kernel: bitwise equal to the reference on 7 odd sizes\n");
    et_adamw_free(&o);
    free(p), free(grads), free(traj), free(maskd), free(lrs), free(norms), free(mask), free(g);
    ref_close(rf);
    return test_summary("test_optim");
}
