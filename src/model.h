/* model.h - INTERNAL: a loaded embedding model (config + parameters).
 *
 * Parameters live in ONE contiguous fp32 buffer (`params`, `n_params` floats),
 * carved into named tensors from a size table, llm.c style. Per-layer tensors
 * are stacked [L, ...]; Q, K and V are fused into one [L, 3C, C] weight (rows
 * 0..C-1 = query, C..2C-1 = key, 2C..3C-1 = value) and one [L, 3C] bias.
 * A trainer carves its gradient / AdamW buffers with the same table:
 *
 *     size_t sizes[ET_BERT_NUM_TENSORS];
 *     size_t n = et_bert_param_sizes(&m->cfg, sizes);   // == m->n_params
 *     float *grads = calloc(n, sizeof(float));
 *     et_bert_params g;
 *     et_bert_point_params(&g, grads, sizes);           // g.qkvw, g.ln1w, ...
 *
 * Every stored tensor maps back to the Hugging Face tensor(s) it was loaded
 * from (et_model_hf_tensors), so exporting is one loop over that list with
 * et_safetensors_write (see safetensors.h).
 *
 * Shapes (C = hidden, L = layers, F = intermediate, V = vocab, P = max
 * positions, TV = token types; HF names without the `bert.`/`roberta.` prefix):
 *   wte      [V, C]      embeddings.word_embeddings.weight
 *   wpe      [P, C]      embeddings.position_embeddings.weight
 *   wtt      [TV, C]     embeddings.token_type_embeddings.weight
 *   emb_lnw  [C]         embeddings.LayerNorm.weight
 *   emb_lnb  [C]         embeddings.LayerNorm.bias
 *   qkvw     [L, 3C, C]  encoder.layer.{l}.attention.self.{query,key,value}.weight
 *   qkvb     [L, 3C]     encoder.layer.{l}.attention.self.{query,key,value}.bias
 *   attprojw [L, C, C]   encoder.layer.{l}.attention.output.dense.weight
 *   attprojb [L, C]      encoder.layer.{l}.attention.output.dense.bias
 *   ln1w     [L, C]      encoder.layer.{l}.attention.output.LayerNorm.weight
 *   ln1b     [L, C]      encoder.layer.{l}.attention.output.LayerNorm.bias
 *   fcw      [L, F, C]   encoder.layer.{l}.intermediate.dense.weight
 *   fcb      [L, F]      encoder.layer.{l}.intermediate.dense.bias
 *   fcprojw  [L, C, F]   encoder.layer.{l}.output.dense.weight
 *   fcprojb  [L, C]      encoder.layer.{l}.output.dense.bias
 *   ln2w     [L, C]      encoder.layer.{l}.output.LayerNorm.weight
 *   ln2b     [L, C]      encoder.layer.{l}.output.LayerNorm.bias
 *   poolw    [C, C]      pooler.dense.weight   (size 0 when the source has no pooler;
 *   poolb    [C]         pooler.dense.bias      unused by sentence embeddings, kept
 *                                               only so an export round-trips)
 * Linear weights are stored as in PyTorch: [out_features, in_features].
 *
 * Static (model2vec) models: params = the embedding table [R, D]
 * ("embeddings" in model2vec's model.safetensors, "embedding.weight" in a
 * sentence-transformers StaticEmbedding module); optional `mapping` [V]
 * (token id -> row) and `tok_weights` [V] (per-token scale) are kept outside
 * params (they are not trained).
 *
 * Forward semantics: see bert.c (transformer) and static_model.c.
 */
#ifndef ET_MODEL_H
#define ET_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "embtune.h"

typedef enum et_arch {
    ET_ARCH_BERT = 1,  /* BERT, incl. bge/GIST/MiniLM/e5/gte/arctic-embed */
    ET_ARCH_XLMR,      /* XLM-RoBERTa / RoBERTa: positions offset by pad+1 */
    ET_ARCH_STATIC     /* model2vec / StaticEmbedding */
} et_arch;

typedef enum et_act {
    ET_ACT_GELU = 0,   /* erf GELU ("gelu") */
    ET_ACT_GELU_TANH,  /* tanh approximation ("gelu_new", "gelu_pytorch_tanh", "gelu_fast") */
    ET_ACT_RELU        /* "relu" */
} et_act;

