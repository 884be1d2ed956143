/* cli_finetune.c - `embtune finetune`: fine-tune a model (full) or train an
 * adapter on a retrieval dataset; see et_finetune in embtune.h. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static volatile int stop_flag;

static void on_signal(int sig) {
    if (stop_flag) { /* second signal: stop now */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    stop_flag = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: embtune finetune -m BASE -t TRAIN [-v VAL] -o OUT_DIR [options]\n\n"
            "Fine-tunes BASE (a model directory or Hugging Face id) on TRAIN, a retrieval dataset:\n"
            "llama-index JSON, sentence-transformers pairs/triplets JSONL, FlagEmbedding JSONL\n"
            "or a BEIR folder (detected; or --format). OUT_DIR receives a model directory that\n"
            "sentence-transformers and `embtune embed` load (or, with --mode adapter, an adapter\n"
            "directory for `embed --adapter`), and train_log.jsonl. With VAL, hit@k and MRR@10\n"
            "are measured at every epoch (or --eval-steps) and the best model is kept.\n"
            "Interrupt with Ctrl-C (a checkpoint is written) and continue with --resume.\n\n"
            "what to train:\n"
            "  --mode full|adapter     all parameters (static models: the token table), or an\n"
            "                          adapter on frozen embeddings (default full)\n"
            "  --adapter linear|mlp    adapter kind (default linear: identity-initialized d x d)\n"
            "  --adapter-hidden N      mlp hidden width (default 2 x dim)\n"
            "  --adapter-bias          linear adapter with a bias\n"
            "  --adapter-both          apply the adapter to documents too (default: queries only,\n"
            "                          so an existing document index stays valid)\n"
            "loss:\n"
            "  --loss NAME             mnrl (default), mnrl-sym, gist, matryoshka, cached-mnrl\n"
            "  --scale S               MNRL cosine scale (default 20)\n"
            "  --guide MODEL           guide model for gist\n"
            "  --temperature T         gist temperature (default 0.01)\n"
            "  --matryoshka-dims LIST  e.g. 768,512,256,128 (default dim, dim/2, ... >= 32);\n"
            "                          with another --loss, wraps it in Matryoshka\n"
            "  --matryoshka-weights L  weights of the dims (default 1 each)\n"
            "  --mini-batch N          cached-mnrl (GradCache) mini-batch (default 32)\n"
            "  --negatives N           hard-negative columns from the data's negatives\n"
            "                          (default 1 if it has any, max 6)\n"
            "optimization (defaults: transformer lr 2e-5, batch 16, 2 epochs; static model\n"
            "lr 5e-3, batch 32, 10 epochs; adapter lr 3e-3, batch 32, 20 epochs):\n"
            "  --epochs N  --lr X  --batch-size N  --grad-accum N\n"
            "  --warmup X              fraction (< 1) or number of warm-up steps (default 0.1)\n"
            "  --weight-decay X        AdamW decoupled weight decay (default 0.01)\n"
            "  --max-grad-norm X       gradient clipping (default 1; 0 = off)\n"
            "  --max-length N          tokens per text (default: the model's)\n"
            "  --seed N                shuffling, negatives, dropout, init (default 42)\n"
            "  --no-dropout            dropout off (default: the model config's)\n"
            "  --prompt-name NAME      the model's query prompt (default \"query\" when present)\n"
            "run:\n"
            "  --format F              llama, pairs, flag or beir (default: detect)\n"
            "  --eval-steps N          validate every N steps (default: every epoch)\n"
            "  --save-steps N          checkpoint every N steps (default: every epoch, every\n"
            "                          validation and every 5 minutes)\n"
            "  --save-last             write the last model, not the best validated one\n"
            "  --log-batches           list each step's rows (query/document ids) in the log\n"
            "  --resume                continue from OUT_DIR/checkpoint\n"
            "  --overwrite             replace a model or checkpoint already in OUT_DIR\n"
            "  --cache FILE            adapter embedding cache (default ~/.cache/embtune/)\n"
            "  --no-cache              do not cache base embeddings\n"
            "  --threads N             compute threads (default: all cores)\n"
            "  -q, --quiet             no progress on stderr\n\n"
            "examples:\n"
            "  embtune finetune -m ../shared/fixtures/model2vec-bge-base-q128 -t train.json \\\n"
            "      -v val.json -o tuned-static\n"
            "  embtune finetune -m BAAI/bge-small-en-v1.5 -t train.json -v val.json -o tuned \\\n"
            "      --epochs 2 --batch-size 32\n"
            "  embtune finetune -m BAAI/bge-small-en-v1.5 -t train.json -o adapter --mode adapter\n");
}

