/* ingest.c - `embtune ingest`: walk paths, pick files, extract, chunk, write
 * one JSONL file atomically.
 *
 * Selection: arguments that are files are always read. Directories are walked
 * recursively in byte order of names (deterministic), skipping hidden entries
 * (".*") and symbolic links to directories; a file is taken when it matches an
 * --include glob (if any are given; otherwise when its extension is known:
 * pdf, html, htm, xhtml, md, markdown, txt, text, rst) and no --exclude glob.
 * Globs match the path relative to the argument or the bare name (fnmatch
 * without FNM_PATHNAME, so '*' crosses '/'); excluded directories are pruned.
 * Type: "%PDF-" in the first KiB means PDF whatever the name; else by
 * extension; else HTML if it starts like HTML, else text (binary files are
 * skipped).
 * Document names ("doc" in the output) are the path relative to the directory
 * argument, or the file name for file arguments; on a clash the path as given.
 */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk.h"
#include "chunks.h"
#include "ingest.h"
#include "json.h"

void et_ingest_opts_default(et_ingest_opts *o) {
    memset(o, 0, sizeof(*o));
    o->chunk_size = ET_INGEST_CHUNK_SIZE;
    o->chunk_overlap = ET_INGEST_CHUNK_OVERLAP;
}

int et_ingest_model_limit(const char *dir, const et_tokenizer *tok, size_t *out, et_error *err) {
    *out = 0;
    size_t len = 0;
    int rc = ET_OK;
    static const char *const files[] = {"sentence_bert_config.json", "config.json", "tokenizer_config.json"};
    static const char *const fields[] = {"max_seq_length", "max_position_embeddings", "model_max_length"};
    for (size_t f = 0; f < 3 && !len && !rc; f++) {
        char *path = et_path_join(dir, files[f], err);
        if (!path) return ET_ENOMEM;
        if (et_file_exists(path)) {
            cJSON *j = NULL;
            rc = et_json_load(&j, path, err);
            double v = 0;
            if (!rc) rc = et_json_opt_double(j, path, fields[f], &v, err);
            if (!rc && v >= 1 && v <= 1e6) { /* tokenizer_config uses 1e30 for "none" */
                len = (size_t)v;
                const char *type = NULL;
                if (f == 1 && !et_json_opt_str(j, path, "model_type", &type, NULL) && type &&
                    (strstr(type, "roberta") || !strcmp(type, "camembert")) && len > 2)
                    len -= 2; /* positions start after the padding index */
            }
            cJSON_Delete(j);
        }
        free(path);
    }
    if (rc) return rc;
    size_t special = tok ? et_tokenizer_num_special(tok) : 0;
    *out = len > special ? len - special : (len ? 1 : 0);
    return ET_OK;
}

static int tok_count(void *ctx, const char *text, size_t n, size_t *out, et_error *err) {
    return et_tokenizer_count((const et_tokenizer *)ctx, text, n, out, err);
}

const char *et_ingest_reason_name(size_t i) { return i < ET_SKIP_N ? et_skip_reason_str((int)i) : NULL; }

typedef struct src {
    char *path; /* as reachable from the cwd */
    char *doc;  /* name in the output */
    size_t size;
} src;

typedef struct walk {
    src *v;
    size_t n, cap;
    const et_ingest_opts *o;
    et_ingest_stats *st;
    et_strmap ids; /* "dev:ino" of every file taken */
    dev_t out_dev;
    ino_t out_ino;
    int have_out;
    et_error *err;
} walk;

