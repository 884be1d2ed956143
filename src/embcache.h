/* embcache.h - embeddings cached on disk (SQLite), keyed by model
 * fingerprint + prompt + text, so adapter epochs and evaluation re-runs do not
 * re-embed anything.
 *
 * A model's fingerprint is the SHA-256 of its configuration, tokenizer and
 * weight files (plus caller options that change embeddings, e.g. max length),
 * memoized per directory by the files' (size, mtime, inode): a changed model
 * gets a new fingerprint, so stale vectors are never returned, and the rows
 * of its previous fingerprint are deleted.
 *
 * Location: the path given, else $EMBTUNE_CACHE_DIR/embeddings.sqlite, else
 * $XDG_CACHE_HOME/embtune/..., else ~/.cache/embtune/embeddings.sqlite.
 * WAL mode with a busy timeout: several processes may share one cache.
 */
#ifndef ET_EMBCACHE_H
#define ET_EMBCACHE_H

#include "embtune.h"

typedef struct et_embcache et_embcache;

/* Opens (creating) the cache at path (NULL = default location). Caller closes. */
int et_embcache_open(et_embcache **out, const char *path, et_error *err);
void et_embcache_close(et_embcache *c);
/* The database file in use (borrowed). */
const char *et_embcache_path(const et_embcache *c);

/* Fingerprint of the model in `dir` combined with `extra` (may be NULL):
 * 64 hex chars + NUL into key. */
int et_embcache_model_key(et_embcache *c, const char *dir, const char *extra, char key[65], et_error *err);

/* Signature of the files of a model directory (their names, sizes, mtimes,
 * inodes; no content read): 64 hex chars. Changes when any file changes. */
int et_model_dir_signature(const char *dir, char sig[65], et_error *err);

/* Looks up n texts (embedded with `prompt`, may be NULL): found[i] = 1 and
 * out row i filled when cached with width dim. */
int et_embcache_get(et_embcache *c, const char *model_key, const char *prompt, const char *const *texts, size_t n,
                    size_t dim, float *out /* [n, dim] */, uint8_t *found /* [n] */, et_error *err);
/* Stores n rows (one transaction). */
int et_embcache_put(et_embcache *c, const char *model_key, const char *prompt, const char *const *texts, size_t n,
                    size_t dim, const float *emb /* [n, dim] */, et_error *err);

/* Embeds texts with m (et_embed, prompt prepended), taking cached rows from c
 * and storing new ones (committed every few thousand, so an interrupted run
 * keeps its work). c may be NULL (no cache). *n_cached (may be NULL) gets the
 * number of rows found in the cache. `label` names the progress line. */
int et_embcache_embed(et_embcache *c, const char *model_key, et_model *m, const char *const *texts, size_t n,
                      const char *prompt, float *out /* [n, dim] */, size_t *n_cached, const char *label,
                      et_error *err);

#endif
