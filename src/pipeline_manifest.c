/* pipeline_manifest.c - file fingerprints (SHA-256 with a stat memo), model
 * and output directory listings, and the FILE records of manifest.json; see
 * pipeline.h. */
#include "pipeline.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

/* ---- file lists --------------------------------------------------------------------------- */

static void file_free(et_pl_file *f) {
    free(f->role);
    free(f->path);
    free(f->file);
    memset(f, 0, sizeof(*f));
}

void et_pl_files_free(et_pl_files *fs) {
    for (size_t i = 0; i < fs->n; i++) file_free(&fs->v[i]);
    free(fs->v);
    memset(fs, 0, sizeof(*fs));
}

static et_pl_file *files_push(et_pl_files *fs, et_error *err) {
    if (fs->n == fs->cap) {
        size_t cap = fs->cap ? 2 * fs->cap : 16;
        et_pl_file *v = et_realloc_n(fs->v, cap, sizeof(*v), err);
        if (!v) return NULL;
        fs->v = v;
        fs->cap = cap;
    }
    et_pl_file *f = &fs->v[fs->n];
    memset(f, 0, sizeof(*f));
    return f;
}

/* ---- memo ------------------------------------------------------------------------------------- */

void et_pl_memo_init(et_pl_memo *m) {
    memset(m, 0, sizeof(*m));
    et_strmap_init(&m->idx);
}

void et_pl_memo_free(et_pl_memo *m) {
    for (size_t i = 0; i < m->n; i++) file_free(&m->v[i]);
    free(m->v);
    et_strmap_free(&m->idx);
    memset(m, 0, sizeof(*m));
}

/* Records (file, stat, sha) in the memo, replacing an older entry. */
static int memo_put(et_pl_memo *m, const char *file, const char *stat, const char *sha, et_error *err) {
    int64_t at;
    if (et_strmap_get(&m->idx, file, strlen(file), &at)) {
        snprintf(m->v[at].stat, sizeof(m->v[at].stat), "%s", stat);
        snprintf(m->v[at].sha, sizeof(m->v[at].sha), "%s", sha);
        return ET_OK;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 64;
        et_pl_file *v = et_realloc_n(m->v, cap, sizeof(*v), err);
        if (!v) return ET_ENOMEM;
        m->v = v;
        m->cap = cap;
    }
    et_pl_file *f = &m->v[m->n];
    memset(f, 0, sizeof(*f));
    if (!(f->file = et_strdup(file, err))) return ET_ENOMEM;
    snprintf(f->stat, sizeof(f->stat), "%s", stat);
    snprintf(f->sha, sizeof(f->sha), "%s", sha);
    if (et_strmap_put(&m->idx, file, strlen(file), (int64_t)m->n, err)) {
        free(f->file);
        return ET_ENOMEM;
    }
    m->n++;
    return ET_OK;
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

int et_pl_files_from_json(et_pl_files *fs, const cJSON *arr, const char *what, et_error *err) {
    if (!cJSON_IsArray(arr)) return et_err_set(err, ET_EFORMAT, "manifest.json: %s: expected an array", what);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const char *role = NULL, *path = NULL, *file = NULL, *stat = NULL, *sha = NULL;
        size_t size = 0;
        int rc = et_json_req_str(e, "manifest.json", "path", &path, err);
        if (!rc) rc = et_json_req_str(e, "manifest.json", "file", &file, err);
        if (!rc) rc = et_json_req_str(e, "manifest.json", "stat", &stat, err);
        if (!rc) rc = et_json_req_str(e, "manifest.json", "sha256", &sha, err);
        if (!rc) rc = et_json_opt_str(e, "manifest.json", "role", &role, err);
        if (!rc) rc = et_json_opt_size(e, "manifest.json", "size", &size, err);
        if (rc) return et_err_prefix(err, "%s", what);
        if (!is_hex64(sha) || strlen(stat) >= sizeof(fs->v[0].stat) || file[0] != '/')
            return et_err_set(err, ET_EFORMAT, "manifest.json: %s: malformed file record for '%.200s'", what, path);
        et_pl_file *f = files_push(fs, err);
        if (!f) return ET_ENOMEM;
        f->path = et_strdup(path, err);
        f->file = et_strdup(file, err);
        f->role = role ? et_strdup(role, err) : NULL;
        f->size = size;
        snprintf(f->stat, sizeof(f->stat), "%s", stat);
        snprintf(f->sha, sizeof(f->sha), "%s", sha);
        fs->n++;
        if (!f->path || !f->file || (role && !f->role)) return ET_ENOMEM;
    }
    return ET_OK;
}

