/* bench_infer.c - embtune inference speed for `make bench`: the embeddings of
 * already tokenized sequences (et_embed_ids, the path `embtune embed --ids`
 * takes), timed without model loading.
 *
 *   bench_infer MODEL_DIR IDS_TXT OUT_F32 BATCH N BUDGET_S
 *
 * IDS_TXT: one sequence per line, space-separated token ids (special tokens
 * included). One warm-up batch of 2 sequences, then batches of BATCH until N
 * sequences are done or BUDGET_S seconds have passed (at least one batch).
 * Writes the embeddings of the sequences done to OUT_F32 (raw float32
 * [done, dim], row i = line i) and prints one JSON line: sequences, seconds,
 * seq_per_s, load_s, cpu_seconds (process CPU time of the timed part), threads,
 * peak_rss_kb. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "embtune.h"
#include "util.h"

static int read_ids(const char *path, size_t want, int32_t ***ids_out, size_t **lens_out, size_t *n_out) {
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    int32_t **ids = calloc(want, sizeof *ids);
    size_t *lens = calloc(want, sizeof *lens), n = 0, cap = 0;
    char *line = NULL;
    while (n < want && getline(&line, &cap, f) > 0) {
        size_t k = 0, kcap = 64;
        int32_t *row = malloc(kcap * sizeof *row);
        for (char *p = line, *end; ; p = end) {
            long v = strtol(p, &end, 10);
            if (end == p) break;
            if (k == kcap) row = realloc(row, (kcap *= 2) * sizeof *row);
            row[k++] = (int32_t)v;
        }
        ids[n] = row, lens[n] = k, n++;
    }
    free(line);
    fclose(f);
    *ids_out = ids, *lens_out = lens, *n_out = n;
    return n == 0;
}

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: bench_infer MODEL_DIR IDS_TXT OUT_F32 BATCH N BUDGET_S\n");
        return 2;
    }
    size_t bs = (size_t)atol(argv[4]), want = (size_t)atol(argv[5]);
    double budget = atof(argv[6]);
    if (bs == 0 || want == 0) return 2;
    int32_t **ids;
    size_t *lens, n;
    if (read_ids(argv[2], want, &ids, &lens, &n)) {
        fprintf(stderr, "bench_infer: cannot read ids from %s\n", argv[2]);
        return 1;
    }
    et_error err = {0};
    et_model *m = NULL;
    et_model_opts mo = {.quiet = 1};
    double t0 = et_now();
    if (et_model_load(&m, argv[1], &mo, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double load_s = et_now() - t0;
    et_model_set_batch_size(m, bs);
    size_t dim = et_model_dim(m);
    float *out = malloc(n * dim * sizeof(float));
    if (!out) return 1;
    if (et_embed_ids(m, (const int32_t *const *)ids, lens, n < 2 ? n : 2, out, &err)) { /* warm-up */
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    size_t done = 0;
    double c0 = cpu_now();
    t0 = et_now();
    while (done < n) {
        size_t k = n - done < bs ? n - done : bs;
        if (et_embed_ids(m, (const int32_t *const *)ids + done, lens + done, k, out + done * dim, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        done += k;
        if (et_now() - t0 > budget) break;
    }
    double dt = et_now() - t0, cpu = cpu_now() - c0;
    FILE *f = fopen(argv[3], "wb");
    if (!f || fwrite(out, sizeof(float), done * dim, f) != done * dim || fclose(f)) {
        fprintf(stderr, "bench_infer: cannot write %s\n", argv[3]);
        return 1;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("{\"impl\": \"embtune\", \"sequences\": %zu, \"seconds\": %.4f, \"seq_per_s\": %.3f, \"load_s\": %.3f, "
           "\"cpu_seconds\": %.3f, \"threads\": %d, \"dim\": %zu, \"peak_rss_kb\": %ld}\n",
           done, dt, (double)done / dt, load_s, cpu, et_get_threads(), dim, ru.ru_maxrss);
    et_model_free(m);
    for (size_t i = 0; i < n; i++) free(ids[i]);
    free(ids), free(lens), free(out);
    return 0;
}
