/* threads.h - a persistent worker pool for compute kernels (ggml style).
 *
 * et_parallel(fn, ctx) runs fn(ctx, ith, nth) for ith = 0..nth-1, one call per
 * thread, the calling thread doing ith = 0, and returns when all are done.
 * Kernels split their rows by (ith, nth) so results do not depend on timing.
 * A call from inside a running task runs serially (nth = 1).
 */
#ifndef ET_THREADS_H
#define ET_THREADS_H

typedef void (*et_task_fn)(void *ctx, int ith, int nth);

void et_parallel(et_task_fn fn, void *ctx);
/* Same, with at most max_threads threads (>= 1). */
void et_parallel_n(et_task_fn fn, void *ctx, int max_threads);

/* Rows [*lo, *hi) of n for thread ith of nth (contiguous, balanced). */
static inline void et_split(long n, int ith, int nth, long *lo, long *hi) {
    long q = n / nth, r = n % nth;
    *lo = ith * q + (ith < r ? ith : r);
    *hi = *lo + q + (ith < r ? 1 : 0);
}

#endif
