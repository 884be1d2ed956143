/* kernels_simd.h - INTERNAL: AVX2+FMA vector math shared by the kernels
 * (static inline, compiled per function with target attributes; callers
 * check the CPU at run time before using any of it).
 *
 *   et_exp8(x)        exp, Cephes-style: x = n ln2 + r, degree-6 polynomial,
 *                     max rel error ~2 ulp; x < -87.3 flushes to 0
 *   et_erf8(x)        erf via Numerical Recipes' erfc (rel err < 1.2e-7)
 *   et_gelu8(x)       x/2 (1 + erf(x / sqrt 2))
 *   et_gelu_tanh8(x)  x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *   et_hsum8(v)       horizontal sum
 */
#ifndef ET_KERNELS_SIMD_H
#define ET_KERNELS_SIMD_H

#include <math.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ET_X86 1
#define ET_AVX2 __attribute__((target("avx2,fma")))

ET_AVX2 static inline __m256 et_exp8(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 z = _mm256_mul_ps(x, x);
    __m256 y = _mm256_set1_ps(1.9875691500E-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073E-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894E-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459E-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201E-1f));
    y = _mm256_fmadd_ps(y, z, x);
    y = _mm256_add_ps(y, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, y);
}

/* erf(x) = 1 - t exp(-x^2 + P(t)), t = 1 / (1 + |x| / 2), sign restored. */
ET_AVX2 static inline __m256 et_erf8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    __m256 sx = _mm256_and_ps(x, sign);
    __m256 z = _mm256_andnot_ps(sign, x);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, one));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    __m256 erfc = _mm256_mul_ps(t, et_exp8(_mm256_sub_ps(p, _mm256_mul_ps(z, z))));
    return _mm256_or_ps(_mm256_sub_ps(one, erfc), sx);
}

ET_AVX2 static inline __m256 et_gelu8(__m256 x) {
    __m256 e = et_erf8(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

/* tanh(u) = 1 - 2 / (exp(2u) + 1), u clamped to [-20, 20] */
ET_AVX2 static inline __m256 et_gelu_tanh8(__m256 x) {
    const __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.79788456080286535588f),
                             _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), x), _mm256_mul_ps(x, x), x));
    u = _mm256_min_ps(_mm256_max_ps(u, _mm256_set1_ps(-20.0f)), _mm256_set1_ps(20.0f));
    __m256 th = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(et_exp8(_mm256_mul_ps(two, u)), one)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(one, th));
}

ET_AVX2 static inline float et_hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#else
#define ET_X86 0
#endif

/* Scalar versions (tails, non-x86). */
static inline float et_gelu1(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
static inline float et_gelu_tanh1(float x) {
    return 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}

#endif