int et_pl_memo_add_manifest(et_pl_memo *m, const cJSON *manifest, et_error *err) {
    const cJSON *stages = cJSON_GetObjectItemCaseSensitive(manifest, "stages");
    if (!cJSON_IsArray(stages)) return ET_OK;
    const cJSON *s;
    cJSON_ArrayForEach(s, stages) {
        for (int k = 0; k < 2; k++) {
            const cJSON *arr = cJSON_GetObjectItemCaseSensitive(s, k ? "outputs" : "inputs");
            if (!arr) continue;
            et_pl_files fs = {0};
            et_error ignored;
            /* a malformed record only costs a re-hash */
            if (et_pl_files_from_json(&fs, arr, "memo", &ignored) == ET_OK)
                for (size_t i = 0; i < fs.n; i++)
                    if (memo_put(m, fs.v[i].file, fs.v[i].stat, fs.v[i].sha, err)) {
                        et_pl_files_free(&fs);
                        return ET_ENOMEM;
                    }
            et_pl_files_free(&fs);
        }
    }
    return ET_OK;
}

/* ---- fingerprints ------------------------------------------------------------------------------ */

static void sig_of(const struct stat *sb, char sig[96]) {
    snprintf(sig, 96, "%llu:%lld%09ld:%lld%09ld:%llu", (unsigned long long)sb->st_size, (long long)sb->st_mtim.tv_sec,
             (long)sb->st_mtim.tv_nsec, (long long)sb->st_ctim.tv_sec, (long)sb->st_ctim.tv_nsec,
             (unsigned long long)sb->st_ino);
}

void et_pl_stat_sig(const char *file, char sig[96], uint64_t *size) {
    struct stat sb;
    sig[0] = 0;
    if (size) *size = 0;
    if (stat(file, &sb) != 0 || !S_ISREG(sb.st_mode)) return;
    sig_of(&sb, sig);
    if (size) *size = (uint64_t)sb.st_size;
}

/* SHA-256 of an open file, read in blocks (no mmap: a file truncated while
 * being read must not fault). */
static int hash_fd(int fd, const char *file, char sha[65], et_error *err) {
    enum { BLK = 1 << 20 };
    uint8_t *buf = et_malloc(BLK, err);
    if (!buf) return ET_ENOMEM;
    et_sha256_ctx c;
    et_sha256_init(&c);
    int rc = ET_OK;
    for (;;) {
        ssize_t r = read(fd, buf, BLK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = et_err_set(err, ET_EIO, "%s: read failed: %s", file, strerror(errno));
            break;
        }
        if (r == 0) break;
        et_sha256_update(&c, buf, (size_t)r);
    }
    free(buf);
    if (rc) return rc;
    uint8_t dg[32];
    et_sha256_final(&c, dg);
    et_hex(sha, dg, 32);
    return ET_OK;
}

int et_pl_add_file(et_pl_files *fs, et_pl_memo *memo, const char *role, const char *path, const char *file,
                   et_error *err) {
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return et_err_set(err, errno == ENOENT ? ET_ENOTFOUND : ET_EIO, "%s: cannot open: %s", file, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return et_err_set(err, ET_EINVAL, "%s: not a regular file", file);
    }
    char sig[96], sha[65];
    sig_of(&sb, sig);
    int64_t at;
    int rc = ET_OK;
    if (memo && et_strmap_get(&memo->idx, file, strlen(file), &at) && !strcmp(memo->v[at].stat, sig)) {
        snprintf(sha, sizeof(sha), "%s", memo->v[at].sha);
    } else {
        rc = hash_fd(fd, file, sha, err);
        if (!rc && memo) rc = memo_put(memo, file, sig, sha, err);
    }
    close(fd);
    if (rc) return rc;
    et_pl_file *f = files_push(fs, err);
    if (!f) return ET_ENOMEM;
    f->role = role ? et_strdup(role, err) : NULL;
    f->path = et_strdup(path, err);
    f->file = et_strdup(file, err);
    f->size = (uint64_t)sb.st_size;
    snprintf(f->stat, sizeof(f->stat), "%s", sig);
    snprintf(f->sha, sizeof(f->sha), "%s", sha);
    fs->n++;
    if ((role && !f->role) || !f->path || !f->file) return ET_ENOMEM;
    return ET_OK;
}

/* ---- directory listings ------------------------------------------------------------------------- */

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static int names_push(names *ns, char *s, et_error *err) {
    if (!s) return ET_ENOMEM;
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? 2 * ns->cap : 32;
        char **v = et_realloc_n(ns->v, cap, sizeof(*v), err);
        if (!v) {
            free(s);
            return ET_ENOMEM;
        }
        ns->v = v;
        ns->cap = cap;
    }
    ns->v[ns->n++] = s;
    return ET_OK;
}

