/* cli_embed.c - `embtune embed`: texts (one per line, or JSONL with a "text"
 * field) -> embeddings (.npy float32 [n, dim] or JSONL), streamed in blocks so
 * memory stays bounded, written atomically. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "npy.h"
#include "util.h"

/* Texts embedded per block (bounded memory; progress is reported per block):
 * transformers 512 (enough for length bucketing), static models 4096. */
#define BLOCK_TRANSFORMER 512
#define BLOCK_STATIC 4096

static void usage(FILE *f) {
    fprintf(f,
            "usage: embtune embed -m MODEL_DIR -i INPUT -o OUTPUT [options]\n\n"
            "Embeds texts with a model directory (Hugging Face / sentence-transformers layout).\n\n"
            "  -m, --model MODEL      model directory (BERT, XLM-RoBERTa or model2vec) or Hugging\n"
            "                         Face id org/name[@revision] (fetched into the HF cache)\n"
            "  -i, --input FILE       one text per line, or .jsonl with a \"text\" field; - = stdin\n"
            "  -o, --output FILE      .npy (float32 [n, dim], row i = input i) or .jsonl\n"
            "                         ({\"embedding\": [...]} per line)\n"
            "      --batch-size N     sequences per forward batch (default 32)\n"
            "      --max-length N     truncate to N tokens, special tokens included\n"
            "                         (default: the model's max_seq_length)\n"
            "      --threads N        compute threads (default: all CPUs)\n"
            "      --pooling MODE     cls | mean | max | last | weightedmean | mean_sqrt_len\n"
            "                         (default: from the model's 1_Pooling/config.json)\n"
            "      --prompt TEXT      prepend TEXT to every input\n"
            "      --prompt-name NAME prepend the model's named prompt (config_sentence_transformers.json)\n"
            "      --ids              input lines are token ids (\"101 2054 102\" or [101, 2054, 102]),\n"
            "                         special tokens included; no tokenization\n"
            "  -q, --quiet            no notices or progress\n");
}

typedef struct input {
    FILE *fp;
    const char *name;
    int jsonl;
    size_t line_no;
    char *line;
    size_t cap;
} input;

/* Next record: 1 = got one (*text malloc'd), 0 = end, <0 = error. */
static int next_text(input *in, char **text, et_error *err) {
    ssize_t n = getline(&in->line, &in->cap, in->fp);
    if (n < 0) {
        if (ferror(in->fp)) return -et_err_set(err, ET_EIO, "%s: read error: %s", in->name, strerror(errno));
        return 0;
    }
    in->line_no++;
    while (n > 0 && (in->line[n - 1] == '\n' || in->line[n - 1] == '\r')) in->line[--n] = 0;
    if (!in->jsonl) {
        if (memchr(in->line, 0, (size_t)n))
            return -et_err_set(err, ET_EFORMAT, "%s: line %zu contains a NUL byte", in->name, in->line_no);
        *text = et_strndup(in->line, (size_t)n, err);
        return *text ? 1 : -ET_ENOMEM;
    }
    cJSON *j = cJSON_ParseWithLength(in->line, (size_t)n);
    const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
    if (!cJSON_IsString(t)) {
        cJSON_Delete(j);
        return -et_err_set(err, ET_EFORMAT, "%s: line %zu: expected a JSON object with a string field "
                           "'text'", in->name, in->line_no);
    }
    *text = et_strdup(t->valuestring, err);
    cJSON_Delete(j);
    return *text ? 1 : -ET_ENOMEM;
}

/* "101 2054, 102" or "[101, 2054, 102]" -> ids. */
static int parse_ids(const char *s, int32_t **ids, size_t *n, const char *name, size_t line_no,
                     et_error *err) {
    size_t cap = 16, k = 0;
    int32_t *v = et_malloc_n(cap, sizeof(int32_t), err);
    if (!v) return ET_ENOMEM;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',' || *p == '[' || *p == ']') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX) {
            free(v);
            return et_err_set(err, ET_EFORMAT, "%s: line %zu: expected non-negative token ids", name,
                              line_no);
        }
        if (k == cap) {
            int32_t *nv = et_realloc_n(v, cap *= 2, sizeof(int32_t), err);
            if (!nv) {
                free(v);
                return ET_ENOMEM;
            }
            v = nv;
        }
        v[k++] = (int32_t)x;
        p = end;
    }
    *ids = v;
    *n = k;
    return ET_OK;
}

