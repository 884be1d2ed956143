/* test_kernels.c - every dispatched (fast) kernel against its reference kernel,
 * on odd shapes (sizes not multiples of 8/16/32, length 1, padded batches). */
#include <stdint.h>

#include "embtune.h"
#include "kernels.h"
#include "test_util.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) { /* uniform [-1, 1), xorshift64* */
    rng ^= rng >> 12; rng ^= rng << 25; rng ^= rng >> 27;
    return (float)((double)((rng * 0x2545F4914F6CDD1Dull) >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}
static float *randv(size_t n, float scale) {
    float *v = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}

static void check_matmul(size_t N, size_t C, size_t OC, int with_bias) {
    float *x = randv(N * C, 1), *w = randv(OC * C, 0.5f), *b = with_bias ? randv(OC, 1) : NULL;
    float *r = malloc(N * OC * sizeof(float)), *f = malloc(N * OC * sizeof(float));
    char name[96];
    matmul_forward_ref(r, x, w, b, N, C, OC);
    /* tolerance: fp32 accumulation over C terms of size <= 0.5 vs a double reference */
    double atol = 1e-6 * (double)C;
    snprintf(name, sizeof name, "matmul avx2 N=%zu C=%zu OC=%zu bias=%d", N, C, OC, with_bias);
    memset(f, 0, N * OC * sizeof(float));
    matmul_forward_avx2(f, x, w, b, N, C, OC);
    test_max_err(name, f, r, N * OC, atol, 1e-5);
    snprintf(name, sizeof name, "matmul blas N=%zu C=%zu OC=%zu bias=%d", N, C, OC, with_bias);
    memset(f, 0, N * OC * sizeof(float));
    matmul_forward_blas(f, x, w, b, N, C, OC);
    test_max_err(name, f, r, N * OC, atol, 1e-5);
    snprintf(name, sizeof name, "matmul dispatched N=%zu C=%zu OC=%zu", N, C, OC);
    memset(f, 0, N * OC * sizeof(float));
    matmul_forward(f, x, w, b, N, C, OC);
    test_max_err(name, f, r, N * OC, atol, 1e-5);
    /* thread-count invariance of the dispatched kernel */
    float *g = malloc(N * OC * sizeof(float));
    int saved = et_get_threads();
    et_set_threads(1);
    matmul_forward(g, x, w, b, N, C, OC);
    et_set_threads(3);
    matmul_forward(f, x, w, b, N, C, OC);
    et_set_threads(saved);
    TEST_CHECK(!memcmp(f, g, N * OC * sizeof(float)), "matmul N=%zu C=%zu OC=%zu: 1 vs 3 threads differ", N, C, OC);
    free(g);
    free(x); free(w); free(b); free(r); free(f);
}

static void check_layernorm(size_t N, size_t C) {
    float *x = randv(N * C, 3), *w = randv(C, 1), *b = randv(C, 1), *r2 = randv(N * C, 2);
    float *ro = malloc(N * C * 4), *fo = malloc(N * C * 4), *rm = malloc(N * 4), *fm = malloc(N * 4),
          *rr = malloc(N * 4), *fr = malloc(N * 4), *rres = malloc(N * C * 4), *fres = malloc(N * C * 4);
    for (size_t i = 0; i < C; i++) x[i] += 100.0f; /* a row with a large mean */
    char name[96];
    layernorm_forward_ref(ro, rm, rr, x, w, b, N, C, 1e-12f);
    layernorm_forward(fo, fm, fr, x, w, b, N, C, 1e-12f);
    snprintf(name, sizeof name, "layernorm out N=%zu C=%zu", N, C);
    test_max_err(name, fo, ro, N * C, 2e-5, 1e-5);
    test_max_err("layernorm mean", fm, rm, N, 1e-5, 1e-6);
    test_max_err("layernorm rstd", fr, rr, N, 1e-6, 1e-4);
    residual_layernorm_forward_ref(ro, rres, rm, rr, x, r2, w, b, N, C, 1e-5f);
    residual_layernorm_forward(fo, fres, fm, fr, x, r2, w, b, N, C, 1e-5f);
    snprintf(name, sizeof name, "residual+layernorm out N=%zu C=%zu", N, C);
    test_max_err(name, fo, ro, N * C, 2e-5, 1e-5);
    test_max_err("residual+layernorm res", fres, rres, N * C, 0, 0);
    test_max_err("residual+layernorm rstd", fr, rr, N, 1e-6, 1e-4);
    /* in place, no res: out aliases a */
    memcpy(fo, x, N * C * 4);
    residual_layernorm_forward(fo, NULL, NULL, NULL, fo, r2, w, b, N, C, 1e-5f);
    test_max_err("residual+layernorm in place", fo, ro, N * C, 2e-5, 1e-5);
    free(x); free(w); free(b); free(r2); free(ro); free(fo); free(rm); free(fm); free(rr); free(fr);
    free(rres); free(fres);
}

static void check_act(size_t N) {
    float *x = randv(N, 6), *r = malloc(N * 4 + 4), *f = malloc(N * 4 + 4);
    if (N > 3) { x[0] = 0; x[1] = -12; x[2] = 12; x[3] = -0.0f; }
    gelu_forward_ref(r, x, N);
    gelu_forward(f, x, N);
    test_max_err("gelu", f, r, N, 1e-6, 1e-5);
    gelu_tanh_forward_ref(r, x, N);
    gelu_tanh_forward(f, x, N);
    test_max_err("gelu_tanh", f, r, N, 1e-6, 1e-5);
    memcpy(f, x, N * 4); /* in place */
    gelu_forward(f, f, N);
    gelu_forward_ref(r, x, N);
    test_max_err("gelu in place", f, r, N, 1e-6, 1e-5);
    free(x); free(r); free(f);
}

static void check_attention(size_t B, size_t T, size_t C, size_t NH, const size_t *lens) {
    size_t HS = C / NH;
    float *qkv = randv(B * T * 3 * C, 2.0f / sqrtf((float)HS) * 3);
    float *ro = malloc(B * T * C * 4), *fo = malloc(B * T * C * 4), *io = malloc(B * T * C * 4);
    float *ra = malloc(B * NH * T * T * 4), *fa = malloc(B * NH * T * T * 4);
    memset(fo, 0x7f, B * T * C * 4); /* garbage: every entry must be written */
    memset(fa, 0x7f, B * NH * T * T * 4);
    memset(io, 0x7f, B * T * C * 4);
    attention_forward_ref(ro, ra, qkv, lens, B, T, C, NH);
    attention_forward(fo, fa, qkv, lens, B, T, C, NH);
    char name[96];
    snprintf(name, sizeof name, "attention out B=%zu T=%zu C=%zu NH=%zu", B, T, C, NH);
    test_max_err(name, fo, ro, B * T * C, 2e-6, 1e-5);
    test_max_err("attention probs", fa, ra, B * NH * T * T, 1e-6, 1e-5);
    TEST_CHECK(attention_forward_infer(io, qkv, lens, B, T, C, NH) == 0, "attention_forward_infer");
    test_max_err("attention infer out", io, ro, B * T * C, 2e-6, 1e-5);
    free(qkv); free(ro); free(fo); free(io); free(ra); free(fa);
}

static void check_pool(void) {
    size_t B = 3, T = 5, C = 7, lens[3] = {5, 1, 3};
    float *x = randv(B * T * C, 1), out[3 * 7];
    pool_forward(out, x, lens, 0, B, T, C, ET_POOL_CLS);
    for (size_t b = 0; b < B; b++) TEST_CHECK(out[b * C + 2] == x[b * T * C + 2], "cls pooling");
    pool_forward(out, x, lens, 0, B, T, C, ET_POOL_LAST);
    for (size_t b = 0; b < B; b++)
        TEST_CHECK(out[b * C + 4] == x[(b * T + lens[b] - 1) * C + 4], "last pooling");
    pool_forward(out, x, lens, 0, B, T, C, ET_POOL_MEAN);
    for (size_t b = 0; b < B; b++) {
        double s = 0;
        for (size_t t = 0; t < lens[b]; t++) s += x[(b * T + t) * C + 6];
        TEST_CLOSE(out[b * C + 6], s / (double)lens[b], 1e-6, 1e-6);
    }
    pool_forward(out, x, lens, 0, B, T, C, ET_POOL_MAX);
    for (size_t b = 0; b < B; b++) {
        float m = -1e30f;
        for (size_t t = 0; t < lens[b]; t++) m = fmaxf(m, x[(b * T + t) * C + 1]);
        TEST_CHECK(out[b * C + 1] == m, "max pooling");
    }
    float v[6] = {3, 4, 0, 0, 0, 0}, n[2];
    l2norm_forward(v, n, v, 2, 3);
    TEST_CLOSE(v[0], 0.6, 1e-7, 0); TEST_CLOSE(v[1], 0.8, 1e-7, 0);
    TEST_CLOSE(n[0], 5, 1e-6, 0);
    TEST_CHECK(v[3] == 0 && v[4] == 0, "zero vector stays zero");
    free(x);
}

int main(void) {
    printf("avx2+fma: %d\n", kernels_have_avx2());
    size_t shapes[][3] = {{1, 1, 1}, {1, 7, 3}, {5, 13, 17}, {7, 33, 31}, {13, 64, 48},
                          {37, 100, 129}, {6, 16, 16}, {97, 385, 67}, {200, 17, 300}};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        check_matmul(shapes[i][0], shapes[i][1], shapes[i][2], 1);
        check_matmul(shapes[i][0], shapes[i][1], shapes[i][2], 0);
    }
    check_layernorm(1, 1);
    check_layernorm(3, 7);
    check_layernorm(17, 33);
    check_layernorm(300, 100); /* threaded */
    check_act(1);
    check_act(13);
    check_act(20001); /* threaded, tail */
    size_t l1[1] = {1}, l3[3] = {5, 1, 3}, l2[2] = {33, 20}, l4[4] = {70, 1, 69, 37};
    check_attention(1, 1, 8, 2, l1);
    check_attention(3, 5, 12, 3, l3);
    check_attention(2, 33, 40, 4, l2);
    check_attention(4, 70, 96, 6, l4);
    check_pool();
    return test_summary("test_kernels");
}