static int model_file(const char *name) {
    static const char *const exts[] = {".json", ".txt", ".safetensors", ".model"};
    for (size_t i = 0; i < ET_ARRAY_LEN(exts); i++)
        if (et_ends_with(name, exts[i])) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int walk(const char *dir, const char *rel, const char *skip_dir, int model_only, int depth, names *out,
                et_error *err) {
    if (depth > 8) return ET_OK;
    DIR *d = opendir(dir);
    if (!d) return et_err_set(err, errno == ENOENT ? ET_ENOTFOUND : ET_EIO, "%s: cannot open directory: %s", dir,
                              strerror(errno));
    names here = {0};
    int rc = ET_OK;
    struct dirent *e;
    while (!rc && (e = readdir(d)))
        if (e->d_name[0] != '.') rc = names_push(&here, et_strdup(e->d_name, err), err);
    closedir(d);
    if (here.n) qsort(here.v, here.n, sizeof(*here.v), cmp_str);
    for (size_t i = 0; i < here.n && !rc; i++) {
        char *path = et_path_join(dir, here.v[i], err);
        char *r = *rel ? et_path_join(rel, here.v[i], err) : et_strdup(here.v[i], err);
        struct stat sb;
        if (!path || !r) rc = ET_ENOMEM;
        else if (stat(path, &sb) != 0) { /* dangling link: not a file we can read */
        } else if (S_ISDIR(sb.st_mode)) {
            if (!(skip_dir && !strcmp(r, skip_dir))) rc = walk(path, r, skip_dir, model_only, depth + 1, out, err);
        } else if (S_ISREG(sb.st_mode) && (!model_only || model_file(here.v[i]))) {
            rc = names_push(out, r, err);
            r = NULL;
        }
        free(path);
        free(r);
    }
    for (size_t i = 0; i < here.n; i++) free(here.v[i]);
    free(here.v);
    return rc;
}

int et_pl_list_dir(const char *dir, const char *skip_dir, int model_only, char ***rel, size_t *n, et_error *err) {
    names out = {0};
    int rc = walk(dir, "", skip_dir, model_only, 0, &out, err);
    if (rc) {
        et_ingest_list_free(out.v, out.n);
        return rc;
    }
    /* depth-first order already sorts each level; sort the whole for a stable key */
    if (out.n) qsort(out.v, out.n, sizeof(*out.v), cmp_str);
    *rel = out.v;
    *n = out.n;
    return ET_OK;
}

/* ---- JSON out ------------------------------------------------------------------------------------- */

static int json_str(et_buf *b, const char *s, et_error *err) { return et_buf_json_string(b, s, strlen(s), err); }

int et_pl_files_to_json(et_buf *b, const et_pl_files *fs, et_error *err) {
    int rc = et_buf_puts(b, "[", err);
    for (size_t i = 0; i < fs->n && !rc; i++) {
        const et_pl_file *f = &fs->v[i];
        rc = et_buf_puts(b, i ? ",\n      {" : "\n      {", err);
        if (!rc && f->role) {
            rc = et_buf_puts(b, "\"role\": ", err);
            if (!rc) rc = json_str(b, f->role, err);
            if (!rc) rc = et_buf_puts(b, ", ", err);
        }
        if (!rc) rc = et_buf_puts(b, "\"path\": ", err);
        if (!rc) rc = json_str(b, f->path, err);
        if (!rc) rc = et_buf_puts(b, ", \"file\": ", err);
        if (!rc) rc = json_str(b, f->file, err);
        if (!rc) rc = et_buf_printf(b, err, ", \"size\": %llu, \"stat\": ", (unsigned long long)f->size);
        if (!rc) rc = json_str(b, f->stat, err); /* may come from an old manifest: escaped like the rest */
        if (!rc) rc = et_buf_puts(b, ", \"sha256\": ", err);
        if (!rc) rc = json_str(b, f->sha, err);
        if (!rc) rc = et_buf_puts(b, "}", err);
    }
    if (!rc) rc = et_buf_puts(b, "]", err);
    return rc;
}

/* ---- misc ------------------------------------------------------------------------------------------- */

int et_pl_safe_output(const char *rel, const char *const *prefixes, size_t n_prefixes) {
    if (!rel || !*rel || rel[0] == '/') return 0;
    for (const char *p = rel; *p;) { /* components: no "", ".", ".." */
        const char *s = strchr(p, '/');
        size_t len = s ? (size_t)(s - p) : strlen(p);
        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')) return 0;
        p += len + (s ? 1 : 0);
        if (s && !*p) return 0;
    }
    for (size_t i = 0; i < n_prefixes; i++) {
        size_t n = strlen(prefixes[i]);
        if (prefixes[i][n - 1] == '/' ? !strncmp(rel, prefixes[i], n) && rel[n] : !strcmp(rel, prefixes[i])) return 1;
    }
    return 0;
}

void et_pl_now_iso(char out[32]) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
