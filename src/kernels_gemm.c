/* kernels_gemm.c - blocked fp32 GEMM with fused epilogues; see kernels_gemm.h.
 *
 * AVX2/FMA code is compiled per function (target attributes) and chosen at
 * run time; without AVX2 (or with ET_KERNELS=ref) et_gemm runs the reference.
 */
#include "kernels_gemm.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "embtune.h"
#include "kernels_simd.h"
#include "threads.h"
#include "util.h"

#define MR 6
#define NR ET_GEMM_NR
#define MC 288    /* rows per block: 48 strips of 6 (A block <= 288 x 512 floats) */
#define KCMAX 512 /* K block */


/* ==== scratch ==================================================================== */

/* Per-thread packing buffers, grown on demand and kept: a fresh malloc of a
 * few hundred KB per call is an mmap, and its page faults cost ~7% of a
 * training step. SCRATCH_B holds et_gemm's packed B (read by all threads of
 * the call), SCRATCH_A et_gemm_packed's A strips. A buffer is valid until
 * the next request of the same slot on the same thread; a thread's buffers
 * are freed when it exits (pthread key destructor). */
enum { SCRATCH_A = 0, SCRATCH_B = 1 };

typedef struct {
    float *p[2];
    size_t cap[2];
} scratch_set;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;
static void scratch_free(void *v) {
    scratch_set *s = v;
    free(s->p[0]);
    free(s->p[1]);
    free(s);
}
static void scratch_init(void) { scratch_key_ok = pthread_key_create(&scratch_key, scratch_free) == 0; }

static float *scratch(int slot, size_t n) {
    pthread_once(&scratch_once, scratch_init);
    if (!scratch_key_ok) return NULL;
    scratch_set *s = pthread_getspecific(scratch_key);
    if (!s) {
        if (!(s = calloc(1, sizeof(*s)))) return NULL;
        if (pthread_setspecific(scratch_key, s)) {
            free(s);
            return NULL;
        }
    }
    if (s->cap[slot] < n) {
        void *p = NULL;
        if (n > SIZE_MAX / sizeof(float) || posix_memalign(&p, 64, n * sizeof(float))) return NULL;
        free(s->p[slot]);
        s->p[slot] = p;
        s->cap[slot] = n;
    }
    return s->p[slot];
}

/* ==== dispatch ==================================================================== */

static int g_fast = -1;

int et_gemm_fast(void) {
    if (g_fast < 0) {
        const char *e = getenv("ET_KERNELS");
        int fast = !(e && !strcmp(e, "ref"));
#if ET_X86
        __builtin_cpu_init();
        fast = fast && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
        fast = 0;
#endif
        g_fast = fast;
    }
    return g_fast;
}

static inline float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline float b_at(const void *b, size_t ldb, int nt, int type, size_t k, size_t n) {
    size_t i = nt ? n * ldb + k : k * ldb + n;
    return type == ET_GEMM_BF16 ? bf16_to_f32(((const uint16_t *)b)[i]) : ((const float *)b)[i];
}

static double act_ref(double x, int act) {
    switch (act) {
    case ET_GEMM_ACT_GELU: return 0.5 * x * (1.0 + erf(x * 0.70710678118654752440));
    case ET_GEMM_ACT_GELU_TANH:
        return 0.5 * x * (1.0 + tanh(0.79788456080286535588 * (x + 0.044715 * x * x * x)));
    case ET_GEMM_ACT_RELU: return x > 0 ? x : 0.0;
    default: return x;
    }
}

/* ==== reference ==================================================================== */

