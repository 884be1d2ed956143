/* encoder.c - the trainable-encoder interface (encoder.h): picks an
 * implementation by architecture and checks arguments before forwarding to
 * it (see encoder_impl.h). */
#include <stdlib.h>
#include <string.h>

#include "encoder_impl.h"
#include "util.h"

int et_encoder_init(et_encoder **out, const et_model *m, const et_encoder_opts *opts, et_error *err) {
    *out = NULL;
    if (!m) return et_err_set(err, ET_EINVAL, "encoder: no model");
    et_encoder_opts o = {.dropout = -1.0f, .seed = 0, .max_batch = 32, .max_len = 0};
    if (opts) o = *opts;
    if (o.max_batch == 0) o.max_batch = 32;
    if (o.max_len == 0) o.max_len = et_model_max_length(m) ? et_model_max_length(m) : 512;
    et_model_info info;
    et_model_get_info(m, &info);
    const char *arch = info.architecture ? info.architecture : "";
    if (!strcmp(arch, "model2vec") || !strcmp(arch, "static"))
        return et_encoder_init_static(out, m, &o, err);
    if (!strcmp(arch, "bert") || !strcmp(arch, "xlm-roberta") || !strcmp(arch, "roberta"))
        return et_encoder_init_bert(out, m, &o, err);
    return et_err_set(err, ET_EUNSUPPORTED, "encoder: cannot fine-tune architecture '%s'", arch);
}

void et_encoder_free(et_encoder *enc) {
    if (enc) enc->ops->destroy(enc);
}

size_t et_encoder_dim(const et_encoder *enc) { return enc->dim; }

float *et_encoder_params(et_encoder *enc, size_t *n) {
    if (n) *n = enc->n_params;
    return enc->params;
}

float *et_encoder_grads(et_encoder *enc, size_t *n) {
    if (n) *n = enc->n_params;
    return enc->grads;
}

const uint8_t *et_encoder_decay_mask(et_encoder *enc) { return enc->decay_mask; }

static int check_slot(const et_encoder *enc, int slot, et_error *err) {
    if (slot < 0 || slot >= ET_ENCODER_MAX_SLOTS)
        return et_err_set(err, ET_EINVAL, "encoder: slot %d out of range 0..%d", slot, ET_ENCODER_MAX_SLOTS - 1);
    (void)enc;
    return ET_OK;
}

int et_encoder_forward(et_encoder *enc, int slot, const int32_t *const *ids, const size_t *lens, size_t B,
                       int train, float *emb, et_error *err) {
    if (train && check_slot(enc, slot, err)) return err ? err->code : ET_EINVAL;
    if (B == 0) return ET_OK;
    if (!ids || !lens || !emb) return et_err_set(err, ET_EINVAL, "encoder forward: NULL argument");
    if (B > enc->opts.max_batch)
        return et_err_set(err, ET_EINVAL, "encoder forward: batch of %zu exceeds max_batch %zu", B,
                          enc->opts.max_batch);
    for (size_t b = 0; b < B; b++) {
        if (lens[b] > enc->opts.max_len)
            return et_err_set(err, ET_EINVAL, "encoder forward: sequence %zu has %zu tokens, max_len is %zu", b,
                              lens[b], enc->opts.max_len);
        if (lens[b] && !ids[b]) return et_err_set(err, ET_EINVAL, "encoder forward: sequence %zu is NULL", b);
    }
    return enc->ops->forward(enc, slot, ids, lens, B, train, emb, err);
}

int et_encoder_backward(et_encoder *enc, int slot, const float *d_emb, et_error *err) {
    int rc = check_slot(enc, slot, err);
    if (rc) return rc;
    if (!d_emb) return et_err_set(err, ET_EINVAL, "encoder backward: NULL gradient");
    return enc->ops->backward(enc, slot, d_emb, err);
}

size_t et_encoder_rng_state(const et_encoder *enc, void *buf, size_t cap) {
    return enc->ops->rng_state ? enc->ops->rng_state(enc, buf, cap) : 0;
}

int et_encoder_set_rng_state(et_encoder *enc, const void *buf, size_t n, et_error *err) {
    if (!enc->ops->set_rng_state) {
        if (n == 0) return ET_OK;
        return et_err_set(err, ET_EINVAL, "encoder (%s) has no RNG state, got %zu bytes", enc->ops->name, n);
    }
    return enc->ops->set_rng_state(enc, buf, n, err);
}

int et_encoder_save(const et_encoder *enc, const char *dir, et_error *err) {
    if (!enc->ops->save) return et_err_set(err, ET_EUNSUPPORTED, "encoder (%s) cannot save", enc->ops->name);
    return enc->ops->save(enc, dir, err);
}

int et_encoder_copy_file(const char *src_dir, const char *name, const char *dst_dir, int required,
                         et_error *err) {
    char *src = et_path_join(src_dir, name, err), *dst = src ? et_path_join(dst_dir, name, err) : NULL;
    int rc = ET_OK;
    if (!src || !dst) {
        rc = ET_ENOMEM;
        goto done;
    }
    if (!et_file_exists(src)) {
        if (required) rc = et_err_set(err, ET_ENOTFOUND, "%s: not found (needed in the saved model)", src);
        goto done;
    }
    char *slash = strrchr(dst, '/');
    if (slash && strchr(name, '/')) {
        *slash = 0;
        rc = et_mkdir_p(dst, err);
        *slash = '/';
        if (rc) goto done;
    }
    char *data = NULL;
    size_t len = 0;
    if ((rc = et_read_file(src, 0, &data, &len, err))) goto done;
    rc = et_write_file_atomic(dst, data, len, err);
    free(data);
done:
    free(src);
    free(dst);
    return rc;
}
