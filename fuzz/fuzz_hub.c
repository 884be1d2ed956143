/* fuzz_hub.c - what a Hugging Face Hub server sends, on arbitrary bytes: the
 * revision listing reply, model.safetensors.index.json, ETag header values,
 * and model ids. The first byte picks. Invariants: every file name kept from
 * a listing or an index is a safe relative path (it becomes a path in the
 * cache), an accepted ETag only holds [A-Za-z0-9._-], an accepted id splits
 * into a valid repo and revision. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "hub.h"
#include "json.h"


/* relative, no "", "." or ".." component, no backslash */
static void check_name(const char *f) {
    check(f && f[0] && f[0] != '/' && !strchr(f, '\\') && et_hub_valid_filename(f));
    for (const char *c = f;;) {
        const char *sl = strchr(c, '/');
        size_t k = sl ? (size_t)(sl - c) : strlen(c);
        check(k && !(k == 1 && c[0] == '.') && !(k == 2 && c[0] == '.' && c[1] == '.'));
        if (!sl) break;
        c = sl + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    et_error err = {0};
    switch (data[0] % 4) {
    case 0: {
        et_hub_listing l;
        if (et_hub_parse_listing(&l, s, n, "listing", &err)) {
            check(err.msg[0] && l.n == 0 && !l.files);
            return 0;
        }
        check(et_hub_is_commit(l.commit));
        for (size_t i = 0; i < l.n; i++) check_name(l.files[i]);
        et_hub_listing_free(&l);
        break;
    }
    case 1: {
        cJSON *j = NULL;
        if (et_json_parse(&j, s, n, "index", &err)) return 0;
        et_hub_listing l;
        memset(&l, 0, sizeof(l));
        if (et_hub_listing_add_shards(&l, j, "org/name", &err) == ET_OK)
            for (size_t i = 0; i < l.n; i++) check_name(l.files[i]), check(!strchr(l.files[i], '/'));
        et_hub_listing_free(&l);
        cJSON_Delete(j);
        break;
    }
    case 2: {
        char *e = malloc(n + 1);
        if (!e) return 0;
        memcpy(e, s, n);
        e[n] = 0;
        if (et_hub_normalize_etag(e)) {
            check(e[0] && strcmp(e, ".") && strcmp(e, ".."));
            for (const char *c = e; *c; c++)
                check((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') ||
                      *c == '.' || *c == '_' || *c == '-');
        }
        free(e);
        break;
    }
    default: {
        char *spec = malloc(n + 1);
        if (!spec) return 0;
        memcpy(spec, s, n);
        spec[n] = 0;
        char *repo = NULL, *rev = NULL;
        if (et_hub_parse_spec(spec, &repo, &rev)) {
            check(et_hub_valid_repo(repo) && et_hub_valid_revision(rev));
            check(repo[0] != '/' && rev[0] != '/' && strchr(repo, '/'));
            free(repo);
            free(rev);
        } else {
            check(!repo && !rev);
        }
        (void)et_hub_valid_filename(spec);
        (void)et_hub_wanted_file(spec);
        free(spec);
    }
    }
    return 0;
}