typedef struct et_model_config {
    et_arch arch;
    size_t vocab_size;      /* V */
    size_t hidden;          /* C (static models: D, the embedding width) */
    size_t n_layers;        /* L */
    size_t n_heads;         /* NH; head size = C / NH */
    size_t intermediate;    /* F */
    size_t max_position;    /* P: max_position_embeddings */
    size_t type_vocab_size; /* TV (>= 1) */
    et_act act;
    float ln_eps;           /* layer_norm_eps */
    int pad_token_id;       /* config pad_token_id (XLM-R: 1) */
    size_t pos_offset;      /* first position id of a sequence: 0 (BERT), pad_token_id + 1 (XLM-R) */
    float hidden_dropout;   /* hidden_dropout_prob (training only) */
    float attn_dropout;     /* attention_probs_dropout_prob (training only) */
    int has_pooler;         /* source has pooler.dense.* */
} et_model_config;

/* ---- BERT / XLM-R parameter table ------------------------------------------- */

enum {
    ET_BERT_WTE, ET_BERT_WPE, ET_BERT_WTT, ET_BERT_EMB_LNW, ET_BERT_EMB_LNB,
    ET_BERT_QKVW, ET_BERT_QKVB, ET_BERT_ATTPROJW, ET_BERT_ATTPROJB,
    ET_BERT_LN1W, ET_BERT_LN1B, ET_BERT_FCW, ET_BERT_FCB,
    ET_BERT_FCPROJW, ET_BERT_FCPROJB, ET_BERT_LN2W, ET_BERT_LN2B,
    ET_BERT_POOLW, ET_BERT_POOLB,
    ET_BERT_NUM_TENSORS
};

/* Pointers into a flat buffer, in the enum's order (t[i] == the named field). */
typedef union et_bert_params {
    struct {
        float *wte, *wpe, *wtt, *emb_lnw, *emb_lnb;
        float *qkvw, *qkvb, *attprojw, *attprojb;
        float *ln1w, *ln1b, *fcw, *fcb;
        float *fcprojw, *fcprojb, *ln2w, *ln2b;
        float *poolw, *poolb;
    };
    float *t[ET_BERT_NUM_TENSORS];
} et_bert_params;

/* Fills sizes[ET_BERT_NUM_TENSORS] (floats per tensor) and returns the total,
 * or 0 if the config overflows size_t. */
size_t et_bert_param_sizes(const et_model_config *cfg, size_t sizes[ET_BERT_NUM_TENSORS]);
/* Points p's tensors into base (consecutive, in enum order). */
void et_bert_point_params(et_bert_params *p, float *base, const size_t sizes[ET_BERT_NUM_TENSORS]);
/* 1 if AdamW weight decay applies to tensor i (HF Trainer: not biases, not LayerNorm). */
int et_bert_param_decays(int i);
/* Short name of tensor i ("qkvw", ...), static. */
const char *et_bert_param_name(int i);

/* ---- the model --------------------------------------------------------------- */

#define ET_MAX_PROMPTS 16

struct et_model {
    et_model_config cfg;
    float *params;         /* [n_params], owned (64-byte aligned; free with free()) */
    size_t n_params;
    size_t sizes[ET_BERT_NUM_TENSORS]; /* BERT/XLM-R: floats per tensor */
    et_bert_params p;      /* BERT/XLM-R: pointers into params */

    /* static models */
    float *static_emb;     /* [static_rows, C] == params */
    size_t static_rows;
    int32_t *mapping;      /* [vocab_size] token id -> row, or NULL (identity) */
    float *tok_weights;    /* [vocab_size] per-token scale, or NULL (1) */

