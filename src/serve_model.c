/* serve_model.c - the serve backend over a loaded et_model (and an optional
 * adapter), and et_server_start. Tokenization follows et_embed exactly
 * (embed.c): transformers get the post-processor's special tokens and Hugging
 * Face truncation; static (model2vec) models get no special tokens, unknown
 * tokens dropped, then a cut at the length limit. So a served vector equals
 * `embtune embed`'s vector for the same text. */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "serve.h"

typedef struct model_backend {
    et_model *m;             /* borrowed */
    const et_adapter *ad;    /* borrowed, may be NULL */
    int ad_docs;             /* the adapter applies to documents as well */
} model_backend;

static int mb_tokenize(void *ctx, et_encoding *enc, const char *text, size_t len, size_t max_len, int left,
                       int32_t **ids, size_t *n, size_t *n_full, et_error *err) {
    et_model *m = ((model_backend *)ctx)->m;
    int is_static = m->cfg.arch == ET_ARCH_STATIC;
    int rc = et_tokenizer_encode(m->tok, text, len, !is_static, 0, enc, err);
    if (rc) return rc;
    if (is_static) {
        int32_t *out = serve_copy_ids(enc->ids, enc->n);
        if (!out) return et_err_set(err, ET_ENOMEM, "out of memory");
        size_t k = 0;
        for (size_t j = 0; j < enc->n; j++)
            if (enc->ids[j] != m->unk_id) out[k++] = enc->ids[j]; /* model2vec drops UNK */
        *n_full = k;
        if (max_len && k > max_len) {
            if (left) memmove(out, out + (k - max_len), max_len * sizeof(int32_t));
            k = max_len;
        }
        *ids = out;
        *n = k;
        return ET_OK;
    }
    *n_full = enc->n;
    if (max_len && enc->n > max_len) {
        if (left) return serve_cut_left(enc, max_len, ids, n) ? et_err_set(err, ET_ENOMEM, "out of memory") : ET_OK;
        if ((rc = et_tokenizer_encode(m->tok, text, len, 1, max_len, enc, err))) return rc;
    }
    if (!(*ids = serve_copy_ids(enc->ids, enc->n))) return et_err_set(err, ET_ENOMEM, "out of memory");
    *n = enc->n;
    return ET_OK;
}

static void mb_encoding_free(void *ctx, et_encoding *enc) {
    (void)ctx;
    et_encoding_free(enc);
}

static int mb_embed(void *ctx, const int32_t *const *ids, const size_t *lens, size_t n, float *out,
                    et_error *err) {
    return et_embed_ids(((model_backend *)ctx)->m, ids, lens, n, out, err);
}

static const char *mb_prompt(void *ctx, const char *name) {
    return et_model_prompt(((model_backend *)ctx)->m, name);
}

static int mb_adapt(void *ctx, float *vecs, size_t n, int is_query, et_error *err) {
    model_backend *mb = ctx;
    if (!mb->ad || (!is_query && !mb->ad_docs)) return ET_OK;
    return et_adapter_apply(mb->ad, vecs, n, vecs, err);
}

static void mb_destroy(void *ctx) { free(ctx); }

int et_server_start(et_server **out, et_model *m, const et_adapter *adapter, const et_serve_opts *opts,
                    et_error *err) {
    *out = NULL;
    if (!m) return et_err_set(err, ET_EINVAL, "et_server_start: no model");
    size_t dim = et_model_dim(m);
    if (adapter && et_adapter_dim(adapter) != dim)
        return et_err_set(err, ET_EINVAL, "the adapter works on %zu-dim embeddings but the model gives %zu",
                          et_adapter_dim(adapter), dim);
    model_backend *mb = et_calloc(1, sizeof(*mb), err);
    if (!mb) return ET_ENOMEM;
    mb->m = m;
    mb->ad = adapter;
    mb->ad_docs = adapter && et_adapter_applies_to_docs(adapter);
    et_model_info info;
    et_model_get_info(m, &info);
    size_t vocab = info.vocab_size;
    size_t tv = et_tokenizer_vocab_size(et_model_tokenizer(m));
    if (tv && tv < vocab) vocab = tv;
    serve_backend be = {
        .ctx = mb,
        .dim = dim,
        .max_length = et_model_max_length(m),
        .vocab_size = vocab,
        .tokenize = mb_tokenize,
        .encoding_free = mb_encoding_free,
        .tokenize_threadsafe = 1, /* et_embed tokenizes on several threads too */
        .embed_ids = mb_embed,
        .default_prompt = et_model_default_prompt(m) ? et_model_prompt(m, et_model_default_prompt(m)) : NULL,
        .prompt = mb_prompt,
        .prompt_excluded = !m->include_prompt && m->cfg.arch != ET_ARCH_STATIC,
        .adapt = adapter ? mb_adapt : NULL,
        .destroy = mb_destroy,
    };
    int rc = serve_start_backend(out, &be, opts, err);
    if (rc) free(mb);
    return rc;
}
