/* npy.h - NumPy .npy files of float32 matrices [rows, cols] (C order).
 *
 * Writing streams: et_npy_begin writes a fixed 128-byte header with a
 * placeholder row count, rows are appended, et_npy_finish patches the header
 * with the final count and commits the file atomically (temp + rename).
 */
#ifndef ET_NPY_H
#define ET_NPY_H

#include <stddef.h>

#include "util.h"

typedef struct et_npy_writer {
    et_afile f;
    size_t cols;
    size_t rows;
} et_npy_writer;

int et_npy_begin(et_npy_writer *w, const char *path, size_t cols, et_error *err);
int et_npy_append(et_npy_writer *w, const float *rows /* [n, cols] */, size_t n, et_error *err);
int et_npy_finish(et_npy_writer *w, et_error *err);
void et_npy_abort(et_npy_writer *w);

/* Whole-file convenience: writes data [rows, cols] atomically. */
int et_npy_write(const char *path, const float *data, size_t rows, size_t cols, et_error *err);

/* Reads a float32 ('<f4', C order, 1-D or 2-D) .npy file; *data is malloc'd
 * [rows, cols] (caller frees). A 1-D array gives rows = 1. */
int et_npy_read(const char *path, float **data, size_t *rows, size_t *cols, et_error *err);
/* Same from bytes (fuzzable); `what` names the source in messages. */
int et_npy_parse(const char *buf, size_t len, const char *what, float **data, size_t *rows,
                 size_t *cols, et_error *err);

#endif