    et_tokenizer *tok;     /* owned */
    char *dir;             /* model directory, owned */
    char *prefix;          /* "" , "bert." or "roberta." as found in the weights */
    const char *dtype;     /* "F32", "F16", "BF16", "mixed" (static string) */
    char *weights_file;    /* "model.safetensors" or the index file name, owned */
    int pooling;           /* enum et_pooling, resolved (never DEFAULT) */
    int normalize;         /* 1 if a Normalize module is present */
    int has_modules;       /* modules.json was found */
    size_t max_length;     /* tokens incl. specials (resolved) */
    int do_lower_case;     /* sentence_bert_config.json: 1 = inputs are lowercased (Python str.lower)
                              before tokenizing, as sentence-transformers' Transformer does */
    int include_prompt;    /* 1_Pooling include_prompt (default 1); 0 = et_embed leaves the prompt's
                              tokens out of the pooling */
    int quiet;
    size_t batch_size;     /* et_embed batch size (default 32) */
    int32_t unk_id;        /* static models: UNK token id to drop, -1 if none */
    size_t n_prompts;
    char *prompt_names[ET_MAX_PROMPTS]; /* owned */
    char *prompt_texts[ET_MAX_PROMPTS]; /* owned */
    char *default_prompt;  /* default_prompt_name's name, owned, or NULL */
};

/* One Hugging Face tensor held in m->params: its full name as the source
 * model spelled it (prefix included), shape, and offset (in floats). */
typedef struct et_hf_tensor {
    char name[128];
    size_t offset;     /* into m->params */
    size_t shape[2];
    int ndim;          /* 1 or 2 */
} et_hf_tensor;

/* The list of HF tensors of m (caller frees *out with free()). Exporting is a
 * loop: et_safetensors_write(path, tensors built from (name, params + offset,
 * shape)). For static models: one tensor (its source name, or "embeddings"). */
int et_model_hf_tensors(const et_model *m, et_hf_tensor **out, size_t *n, et_error *err);

/* ---- config parsing from bytes (used by the loader and the fuzzers) ------------ */

/* Parses config.json text into cfg; `what` names the file in messages. Sets
 * arch (ET_ARCH_STATIC for model_type model2vec). Validates sizes. */
int et_config_parse(et_model_config *cfg, const char *json, size_t len, const char *what,
                    et_error *err);

/* sentence-transformers module description, parsed from modules.json and the
 * module configs. Fields keep -1 / 0 when a file does not say. */
typedef struct et_st_modules {
    int has_transformer;   /* a Transformer module */
    int has_static;        /* a StaticEmbedding module */
    int has_pooling;       /* a Pooling module */
    int has_normalize;     /* a Normalize module */
    char pooling_path[256];/* module path of Pooling ("1_Pooling") */
    char static_path[256]; /* module path of StaticEmbedding ("" or "0_StaticEmbedding") */
    int pooling;           /* enum et_pooling from the Pooling config, 0 = unknown */
} et_st_modules;

/* Parses modules.json text. */
int et_modules_parse(et_st_modules *mods, const char *json, size_t len, const char *what,
                     et_error *err);
/* Parses a 1_Pooling/config.json text into *pooling (enum et_pooling) and
 * *include_prompt (1 when absent). */
int et_pooling_config_parse(int *pooling, int *include_prompt, const char *json, size_t len,
                            const char *what, et_error *err);
/* Parses sentence_bert_config.json text: max_seq_length (0 if absent), do_lower_case (-1 if absent). */
int et_st_config_parse(size_t *max_seq_length, int *do_lower_case, const char *json, size_t len,
                       const char *what, et_error *err);
/* Parses config_sentence_transformers.json prompts into m (names/texts). */
int et_prompts_parse(et_model *m, const char *json, size_t len, const char *what, et_error *err);

/* ---- forward passes (internal) ----------------------------------------------------- */

/* Transformer forward of B sequences (ids include specials, lens[b] >= 1,
 * <= the model's position limit) into pooled, optionally normalized out [B, C].
 * The first `skip` tokens of every sequence are masked out of mean / max /
 * weighted pooling (a prompt with include_prompt: false; 0 = none). */
int et_bert_embed_batch(et_model *m, const int32_t *const *ids, const size_t *lens, size_t B,
                        size_t skip, float *out /* [B, C] */, et_error *err);
/* Static model: mean of (weighted) rows of the ids (UNK dropped), normalized if configured. */
int et_static_embed_batch(et_model *m, const int32_t *const *ids, const size_t *lens, size_t B,
                          float *out /* [B, C] */, et_error *err);

#endif