static int glob_any(const char *const *globs, size_t n, const char *rel, const char *base) {
    for (size_t i = 0; i < n; i++)
        if (fnmatch(globs[i], rel, 0) == 0 || fnmatch(globs[i], base, 0) == 0) return 1;
    return 0;
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static const char *ext_of(const char *p) {
    const char *b = base_name(p), *d = strrchr(b, '.');
    return d && d != b ? d + 1 : "";
}

static int known_ext(const char *p) {
    static const char *const exts[] = {"pdf", "html", "htm", "xhtml", "md", "markdown", "txt", "text", "rst", NULL};
    const char *e = ext_of(p);
    for (size_t i = 0; exts[i]; i++)
        if (!strcasecmp(e, exts[i])) return 1;
    return 0;
}

/* 1 if (dev, ino) was seen (same file twice, or the output file). */
static int seen_file(walk *w, const struct stat *sb, int *oom) {
    if (w->have_out && sb->st_dev == w->out_dev && sb->st_ino == w->out_ino) return 1;
    char key[48];
    int kl = snprintf(key, sizeof(key), "%llx:%llx", (unsigned long long)sb->st_dev, (unsigned long long)sb->st_ino);
    int r = et_strmap_put_new(&w->ids, key, (size_t)kl, 1, NULL, w->err);
    if (r < 0) *oom = 1;
    return r == 1;
}

static int add_src(walk *w, const char *path, const char *doc, const struct stat *sb) {
    int oom = 0;
    if (seen_file(w, sb, &oom)) return ET_OK;
    if (oom) return ET_ENOMEM;
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        src *p = et_realloc_n(w->v, cap, sizeof(*p), w->err);
        if (!p) return ET_ENOMEM;
        w->v = p;
        w->cap = cap;
    }
    src *s = &w->v[w->n];
    s->path = et_strdup(path, w->err);
    s->doc = et_strdup(doc, w->err);
    s->size = (size_t)sb->st_size;
    if (!s->path || !s->doc) {
        free(s->path);
        free(s->doc);
        return ET_ENOMEM;
    }
    w->n++;
    return ET_OK;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int walk_dir(walk *w, const char *dir, const char *rel, int depth) {
    if (depth > 64) return ET_OK;
    DIR *d = opendir(dir);
    if (!d) {
        w->st->skipped++;
        w->st->skipped_by[ET_SKIP_UNREADABLE]++;
        if (w->o->on_skip) w->o->on_skip(w->o->cb_ctx, dir, "unreadable", strerror(errno));
        return w->o->strict ? et_err_set(w->err, ET_EIO, "%s: cannot open directory: %s", dir, strerror(errno))
                            : ET_OK;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = ET_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) w->st->ignored++;
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **p = et_realloc_n(names, cap, sizeof(*p), w->err);
            if (!p) {
                rc = ET_ENOMEM;
                break;
            }
            names = p;
        }
        if (!(names[n] = et_strdup(e->d_name, w->err))) {
            rc = ET_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof(*names), cmp_str);
    for (size_t i = 0; i < n && !rc; i++) {
        char *path = et_path_join(dir, names[i], w->err);
        char *r = *rel ? et_path_join(rel, names[i], w->err) : et_strdup(names[i], w->err);
        struct stat lsb, sb;
        if (!path || !r) rc = ET_ENOMEM;
        else if (lstat(path, &lsb) != 0 || stat(path, &sb) != 0) w->st->ignored++; /* vanished / dangling */
        else if (S_ISDIR(sb.st_mode)) {
            if (S_ISLNK(lsb.st_mode) || glob_any(w->o->exclude, w->o->n_exclude, r, names[i])) w->st->ignored++;
            else rc = walk_dir(w, path, r, depth + 1);
        } else if (S_ISREG(sb.st_mode)) {
            int take = !glob_any(w->o->exclude, w->o->n_exclude, r, names[i]) &&
                       (w->o->n_include ? glob_any(w->o->include, w->o->n_include, r, names[i]) : known_ext(r));
            if (take) rc = add_src(w, path, r, &sb);
            else w->st->ignored++;
        } else {
            w->st->ignored++;
        }
        free(path);
        free(r);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static int collect(walk *w, const char *const *paths, size_t n_paths) {
    for (size_t i = 0; i < n_paths; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) != 0)
            return et_err_set(w->err, ET_ENOTFOUND, "%s: %s", paths[i], strerror(errno));
        int rc;
        if (S_ISDIR(sb.st_mode)) rc = walk_dir(w, paths[i], "", 0);
        else if (S_ISREG(sb.st_mode)) rc = add_src(w, paths[i], base_name(paths[i]), &sb);
        else rc = et_err_set(w->err, ET_EINVAL, "%s: not a regular file or directory", paths[i]);
        if (rc) return rc;
    }
    /* unique document names: on a clash, the later one gets its path */
    et_strmap names;
    et_strmap_init(&names);
    int rc = ET_OK;
    for (size_t i = 0; i < w->n && !rc; i++) {
        int r = et_strmap_put_new(&names, w->v[i].doc, strlen(w->v[i].doc), (int64_t)i, NULL, w->err);
        if (r < 0) rc = ET_ENOMEM;
        else if (r == 1) {
            char *p = et_strdup(w->v[i].path, w->err);
            if (!p) rc = ET_ENOMEM;
            else {
                free(w->v[i].doc);
                w->v[i].doc = p;
                if (et_strmap_put_new(&names, p, strlen(p), (int64_t)i, NULL, w->err) < 0) rc = ET_ENOMEM;
            }
        }
    }
    et_strmap_free(&names);
    return rc;
}

