/* cli_pipeline.c - `embtune pipeline`: documents -> fine-tuned model ->
 * report in one command, resumable; see et_pipeline in embtune.h. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static volatile int stop_flag, stop_polled;

/* During generate (which journals every finished chunk) and finetune (which
 * checkpoints when asked) the first Ctrl-C / SIGTERM asks the stage to stop
 * cleanly; elsewhere, and on a second signal, the signal kills as usual:
 * ingest and eval restart, generate continues from its journal. */
static void on_signal(int sig) {
    if (stop_polled && !stop_flag) {
        stop_flag = 1;
        return;
    }
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: embtune pipeline --train-docs PATH... --val-docs PATH... -m BASE -o RUN_DIR [options]\n\n"
            "The whole workflow in one command: ingest the training and the validation documents\n"
            "(separately), generate queries for each, fine-tune BASE on the training queries, then\n"
            "evaluate base vs fine-tuned vs BM25 on the validation queries and write a report.\n"
            "Everything goes into RUN_DIR (chunks-*.jsonl, train.json, val.json, model/ or adapter/,\n"
            "report/) with manifest.json. Rerun the same command: finished stages whose inputs and\n"
            "options are unchanged are skipped, an interrupted one continues (generate's journal,\n"
            "finetune's checkpoint), a changed option reruns its stage and what depends on it.\n\n"
            "  --train-docs PATH...      documents to train on (files or directories; repeatable)\n"
            "  --val-docs PATH...        documents to evaluate on, never trained on (repeatable)\n"
            "  -m, --model BASE          base model directory or Hugging Face id\n"
            "  -o, --output RUN_DIR      run directory (created)\n"
            "  --mode full|adapter       fine-tune the model (default) or train an adapter\n"
            "  --rerun STAGE             run STAGE and every later stage again even if up to date:\n"
            "                            all, ingest, generate, finetune, eval (or ingest-val, ...)\n"
            "  --threads N               compute threads (default: all cores)\n"
            "  -q, --quiet               no progress on stderr\n"
            "ingest:     --chunk-size N (256)  --chunk-overlap N (32)  --include GLOB  --exclude GLOB\n"
            "            --strict\n"
            "generate:   -n, --questions-per-chunk N (2)  --seed N (also finetune's)\n"
            "            --llm-url URL  --llm-model NAME  --concurrency N (8)  --timeout S (120)\n"
            "            --retries N (5)  --temperature T (0.7)  --top-p P  --max-tokens N (512)\n"
            "            --prompt-file F   (without --llm-url: the embedded generator; the API key\n"
            "            comes from EMBTUNE_API_KEY, else OPENAI_API_KEY)\n"
            "finetune:   --epochs N  --lr X  --batch-size N  --grad-accum N  --warmup X\n"
            "            --weight-decay X  --max-grad-norm X  --max-length N  --no-dropout\n"
            "            --loss mnrl|mnrl-sym|gist|matryoshka|cached-mnrl  --scale S  --guide MODEL\n"
            "            --gist-temperature T  --matryoshka-dims LIST  --matryoshka-weights LIST\n"
            "            --mini-batch N  --adapter linear|mlp  --adapter-hidden N  --adapter-bias\n"
            "            --adapter-both  --prompt-name NAME  --cache FILE  --no-cache\n"
            "            --select-best   keep the epoch best on the validation set (default: the last\n"
            "                            epoch, so the final evaluation on that set stays unbiased)\n"
            "            (defaults as `embtune finetune`: they depend on the model and the mode)\n"
            "eval:       -k LIST         cut-offs (default 1,3,5,10)\n\n"
            "example:\n"
            "  embtune pipeline --train-docs ../shared/corpus/R-intro.pdf \\\n"
            "      --val-docs ../shared/corpus/R-data.pdf \\\n"
            "      -m ../shared/fixtures/model2vec-bge-base-q128 -o runs/r-manuals\n");
}

static int parse_sizes(const char *s, size_t *v, float *w, size_t max, size_t *n) {
    size_t k = 0;
    const char *p = s;
    while (*p) {
        if (k >= max) return -1;
        char *end;
        if (w) {
            double x = strtod(p, &end);
            if (end == p || !(x > 0)) return -1;
            w[k++] = (float)x;
        } else {
            long x = strtol(p, &end, 10);
            if (end == p || x <= 0 || x > 100000) return -1;
            v[k++] = (size_t)x;
        }
        p = end;
        if (*p == ',' && p[1]) p++;
        else if (*p) return -1;
    }
    *n = k;
    return k ? 0 : -1;
}