void et_gemm_ref(float *c, size_t ldc, const float *a, size_t lda, int a_trans, const void *b, size_t ldb,
                 int b_nt, int b_type, size_t M, size_t N, size_t K, const et_gemm_epi *epi) {
    static const et_gemm_epi none = {0};
    if (!epi) epi = &none;
    for (size_t m = 0; m < M; m++)
        for (size_t n = 0; n < N; n++) {
            double acc = 0;
            for (size_t k = 0; k < K; k++)
                acc += (double)(a_trans ? a[k * lda + m] : a[m * lda + k]) * b_at(b, ldb, b_nt, b_type, k, n);
            if (epi->accumulate) acc += c[m * ldc + n];
            if (epi->bias) acc += epi->bias[n];
            acc = act_ref(acc, epi->act);
            if (epi->res) acc += epi->res[m * epi->ldr + n];
            c[m * ldc + n] = (float)acc;
        }
}

/* ==== packing ====================================================================== */

size_t et_gemm_packed_floats(size_t K, size_t N) { return (N + NR - 1) / NR * NR * K; }

static void pack_scalar(float *dst, const void *b, size_t ldb, int nt, int type, size_t K, size_t n, size_t nc,
                        size_t k0, size_t k1) {
    for (size_t k = k0; k < k1; k++) {
        float *d = dst + k * NR;
        size_t j = 0;
        for (; j < nc; j++) d[j] = b_at(b, ldb, nt, type, k, n + j);
        for (; j < NR; j++) d[j] = 0.0f;
    }
}

