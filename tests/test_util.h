/* test_util.h - tiny test harness: checks count failures, main returns non-zero.
 *
 *   TEST_CHECK(cond, "fmt", ...)      records a failure with file:line
 *   TEST_CLOSE(a, b, atol, rtol)      |a-b| <= atol + rtol*|b|
 *   test_max_err(a, b, n, ...)        max abs error of two float arrays, printed
 *   return test_summary("name");      prints PASS/FAIL and returns the exit code
 */
#ifndef ET_TEST_UTIL_H
#define ET_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;
static int test_checks;

#define TEST_CHECK(cond, ...)                                          \
    do {                                                               \
        test_checks++;                                                 \
        if (!(cond)) {                                                 \
            test_failures++;                                           \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);       \
            fprintf(stderr, __VA_ARGS__);                              \
            fputc('\n', stderr);                                       \
        }                                                              \
    } while (0)

#define TEST_CLOSE(a, b, atol, rtol)                                                         \
    TEST_CHECK(fabs((double)(a) - (double)(b)) <= (atol) + (rtol) * fabs((double)(b)),      \
               "%s = %.9g, expected %s = %.9g (atol %g, rtol %g)", #a, (double)(a), #b,      \
               (double)(b), (double)(atol), (double)(rtol))

/* Max |a-b| over n floats; also checks it against atol + rtol*|b| elementwise
 * and prints "name: max abs err X (n values)". Returns the max error. */
static inline double test_max_err(const char *name, const float *a, const float *b, size_t n,
                                  double atol, double rtol) {
    double mx = 0;
    size_t bad = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= atol + rtol * fabs((double)b[i]))) bad++;
        if (d > mx || d != d) { mx = d; worst = i; }
    }
    test_checks++;
    printf("%s: max abs err %.3g over %zu values\n", name, mx, n);
    if (bad) {
        test_failures++;
        fprintf(stderr, "FAIL %s: %zu of %zu values outside atol %g rtol %g (worst [%zu] %g vs %g)\n",
                name, bad, n, atol, rtol, worst, (double)a[worst], (double)b[worst]);
    }
    return mx;
}

static inline int test_summary(const char *name) {
    if (test_failures) {
        fprintf(stderr, "%s: FAILED %d of %d checks\n", name, test_failures, test_checks);
        return 1;
    }
    printf("%s: ok (%d checks)\n", name, test_checks);
    return 0;
}

#endif