static void fmt_metric(char *out, size_t n, double base, double tuned) {
    if (isnan(base) || isnan(tuned)) snprintf(out, n, "n/a");
    else snprintf(out, n, "%.4f -> %.4f (%+.4f)", base, tuned, tuned - base);
}

int cli_pipeline(int argc, char **argv) {
    const char *cmd = "pipeline";
    et_pipeline_opts o;
    et_pipeline_opts_default(&o);
    const char **train = calloc((size_t)argc + 1, sizeof(*train)), **val = calloc((size_t)argc + 1, sizeof(*val));
    const char **inc = calloc((size_t)argc + 1, sizeof(*inc)), **exc = calloc((size_t)argc + 1, sizeof(*exc));
    if (!train || !val || !inc || !exc) {
        free(train), free(val), free(inc), free(exc);
        fprintf(stderr, "embtune pipeline: out of memory\n");
        return 1;
    }
    size_t n_train = 0, n_val = 0, n_w = 0;
    int threads = 0, rc = 0;
    const char **docs = NULL; /* list being filled by --train-docs / --val-docs */
    size_t *n_docs = NULL;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (docs && (a[0] != '-' || !a[1])) { /* another PATH after --train-docs/--val-docs */
            docs[(*n_docs)++] = a;
            continue;
        }
        docs = NULL;
#define NEED()                                                                       \
    do {                                                                             \
        if (!v) {                                                                    \
            rc = cli_usage_error(cmd, "%s needs a value", a);                       \
            goto done;                                                               \
        }                                                                            \
        i++;                                                                         \
    } while (0)
#define NUM(dst, lo, hi)                                                             \
    do {                                                                             \
        long x_;                                                                     \
        NEED();                                                                      \
        if (et_parse_long(v, lo, hi, &x_)) {                                         \
            rc = cli_usage_error(cmd, "%s: expected an integer in %ld..%ld, got '%s'", a, (long)(lo), (long)(hi), v); \
            goto done;                                                               \
        }                                                                            \
        dst = x_;                                                                    \
    } while (0)
#define DBL(dst, lo, hi)                                                             \
    do {                                                                             \
        double x_;                                                                   \
        NEED();                                                                      \
        if (et_parse_double(v, &x_) || !(x_ >= (lo) && x_ <= (hi))) {                \
            rc = cli_usage_error(cmd, "%s: expected a number in [%g, %g], got '%s'", a, (double)(lo), (double)(hi), v); \
            goto done;                                                               \
        }                                                                            \
        dst = x_;                                                                    \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto done;
        } else if (!strcmp(a, "--train-docs") || !strcmp(a, "--val-docs")) {
            docs = a[2] == 't' ? train : val;
            n_docs = a[2] == 't' ? &n_train : &n_val;
            if (!v || (v[0] == '-' && v[1])) {
                rc = cli_usage_error(cmd, "%s needs at least one PATH", a);
                goto done;
            }
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED(); o.base = v; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) { NEED(); o.run_dir = v; }
        else if (!strcmp(a, "--mode")) { NEED(); o.finetune.mode = v; }
        else if (!strcmp(a, "--rerun")) { NEED(); o.rerun = v; }
        else if (!strcmp(a, "--threads")) NUM(threads, 1, 1024);
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) o.quiet = 1;
        /* ingest */
        else if (!strcmp(a, "--chunk-size")) NUM(o.ingest.chunk_size, 8, 1 << 20);
        else if (!strcmp(a, "--chunk-overlap")) NUM(o.ingest.chunk_overlap, 0, 1 << 20);
        else if (!strcmp(a, "--include")) { NEED(); inc[o.ingest.n_include++] = v; }
        else if (!strcmp(a, "--exclude")) { NEED(); exc[o.ingest.n_exclude++] = v; }
        else if (!strcmp(a, "--strict")) o.ingest.strict = 1;
        /* generate */
        else if (!strcmp(a, "-n") || !strcmp(a, "--questions-per-chunk")) NUM(o.generate.questions_per_chunk, 1, 100);
        else if (!strcmp(a, "--seed")) {
            long s;
            NUM(s, 0, 0x7fffffffL);
            o.generate.seed = o.finetune.seed = (uint64_t)s;
            o.generate.has_seed = 1;
        } else if (!strcmp(a, "--llm-url")) { NEED(); o.generate.llm_url = v; }
        else if (!strcmp(a, "--llm-model")) { NEED(); o.generate.llm_model = v; }
        else if (!strcmp(a, "--concurrency")) NUM(o.generate.concurrency, 1, 1024);
        else if (!strcmp(a, "--timeout")) DBL(o.generate.timeout, 1e-3, 86400);
        else if (!strcmp(a, "--retries")) NUM(o.generate.retries, 0, 100);
        else if (!strcmp(a, "--temperature")) DBL(o.generate.temperature, -1, 2);
        else if (!strcmp(a, "--top-p")) DBL(o.generate.top_p, -1, 1);
        else if (!strcmp(a, "--max-tokens")) NUM(o.generate.max_tokens, 0, 1000000);
        else if (!strcmp(a, "--prompt-file")) { NEED(); o.generate.prompt_file = v; }
        /* finetune */
        else if (!strcmp(a, "--epochs")) NUM(o.finetune.epochs, 1, 100000);
        else if (!strcmp(a, "--lr")) DBL(o.finetune.lr, 1e-12, 10);
        else if (!strcmp(a, "--batch-size")) NUM(o.finetune.batch_size, 1, 1 << 20);
        else if (!strcmp(a, "--grad-accum")) NUM(o.finetune.grad_accum, 1, 1 << 20);
        else if (!strcmp(a, "--warmup")) DBL(o.finetune.warmup, 0, 1e9);
        else if (!strcmp(a, "--weight-decay")) DBL(o.finetune.weight_decay, 0, 1e3);
        else if (!strcmp(a, "--max-grad-norm")) {
            double x;
            DBL(x, 0, 1e9);
            o.finetune.max_grad_norm = x > 0 ? (float)x : -1.0f;
        } else if (!strcmp(a, "--max-length")) NUM(o.finetune.max_length, 1, 1 << 20);
        else if (!strcmp(a, "--no-dropout")) o.finetune.no_dropout = 1;
        else if (!strcmp(a, "--loss")) { NEED(); o.finetune.loss = v; }
        else if (!strcmp(a, "--scale")) DBL(o.finetune.scale, 1e-6, 1e6);
        else if (!strcmp(a, "--guide")) { NEED(); o.finetune.guide = v; }
        else if (!strcmp(a, "--gist-temperature")) DBL(o.finetune.temperature, 1e-6, 1e6);
        else if (!strcmp(a, "--matryoshka-dims")) {
            NEED();
            if (parse_sizes(v, o.finetune.dims, NULL, 16, &o.finetune.n_dims)) {
                rc = cli_usage_error(cmd, "--matryoshka-dims: expected up to 16 positive integers, got '%s'", v);
                goto done;
            }
        } else if (!strcmp(a, "--matryoshka-weights")) {
            NEED();
            if (parse_sizes(v, NULL, o.finetune.dim_weights, 16, &n_w)) {
                rc = cli_usage_error(cmd, "--matryoshka-weights: expected up to 16 positive numbers, got '%s'", v);
                goto done;
            }
        } else if (!strcmp(a, "--mini-batch")) NUM(o.finetune.mini_batch, 1, 1 << 20);
        else if (!strcmp(a, "--adapter")) { NEED(); o.finetune.adapter = v; }
        else if (!strcmp(a, "--adapter-hidden")) NUM(o.finetune.adapter_hidden, 1, 1 << 20);
        else if (!strcmp(a, "--adapter-bias")) o.finetune.adapter_bias = 1;
        else if (!strcmp(a, "--adapter-both")) o.finetune.adapter_both = 1;
        else if (!strcmp(a, "--prompt-name")) { NEED(); o.finetune.prompt_name = v; }
        else if (!strcmp(a, "--cache")) { NEED(); o.finetune.cache = v; }
        else if (!strcmp(a, "--no-cache")) o.finetune.cache = "";
        else if (!strcmp(a, "--select-best")) o.select_best = 1;
        /* eval */
        else if (!strcmp(a, "-k")) {
            NEED();
            size_t ks[8], n;
            if (parse_sizes(v, ks, NULL, 8, &n)) {
                rc = cli_usage_error(cmd, "-k: expected 1 to 8 positive integers separated by commas, got '%s'", v);
                goto done;
            }
            /* ascending, no duplicates */
            for (size_t x = 1; x < n; x++)
                for (size_t y = x; y > 0 && ks[y] < ks[y - 1]; y--) {
                    size_t t = ks[y];
                    ks[y] = ks[y - 1];
                    ks[y - 1] = t;
                }
            o.n_k = 0;
            for (size_t x = 0; x < n; x++)
                if (!o.n_k || o.ks[o.n_k - 1] != ks[x]) o.ks[o.n_k++] = ks[x];
        } else {
            rc = a[0] == '-' ? cli_usage_error(cmd, "unknown option '%s'", a)
                             : cli_usage_error(cmd, "unexpected argument '%s' (documents go after --train-docs or "
                                                    "--val-docs)", a);
            goto done;
        }
