/* test_pipeline_manifest.c - the manifest's FILE records: parse, write, parse
 * again gives the same records, whatever bytes an old manifest held (a stat
 * with quotes and backslashes once came back changed: found by fuzz_manifest);
 * the output-path guard refuses absolute, "..", "." and empty components. */
#include <string.h>

#include "json.h"
#include "pipeline.h"
#include "test_util.h"

static void roundtrip(const char *json) {
    cJSON *j = NULL, *back = NULL;
    et_error err = {0};
    et_pl_files a = {0}, b = {0};
    et_buf out = {0};
    TEST_CHECK(et_json_parse(&j, json, strlen(json), "manifest.json", &err) == 0, "parse: %s", err.msg);
    TEST_CHECK(et_pl_files_from_json(&a, j, "inputs", &err) == 0, "records: %s", err.msg);
    TEST_CHECK(et_pl_files_to_json(&out, &a, &err) == 0, "write: %s", err.msg);
    TEST_CHECK(et_json_parse(&back, out.data, out.len, "rt", &err) == 0, "written records are not JSON (%s): %s",
               err.msg, out.data);
    TEST_CHECK(et_pl_files_from_json(&b, back, "rt", &err) == 0, "records again: %s", err.msg);
    TEST_CHECK(a.n == b.n, "count %zu vs %zu", a.n, b.n);
    for (size_t i = 0; i < a.n && i < b.n; i++) {
        TEST_CHECK(!strcmp(a.v[i].path, b.v[i].path), "path '%s' came back as '%s'", a.v[i].path, b.v[i].path);
        TEST_CHECK(!strcmp(a.v[i].file, b.v[i].file), "file '%s' came back as '%s'", a.v[i].file, b.v[i].file);
        TEST_CHECK(!strcmp(a.v[i].stat, b.v[i].stat), "stat '%s' came back as '%s'", a.v[i].stat, b.v[i].stat);
        TEST_CHECK(!strcmp(a.v[i].sha, b.v[i].sha), "sha256 changed");
        TEST_CHECK(a.v[i].size == b.v[i].size, "size changed");
        TEST_CHECK((a.v[i].role == NULL) == (b.v[i].role == NULL) && (!a.v[i].role || !strcmp(a.v[i].role, b.v[i].role)),
                   "role changed");
    }
    et_pl_files_free(&a);
    et_pl_files_free(&b);
    et_buf_free(&out);
    cJSON_Delete(j);
    cJSON_Delete(back);
}

int main(void) {
    const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    char json[1024];
    snprintf(json, sizeof(json),
             "[{\"role\":\"doc\",\"path\":\"a \\\"b\\\".pdf\",\"file\":\"/x/a\\\\b\",\"size\":3,\"stat\":\"1:2:3:4\","
             "\"sha256\":\"%s\"},"
             "{\"path\":\"p\",\"file\":\"/f\",\"stat\":\"10\\\\\\\\\\\"x\\\"\\n\",\"sha256\":\"%s\"}]",
             sha, sha);
    roundtrip(json);
    static const char *const pre[] = {"chunks-val.jsonl", "model/"};
    TEST_CHECK(et_pl_safe_output("model/config.json", pre, 2), "model/config.json is a stage output");
    TEST_CHECK(et_pl_safe_output("chunks-val.jsonl", pre, 2), "chunks-val.jsonl is a stage output");
    static const char *const bad[] = {"/etc/passwd", "model/../x", "model/./x", "model//x", "model/", "model/x/",
                                      "", "chunks-val.jsonl/x", "other"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        TEST_CHECK(!et_pl_safe_output(bad[i], pre, 2), "'%s' must not be accepted as an output", bad[i]);
    return test_summary("test_pipeline_manifest");
}
