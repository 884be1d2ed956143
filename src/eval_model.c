/* eval_model.c - evaluating embedding models; see eval_model.h.
 *
 * TODO(eval): the model runtime (et_model_load / et_embed, branch `model`)
 * and the adapters / embedding cache (branch `train`) are not on main yet;
 * until they land, -m reports that clearly instead of evaluating. */
#include "eval_model.h"

#include <string.h>

void et_eval_model_opts_default(et_eval_model_opts *o) {
    memset(o, 0, sizeof(*o));
    o->use_cache = 1;
}

int et_eval_adapter_target(const char *adapter_dir, const char *const *models, size_t n_models) {
    (void)adapter_dir;
    (void)models;
    (void)n_models;
    return 0;
}

int et_eval_model(et_eval_run *runs, const et_dataset *ds, const char *model_dir, const char *name,
                  const char *const *adapters, size_t n_adapters, const et_eval_model_opts *o,
                  const size_t *ks, size_t n_k, et_error *err) {
    (void)runs; (void)ds; (void)name; (void)adapters; (void)n_adapters; (void)o; (void)ks; (void)n_k;
    return et_err_set(err, ET_EUNSUPPORTED,
                      "%s: evaluating models needs the embedding runtime (et_embed), which is not "
                      "in this build yet; use --bm25", model_dir);
}