#if ET_X86
ET_AVX2 static inline __m256 load8_bf16(const uint16_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

ET_AVX2 static inline __m256 load8(const void *b, int type, size_t i) {
    return type == ET_GEMM_BF16 ? load8_bf16((const uint16_t *)b + i) : _mm256_loadu_ps((const float *)b + i);
}

/* 8 rows of 8 -> 8 columns of 8, stored at d[i * NR] (i = 0..7). */
ET_AVX2 static inline void transpose8_store(float *d, __m256 r0, __m256 r1, __m256 r2, __m256 r3, __m256 r4,
                                            __m256 r5, __m256 r6, __m256 r7) {
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d + 0 * NR, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + 1 * NR, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * NR, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * NR, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * NR, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * NR, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * NR, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * NR, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* One panel: columns n .. n+nc-1 (nc <= 16) of op(B), all K rows. */
ET_AVX2 static void pack_panel_avx2(float *dst, const void *b, size_t ldb, int nt, int type, size_t K, size_t n,
                                    size_t nc) {
    if (nt) {
        /* rows n + 8h .. of the weight, 8 k at a time, transposed */
        size_t k8 = K / 8 * 8;
        for (size_t h = 0; h < 2; h++) {
            size_t r = n + 8 * h;
            if (8 * h + 8 > nc) { /* a partial half: scalar */
                for (size_t k = 0; k < K; k++)
                    for (size_t j = 8 * h; j < 8 * h + 8; j++)
                        dst[k * NR + j] = j < nc ? b_at(b, ldb, nt, type, k, n + j) : 0.0f;
                continue;
            }
            for (size_t k = 0; k < k8; k += 8)
                transpose8_store(dst + k * NR + 8 * h, load8(b, type, (r + 0) * ldb + k),
                                 load8(b, type, (r + 1) * ldb + k), load8(b, type, (r + 2) * ldb + k),
                                 load8(b, type, (r + 3) * ldb + k), load8(b, type, (r + 4) * ldb + k),
                                 load8(b, type, (r + 5) * ldb + k), load8(b, type, (r + 6) * ldb + k),
                                 load8(b, type, (r + 7) * ldb + k));
            for (size_t k = k8; k < K; k++)
                for (size_t j = 8 * h; j < 8 * h + 8; j++) dst[k * NR + j] = b_at(b, ldb, nt, type, k, n + j);
        }
        return;
    }
    if (nc < NR) {
        pack_scalar(dst, b, ldb, nt, type, K, n, nc, 0, K);
        return;
    }
    for (size_t k = 0; k < K; k++) {
        _mm256_storeu_ps(dst + k * NR, load8(b, type, k * ldb + n));
        _mm256_storeu_ps(dst + k * NR + 8, load8(b, type, k * ldb + n + 8));
    }
}
#endif

void et_gemm_pack_b(float *dst, const void *b, size_t ldb, int b_nt, int b_type, size_t K, size_t n0, size_t n1) {
    for (size_t n = n0; n < n1; n += NR) {
        size_t nc = ET_MIN((size_t)NR, n1 - n);
        float *d = dst + (n - n0) / NR * K * NR;
#if ET_X86
        if (et_gemm_fast()) {
            pack_panel_avx2(d, b, ldb, b_nt, b_type, K, n, nc);
            continue;
        }
#endif
        pack_scalar(d, b, ldb, b_nt, b_type, K, n, nc, 0, K);
    }
}

/* ==== micro-kernel and epilogue ========================================================= */

#if ET_X86
/* Epilogue of the last K block, applied in registers: act, then + res. */
typedef struct {
    int act;
    const float *res; /* [6, 16] row stride ldr, or NULL */
    size_t ldr;
} ukr_epi;

ET_AVX2 static inline __m256 epi8(__m256 v, const ukr_epi *e, size_t row, size_t col) {
    if (e->act == ET_GEMM_ACT_GELU) v = et_gelu8(v);
    else if (e->act == ET_GEMM_ACT_GELU_TANH) v = et_gelu_tanh8(v);
    else if (e->act == ET_GEMM_ACT_RELU) v = _mm256_max_ps(v, _mm256_setzero_ps());
    if (e->res) v = _mm256_add_ps(v, _mm256_loadu_ps(e->res + row * e->ldr + col));
    return v;
}

/* c[6 x 16] (row stride ldc) = (load ? c : 0) + bias + A[6 x kc] bp[kc x 16],
 * then the epilogue e (NULL: none): ap is a packed strip [kc][6], bp a
 * packed panel block [kc][16], bias [16] or NULL. Edge tiles go through
 * 6 x 16 buffers (the caller's), so the loop has no conditions. Unrolled by 4: 85% of the FMA peak on Zen 3
 * (the same loop over unpacked rows of A reached 60%). */
ET_AVX2 static void ukr_6x16(float *c, size_t ldc, const float *ap, const float *bp, size_t kc, int load,
                             const float *bias, const ukr_epi *e) {
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (!load) /* the tile's lines, for the stores at the end (they would miss) */
        for (int r = 0; r < MR; r++) {
            _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
            _mm_prefetch((const char *)(c + r * ldc + 15), _MM_HINT_T0);
        }
    if (load) {
        c00 = _mm256_loadu_ps(c), c01 = _mm256_loadu_ps(c + 8);
        c10 = _mm256_loadu_ps(c + ldc), c11 = _mm256_loadu_ps(c + ldc + 8);
        c20 = _mm256_loadu_ps(c + 2 * ldc), c21 = _mm256_loadu_ps(c + 2 * ldc + 8);
        c30 = _mm256_loadu_ps(c + 3 * ldc), c31 = _mm256_loadu_ps(c + 3 * ldc + 8);
        c40 = _mm256_loadu_ps(c + 4 * ldc), c41 = _mm256_loadu_ps(c + 4 * ldc + 8);
        c50 = _mm256_loadu_ps(c + 5 * ldc), c51 = _mm256_loadu_ps(c + 5 * ldc + 8);
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 = _mm256_setzero_ps();
    }
    if (bias) {
        __m256 b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
        c00 = _mm256_add_ps(c00, b0), c01 = _mm256_add_ps(c01, b1), c10 = _mm256_add_ps(c10, b0);
        c11 = _mm256_add_ps(c11, b1), c20 = _mm256_add_ps(c20, b0), c21 = _mm256_add_ps(c21, b1);
        c30 = _mm256_add_ps(c30, b0), c31 = _mm256_add_ps(c31, b1), c40 = _mm256_add_ps(c40, b0);
        c41 = _mm256_add_ps(c41, b1), c50 = _mm256_add_ps(c50, b0), c51 = _mm256_add_ps(c51, b1);
    }
    /* One k step: 2 loads of B, 6 broadcasts of A, 12 FMAs. The unrolled
     * loop is written as assembly so that the compiler cannot interleave
     * steps (GCC then runs out of ymm registers and spills accumulators,
     * which cost a third of the speed); the accumulators stay C variables
     * ("+x"), and so does the remainder loop. */
#define ET_UKR_STEP(o)                                                                              \
    "vmovups " #o "*64(%[b]), %[b0]\n\t"                                                            \
    "vmovups " #o "*64+32(%[b]), %[b1]\n\t"                                                         \
    "vbroadcastss " #o "*24(%[a]), %[x]\n\t"                                                        \
    "vfmadd231ps %[b0], %[x], %[c00]\n\t"                                                           \
    "vfmadd231ps %[b1], %[x], %[c01]\n\t"                                                           \
    "vbroadcastss " #o "*24+4(%[a]), %[x]\n\t"                                                      \
    "vfmadd231ps %[b0], %[x], %[c10]\n\t"                                                           \
    "vfmadd231ps %[b1], %[x], %[c11]\n\t"                                                           \
    "vbroadcastss " #o "*24+8(%[a]), %[x]\n\t"                                                      \
    "vfmadd231ps %[b0], %[x], %[c20]\n\t"                                                           \
    "vfmadd231ps %[b1], %[x], %[c21]\n\t"                                                           \
    "vbroadcastss " #o "*24+12(%[a]), %[x]\n\t"                                                     \
    "vfmadd231ps %[b0], %[x], %[c30]\n\t"                                                           \
    "vfmadd231ps %[b1], %[x], %[c31]\n\t"                                                           \
    "vbroadcastss " #o "*24+16(%[a]), %[x]\n\t"                                                     \
    "vfmadd231ps %[b0], %[x], %[c40]\n\t"                                                           \
    "vfmadd231ps %[b1], %[x], %[c41]\n\t"                                                           \
    "vbroadcastss " #o "*24+20(%[a]), %[x]\n\t"                                                     \
    "vfmadd231ps %[b0], %[x], %[c50]\n\t"                                                           \
    "vfmadd231ps %[b1], %[x], %[c51]\n\t"
    size_t k = 0;
    for (; k + 4 <= kc; k += 4, bp += 4 * NR, ap += 4 * MR) {
        __m256 b0, b1, x;
        __asm__(ET_UKR_STEP(0) ET_UKR_STEP(1) ET_UKR_STEP(2) ET_UKR_STEP(3)
                : [c00] "+x"(c00), [c01] "+x"(c01), [c10] "+x"(c10), [c11] "+x"(c11), [c20] "+x"(c20),
                  [c21] "+x"(c21), [c30] "+x"(c30), [c31] "+x"(c31), [c40] "+x"(c40), [c41] "+x"(c41),
                  [c50] "+x"(c50), [c51] "+x"(c51), [b0] "=&x"(b0), [b1] "=&x"(b1), [x] "=&x"(x)
                : [a] "r"(ap), [b] "r"(bp)
                : "memory");
    }
    for (; k < kc; k++, bp += NR, ap += MR) {
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8), x;
        x = _mm256_broadcast_ss(ap + 0), c00 = _mm256_fmadd_ps(x, b0, c00), c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(ap + 1), c10 = _mm256_fmadd_ps(x, b0, c10), c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(ap + 2), c20 = _mm256_fmadd_ps(x, b0, c20), c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(ap + 3), c30 = _mm256_fmadd_ps(x, b0, c30), c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(ap + 4), c40 = _mm256_fmadd_ps(x, b0, c40), c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(ap + 5), c50 = _mm256_fmadd_ps(x, b0, c50), c51 = _mm256_fmadd_ps(x, b1, c51);
    }
#undef ET_UKR_STEP
    if (e) { /* last K block: activation, then the residual, in registers */
        c00 = epi8(c00, e, 0, 0), c01 = epi8(c01, e, 0, 8), c10 = epi8(c10, e, 1, 0), c11 = epi8(c11, e, 1, 8);
        c20 = epi8(c20, e, 2, 0), c21 = epi8(c21, e, 2, 8), c30 = epi8(c30, e, 3, 0), c31 = epi8(c31, e, 3, 8);
        c40 = epi8(c40, e, 4, 0), c41 = epi8(c41, e, 4, 8), c50 = epi8(c50, e, 5, 0), c51 = epi8(c51, e, 5, 8);
    }
    _mm256_storeu_ps(c, c00), _mm256_storeu_ps(c + 8, c01);
    _mm256_storeu_ps(c + ldc, c10), _mm256_storeu_ps(c + ldc + 8, c11);
    _mm256_storeu_ps(c + 2 * ldc, c20), _mm256_storeu_ps(c + 2 * ldc + 8, c21);
    _mm256_storeu_ps(c + 3 * ldc, c30), _mm256_storeu_ps(c + 3 * ldc + 8, c31);
    _mm256_storeu_ps(c + 4 * ldc, c40), _mm256_storeu_ps(c + 4 * ldc + 8, c41);
    _mm256_storeu_ps(c + 5 * ldc, c50), _mm256_storeu_ps(c + 5 * ldc + 8, c51);
}

/* Packs rows [0, mc) x columns [0, kc) of A (A(i, k) = a[i * sm + k * sk])
 * into strips dst [ceil(mc / 6)][kc][6], zero-padding the last strip.
 * Row-major A: 8 k of 6 rows (+ 2 dummy) are transposed at a time and
 * stored as 8-float vectors that overlap the next slot (written in order;
 * the buffer has 2 floats of slack). */
ET_AVX2 static void pack_a_avx2(float *dst, const float *a, size_t sm, size_t sk, size_t mc, size_t kc) {
    for (size_t i = 0; i < mc; i += MR, dst += kc * MR) {
        size_t mr = ET_MIN((size_t)MR, mc - i);
        const float *r = a + i * sm;
        if (mr == MR && sk == 1) {
            size_t k = 0;
            for (; k + 8 <= kc; k += 8) {
                __m256 v0 = _mm256_loadu_ps(r + k), v1 = _mm256_loadu_ps(r + sm + k),
                       v2 = _mm256_loadu_ps(r + 2 * sm + k), v3 = _mm256_loadu_ps(r + 3 * sm + k),
                       v4 = _mm256_loadu_ps(r + 4 * sm + k), v5 = _mm256_loadu_ps(r + 5 * sm + k), z = v5;
                __m256 t0 = _mm256_unpacklo_ps(v0, v1), t1 = _mm256_unpackhi_ps(v0, v1);
                __m256 t2 = _mm256_unpacklo_ps(v2, v3), t3 = _mm256_unpackhi_ps(v2, v3);
                __m256 t4 = _mm256_unpacklo_ps(v4, v5), t5 = _mm256_unpackhi_ps(v4, v5);
                __m256 t6 = _mm256_unpacklo_ps(z, z), t7 = _mm256_unpackhi_ps(z, z);
                __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
                __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
                __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
                __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
                float *d = dst + k * MR;
                _mm256_storeu_ps(d + 0 * MR, _mm256_permute2f128_ps(u0, u4, 0x20));
                _mm256_storeu_ps(d + 1 * MR, _mm256_permute2f128_ps(u1, u5, 0x20));
                _mm256_storeu_ps(d + 2 * MR, _mm256_permute2f128_ps(u2, u6, 0x20));
                _mm256_storeu_ps(d + 3 * MR, _mm256_permute2f128_ps(u3, u7, 0x20));
                _mm256_storeu_ps(d + 4 * MR, _mm256_permute2f128_ps(u0, u4, 0x31));
                _mm256_storeu_ps(d + 5 * MR, _mm256_permute2f128_ps(u1, u5, 0x31));
                _mm256_storeu_ps(d + 6 * MR, _mm256_permute2f128_ps(u2, u6, 0x31));
                _mm256_storeu_ps(d + 7 * MR, _mm256_permute2f128_ps(u3, u7, 0x31));
            }
            for (; k < kc; k++)
                for (size_t j = 0; j < MR; j++) dst[k * MR + j] = r[j * sm + k];
        } else if (mr == MR && sm == 1) { /* A^T: the 6 values of a k are contiguous */
            for (size_t k = 0; k < kc; k++) memcpy(dst + k * MR, r + k * sk, MR * sizeof(float));
        } else {
            for (size_t k = 0; k < kc; k++)
                for (size_t j = 0; j < MR; j++) dst[k * MR + j] = j < mr ? r[j * sm + k * sk] : 0.0f;
        }
    }
}

/* Epilogue on a finished tile c[mr x nc]: + bias, activation, + res. */
ET_AVX2 static void epi_tile_avx2(float *c, size_t ldc, size_t mr, size_t nc, const float *bias, const float *res,
                                  size_t ldr, int act) {
    for (size_t i = 0; i < mr; i++) {
        float *r = c + i * ldc;
        const float *rr = res ? res + i * ldr : NULL;
        size_t j = 0;
        for (; j + 8 <= nc; j += 8) {
            __m256 v = _mm256_loadu_ps(r + j);
            if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + j));
            if (act == ET_GEMM_ACT_GELU) v = et_gelu8(v);
            else if (act == ET_GEMM_ACT_GELU_TANH) v = et_gelu_tanh8(v);
            else if (act == ET_GEMM_ACT_RELU) v = _mm256_max_ps(v, _mm256_setzero_ps());
            if (rr) v = _mm256_add_ps(v, _mm256_loadu_ps(rr + j));
            _mm256_storeu_ps(r + j, v);
        }
        for (; j < nc; j++) {
            float v = r[j] + (bias ? bias[j] : 0.0f);
            if (act == ET_GEMM_ACT_GELU) v = et_gelu1(v);
            else if (act == ET_GEMM_ACT_GELU_TANH) v = et_gelu_tanh1(v);
            else if (act == ET_GEMM_ACT_RELU) v = v > 0 ? v : 0.0f;
            if (rr) v += rr[j];
            r[j] = v;
        }
    }
}
#endif