static int write_jsonl_rows(FILE *fp, const float *v, size_t n, size_t dim) {
    for (size_t i = 0; i < n; i++) {
        fputs("{\"embedding\": [", fp);
        for (size_t d = 0; d < dim; d++) fprintf(fp, d ? ", %.9g" : "%.9g", (double)v[i * dim + d]);
        if (fputs("]}\n", fp) == EOF) return -1;
    }
    return 0;
}

static size_t count_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[1 << 16];
    size_t n = 0, r, last = '\n';
    while ((r = fread(buf, 1, sizeof buf, f)) > 0) {
        for (size_t i = 0; i < r; i++) n += buf[i] == '\n';
        last = (unsigned char)buf[r - 1];
    }
    fclose(f);
    return n + (last != '\n');
}

int cli_embed(int argc, char **argv) {
    const char *model_dir = NULL, *in_path = NULL, *out_path = NULL, *prompt = NULL, *prompt_name = NULL;
    long batch = 32, max_len = 0, threads = 0;
    int pooling = ET_POOL_DEFAULT, ids_mode = 0, quiet = 0;
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'},  {"batch-size", required_argument, 0, 'b'},
        {"max-length", required_argument, 0, 'L'}, {"threads", required_argument, 0, 't'},
        {"pooling", required_argument, 0, 'p'}, {"prompt", required_argument, 0, 'P'},
        {"prompt-name", required_argument, 0, 'N'}, {"ids", no_argument, 0, 'I'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:i:o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_dir = optarg; break;
        case 'i': in_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'b':
            if (et_parse_long(optarg, 1, 1 << 16, &batch))
                return cli_usage_error("embed", "--batch-size: expected an integer in [1, 65536], got '%s'", optarg);
            break;
        case 'L':
            if (et_parse_long(optarg, 1, 1 << 20, &max_len))
                return cli_usage_error("embed", "--max-length: expected a positive integer, got '%s'", optarg);
            break;
        case 't':
            if (et_parse_long(optarg, 1, 256, &threads))
                return cli_usage_error("embed", "--threads: expected an integer in [1, 256], got '%s'", optarg);
            break;
        case 'p':
            if (!strcmp(optarg, "cls")) pooling = ET_POOL_CLS;
            else if (!strcmp(optarg, "mean")) pooling = ET_POOL_MEAN;
            else if (!strcmp(optarg, "max")) pooling = ET_POOL_MAX;
            else if (!strcmp(optarg, "last") || !strcmp(optarg, "lasttoken")) pooling = ET_POOL_LAST;
            else if (!strcmp(optarg, "weightedmean")) pooling = ET_POOL_WEIGHTEDMEAN;
            else if (!strcmp(optarg, "mean_sqrt_len")) pooling = ET_POOL_MEAN_SQRT_LEN;
            else return cli_usage_error("embed", "--pooling: expected cls, mean, max, last, weightedmean or "
                                        "mean_sqrt_len, got '%s'", optarg);
            break;
        case 'P': prompt = optarg; break;
        case 'N': prompt_name = optarg; break;
        case 'I': ids_mode = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) return cli_usage_error("embed", "unexpected argument '%s'", argv[optind]);
    if (!model_dir) return cli_usage_error("embed", "missing -m MODEL_DIR");
    if (!in_path) return cli_usage_error("embed", "missing -i INPUT");
    if (!out_path) return cli_usage_error("embed", "missing -o OUTPUT");
    if (prompt && prompt_name) return cli_usage_error("embed", "give --prompt or --prompt-name, not both");
    int out_npy = et_ends_with(out_path, ".npy"), out_jsonl = et_ends_with(out_path, ".jsonl");
    if (!out_npy && !out_jsonl)
        return cli_usage_error("embed", "-o: expected a .npy or .jsonl file name, got '%s'", out_path);
    if (threads) et_set_threads((int)threads);

    et_error err = {0};
    et_model *m = NULL;
    et_model_opts mo = {pooling, (size_t)max_len, quiet};
    char *resolved = NULL; /* a directory, or a Hub id fetched into the HF cache */
    if (et_resolve_model(model_dir, &resolved, &err)) return cli_fail("embed", &err);
    int lrc = et_model_load(&m, resolved, &mo, &err);
    free(resolved);
    if (lrc) return cli_fail("embed", &err);
    et_model_set_batch_size(m, (size_t)batch);
    if (prompt_name) {
        prompt = et_model_prompt(m, prompt_name);
        if (!prompt) {
            et_err_set(&err, ET_ENOTFOUND, "%s: no prompt named '%s' in config_sentence_transformers.json",
                       model_dir, prompt_name);
            et_model_free(m);
            return cli_fail("embed", &err);
        }
    } else if (!prompt && et_model_default_prompt(m)) {
        prompt = et_model_prompt(m, et_model_default_prompt(m));
    }
    if (ids_mode && prompt && prompt[0]) {
        et_model_free(m);
        return cli_usage_error("embed", "--ids cannot be combined with a prompt");
    }

    input in = {0};
    in.name = strcmp(in_path, "-") ? in_path : "(stdin)";
    in.jsonl = et_ends_with(in_path, ".jsonl");
    in.fp = strcmp(in_path, "-") ? fopen(in_path, "rb") : stdin;
    if (!in.fp) {
        et_err_set(&err, ET_EIO, "%s: cannot open: %s", in_path, strerror(errno));
        et_model_free(m);
        return cli_fail("embed", &err);
    }
    size_t total = strcmp(in_path, "-") ? count_lines(in_path) : 0;
    size_t dim = et_model_dim(m);
    et_model_info mi;
    et_model_get_info(m, &mi);
    size_t block = strcmp(mi.architecture, "model2vec") ? BLOCK_TRANSFORMER : BLOCK_STATIC;
    char **texts = calloc(block, sizeof(char *));
    int32_t **ids = calloc(block, sizeof(int32_t *));
    size_t *lens = calloc(block, sizeof(size_t));
    float *vecs = malloc(block * dim * sizeof(float));
    et_npy_writer nw;
    et_afile jf;
    int rc = (!texts || !ids || !lens || !vecs) ? et_err_set(&err, ET_ENOMEM, "out of memory") : ET_OK;
    int opened = 0;
    if (!rc) {
        rc = out_npy ? et_npy_begin(&nw, out_path, dim, &err) : et_afile_open(&jf, out_path, &err);
        opened = !rc;
    }
    et_progress prog;
    et_progress_init(&prog, "embed", "texts/s", total);
    if (quiet) prog.enabled = 0;
    size_t done = 0;
    int eof = 0;
    while (!rc && !eof) {
        size_t n = 0;
        while (n < block) {
            char *t = NULL;
            int r = next_text(&in, &t, &err);
            if (r < 0) { rc = -r; break; }
            if (r == 0) { eof = 1; break; }
            if (ids_mode) {
                rc = parse_ids(t, &ids[n], &lens[n], in.name, in.line_no, &err);
                free(t);
                if (rc) break;
            } else {
                texts[n] = t;
            }
            n++;
        }
        if (!rc && n) {
            rc = ids_mode ? et_embed_ids(m, (const int32_t *const *)ids, lens, n, vecs, &err)
                          : et_embed(m, (const char *const *)texts, n, prompt, vecs, &err);
            if (rc) et_err_prefix(&err, "%s: block starting at line %zu", in.name, done + 1);
        }
        if (!rc && n) {
            if (out_npy) rc = et_npy_append(&nw, vecs, n, &err);
            else if (write_jsonl_rows(jf.fp, vecs, n, dim)) rc = et_err_set(&err, ET_EIO, "%s: write failed", out_path);
        }
        for (size_t i = 0; i < n; i++) {
            free(texts[i]);
            free(ids[i]);
            texts[i] = NULL;
            ids[i] = NULL;
        }
        done += n;
        if (!rc) et_progress_update(&prog, done, NULL);
    }
    if (!rc) {
        rc = out_npy ? et_npy_finish(&nw, &err) : et_afile_commit(&jf, &err);
        opened = 0;
        et_progress_done(&prog, done);
    }
    if (opened) {
        if (out_npy) et_npy_abort(&nw);
        else et_afile_abort(&jf);
    }
    if (in.fp != stdin) fclose(in.fp);
    free(in.line);
    free(texts);
    free(ids);
    free(lens);
    free(vecs);
    et_model_free(m);
    if (rc) return cli_fail("embed", &err);
    if (!quiet) fprintf(stderr, "embtune embed: %zu embeddings of dimension %zu -> %s\n", done, dim, out_path);
    return 0;
}
