/* cli_download.c - `embtune download org/name[@revision]`: fetch a model from
 * the Hugging Face Hub into the standard HF cache; prints the snapshot path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: embtune download ORG/NAME[@REVISION] [options]\n\n"
            "Fetches the files a model needs (config, tokenizer, safetensors weights,\n"
            "sentence-transformers module configs) into the Hugging Face cache, where\n"
            "huggingface_hub finds them too, and prints the snapshot directory.\n"
            "Partial downloads resume; every file is checked against the hub's ETag.\n"
            "After it, `-m ORG/NAME` works offline in every command.\n\n"
            "options:\n"
            "  --cache-dir DIR   cache root (default $HF_HUB_CACHE, $HF_HOME/hub,\n"
            "                    ~/.cache/huggingface/hub)\n"
            "  --endpoint URL    hub or mirror (default $HF_ENDPOINT, https://huggingface.co)\n"
            "  --offline         only look in the cache (as HF_HUB_OFFLINE=1)\n"
            "  -q, --quiet       no notices on stderr\n\n"
            "environment: HF_TOKEN (or $HF_HOME/token) for private and gated repos,\n"
            "HF_HOME, HF_HUB_CACHE, HF_ENDPOINT, HF_HUB_OFFLINE, HF_HUB_DOWNLOAD_TIMEOUT\n"
            "(seconds without data before a retry, default 30), ET_HUB_RETRIES (default 5).\n\n"
            "example:\n"
            "  embtune download BAAI/bge-small-en-v1.5\n"
            "  HF_HUB_OFFLINE=1 embtune download BAAI/bge-small-en-v1.5   # cache only\n");
}

int cli_download(int argc, char **argv) {
    et_hub_opts o = {0};
    o.refresh = 1;
    const char *spec = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--cache-dir") || !strcmp(a, "--endpoint")) {
            if (i + 1 >= argc) return cli_usage_error("download", "%s needs a value", a);
            if (!strcmp(a, "--cache-dir")) o.cache_dir = argv[++i];
            else o.endpoint = argv[++i];
        } else if (!strcmp(a, "--offline")) {
            o.offline = 1;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            o.quiet = 1;
        } else if (a[0] == '-') {
            return cli_usage_error("download", "unknown option '%s'", a);
        } else if (spec) {
            return cli_usage_error("download", "one model id at a time (got '%s' and '%s')", spec, a);
        } else {
            spec = a;
        }
    }
    if (!spec) return cli_usage_error("download", "which model? (e.g. BAAI/bge-small-en-v1.5)");
    et_error err = {0};
    char *dir = NULL;
    if (et_hub_download(spec, &o, &dir, &err)) return cli_fail("download", &err);
    printf("%s\n", dir);
    free(dir);
    return 0;
}