/* K blocking: nkb blocks of kcb (the last one shorter), kcb <= KCMAX. */
static void k_blocks(size_t K, size_t *nkb, size_t *kcb) {

    *nkb = (K + KCMAX - 1) / KCMAX;
    *kcb = *nkb ? (K + *nkb - 1) / *nkb : 0;
}

void et_gemm_packed(float *c, size_t ldc, const float *a, size_t lda, int a_trans, const float *bp, size_t M,
                    size_t n0, size_t n1, size_t K, const et_gemm_epi *epi) {
    static const et_gemm_epi none = {0};
    if (!epi) epi = &none;
    size_t sm = a_trans ? 1 : lda, sk = a_trans ? lda : 1, nkb, kcb;
    k_blocks(K, &nkb, &kcb);
    int has_epi = epi->bias || epi->res || epi->act != ET_GEMM_ACT_NONE;
#if ET_X86
    if (et_gemm_fast()) {
        float tmp[MR * NR], bias16[NR] = {0}, res16[MR * NR] = {0};
        int has_act_res = epi->res || epi->act != ET_GEMM_ACT_NONE;
        size_t arows = ET_MIN((size_t)MC, (M + MR - 1) / MR * MR); /* small M: a small buffer (no mmap) */
        float *abuf = scratch(SCRATCH_A, arows * (kcb ? kcb : 1) + 8);
        if (!abuf) { /* tiny; fall back to the portable loops below */
            goto portable;
        }
        for (size_t i0 = 0; i0 < M; i0 += MC) {
            size_t mc = ET_MIN((size_t)MC, M - i0);
            if (nkb == 0 && !epi->accumulate) /* K = 0: the product is zero */
                for (size_t i = i0; i < i0 + mc; i++) memset(c + i * ldc + n0, 0, (n1 - n0) * sizeof(float));
            for (size_t kb = 0; kb < nkb; kb++) {
                size_t k0 = kb * kcb, kc = ET_MIN(kcb, K - k0);
                int load = kb > 0 || epi->accumulate;
                pack_a_avx2(abuf, a + i0 * sm + k0 * sk, sm, sk, mc, kc);
                for (size_t n = n0; n < n1; n += NR) {
                    size_t nc = ET_MIN((size_t)NR, n1 - n);
                    const float *bpp = bp + (n - n0) / NR * K * NR + k0 * NR;
                    for (size_t i = i0; i < i0 + mc; i += MR) {
                        size_t mr = ET_MIN((size_t)MR, i0 + mc - i);
                        const float *ap = abuf + (i - i0) * kc;
                        float *cp = c + i * ldc + n;
                        int last = kb + 1 == nkb;
                        const float *bias = kb == 0 && epi->bias ? epi->bias + n : NULL;
                        const float *res = last && epi->res ? epi->res + i * epi->ldr + n : NULL;
                        ukr_epi ue = {epi->act, res, epi->ldr};
                        if (load && i + MR < i0 + mc) /* the next tile of this panel: its loads would miss */
                            for (size_t r = 0; r < MR && i + MR + r < i0 + mc; r++) {
                                _mm_prefetch((const char *)(cp + (MR + r) * ldc), _MM_HINT_T0);
                                _mm_prefetch((const char *)(cp + (MR + r) * ldc + 15), _MM_HINT_T0);
                            }
                        if (nc == NR && mr == MR) {
                            ukr_6x16(cp, ldc, ap, bpp, kc, load, bias, last && has_act_res ? &ue : NULL);
                            continue;
                        }
                        /* edge tile: through 6 x 16 copies of c, bias and res */
                        if (load)
                            for (size_t r = 0; r < mr; r++) memcpy(tmp + r * NR, cp + r * ldc, nc * sizeof(float));
                        if (bias) memcpy(bias16, bias, nc * sizeof(float));
                        if (res) {
                            for (size_t r = 0; r < mr; r++) memcpy(res16 + r * NR, res + r * epi->ldr, nc * sizeof(float));
                            ue.res = res16, ue.ldr = NR;
                        }
                        ukr_6x16(tmp, NR, ap, bpp, kc, load, bias ? bias16 : NULL, last && has_act_res ? &ue : NULL);
                        for (size_t r = 0; r < mr; r++) memcpy(cp + r * ldc, tmp + r * NR, nc * sizeof(float));
                    }
                }
            }
            if (nkb == 0 && has_epi)
                for (size_t n = n0; n < n1; n += NR)
                    epi_tile_avx2(c + i0 * ldc + n, ldc, mc, ET_MIN((size_t)NR, n1 - n),
                                  epi->bias ? epi->bias + n : NULL, epi->res ? epi->res + i0 * epi->ldr + n : NULL,
                                  epi->ldr, epi->act);
        }
        return;
    }
portable:
#endif
    /* portable: plain float loops over the packed panels */
    for (size_t m = 0; m < M; m++)
        for (size_t n = n0; n < n1; n++) {
            const float *col = bp + (n - n0) / NR * K * NR + (n - n0) % NR;
            float acc = epi->accumulate ? c[m * ldc + n] : 0.0f;
            for (size_t k = 0; k < K; k++) acc += a[m * sm + k * sk] * col[k * NR];
            if (epi->bias) acc += epi->bias[n];
            if (epi->act == ET_GEMM_ACT_GELU) acc = et_gelu1(acc);
            else if (epi->act == ET_GEMM_ACT_GELU_TANH) acc = et_gelu_tanh1(acc);
            else if (epi->act == ET_GEMM_ACT_RELU) acc = acc > 0 ? acc : 0.0f;
            if (epi->res) acc += epi->res[m * epi->ldr + n];
            c[m * ldc + n] = acc;
        }
}

