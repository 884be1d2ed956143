/* fuzz_train_log.c - the training-log reader of the eval report on arbitrary
 * bytes, and its charts: must never crash, leak or read out of bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    et_train_log log;
    et_error err;
    if (et_train_log_parse(&log, (const char *)data, size, "fuzz.jsonl", &err)) return 0;
    if (log.n_keys && log.n_rows) {
        et_buf b = {0};
        et_series s = {log.keys[0], log.step, log.vals, 0};
        /* first key's column, strided: copy it out */
        double *y = malloc(log.n_rows * sizeof(double));
        if (y) {
            for (size_t r = 0; r < log.n_rows; r++) y[r] = log.vals[r * log.n_keys];
            s.y = y;
            s.n = log.n_rows;
            et_svg_lines(&b, "t", "step", "v", &s, 1, 0, 0, &err);
            et_svg_lines(&b, "t", "step", "v", &s, 1, 1, 1, &err);
            free(y);
        }
        et_buf_free(&b);
    }
    et_train_log_free(&log);
    return 0;
}
