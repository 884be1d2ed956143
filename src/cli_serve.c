/* cli_serve.c - `embtune serve -m MODEL`: an OpenAI-compatible (and
 * text-embeddings-inference-compatible) embeddings server. SIGTERM / SIGINT
 * drain the requests in flight, then the process exits 0. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: embtune serve -m MODEL [options]\n\n"
            "Serves embeddings over HTTP; concurrent requests are batched into one forward pass.\n"
            "  POST /v1/embeddings  OpenAI: {\"input\": str | [str] | [ids] | [[ids]], \"model\",\n"
            "                       \"encoding_format\": float|base64, \"dimensions\", \"input_type\":\n"
            "                       query|document, \"prompt_name\", \"truncate\"}\n"
            "  POST /embed          Hugging Face text-embeddings-inference: {\"inputs\", \"normalize\",\n"
            "                       \"truncate\", \"truncation_direction\", \"prompt_name\", \"dimensions\"}\n"
            "  GET  /health, GET /v1/models\n\n"
            "options:\n"
            "  -m, --model MODEL      model directory or Hugging Face id org/name[@revision]\n"
            "      --adapter DIR      adapter from `embtune finetune --mode adapter`, applied to\n"
            "                         queries (input_type \"query\"), and to documents too if it\n"
            "                         was trained on both\n"
            "      --host ADDR        address to listen on (default 127.0.0.1; 0.0.0.0 = all)\n"
            "      --port N           TCP port (default 8080; 0 = any free port)\n"
            "      --api-key-env VAR  require 'Authorization: Bearer $VAR' (the key is read from\n"
            "                         the environment variable VAR, never from the command line)\n"
            "      --name NAME        model id in replies and /v1/models (default: the -m value)\n"
            "      --max-batch N      inputs per forward pass (default 64)\n"
            "      --max-wait-ms N    wait up to N ms for more requests to fill a batch, only while\n"
            "                         requests are arriving (default 5; 0 = never)\n"
            "      --max-inputs N     inputs per request (default 2048; more: 413)\n"
            "      --max-body BYTES   request body size (default 16777216; more: 413)\n"
            "      --max-tokens N     tokens per input (default: the model's max length)\n"
            "      --truncate         cut longer inputs (default)\n"
            "      --no-truncate      refuse longer inputs with 413 unless the request says\n"
            "                         \"truncate\": true\n"
            "      --threads N        compute threads (default: all CPUs)\n"
            "      --http-threads N   HTTP threads (default 2)\n"
            "      --log              one line per request on stderr\n"
            "  -q, --quiet            no notices\n\n"
            "example:\n"
            "  embtune serve -m BAAI/bge-small-en-v1.5 --port 8080 &\n"
            "  curl -s localhost:8080/v1/embeddings -H 'Content-Type: application/json' \\\n"
            "       -d '{\"input\": [\"what is R?\"], \"input_type\": \"query\"}'\n");
}

static int parse_size(const char *cmd, const char *opt, const char *v, long min, long max, long *out) {
    if (!v || et_parse_long(v, min, max, out)) {
        cli_usage_error(cmd, "%s: expected an integer in [%ld, %ld], got '%s'", opt, min, max, v ? v : "");
        return -1;
    }
    return 0;
}

int cli_serve(int argc, char **argv) {
    const char *model = NULL, *adapter_dir = NULL, *key_env = NULL, *name = NULL;
    et_serve_opts o = {.port = 8080, .max_wait_ms = -1};
    int quiet = 0;
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEEDS_VALUE                                                      \
    do {                                                                 \
        if (!val) return cli_usage_error("serve", "%s needs a value", a); \
        i++;                                                             \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEEDS_VALUE;
            model = val;
        } else if (!strcmp(a, "--adapter")) {
            NEEDS_VALUE;
            adapter_dir = val;
        } else if (!strcmp(a, "--host")) {
            NEEDS_VALUE;
            o.host = val;
        } else if (!strcmp(a, "--port")) {
            NEEDS_VALUE;
            if (parse_size("serve", a, val, 0, 65535, &v)) return 2;
            o.port = (int)v;
        } else if (!strcmp(a, "--api-key-env")) {
            NEEDS_VALUE;
            key_env = val;
        } else if (!strcmp(a, "--name")) {
            NEEDS_VALUE;
            name = val;
        } else if (!strcmp(a, "--max-batch")) {
            NEEDS_VALUE;
            if (parse_size("serve", a, val, 1, 1 << 20, &v)) return 2;
            o.max_batch = (size_t)v;
        } else if (!strcmp(a, "--max-wait-ms")) {
            NEEDS_VALUE;
            if (parse_size("serve", a, val, 0, 10000, &v)) return 2;
            o.max_wait_ms = (double)v;
        } else if (!strcmp(a, "--max-inputs")) {
            NEEDS_VALUE;
            if (parse_size("serve", a, val, 1, 1 << 24, &v)) return 2;
            o.max_inputs = (size_t)v;
        } else if (!strcmp(a, "--max-body")) {
            NEEDS_VALUE;
            if (parse_size("serve", a, val, 64, (long)1 << 34, &v)) return 2;
            o.max_body = (size_t)v;
        } else if (!strcmp(a, "--max-tokens")) {
            NEEDS_VALUE;
            if (parse_size("serve", a, val, 1, 1 << 24, &v)) return 2;
            o.max_tokens = (size_t)v;
        } else if (!strcmp(a, "--truncate")) {
            o.no_truncate = 0;
        } else if (!strcmp(a, "--no-truncate")) {
            o.no_truncate = 1;
        } else if (!strcmp(a, "--threads")) {
            NEEDS_VALUE;
            if (parse_size("serve", a, val, 1, 256, &v)) return 2;
            et_set_threads((int)v);
        } else if (!strcmp(a, "--http-threads")) {
            NEEDS_VALUE;
            if (parse_size("serve", a, val, 1, 64, &v)) return 2;
            o.threads = (int)v;
        } else if (!strcmp(a, "--log")) {
            o.log_requests = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            quiet = 1;
        } else {
            return cli_usage_error("serve", "unknown argument '%s'", a);
        }
#undef NEEDS_VALUE
    }
    if (!model) return cli_usage_error("serve", "missing -m MODEL");
    if (key_env) {
        const char *k = getenv(key_env);
        if (!k || !*k)
            return cli_usage_error("serve", "--api-key-env %s: the environment variable %s is not set or empty",
                                   key_env, key_env);
        o.api_key = k;
    }
    /* the model id reported to clients: --name, else -m as given (a directory's last component) */
    char namebuf[256];
    if (!name) {
        snprintf(namebuf, sizeof(namebuf), "%s", model);
        size_t n = strlen(namebuf);
        while (n > 1 && namebuf[n - 1] == '/') namebuf[--n] = 0;
        name = et_is_dir(model) && strrchr(namebuf, '/') ? strrchr(namebuf, '/') + 1 : namebuf;
    }
    o.model_name = name;

    et_error err = {0};
    char *dir = NULL;
    et_model *m = NULL;
    et_adapter *ad = NULL;
    et_server *srv = NULL;
    int rc = 1;
    if (et_resolve_model(model, &dir, &err)) goto fail;
    et_model_opts mo = {.quiet = quiet};
    if (et_model_load(&m, dir, &mo, &err)) goto fail;
    if (adapter_dir && et_adapter_load(&ad, adapter_dir, &err)) goto fail;

    /* SIGTERM/SIGINT are taken by sigwait below: block them in every thread */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (et_server_start(&srv, m, ad, &o, &err)) goto fail;
    if (!quiet) {
        et_model_info info;
        et_model_get_info(m, &info);
        const char *host = o.host ? o.host : "127.0.0.1";
        fprintf(stderr,
                "embtune serve: %s (%s, dim %zu, max %zu tokens%s%s) listening on http://%s%s%s:%d%s\n",
                name, info.architecture, info.dim, info.max_length, ad ? ", adapter " : "",
                ad ? adapter_dir : "", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "",
                et_server_port(srv), o.api_key ? " (API key required)" : "");
        fflush(stderr);
    }
    int sig = 0;
    sigwait(&sigs, &sig);
    if (!quiet) fprintf(stderr, "embtune serve: %s: finishing the requests in flight\n", strsignal(sig));
    int drained = et_server_drain(srv, 30);
    et_server_free(srv);
    srv = NULL;
    if (drained != ET_OK) {
        fprintf(stderr, "embtune serve: some requests were still running after 30 s and were cut off\n");
        rc = 1;
    } else {
        if (!quiet) fprintf(stderr, "embtune serve: stopped\n");
        rc = 0;
    }
    goto done;
fail:
    rc = cli_fail("serve", &err);
done:
    et_server_free(srv);
    et_adapter_free(ad);
    et_model_free(m);
    free(dir);
    return rc;
}