/* ==== threaded driver ====================================================================== */

typedef struct {
    float *c;
    size_t ldc;
    const float *a;
    size_t lda;
    int a_trans;
    const void *b;
    size_t ldb;
    int b_nt, b_type;
    size_t M, N, K, npanels;
    const et_gemm_epi *epi;
    float *bp;
} gemm_task;

static void gemm_pack_run(void *ctx, int ith, int nth) {
    gemm_task *t = ctx;
    long lo, hi;
    et_split((long)t->npanels, ith, nth, &lo, &hi);
    if (lo >= hi) return;
    size_t n0 = (size_t)lo * NR, n1 = ET_MIN((size_t)hi * NR, t->N);
    et_gemm_pack_b(t->bp + n0 * t->K, t->b, t->ldb, t->b_nt, t->b_type, t->K, n0, n1);
}

/* Rows split evenly among the threads (in strips of 6) when there are at
 * least 2 strips per thread; else the panels are split and every thread
 * computes all rows of its columns. */
static void gemm_compute_run(void *ctx, int ith, int nth) {
    gemm_task *t = ctx;
    size_t sm = t->a_trans ? 1 : t->lda, nstrips = (t->M + MR - 1) / MR;
    long lo, hi, plo = 0, phi = (long)t->npanels;
    size_t r0 = 0, r1 = t->M;
    if (nstrips >= 2 * (size_t)nth || t->npanels < (size_t)nth) {
        et_split((long)nstrips, ith, nth, &lo, &hi);
        r0 = (size_t)lo * MR, r1 = ET_MIN((size_t)hi * MR, t->M);
    } else {
        et_split((long)t->npanels, ith, nth, &plo, &phi);
    }
    if (r0 >= r1 || plo >= phi) return;
    size_t n0 = (size_t)plo * NR, n1 = ET_MIN((size_t)phi * NR, t->N);
    et_gemm_epi e = t->epi ? *t->epi : (et_gemm_epi){0};
    if (e.res) e.res += r0 * e.ldr;
    et_gemm_packed(t->c + r0 * t->ldc, t->ldc, t->a + r0 * sm, t->lda, t->a_trans, t->bp + n0 * t->K, r1 - r0, n0,
                   n1, t->K, &e);
}

