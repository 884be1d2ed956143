/* embcache.c - the SQLite embedding cache; see embcache.h.
 *
 * Schema:
 *   models(dir TEXT PRIMARY KEY, sig TEXT, fp TEXT)   fingerprint memo per directory
 *   emb(key BLOB PRIMARY KEY, model BLOB, dim INTEGER, v BLOB) WITHOUT ROWID
 * key = SHA-256(model_key, 0, prompt, 0, text); model = first 8 bytes of the
 * files' fingerprint (to drop a changed model's rows); v = dim little-endian
 * fp32 values.
 */
#include "embcache.h"

#include <dirent.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

#define PUT_CHUNK 2048

struct et_embcache {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *get, *put;
    uint8_t model_fp[8]; /* of the last model_key call */
};

static int db_err(et_embcache *c, int rc, const char *what, et_error *err) {
    return et_err_set(err, ET_EIO, "embedding cache %s: %s: %s", c->path, what,
                      c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
}

static int exec(et_embcache *c, const char *sql, et_error *err) {
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        et_err_set(err, ET_EIO, "embedding cache %s: %s", c->path, msg ? msg : sqlite3_errstr(rc));
        sqlite3_free(msg);
        return ET_EIO;
    }
    return ET_OK;
}

static char *default_path(et_error *err) {
    const char *d = getenv("EMBTUNE_CACHE_DIR");
    char *dir = NULL;
    if (d && d[0]) dir = et_strdup(d, err);
    else if ((d = getenv("XDG_CACHE_HOME")) && d[0]) dir = et_path_join(d, "embtune", err);
    else if ((d = getenv("HOME")) && d[0]) dir = et_path_join(d, ".cache/embtune", err);
    else dir = et_strdup(".embtune-cache", err);
    if (!dir) return NULL;
    if (et_mkdir_p(dir, err)) {
        free(dir);
        return NULL;
    }
    char *p = et_path_join(dir, "embeddings.sqlite", err);
    free(dir);
    return p;
}

int et_embcache_open(et_embcache **out, const char *path, et_error *err) {
    *out = NULL;
    et_embcache *c = et_calloc(1, sizeof(*c), err);
    if (!c) return ET_ENOMEM;
    c->path = path ? et_strdup(path, err) : default_path(err);
    if (!c->path) {
        free(c);
        return err ? err->code : ET_ENOMEM;
    }
    int rc = sqlite3_open_v2(c->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        rc = db_err(c, rc, "cannot open", err);
        et_embcache_close(c);
        return rc;
    }
    sqlite3_busy_timeout(c->db, 10000);
    if ((rc = exec(c, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                      "CREATE TABLE IF NOT EXISTS models(dir TEXT PRIMARY KEY, sig TEXT, fp TEXT);"
                      "CREATE TABLE IF NOT EXISTS emb(key BLOB PRIMARY KEY, model BLOB, dim INTEGER, v BLOB)"
                      " WITHOUT ROWID;"
                      "CREATE INDEX IF NOT EXISTS emb_model ON emb(model);",
                   err)) ||
        sqlite3_prepare_v2(c->db, "SELECT dim, v FROM emb WHERE key = ?", -1, &c->get, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO emb(key, model, dim, v) VALUES (?, ?, ?, ?)", -1, &c->put,
                           NULL) != SQLITE_OK) {
        if (!rc) rc = db_err(c, 0, "cannot prepare", err);
        et_embcache_close(c);
        return rc;
    }
    *out = c;
    return ET_OK;
}

void et_embcache_close(et_embcache *c) {
    if (!c) return;
    sqlite3_finalize(c->get);
    sqlite3_finalize(c->put);
    sqlite3_close(c->db);
    free(c->path);
    free(c);
}

const char *et_embcache_path(const et_embcache *c) { return c->path; }

/* ---- model fingerprint -------------------------------------------------------- */

