/* eval_model.h - evaluating embedding models (and adapters on top of them)
 * on a dataset: embed corpus and queries (through the embedding cache),
 * rank by cosine similarity, score. */
#ifndef ET_EVAL_MODEL_H
#define ET_EVAL_MODEL_H

#include "eval.h"

typedef struct et_eval_model_opts {
    const char *prompt_name; /* model prompt for queries; NULL = "query" if the model defines it,
                                "none" = no prompt */
    const char *prompt;      /* literal query prompt, overrides prompt_name; NULL = none */
    int use_cache;           /* 1 = read/write the embedding cache (default) */
    const char *cache_path;  /* cache file; NULL = the default location (embcache.h) */
    size_t batch_size;       /* 0 = et_embed's default */
    size_t max_length;       /* 0 = the model's */
    int quiet;
} et_eval_model_opts;

void et_eval_model_opts_default(et_eval_model_opts *o);

/* Which of models[n_models] an adapter was trained on: the one its config
 * names, else 0 (the first model). */
int et_eval_adapter_target(const char *adapter_dir, const char *const *models, size_t n_models);

/* Evaluates model_dir (runs[0], labelled name) and each adapter on top of it
 * (runs[1 + i]); the corpus is embedded once. On success the runs are
 * initialized and owned by the caller (et_eval_run_free each); on failure
 * none is left allocated. */
int et_eval_model(et_eval_run *runs /* [1 + n_adapters] */, const et_dataset *ds, const char *model_dir,
                  const char *name, const char *const *adapters, size_t n_adapters,
                  const et_eval_model_opts *o, const size_t *ks, size_t n_k, et_error *err);

#endif
