/* encoder_impl.h - INTERNAL: how an encoder implementation plugs into
 * encoder.c (the dispatcher behind encoder.h).
 *
 * An implementation (encoder_static.c, encoder_bert.c) allocates a
 * `struct et_encoder` with calloc, fills the common fields below and points
 * `ops` at its function table; encoder.c forwards every et_encoder_* call to
 * it after checking the arguments (slot range, B <= max_batch, lens <= max_len,
 * non-NULL pointers), so implementations may assume them valid:
 *
 *     int et_encoder_init_static(et_encoder **out, const et_model *m,
 *                                const et_encoder_opts *opts, et_error *err);
 *     int et_encoder_init_bert(et_encoder **out, const et_model *m,
 *                              const et_encoder_opts *opts, et_error *err);
 *
 * et_encoder_init (encoder.c) picks one by the model's architecture.
 * ops->destroy frees everything, the struct included.
 */
#ifndef ET_ENCODER_IMPL_H
#define ET_ENCODER_IMPL_H

#include "encoder.h"

typedef struct et_encoder_ops {
    const char *name; /* "static", "bert" */
    void (*destroy)(et_encoder *enc);
    int (*forward)(et_encoder *enc, int slot, const int32_t *const *ids, const size_t *lens, size_t B,
                   int train, float *emb /* [B, dim] */, et_error *err);
    int (*backward)(et_encoder *enc, int slot, const float *d_emb /* [B, dim] */, et_error *err);
    /* Dropout RNG state; implementations without dropout may leave these NULL. */
    size_t (*rng_state)(const et_encoder *enc, void *buf, size_t cap);
    int (*set_rng_state)(et_encoder *enc, const void *buf, size_t n, et_error *err);
    int (*save)(const et_encoder *enc, const char *dir, et_error *err);
} et_encoder_ops;

struct et_encoder {
    const et_encoder_ops *ops;
    const et_model *model;   /* borrowed */
    et_encoder_opts opts;    /* resolved: max_batch, max_len >= 1 */
    size_t dim;              /* embedding width */
    size_t n_params;
    float *params;           /* [n_params], owned by the implementation */
    float *grads;            /* [n_params], owned by the implementation */
    uint8_t *decay_mask;     /* [n_params], owned by the implementation */
    void *impl;              /* implementation state */
};

int et_encoder_init_static(et_encoder **out, const et_model *m, const et_encoder_opts *opts, et_error *err);
/* A static encoder over a given full table (copied) [V, D]: forward = mean of
 * the rows of the ids (unk_id dropped; -1 = none), then L2-normalized if
 * `normalize`. m may be NULL (then et_encoder_save is unsupported). */
int et_encoder_static_from_table(et_encoder **out, const et_model *m, const float *table /* [V, D] */,
                                 size_t V, size_t D, int normalize, int32_t unk_id,
                                 const et_encoder_opts *opts, et_error *err);
/* Copies src_dir/name to dst_dir/name atomically (subdirectories of name are
 * created). A missing source is ET_ENOTFOUND if `required`, else skipped. */
int et_encoder_copy_file(const char *src_dir, const char *name, const char *dst_dir, int required,
                         et_error *err);

/* Copies src_dir/name to dst_dir/name atomically (subdirectories of name are
 * created). A missing source is ET_ENOTFOUND if `required`, else skipped. */
int et_encoder_copy_file(const char *src_dir, const char *name, const char *dst_dir, int required,
                         et_error *err);

int et_encoder_init_bert(et_encoder **out, const et_model *m, const et_encoder_opts *opts, et_error *err);

#endif