#undef NEED
#undef NUM
#undef DBL
    }
    if (!n_train || !n_val) {
        rc = cli_usage_error(cmd, "both --train-docs PATH... and --val-docs PATH... are required");
        goto done;
    }
    if (!o.base) {
        rc = cli_usage_error(cmd, "which base model? (-m BASE: a model directory or a Hugging Face id)");
        goto done;
    }
    if (!o.run_dir) {
        rc = cli_usage_error(cmd, "where should the run go? (-o RUN_DIR)");
        goto done;
    }
    if (o.ingest.chunk_overlap >= o.ingest.chunk_size) {
        rc = cli_usage_error(cmd, "--chunk-overlap (%zu) must be smaller than --chunk-size (%zu)",
                             o.ingest.chunk_overlap, o.ingest.chunk_size);
        goto done;
    }
    if (!o.generate.llm_url && (o.generate.llm_model || o.generate.prompt_file)) {
        rc = cli_usage_error(cmd, "--llm-model and --prompt-file need --llm-url");
        goto done;
    }
    if (n_w && n_w != o.finetune.n_dims) {
        rc = cli_usage_error(cmd, "--matryoshka-weights has %zu values for %zu dims", n_w, o.finetune.n_dims);
        goto done;
    }
    o.train_docs = train;
    o.n_train_docs = n_train;
    o.val_docs = val;
    o.n_val_docs = n_val;
    o.ingest.include = inc;
    o.ingest.exclude = exc;
    const char *key = getenv("EMBTUNE_API_KEY");
    if (!key || !*key) key = getenv("OPENAI_API_KEY");
    if (key && *key) o.generate.api_key = key;
    if (threads) et_set_threads(threads);
    o.stop = &stop_flag;
    o.stop_polled = &stop_polled;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    et_error err = {0};
    et_pipeline_result r;
    int prc = et_pipeline(&o, &r, &err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    FILE *out = prc ? stderr : stdout;
    int reached = 0;
    for (int i = 0; i < ET_PIPELINE_STAGES; i++) reached |= strcmp(r.stages[i].action, "not run") != 0;
    if (reached) fprintf(out, "\n%-15s %-12s %7s  %s\n", "stage", "this run", "time", "result");
    for (int i = 0; i < ET_PIPELINE_STAGES && reached; i++) {
        const et_pipeline_stage_info *s = &r.stages[i];
        char t[32] = "-";
        if (strcmp(s->action, "up to date") && strcmp(s->action, "not run")) snprintf(t, sizeof(t), "%.1fs", s->seconds);
        fprintf(out, "%-15s %-12s %7s  %s\n", s->name, s->action, t, s->summary);
    }
    if (reached) fprintf(out, "%-15s %-12s %6.1fs\n", "total", "", r.seconds);
    if (prc) {
        rc = cli_fail(cmd, &err);
        if (r.manifest[0]) fprintf(stderr, "embtune pipeline: stage states are in %s\n", r.manifest);
        goto done;
    }
    if (r.evaluated) {
        char a5[64], m10[64];
        fmt_metric(a5, sizeof(a5), r.base_acc[2], r.tuned_acc[2]);
        fmt_metric(m10, sizeof(m10), r.base_mrr10, r.tuned_mrr10);
        printf("\nvalidation set: %zu queries (questions about the validation documents only)\n%s", r.n_val_queries,
               r.table);
        printf("\n%s vs %s: accuracy@5 %s, MRR@10 %s\n", r.tuned_name, r.base_name, a5, m10);
    }
    printf("report: %s\nmanifest: %s\n", r.report, r.manifest);
done:
    free(train);
    free(val);
    free(inc);
    free(exc);
    return rc;
}
