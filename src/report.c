/* report.c - report.md / report.html for `embtune eval`, training-log reading,
 * and the baseline comparisons (deltas with paired-bootstrap intervals); see
 * report.h. */
#include "report.h"

#include <dirent.h>
#include <stdarg.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* ---- training logs ------------------------------------------------------------------- */

/* 1 if one of the first 8 lines is an object with a numeric "step". */
static int looks_like_log(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char line[8192];
    int ok = 0;
    for (int i = 0; i < 8 && !ok && fgets(line, sizeof line, f); i++) {
        cJSON *o = cJSON_Parse(line);
        ok = o && cJSON_IsObject(o) && cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "step"));
        cJSON_Delete(o);
    }
    fclose(f);
    return ok;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int et_report_find_train_log(const char *model_dir, char **path, et_error *err) {
    *path = NULL;
    DIR *d = opendir(model_dir);
    if (!d) return ET_OK; /* not a directory: no log */
    char *names[256];
    size_t n = 0;
    int rc = ET_OK;
    struct dirent *e;
    while ((e = readdir(d)) && n < ET_ARRAY_LEN(names) && !rc) {
        if (e->d_name[0] == '.' || !et_ends_with(e->d_name, ".jsonl")) continue;
        if (!strcmp(e->d_name, "train_log.jsonl")) { /* what `embtune finetune` writes */
            for (size_t i = 0; i < n; i++) free(names[i]);
            n = 0;
            if (!(names[n] = et_strdup(e->d_name, err))) rc = ET_ENOMEM;
            else n++;
            break;
        }
        if (!(names[n] = et_strdup(e->d_name, err))) rc = ET_ENOMEM;
        else n++;
    }
    closedir(d);
    qsort(names, n, sizeof(char *), cmp_str);
    for (size_t i = 0; i < n && !rc && !*path; i++) {
        char *p = et_path_join(model_dir, names[i], err);
        if (!p) rc = ET_ENOMEM;
        else if (looks_like_log(p)) *path = p;
        else free(p);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    return rc;
}

void et_train_log_free(et_train_log *log) {
    if (!log) return;
    for (size_t i = 0; i < log->n_keys; i++) free(log->keys[i]);
    free(log->keys);
    free(log->step);
    free(log->vals);
    memset(log, 0, sizeof(*log));
}

typedef struct {
    size_t row, key;
    double v;
} log_cell;

typedef struct {
    et_train_log *log;
    log_cell *cells;
    size_t n_cells, cap_cells, cap_keys;
} log_builder;

static int log_key(log_builder *b, const char *name, size_t *idx, et_error *err) {
    et_train_log *l = b->log;
    for (size_t i = 0; i < l->n_keys; i++)
        if (!strcmp(l->keys[i], name)) {
            *idx = i;
            return ET_OK;
        }
    if (l->n_keys == b->cap_keys) {
        size_t nc = b->cap_keys ? 2 * b->cap_keys : 16;
        char **k = et_realloc_n(l->keys, nc, sizeof(char *), err);
        if (!k) return ET_ENOMEM;
        l->keys = k;
        b->cap_keys = nc;
    }
    if (!(l->keys[l->n_keys] = et_strdup(name, err))) return ET_ENOMEM;
    *idx = l->n_keys++;
    return ET_OK;
}

static int log_put(log_builder *b, size_t row, const char *name, double v, et_error *err) {
    size_t k;
    int rc = log_key(b, name, &k, err);
    if (rc) return rc;
    if (b->n_cells == b->cap_cells) {
        size_t nc = b->cap_cells ? 2 * b->cap_cells : 256;
        log_cell *c = et_realloc_n(b->cells, nc, sizeof(log_cell), err);
        if (!c) return ET_ENOMEM;
        b->cells = c;
        b->cap_cells = nc;
    }
    b->cells[b->n_cells++] = (log_cell){row, k, v};
    return ET_OK;
}

/* Numeric members of o (and of its object members, as "parent.child"). */
static int log_row(log_builder *b, size_t row, const cJSON *o, const char *prefix, double *step,
                   et_error *err) {
    int rc = ET_OK;
    for (const cJSON *c = o->child; c && !rc; c = c->next) {
        if (!c->string) continue;
        char name[256];
        snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", c->string);
        if (cJSON_IsNumber(c)) {
            if (!*prefix && !strcmp(c->string, "step")) *step = c->valuedouble;
            else if (!*prefix && !strcmp(c->string, "epoch")) continue;
            else rc = log_put(b, row, name, c->valuedouble, err);
        } else if (cJSON_IsObject(c) && !*prefix) {
            rc = log_row(b, row, c, c->string, step, err);
        }
    }
    return rc;
}

int et_train_log_read(et_train_log *log, const char *path, et_error *err) {
    memset(log, 0, sizeof(*log));
    char *data = NULL;
    size_t len = 0;
    int rc = et_read_file(path, (size_t)1 << 30, &data, &len, err);
    if (rc) return rc;
    rc = et_train_log_parse(log, data, len, path, err);
    free(data);
    return rc;
}

int et_train_log_parse(et_train_log *log, const char *data, size_t len, const char *path, et_error *err) {
    memset(log, 0, sizeof(*log));
    int rc = ET_OK;
    log_builder b = {log, NULL, 0, 0, 0};
    double *steps = NULL;
    size_t cap_steps = 0, lineno = 0;
    const char *p = data, *end = data + len;
    while (p < end && !rc) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        lineno++;
        const char *s = p;
        while (s < le && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        if (s < le) {
            cJSON *o = cJSON_ParseWithLength(s, (size_t)(le - s));
            if (!o || !cJSON_IsObject(o)) {
                rc = et_err_set(err, ET_EFORMAT, "%s:%zu: expected a JSON object per line", path, lineno);
            } else {
                if (log->n_rows == cap_steps) {
                    size_t nc = cap_steps ? 2 * cap_steps : 256;
                    double *ns = et_realloc_n(steps, nc, sizeof(double), err);
                    if (!ns) rc = ET_ENOMEM;
                    else {
                        steps = ns;
                        cap_steps = nc;
                    }
                }
                const cJSON *step = cJSON_GetObjectItemCaseSensitive(o, "step");
                if (!rc && cJSON_IsNumber(step)) { /* rows without a step are events: skipped */
                    double st = step->valuedouble;
                    rc = log_row(&b, log->n_rows, o, "", &st, err);
                    steps[log->n_rows++] = st;
                }
            }
            cJSON_Delete(o);
        }
        p = le + 1;
    }
    if (!rc) {
        log->step = steps;
        steps = NULL;
        log->vals = et_malloc_n(log->n_rows ? log->n_rows : 1, (log->n_keys ? log->n_keys : 1) * sizeof(double),
                                err);
        if (!log->vals) rc = ET_ENOMEM;
        else {
            for (size_t i = 0; i < log->n_rows * log->n_keys; i++) log->vals[i] = NAN;
            for (size_t i = 0; i < b.n_cells; i++)
                log->vals[b.cells[i].row * log->n_keys + b.cells[i].key] = b.cells[i].v;
        }
    }
    free(steps);
    free(b.cells);
    if (rc) et_train_log_free(log);
    return rc;
}

/* ---- comparisons ----------------------------------------------------------------------- */

/* Index of cut-off 5 in ks (the llama-index hit rate), else the last one. */
static size_t hit_k_index(const et_ir_result *m) {
    for (size_t i = 0; i < m->n_k; i++)
        if (m->k[i] == 5) return i;
    return m->n_k - 1;
}

typedef struct {
    double d_hit, d_mrr;        /* mean differences (run - base) */
    double hit_lo, hit_hi;      /* 95% paired-bootstrap interval */
    double mrr_lo, mrr_hi;
    size_t better, worse, same; /* queries by first relevant rank */
} comparison;

static uint64_t xs_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Per scored query: hit@K and reciprocal rank@10 differences from first ranks. */
static int compare_runs(comparison *c, const et_dataset *ds, const et_eval_run *base, const et_eval_run *run,
                        size_t hit_k, et_error *err) {
    memset(c, 0, sizeof(*c));
    size_t n = 0, nq = ds->n_queries;
    double *dh = et_malloc_n(nq ? nq : 1, sizeof(double), err);
    double *dm = et_malloc_n(nq ? nq : 1, sizeof(double), err);
    enum { B = 1000 };
    double *bh = et_malloc_n(B, sizeof(double), err), *bm = et_malloc_n(B, sizeof(double), err);
    if (!dh || !dm || !bh || !bm) {
        free(dh); free(dm); free(bh); free(bm);
        return ET_ENOMEM;
    }
    for (size_t i = 0; i < nq; i++) {
        if (ds->rel_off[i + 1] == ds->rel_off[i]) continue;
        size_t a = base->first[i], r = run->first[i];
        double ha = a && a <= hit_k, hr = r && r <= hit_k;
        double ma = a && a <= 10 ? 1.0 / (double)a : 0, mr = r && r <= 10 ? 1.0 / (double)r : 0;
        dh[n] = hr - ha;
        dm[n] = mr - ma;
        size_t ea = a ? a : SIZE_MAX, er = r ? r : SIZE_MAX;
        if (er < ea) c->better++;
        else if (er > ea) c->worse++;
        else c->same++;
        c->d_hit += dh[n];
        c->d_mrr += dm[n];
        n++;
    }
    if (n) {
        c->d_hit /= (double)n;
        c->d_mrr /= (double)n;
        uint64_t s = 0x853c49e6748fea9bull;
        for (int b = 0; b < B; b++) {
            double sh = 0, sm = 0;
            for (size_t i = 0; i < n; i++) {
                size_t j = (size_t)(xs_next(&s) % n);
                sh += dh[j];
                sm += dm[j];
            }
            bh[b] = sh / (double)n;
            bm[b] = sm / (double)n;
        }
        qsort(bh, B, sizeof(double), cmp_double);
        qsort(bm, B, sizeof(double), cmp_double);
        c->hit_lo = bh[(int)(0.025 * B)];
        c->hit_hi = bh[(int)(0.975 * B) - 1];
        c->mrr_lo = bm[(int)(0.025 * B)];
        c->mrr_hi = bm[(int)(0.975 * B) - 1];
    }
    free(dh); free(dm); free(bh); free(bm);
    return ET_OK;
}

/* ---- the report --------------------------------------------------------------------------- */

typedef struct {
    char file[64];   /* e.g. "metrics.svg" */
    char title[160];
    et_buf svg;
} chart;

typedef struct {
    chart *v;
    size_t n, cap;
} charts;

static int chart_new(charts *cs, chart **out, const char *file, const char *title, et_error *err) {
    if (cs->n == cs->cap) {
        size_t nc = cs->cap ? 2 * cs->cap : 8;
        chart *v = et_realloc_n(cs->v, nc, sizeof(chart), err);
        if (!v) return ET_ENOMEM;
        cs->v = v;
        cs->cap = nc;
    }
    chart *c = &cs->v[cs->n++];
    memset(c, 0, sizeof(*c));
    snprintf(c->file, sizeof c->file, "%s", file);
    snprintf(c->title, sizeof c->title, "%s", title);
    *out = c;
    return ET_OK;
}

static void charts_free(charts *cs) {
    for (size_t i = 0; i < cs->n; i++) et_buf_free(&cs->v[i].svg);
    free(cs->v);
}

static int metrics_chart(charts *cs, const et_eval_run *runs, size_t n_runs, et_error *err) {
    const et_ir_result *m0 = &runs[0].m;
    size_t ng = m0->n_k + 3;
    char gl[ET_IR_MAX_K + 3][24];
    const char *groups[ET_IR_MAX_K + 3], *names[64];
    size_t ns = ET_MIN(n_runs, ET_ARRAY_LEN(names));
    double *vals = et_malloc_n(ns * ng, sizeof(double), err);
    if (!vals) return ET_ENOMEM;
    for (size_t i = 0; i < m0->n_k; i++) snprintf(gl[i], sizeof gl[i], "accuracy@%zu", m0->k[i]);
    snprintf(gl[m0->n_k], sizeof gl[0], "MRR@10");
    snprintf(gl[m0->n_k + 1], sizeof gl[0], "NDCG@10");
    snprintf(gl[m0->n_k + 2], sizeof gl[0], "MAP@100");
    for (size_t g = 0; g < ng; g++) groups[g] = gl[g];
    for (size_t s = 0; s < ns; s++) {
        const et_ir_result *m = &runs[s].m;
        names[s] = runs[s].name;
        for (size_t i = 0; i < m0->n_k; i++) vals[s * ng + i] = i < m->n_k ? m->accuracy[i] : NAN;
        vals[s * ng + m0->n_k] = m->mrr10;
        vals[s * ng + m0->n_k + 1] = m->ndcg10;
        vals[s * ng + m0->n_k + 2] = m->map100;
    }
    chart *c;
    int rc = chart_new(cs, &c, "metrics.svg", "Retrieval metrics per model", err);
    if (!rc) rc = et_svg_bars(&c->svg, "Retrieval metrics per model", groups, ng, names, ns, vals, 1.0, err);
    free(vals);
    return rc;
}

static int accuracy_chart(charts *cs, const et_dataset *ds, const et_eval_run *runs, size_t n_runs,
                          et_error *err) {
    const et_ir_result *m0 = &runs[0].m;
    size_t K = ET_MAX((size_t)20, m0->k[m0->n_k - 1]);
    K = ET_MIN(K, runs[0].depth);
    size_t ns = ET_MIN(n_runs, (size_t)64);
    double *x = et_malloc_n(K, sizeof(double), err);
    double *y = et_malloc_n(ns * K, sizeof(double), err);
    et_series *se = et_malloc_n(ns, sizeof(et_series), err);
    int rc = (!x || !y || !se) ? ET_ENOMEM : ET_OK;
    for (size_t s = 0; s < ns && !rc; s++) {
        size_t scored = 0;
        double *cnt = y + s * K;
        for (size_t k = 0; k < K; k++) cnt[k] = 0;
        for (size_t i = 0; i < ds->n_queries; i++) {
            if (ds->rel_off[i + 1] == ds->rel_off[i]) continue;
            scored++;
            size_t f = runs[s].first[i];
            if (f && f <= K) cnt[f - 1] += 1;
        }
        for (size_t k = 1; k < K; k++) cnt[k] += cnt[k - 1];
        for (size_t k = 0; k < K; k++) cnt[k] = scored ? cnt[k] / (double)scored : 0;
        se[s] = (et_series){runs[s].name, x, cnt, K};
    }
    for (size_t k = 0; !rc && k < K; k++) x[k] = (double)(k + 1);
    chart *c;
    if (!rc) rc = chart_new(cs, &c, "accuracy_at_k.svg", "Accuracy@k (hit rate) by cut-off k", err);
    if (!rc)
        rc = et_svg_lines(&c->svg, "Accuracy@k (hit rate) by cut-off k", "k (documents retrieved)",
                          "queries with a relevant document in the top k", se, ns, 1, 0, err);
    free(x);
    free(y);
    free(se);
    return rc;
}

enum { LOG_LOSS, LOG_LR, LOG_METRIC, LOG_OTHER };
static int key_group(const char *k) {
    if (strstr(k, "loss")) return LOG_LOSS;
    if (!strcmp(k, "lr") || !strcmp(k, "learning_rate") || et_ends_with(k, ".lr")) return LOG_LR;
    static const char *metric_words[] = {"accuracy", "acc@", "mrr", "ndcg", "map@", "recall", "precision",
                                         "hit"};
    for (size_t i = 0; i < ET_ARRAY_LEN(metric_words); i++)
        if (strstr(k, metric_words[i])) return LOG_METRIC;
    if (!strncmp(k, "eval.", 5) || !strncmp(k, "val.", 4) || !strncmp(k, "metrics.", 8)) return LOG_METRIC;
    return LOG_OTHER;
}

/* One chart of the keys selected by (group g, or the single key `only`). */
static int training_chart(charts *cs, size_t run_no, const et_eval_run *run, const et_train_log *log, int g,
                          size_t only, et_error *err) {
    static const char *gname[3] = {"loss", "lr", "metrics"};
    static const char *gtitle[3] = {"training loss", "learning rate", "validation metrics"};
    et_series se[8];
    double *ys[8];
    size_t ns = 0, finite = 0;
    int rc = ET_OK;
    for (size_t k = 0; k < log->n_keys && ns < 8 && !rc; k++) {
        if (only != SIZE_MAX ? k != only : key_group(log->keys[k]) != g) continue;
        double *y = et_malloc_n(log->n_rows ? log->n_rows : 1, sizeof(double), err);
        if (!y) {
            rc = ET_ENOMEM;
            break;
        }
        for (size_t r = 0; r < log->n_rows; r++) {
            y[r] = log->vals[r * log->n_keys + k];
            finite += isfinite(y[r]) != 0;
        }
        ys[ns] = y;
        se[ns] = (et_series){log->keys[k], log->step, y, log->n_rows};
        ns++;
    }
    /* a noisy loss gets a smoothed companion: exponential moving average over
     * its logged points (weight 0.9, TensorBoard's default smoothing) */
    size_t n_raw = ns;
    char ema_names[8][96];
    for (size_t s = 0; s < n_raw && g == LOG_LOSS && only == SIZE_MAX && ns < 8 && !rc; s++) {
        size_t pts = 0;
        for (size_t r = 0; r < log->n_rows; r++) pts += isfinite(ys[s][r]) != 0;
        if (pts < 50) continue;
        double *y = et_malloc_n(log->n_rows, sizeof(double), err);
        if (!y) {
            rc = ET_ENOMEM;
            break;
        }
        double acc = 0, wsum = 0;
        for (size_t r = 0; r < log->n_rows; r++) {
            y[r] = NAN;
            if (!isfinite(ys[s][r])) continue;
            acc = 0.9 * acc + 0.1 * ys[s][r];
            wsum = 0.9 * wsum + 0.1;
            y[r] = acc / wsum; /* bias-corrected, so it starts at the first value */
        }
        snprintf(ema_names[s], sizeof ema_names[s], "%s (smoothed)", se[s].name);
        ys[ns] = y;
        se[ns] = (et_series){ema_names[s], log->step, y, log->n_rows};
        ns++;
    }
    if (!rc && finite) {
        char file[64], title[160], slug[32];
        const char *what = only != SIZE_MAX ? log->keys[only] : gtitle[g];
        if (only != SIZE_MAX) { /* file-name-safe key */
            size_t j = 0;
            for (const char *p = log->keys[only]; *p && j + 1 < sizeof slug; p++)
                slug[j++] = (char)((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ? *p
                                   : (*p >= 'A' && *p <= 'Z') ? *p - 'A' + 'a' : '-');
            slug[j] = 0;
        } else {
            snprintf(slug, sizeof slug, "%s", gname[g]);
        }
        snprintf(file, sizeof file, "training-%zu-%s.svg", run_no, slug);
        snprintf(title, sizeof title, "%s: %s", run->name, what);
        chart *c;
        rc = chart_new(cs, &c, file, title, err);
        if (!rc) rc = et_svg_lines(&c->svg, title, "step", what, se, ns, g != LOG_LOSS, 0, err);
    }
    for (size_t s = 0; s < ns; s++) free(ys[s]);
    return rc;
}

/* Charts of one run's training log: loss, learning rate, validation metrics,
 * then one per remaining key (grad_norm, throughput, ...; at most 4). */
static int training_charts(charts *cs, size_t run_no, const et_eval_run *run, const et_train_log *log,
                           et_error *err) {
    int rc = ET_OK;
    for (int g = LOG_LOSS; g <= LOG_METRIC && !rc; g++) rc = training_chart(cs, run_no, run, log, g, SIZE_MAX, err);
    size_t others = 0;
    for (size_t k = 0; k < log->n_keys && !rc && others < 4; k++)
        if (key_group(log->keys[k]) == LOG_OTHER) {
            rc = training_chart(cs, run_no, run, log, LOG_OTHER, k, err);
            others++;
        }
    return rc;
}

/* Both documents are built side by side: md and html. */
typedef struct {
    et_buf md, html;
} doc;

static int both(doc *d, et_error *err, const char *md, const char *html) {
    int rc = md ? et_buf_puts(&d->md, md, err) : ET_OK;
    if (!rc && html) rc = et_buf_puts(&d->html, html, err);
    return rc;
}

/* Text in both, escaped for HTML (Markdown gets it as is, with | escaped). */
static int text2(doc *d, const char *s, et_error *err) {
    int rc = ET_OK;
    for (const char *p = s; *p && !rc; p++)
        rc = *p == '|' ? et_buf_puts(&d->md, "\\|", err) : et_buf_append(&d->md, p, 1, err);
    if (!rc) rc = et_buf_xml(&d->html, s, err);
    return rc;
}

static int printf2(doc *d, et_error *err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int printf2(doc *d, et_error *err, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    return text2(d, tmp, err);
}

static int metrics_table(doc *d, const et_eval_run *runs, size_t n_runs, et_error *err) {
    const et_ir_result *m0 = &runs[0].m;
    int rc = both(d, err, "| model | kind |", "<table>\n<tr><th>model</th><th>kind</th>");
    char h[64];
    const char *fam[3] = {"accuracy", "precision", "recall"};
    for (int f = 0; f < 3 && !rc; f++)
        for (size_t i = 0; i < m0->n_k && !rc; i++) {
            snprintf(h, sizeof h, "%s@%zu", fam[f], m0->k[i]);
            rc = et_buf_printf(&d->md, err, " %s |", h);
            if (!rc) rc = et_buf_printf(&d->html, err, "<th>%s</th>", h);
        }
    if (!rc) rc = both(d, err, " MRR@10 | NDCG@10 | MAP@100 | queries/s |\n|---|---|",
                       "<th>MRR@10</th><th>NDCG@10</th><th>MAP@100</th><th>queries/s</th></tr>\n");
    for (size_t i = 0; i < 3 * m0->n_k + 4 && !rc; i++) rc = et_buf_puts(&d->md, "---:|", err);
    if (!rc) rc = et_buf_puts(&d->md, "\n", err);
    for (size_t r = 0; r < n_runs && !rc; r++) {
        const et_eval_run *x = &runs[r];
        const et_ir_result *m = &x->m;
        rc = both(d, err, "| ", "<tr><td>");
        if (!rc) rc = text2(d, x->name, err);
        if (!rc) rc = both(d, err, " | ", "</td><td>");
        if (!rc) rc = text2(d, x->kind, err);
        if (!rc) rc = both(d, err, " |", "</td>");
        const double *fv[3] = {m->accuracy, m->precision, m->recall};
        double extra[3] = {m->mrr10, m->ndcg10, m->map100};
        for (int f = 0; f < 3 && !rc; f++)
            for (size_t i = 0; i < m->n_k && !rc; i++) {
                rc = et_buf_printf(&d->md, err, " %.4f |", fv[f][i]);
                if (!rc) rc = et_buf_printf(&d->html, err, "<td>%.4f</td>", fv[f][i]);
            }
        for (int e = 0; e < 3 && !rc; e++) {
            rc = et_buf_printf(&d->md, err, " %.4f |", extra[e]);
            if (!rc) rc = et_buf_printf(&d->html, err, "<td>%.4f</td>", extra[e]);
        }
        double s = x->embed_seconds + x->search_seconds, q = s > 0 ? (double)x->nq / s : 0;
        if (!rc) rc = et_buf_printf(&d->md, err, " %.1f |\n", q);
        if (!rc) rc = et_buf_printf(&d->html, err, "<td>%.1f</td></tr>\n", q);
    }
    if (!rc) rc = both(d, err, "\n", "</table>\n");
    return rc;
}

static int summary(doc *d, const et_dataset *ds, const et_eval_run *runs, size_t n_runs, et_error *err) {
    size_t base = n_runs;
    for (size_t r = 0; r < n_runs; r++)
        if (!strcmp(runs[r].kind, "model")) {
            base = r;
            break;
        }
    int rc = both(d, err, "## Summary\n\n", "<h2>Summary</h2>\n");
    if (base == n_runs || n_runs < 2) {
        if (!rc) rc = both(d, err, "One system or no base model: no comparison.\n\n",
                           "<p>One system or no base model: no comparison.</p>\n");
        return rc;
    }
    const et_eval_run *b = &runs[base];
    size_t hk = hit_k_index(&b->m), K = b->m.k[hk];
    if (!rc) rc = both(d, err, "", "<ul>\n");
    for (size_t r = 0; r < n_runs && !rc; r++) {
        if (r == base) continue;
        const et_eval_run *x = &runs[r];
        comparison c;
        if ((rc = compare_runs(&c, ds, b, x, K, err))) break;
        rc = both(d, err, "- ", "<li>");
        if (!rc) rc = both(d, err, "**", "<b>");
        if (!rc) rc = text2(d, x->name, err);
        if (!rc) rc = both(d, err, "** vs **", "</b> vs <b>");
        if (!rc) rc = text2(d, b->name, err);
        if (!rc) rc = both(d, err, "**: ", "</b>: ");
        if (!rc)
            rc = printf2(d, err,
                         "accuracy@%zu %.4f -> %.4f (%+.4f, 95%% CI [%+.4f, %+.4f]); "
                         "MRR@10 %.4f -> %.4f (%+.4f, 95%% CI [%+.4f, %+.4f]); "
                         "NDCG@10 %.4f -> %.4f; first relevant ranked higher for %zu queries, "
                         "lower for %zu, unchanged for %zu.",
                         K, b->m.accuracy[hk], x->m.accuracy[hk], c.d_hit, c.hit_lo, c.hit_hi, b->m.mrr10,
                         x->m.mrr10, c.d_mrr, c.mrr_lo, c.mrr_hi, b->m.ndcg10, x->m.ndcg10, c.better, c.worse,
                         c.same);
        if (!rc) rc = both(d, err, "\n", "</li>\n");
    }
    if (!rc) rc = both(d, err, "\n", "</ul>\n");
    if (!rc)
        rc = both(d, err,
                  "Intervals: paired bootstrap over queries (1000 resamples, fixed seed); an interval "
                  "that excludes 0 is a difference the query sample supports.\n\n",
                  "<p class=\"note\">Intervals: paired bootstrap over queries (1000 resamples, fixed seed); "
                  "an interval that excludes 0 is a difference the query sample supports.</p>\n");
    return rc;
}

/* Up to n characters of s, cut at a UTF-8 boundary, "..." when cut. */
static int text2_cut(doc *d, const char *s, size_t n, et_error *err) {
    size_t len = strlen(s);
    if (len <= n) return text2(d, s, err);
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80) n--;
    char *t = et_strndup(s, n, err);
    if (!t) return ET_ENOMEM;
    for (char *p = t; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    int rc = text2(d, t, err);
    free(t);
    if (!rc) rc = text2(d, "...", err);
    return rc;
}

typedef struct {
    size_t q;
    double gain; /* reciprocal rank after - before (0 when not in the ranking) */
} moved;

static int cmp_gain_desc(const void *a, const void *b) {
    const moved *x = a, *y = b;
    if (x->gain != y->gain) return x->gain > y->gain ? -1 : 1;
    return x->q < y->q ? -1 : x->q > y->q;
}

/* For each model run after the baseline: the queries whose first relevant
 * document moved up most, and down most (at most 5 each), by the change of
 * its reciprocal rank (what MRR counts: 20 -> 1 beats "not found" -> 50). */
static int moved_queries(doc *d, const et_dataset *ds, const et_eval_run *runs, size_t n_runs, et_error *err) {
    size_t base = n_runs;
    for (size_t r = 0; r < n_runs; r++)
        if (!strcmp(runs[r].kind, "model")) {
            base = r;
            break;
        }
    if (base == n_runs) return ET_OK;
    const et_eval_run *b = &runs[base];
    moved *mv = et_malloc_n(ds->n_queries ? ds->n_queries : 1, sizeof(moved), err);
    if (!mv) return ET_ENOMEM;
    int rc = ET_OK, header = 0;
    for (size_t r = 0; r < n_runs && !rc; r++) {
        const et_eval_run *x = &runs[r];
        if (r == base || !strcmp(x->kind, "bm25")) continue;
        size_t n = 0;
        for (size_t i = 0; i < ds->n_queries; i++) {
            if (ds->rel_off[i + 1] == ds->rel_off[i]) continue;
            double a = b->first[i] ? 1.0 / (double)b->first[i] : 0, c = x->first[i] ? 1.0 / (double)x->first[i] : 0;
            if (a != c) mv[n++] = (moved){i, c - a};
        }
        if (!n) continue;
        qsort(mv, n, sizeof(moved), cmp_gain_desc);
        if (!header) {
            rc = both(d, err, "## Queries that moved\n\n", "<h2>Queries that moved</h2>\n");
            header = 1;
        }
        for (int dir = 0; dir < 2 && !rc; dir++) {
            size_t cnt = 0;
            for (size_t j = 0; j < n; j++) cnt += dir == 0 ? mv[j].gain > 0 : mv[j].gain < 0;
            if (!cnt) continue;
            rc = both(d, err, "**", "<p><b>");
            if (!rc) rc = text2(d, x->name, err);
            if (!rc) rc = printf2(d, err, " vs %s, %s:", b->name, dir == 0 ? "largest gains" : "largest losses");
            if (!rc) rc = both(d, err, "**\n\n| rank before | rank after | query | relevant document |\n|---:|---:|---|---|\n",
                               "</b></p>\n<table class=\"moved\"><tr><th>rank before</th><th>rank after</th>"
                               "<th>query</th><th>relevant document</th></tr>\n");
            for (size_t t = 0; t < ET_MIN(cnt, (size_t)5) && !rc; t++) {
                const moved *e = dir == 0 ? &mv[t] : &mv[n - 1 - t];
                size_t i = e->q, a = b->first[i], c = x->first[i];
                char ra[32], rb[32];
                snprintf(ra, sizeof ra, a ? "%zu" : "> %zu", a ? a : b->depth);
                snprintf(rb, sizeof rb, c ? "%zu" : "> %zu", c ? c : x->depth);
                rc = both(d, err, "| ", "<tr><td>");
                if (!rc) rc = text2(d, ra, err);
                if (!rc) rc = both(d, err, " | ", "</td><td>");
                if (!rc) rc = text2(d, rb, err);
                if (!rc) rc = both(d, err, " | ", "</td><td>");
                if (!rc) rc = text2_cut(d, ds->queries[i], 160, err);
                if (!rc) rc = both(d, err, " | ", "</td><td>");
                if (!rc) rc = text2_cut(d, ds->docs[ds->rel[ds->rel_off[i]]], 200, err);
                if (!rc) rc = both(d, err, " |\n", "</td></tr>\n");
            }
            if (!rc) rc = both(d, err, "\n", "</table>\n");
        }
    }
    free(mv);
    return rc;
}

static int embed_chart(doc *d, const chart *c, et_error *err) {
    int rc = et_buf_puts(&d->md, "![", err);
    if (!rc) rc = et_buf_puts(&d->md, c->title, err);
    if (!rc) rc = et_buf_printf(&d->md, err, "](%s)\n\n", c->file);
    if (!rc) rc = et_buf_puts(&d->html, "<figure>", err);
    if (!rc) rc = et_buf_append(&d->html, c->svg.data, c->svg.len, err);
    if (!rc) rc = et_buf_puts(&d->html, "</figure>\n", err);
    return rc;
}

static const char *html_head =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>embtune evaluation report</title>\n<style>\n"
    "body{font-family:Helvetica,Arial,sans-serif;max-width:980px;margin:24px auto;padding:0 16px;"
    "color:#222;line-height:1.45}\n"
    "table{border-collapse:collapse;font-size:13px;display:block;overflow-x:auto}\n"
    "th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}\n"
    "th:first-child,td:first-child,td:nth-child(2){text-align:left}\n"
    "table.moved td:nth-child(3),table.moved td:nth-child(4){text-align:left}\n"
    "table.moved td:first-child,table.moved td:nth-child(2){text-align:right}\n"
    "th{background:#f3f3f3}\nfigure{margin:16px 0}\n.note{color:#555;font-size:13px}\n"
    "code{background:#f3f3f3;padding:1px 4px}\n</style>\n</head>\n<body>\n";

static const char *definitions_md =
    "## Definitions\n\n"
    "Metrics follow sentence-transformers' InformationRetrievalEvaluator (binary relevance), "
    "averaged over the queries with at least one relevant document; scores are cosine similarities "
    "(BM25: Okapi, k1 1.2, b 0.75).\n\n"
    "- accuracy@k: a relevant document is in the top k (llama-index's hit rate is accuracy@5).\n"
    "- precision@k: relevant documents in the top k, divided by k. recall@k: divided by the number "
    "of relevant documents.\n"
    "- MRR@10: 1 / rank of the first relevant document, 0 if it is not in the top 10.\n"
    "- NDCG@10: DCG of the top 10 (1/log2(rank + 1) per relevant document) over the ideal DCG.\n"
    "- MAP@100: precision at each relevant document in the top 100, summed, divided by "
    "min(100, relevant documents).\n\n"
    "Per-query ranks are in `ranks.jsonl`, every number in `metrics.json`.\n";

static const char *definitions_html =
    "<h2>Definitions</h2>\n<p class=\"note\">Metrics follow sentence-transformers' "
    "InformationRetrievalEvaluator (binary relevance), averaged over the queries with at least one "
    "relevant document; scores are cosine similarities (BM25: Okapi, k1 1.2, b 0.75).</p>\n<ul class=\"note\">\n"
    "<li>accuracy@k: a relevant document is in the top k (llama-index's hit rate is accuracy@5).</li>\n"
    "<li>precision@k: relevant documents in the top k, divided by k. recall@k: divided by the number of "
    "relevant documents.</li>\n"
    "<li>MRR@10: 1 / rank of the first relevant document, 0 if it is not in the top 10.</li>\n"
    "<li>NDCG@10: DCG of the top 10 (1/log2(rank + 1) per relevant document) over the ideal DCG.</li>\n"
    "<li>MAP@100: precision at each relevant document in the top 100, summed, divided by min(100, "
    "relevant documents).</li>\n</ul>\n<p class=\"note\">Per-query ranks are in <code>ranks.jsonl</code>, "
    "every number in <code>metrics.json</code>.</p>\n";

int et_report_write(const char *dir, const char *dataset_path, const et_dataset *ds,
                    const et_eval_run *runs, size_t n_runs, et_error *err) {
    if (!n_runs) return et_err_set(err, ET_EINVAL, "report: no runs");
    int rc = et_mkdir_p(dir, err);
    if (rc) return rc;
    charts cs = {0};
    doc d = {0};
    size_t scored = runs[0].m.n_queries, skipped = runs[0].m.n_skipped;

    rc = both(&d, err, "# embtune evaluation report\n\n", html_head);
    if (!rc) rc = et_buf_puts(&d.html, "<h1>embtune evaluation report</h1>\n<p>", err);
    if (!rc) rc = both(&d, err, "Dataset `", "Dataset <code>");
    if (!rc) rc = text2(&d, dataset_path, err);
    if (!rc) rc = both(&d, err, "`: ", "</code>: ");
    if (!rc)
        rc = printf2(&d, err, "%zu queries (%zu scored, %zu without relevant documents), %zu documents. "
                     "embtune %s.", ds->n_queries, scored, skipped, ds->n_docs, ET_VERSION);
    if (!rc) rc = both(&d, err, "\n\n", "</p>\n");
    if (!rc) rc = summary(&d, ds, runs, n_runs, err);
    if (!rc) rc = both(&d, err, "## Metrics\n\n", "<h2>Metrics</h2>\n");
    if (!rc) rc = metrics_table(&d, runs, n_runs, err);
    if (!rc) rc = metrics_chart(&cs, runs, n_runs, err);
    if (!rc) rc = accuracy_chart(&cs, ds, runs, n_runs, err);
    for (size_t i = 0; i < cs.n && !rc; i++) rc = embed_chart(&d, &cs.v[i], err);
    if (!rc) rc = moved_queries(&d, ds, runs, n_runs, err);

    /* training curves */
    int any_log = 0;
    for (size_t r = 0; r < n_runs && !rc; r++) {
        if (!runs[r].train_log) continue;
        et_train_log log;
        et_error lerr = {0};
        if (et_train_log_read(&log, runs[r].train_log, &lerr)) {
            fprintf(stderr, "embtune eval: warning: training log skipped: %s\n", lerr.msg);
            continue;
        }
        if (!any_log) rc = both(&d, err, "## Training\n\n", "<h2>Training</h2>\n");
        any_log = 1;
        if (!rc) rc = both(&d, err, "### ", "<h3>");
        if (!rc) rc = text2(&d, runs[r].name, err);
        if (!rc) rc = both(&d, err, "\n\nTraining log `", "</h3>\n<p>Training log <code>");
        if (!rc) rc = text2(&d, runs[r].train_log, err);
        if (!rc) rc = printf2(&d, err, "`: %zu rows; last row:", log.n_rows);
        for (size_t k = 0; k < log.n_keys && log.n_rows && !rc; k++) {
            double v = log.vals[(log.n_rows - 1) * log.n_keys + k];
            if (isfinite(v)) rc = printf2(&d, err, " %s %.5g", log.keys[k], v);
        }
        if (!rc) rc = both(&d, err, "\n\n", "</p>\n");
        size_t first = cs.n;
        if (!rc) rc = training_charts(&cs, r + 1, &runs[r], &log, err);
        for (size_t i = first; i < cs.n && !rc; i++) rc = embed_chart(&d, &cs.v[i], err);
        et_train_log_free(&log);
    }
    if (!rc) rc = both(&d, err, definitions_md, definitions_html);
    if (!rc) rc = et_buf_puts(&d.html, "</body>\n</html>\n", err);

    for (size_t i = 0; i < cs.n && !rc; i++) {
        char *p = et_path_join(dir, cs.v[i].file, err);
        if (!p) rc = ET_ENOMEM;
        else rc = et_write_file_atomic(p, cs.v[i].svg.data, cs.v[i].svg.len, err);
        free(p);
    }
    char *pm = rc ? NULL : et_path_join(dir, "report.md", err);
    char *ph = rc ? NULL : et_path_join(dir, "report.html", err);
    if (!rc && (!pm || !ph)) rc = ET_ENOMEM;
    if (!rc) rc = et_write_file_atomic(pm, d.md.data, d.md.len, err);
    if (!rc) rc = et_write_file_atomic(ph, d.html.data, d.html.len, err);
    free(pm);
    free(ph);
    charts_free(&cs);
    et_buf_free(&d.md);
    et_buf_free(&d.html);
    return rc;
}
