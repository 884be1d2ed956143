/* encoder.h - a trainable text encoder: token ids in, pooled embeddings out,
 * and the backward pass from embedding gradients to parameter gradients.
 *
 * The trainer (train*.c) only sees this interface: it tokenizes a batch, runs
 * et_encoder_forward for each column of the batch (queries, positives,
 * negatives) into separate activation slots, computes the loss and its
 * gradient with respect to each embedding matrix (loss*.c), then calls
 * et_encoder_backward per slot, clips, and steps AdamW over the flat
 * params/grads buffers.
 *
 * Implementations:
 *   encoder_static.c  model2vec / static embeddings: a [vocab, dim] table
 *                     (a quantized table is expanded first); mean pooling.
 *   encoder_bert.c    BERT / XLM-RoBERTa: full backpropagation through the
 *                     transformer (embeddings, LayerNorm, masked attention,
 *                     GELU, dense layers), CLS/mean pooling.
 * Both apply the model's Normalize module inside forward/backward, so the
 * embeddings equal et_embed's for the same parameters.
 *
 * Memory: parameters, gradients and (in the trainer) AdamW moments are one
 * contiguous fp32 buffer each (llm.c style); zeroing gradients is one memset,
 * a checkpoint is one write per buffer.
 */
#ifndef ET_ENCODER_H
#define ET_ENCODER_H

#include "embtune.h"

#define ET_ENCODER_MAX_SLOTS 8

typedef struct et_encoder et_encoder;

typedef struct et_encoder_opts {
    float dropout;      /* < 0: from the model config (hidden/attention dropout); 0: off */
    uint64_t seed;      /* dropout RNG seed */
    size_t max_batch;   /* largest B passed to forward (activations are sized for it) */
    size_t max_len;     /* largest T (tokens per sequence, specials included) */
} et_encoder_opts;

/* Creates a trainable copy of the model's parameters (fp32). The model must
 * outlive the encoder (the tokenizer and config are borrowed). Caller frees. */
int et_encoder_init(et_encoder **out, const et_model *m, const et_encoder_opts *opts, et_error *err);
void et_encoder_free(et_encoder *enc);

size_t et_encoder_dim(const et_encoder *enc);
/* Flat parameter and gradient buffers [n]; borrowed, valid until freed. */
float *et_encoder_params(et_encoder *enc, size_t *n);
float *et_encoder_grads(et_encoder *enc, size_t *n);
/* Weight-decay mask [n]: 1 where AdamW applies decay (weights), 0 for
 * biases and LayerNorm parameters (as sentence-transformers/HF do). Borrowed. */
const uint8_t *et_encoder_decay_mask(et_encoder *enc);

/* Forward pass of B sequences (ids include special tokens) into emb [B, dim].
 * train = 1: dropout on, activations saved in `slot` for et_encoder_backward;
 * train = 0: no dropout, nothing saved (slot ignored). */
int et_encoder_forward(et_encoder *enc, int slot, const int32_t *const *ids, const size_t *lens,
                       size_t B, int train, float *emb /* [B, dim] */, et_error *err);
/* Accumulates (+=) parameter gradients from d_emb [B, dim], the loss gradient
 * with respect to the embeddings that forward(slot) produced. */
int et_encoder_backward(et_encoder *enc, int slot, const float *d_emb /* [B, dim] */, et_error *err);

/* Dropout RNG state, for checkpoints (bytes, opaque). */
size_t et_encoder_rng_state(const et_encoder *enc, void *buf, size_t cap);
int et_encoder_set_rng_state(et_encoder *enc, const void *buf, size_t n, et_error *err);

/* Writes the current parameters as a model directory in the base model's
 * layout (config.json, model.safetensors, tokenizer files, sentence-
 * transformers modules), atomically per file. */
int et_encoder_save(const et_encoder *enc, const char *dir, et_error *err);

#endif
