/* test_util.c - util.c and threads.c: hashing vectors, buffers, atomic files, pool. */
#include <unistd.h>

#include "strmap.h"
#include "test_util.h"
#include "threads.h"
#include "util.h"

static void sum_task(void *ctx, int ith, int nth) {
    long *rows = ctx; /* [1000] */
    long lo, hi;
    et_split(1000, ith, nth, &lo, &hi);
    for (long i = lo; i < hi; i++) rows[i] += i;
}

int main(void) {
    char hex[65];
    uint8_t d[32];
    et_sha256("abc", 3, d);
    et_hex(hex, d, 32);
    TEST_CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"), "sha256(abc) = %s", hex);
    et_sha256("", 0, d);
    et_hex(hex, d, 32);
    TEST_CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"), "sha256('') = %s", hex);
    /* 1,000,000 x 'a' across block boundaries in odd-sized updates */
    et_sha256_ctx c;
    et_sha256_init(&c);
    char a[997];
    memset(a, 'a', sizeof(a));
    size_t left = 1000000;
    while (left) { size_t k = left < sizeof(a) ? left : sizeof(a); et_sha256_update(&c, a, k); left -= k; }
    et_sha256_final(&c, d);
    et_hex(hex, d, 32);
    TEST_CHECK(!strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"), "sha256(1M a) = %s", hex);

    et_error err = {0};
    et_buf b = {0};
    TEST_CHECK(et_buf_json_string(&b, "a\"b\\\n\x01\xc3\xa9", 8, &err) == 0, "json string");
    TEST_CHECK(!strcmp(b.data, "\"a\\\"b\\\\\\n\\u0001\xc3\xa9\""), "json escape: %s", b.data);
    et_buf_free(&b);

    size_t out;
    TEST_CHECK(!et_size_mul(SIZE_MAX / 2, 3, &out), "mul overflow detected");
    TEST_CHECK(et_malloc_n(SIZE_MAX / 2, 3, &err) == NULL && err.code == ET_ENOMEM, "malloc_n overflow");
    long v;
    TEST_CHECK(et_parse_long("12", 0, 100, &v) == 0 && v == 12, "parse 12");
    TEST_CHECK(et_parse_long("12x", 0, 100, &v) != 0, "reject 12x");
    TEST_CHECK(et_parse_long("101", 0, 100, &v) != 0, "reject out of range");

    /* atomic writes: abort leaves the old file, commit replaces it */
    char path[256];
    snprintf(path, sizeof(path), "%s/test-out/atomic.txt", getenv("BUILD") ? getenv("BUILD") : "build");
    TEST_CHECK(et_write_file_atomic(path, "old", 3, &err) == 0, "write: %s", err.msg);
    et_afile f;
    TEST_CHECK(et_afile_open(&f, path, &err) == 0, "afile open");
    fputs("new but aborted", f.fp);
    et_afile_abort(&f);
    char *data = NULL;
    size_t len = 0;
    TEST_CHECK(et_read_file(path, 0, &data, &len, &err) == 0 && len == 3 && !memcmp(data, "old", 3), "abort kept old file");
    free(data);
    TEST_CHECK(et_write_file_atomic("/nonexistent-dir/x", "a", 1, &err) == ET_EIO, "unwritable dir gives ET_EIO");
    TEST_CHECK(strstr(err.msg, "/nonexistent-dir/x") != NULL, "message names the file: %s", err.msg);
    TEST_CHECK(et_read_file("/nonexistent-file", 0, &data, &len, &err) == ET_ENOTFOUND, "missing file");

    /* pool: every row touched exactly once, repeatedly, with 1..3 threads */
    long rows[1000];
    for (int n = 1; n <= 3; n++) {
        et_set_threads(n);
        memset(rows, 0, sizeof(rows));
        for (int rep = 0; rep < 50; rep++) et_parallel(sum_task, rows);
        int ok = 1;
        for (long i = 0; i < 1000; i++) ok &= rows[i] == 50 * i;
        TEST_CHECK(ok, "parallel rows with %d threads", n);
    }
    /* strmap: 10k keys incl. the empty key and keys with NUL bytes */
    et_strmap m;
    et_strmap_init(&m);
    char key[32];
    int okm = 1;
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        okm &= et_strmap_put(&m, key, (size_t)n, i, &err) == 0;
    }
    okm &= et_strmap_put(&m, "", 0, -1, &err) == 0;
    okm &= et_strmap_put(&m, "a\0b", 3, -2, &err) == 0;
    int64_t got;
    for (int i = 0; i < 10000; i++) {
        int n = snprintf(key, sizeof(key), "k%d", i);
        okm &= et_strmap_get(&m, key, (size_t)n, &got) && got == i;
    }
    okm &= et_strmap_get(&m, "", 0, &got) && got == -1;
    okm &= et_strmap_get(&m, "a\0b", 3, &got) && got == -2;
    okm &= !et_strmap_get(&m, "a", 1, &got);
    okm &= et_strmap_put_new(&m, "k5", 2, 99, &got, &err) == 1 && got == 5;
    okm &= m.count == 10002;
    TEST_CHECK(okm, "strmap put/get");
    et_strmap_free(&m);
    return test_summary("test_util");
}
