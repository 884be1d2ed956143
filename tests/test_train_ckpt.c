/* test_train_ckpt.c - checkpoint files: round trip of state, parameters,
 * moments and RNG bytes; a flipped byte, a truncated file and a size
 * mismatch are refused with ET_EFORMAT. */
#include "test_util.h"
#include "train_ckpt.h"
#include "util.h"

int main(void) {
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char path[1024];
    snprintf(path, sizeof(path), "%s/test-out/ckpt.bin", build);
    const size_t n = 1001;
    float *p = malloc(n * 4), *m = malloc(n * 4), *v = malloc(n * 4), *p2 = malloc(n * 4), *m2 = malloc(n * 4),
          *v2 = malloc(n * 4);
    for (size_t i = 0; i < n; i++) p[i] = (float)i * 0.5f, m[i] = -(float)i, v[i] = (float)i * i;
    uint8_t rng[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, rng2[32];
    et_ckpt_state st = {.step = 17, .epoch = 2, .batch = 5, .opt_t = 17, .log_bytes = 12345, .best_step = 12,
                        .best_score = 0.625, .last_loss = 1.5, .done = 0};
    snprintf(st.config, sizeof(st.config), "%064d", 7);
    et_error err = {0};
    TEST_CHECK(et_ckpt_save(path, &st, p, m, v, n, rng, sizeof(rng), &err) == 0, "save: %s", err.msg);
    et_ckpt_state st2;
    size_t rn = 0;
    TEST_CHECK(et_ckpt_load(path, &st2, p2, m2, v2, n, rng2, sizeof(rng2), &rn, &err) == 0, "load: %s", err.msg);
    TEST_CHECK(!memcmp(p, p2, n * 4) && !memcmp(m, m2, n * 4) && !memcmp(v, v2, n * 4), "arrays differ");
    TEST_CHECK(rn == sizeof(rng) && !memcmp(rng, rng2, rn), "rng differs");
    TEST_CHECK(st2.step == 17 && st2.epoch == 2 && st2.batch == 5 && st2.opt_t == 17 && st2.log_bytes == 12345 &&
                   st2.best_step == 12 && st2.best_score == 0.625 && st2.last_loss == 1.5 && !strcmp(st.config, st2.config),
               "state differs");
    /* parameters only */
    TEST_CHECK(et_ckpt_save(path, &st, p, NULL, NULL, n, NULL, 0, &err) == 0, "save params");
    TEST_CHECK(et_ckpt_load(path, &st2, p2, NULL, NULL, n, NULL, 0, NULL, &err) == 0, "load params: %s", err.msg);
    TEST_CHECK(et_ckpt_load(path, &st2, p2, m2, v2, n, NULL, 0, NULL, &err) == ET_EFORMAT, "moments missing");
    TEST_CHECK(et_ckpt_load(path, &st2, p2, NULL, NULL, n + 1, NULL, 0, NULL, &err) == ET_EFORMAT &&
                   strstr(err.msg, "parameters"), "size mismatch: %s", err.msg);
    /* damage */
    et_ckpt_save(path, &st, p, m, v, n, rng, sizeof(rng), &err);
    char *data = NULL;
    size_t len = 0;
    et_read_file(path, 0, &data, &len, &err);
    data[len / 2] ^= 0x10;
    et_write_file_atomic(path, data, len, &err);
    TEST_CHECK(et_ckpt_load(path, &st2, p2, m2, v2, n, rng2, sizeof(rng2), &rn, &err) == ET_EFORMAT &&
                   strstr(err.msg, "checksum"), "flipped byte: %s", err.msg);
    data[len / 2] ^= 0x10;
    et_write_file_atomic(path, data, len - 100, &err);
    TEST_CHECK(et_ckpt_load(path, &st2, p2, m2, v2, n, rng2, sizeof(rng2), &rn, &err) == ET_EFORMAT,
               "truncated: %s", err.msg);
    et_write_file_atomic(path, "ETCKPT0", 7, &err);
    TEST_CHECK(et_ckpt_load(path, &st2, p2, m2, v2, n, rng2, sizeof(rng2), &rn, &err) == ET_EFORMAT, "tiny file");
    free(data);
    free(p), free(m), free(v), free(p2), free(m2), free(v2);
    return test_summary("test_train_ckpt");
}
