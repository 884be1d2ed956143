/* cli_eval.c - `embtune eval`: base vs fine-tuned vs BM25 on a retrieval
 * dataset; the table on stdout, metrics/ranks/report files in -o DIR. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bm25.h"
#include "cli.h"
#include "dataset.h"
#include "eval.h"
#include "eval_model.h"
#include "report.h"

static const char *usage_text =
    "usage: embtune eval -d DATASET [-m MODEL ...] [--adapter DIR ...] [--bm25] [options]\n"
    "\n"
    "Ranks the dataset's corpus for each of its queries with every system given and\n"
    "prints accuracy@k (hit rate), MRR@10, NDCG@10, MAP@100 and recall, one row per\n"
    "system; with -o also writes metrics.json, ranks.jsonl, report.md and report.html.\n"
    "\n"
    "  -d, --dataset PATH     llama-index dataset JSON, or a BEIR folder (corpus.jsonl,\n"
    "                         queries.jsonl, qrels/test.tsv); also pairs / FlagEmbedding JSONL\n"
    "      --split NAME       BEIR qrels split (default: test, then dev, then train)\n"
    "  -m, --model MODEL      a model directory or Hub id org/name[@rev] (repeatable); the\n"
    "                         first is the baseline\n"
    "      --adapter DIR      an adapter trained on a model's embeddings (repeatable);\n"
    "                         evaluated on top of the model named in its config, else the first -m\n"
    "      --bm25             add the BM25 baseline (Okapi, k1 1.2, b 0.75)\n"
    "      --bm25-k1 X, --bm25-b X, --bm25-no-stopwords\n"
    "  -k LIST                cut-offs for accuracy/precision/recall (default 1,3,5,10; at most 8)\n"
    "  -o, --output DIR       report directory\n"
    "      --prompt-name NAME prompt of the model's config for queries (default: \"query\" if the\n"
    "                         model defines it; \"none\" = no prompt)\n"
    "      --prompt TEXT      literal text prepended to every query (overrides --prompt-name)\n"
    "      --cache FILE       embedding cache (default ~/.cache/embtune/embeddings.sqlite,\n"
    "                         shared with `embtune finetune`)\n"
    "      --no-cache         do not read or write the embedding cache\n"
    "      --batch-size N     embedding batch size (default 32)\n"
    "      --max-length N     truncate texts to N tokens (default: the model's)\n"
    "  -t, --threads N        compute threads (default: all cores)\n"
    "  -q, --quiet            no progress or notices on stderr\n";

#define MAX_SYS 32

static int parse_ks(const char *s, size_t *ks, size_t *n_k) {
    size_t n = 0;
    const char *p = s;
    while (*p) {
        char tmp[32];
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (!len || len >= sizeof tmp || n == ET_IR_MAX_K) return -1;
        memcpy(tmp, p, len);
        tmp[len] = 0;
        long v;
        if (et_parse_long(tmp, 1, 100000, &v)) return -1;
        ks[n++] = (size_t)v;
        p += len + (c ? 1 : 0);
        if (c && !*p) return -1;
    }
    if (!n) return -1;
    /* sort ascending, drop duplicates */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && ks[j] < ks[j - 1]; j--) {
            size_t t = ks[j]; ks[j] = ks[j - 1]; ks[j - 1] = t;
        }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!m || ks[m - 1] != ks[i]) ks[m++] = ks[i];
    *n_k = m;
    return 0;
}

/* Row label: the directory's last component, or the whole path if two
 * systems would share it. */
static const char *base_name(const char *path) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *s = path + n;
    while (s > path && s[-1] != '/') s--;
    return s;
}

