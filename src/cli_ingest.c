/* cli_ingest.c - `embtune ingest PATH... -o chunks.jsonl [options]`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: embtune ingest PATH... -o chunks.jsonl [options]\n\n"
            "Reads PDF, HTML, Markdown and text files (directories recursively), cleans the text\n"
            "(ligatures, hyphenation, page headers/footers, encodings) and writes sentence-aware\n"
            "chunks as JSON lines: id, doc, page_start, page_end, text, n_tokens.\n\n"
            "options:\n"
            "  -o, --output FILE      output JSONL (written atomically)\n"
            "  -m, --model MODEL      count tokens with this model's tokenizer (a directory or a\n"
            "                         Hugging Face id); chunks also stay within its max length\n"
            "                         minus its special tokens\n"
            "      --chunk-size N     max tokens per chunk (default %d)\n"
            "      --chunk-overlap N  tokens repeated from the previous chunk (default %d)\n"
            "      --include GLOB     only files matching GLOB (repeatable; default: known types\n"
            "                         pdf html htm xhtml md markdown txt text rst)\n"
            "      --exclude GLOB     skip files and directories matching GLOB (repeatable)\n"
            "      --strict           fail on the first file that cannot be ingested\n"
            "  -q, --quiet            no per-file warnings or summary\n"
            "Without -m, tokens are estimated from words (conservative; see README).\n",
            ET_INGEST_CHUNK_SIZE, ET_INGEST_CHUNK_OVERLAP);
}

typedef struct skip_log {
    int quiet, tty;
} skip_log;

static void on_skip(void *ctx, const char *path, const char *reason, const char *msg) {
    skip_log *l = ctx;
    if (l->quiet) return;
    /* with a progress line on, overwrite it first */
    fprintf(stderr, "%sembtune ingest: warning: skipped %s (%s): %s%s\n", l->tty ? "\r" : "", path, reason, msg,
            l->tty ? "\033[K" : "");
}

static int parse_size(const char *opt, const char *v, long min, size_t *out) {
    long x;
    if (!v || et_parse_long(v, min, 1L << 30, &x)) return cli_usage_error("ingest", "%s needs an integer >= %ld", opt, min);
    *out = (size_t)x;
    return 0;
}

int cli_ingest(int argc, char **argv) {
    et_ingest_opts o;
    et_ingest_opts_default(&o);
    const char *out = NULL, *model = NULL;
    const char **paths = calloc((size_t)argc + 1, sizeof(*paths));
    const char **inc = calloc((size_t)argc + 1, sizeof(*inc));
    const char **exc = calloc((size_t)argc + 1, sizeof(*exc));
    size_t np = 0, ni = 0, ne = 0;
    int quiet = 0, rc = 0;
    et_tokenizer *tok = NULL;
    if (!paths || !inc || !exc) {
        fprintf(stderr, "embtune ingest: out of memory\n");
        rc = 1;
        goto done;
    }
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            goto done;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!v) rc = cli_usage_error("ingest", "%s needs a file", a);
            out = v, i++;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!v) rc = cli_usage_error("ingest", "%s needs a model directory", a);
            model = v, i++;
        } else if (!strcmp(a, "--chunk-size")) {
            rc = parse_size(a, v, 8, &o.chunk_size), i++;
        } else if (!strcmp(a, "--chunk-overlap")) {
            rc = parse_size(a, v, 0, &o.chunk_overlap), i++;
        } else if (!strcmp(a, "--include")) {
            if (!v) rc = cli_usage_error("ingest", "%s needs a glob", a);
            inc[ni++] = v, i++;
        } else if (!strcmp(a, "--exclude")) {
            if (!v) rc = cli_usage_error("ingest", "%s needs a glob", a);
            exc[ne++] = v, i++;
        } else if (!strcmp(a, "--strict")) {
            o.strict = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else if (a[0] == '-' && a[1]) {
            rc = cli_usage_error("ingest", "unknown option '%s'", a);
        } else {
            paths[np++] = a;
        }
    }
    if (rc) goto done;
    if (!np) {
        rc = cli_usage_error("ingest", "no input PATH given");
        goto done;
    }
    if (!out) {
        rc = cli_usage_error("ingest", "-o FILE is required");
        goto done;
    }
    if (o.chunk_overlap >= o.chunk_size) {
        rc = cli_usage_error("ingest", "--chunk-overlap (%zu) must be smaller than --chunk-size (%zu)",
                             o.chunk_overlap, o.chunk_size);
        goto done;
    }
    et_error err = {0};
    if (model) {
        char *dir = NULL;
        size_t limit = 0;
        if (et_resolve_model(model, &dir, &err) || et_tokenizer_load_dir(&tok, dir, &err) ||
            et_ingest_model_limit(dir, tok, &limit, &err)) {
            free(dir);
            rc = cli_fail("ingest", &err);
            goto done;
        }
        free(dir);
        o.tokenizer = tok;
        o.max_tokens = limit;
        if (limit && limit < o.chunk_size && !quiet)
            fprintf(stderr, "embtune ingest: chunk size capped at %zu tokens: the model's max length minus %zu special tokens\n",
                    limit, et_tokenizer_num_special(tok));
    }
    /* the progress line is on when stderr is a terminal or ET_PROGRESS is set (not "0") */
    const char *pe = getenv("ET_PROGRESS");
    skip_log log = {quiet, !quiet && (pe ? strcmp(pe, "0") != 0 : isatty(2))};
    o.include = inc;
    o.n_include = ni;
    o.exclude = exc;
    o.n_exclude = ne;
    o.progress = !quiet;
    o.on_skip = on_skip;
    o.cb_ctx = &log;
    et_ingest_stats st;
    if (et_ingest(paths, np, out, &o, &st, &err)) {
        rc = cli_fail("ingest", &err);
        if (!quiet && st.skipped) fprintf(stderr, "embtune ingest: %zu file(s) skipped before the error\n", st.skipped);
        goto done;
    }
    if (!quiet) {
        fprintf(stderr,
                "ingest: %zu file%s, %zu page%s, %zu chunks, %zu tokens (max %zu per chunk, budget %zu, %s) "
                "in %.2fs (%.1f pages/s) -> %s\n",
                st.files, st.files == 1 ? "" : "s", st.pages, st.pages == 1 ? "" : "s", st.chunks, st.tokens,
                st.max_chunk_tokens, o.max_tokens && o.max_tokens < o.chunk_size ? o.max_tokens : o.chunk_size,
                tok ? et_tokenizer_type(tok) : "word-based estimate", st.seconds,
                st.seconds > 0 ? (double)st.pages / st.seconds : 0.0, out);
        if (st.skipped) {
            fprintf(stderr, "ingest: skipped %zu file%s:", st.skipped, st.skipped == 1 ? "" : "s");
            const char *sep = " ";
            for (size_t r = 1; et_ingest_reason_name(r); r++)
                if (st.skipped_by[r]) {
                    fprintf(stderr, "%s%zu %s", sep, st.skipped_by[r], et_ingest_reason_name(r));
                    sep = ", ";
                }
            fprintf(stderr, "\n");
        }
        if (st.duplicates) fprintf(stderr, "ingest: %zu duplicate chunk%s dropped\n", st.duplicates, st.duplicates == 1 ? "" : "s");
    }
done:
    et_tokenizer_free(tok);
    free(paths);
    free(inc);
    free(exc);
    return rc;
}
