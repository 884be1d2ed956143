/* test_adapter.c - linear and residual-MLP adapters against PyTorch
 * (tests/ref/adapter_ref.py: llama-index's LinearLayer / TwoLayerNN + MNRL +
 * AdamW, 4 steps): loading the Python-written adapter directory, the first
 * gradient (max abs err <= 1e-5 * max|grad|), the losses (rel 1e-5) and the
 * parameters after every step (max abs diff 1e-5), et_adapter_apply after
 * training (1e-5), save -> load round trip (exact), fresh init = identity,
 * and bad adapter files. */
#include <sys/stat.h>

#include "adapter.h"
#include "loss.h"
#include "optim.h"
#include "ref_file.h"
#include "test_util.h"

static void put(const char *dir, const char *name, const char *text) {
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
}

static void run_case(const char *root, const char *name) {
    enum { D = 6, B = 5, STEPS = 4 };
    char dir[1024], path[1100];
    snprintf(dir, sizeof(dir), "%s/%s/init", root, name);
    snprintf(path, sizeof(path), "%s/%s/ref.safetensors", root, name);
    et_error err = {0};
    et_adapter *a = NULL;
    TEST_CHECK(et_adapter_load(&a, dir, &err) == 0, "%s: load: %s", name, err.msg);
    ref_file *rf = ref_open(path);
    if (!a || !rf) {
        et_adapter_free(a), ref_close(rf);
        return;
    }
    float *q = ref_f32(rf, "q", NULL), *p = ref_f32(rf, "p", NULL), *n = ref_f32(rf, "n", NULL);
    float *grad0 = ref_f32(rf, "grad0", NULL), *traj = ref_f32(rf, "traj", NULL);
    float *x = ref_f32(rf, "x", NULL), *applied = ref_f32(rf, "applied", NULL);
    double *losses = ref_f64(rf, "losses", NULL);
    size_t np = a->n_params, H = a->hidden ? a->hidden : 1;
    float *g = calloc(np, sizeof(float));
    uint8_t *mask = malloc(np);
    et_adapter_decay_mask(a, mask);
    et_adamw_cfg ac;
    et_adamw_cfg_default(&ac);
    ac.lr = 1e-2, ac.weight_decay = 0.01, ac.warmup_steps = 1, ac.total_steps = STEPS, ac.max_grad_norm = 1;
    et_adamw opt;
    et_adamw_init(&opt, np, &ac, &err);
    et_loss_cfg lc;
    et_loss_cfg_default(&lc, ET_LOSS_MNRL);
    float y[3][B * D], h[3][B * 64], z[3][B * D], dy[3][B * D];
    double worst = 0;
    for (int s = 0; s < STEPS; s++) {
        const float *in[3] = {q + s * B * D, p + s * B * D, n + s * B * D};
        const float *cols[3];
        for (int c = 0; c < 3; c++) {
            if (c == 0 || a->apply_docs) {
                et_adapter_forward(a, in[c], B, y[c], h[c], z[c]);
                cols[c] = y[c];
            } else {
                cols[c] = in[c];
            }
        }
        float *dcols[3] = {dy[0], dy[1], dy[2]};
        et_loss_batch lb = {B, D, 3, cols, NULL, NULL, 0};
        double loss = 0;
        TEST_CHECK(et_loss_compute(&lc, &lb, &loss, dcols, &err) == 0, "loss %s", err.msg);
        TEST_CLOSE(loss, losses[s], 1e-6, 1e-5);
        memset(g, 0, np * sizeof(float));
        for (int c = 0; c < 3; c++)
            if (c == 0 || a->apply_docs) et_adapter_backward(a, in[c], h[c], z[c], dy[c], B, g);
        if (s == 0) {
            double gm = 0, e = 0;
            for (size_t i = 0; i < np; i++) gm = fmax(gm, fabs(grad0[i])), e = fmax(e, fabs(g[i] - grad0[i]));
            printf("%s: first gradient max abs err %.3g (max |grad| %.3g, tol 1e-5 rel)\n", name, e, gm);
            TEST_CHECK(e <= 1e-5 * gm, "%s: gradient rel err %g", name, e / gm);
        }
        et_clip_grad_norm(g, np, 1.0f);
        et_adamw_step(&opt, a->params, g, mask, et_lr_at(&ac, (size_t)s));
        char label[128];
        snprintf(label, sizeof(label), "%s step %d params", name, s + 1);
        worst = fmax(worst, test_max_err(label, a->params, traj + (size_t)s * np, np, 1e-5, 0));
    }
    (void)H;
    float out[7 * D];
    TEST_CHECK(et_adapter_apply(a, x, 7, out, &err) == 0, "apply");
    test_max_err("apply after training", out, applied, 7 * D, 1e-5, 0);
    /* save -> load round trip */
    char saved[1100];
    snprintf(saved, sizeof(saved), "%s/%s/saved", root, name);
    TEST_CHECK(et_adapter_save(a, saved, &err) == 0, "save: %s", err.msg);
    et_adapter *b = NULL;
    TEST_CHECK(et_adapter_load(&b, saved, &err) == 0, "reload: %s", err.msg);
    if (b) {
        TEST_CHECK(b->n_params == np && !memcmp(b->params, a->params, np * sizeof(float)) &&
                       b->apply_docs == a->apply_docs && b->kind == a->kind,
                   "%s: reloaded adapter differs", name);
        et_adapter_free(b);
    }
    et_adamw_free(&opt);
    free(q), free(p), free(n), free(grad0), free(traj), free(x), free(applied), free(losses), free(g), free(mask);
    ref_close(rf);
    et_adapter_free(a);
}

