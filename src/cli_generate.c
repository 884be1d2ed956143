/* cli_generate.c - `embtune generate`: chunks -> synthetic (query, chunk) training data. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static volatile int stop_flag;

/* First Ctrl-C / SIGTERM: stop cleanly (finished chunks journaled, exit 130);
 * a second one kills at once (the journal still resumes: kill -9 safe). */
static void on_signal(int sig) {
    if (stop_flag) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    stop_flag = 1;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: embtune generate -i chunks.jsonl -o dataset.json [options]\n"
            "\n"
            "Writes synthetic training queries for every chunk. Without --llm-url the embedded\n"
            "generator builds them (no model, deterministic); with it, an OpenAI-compatible server\n"
            "(llama.cpp, vLLM, Ollama, OpenAI) writes them. Finished chunks go to a journal beside\n"
            "the output (<output>.journal): rerun the same command to resume after Ctrl-C, a crash\n"
            "or kill -9. A complete run deletes the journal; with chunks short of questions it stays,\n"
            "and a rerun asks again for those only.\n"
            "\n"
            "  -i, --input FILE            chunk JSONL from `embtune ingest`\n"
            "  -o, --output PATH           dataset (a directory for --format beir)\n"
            "  -f, --format NAME           llama (default: llama-index JSON), pairs, flag, beir\n"
            "  -n, --questions-per-chunk N questions per chunk (default 2)\n"
            "      --seed N                seed (embedded generator; sent to the LLM when given)\n"
            "      --val-docs GLOB         chunks of matching documents go to --val-output\n"
            "      --val-fraction F        or: about this fraction of chunks, whole documents\n"
            "      --val-output PATH       validation dataset (same format)\n"
            "      --restart               ignore an existing journal and start over\n"
            "      --keep-journal          keep the journal after a complete run (a rerun is then a no-op)\n"
            "  -q, --quiet                 no progress or summary\n"
            "LLM:\n"
            "      --llm-url URL           server base, e.g. http://127.0.0.1:8080 or .../v1\n"
            "      --llm-model NAME        model name (default: the server's first model)\n"
            "      --concurrency N         requests in flight (default 8)\n"
            "      --timeout S             seconds per request (default 120)\n"
            "      --retries N             retries per request on 429/5xx/timeouts (default 5)\n"
            "      --temperature T         default 0.7 (negative: not sent)\n"
            "      --top-p P               not sent by default\n"
            "      --max-tokens N          default 512 (0: not sent)\n"
            "      --prompt-file F         prompt template with {context} and {n}\n"
            "  The API key comes from EMBTUNE_API_KEY, else OPENAI_API_KEY (sent as a Bearer token,\n"
            "  never printed).\n");
}

