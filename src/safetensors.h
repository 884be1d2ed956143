/* safetensors.h - read (mmap) and write safetensors files.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [d0, d1], "data_offsets": [begin, end]},
 *    ..., "__metadata__": {"k": "v"}}
 * then the data section; offsets are relative to the data section. The
 * reader checks every offset against the bytes available, that each tensor's
 * byte size equals numel * dtype size (overflow-safe), and that tensors do not
 * overlap. A malformed file gives ET_EFORMAT naming the file and the tensor.
 */
#ifndef ET_SAFETENSORS_H
#define ET_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef enum et_dtype {
    ET_DT_F32 = 0, ET_DT_F16, ET_DT_BF16, ET_DT_F64,
    ET_DT_I64, ET_DT_I32, ET_DT_I16, ET_DT_I8, ET_DT_U8, ET_DT_BOOL,
    ET_DT_COUNT
} et_dtype;

#define ET_ST_MAX_DIMS 8

typedef struct et_st_tensor {
    const char *name;               /* borrowed from the et_safetensors */
    et_dtype dtype;
    size_t ndim;
    size_t shape[ET_ST_MAX_DIMS];
    size_t numel;
    const uint8_t *data;            /* [nbytes], inside the mapping */
    size_t nbytes;
} et_st_tensor;

typedef struct et_safetensors {
    char *path;            /* owned */
    et_mmap map;           /* the whole file (when opened from a path) */
    et_st_tensor *tensors; /* [n], owned */
    size_t n;
    char *names;           /* owned storage for tensor names */
} et_safetensors;

/* Opens and validates a file (mmapped read-only). Close with et_safetensors_close. */
int et_safetensors_open(et_safetensors *st, const char *path, et_error *err);
/* Validates an in-memory file image (borrowed; must outlive st); `what` names
 * it in messages. Used by et_safetensors_open and the fuzzer. */
int et_safetensors_parse(et_safetensors *st, const uint8_t *data, size_t size, const char *what,
                         et_error *err);
void et_safetensors_close(et_safetensors *st);
/* Tensor by exact name, NULL if absent (borrowed). */
const et_st_tensor *et_safetensors_find(const et_safetensors *st, const char *name);

const char *et_dtype_name(et_dtype dt);
size_t et_dtype_size(et_dtype dt);

/* Converts a floating tensor (F32, F16, BF16, F64) to fp32 into out [numel].
 * Other dtypes: ET_EFORMAT naming `what` and the tensor. */
int et_st_to_f32(const et_st_tensor *t, float *out /* [numel] */, const char *what, et_error *err);
/* Converts an integer tensor (I64, I32, I16, I8, U8) to int32 (range-checked). */
int et_st_to_i32(const et_st_tensor *t, int32_t *out /* [numel] */, const char *what, et_error *err);

float et_bf16_to_f32(uint16_t h);
float et_f16_to_f32(uint16_t h);
uint16_t et_f32_to_bf16(float f); /* round to nearest even, as torch */

/* One fp32 tensor to write. */
typedef struct et_st_out {
    const char *name;
    const float *data;      /* [numel] */
    size_t ndim;
    size_t shape[ET_ST_MAX_DIMS];
} et_st_out;

/* Writes n F32 tensors to `path` atomically (temp file + rename), with
 * __metadata__ {"format": "pt"}, data in the given order, 8-byte aligned
 * header (as the Python writer pads with spaces). */
int et_safetensors_write(const char *path, const et_st_out *t, size_t n, et_error *err);

#endif