static int skip_name(const char *n) {
    static const char *const ext[] = {".bin", ".onnx", ".h5", ".msgpack", ".ot", ".md", ".jsonl", ".pt", ".pth"};
    if (n[0] == '.' || strstr(n, ".tmp.")) return 1;
    for (size_t i = 0; i < ET_ARRAY_LEN(ext); i++)
        if (et_ends_with(n, ext[i])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Relative paths of the files that define the model, sorted. */
static int list_files(const char *dir, char ***out, size_t *n_out, et_error *err) {
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = ET_OK;
    DIR *d = opendir(dir);
    if (!d) return et_err_set(err, ET_EIO, "%s: cannot read the model directory: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) && !rc) {
        if (skip_name(e->d_name)) continue;
        char *p = et_path_join(dir, e->d_name, err);
        if (!p) {
            rc = ET_ENOMEM;
            break;
        }
        struct stat st;
        char *sub_names[64];
        size_t n_sub = 0;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) { /* module configs: <sub>/<name>.json */
            DIR *sd = opendir(p);
            struct dirent *se;
            while (sd && (se = readdir(sd)) && n_sub < 64)
                if (!skip_name(se->d_name) && et_ends_with(se->d_name, ".json")) {
                    char *rel = et_path_join(e->d_name, se->d_name, err);
                    if (!rel) {
                        rc = ET_ENOMEM;
                        break;
                    }
                    sub_names[n_sub++] = rel;
                }
            if (sd) closedir(sd);
        } else if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
            sub_names[n_sub++] = et_strdup(e->d_name, err);
            if (!sub_names[0]) rc = ET_ENOMEM;
        }
        free(p);
        for (size_t i = 0; i < n_sub; i++) {
            if (!rc && n == cap) {
                cap = cap ? 2 * cap : 32;
                char **nn = et_realloc_n(names, cap, sizeof(char *), err);
                if (!nn) rc = ET_ENOMEM;
                else names = nn;
            }
            if (rc) free(sub_names[i]);
            else names[n++] = sub_names[i];
        }
    }
    closedir(d);
    if (rc) {
        for (size_t i = 0; i < n; i++) free(names[i]);
        free(names);
        return rc;
    }
    if (n) qsort(names, n, sizeof(char *), cmp_str);
    *out = names;
    *n_out = n;
    return ET_OK;
}

static int file_hash(et_sha256_ctx *h, const char *path, et_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return et_err_set(err, ET_EIO, "%s: cannot read: %s", path, strerror(errno));
    static __thread uint8_t buf[1 << 20];
    size_t k;
    while ((k = fread(buf, 1, sizeof(buf), f)) > 0) et_sha256_update(h, buf, k);
    int bad = ferror(f);
    fclose(f);
    return bad ? et_err_set(err, ET_EIO, "%s: read error", path) : ET_OK;
}

/* SHA-256 over "name|size|mtime|inode" of each file: changes when any file does. */
static int stat_signature(const char *dir, char **names, size_t n, char sig[65], et_error *err) {
    et_sha256_ctx h;
    et_sha256_init(&h);
    int rc = ET_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        char *p = et_path_join(dir, names[i], err);
        struct stat st;
        if (!p || stat(p, &st) != 0) rc = p ? et_err_set(err, ET_EIO, "%s: cannot stat", p) : ET_ENOMEM;
        else {
            char line[512];
            int k = snprintf(line, sizeof(line), "%s|%lld|%lld.%09ld|%llu\n", names[i], (long long)st.st_size,
                             (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, (unsigned long long)st.st_ino);
            et_sha256_update(&h, line, (size_t)k);
        }
        free(p);
    }
    uint8_t dg[32];
    et_sha256_final(&h, dg);
    et_hex(sig, dg, 32);
    return rc;
}

