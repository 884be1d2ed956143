/* fuzz_check.h - check(cond): a harness invariant; a violation names the
 * harness line on stderr and aborts, so libFuzzer keeps the input. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H
#include <stdio.h>
#include <stdlib.h>

static inline void fuzz_check_at(int cond, const char *file, int line) {
    if (!cond) {
        fprintf(stderr, "%s:%d: invariant violated\n", file, line);
        abort();
    }
}
#define check(c) fuzz_check_at((c), __FILE__, __LINE__)
#endif
