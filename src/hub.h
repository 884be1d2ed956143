/* hub.h - INTERNAL: Hugging Face Hub downloads into the standard HF cache.
 *
 * Cache layout (shared with huggingface_hub, so Python tools see our files):
 *
 *   $HF_HUB_CACHE/models--ORG--NAME/
 *       blobs/<etag>                  file contents, named by the hub's ETag:
 *                                     sha256 (64 hex) for LFS files, the git
 *                                     blob sha1 (40 hex) for the others
 *       blobs/<etag>.incomplete       a partial download (resumed with Range)
 *       refs/<revision>               the commit a branch/tag resolved to
 *       snapshots/<commit>/<file>     symlink -> ../../blobs/<etag>
 *   $HF_HUB_CACHE/.locks/models--ORG--NAME/<etag>.lock   flock while fetching
 *
 * Protocol (as huggingface_hub's file_download.py):
 *   GET  {endpoint}/api/models/{repo}/revision/{rev}  -> {"sha", "siblings": [{"rfilename"}]}
 *   HEAD {endpoint}/{repo}/resolve/{commit}/{file}    -> X-Repo-Commit, X-Linked-Etag
 *        (LFS: sha256) or ETag, X-Linked-Size or Content-Length; LFS files answer
 *        302 to a CDN (followed without the Authorization header), relative
 *        redirects (renamed repos) are followed with it.
 *   Errors carry X-Error-Code: RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo.
 *
 * Everything the server sends is treated as hostile: commit, etag and file
 * names are validated before they become paths; sizes are checked; bodies are
 * bounded; LFS files are checked against their sha256 and regular files
 * against their git blob sha1.
 */
#ifndef ET_HUB_H
#define ET_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* "org/name[@revision]" -> repo ("org/name") + revision (default "main").
 * Returns 1 if spec is a syntactically valid Hub id (then *repo and *rev are
 * malloc'd, caller frees), 0 if not (nothing allocated). */
int et_hub_parse_spec(const char *spec, char **repo, char **rev);

/* Valid repo id: two parts of [A-Za-z0-9_.-], no "--" / "..", max 96 chars. */
int et_hub_valid_repo(const char *repo);
/* Valid revision (branch, tag, commit, "refs/pr/1"): usable as a path under refs/. */
int et_hub_valid_revision(const char *rev);
/* Valid repo file name: relative, no ".", ".." or empty components, no
 * backslash or control characters. */
int et_hub_valid_filename(const char *name);
/* 40 lowercase hex digits. */
int et_hub_is_commit(const char *s);

/* Normalizes an ETag header value in place (strips W/ and quotes); returns 1
 * if the result is usable as a blob file name ([A-Za-z0-9._-], 1..128, not
 * "." or ".."). */
int et_hub_normalize_etag(char *etag);

/* The model files a repo listing needs: 1 if `name` should be fetched. */
int et_hub_wanted_file(const char *name);

/* SHA-1 (FIPS 180-4), for git blob ids: sha1("blob <size>\0" + content). */
typedef struct et_sha1_ctx {
    uint32_t h[5];
    uint64_t total;
    uint8_t block[64];
    size_t fill;
} et_sha1_ctx;
void et_sha1_init(et_sha1_ctx *c);
void et_sha1_update(et_sha1_ctx *c, const void *data, size_t n);
void et_sha1_final(et_sha1_ctx *c, uint8_t out[20]);

/* Cache directory from the environment: HF_HUB_CACHE, else HF_HOME/hub, else
 * $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub. Caller frees. */
char *et_hub_cache_dir(et_error *err);

/* The revision listing (GET /api/models/{repo}/revision/{rev}) and the shard
 * names of model.safetensors.index.json, parsed from untrusted bytes. */
typedef struct et_hub_listing {
    char commit[41];
    char **files; /* [n] wanted files (malloc'd) */
    size_t n;
    int has_weights;
    char *other_weights; /* e.g. "pytorch_model.bin" when there is no safetensors */
} et_hub_listing;
void et_hub_listing_free(et_hub_listing *l);
/* Parses a listing reply body (len bytes, need not be NUL-terminated); `what`
 * names it in errors. On error *l is empty. Files whose names are not valid
 * repo paths are skipped; the wanted ones (et_hub_wanted_file) are kept. */
int et_hub_parse_listing(et_hub_listing *l, const char *body, size_t len, const char *what, et_error *err);
/* Adds the shard files named by the "weight_map" of a parsed index JSON. */
struct cJSON;
int et_hub_listing_add_shards(et_hub_listing *l, const struct cJSON *index, const char *repo, et_error *err);

#endif
