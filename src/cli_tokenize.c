/* cli_tokenize.c - `embtune tokenize`: one JSON line of ids, tokens, type ids and byte
 * offsets per input line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: embtune tokenize (-m MODEL_DIR | --tokenizer FILE) [-i INPUT|-] [--no-special]\n"
            "                        [--max-length N]\n\n"
            "Tokenizes each line of INPUT (default: stdin) as Hugging Face tokenizers does and\n"
            "prints one JSON object per line:\n"
            "  {\"ids\":[...],\"tokens\":[...],\"type_ids\":[...],\"offsets\":[[start,end],...]}\n"
            "Offsets are byte ranges into the line (without its \\n or \\r\\n).\n\n"
            "  -m, --model MODEL    model directory (tokenizer.json, else vocab.txt) or Hub id org/name[@rev]\n"
            "  --tokenizer FILE     a tokenizer.json file\n"
            "  -i, --input FILE     input text, one text per line ('-' = stdin)\n"
            "  --no-special         do not add special tokens ([CLS], [SEP], ...)\n"
            "  --max-length N       truncate to N tokens (special tokens included)\n");
}

int cli_tokenize(int argc, char **argv) {
    const char *model = NULL, *tokfile = NULL, *input = "-";
    int special = 1;
    long max_len = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); return 0; }
        if (!strcmp(a, "--no-special")) { special = 0; continue; }
        if (i + 1 >= argc) return cli_usage_error("tokenize", "option '%s' needs a value or is unknown", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--tokenizer")) tokfile = v;
        else if (!strcmp(a, "-i") || !strcmp(a, "--input")) input = v;
        else if (!strcmp(a, "--max-length")) {
            if (et_parse_long(v, 1, 1L << 30, &max_len))
                return cli_usage_error("tokenize", "--max-length: expected a positive integer, got '%s'", v);
        } else return cli_usage_error("tokenize", "unknown option '%s'", a);
    }
    if (!!model == !!tokfile) return cli_usage_error("tokenize", "give exactly one of -m MODEL_DIR or --tokenizer FILE");
    et_error err = {0};
    et_tokenizer *tok = NULL;
    char *model_dir = NULL; /* a directory, or a Hub id org/name[@rev] resolved into the HF cache */
    int rc = model ? et_resolve_model(model, &model_dir, &err) : ET_OK;
    if (!rc) rc = model ? et_tokenizer_load_dir(&tok, model_dir, &err) : et_tokenizer_load(&tok, tokfile, &err);
    free(model_dir);
    if (rc) return cli_fail("tokenize", &err);
    FILE *in = strcmp(input, "-") ? fopen(input, "rb") : stdin;
    if (!in) {
        et_err_set(&err, ET_EIO, "%s: cannot open for reading", input);
        et_tokenizer_free(tok);
        return cli_fail("tokenize", &err);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    et_encoding enc = {0};
    et_buf out = {0};
    int status = 0;
    while ((n = getline(&line, &cap, in)) >= 0) {
        size_t len = (size_t)n;
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        if ((rc = et_tokenizer_encode(tok, line, len, special, (size_t)max_len, &enc, &err))) {
            status = cli_fail("tokenize", &err);
            break;
        }
        out.len = 0;
        rc = et_buf_puts(&out, "{\"ids\":[", &err);
        for (size_t k = 0; !rc && k < enc.n; k++) rc = et_buf_printf(&out, &err, k ? ",%d" : "%d", enc.ids[k]);
        if (!rc) rc = et_buf_puts(&out, "],\"tokens\":[", &err);
        for (size_t k = 0; !rc && k < enc.n; k++) {
            const char *s = enc.special_mask[k] ? et_tokenizer_special_str(tok, enc.ids[k]) : NULL;
            if (!s) s = et_tokenizer_id_to_token(tok, enc.ids[k]);
            if (k) rc = et_buf_puts(&out, ",", &err);
            if (!rc) rc = s ? et_buf_json_string(&out, s, strlen(s), &err) : et_buf_puts(&out, "null", &err);
        }
        if (!rc) rc = et_buf_puts(&out, "],\"type_ids\":[", &err);
        for (size_t k = 0; !rc && k < enc.n; k++) rc = et_buf_printf(&out, &err, k ? ",%d" : "%d", enc.type_ids[k]);
        if (!rc) rc = et_buf_puts(&out, "],\"offsets\":[", &err);
        for (size_t k = 0; !rc && k < enc.n; k++)
            rc = et_buf_printf(&out, &err, k ? ",[%zu,%zu]" : "[%zu,%zu]", enc.offsets[2 * k], enc.offsets[2 * k + 1]);
        if (!rc) rc = et_buf_puts(&out, "]}\n", &err);
        if (rc) { status = cli_fail("tokenize", &err); break; }
        if (fwrite(out.data, 1, out.len, stdout) != out.len) {
            et_err_set(&err, ET_EIO, "stdout: write failed");
            status = cli_fail("tokenize", &err);
            break;
        }
    }
    if (!status && ferror(in)) {
        et_err_set(&err, ET_EIO, "%s: read error", input);
        status = cli_fail("tokenize", &err);
    }
    if (in != stdin) fclose(in);
    free(line);
    et_buf_free(&out);
    et_encoding_free(&enc);
    et_tokenizer_free(tok);
    if (!status && fflush(stdout)) {
        et_err_set(&err, ET_EIO, "stdout: write failed");
        status = cli_fail("tokenize", &err);
    }
    return status;
}