int et_model_dir_signature(const char *dir, char sig[65], et_error *err) {
    char **names = NULL;
    size_t n = 0;
    int rc = list_files(dir, &names, &n, err);
    if (rc) return rc;
    rc = stat_signature(dir, names, n, sig, err);
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

int et_embcache_model_key(et_embcache *c, const char *dir, const char *extra, char key[65], et_error *err) {
    char **names = NULL;
    size_t n = 0;
    int rc = list_files(dir, &names, &n, err);
    if (rc) return rc;
    if (n == 0) {
        free(names);
        return et_err_set(err, ET_ENOTFOUND, "%s: no model files", dir);
    }
    char *abs = realpath(dir, NULL);
    const char *dkey = abs ? abs : dir;
    et_sha256_ctx h;
    char sig[65];
    rc = stat_signature(dir, names, n, sig, err);
    uint8_t dg[32];
    char fp[65] = "", old_fp[65] = "";
    sqlite3_stmt *st = NULL;
    if (!rc && sqlite3_prepare_v2(c->db, "SELECT sig, fp FROM models WHERE dir = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, dkey, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(st) == SQLITE_ROW) {
            const char *s = (const char *)sqlite3_column_text(st, 0), *f = (const char *)sqlite3_column_text(st, 1);
            if (f && strlen(f) == 64) snprintf(old_fp, sizeof(old_fp), "%s", f);
            if (s && f && !strcmp(s, sig)) snprintf(fp, sizeof(fp), "%s", f);
        }
    }
    sqlite3_finalize(st);
    if (!rc && !fp[0]) { /* hash the contents */
        et_sha256_init(&h);
        for (size_t i = 0; i < n && !rc; i++) {
            et_sha256_update(&h, names[i], strlen(names[i]) + 1);
            char *p = et_path_join(dir, names[i], err);
            rc = p ? file_hash(&h, p, err) : ET_ENOMEM;
            free(p);
        }
        if (!rc) {
            et_sha256_final(&h, dg);
            et_hex(fp, dg, 32);
            if (old_fp[0] && strcmp(old_fp, fp)) { /* the model changed: drop its old rows */
                uint8_t ob[8];
                for (int i = 0; i < 8; i++) sscanf(old_fp + 2 * i, "%2hhx", &ob[i]);
                if (sqlite3_prepare_v2(c->db, "DELETE FROM emb WHERE model = ?", -1, &st, NULL) == SQLITE_OK) {
                    sqlite3_bind_blob(st, 1, ob, 8, SQLITE_TRANSIENT);
                    sqlite3_step(st);
                }
                sqlite3_finalize(st);
            }
            if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO models(dir, sig, fp) VALUES (?, ?, ?)", -1, &st,
                                   NULL) == SQLITE_OK) {
                sqlite3_bind_text(st, 1, dkey, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 2, sig, -1, SQLITE_TRANSIENT);
                sqlite3_bind_text(st, 3, fp, -1, SQLITE_TRANSIENT);
                if (sqlite3_step(st) != SQLITE_DONE) rc = db_err(c, 0, "cannot store the model fingerprint", err);
            }
            sqlite3_finalize(st);
        }
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    free(abs);
    if (rc) return rc;
    for (int i = 0; i < 8; i++) sscanf(fp + 2 * i, "%2hhx", &c->model_fp[i]);
    et_sha256_init(&h);
    et_sha256_update(&h, fp, 64);
    et_sha256_update(&h, "", 1);
    if (extra) et_sha256_update(&h, extra, strlen(extra));
    et_sha256_final(&h, dg);
    /* the first 8 bytes of key name the files' fingerprint (for deletion) */
    memcpy(dg, c->model_fp, 8);
    et_hex(key, dg, 32);
    return ET_OK;
}

/* ---- rows ------------------------------------------------------------------------ */

static void row_key(uint8_t out[32], const char *model_key, const char *prompt, const char *text) {
    et_sha256_ctx h;
    et_sha256_init(&h);
    et_sha256_update(&h, model_key, strlen(model_key) + 1);
    if (prompt) et_sha256_update(&h, prompt, strlen(prompt));
    et_sha256_update(&h, "", 1);
    et_sha256_update(&h, text, strlen(text));
    et_sha256_final(&h, out);
}

