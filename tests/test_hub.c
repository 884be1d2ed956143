/* test_hub.c - hub helpers: SHA-1 / git blob ids, spec parsing, the validation of
 * names that come from the network, ETag normalization, the model-file filter. */
#include "hub.h"
#include "test_util.h"

static void sha1_hex(const void *p, size_t n, char out[41]) {
    et_sha1_ctx c;
    uint8_t d[20];
    et_sha1_init(&c);
    /* feed in odd pieces to exercise the block buffer */
    const uint8_t *b = p;
    size_t step = 1;
    while (n) {
        size_t k = step < n ? step : n;
        et_sha1_update(&c, b, k);
        b += k;
        n -= k;
        step = step * 3 + 1;
    }
    et_sha1_final(&c, d);
    et_hex(out, d, 20);
}

int main(void) {
    char h[41];
    /* FIPS 180-4 vectors */
    sha1_hex("", 0, h);
    TEST_CHECK(!strcmp(h, "da39a3ee5e6b4b0d3255bfef95601890afd80709"), "sha1('') = %s", h);
    sha1_hex("abc", 3, h);
    TEST_CHECK(!strcmp(h, "a9993e364706816aba3e25717850c26c9cd0d89d"), "sha1(abc) = %s", h);
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha1_hex(m, strlen(m), h);
    TEST_CHECK(!strcmp(h, "84983e441c3bd26ebaae4aa1f95129e5e54670f1"), "sha1(448 bits) = %s", h);
    static char mil[1000000];
    memset(mil, 'a', sizeof(mil));
    sha1_hex(mil, sizeof(mil), h);
    TEST_CHECK(!strcmp(h, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"), "sha1(1e6 a) = %s", h);
    /* git blob id of "hello\n" (git hash-object) */
    sha1_hex("blob 6\0hello\n", 13, h);
    TEST_CHECK(!strcmp(h, "ce013625030ba8dba906f756967f9e9ca394464a"), "git blob = %s", h);

    char *repo, *rev;
    TEST_CHECK(et_hub_parse_spec("BAAI/bge-small-en-v1.5", &repo, &rev) && !strcmp(repo, "BAAI/bge-small-en-v1.5") &&
                   !strcmp(rev, "main"), "plain id");
    free(repo), free(rev);
    TEST_CHECK(et_hub_parse_spec("a/b@refs/pr/1", &repo, &rev) && !strcmp(rev, "refs/pr/1"), "pr revision");
    free(repo), free(rev);
    const char *badspec[] = {"", "a", "a/b/c", "/a/b", "a/", "../x", "a/..", "a--b/c", "a/b@", "a/b@../x",
                             "a/b@x//y", "a b/c", "-a/b", "a/b.", "a/b@x\ny"};
    for (size_t i = 0; i < sizeof(badspec) / sizeof(*badspec); i++) {
        int ok = et_hub_parse_spec(badspec[i], &repo, &rev);
        TEST_CHECK(!ok && !repo && !rev, "spec '%s' must be rejected", badspec[i]);
        if (ok) free(repo), free(rev);
    }
    TEST_CHECK(et_hub_is_commit("0123456789abcdef0123456789abcdef01234567"), "commit");
    TEST_CHECK(!et_hub_is_commit("0123456789ABCDEF0123456789abcdef01234567"), "uppercase commit");
    TEST_CHECK(!et_hub_is_commit("0123"), "short commit");

    const char *goodf[] = {"config.json", "1_Pooling/config.json", "a b/ü.txt", "x/y/z"};
    const char *badf[] = {"", "/etc/passwd", "../x", "a/../b", "a//b", "a/", "./a", "a\\b", "a\nb", "."};
    for (size_t i = 0; i < sizeof(goodf) / sizeof(*goodf); i++)
        TEST_CHECK(et_hub_valid_filename(goodf[i]), "file '%s' valid", goodf[i]);
    for (size_t i = 0; i < sizeof(badf) / sizeof(*badf); i++)
        TEST_CHECK(!et_hub_valid_filename(badf[i]), "file '%s' must be rejected", badf[i]);

    char e1[] = "\"abc123\"", e2[] = "W/\"ab-c_d.e\"", e3[] = "\"../x\"", e4[] = "\"\"", e5[] = "\"a/b\"";
    TEST_CHECK(et_hub_normalize_etag(e1) && !strcmp(e1, "abc123"), "etag quotes: %s", e1);
    TEST_CHECK(et_hub_normalize_etag(e2) && !strcmp(e2, "ab-c_d.e"), "weak etag: %s", e2);
    TEST_CHECK(!et_hub_normalize_etag(e3), "etag with '/' rejected");
    TEST_CHECK(!et_hub_normalize_etag(e4), "empty etag rejected");
    TEST_CHECK(!et_hub_normalize_etag(e5), "etag with '/' rejected");

    const char *want[] = {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt", "modules.json",
                          "1_Pooling/config.json", "2_Dense/model.safetensors", "sentence_bert_config.json",
                          "config_sentence_transformers.json", "model.safetensors.index.json"};
    const char *skip[] = {"pytorch_model.bin", "README.md", "onnx/model.onnx", ".gitattributes",
                          "1_Pooling/sub/config.json", "Pooling/config.json", "2_Dense/pytorch_model.bin",
                          "openvino/openvino_model.xml", "model.onnx", "tf_model.h5"};
    for (size_t i = 0; i < sizeof(want) / sizeof(*want); i++)
        TEST_CHECK(et_hub_wanted_file(want[i]), "'%s' wanted", want[i]);
    for (size_t i = 0; i < sizeof(skip) / sizeof(*skip); i++)
        TEST_CHECK(!et_hub_wanted_file(skip[i]), "'%s' skipped", skip[i]);

    /* cache dir from the environment */
    setenv("HF_HUB_CACHE", "/x/hub", 1);
    char *c = et_hub_cache_dir(NULL);
    TEST_CHECK(c && !strcmp(c, "/x/hub"), "HF_HUB_CACHE: %s", c ? c : "(null)");
    free(c);
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HOME", "/y", 1);
    c = et_hub_cache_dir(NULL);
    TEST_CHECK(c && !strcmp(c, "/y/hub"), "HF_HOME: %s", c ? c : "(null)");
    free(c);
    unsetenv("HF_HOME");
    setenv("XDG_CACHE_HOME", "/z", 1);
    c = et_hub_cache_dir(NULL);
    TEST_CHECK(c && !strcmp(c, "/z/huggingface/hub"), "XDG: %s", c ? c : "(null)");
    free(c);

    /* et_resolve_model: a directory wins; a non-id that is no directory is a clear error */
    char *dir = NULL;
    et_error err = {0};
    TEST_CHECK(et_resolve_model("tests", &dir, &err) == ET_OK && dir && !strcmp(dir, "tests"), "dir wins");
    free(dir);
    TEST_CHECK(et_resolve_model("./no/such/dir", &dir, &err) == ET_ENOTFOUND && !dir, "missing dir");
    TEST_CHECK(strstr(err.msg, "no such directory") != NULL, "message: %s", err.msg);
    return test_summary("test_hub");
}
