/* test_bert_grad.c - gradients of every parameter of tiny random BERT and
 * XLM-R encoders (2 layers, hidden 64, 4 heads, FFN 128, the bge WordPiece
 * vocabulary) against PyTorch in float64 (tests/ref/grad_ref.py), for a
 * projection loss and MNRL, CLS, mean and max pooling, erf GELU, tanh GELU
 * and ReLU, tensor names with and without a "bert."/"roberta." prefix, with
 * and without dropout (PyTorch applies embtune's masks), over batches of
 * unequal lengths (PyTorch pads them; embtune packs them).
 *
 * Checks per case:
 *  - embeddings of the training forward vs PyTorch: |a - b| <= 2e-6 + 1e-4|b|
 *  - without dropout: training forward (train = 1) and inference forward
 *    (train = 0) vs et_embed_ids: max abs diff <= 1e-5
 *  - the loss vs PyTorch: relative 1e-5
 *  - every parameter gradient vs PyTorch float64, per element
 *    |a - b| <= 1e-4 * max|b| + 1e-3 * |b|  (max|b| over the tensor: fp32
 *    rounding scales with the tensor's magnitude, not with each element),
 *    and the relative error of the tensor's norm <= 1e-4. The key bias,
 *    whose exact gradient is 0, is measured on its key weight's max|b|.
 * The padding_idx rows of the embedding tables must stay exactly 0.
 * Printed per tensor: max abs error, max abs error / max|ref|, and the same
 * for PyTorch's own float32 gradients (context for the fp32 error level).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "embtune.h"
#include "encoder_impl.h"
#include "json.h"
#include "loss.h"
#include "model.h"
#include "ref_file.h"
#include "test_util.h"
#include "util.h"

typedef struct {
    int32_t *ids;
    size_t *lens;
    const int32_t **ptr;
    size_t B;
} batch;

static int load_batch(batch *b, ref_file *r, const char *ids_name, const char *lens_name) {
    size_t n = 0, nb = 0;
    double *ids = ref_f64(r, ids_name, &n), *lens = ref_f64(r, lens_name, &nb);
    if (!ids || !lens) return -1;
    b->B = nb;
    b->ids = malloc(n * sizeof(int32_t));
    b->lens = malloc(nb * sizeof(size_t));
    b->ptr = malloc(nb * sizeof(int32_t *));
    for (size_t i = 0; i < n; i++) b->ids[i] = (int32_t)ids[i];
    for (size_t i = 0, o = 0; i < nb; i++) {
        b->lens[i] = (size_t)lens[i];
        b->ptr[i] = b->ids + o;
        o += b->lens[i];
    }
    free(ids), free(lens);
    return 0;
}

static void free_batch(batch *b) { free(b->ids), free(b->lens), free(b->ptr); }

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* Per-class summary: the worst relative error (max abs err / max|ref|) over the tensors of a class. */
typedef struct {
    const char *cls;
    double ours, torch32;
} class_err;
static class_err classes[16];
static size_t n_classes;

static const char *tensor_class(const char *name) {
    static const char *const keys[] = {"word_embeddings", "position_embeddings", "token_type_embeddings",
                                       "embeddings.LayerNorm", "attention.self", "attention.output.dense",
                                       "attention.output.LayerNorm", "intermediate.dense", "output.dense",
                                       "output.LayerNorm", "pooler"};
    for (size_t i = 0; i < ET_ARRAY_LEN(keys); i++)
        if (strstr(name, keys[i])) return keys[i];
    return "other";
}

static void note_class(const char *name, double ours, double torch32) {
    const char *c = tensor_class(name);
    for (size_t i = 0; i < n_classes; i++)
        if (!strcmp(classes[i].cls, c)) {
            classes[i].ours = fmax(classes[i].ours, ours);
            classes[i].torch32 = fmax(classes[i].torch32, torch32);
            return;
        }
    if (n_classes < ET_ARRAY_LEN(classes)) classes[n_classes++] = (class_err){c, ours, torch32};
}

