/* test_grad_ops.c - every backward kernel of kernels_bwd.h, checked two ways:
 *  1. the reference kernel against central finite differences of a double
 *     precision forward written here (loss = sum(G * f(x)) for a random G);
 *  2. the dispatched (threaded / AVX2 / BLAS) kernel against the reference
 *     kernel on odd shapes, accumulating into non-zero buffers.
 * Tolerances: |a - b| <= atol + rtol * |b| per element, stated per check.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "embtune.h"
#include "kernels_bwd.h"
#include "util.h"
#include "test_util.h"

/* ---- helpers --------------------------------------------------------------------- */

static uint64_t rng = 0x1234567887654321ull;
static double urand(void) { /* [0, 1) */
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static float nrand(void) { /* ~N(0,1) */
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}
static float *randv(size_t n, float s) {
    float *p = malloc((n + 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = nrand() * s;
    return p;
}
static float *copyv(const float *a, size_t n) {
    float *p = malloc((n + 1) * sizeof(float));
    memcpy(p, a, n * sizeof(float));
    return p;
}
static float *zerov(size_t n) { return calloc(n + 1, sizeof(float)); }

/* a - b elementwise into a new array (the increment an accumulating kernel made). */
static float *diffv(const float *a, const float *b, size_t n) {
    float *p = malloc((n + 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = a[i] - b[i];
    return p;
}

/* Finite differences of loss(x) over the float array x (perturbed in double
 * through a double copy): g[i] = (L(x + h e_i) - L(x - h e_i)) / 2h. */
typedef double (*loss_fn)(void *ctx, const double *x);
static void fd_grad(double *g, void *ctx, loss_fn f, const float *x, size_t n, double h) {
    double *xd = malloc((n + 1) * sizeof(double));
    for (size_t i = 0; i < n; i++) xd[i] = x[i];
    for (size_t i = 0; i < n; i++) {
        double s = xd[i];
        xd[i] = s + h;
        double lp = f(ctx, xd);
        xd[i] = s - h;
        double lm = f(ctx, xd);
        xd[i] = s;
        g[i] = (lp - lm) / (2 * h);
    }
    free(xd);
}

/* Compares float gradient a against double finite differences b. */
static void check_fd(const char *name, const float *a, const double *b, size_t n, double atol,
                     double rtol) {
    float *bf = malloc((n + 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) bf[i] = (float)b[i];
    test_max_err(name, a, bf, n, atol, rtol);
    free(bf);
}

/* ---- matmul --------------------------------------------------------------------- */

typedef struct {
    size_t N, C, OC, which; /* which: 0 inp, 1 w, 2 b */
    const float *inp, *w, *b, *G;
} mm_ctx;

static double mm_loss(void *p, const double *x) {
    mm_ctx *c = p;
    double L = 0;
    for (size_t n = 0; n < c->N; n++)
        for (size_t o = 0; o < c->OC; o++) {
            double acc = c->which == 2 ? x[o] : c->b[o];
            for (size_t k = 0; k < c->C; k++) {
                double xi = c->which == 0 ? x[n * c->C + k] : c->inp[n * c->C + k];
                double wi = c->which == 1 ? x[o * c->C + k] : c->w[o * c->C + k];
                acc += xi * wi;
            }
            L += c->G[n * c->OC + o] * acc;
        }
    return L;
}

static void test_matmul(void) {
    size_t N = 5, C = 7, OC = 6;
    float *inp = randv(N * C, 1), *w = randv(OC * C, 1), *b = randv(OC, 1), *G = randv(N * OC, 1);
    float *di = zerov(N * C), *dw = zerov(OC * C), *db = zerov(OC);
    matmul_backward_ref(di, dw, db, G, inp, w, N, C, OC);
    mm_ctx c = {N, C, OC, 0, inp, w, b, G};
    double *g = malloc(N * C * OC * sizeof(double) + 64);
    fd_grad(g, &c, mm_loss, inp, N * C, 1e-3);
    check_fd("matmul_ref dinp vs fd", di, g, N * C, 1e-5, 1e-5);
    c.which = 1;
    fd_grad(g, &c, mm_loss, w, OC * C, 1e-3);
    check_fd("matmul_ref dw vs fd", dw, g, OC * C, 1e-5, 1e-5);
    c.which = 2;
    fd_grad(g, &c, mm_loss, b, OC, 1e-3);
    check_fd("matmul_ref db vs fd", db, g, OC, 1e-5, 1e-5);
    free(inp), free(w), free(b), free(G), free(di), free(dw), free(db), free(g);

    /* fast vs reference: odd shapes, accumulating into random buffers */
    size_t shapes[][3] = {{1, 1, 1}, {37, 29, 53}, {130, 64, 200}, {3, 384, 1536}, {257, 96, 33},
                          {1100, 40, 70}, {601, 530, 17}}; /* > 512 rows: dW over several K blocks */
    for (size_t s = 0; s < ET_ARRAY_LEN(shapes); s++) {
        N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        inp = randv(N * C, 1), w = randv(OC * C, 0.1f), G = randv(N * OC, 1);
        float *d0 = randv(N * C, 1), *w0 = randv(OC * C, 1), *b0 = randv(OC, 1);
        float *d1 = copyv(d0, N * C), *w1 = copyv(w0, OC * C), *b1 = copyv(b0, OC);
        matmul_backward_ref(d0, w0, b0, G, inp, w, N, C, OC);
        matmul_backward(d1, w1, b1, G, inp, w, N, C, OC);
        char name[96];
        snprintf(name, sizeof name, "matmul fast vs ref dinp [%zu,%zu,%zu]", N, C, OC);
        test_max_err(name, d1, d0, N * C, 1e-4, 1e-4);
        snprintf(name, sizeof name, "matmul fast vs ref dw [%zu,%zu,%zu]", N, C, OC);
        test_max_err(name, w1, w0, OC * C, 1e-4, 1e-4);
        snprintf(name, sizeof name, "matmul fast vs ref db [%zu,%zu,%zu]", N, C, OC);
        test_max_err(name, b1, b0, OC, 1e-4, 1e-4);
        /* NULL outputs are skipped */
        float *d2 = copyv(d0, N * C);
        matmul_backward(d2, NULL, NULL, G, inp, w, N, C, OC);
        /* the same with 1 thread: bit-identical (the default GEMM is thread-count invariant) */
        float *d3 = copyv(d0, N * C), *w3 = copyv(w0, OC * C), *b3 = copyv(b0, OC);
        float *d4 = copyv(d0, N * C), *w4 = copyv(w0, OC * C), *b4 = copyv(b0, OC);
        int saved = et_get_threads();
        et_set_threads(1);
        matmul_backward(d3, w3, b3, G, inp, w, N, C, OC);
        et_set_threads(3);
        matmul_backward(d4, w4, b4, G, inp, w, N, C, OC);
        et_set_threads(saved);
        if (!getenv("ET_GEMM"))
            TEST_CHECK(!memcmp(d3, d4, N * C * 4) && !memcmp(w3, w4, OC * C * 4) && !memcmp(b3, b4, OC * 4),
                       "matmul_backward [%zu,%zu,%zu]: 1 vs 3 threads differ", N, C, OC);
        free(d3), free(w3), free(b3), free(d4), free(w4), free(b4);
        free(inp), free(w), free(G), free(d0), free(w0), free(b0), free(d1), free(w1), free(b1),
            free(d2);
    }
}

/* ---- layernorm ------------------------------------------------------------------- */

typedef struct {
    size_t N, C, which;
    const float *inp, *w, *b, *G;
    double eps;
} ln_ctx;

static double ln_loss(void *p, const double *x) {
    ln_ctx *c = p;
    double L = 0;
    for (size_t n = 0; n < c->N; n++) {
        double m = 0, v = 0, xs[64];
        for (size_t k = 0; k < c->C; k++) {
            xs[k] = c->which == 0 ? x[n * c->C + k] : c->inp[n * c->C + k];
            m += xs[k];
        }
        m /= (double)c->C;
        for (size_t k = 0; k < c->C; k++) v += (xs[k] - m) * (xs[k] - m);
        v /= (double)c->C;
        double r = 1.0 / sqrt(v + c->eps);
        for (size_t k = 0; k < c->C; k++) {
            double w = c->which == 1 ? x[k] : c->w[k], b = c->which == 2 ? x[k] : c->b[k];
            L += c->G[n * c->C + k] * ((xs[k] - m) * r * w + b);
        }
    }
    return L;
}

static void ln_stats(float *mean, float *rstd, const float *x, size_t N, size_t C, double eps) {
    for (size_t n = 0; n < N; n++) {
        double m = 0, v = 0;
        for (size_t k = 0; k < C; k++) m += x[n * C + k];
        m /= (double)C;
        for (size_t k = 0; k < C; k++) v += (x[n * C + k] - m) * (x[n * C + k] - m);
        mean[n] = (float)m;
        rstd[n] = (float)(1.0 / sqrt(v / (double)C + eps));
    }
}

static void test_layernorm(void) {
    size_t N = 4, C = 11;
    float *inp = randv(N * C, 2), *w = randv(C, 1), *b = randv(C, 1), *G = randv(N * C, 1);
    for (size_t i = 0; i < N * C; i++) inp[i] += 0.5f; /* non-zero mean */
    float mean[4], rstd[4];
    ln_stats(mean, rstd, inp, N, C, 1e-12);
    float *di = zerov(N * C), *dw = zerov(C), *db = zerov(C);
    layernorm_backward_ref(di, dw, db, G, inp, mean, rstd, w, N, C);
    ln_ctx c = {N, C, 0, inp, w, b, G, 1e-12};
    double g[64];
    fd_grad(g, &c, ln_loss, inp, N * C, 1e-5);
    check_fd("layernorm_ref dinp vs fd", di, g, N * C, 1e-5, 1e-4);
    c.which = 1;
    fd_grad(g, &c, ln_loss, w, C, 1e-5);
    check_fd("layernorm_ref dw vs fd", dw, g, C, 1e-5, 1e-4);
    c.which = 2;
    fd_grad(g, &c, ln_loss, b, C, 1e-5);
    check_fd("layernorm_ref db vs fd", db, g, C, 1e-5, 1e-4);
    free(inp), free(w), free(b), free(G), free(di), free(dw), free(db);

    size_t shapes[][2] = {{1, 3}, {7, 33}, {67, 384}, {300, 100}, {2048, 64}};
    for (size_t s = 0; s < ET_ARRAY_LEN(shapes); s++) {
        N = shapes[s][0], C = shapes[s][1];
        inp = randv(N * C, 3), w = randv(C, 1), G = randv(N * C, 1);
        float *mn = malloc(N * sizeof(float)), *rs = malloc(N * sizeof(float));
        ln_stats(mn, rs, inp, N, C, 1e-5);
        float *d0 = randv(N * C, 1), *w0 = randv(C, 1), *b0 = randv(C, 1);
        float *d1 = copyv(d0, N * C), *w1 = copyv(w0, C), *b1 = copyv(b0, C);
        layernorm_backward_ref(d0, w0, b0, G, inp, mn, rs, w, N, C);
        layernorm_backward(d1, w1, b1, G, inp, mn, rs, w, N, C);
        char name[96];
        snprintf(name, sizeof name, "layernorm fast vs ref dinp [%zu,%zu]", N, C);
        test_max_err(name, d1, d0, N * C, 1e-4, 1e-4);
        snprintf(name, sizeof name, "layernorm fast vs ref dw [%zu,%zu]", N, C);
        test_max_err(name, w1, w0, C, 1e-3, 1e-4);
        snprintf(name, sizeof name, "layernorm fast vs ref db [%zu,%zu]", N, C);
        test_max_err(name, b1, b0, C, 1e-3, 1e-4);
        free(inp), free(w), free(G), free(mn), free(rs), free(d0), free(w0), free(b0), free(d1),
            free(w1), free(b1);
    }
}

/* ---- activations -------------------------------------------------------------------- */

typedef struct {
    size_t N;
    int tanh_;
    const float *G;
} act_ctx;

static double act_loss(void *p, const double *x) {
    act_ctx *c = p;
    double L = 0;
    for (size_t i = 0; i < c->N; i++) {
        double v = x[i], y;
        if (c->tanh_) y = 0.5 * v * (1 + tanh(0.79788456080286535588 * (v + 0.044715 * v * v * v)));
        else y = 0.5 * v * (1 + erf(v / sqrt(2.0)));
        L += c->G[i] * y;
    }
    return L;
}

static void test_gelu(void) {
    for (int th = 0; th < 2; th++) {
        size_t N = 61;
        float *x = randv(N, 3), *G = randv(N, 1), *d = zerov(N);
        x[0] = 0, x[1] = -9.5f, x[2] = 9.5f, x[3] = -25, x[4] = 25;
        if (th) gelu_tanh_backward_ref(d, x, G, N);
        else gelu_backward_ref(d, x, G, N);
        act_ctx c = {N, th, G};
        double g[64];
        fd_grad(g, &c, act_loss, x, N, 1e-6);
        check_fd(th ? "gelu_tanh_ref vs fd" : "gelu_ref vs fd", d, g, N, 1e-6, 1e-5);
        free(x), free(G), free(d);

        size_t sizes[] = {1, 7, 8, 9, 1000, 100003};
        for (size_t s = 0; s < ET_ARRAY_LEN(sizes); s++) {
            N = sizes[s];
            x = randv(N, 4), G = randv(N, 1);
            float *d0 = randv(N, 1), *d1 = copyv(d0, N);
            if (th) {
                gelu_tanh_backward_ref(d0, x, G, N);
                gelu_tanh_backward(d1, x, G, N);
            } else {
                gelu_backward_ref(d0, x, G, N);
                gelu_backward(d1, x, G, N);
            }
            char name[96];
            snprintf(name, sizeof name, "%s fast vs ref [%zu]", th ? "gelu_tanh" : "gelu", N);
            test_max_err(name, d1, d0, N, 2e-6, 2e-6);
            free(x), free(G), free(d0), free(d1);
        }
    }
    /* relu */
    float x[4] = {-1, 0, 2, 3}, G[4] = {1, 2, 3, 4}, d[4] = {1, 1, 1, 1};
    relu_backward(d, x, G, 4);
    TEST_CHECK(d[0] == 1 && d[1] == 1 && d[2] == 4 && d[3] == 5, "relu_backward");
}

/* ---- attention ----------------------------------------------------------------------- */

typedef struct {
    const size_t *offs;
    size_t B, C, NH;
    const et_dropout *drop;
    const float *G; /* [N, C] */
} at_ctx;

/* Double-precision attention forward of qkv x [N, 3C]; returns sum(G * out). */
static double at_loss(void *p, const double *x) {
    at_ctx *c = p;
    size_t C = c->C, HS = C / c->NH, C3 = 3 * C;
    double scale = 1.0 / sqrt((double)HS), L = 0;
    double ds = c->drop && c->drop->p > 0 ? 1.0 / (1.0 - c->drop->p) : 1.0;
    for (size_t b = 0; b < c->B; b++) {
        size_t o0 = c->offs[b], T = c->offs[b + 1] - o0;
        for (size_t h = 0; h < c->NH; h++)
            for (size_t i = 0; i < T; i++) {
                double s[64], mx = -INFINITY, sum = 0;
                for (size_t j = 0; j < T; j++) {
                    double a = 0;
                    for (size_t d = 0; d < HS; d++)
                        a += x[(o0 + i) * C3 + h * HS + d] * x[(o0 + j) * C3 + C + h * HS + d];
                    s[j] = a * scale;
                    if (s[j] > mx) mx = s[j];
                }
                for (size_t j = 0; j < T; j++) sum += (s[j] = exp(s[j] - mx));
                for (size_t j = 0; j < T; j++) {
                    s[j] /= sum;
                    if (c->drop && c->drop->p > 0)
                        s[j] *= et_dropout_keep(c->drop, ((uint64_t)b * c->NH + h) * 65536 + i,
                                                (uint32_t)j) ? ds : 0.0;
                }
                for (size_t d = 0; d < HS; d++) {
                    double o = 0;
                    for (size_t j = 0; j < T; j++) o += s[j] * x[(o0 + j) * C3 + 2 * C + h * HS + d];
                    L += c->G[(o0 + i) * C + h * HS + d] * o;
                }
            }
    }
    return L;
}

static void attention_case(const size_t *lens, size_t B, size_t C, size_t NH, float p, int fd) {
    size_t offs[16] = {0};
    for (size_t b = 0; b < B; b++) offs[b + 1] = offs[b] + lens[b];
    size_t N = offs[B], C3 = 3 * C;
    et_dropout drop = {p, et_dropout_key(42, 7)};
    const et_dropout *dp = p > 0 ? &drop : NULL;
    float *qkv = randv(N * C3, 1), *G = randv(N * C, 1);
    float *o0 = zerov(N * C), *l0 = zerov(NH * N), *o1 = zerov(N * C), *l1 = zerov(NH * N);
    attention_forward_train_ref(o0, l0, qkv, offs, B, C, NH, dp);
    attention_forward_train(o1, l1, qkv, offs, B, C, NH, dp);
    char name[128], shape[64];
    snprintf(shape, sizeof shape, "[B%zu N%zu C%zu NH%zu p%.2f]", B, N, C, NH, p);
    snprintf(name, sizeof name, "attention fwd fast vs ref out %s", shape);
    test_max_err(name, o1, o0, N * C, 1e-5, 1e-4);
    snprintf(name, sizeof name, "attention fwd fast vs ref lse %s", shape);
    test_max_err(name, l1, l0, NH * N, 1e-5, 1e-5);
    float *g0 = randv(N * C3, 1), *g1 = copyv(g0, N * C3), *init = copyv(g0, N * C3);
    attention_backward_ref(g0, G, qkv, o0, l0, offs, B, C, NH, dp);
    attention_backward(g1, G, qkv, o1, l1, offs, B, C, NH, dp);
    snprintf(name, sizeof name, "attention bwd fast vs ref %s", shape);
    test_max_err(name, g1, g0, N * C3, 1e-4, 1e-4);
    if (fd) {
        at_ctx c = {offs, B, C, NH, dp, G};
        double *g = malloc(N * C3 * sizeof(double));
        fd_grad(g, &c, at_loss, qkv, N * C3, 1e-5);
        float *inc = diffv(g0, init, N * C3);
        snprintf(name, sizeof name, "attention_ref dqkv vs fd %s", shape);
        check_fd(name, inc, g, N * C3, 1e-5, 1e-4);
        free(g), free(inc);
    }
    free(qkv), free(G), free(o0), free(l0), free(o1), free(l1), free(g0), free(g1), free(init);
}

static void test_attention(void) {
    size_t l1[] = {1, 5, 3};
    attention_case(l1, 3, 8, 2, 0.0f, 1);
    attention_case(l1, 3, 8, 2, 0.3f, 1);
    size_t l2[] = {9, 2};
    attention_case(l2, 2, 12, 3, 0.1f, 1); /* HS 4 */
    size_t l3[] = {1, 7, 19, 33, 40};
    attention_case(l3, 5, 24, 3, 0.0f, 0);  /* HS 8 */
    attention_case(l3, 5, 36, 3, 0.1f, 0);  /* HS 12: scalar tails */
    attention_case(l3, 5, 128, 2, 0.1f, 0); /* HS 64 */
    size_t l4[] = {128, 32, 77};
    attention_case(l4, 3, 96, 3, 0.1f, 0);  /* HS 32 */
}

/* ---- dropout -------------------------------------------------------------------------- */

static void test_dropout(void) {
    et_dropout d = {0.1f, et_dropout_key(1, 2)};
    size_t kept = 0, n = 0;
    for (uint64_t r = 0; r < 200; r++)
        for (uint32_t c = 0; c < 1000; c++) kept += (size_t)et_dropout_keep(&d, r, c), n++;
    double rate = (double)kept / (double)n, sd = sqrt(0.9 * 0.1 / (double)n);
    printf("dropout p=0.1: keep rate %.5f (expected 0.9 +- %.5f)\n", rate, 5 * sd);
    TEST_CHECK(fabs(rate - 0.9) < 5 * sd, "dropout keep rate %g", rate);
    /* different keys give different masks; same key the same */
    et_dropout d2 = {0.1f, et_dropout_key(1, 3)};
    size_t same = 0;
    for (uint32_t c = 0; c < 1000; c++) same += et_dropout_keep(&d, 5, c) == et_dropout_keep(&d2, 5, c);
    TEST_CHECK(same < 900, "masks of different streams differ (%zu of 1000 equal)", same);
    /* fast vs ref */
    size_t offs[4] = {0, 3, 10, 47}, C = 77, N = 47;
    float *x = randv(N * C, 1), *y = copyv(x, N * C);
    dropout_hidden_ref(x, &d, offs, 3, C);
    dropout_hidden(y, &d, offs, 3, C);
    test_max_err("dropout_hidden fast vs ref", y, x, N * C, 0, 0);
    /* p = 0 is the identity */
    et_dropout z = {0.0f, 1};
    float *w = copyv(y, N * C);
    dropout_hidden(w, &z, offs, 3, C);
    test_max_err("dropout p=0 identity", w, y, N * C, 0, 0);
    free(x), free(y), free(w);
}

/* ---- embeddings ------------------------------------------------------------------------ */

static void test_embedding(void) {
    size_t V = 50, P = 20, TV = 2, C = 37, N = 300;
    int32_t *ids = malloc(N * sizeof(int32_t)), *pos = malloc(N * sizeof(int32_t)),
            *ty = malloc(N * sizeof(int32_t));
    for (size_t i = 0; i < N; i++) {
        ids[i] = (int32_t)(urand() * V);
        pos[i] = (int32_t)(urand() * P);
        ty[i] = (int32_t)(urand() * TV);
    }
    float *G = randv(N * C, 1);
    float *e0 = zerov(V * C), *p0 = zerov(P * C), *t0 = zerov(TV * C);
    /* expected, by definition */
    for (size_t i = 0; i < N; i++)
        for (size_t c = 0; c < C; c++) {
            if (ids[i] != 3) e0[ids[i] * C + c] += G[i * C + c];
            if (pos[i] != 1) p0[pos[i] * C + c] += G[i * C + c];
            t0[ty[i] * C + c] += G[i * C + c];
        }
    float *e1 = zerov(V * C), *p1 = zerov(P * C), *t1 = zerov(TV * C);
    embedding_backward_ref(e1, p1, t1, G, ids, pos, ty, 3, 1, N, C);
    test_max_err("embedding_ref dwte", e1, e0, V * C, 1e-5, 1e-5);
    test_max_err("embedding_ref dwpe", p1, p0, P * C, 1e-5, 1e-5);
    test_max_err("embedding_ref dwtt", t1, t0, TV * C, 1e-5, 1e-5);
    float *e2 = zerov(V * C), *p2 = zerov(P * C), *t2 = zerov(TV * C);
    embedding_backward(e2, p2, t2, G, ids, pos, ty, 3, 1, N, C);
    test_max_err("embedding fast dwte", e2, e0, V * C, 1e-5, 1e-5);
    test_max_err("embedding fast dwpe", p2, p0, P * C, 1e-5, 1e-5);
    test_max_err("embedding fast dwtt", t2, t0, TV * C, 1e-5, 1e-5);
    int skip_ok = 1;
    for (size_t c = 0; c < C; c++) skip_ok &= e2[3 * C + c] == 0 && p2[1 * C + c] == 0;
    TEST_CHECK(skip_ok, "padding_idx rows receive no gradient");
    free(ids), free(pos), free(ty), free(G), free(e0), free(p0), free(t0), free(e1), free(p1),
        free(t1), free(e2), free(p2), free(t2);
}

/* ---- pooling and normalization ------------------------------------------------------------ */

typedef struct {
    const size_t *offs;
    size_t B, C;
    int mode, norm;
    const float *G;
} pool_ctx;

static double pool_loss(void *p, const double *x) {
    pool_ctx *c = p;
    double L = 0;
    for (size_t b = 0; b < c->B; b++) {
        size_t o0 = c->offs[b], T = c->offs[b + 1] - o0;
        double e[64], nn = 0;
        for (size_t k = 0; k < c->C; k++) {
            double v;
            if (c->mode == ET_POOL_CLS) v = x[o0 * c->C + k];
            else if (c->mode == ET_POOL_LAST) v = x[(o0 + T - 1) * c->C + k];
            else if (c->mode == ET_POOL_MEAN) {
                v = 0;
                for (size_t t = 0; t < T; t++) v += x[(o0 + t) * c->C + k];
                v /= (double)T;
            } else {
                v = -INFINITY;
                for (size_t t = 0; t < T; t++) v = fmax(v, x[(o0 + t) * c->C + k]);
            }
            e[k] = v;
            nn += v * v;
        }
        nn = fmax(sqrt(nn), 1e-12);
        for (size_t k = 0; k < c->C; k++) L += c->G[b * c->C + k] * (c->norm ? e[k] / nn : e[k]);
    }
    return L;
}

static void test_pool(void) {
    size_t offs[4] = {0, 1, 6, 13}, B = 3, C = 9, N = 13;
    const int modes[4] = {ET_POOL_CLS, ET_POOL_MEAN, ET_POOL_MAX, ET_POOL_LAST};
    const char *names[4] = {"cls", "mean", "max", "last"};
    for (int norm = 0; norm < 2; norm++)
        for (int m = 0; m < 4; m++) {
            float *x = randv(N * C, 1), *G = randv(B * C, 1), *e = zerov(B * C), *y = zerov(B * C);
            float nrm[3], *de = zerov(B * C), *dx = zerov(N * C);
            pool_forward_packed(e, x, offs, B, C, modes[m]);
            const float *dpool = G;
            if (norm) {
                for (size_t b = 0; b < B; b++) {
                    double s = 0;
                    for (size_t k = 0; k < C; k++) s += (double)e[b * C + k] * e[b * C + k];
                    nrm[b] = (float)sqrt(s);
                    for (size_t k = 0; k < C; k++) y[b * C + k] = e[b * C + k] / nrm[b];
                }
                l2norm_backward(de, G, y, nrm, B, C);
                dpool = de;
            }
            pool_backward_packed(dx, dpool, x, offs, B, C, modes[m]);
            pool_ctx c = {offs, B, C, modes[m], norm, G};
            double g[13 * 9];
            fd_grad(g, &c, pool_loss, x, N * C, 1e-6);
            char name[64];
            snprintf(name, sizeof name, "pool %s%s vs fd", names[m], norm ? " + l2norm" : "");
            check_fd(name, dx, g, N * C, 1e-5, 1e-4);
            free(x), free(G), free(e), free(y), free(de), free(dx);
        }
}

int main(void) {
    test_matmul();
    test_layernorm();
    test_gelu();
    test_attention();
    test_dropout();
    test_embedding();
    test_pool();
    /* the same through the reference dispatch (ET_KERNELS=ref is read once; the
     * fast paths above already ran with the default dispatch) */
    return test_summary("test_grad_ops");
}
