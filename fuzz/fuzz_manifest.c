/* fuzz_manifest.c - the pipeline manifest (RUN_DIR/manifest.json) as the
 * pipeline reads it back on a rerun, on arbitrary bytes: the fingerprint memo
 * of every stage, each stage's FILE arrays, and the output-path guard that
 * decides what a rerun may delete. Invariants: a path the guard accepts is
 * relative, has no "." / ".." / empty component and lies under one of the
 * stage's prefixes; FILE arrays survive a write + parse unchanged. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_check.h"
#include "json.h"
#include "pipeline.h"


static int path_ok(const char *p) {
    if (!*p || p[0] == '/') return 0;
    for (const char *c = p;;) {
        const char *s = strchr(c, '/');
        size_t n = s ? (size_t)(s - c) : strlen(c);
        if (!n || (n == 1 && c[0] == '.') || (n == 2 && c[0] == '.' && c[1] == '.')) return 0;
        if (!s) return 1;
        c = s + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const prefixes[] = {"chunks-val.jsonl", "model/", "adapter/", "report/"};
    cJSON *m = NULL;
    et_error err = {0};
    if (et_json_parse(&m, (const char *)data, size, "manifest.json", &err)) {
        check(err.msg[0] != 0);
        return 0;
    }
    et_pl_memo memo;
    et_pl_memo_init(&memo);
    et_pl_memo_add_manifest(&memo, m, &err);
    et_pl_memo_free(&memo);
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(m, "stages"), *s;
    if (cJSON_IsArray(stages)) cJSON_ArrayForEach(s, stages) {
        for (int k = 0; k < 2; k++) {
            et_pl_files fs = {0};
            const cJSON *arr = cJSON_GetObjectItemCaseSensitive(s, k ? "outputs" : "inputs");
            if (arr && et_pl_files_from_json(&fs, arr, k ? "outputs" : "inputs", &err) == ET_OK) {
                for (size_t i = 0; i < fs.n; i++) {
                    for (size_t np = 1; np <= 4; np++)
                        if (et_pl_safe_output(fs.v[i].path, prefixes, np)) check(path_ok(fs.v[i].path));
                }
                et_buf b = {0};
                if (et_pl_files_to_json(&b, &fs, &err) == ET_OK) {
                    cJSON *back = NULL;
                    et_pl_files fs2 = {0};
                    check(et_json_parse(&back, b.data, b.len, "rt", &err) == ET_OK);
                    check(et_pl_files_from_json(&fs2, back, "rt", &err) == ET_OK && fs2.n == fs.n);
                    for (size_t i = 0; i < fs.n; i++)
                        check(!strcmp(fs.v[i].path, fs2.v[i].path) && !strcmp(fs.v[i].file, fs2.v[i].file) &&
                              !strcmp(fs.v[i].sha, fs2.v[i].sha) && !strcmp(fs.v[i].stat, fs2.v[i].stat) &&
                              fs.v[i].size == fs2.v[i].size);
                    et_pl_files_free(&fs2);
                    cJSON_Delete(back);
                }
                et_buf_free(&b);
            }
            et_pl_files_free(&fs);
        }
    }
    cJSON_Delete(m);
    return 0;
}
