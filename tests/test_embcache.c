/* test_embcache.c - the SQLite embedding cache: model fingerprints (stable,
 * content-based, option-dependent, invalidated when a model file changes,
 * blind to READMEs), get/put by prompt + text, persistence across opens. */
#include <sys/stat.h>
#include <unistd.h>

#include "embcache.h"
#include "test_util.h"
#include "util.h"

static char root[512];

static void put_file(const char *rel, const char *text) {
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
}

int main(void) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    snprintf(root, sizeof(root), "%s/test-out/embcache", build);
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s/m1/1_Pooling %s/m2/1_Pooling", root, root, root);
    TEST_CHECK(system(cmd) == 0, "setup");
    put_file("m1/config.json", "{\"hidden_size\": 4}");
    put_file("m1/model.safetensors", "weights-v1");
    put_file("m1/1_Pooling/config.json", "{\"pooling_mode_cls_token\": true}");
    put_file("m1/README.md", "readme");
    put_file("m2/config.json", "{\"hidden_size\": 4}");
    put_file("m2/model.safetensors", "weights-v1");
    put_file("m2/1_Pooling/config.json", "{\"pooling_mode_cls_token\": true}");
    char db[1024], m1[1024], m2[1024];
    snprintf(db, sizeof(db), "%s/cache.sqlite", root);
    snprintf(m1, sizeof(m1), "%s/m1", root);
    snprintf(m2, sizeof(m2), "%s/m2", root);
    et_error err = {0};
    et_embcache *c = NULL;
    TEST_CHECK(et_embcache_open(&c, db, &err) == 0, "open: %s", err.msg);
    char k1[65], k1b[65], k2[65], kx[65];
    TEST_CHECK(et_embcache_model_key(c, m1, "maxlen=512", k1, &err) == 0, "key: %s", err.msg);
    TEST_CHECK(et_embcache_model_key(c, m1, "maxlen=512", k1b, &err) == 0 && !strcmp(k1, k1b), "memoized key differs");
    TEST_CHECK(et_embcache_model_key(c, m2, "maxlen=512", k2, &err) == 0 && !strcmp(k1, k2),
               "same files in another directory: different key");
    TEST_CHECK(et_embcache_model_key(c, m1, "maxlen=128", kx, &err) == 0 && strcmp(k1, kx), "options ignored");
    const char *texts[4] = {"alpha", "beta", "", "gamma"};
    float emb[4 * 3] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, out[4 * 3];
    uint8_t found[4];
    TEST_CHECK(et_embcache_put(c, k1, "query: ", texts, 3, 3, emb, &err) == 0, "put: %s", err.msg);
    TEST_CHECK(et_embcache_get(c, k1, "query: ", texts, 4, 3, out, found, &err) == 0, "get: %s", err.msg);
    TEST_CHECK(found[0] && found[1] && found[2] && !found[3], "found %d %d %d %d", found[0], found[1], found[2], found[3]);
    TEST_CHECK(!memcmp(out, emb, 9 * sizeof(float)), "values differ");
    TEST_CHECK(et_embcache_get(c, k1, NULL, texts, 4, 3, out, found, &err) == 0 && !found[0], "prompt ignored");
    TEST_CHECK(et_embcache_get(c, k1, "query: ", texts, 1, 4, out, found, &err) == 0 && !found[0], "dim ignored");
    et_embcache_close(c);
    /* persistence */
    TEST_CHECK(et_embcache_open(&c, db, &err) == 0, "reopen: %s", err.msg);
    TEST_CHECK(et_embcache_get(c, k1, "query: ", texts, 2, 3, out, found, &err) == 0 && found[0] && found[1] &&
                   !memcmp(out, emb, 6 * sizeof(float)),
               "rows lost after reopening");
    /* a README change keeps the key; a weight change invalidates */
    sleep(0);
    put_file("m1/README.md", "another readme");
    TEST_CHECK(et_embcache_model_key(c, m1, "maxlen=512", kx, &err) == 0 && !strcmp(kx, k1), "README changed the key");
    put_file("m1/model.safetensors", "weights-v2");
    TEST_CHECK(et_embcache_model_key(c, m1, "maxlen=512", kx, &err) == 0 && strcmp(kx, k1), "weights change ignored");
    TEST_CHECK(et_embcache_get(c, k1, "query: ", texts, 2, 3, out, found, &err) == 0 && !found[0] && !found[1],
               "old rows of a changed model still served");
    et_embcache_close(c);
    /* errors */
    TEST_CHECK(et_embcache_open(&c, "/nonexistent-dir/x/cache.sqlite", &err) == ET_EIO && strstr(err.msg, "cache"),
               "bad path: %s", err.msg);
    return test_summary("test_embcache");
}
