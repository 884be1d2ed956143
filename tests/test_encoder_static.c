/* test_encoder_static.c - the static encoder against PyTorch
 * (tests/ref/static_ref.py): forward + MNRL + backward gives the table
 * gradient (tol: max abs err <= 1e-5 * max|grad|), and 3 AdamW steps give the
 * same losses (rel 1e-5) and tables (max abs diff 1e-5). Also: argument
 * checks, backward without forward, accumulation (+=). */
#include "encoder_impl.h"
#include "loss.h"
#include "optim.h"
#include "ref_file.h"
#include "test_util.h"
#include "util.h"

int main(void) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char path[1024], cmd[2048];
    snprintf(path, sizeof(path), "%s/test-out/static_ref.safetensors", build);
    snprintf(cmd, sizeof(cmd), "tests/ref/static_ref.py %s", path);
    if (ref_run_python(cmd) != 0) return 1;
    ref_file *rf = ref_open(path);
    if (!rf) return 1;
    const size_t V = 40, D = 8, B = 4, STEPS = 3;
    size_t nt = 0, nl = 0;
    float *table = ref_f32(rf, "table0", &nt), *grad0 = ref_f32(rf, "grad0", NULL), *traj = ref_f32(rf, "traj", NULL);
    double *idsd = ref_f64(rf, "ids", NULL), *lensd = ref_f64(rf, "lens", &nl), *losses = ref_f64(rf, "losses", NULL);
    TEST_CHECK(nt == V * D && nl == STEPS * 3 * B, "shapes");
    int32_t *ids = malloc(4096 * sizeof(int32_t));
    const int32_t *seq[64];
    size_t lens[64], o = 0;
    for (size_t i = 0; i < nl; i++) {
        lens[i] = (size_t)lensd[i];
        seq[i] = ids + o;
        for (size_t t = 0; t < lens[i]; t++) ids[o + t] = (int32_t)idsd[o + t];
        o += lens[i];
    }
    et_error err = {0};
    et_encoder *enc = NULL;
    et_encoder_opts eo = {.dropout = 0, .seed = 1, .max_batch = B, .max_len = 16};
    TEST_CHECK(et_encoder_static_from_table(&enc, NULL, table, V, D, 1, 1, &eo, &err) == 0, "init: %s", err.msg);
    size_t np = 0;
    float *params = et_encoder_params(enc, &np), *grads = et_encoder_grads(enc, NULL);
    et_adamw_cfg ac;
    et_adamw_cfg_default(&ac);
    ac.lr = 1e-2, ac.weight_decay = 0.01, ac.warmup_steps = 1, ac.total_steps = STEPS, ac.max_grad_norm = 1;
    et_adamw opt;
    et_adamw_init(&opt, np, &ac, &err);
    et_loss_cfg lc;
    et_loss_cfg_default(&lc, ET_LOSS_MNRL);
    float emb[3][4 * 8], demb[3][4 * 8];
    double worst = 0;
    for (size_t s = 0; s < STEPS; s++) {
        memset(grads, 0, np * sizeof(float));
        for (int c = 0; c < 3; c++) {
            size_t k = (s * 3 + (size_t)c) * B;
            TEST_CHECK(et_encoder_forward(enc, c, seq + k, lens + k, B, 1, emb[c], &err) == 0, "fwd: %s", err.msg);
        }
        const float *cols[3] = {emb[0], emb[1], emb[2]};
        float *dcols[3] = {demb[0], demb[1], demb[2]};
        et_loss_batch lb = {B, D, 3, cols, NULL, NULL, 0};
        double loss = 0;
        TEST_CHECK(et_loss_compute(&lc, &lb, &loss, dcols, &err) == 0, "loss: %s", err.msg);
        TEST_CLOSE(loss, losses[s], 1e-6, 1e-5);
        for (int c = 0; c < 3; c++) TEST_CHECK(et_encoder_backward(enc, c, demb[c], &err) == 0, "bwd: %s", err.msg);
        if (s == 0) {
            double gm = 0, e = 0;
            for (size_t i = 0; i < np; i++) gm = fmax(gm, fabs(grad0[i])), e = fmax(e, fabs(grads[i] - grad0[i]));
            printf("table gradient: max abs err %.3g, max |grad| %.3g, rel %.3g (tol 1e-5)\n", e, gm, e / gm);
            TEST_CHECK(e <= 1e-5 * gm, "table gradient rel err %g", e / gm);
        }
        et_clip_grad_norm(grads, np, ac.max_grad_norm);
        et_adamw_step(&opt, params, grads, et_encoder_decay_mask(enc), et_lr_at(&ac, s));
        char name[64];
        snprintf(name, sizeof(name), "step %zu table", s + 1);
        worst = fmax(worst, test_max_err(name, params, traj + s * V * D, V * D, 1e-5, 0));
    }
    printf("static MNRL+AdamW 3-step trajectory: max abs diff %.3g (tol 1e-5)\n", worst);

    /* backward without a saved forward; eval forward saves nothing */
    float tmp[4 * 8];
    TEST_CHECK(et_encoder_backward(enc, 5, tmp, &err) == ET_EINVAL, "backward without forward");
    TEST_CHECK(et_encoder_forward(enc, 0, seq, lens, B + 1, 0, tmp, &err) == ET_EINVAL &&
                   strstr(err.msg, "max_batch"), "B > max_batch: %s", err.msg);
    int32_t bad_id = 40;
    const int32_t *bad_seq[1] = {&bad_id};
    size_t one = 1;
    TEST_CHECK(et_encoder_forward(enc, 0, bad_seq, &one, 1, 0, tmp, &err) == ET_EINVAL &&
                   strstr(err.msg, "vocabulary"), "id out of range: %s", err.msg);
    TEST_CHECK(et_encoder_forward(enc, 9, seq, lens, 1, 1, tmp, &err) == ET_EINVAL, "slot out of range");
    /* eval forward equals train forward; backward accumulates */
    float e1[8], e2[8];
    et_encoder_forward(enc, 0, seq, lens, 1, 0, e1, &err);
    et_encoder_forward(enc, 0, seq, lens, 1, 1, e2, &err);
    TEST_CHECK(!memcmp(e1, e2, sizeof(e1)), "eval and train forward differ");
    memset(grads, 0, np * sizeof(float));
    float dd[8] = {1, -1, 0.5f, 0, 0, 2, 0, 1};
    et_encoder_backward(enc, 0, dd, &err);
    float *g1 = malloc(np * sizeof(float));
    memcpy(g1, grads, np * sizeof(float));
    et_encoder_forward(enc, 0, seq, lens, 1, 1, e2, &err);
    et_encoder_backward(enc, 0, dd, &err);
    int acc_ok = 1;
    for (size_t i = 0; i < np; i++) acc_ok &= fabsf(grads[i] - 2 * g1[i]) <= 1e-6f * (1 + fabsf(g1[i]));
    TEST_CHECK(acc_ok, "backward does not accumulate");
    free(g1);
    et_adamw_free(&opt);
    et_encoder_free(enc);
    free(table), free(grad0), free(traj), free(idsd), free(lensd), free(losses), free(ids);
    ref_close(rf);
    return test_summary("test_encoder_static");
}