int et_embcache_get(et_embcache *c, const char *model_key, const char *prompt, const char *const *texts, size_t n,
                    size_t dim, float *out, uint8_t *found, et_error *err) {
    int rc = exec(c, "BEGIN", err);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) {
        uint8_t k[32];
        row_key(k, model_key, prompt, texts[i] ? texts[i] : "");
        found[i] = 0;
        sqlite3_reset(c->get);
        sqlite3_bind_blob(c->get, 1, k, 32, SQLITE_STATIC);
        int s = sqlite3_step(c->get);
        if (s == SQLITE_ROW) {
            size_t d = (size_t)sqlite3_column_int64(c->get, 0);
            const void *v = sqlite3_column_blob(c->get, 1);
            size_t nb = (size_t)sqlite3_column_bytes(c->get, 1);
            if (d == dim && v && nb == dim * sizeof(float)) { /* else: a damaged row counts as a miss */
                memcpy(out + i * dim, v, nb);
                found[i] = 1;
            }
        } else if (s != SQLITE_DONE) {
            rc = db_err(c, s, "lookup failed", err);
            break;
        }
    }
    sqlite3_reset(c->get);
    exec(c, rc ? "ROLLBACK" : "COMMIT", NULL);
    return rc;
}

int et_embcache_put(et_embcache *c, const char *model_key, const char *prompt, const char *const *texts, size_t n,
                    size_t dim, const float *emb, et_error *err) {
    int rc = exec(c, "BEGIN IMMEDIATE", err);
    if (rc) return rc;
    uint8_t mfp[8];
    for (int i = 0; i < 8; i++) sscanf(model_key + 2 * i, "%2hhx", &mfp[i]);
    for (size_t i = 0; i < n && !rc; i++) {
        uint8_t k[32];
        row_key(k, model_key, prompt, texts[i] ? texts[i] : "");
        sqlite3_reset(c->put);
        sqlite3_bind_blob(c->put, 1, k, 32, SQLITE_STATIC);
        sqlite3_bind_blob(c->put, 2, mfp, 8, SQLITE_STATIC);
        sqlite3_bind_int64(c->put, 3, (sqlite3_int64)dim);
        sqlite3_bind_blob(c->put, 4, emb + i * dim, (int)(dim * sizeof(float)), SQLITE_STATIC);
        int s = sqlite3_step(c->put);
        if (s != SQLITE_DONE) rc = db_err(c, s, "store failed", err);
    }
    sqlite3_reset(c->put);
    if (rc) exec(c, "ROLLBACK", NULL);
    else rc = exec(c, "COMMIT", err);
    return rc;
}

int et_embcache_embed(et_embcache *c, const char *model_key, et_model *m, const char *const *texts, size_t n,
                      const char *prompt, float *out, size_t *n_cached, const char *label, et_error *err) {
    const size_t dim = et_model_dim(m);
    size_t hits = 0;
    int rc = ET_OK;
    uint8_t *found = et_malloc(PUT_CHUNK, err);
    const char **miss = et_malloc_n(PUT_CHUNK, sizeof(char *), err);
    size_t *miss_idx = et_malloc_n(PUT_CHUNK, sizeof(size_t), err);
    float *tmp = et_malloc_n(PUT_CHUNK, dim * sizeof(float), err);
    if (!found || !miss || !miss_idx || !tmp) {
        rc = ET_ENOMEM;
        goto done;
    }
    et_progress pr;
    et_progress_init(&pr, label ? label : "embed", "texts/s", n);
    for (size_t s = 0; s < n && !rc; s += PUT_CHUNK) {
        size_t k = ET_MIN((size_t)PUT_CHUNK, n - s), nm = 0;
        if (c) rc = et_embcache_get(c, model_key, prompt, texts + s, k, dim, out + s * dim, found, err);
        else memset(found, 0, k);
        if (rc) break;
        for (size_t i = 0; i < k; i++)
            if (found[i]) hits++;
            else miss_idx[nm] = s + i, miss[nm++] = texts[s + i];
        if (nm) {
            rc = et_embed(m, miss, nm, prompt, tmp, err);
            if (rc) break;
            for (size_t i = 0; i < nm; i++) memcpy(out + miss_idx[i] * dim, tmp + i * dim, dim * sizeof(float));
            if (c) rc = et_embcache_put(c, model_key, prompt, miss, nm, dim, tmp, err);
        }
        et_progress_update(&pr, s + k, NULL);
    }
    et_progress_done(&pr, n);
done:
    free(found), free(miss), free(miss_idx), free(tmp);
    if (n_cached) *n_cached = hits;
    return rc;
}