static void run_case(const cJSON *cs) {
    const char *name = cJSON_GetObjectItem(cs, "name")->valuestring;
    const char *dir = cJSON_GetObjectItem(cs, "dir")->valuestring;
    const char *loss_kind = cJSON_GetObjectItem(cs, "loss")->valuestring;
    double dropout = cJSON_GetObjectItem(cs, "dropout")->valuedouble;
    uint64_t seed = (uint64_t)cJSON_GetObjectItem(cs, "seed")->valuedouble;
    printf("== %s\n", name);
    et_error err = {0};
    et_model *m = NULL;
    et_model_opts mo = {.quiet = 1};
    if (et_model_load(&m, dir, &mo, &err)) {
        TEST_CHECK(0, "%s: model load: %s", name, err.msg);
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    ref_file *r = ref_open(path);
    TEST_CHECK(r != NULL, "%s: open %s", name, path);
    if (!r) {
        et_model_free(m);
        return;
    }
    batch q, p;
    if (load_batch(&q, r, "q_ids", "q_lens") || load_batch(&p, r, "p_ids", "p_lens")) {
        TEST_CHECK(0, "%s: reference inputs missing", name);
        ref_close(r);
        et_model_free(m);
        return;
    }
    et_encoder_opts opts = {.dropout = (float)dropout, .seed = seed, .max_batch = 4, .max_len = 48};
    et_encoder *enc = NULL;
    int rc = et_encoder_init_bert(&enc, m, &opts, &err);
    TEST_CHECK(rc == 0, "%s: encoder init: %s", name, err.msg);
    if (rc) goto done;
    size_t C = et_encoder_dim(enc), np = 0;
    const et_model_config *c = &m->cfg;
    float *eq = calloc(q.B * C, sizeof(float)), *ep = calloc(p.B * C, sizeof(float));
    rc = et_encoder_forward(enc, 0, q.ptr, q.lens, q.B, 1, eq, &err);
    if (!rc) rc = et_encoder_forward(enc, 1, p.ptr, p.lens, p.B, 1, ep, &err);
    TEST_CHECK(rc == 0, "%s: forward: %s", name, err.msg);
    float *rq = ref_f32(r, "emb_q", NULL), *rp = ref_f32(r, "emb_p", NULL);
    test_max_err("emb_q vs torch", eq, rq, q.B * C, 2e-6, 1e-4);
    test_max_err("emb_p vs torch", ep, rp, p.B * C, 2e-6, 1e-4);
    if (dropout == 0.0) {
        /* the training forward equals inference (et_embed_ids and train = 0) */
        float *iq = calloc(q.B * C, sizeof(float)), *ip = calloc(p.B * C, sizeof(float));
        float *tq = calloc(q.B * C, sizeof(float));
        TEST_CHECK(et_embed_ids(m, q.ptr, q.lens, q.B, iq, &err) == 0, "embed_ids: %s", err.msg);
        TEST_CHECK(et_embed_ids(m, p.ptr, p.lens, p.B, ip, &err) == 0, "embed_ids: %s", err.msg);
        TEST_CHECK(et_encoder_forward(enc, 2, q.ptr, q.lens, q.B, 0, tq, &err) == 0, "forward: %s", err.msg);
        test_max_err("training forward vs et_embed_ids (queries)", eq, iq, q.B * C, 1e-5, 0);
        test_max_err("training forward vs et_embed_ids (passages)", ep, ip, p.B * C, 1e-5, 0);
        test_max_err("train=0 vs train=1 forward", tq, eq, q.B * C, 0, 0);
        free(iq), free(ip), free(tq);
    }
    /* loss gradient with respect to the embeddings */
    float *dq = calloc(q.B * C, sizeof(float)), *dp = calloc(p.B * C, sizeof(float));
    double loss = 0;
    if (!strcmp(loss_kind, "proj")) {
        float *Rq = ref_f32(r, "proj_q", NULL), *Rp = ref_f32(r, "proj_p", NULL);
        memcpy(dq, Rq, q.B * C * sizeof(float));
        memcpy(dp, Rp, p.B * C * sizeof(float));
        for (size_t i = 0; i < q.B * C; i++) loss += (double)Rq[i] * eq[i];
        for (size_t i = 0; i < p.B * C; i++) loss += (double)Rp[i] * ep[i];
        free(Rq), free(Rp);
    } else {
        et_loss_cfg lc;
        et_loss_cfg_default(&lc, ET_LOSS_MNRL);
        const float *cols[2] = {eq, ep};
        float *dcols[2] = {dq, dp};
        et_loss_batch lb = {.B = q.B, .d = C, .n_cols = 2, .emb = cols};
        TEST_CHECK(et_loss_compute(&lc, &lb, &loss, dcols, &err) == 0, "loss: %s", err.msg);
    }
    double rloss = ref_scalar(r, "loss");
    printf("loss %.9g, torch %.9g\n", loss, rloss);
    TEST_CLOSE(loss, rloss, 1e-6, 1e-5);
    float *grads = et_encoder_grads(enc, &np);
    memset(grads, 0, np * sizeof(float));
    TEST_CHECK(et_encoder_backward(enc, 0, dq, &err) == 0, "backward q: %s", err.msg);
    TEST_CHECK(et_encoder_backward(enc, 1, dp, &err) == 0, "backward p: %s", err.msg);
    TEST_CHECK(et_encoder_backward(enc, 1, dp, &err) != 0, "second backward of a slot is refused");
    /* every parameter */
    et_hf_tensor *ts = NULL;
    size_t nt = 0;
    TEST_CHECK(et_model_hf_tensors(m, &ts, &nt, &err) == 0, "hf tensors: %s", err.msg);
    double key_w_scale = 0;
    for (size_t i = 0; i < nt; i++) {
        char key[200];
        snprintf(key, sizeof key, "grad.%s", ts[i].name);
        size_t n = 0, want = ts[i].shape[0] * (ts[i].ndim == 2 ? ts[i].shape[1] : 1);
        if (!ref_has(r, key)) {
            TEST_CHECK(strstr(ts[i].name, "pooler") != NULL, "%s: no reference gradient for %s", name, key);
            continue;
        }
        float *ref = ref_f32(r, key, &n);
        TEST_CHECK(n == want, "%s: %s has %zu values, expected %zu", name, key, n, want);
        if (n != want) {
            free(ref);
            continue;
        }
        const float *g = grads + ts[i].offset;
        double mref = 0, nd = 0, nr = 0;
        for (size_t k = 0; k < n; k++) {
            mref = fmax(mref, fabs(ref[k]));
            nd += ((double)g[k] - ref[k]) * ((double)g[k] - ref[k]);
            nr += (double)ref[k] * ref[k];
        }
        /* The key bias gradient is exactly zero in exact arithmetic (adding
         * q.b_k to a whole row of scores leaves the softmax unchanged): both
         * fp32 results are rounding noise, measured on the key weight's scale. */
        int zero_grad = strstr(ts[i].name, "attention.self.key.bias") != NULL;
        double scale = zero_grad ? key_w_scale : mref;
        if (strstr(ts[i].name, "attention.self.key.weight")) key_w_scale = mref;
        double mad = max_abs_diff(g, ref, n), rel = scale > 0 ? mad / scale : mad;
        snprintf(key, sizeof key, "err32.%s", ts[i].name);
        double e32 = ref_scalar(r, key), rel32 = scale > 0 ? e32 / scale : e32;
        printf("  %-60s max|ref| %.3e  max err %.3e (%.2e rel)  torch fp32 %.3e (%.2e rel)\n", ts[i].name, mref,
               mad, rel, e32, rel32);
        note_class(ts[i].name, rel, rel32);
        size_t bad = 0, worst = 0;
        double wd = 0;
        for (size_t k = 0; k < n; k++) {
            double d = fabs((double)g[k] - ref[k]);
            if (!(d <= 1e-4 * scale + 1e-3 * fabs(ref[k]))) bad++;
            if (d > wd || d != d) wd = d, worst = k;
        }
        test_checks++;
        if (bad) {
            test_failures++;
            fprintf(stderr, "FAIL %s %s: %zu of %zu outside 1e-4*max|ref| + 1e-3*|ref| (worst [%zu] %g vs %g)\n",
                    name, ts[i].name, bad, n, worst, (double)g[worst], (double)ref[worst]);
        }
        if (!zero_grad)
            TEST_CHECK(sqrt(nd) <= 1e-4 * sqrt(nr) + 1e-12, "%s %s: norm rel err %g", name, ts[i].name,
                       sqrt(nd / (nr > 0 ? nr : 1)));
        free(ref);
    }
    /* padding_idx rows: never any gradient */
    size_t pad = (size_t)c->pad_token_id;
    int pad_zero = 1;
    for (size_t k = 0; k < C; k++) pad_zero &= grads[pad * C + k] == 0.0f; /* wte is first */
    TEST_CHECK(pad_zero, "%s: word embedding row %zu (padding_idx) got gradient", name, pad);
    free(ts);
    /* bad input: clear errors, nothing saved */
    {
        int32_t bad_ids[3] = {101, (int32_t)c->vocab_size, 102}, neg[2] = {101, -5};
        const int32_t *bp[1] = {bad_ids};
        size_t bl[1] = {3}, zl[1] = {0}, long_len[1] = {c->max_position + 1};
        float e1[64 * 4];
        et_error e = {0};
        TEST_CHECK(et_encoder_forward(enc, 4, bp, bl, 1, 1, e1, &e) == ET_EINVAL && strstr(e.msg, "vocabulary"),
                   "%s: out-of-vocabulary id rejected (%s)", name, e.msg);
        bp[0] = neg;
        bl[0] = 2;
        TEST_CHECK(et_encoder_forward(enc, 4, bp, bl, 1, 1, e1, &e) == ET_EINVAL, "%s: negative id rejected", name);
        TEST_CHECK(et_encoder_forward(enc, 4, bp, zl, 1, 1, e1, &e) == ET_EINVAL, "%s: empty sequence rejected",
                   name);
        TEST_CHECK(et_encoder_forward(enc, 4, bp, long_len, 1, 1, e1, &e) == ET_EINVAL,
                   "%s: too long sequence rejected", name);
        TEST_CHECK(et_encoder_backward(enc, 4, dq, &e) == ET_EINVAL, "%s: backward of a failed forward refused",
                   name);
        TEST_CHECK(et_encoder_backward(enc, 5, dq, &e) == ET_EINVAL, "%s: backward of an unused slot refused", name);
        uint8_t st[64];
        size_t sn = et_encoder_rng_state(enc, st, sizeof st);
        TEST_CHECK(sn == 20, "%s: RNG state size %zu", name, sn);
        TEST_CHECK(et_encoder_set_rng_state(enc, st, sn, &e) == 0, "%s: RNG state round trip: %s", name, e.msg);
        TEST_CHECK(et_encoder_set_rng_state(enc, st, sn - 1, &e) != 0, "%s: short RNG state refused", name);
    }
    /* save after an SGD step, reload, same parameters and embeddings */
    {
        float *params = et_encoder_params(enc, &np);
        for (size_t k = 0; k < np; k++) params[k] -= 0.5f * grads[k];
        char sdir[4200];
        snprintf(sdir, sizeof sdir, "%s.saved", dir);
        rc = et_encoder_save(enc, sdir, &err);
        TEST_CHECK(rc == 0, "%s: save: %s", name, err.msg);
        et_model *m2 = NULL;
        if (!rc) rc = et_model_load(&m2, sdir, &mo, &err);
        TEST_CHECK(rc == 0, "%s: reload: %s", name, err.msg);
        if (!rc) {
            TEST_CHECK(m2->n_params == np && !memcmp(m2->params, params, np * sizeof(float)),
                       "%s: reloaded parameters differ", name);
            TEST_CHECK(m2->pooling == m->pooling && m2->normalize == m->normalize, "%s: reloaded modules differ",
                       name);
            float *a = calloc(p.B * C, sizeof(float)), *b2 = calloc(p.B * C, sizeof(float));
            TEST_CHECK(et_encoder_forward(enc, 3, p.ptr, p.lens, p.B, 0, a, &err) == 0, "forward: %s", err.msg);
            TEST_CHECK(et_embed_ids(m2, p.ptr, p.lens, p.B, b2, &err) == 0, "embed: %s", err.msg);
            test_max_err("saved model: et_embed_ids vs encoder forward", b2, a, p.B * C, 1e-5, 0);
            double moved = max_abs_diff(a, ep, p.B * C);
            TEST_CHECK(moved > 1e-4, "%s: the SGD step changed the embeddings (max change %g)", name, moved);
            free(a), free(b2);
        }
        et_model_free(m2);
    }
    free(eq), free(ep), free(rq), free(rp), free(dq), free(dp);
done:
    et_encoder_free(enc);
    free_batch(&q), free_batch(&p);
    ref_close(r);
    et_model_free(m);
}

int main(void) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    const char *shared = getenv("SHARED") ? getenv("SHARED") : "../shared";
    char out[1024], args[4096];
    snprintf(out, sizeof out, "%s/test-out/bert_grad", build);
    snprintf(args, sizeof args, "tests/ref/grad_ref.py %s %s/fixtures/bge-wordpiece/tokenizer.json", out, shared);
    if (ref_run_python(args) != 0) {
        TEST_CHECK(0, "reference generation failed");
        return test_summary("test_bert_grad");
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/cases.json", out);
    cJSON *cases = NULL;
    et_error err = {0};
    if (et_json_load(&cases, path, &err)) {
        TEST_CHECK(0, "%s", err.msg);
        return test_summary("test_bert_grad");
    }
    const cJSON *cs;
    cJSON_ArrayForEach(cs, cases) run_case(cs);
    cJSON_Delete(cases);
    printf("\nworst relative gradient error per tensor class (max abs err / max|ref|, over all cases):\n");
    printf("  %-28s %12s %12s\n", "class", "embtune", "torch fp32");
    for (size_t i = 0; i < n_classes; i++)
        printf("  %-28s %12.2e %12.2e\n", classes[i].cls, classes[i].ours, classes[i].torch32);
    return test_summary("test_bert_grad");
}