/* ---- progress ----------------------------------------------------------------------- */

typedef struct prog {
    et_progress p;
    size_t files_done, files_total, pages_done, pages_cur, chunks;
    size_t bytes_done, bytes_total, bytes_cur, size_cur; /* ETA by bytes; a PDF in flight counts by pages */
    double t0;
} prog;

static void prog_print(prog *g, int final) {
    et_progress *p = &g->p;
    if (!p->enabled) return;
    double now = et_now();
    if (!final) {
        if (now - p->t0 < p->delay) return;
        if (p->shown && now - p->last < 0.25) return;
    } else if (!p->shown) {
        return;
    }
    p->shown = 1;
    p->last = now;
    double t = now - g->t0;
    size_t pages = g->pages_done + g->pages_cur;
    double frac = g->bytes_total ? (double)g->bytes_done / (double)g->bytes_total : 0;
    char eta[48] = "";
    if (!final && frac > 0.01 && t > 0) {
        double s = t / frac - t;
        if (s < 90) snprintf(eta, sizeof(eta), ", ETA %.0fs", s);
        else if (s < 5400) snprintf(eta, sizeof(eta), ", ETA %.0fm%02.0fs", (double)(long)(s / 60), (double)((long)s % 60));
        else snprintf(eta, sizeof(eta), ", ETA %.1fh", s / 3600);
    }
    fprintf(stderr, "\ringest: %zu/%zu files, %zu pages (%.1f pages/s), %zu chunks%s\033[K%s", g->files_done,
            g->files_total, pages, t > 0 ? (double)pages / t : 0.0, g->chunks, eta, final ? "\n" : "");
    fflush(stderr);
}

static void on_page(void *ctx, size_t done, size_t total) {
    prog *g = ctx;
    g->pages_cur = done;
    if (total) g->bytes_done = g->bytes_cur + (size_t)((double)g->size_cur * (double)done / (double)total);
    prog_print(g, 0);
}

/* ---- one document ------------------------------------------------------------------ */