int cli_eval(int argc, char **argv) {
    const char *cmd = "eval";
    const char *dataset = NULL, *split = NULL, *outdir = NULL;
    const char *models[MAX_SYS], *adapters[MAX_SYS];
    size_t n_models = 0, n_adapters = 0;
    int bm25 = 0;
    et_bm25_opts bo;
    et_bm25_opts_default(&bo);
    et_eval_model_opts mo;
    et_eval_model_opts_default(&mo);
    size_t ks[ET_IR_MAX_K] = {1, 3, 5, 10}, n_k = 4;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                         \
    do {                                                                     \
        if (!v) return cli_usage_error(cmd, "option %s needs a value", a);  \
        i++;                                                                 \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(a, "-d") || !strcmp(a, "--dataset")) {
            NEED_VALUE();
            dataset = v;
        } else if (!strcmp(a, "--split")) {
            NEED_VALUE();
            split = v;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED_VALUE();
            if (n_models == MAX_SYS) return cli_usage_error(cmd, "at most %d models", MAX_SYS);
            models[n_models++] = v;
        } else if (!strcmp(a, "--adapter")) {
            NEED_VALUE();
            if (n_adapters == MAX_SYS) return cli_usage_error(cmd, "at most %d adapters", MAX_SYS);
            adapters[n_adapters++] = v;
        } else if (!strcmp(a, "--bm25")) {
            bm25 = 1;
        } else if (!strcmp(a, "--bm25-k1") || !strcmp(a, "--bm25-b")) {
            NEED_VALUE();
            double x;
            if (et_parse_double(v, &x) || x < 0 || (a[7] == 'b' && x > 1))
                return cli_usage_error(cmd, "%s: expected a number%s, got '%s'", a,
                                       a[7] == 'b' ? " in [0, 1]" : " >= 0", v);
            if (a[7] == 'b') bo.b = x;
            else bo.k1 = x;
            bm25 = 1;
        } else if (!strcmp(a, "--bm25-no-stopwords")) {
            bo.stopwords = 0;
            bm25 = 1;
        } else if (!strcmp(a, "-k")) {
            NEED_VALUE();
            if (parse_ks(v, ks, &n_k))
                return cli_usage_error(cmd, "-k: expected 1 to %d positive integers separated by commas, got '%s'",
                                       ET_IR_MAX_K, v);
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            NEED_VALUE();
            outdir = v;
        } else if (!strcmp(a, "--prompt-name")) {
            NEED_VALUE();
            mo.prompt_name = v;
        } else if (!strcmp(a, "--prompt")) {
            NEED_VALUE();
            mo.prompt = v;
        } else if (!strcmp(a, "--no-cache")) {
            mo.use_cache = 0;
        } else if (!strcmp(a, "--cache")) {
            NEED_VALUE();
            mo.cache_path = v;
        } else if (!strcmp(a, "--batch-size") || !strcmp(a, "--max-length") || !strcmp(a, "-t") ||
                   !strcmp(a, "--threads")) {
            NEED_VALUE();
            long n;
            if (et_parse_long(v, 1, 1 << 20, &n))
                return cli_usage_error(cmd, "%s: expected a positive integer, got '%s'", a, v);
            if (a[2] == 'b') mo.batch_size = (size_t)n;
            else if (a[2] == 'm') mo.max_length = (size_t)n;
            else et_set_threads((int)n);
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            mo.quiet = 1;
        } else {
            return cli_usage_error(cmd, "unknown option '%s'", a);
        }
#undef NEED_VALUE
    }
    if (!dataset) return cli_usage_error(cmd, "-d DATASET is required");
    if (!n_models && !bm25) return cli_usage_error(cmd, "nothing to evaluate: give -m MODEL and/or --bm25");
    if (n_adapters && !n_models) return cli_usage_error(cmd, "--adapter needs the model it was trained on (-m)");

    et_error err = {0};
    /* -m DIR or a Hub id org/name[@rev] (fetched into the HF cache if needed) */
    char *model_dirs[MAX_SYS] = {0};
    for (size_t m = 0; m < n_models; m++)
        if (et_resolve_model(models[m], &model_dirs[m], &err)) {
            for (size_t k = 0; k < m; k++) free(model_dirs[k]);
            return cli_fail(cmd, &err);
        }
    et_dataset *ds = NULL;
    if (et_dataset_load(&ds, dataset, ET_DS_AUTO, split, &err)) {
        for (size_t m = 0; m < n_models; m++) free(model_dirs[m]);
        return cli_fail(cmd, &err);
    }
    if (!mo.quiet) {
        fprintf(stderr, "embtune eval: %s: %zu queries, %zu documents", dataset, ds->n_queries, ds->n_docs);
        if (ds->n_skipped) fprintf(stderr, " (%zu empty texts skipped: %s)", ds->n_skipped, ds->skip_reason);
        fputc('\n', stderr);
    }

    et_eval_run runs[2 * MAX_SYS + 1];
    size_t n_runs = 0;
    int rc = ET_OK;
    for (size_t m = 0; m < n_models && !rc; m++) {
        /* label: basename, or the path when two models share one */
        const char *name = base_name(models[m]);
        for (size_t j = 0; j < n_models; j++)
            if (j != m && !strcmp(base_name(models[j]), name)) name = models[m];
        /* adapters: those naming this model in their config, or all on the first model */
        const char *mine[MAX_SYS];
        size_t n_mine = 0;
        for (size_t a = 0; a < n_adapters; a++) {
            int which = et_eval_adapter_target(adapters[a], models, n_models);
            if (which == (int)m) mine[n_mine++] = adapters[a];
        }
        rc = et_eval_model(runs + n_runs, ds, model_dirs[m], name, mine, n_mine, &mo, ks, n_k, &err);
        if (!rc) n_runs += 1 + n_mine;
    }
    if (!rc && bm25) {
        et_eval_run *r = &runs[n_runs];
        rc = et_eval_run_init(r, "bm25", "bm25", NULL, &err);
        if (!rc) {
            rc = et_eval_bm25(r, ds, &bo, ks, n_k, &err);
            if (rc) et_eval_run_free(r);
            else n_runs++;
        }
    }
    if (!rc) {
        et_buf t = {0};
        rc = et_eval_table(&t, runs, n_runs, &err);
        if (!rc) fwrite(t.data, 1, t.len, stdout);
        et_buf_free(&t);
        fflush(stdout);
    }
    if (!rc && outdir) {
        rc = et_eval_write(outdir, dataset, ds, runs, n_runs, &err);
        if (!rc) rc = et_report_write(outdir, dataset, ds, runs, n_runs, &err);
        if (!rc && !mo.quiet)
            fprintf(stderr, "embtune eval: report: %s/report.html (also report.md, metrics.json, ranks.jsonl)\n",
                    outdir);
    }
    for (size_t r = 0; r < n_runs; r++) et_eval_run_free(&runs[r]);
    for (size_t m = 0; m < n_models; m++) free(model_dirs[m]);
    et_dataset_free(ds);
    return rc ? cli_fail(cmd, &err) : 0;
}