int main(void) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char root[1024], cmd[2048];
    snprintf(root, sizeof(root), "%s/test-out/adapter", build);
    snprintf(cmd, sizeof(cmd), "tests/ref/adapter_ref.py %s", root);
    if (ref_run_python(cmd) != 0) return 1;
    run_case(root, "linear_bias_query");
    run_case(root, "linear_both");
    run_case(root, "mlp_query");
    run_case(root, "mlp_both");

    /* fresh adapters are the identity */
    et_error err = {0};
    float x[2 * 4] = {1, 2, 3, 4, -1, 0.5f, 0, 2}, y[8], xn[8];
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int k = 0; k < 4; k++) s += x[r * 4 + k] * x[r * 4 + k];
        for (int k = 0; k < 4; k++) xn[r * 4 + k] = (float)(x[r * 4 + k] / sqrt(s));
    }
    for (int kind = 0; kind < 2; kind++) {
        et_adapter *a = NULL;
        TEST_CHECK(et_adapter_new(&a, kind, 4, 8, 1, 5, &err) == 0, "new: %s", err.msg);
        et_adapter_apply(a, x, 2, y, &err);
        test_max_err(kind ? "fresh mlp = identity" : "fresh linear = identity", y, xn, 8, 1e-6, 0);
        uint8_t mask[512];
        et_adapter_decay_mask(a, mask);
        size_t ones = 0;
        for (size_t i = 0; i < a->n_params; i++) ones += mask[i];
        TEST_CHECK(ones == (kind ? 4 * 8 * 2 + 1 : 16), "decay mask: %zu ones", ones);
        et_adapter_free(a);
    }
    /* bad files */
    char bad[1100];
    snprintf(bad, sizeof(bad), "%s/bad", root);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", bad);
    TEST_CHECK(system(cmd) == 0, "rm");
    mkdir(bad, 0777);
    et_adapter *a = NULL;
    TEST_CHECK(et_adapter_load(&a, bad, &err) != 0 && strstr(err.msg, "config.json"), "missing config: %s", err.msg);
    put(bad, "config.json", "{\"adapter_type\": \"conv\", \"in_features\": 4, \"out_features\": 4}");
    TEST_CHECK(et_adapter_load(&a, bad, &err) == ET_EFORMAT && strstr(err.msg, "adapter_type"), "kind: %s", err.msg);
    put(bad, "config.json", "{\"in_features\": 4, \"out_features\": 3}");
    TEST_CHECK(et_adapter_load(&a, bad, &err) == ET_EUNSUPPORTED, "non-square: %s", err.msg);
    put(bad, "config.json", "{\"in_features\": 4, \"out_features\": 4}");
    TEST_CHECK(et_adapter_load(&a, bad, &err) != 0 && strstr(err.msg, "adapter.safetensors"), "no weights: %s", err.msg);
    snprintf(cmd, sizeof(cmd), "cp %s/linear_both/init/adapter.safetensors %s/", root, bad);
    TEST_CHECK(system(cmd) == 0, "cp");
    TEST_CHECK(et_adapter_load(&a, bad, &err) == ET_EFORMAT && strstr(err.msg, "linear.weight"), "shape: %s", err.msg);
    TEST_CHECK(a == NULL, "no adapter on error");
    return test_summary("test_adapter");
}
