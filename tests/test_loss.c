/* test_loss.c - the contrastive losses against PyTorch (tests/ref/loss_ref.py),
 * the fast path against the double-precision reference, and finite
 * differences of the reference.
 * Tolerances: loss rel 1e-5; gradients max|err| <= 1e-4 * max|grad| (fast,
 * fp32 sgemm) and 1e-6 (reference, double; loss rel 1e-7:
 * torch's CosineSimilarity rounds differently from normalize-then-dot); finite differences 1e-3 rel. */
#include <unistd.h>

#include "loss.h"
#include "ref_file.h"
#include "test_util.h"
#include "util.h"

static double max_abs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i]));
    return m;
}

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || d != d) m = d;
    }
    return m;
}

int main(void) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char path[1024], cmd[2048];
    snprintf(path, sizeof(path), "%s/test-out/loss_ref.safetensors", build);
    snprintf(cmd, sizeof(cmd), "tests/ref/loss_ref.py %s", path);
    if (ref_run_python(cmd) != 0) return 1;
    ref_file *rf = ref_open(path);
    TEST_CHECK(rf != NULL, "open %s", path);
    if (!rf) return test_summary("test_loss");
    cJSON *cases = cJSON_Parse(ref_meta(rf, "cases"));
    TEST_CHECK(cases && cJSON_IsArray(cases), "metadata cases");
    double worst_fast = 0, worst_ref = 0, worst_fd = 0;
    int ci = 0;
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) {
        et_loss_cfg cfg;
        int kind = 0;
        const char *kname = cJSON_GetObjectItem(cs, "kind")->valuestring;
        TEST_CHECK(et_loss_parse(kname, &kind) == 0, "kind %s", kname);
        et_loss_cfg_default(&cfg, kind);
        cfg.scale = (float)cJSON_GetObjectItem(cs, "scale")->valuedouble;
        cfg.temperature = (float)cJSON_GetObjectItem(cs, "temperature")->valuedouble;
        cfg.margin = (float)cJSON_GetObjectItem(cs, "margin")->valuedouble;
        cfg.margin_relative = cJSON_GetObjectItem(cs, "margin_relative")->valueint;
        const cJSON *dims = cJSON_GetObjectItem(cs, "dims"), *w = cJSON_GetObjectItem(cs, "weights");
        if (dims)
            for (int k = 0; k < cJSON_GetArraySize(dims); k++) {
                cfg.dims[cfg.n_dims] = (size_t)cJSON_GetArrayItem(dims, k)->valueint;
                cfg.weights[cfg.n_dims++] = (float)cJSON_GetArrayItem(w, k)->valuedouble;
            }
        size_t B = (size_t)cJSON_GetObjectItem(cs, "B")->valueint, d = (size_t)cJSON_GetObjectItem(cs, "d")->valueint;
        size_t nc = 2 + (size_t)cJSON_GetObjectItem(cs, "n_neg")->valueint;
        const cJSON *gdj = cJSON_GetObjectItem(cs, "gd");
        size_t gd = gdj ? (size_t)gdj->valueint : 0;
        float *emb[8] = {0}, *gref[8] = {0}, *guide[8] = {0}, *g_fast[8] = {0}, *g_ref[8] = {0};
        char name[128];
        for (size_t c = 0; c < nc; c++) {
            snprintf(name, sizeof(name), "case%d.emb%zu", ci, c);
            emb[c] = ref_f32(rf, name, NULL);
            snprintf(name, sizeof(name), "case%d.grad%zu", ci, c);
            gref[c] = ref_f32(rf, name, NULL);
            if (gd) {
                snprintf(name, sizeof(name), "case%d.guide%zu", ci, c);
                guide[c] = ref_f32(rf, name, NULL);
            }
            g_fast[c] = calloc(B * d, sizeof(float));
            g_ref[c] = calloc(B * d, sizeof(float));
        }
        uint8_t *valid = NULL;
        snprintf(name, sizeof(name), "case%d.valid", ci);
        if (ref_has(rf, name)) {
            size_t nv = 0;
            double *v = ref_f64(rf, name, &nv);
            valid = malloc(nv);
            for (size_t i = 0; i < nv; i++) valid[i] = v[i] != 0;
            free(v);
        }
        snprintf(name, sizeof(name), "case%d.loss", ci);
        double want = ref_scalar(rf, name);
        et_loss_batch b = {B, d, nc, (const float *const *)emb, valid, (const float *const *)guide, gd};
        et_error err = {0};
        double l_fast = NAN, l_ref = NAN;
        TEST_CHECK(et_loss_compute(&cfg, &b, &l_fast, g_fast, &err) == 0, "case %d: %s", ci, err.msg);
        TEST_CHECK(et_loss_compute_ref(&cfg, &b, &l_ref, g_ref, &err) == 0, "case %d ref: %s", ci, err.msg);
        TEST_CLOSE(l_fast, want, 1e-6, 1e-5);
        TEST_CLOSE(l_ref, want, 1e-9, 1e-7);
        double gmax = 0, ef = 0, er = 0;
        for (size_t c = 0; c < nc; c++) gmax = fmax(gmax, max_abs(gref[c], B * d));
        for (size_t c = 0; c < nc; c++) {
            ef = fmax(ef, max_diff(g_fast[c], gref[c], B * d));
            er = fmax(er, max_diff(g_ref[c], gref[c], B * d));
        }
        ef /= gmax, er /= gmax;
        printf("case %2d %-8s B=%-3zu d=%-3zu cols=%zu%s loss %.6f (torch %.6f)  grad rel err fast %.2e ref %.2e\n",
               ci, kname, B, d, nc, cfg.n_dims ? " matryoshka" : "", l_fast, want, ef, er);
        TEST_CHECK(ef <= 1e-4, "case %d: fast gradient rel err %g > 1e-4", ci, ef);
        TEST_CHECK(er <= 1e-6, "case %d: reference gradient rel err %g > 1e-6", ci, er);
        worst_fast = fmax(worst_fast, ef), worst_ref = fmax(worst_ref, er);

        /* finite differences of the reference loss, on a few coordinates per column */
        if (B <= 8) {
            const float h = 1e-3f;
            for (size_t c = 0; c < nc; c++)
                for (size_t t = 0; t < B * d; t += 7) {
                    float x0 = emb[c][t];
                    double lp, lm;
                    emb[c][t] = x0 + h;
                    float hp = emb[c][t] - x0;
                    et_loss_compute_ref(&cfg, &b, &lp, NULL, &err);
                    emb[c][t] = x0 - h;
                    float hm = x0 - emb[c][t];
                    et_loss_compute_ref(&cfg, &b, &lm, NULL, &err);
                    emb[c][t] = x0;
                    double fd = (lp - lm) / ((double)hp + hm);
                    double e = fabs(fd - g_ref[c][t]) / gmax;
                    worst_fd = fmax(worst_fd, e);
                    TEST_CHECK(e <= 1e-3, "case %d col %zu [%zu]: finite difference %g vs %g", ci, c, t, fd,
                               (double)g_ref[c][t]);
                }
        }
        for (size_t c = 0; c < nc; c++) free(emb[c]), free(gref[c]), free(guide[c]), free(g_fast[c]), free(g_ref[c]);
        free(valid);
        ci++;
    }
    printf("max gradient rel err vs PyTorch: fast %.2e (tol 1e-4), reference %.2e (tol 1e-6); "
           "finite differences %.2e (tol 1e-3)\n", worst_fast, worst_ref, worst_fd);
    TEST_CHECK(ci == 12, "expected 12 cases, got %d", ci);
    cJSON_Delete(cases);
    ref_close(rf);

    /* edge cases and bad arguments */
    {
        float a[4] = {1, 0, 0, 1}, p[4] = {1, 0.1f, 0, 1}, da[4], dp[4];
        const float *cols[2] = {a, p};
        float *dcols[2] = {da, dp};
        et_loss_cfg cfg;
        et_loss_cfg_default(&cfg, ET_LOSS_MNRL);
        et_loss_batch b = {1, 4, 2, cols, NULL, NULL, 0};
        double l = -1;
        et_error err = {0};
        TEST_CHECK(et_loss_compute(&cfg, &b, &l, dcols, &err) == 0, "B=1: %s", err.msg);
        TEST_CHECK(fabs(l) < 1e-12 && max_abs(da, 4) == 0, "B=1: one candidate gives loss 0, got %g", l);
        cfg.kind = ET_LOSS_GIST;
        TEST_CHECK(et_loss_compute(&cfg, &b, &l, dcols, &err) == ET_EINVAL && strstr(err.msg, "guide"),
                   "gist without guide: %s", err.msg);
        et_loss_cfg_default(&cfg, ET_LOSS_MNRL);
        cfg.n_dims = 1, cfg.dims[0] = 5, cfg.weights[0] = 1;
        TEST_CHECK(et_loss_compute(&cfg, &b, &l, dcols, &err) == ET_EINVAL && strstr(err.msg, "Matryoshka"),
                   "dim > d: %s", err.msg);
        et_loss_cfg_default(&cfg, ET_LOSS_MNRL);
        float nan_row[4] = {NAN, 0, 0, 0};
        const float *cn[2] = {nan_row, p};
        et_loss_batch bn = {1, 4, 2, cn, NULL, NULL, 0};
        TEST_CHECK(et_loss_compute(&cfg, &bn, &l, dcols, &err) == ET_ENUMERIC, "NaN embedding: %s", err.msg);
    }
    return test_summary("test_loss");
}