static int extract(const src *s, const char *data, size_t n, et_doc *doc, prog *g, int *skip, et_error *err) {
    int is_pdf = 0;
    size_t head = n < 1024 ? n : 1024;
    if (memmem(data, head, "%PDF-", 5)) is_pdf = 1;
    const char *ext = ext_of(s->path);
    if (is_pdf || !strcasecmp(ext, "pdf")) return et_extract_pdf(doc, data, n, s->doc, on_page, g, skip, err);
    if (!strcasecmp(ext, "html") || !strcasecmp(ext, "htm") || !strcasecmp(ext, "xhtml") || !strcasecmp(ext, "shtml"))
        return et_extract_html(doc, data, n, s->doc, skip, err);
    if (!strcasecmp(ext, "md") || !strcasecmp(ext, "markdown") || !strcasecmp(ext, "mdown") ||
        !strcasecmp(ext, "mkd") || !strcasecmp(ext, "mkdn"))
        return et_extract_text(doc, data, n, 1, s->doc, skip, err);
    /* unknown: sniff HTML */
    size_t i = 0;
    if (n >= 3 && !memcmp(data, "\xef\xbb\xbf", 3)) i = 3;
    while (i < n && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    if (n - i >= 5 && (!strncasecmp(data + i, "<!doctype html", n - i < 14 ? n - i : 14) ||
                       !strncasecmp(data + i, "<html", 5)))
        return et_extract_html(doc, data, n, s->doc, skip, err);
    return et_extract_text(doc, data, n, 0, s->doc, skip, err);
}

static int write_chunks(const src *s, const et_doc *doc, const et_chunk_span *cs, size_t nc, et_afile *out,
                        et_strmap *ids, et_ingest_stats *st, et_error *err) {
    et_buf line = {0}, text = {0};
    int rc = ET_OK;
    for (size_t i = 0; i < nc && !rc; i++) {
        text.len = 0;
        if ((rc = et_buf_append(&text, doc->text.data + cs[i].off, cs[i].len, err))) break;
        char id[18];
        et_chunk_make_id(id, s->doc, text.data);
        int r = et_strmap_put_new(ids, id, 17, 1, NULL, err);
        if (r < 0) {
            rc = ET_ENOMEM;
            break;
        }
        if (r == 1) {
            st->duplicates++;
            continue;
        }
        et_chunk c = {.id = id, .doc = s->doc, .text = text.data, .page_start = cs[i].page_start,
                      .page_end = cs[i].page_end, .n_tokens = cs[i].n_tokens};
        line.len = 0;
        if ((rc = et_chunk_to_json(&line, &c, err))) break;
        if (fwrite(line.data, 1, line.len, out->fp) != line.len) {
            out->failed = 1;
            rc = et_err_set(err, ET_EIO, "%s: write failed: %s", out->path, strerror(errno));
            break;
        }
        st->chunks++;
        st->tokens += cs[i].n_tokens;
        if (cs[i].n_tokens > st->max_chunk_tokens) st->max_chunk_tokens = cs[i].n_tokens;
    }
    et_buf_free(&line);
    et_buf_free(&text);
    return rc;
}

int et_ingest(const char *const *paths, size_t n_paths, const char *out_path, const et_ingest_opts *opts,
              et_ingest_stats *stats, et_error *err) {
    et_ingest_opts defaults;
    if (!opts) {
        et_ingest_opts_default(&defaults);
        opts = &defaults;
    }
    et_ingest_stats local;
    et_ingest_stats *st = stats ? stats : &local;
    memset(st, 0, sizeof(*st));
    double t0 = et_now();
    size_t budget = opts->chunk_size;
    if (opts->max_tokens && opts->max_tokens < budget) budget = opts->max_tokens;
    size_t overlap = opts->chunk_overlap;
    if (budget < 1) return et_err_set(err, ET_EINVAL, "chunk size must be at least 1 token");
    if (overlap >= budget) {
        if (opts->max_tokens && opts->max_tokens < opts->chunk_size) overlap = budget / 4;
        else
            return et_err_set(err, ET_EINVAL, "chunk overlap (%zu) must be smaller than the chunk size (%zu)",
                              overlap, budget);
    }
    if (n_paths == 0 || !paths) return et_err_set(err, ET_EINVAL, "no input paths");
    if (!out_path || !*out_path) return et_err_set(err, ET_EINVAL, "no output path");

    walk w = {.o = opts, .st = st, .err = err};
    et_strmap_init(&w.ids);
    struct stat osb;
    if (out_path && stat(out_path, &osb) == 0) {
        w.have_out = 1;
        w.out_dev = osb.st_dev;
        w.out_ino = osb.st_ino;
    }
    int rc = collect(&w, paths, n_paths);
    et_afile out = {0};
    et_strmap ids;
    et_strmap_init(&ids);
    prog g = {0};
    if (!rc && w.n == 0)
        rc = et_err_set(err, ET_ENOTFOUND, "no input files (known extensions: pdf html htm xhtml md markdown "
                                           "txt text rst; use --include to select others)");
    if (!rc) rc = et_afile_open(&out, out_path, err);
    if (!rc) {
        et_progress_init(&g.p, "ingest", "files/s", w.n);
        if (!opts->progress) g.p.enabled = 0;
        g.t0 = et_now();
        g.files_total = w.n;
        for (size_t i = 0; i < w.n; i++) g.bytes_total += w.v[i].size;
    }
    et_chunk_opts co = {.budget = budget, .overlap = overlap, .count = et_estimate_count};
    if (opts->tokenizer) co.count = tok_count, co.count_ctx = (void *)opts->tokenizer;
    for (size_t i = 0; i < w.n && !rc; i++) {
        const src *s = &w.v[i];
        et_doc doc;
        et_doc_init(&doc);
        et_mmap mm = {0};
        int skip = ET_SKIP_NONE;
        et_error ferr = {0};
        g.pages_cur = 0;
        g.bytes_cur = g.bytes_done;
        g.size_cur = s->size;
        int frc = et_mmap_open(&mm, s->path, &ferr);
        if (frc) skip = ET_SKIP_UNREADABLE;
        else if (mm.size == 0) {
            skip = ET_SKIP_EMPTY;
            frc = et_err_set(&ferr, ET_EFORMAT, "%s: empty file", s->doc);
        } else {
            st->bytes += mm.size;
            frc = extract(s, (const char *)mm.data, mm.size, &doc, &g, &skip, &ferr);
            if (frc && skip == ET_SKIP_NONE) skip = ET_SKIP_CORRUPT;
        }
        if (frc == ET_ENOMEM) skip = ET_SKIP_NONE; /* not the file's fault */
        et_chunk_span *cs = NULL;
        size_t nc = 0;
        if (!frc) frc = et_chunk_doc(&doc, &co, &cs, &nc, &ferr);
        if (!frc) {
            frc = write_chunks(s, &doc, cs, nc, &out, &ids, st, &ferr);
            if (frc) skip = ET_SKIP_NONE; /* output error: always fatal */
            st->files++;
            st->pages += doc.n_pages;
            g.pages_done += doc.n_pages;
        }
        free(cs);
        et_doc_free(&doc);
        et_mmap_close(&mm);
        g.pages_cur = 0;
        g.files_done++;
        g.bytes_done = g.bytes_cur + s->size;
        g.chunks = st->chunks;
        if (frc) {
            if (skip != ET_SKIP_NONE && !opts->strict) {
                st->skipped++;
                st->skipped_by[skip]++;
                if (opts->on_skip) opts->on_skip(opts->cb_ctx, s->path, et_skip_reason_str(skip), ferr.msg);
            } else {
                rc = frc;
                if (err) *err = ferr;
                if (skip != ET_SKIP_NONE) et_err_prefix(err, "%s (strict mode)", et_skip_reason_str(skip));
            }
        }
        prog_print(&g, 0);
    }
    prog_print(&g, 1);
    if (!rc && st->files == 0)
        rc = et_err_set(err, ET_EFORMAT, "none of the %zu input file%s could be ingested", w.n, w.n == 1 ? "" : "s");
    if (!rc && st->chunks == 0) rc = et_err_set(err, ET_EFORMAT, "the inputs hold no text to chunk");
    if (out.fp) {
        if (rc) et_afile_abort(&out);
        else rc = et_afile_commit(&out, err);
    }
    for (size_t i = 0; i < w.n; i++) {
        free(w.v[i].path);
        free(w.v[i].doc);
    }
    free(w.v);
    et_strmap_free(&w.ids);
    et_strmap_free(&ids);
    st->seconds = et_now() - t0;
    return rc;
}
