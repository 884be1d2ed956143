/* threads.c - persistent worker pool; see threads.h. */
#include "threads.h"

#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "embtune.h"

#define ET_MAX_THREADS 256

static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;  /* one job at a time */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv_start = PTHREAD_COND_INITIALIZER;
static pthread_cond_t cv_done = PTHREAD_COND_INITIALIZER;
static int n_workers;          /* started worker threads (ith 1..n_workers) */
static unsigned long job_gen;  /* incremented per job */
static et_task_fn job_fn;
static void *job_ctx;
static int job_nth;
static int job_pending;
static int want_threads;       /* 0 = default */
static __thread int in_task;

void et_set_threads(int n) {
    pthread_mutex_lock(&pool_mu);
    want_threads = n < 0 ? 0 : (n > ET_MAX_THREADS ? ET_MAX_THREADS : n);
    pthread_mutex_unlock(&pool_mu);
}

int et_get_threads(void) {
    int n = want_threads;
    if (n <= 0) {
        const char *env = getenv("ET_THREADS");
        n = env ? atoi(env) : 0;
        if (n <= 0) {
            long c = sysconf(_SC_NPROCESSORS_ONLN);
            n = c > 0 ? (int)c : 1;
        }
    }
    return n > ET_MAX_THREADS ? ET_MAX_THREADS : n;
}

static void *worker(void *arg) {
    int ith = (int)(long)arg;
    unsigned long seen = 0;
    in_task = 1;
    for (;;) {
        pthread_mutex_lock(&mu);
        while (job_gen == seen) pthread_cond_wait(&cv_start, &mu);
        seen = job_gen;
        et_task_fn fn = job_fn;
        void *ctx = job_ctx;
        int nth = job_nth;
        pthread_mutex_unlock(&mu);
        if (ith < nth) fn(ctx, ith, nth);
        pthread_mutex_lock(&mu);
        if (--job_pending == 0) pthread_cond_signal(&cv_done);
        pthread_mutex_unlock(&mu);
    }
    return NULL;
}

void et_parallel_n(et_task_fn fn, void *ctx, int max_threads) {
    int nth = et_get_threads();
    if (max_threads >= 1 && nth > max_threads) nth = max_threads;
    if (nth <= 1 || in_task) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&pool_mu);
    while (n_workers < nth - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int ok = pthread_create(&t, &attr, worker, (void *)(long)(n_workers + 1)) == 0;
        pthread_attr_destroy(&attr);
        if (!ok) break;
        n_workers++;
    }
    if (nth > n_workers + 1) nth = n_workers + 1;
    pthread_mutex_lock(&mu);
    job_fn = fn;
    job_ctx = ctx;
    job_nth = nth;
    job_pending = n_workers;
    job_gen++;
    pthread_cond_broadcast(&cv_start);
    pthread_mutex_unlock(&mu);
    in_task = 1;
    fn(ctx, 0, nth);
    in_task = 0;
    pthread_mutex_lock(&mu);
    while (job_pending > 0) pthread_cond_wait(&cv_done, &mu);
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&pool_mu);
}

void et_parallel(et_task_fn fn, void *ctx) { et_parallel_n(fn, ctx, 0); }