static int parse_list(const char *s, size_t *dims, float *w, size_t *n, int floats) {
    size_t k = 0;
    const char *p = s;
    while (*p) {
        if (k >= 16) return -1;
        char *end;
        if (floats) {
            double v = strtod(p, &end);
            if (end == p || !(v > 0)) return -1;
            w[k++] = (float)v;
        } else {
            long v = strtol(p, &end, 10);
            if (end == p || v <= 0) return -1;
            dims[k++] = (size_t)v;
        }
        p = end;
        if (*p == ',') p++;
        else if (*p) return -1;
    }
    *n = k;
    return k ? 0 : -1;
}

int cli_finetune(int argc, char **argv) {
    et_finetune_opts o;
    et_finetune_opts_default(&o);
    const char *base = NULL, *guide = NULL;
    size_t n_w = 0;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED()                                                                        \
    do {                                                                              \
        if (!v) return cli_usage_error("finetune", "%s needs a value", a);            \
        i++;                                                                          \
    } while (0)
#define NUM(dst, lo, hi)                                                              \
    do {                                                                              \
        long x_;                                                                      \
        NEED();                                                                       \
        if (et_parse_long(v, lo, hi, &x_))                                            \
            return cli_usage_error("finetune", "%s: expected an integer in %ld..%ld, got '%s'", a, (long)(lo), \
                                   (long)(hi), v);                                    \
        dst = x_;                                                                     \
    } while (0)
#define DBL(dst, lo)                                                                  \
    do {                                                                              \
        double x_;                                                                    \
        NEED();                                                                       \
        if (et_parse_double(v, &x_) || !(x_ >= (lo)))                                 \
            return cli_usage_error("finetune", "%s: expected a number >= %g, got '%s'", a, (double)(lo), v); \
        dst = x_;                                                                     \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) { NEED(); base = v; }
        else if (!strcmp(a, "-t") || !strcmp(a, "--train")) { NEED(); o.train = v; }
        else if (!strcmp(a, "-v") || !strcmp(a, "--val")) { NEED(); o.val = v; }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { NEED(); o.out_dir = v; }
        else if (!strcmp(a, "--format")) { NEED(); o.format = v; }
        else if (!strcmp(a, "--mode")) { NEED(); o.mode = v; }
        else if (!strcmp(a, "--adapter")) { NEED(); o.adapter = v; }
        else if (!strcmp(a, "--adapter-hidden")) NUM(o.adapter_hidden, 1, 1 << 20);
        else if (!strcmp(a, "--adapter-bias")) o.adapter_bias = 1;
        else if (!strcmp(a, "--adapter-both")) o.adapter_both = 1;
        else if (!strcmp(a, "--loss")) { NEED(); o.loss = v; }
        else if (!strcmp(a, "--guide")) { NEED(); guide = v; }
        else if (!strcmp(a, "--scale")) DBL(o.scale, 1e-6);
        else if (!strcmp(a, "--temperature")) DBL(o.temperature, 1e-6);
        else if (!strcmp(a, "--matryoshka-dims")) {
            NEED();
            if (parse_list(v, o.dims, NULL, &o.n_dims, 0))
                return cli_usage_error("finetune", "--matryoshka-dims: expected up to 16 positive integers, got '%s'", v);
        } else if (!strcmp(a, "--matryoshka-weights")) {
            NEED();
            if (parse_list(v, NULL, o.dim_weights, &n_w, 1))
                return cli_usage_error("finetune", "--matryoshka-weights: expected up to 16 positive numbers, got '%s'",
                                       v);
        } else if (!strcmp(a, "--mini-batch")) NUM(o.mini_batch, 1, 1 << 20);
        else if (!strcmp(a, "--negatives")) NUM(o.negatives, 0, 6);
        else if (!strcmp(a, "--epochs")) NUM(o.epochs, 1, 100000);
        else if (!strcmp(a, "--lr")) DBL(o.lr, 1e-12);
        else if (!strcmp(a, "--batch-size")) NUM(o.batch_size, 1, 1 << 20);
        else if (!strcmp(a, "--grad-accum")) NUM(o.grad_accum, 1, 1 << 20);
        else if (!strcmp(a, "--warmup")) DBL(o.warmup, 0);
        else if (!strcmp(a, "--weight-decay")) DBL(o.weight_decay, 0);
        else if (!strcmp(a, "--max-grad-norm")) {
            double x;
            DBL(x, 0);
            o.max_grad_norm = x > 0 ? (float)x : -1.0f;
        } else if (!strcmp(a, "--max-length")) NUM(o.max_length, 1, 1 << 20);
        else if (!strcmp(a, "--seed")) {
            long s;
            NUM(s, 0, 0x7fffffffffffffffL);
            o.seed = (uint64_t)s;
        } else if (!strcmp(a, "--eval-steps")) NUM(o.eval_steps, 1, 0x7fffffffL);
        else if (!strcmp(a, "--save-steps")) NUM(o.save_steps, 1, 0x7fffffffL);
        else if (!strcmp(a, "--save-last")) o.save_last = 1;
        else if (!strcmp(a, "--log-batches")) o.log_batches = 1;
        else if (!strcmp(a, "--resume")) o.resume = 1;
        else if (!strcmp(a, "--overwrite")) o.overwrite = 1;
        else if (!strcmp(a, "--no-dropout")) o.no_dropout = 1;
        else if (!strcmp(a, "--prompt-name")) { NEED(); o.prompt_name = v; }
        else if (!strcmp(a, "--cache")) { NEED(); o.cache = v; }
        else if (!strcmp(a, "--no-cache")) o.cache = "";
        else if (!strcmp(a, "--threads")) NUM(threads, 1, 1024);
        else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) o.quiet = 1;
        else return cli_usage_error("finetune", "unknown option '%s'", a);