int et_gemm(float *c, size_t ldc, const float *a, size_t lda, int a_trans, const void *b, size_t ldb, int b_nt,
            int b_type, size_t M, size_t N, size_t K, const et_gemm_epi *epi) {
    if (M == 0 || N == 0) return ET_OK;
    if (!et_gemm_fast()) {
        et_gemm_ref(c, ldc, a, lda, a_trans, b, ldb, b_nt, b_type, M, N, K, epi);
        return ET_OK;
    }
    size_t npanels = (N + NR - 1) / NR, nfl;
    if (!et_size_mul(npanels * NR, K, &nfl)) return ET_ENOMEM;
    float *bp = nfl ? scratch(SCRATCH_B, nfl) : NULL;
    if (nfl && !bp) return ET_ENOMEM;
    gemm_task t = {c, ldc, a, lda, a_trans, b, ldb, b_nt, b_type, M, N, K, npanels, epi, bp};
    double work = (double)M * N * K;
    if (work < 262144.0) { /* under ~0.1 ms of work: threads cost more than they save */
        gemm_pack_run(&t, 0, 1);
        gemm_compute_run(&t, 0, 1);
    } else {
        if (nfl) et_parallel(gemm_pack_run, &t);
        et_parallel(gemm_compute_run, &t);
    }
    return ET_OK;
}