int cli_generate(int argc, char **argv) {
    const char *cmd = "generate";
    et_generate_opts o;
    et_generate_opts_init(&o);
    enum { O_LLM_URL = 256, O_LLM_MODEL, O_CONC, O_TIMEOUT, O_RETRIES, O_TEMP, O_TOPP, O_MAXTOK, O_SEED, O_PROMPT,
           O_VALDOCS, O_VALFRAC, O_VALOUT, O_RESTART, O_KEEPJ };
    static const struct option longs[] = {
        {"input", required_argument, 0, 'i'},        {"output", required_argument, 0, 'o'},
        {"format", required_argument, 0, 'f'},       {"questions-per-chunk", required_argument, 0, 'n'},
        {"quiet", no_argument, 0, 'q'},              {"help", no_argument, 0, 'h'},
        {"llm-url", required_argument, 0, O_LLM_URL}, {"llm-model", required_argument, 0, O_LLM_MODEL},
        {"concurrency", required_argument, 0, O_CONC}, {"timeout", required_argument, 0, O_TIMEOUT},
        {"retries", required_argument, 0, O_RETRIES}, {"temperature", required_argument, 0, O_TEMP},
        {"top-p", required_argument, 0, O_TOPP},     {"max-tokens", required_argument, 0, O_MAXTOK},
        {"seed", required_argument, 0, O_SEED},      {"prompt-file", required_argument, 0, O_PROMPT},
        {"val-docs", required_argument, 0, O_VALDOCS}, {"val-fraction", required_argument, 0, O_VALFRAC},
        {"val-output", required_argument, 0, O_VALOUT}, {"restart", no_argument, 0, O_RESTART},
        {"keep-journal", no_argument, 0, O_KEEPJ}, {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    long l;
    double d;
    while ((c = getopt_long(argc, argv, ":i:o:f:n:qh", longs, NULL)) != -1) {
        switch (c) {
        case 'i': o.input = optarg; break;
        case 'o': o.output = optarg; break;
        case 'f': o.format = optarg; break;
        case 'n':
            if (et_parse_long(optarg, 1, 100, &l)) return cli_usage_error(cmd, "--questions-per-chunk: expected 1..100, got '%s'", optarg);
            o.questions_per_chunk = (size_t)l;
            break;
        case 'q': o.quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case O_LLM_URL: o.llm_url = optarg; break;
        case O_LLM_MODEL: o.llm_model = optarg; break;
        case O_CONC:
            if (et_parse_long(optarg, 1, 1024, &l)) return cli_usage_error(cmd, "--concurrency: expected 1..1024, got '%s'", optarg);
            o.concurrency = (size_t)l;
            break;
        case O_TIMEOUT:
            if (et_parse_double(optarg, &d) || !(d > 0) || d > 86400) return cli_usage_error(cmd, "--timeout: expected seconds > 0, got '%s'", optarg);
            o.timeout = d;
            break;
        case O_RETRIES:
            if (et_parse_long(optarg, 0, 100, &l)) return cli_usage_error(cmd, "--retries: expected 0..100, got '%s'", optarg);
            o.retries = (int)l;
            break;
        case O_TEMP:
            if (et_parse_double(optarg, &d) || d > 2) return cli_usage_error(cmd, "--temperature: expected a number <= 2, got '%s'", optarg);
            o.temperature = d;
            break;
        case O_TOPP:
            if (et_parse_double(optarg, &d) || d > 1) return cli_usage_error(cmd, "--top-p: expected a number <= 1, got '%s'", optarg);
            o.top_p = d;
            break;
        case O_MAXTOK:
            if (et_parse_long(optarg, 0, 1000000, &l)) return cli_usage_error(cmd, "--max-tokens: expected 0..1000000, got '%s'", optarg);
            o.max_tokens = l;
            break;
        case O_SEED:
            if (et_parse_long(optarg, 0, 0x7fffffffL, &l)) return cli_usage_error(cmd, "--seed: expected 0..2147483647, got '%s'", optarg);
            o.seed = (uint64_t)l;
            o.has_seed = 1;
            break;
        case O_PROMPT: o.prompt_file = optarg; break;
        case O_VALDOCS: o.val_docs = optarg; break;
        case O_VALFRAC:
            if (et_parse_double(optarg, &d) || !(d > 0 && d < 1)) return cli_usage_error(cmd, "--val-fraction: expected a number in (0, 1), got '%s'", optarg);
            o.val_fraction = d;
            break;
        case O_VALOUT: o.val_output = optarg; break;
        case O_RESTART: o.restart = 1; break;
        case O_KEEPJ: o.keep_journal = 1; break;
        case ':': return cli_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) return cli_usage_error(cmd, "unexpected argument '%s'", argv[optind]);
    if (!o.input || !o.output) return cli_usage_error(cmd, "-i chunks.jsonl and -o OUTPUT are required");
    if (!o.llm_url && o.llm_model) return cli_usage_error(cmd, "--llm-model needs --llm-url");
    if (!o.llm_url && o.prompt_file) return cli_usage_error(cmd, "--prompt-file needs --llm-url");
    const char *key = getenv("EMBTUNE_API_KEY");
    if (!key || !*key) key = getenv("OPENAI_API_KEY");
    if (key && *key) o.api_key = key;

    et_error err = {0};
    et_generate_summary s;
    memset(&s, 0, sizeof(s));
    o.stop = &stop_flag;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = et_generate(&o, &s, &err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc == ET_ECANCELED) {
        cli_fail(cmd, &err);
        return 130; /* as a shell reports a SIGINT */
    }
    if (rc) return cli_fail(cmd, &err);
    if (!o.quiet) {
        fprintf(stderr, "embtune generate: %zu chunks: %zu ok, %zu short, %zu failed%s; %zu queries",
                s.n_chunks, s.n_ok, s.n_short, s.n_failed, s.n_resumed ? " (some from the journal)" : "",
                s.n_queries);
        if (o.val_output) fprintf(stderr, " (%zu validation -> %s)", s.n_val_queries, o.val_output);
        fprintf(stderr, " -> %s in %.1fs\n", o.output, s.seconds);
        if (o.llm_url)
            fprintf(stderr, "embtune generate: %zu HTTP requests, %zu retries, up to %zu in flight\n", s.requests,
                    s.retries, s.max_in_flight);
        if (s.failures[0])
            fprintf(stderr, "embtune generate: chunks short of questions or failed are listed in %s\n", s.failures);
        if (s.journal[0])
            fprintf(stderr, "embtune generate: journal %s (rerun to resume or retry; --restart to start over)\n",
                    s.journal);
    }
    return 0;
}