#undef NEED
#undef NUM
#undef DBL
    }
    if (!base) return cli_usage_error("finetune", "which base model? (-m BASE)");
    if (!o.train) return cli_usage_error("finetune", "which training data? (-t TRAIN)");
    if (!o.out_dir) return cli_usage_error("finetune", "where to write the result? (-o OUT_DIR)");
    if (n_w && n_w != o.n_dims)
        return cli_usage_error("finetune", "--matryoshka-weights has %zu values for %zu dims", n_w, o.n_dims);
    if (o.resume && o.overwrite) return cli_usage_error("finetune", "--resume and --overwrite exclude each other");
    if (threads) et_set_threads(threads);
    et_error err = {0};
    char *base_dir = NULL, *guide_dir = NULL;
    if (et_resolve_model(base, &base_dir, &err)) return cli_fail("finetune", &err);
    if (guide && et_resolve_model(guide, &guide_dir, &err)) {
        free(base_dir);
        return cli_fail("finetune", &err);
    }
    o.base = base_dir;
    o.guide = guide_dir;
    o.stop = &stop_flag;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    et_finetune_result r;
    int rc = et_finetune(&o, &r, &err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    free(base_dir);
    free(guide_dir);
    if (rc) return cli_fail("finetune", &err);
    int adapter = o.mode && !strcmp(o.mode, "adapter");
    printf("%s written to %s (%zu steps, %.1f s, %.1f pairs/s, last loss %.4f)\n", adapter ? "adapter" : "model",
           o.out_dir, r.steps, r.seconds, r.pairs_per_s, r.last_loss);
    if (r.validated)
        printf("validation: base acc@1 %.4f acc@5 %.4f MRR@10 %.4f -> %s acc@1 %.4f acc@5 %.4f MRR@10 %.4f "
               "(step %zu)\n",
               r.base_acc[0], r.base_acc[2], r.base_mrr10, o.save_last ? "last" : "best", r.best_acc[0], r.best_acc[2],
               r.best_mrr10, r.best_step);
    printf("training log: %s/train_log.jsonl\n", o.out_dir);
    return 0;
}
