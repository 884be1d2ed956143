/* test_report.c - the evaluation report: baseline comparison numbers computed
 * by hand, training-log parsing, chart and file output. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "report.h"
#include "test_util.h"

#define ND 150
#define NQ 10

static char out_dir[512];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static char *read_text(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *data = NULL;
    size_t len;
    if (et_read_file(path, 0, &data, &len, NULL)) return NULL;
    return data;
}

static size_t count(const char *s, const char *needle) {
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* Query i's relevant document is document i; the ranking puts it at rank
 * first[i] (1-based; 0 = beyond the 100 kept) and fills the rest in order. */
static void make_run(et_eval_run *r, const et_dataset *ds, const char *name, const char *kind,
                     const size_t *first) {
    et_error err = {0};
    et_eval_run_init(r, name, kind, NULL, &err);
    r->nq = NQ;
    r->depth = 100;
    r->ranked = malloc(NQ * 100 * sizeof(size_t));
    r->scores = malloc(NQ * 100 * sizeof(float));
    for (size_t i = 0; i < NQ; i++) {
        size_t d = 0;
        for (size_t j = 0; j < 100; j++) {
            if (first[i] && j == first[i] - 1) r->ranked[i * 100 + j] = i;
            else {
                if (d == i) d++;
                r->ranked[i * 100 + j] = d++;
            }
            r->scores[i * 100 + j] = 1.0f - (float)j / 100;
        }
    }
    size_t ks[4] = {1, 3, 5, 10};
    TEST_CHECK(et_eval_score(r, ds, ks, 4, &err) == 0, "score %s: %s", name, err.msg);
    r->search_seconds = 0.01;
}

/* Base first ranks  1 2 3 6 11 1 1 4 20 (none)
 * Tuned first ranks 1 1 2 5 3  1 2 7 1  50
 * accuracy@5: base 6/10 = 0.6 (ranks 1 2 3 1 1 4), tuned 8/10 = 0.8 -> +0.2
 * MRR@10: base (1 + 1/2 + 1/3 + 1/6 + 0 + 1 + 1 + 1/4 + 0 + 0)/10 = 0.425
 *         tuned (1 + 1 + 1/2 + 1/5 + 1/3 + 1 + 1/2 + 1/7 + 1 + 0)/10 = 0.5676190476
 *         -> +0.1426
 * first relevant ranked higher for queries 1 2 3 4 8 9 (6), lower for 6 7 (2),
 * unchanged for 0 5 (2). */
static void test_report_files(void) {
    et_error err = {0};
    et_dataset *ds = et_dataset_new(&err);
    char id[32], text[64];
    for (size_t d = 0; d < ND; d++) {
        snprintf(id, sizeof id, "doc%zu", d);
        snprintf(text, sizeof text, "text of document %zu", d);
        et_dataset_add_doc(ds, id, text, NULL, &err);
    }
    for (size_t q = 0; q < NQ; q++) {
        snprintf(id, sizeof id, "q%zu", q);
        snprintf(text, sizeof text, "question %zu", q);
        et_dataset_add_query(ds, id, text, &q, 1, NULL, 0, &err);
    }
    static const size_t base_first[NQ] = {1, 2, 3, 6, 11, 1, 1, 4, 20, 0};
    static const size_t tuned_first[NQ] = {1, 1, 2, 5, 3, 1, 2, 7, 1, 50};
    static const size_t bm25_first[NQ] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
    et_eval_run runs[3];
    make_run(&runs[0], ds, "bm25", "bm25", bm25_first); /* not the baseline: kind bm25 */
    make_run(&runs[1], ds, "base-model", "model", base_first);
    make_run(&runs[2], ds, "tuned <model>", "model", tuned_first);
    TEST_CLOSE(runs[1].m.accuracy[2], 0.6, 1e-12, 0);
    TEST_CLOSE(runs[2].m.accuracy[2], 0.8, 1e-12, 0);
    TEST_CLOSE(runs[1].m.mrr10, 0.425, 1e-12, 0);
    TEST_CLOSE(runs[2].m.mrr10, 0.5676190476190476, 1e-12, 0);

    /* a training log beside the tuned model, and a JSONL that is not one */
    char mdir[600], logp[700], other[700];
    snprintf(mdir, sizeof mdir, "%s/tuned-model", out_dir);
    et_mkdir_p(mdir, &err);
    snprintf(logp, sizeof logp, "%s/train_log.jsonl", mdir);
    snprintf(other, sizeof other, "%s/a-data.jsonl", mdir);
    write_text(logp, "{\"event\": \"start\", \"base\": \"m\", \"lr\": 2e-5, \"steps\": 3}\n"
                     "{\"step\": 0, \"epoch\": 0, \"eval\": {\"accuracy@5\": 0.6, \"mrr@10\": 0.4}, \"best\": true}\n"
                     "{\"step\": 1, \"loss\": 2.5, \"lr\": 1e-5, \"grad_norm\": 3.5}\n"
                     "{\"step\": 2, \"loss\": 2.0, \"lr\": 2e-5, \"grad_norm\": 2.5}\n"
                     "\n"
                     "{\"step\": 2, \"epoch\": 0.5, \"eval\": {\"accuracy@5\": 0.7, \"mrr@10\": 0.5}, \"best\": true}\n"
                     "{\"step\": 3, \"loss\": 1.5, \"lr\": 2e-5, \"epoch\": 1, \"grad_norm\": 1.5}\n");
    write_text(other, "{\"query\": \"x\", \"pos\": [\"y\"]}\n");
    char *found = NULL;
    TEST_CHECK(et_report_find_train_log(mdir, &found, &err) == 0 && found && !strcmp(found, logp),
               "found training log %s", found ? found : "(none)");
    runs[2].train_log = found;

    et_train_log log;
    TEST_CHECK(et_train_log_read(&log, logp, &err) == 0, "read log: %s", err.msg);
    /* the start event (no step) is skipped; keys in first-seen order; "eval" flattened */
    TEST_CHECK(log.n_rows == 5 && log.n_keys == 5, "log rows %zu keys %zu", log.n_rows, log.n_keys);
    if (log.n_rows == 5 && log.n_keys == 5) {
        TEST_CHECK(!strcmp(log.keys[0], "eval.accuracy@5") && !strcmp(log.keys[1], "eval.mrr@10") &&
                       !strcmp(log.keys[2], "loss") && !strcmp(log.keys[3], "lr") && !strcmp(log.keys[4], "grad_norm"),
                   "log keys %s %s %s %s %s", log.keys[0], log.keys[1], log.keys[2], log.keys[3], log.keys[4]);
        TEST_CHECK(log.step[0] == 0 && log.step[3] == 2 && log.step[4] == 3, "log steps");
        TEST_CHECK(isnan(log.vals[3 * 5 + 2]) && log.vals[3 * 5 + 0] == 0.7 && log.vals[4 * 5 + 2] == 1.5,
                   "log values");
    }
    et_train_log_free(&log);
    char bad[700];
    snprintf(bad, sizeof bad, "%s/bad.jsonl", out_dir);
    write_text(bad, "{\"step\": 1}\nnot json\n");
    TEST_CHECK(et_train_log_read(&log, bad, &err) == ET_EFORMAT && strstr(err.msg, "bad.jsonl:2:"),
               "malformed log: %s", err.msg);

    char rdir[600];
    snprintf(rdir, sizeof rdir, "%s/report", out_dir);
    TEST_CHECK(et_eval_write(rdir, "test-dataset.json", ds, runs, 3, &err) == 0, "eval write: %s", err.msg);
    TEST_CHECK(et_report_write(rdir, "test-dataset.json", ds, runs, 3, &err) == 0, "report: %s", err.msg);
    char *md = read_text(rdir, "report.md"), *html = read_text(rdir, "report.html");
    char *ranks = read_text(rdir, "ranks.jsonl"), *mj = read_text(rdir, "metrics.json");
    TEST_CHECK(md && html && ranks && mj, "report files written");
    if (md && html && ranks && mj) {
        TEST_CHECK(strstr(md, "accuracy@5 0.6000 -> 0.8000 (+0.2000"), "md: accuracy@5 delta");
        TEST_CHECK(strstr(md, "MRR@10 0.4250 -> 0.5676 (+0.1426"), "md: MRR@10 delta");
        TEST_CHECK(strstr(md, "higher for 6 queries, lower for 2, unchanged for 2"), "md: wins/losses");
        TEST_CHECK(strstr(md, "**bm25** vs **base-model**"), "md: bm25 compared with the base model");
        /* moved queries, by reciprocal-rank change: gains q8 (20 -> 1, +0.95),
         * q1 (2 -> 1, +0.5), ..., q9 (not found -> 50, +0.02) last;
         * losses q6 (1 -> 2, -0.5), q7 (4 -> 7, -0.107) */
        const char *g = strstr(md, "largest gains");
        TEST_CHECK(g && strstr(g, "|---|---|\n| 20 | 1 | question 8 | text of document 8 |\n| 2 | 1 | question 1 |"),
                   "md: largest gains");
        const char *l = strstr(md, "largest losses");
        TEST_CHECK(l && strstr(l, "|---|---|\n| 1 | 2 | question 6 | text of document 6 |\n| 4 | 7 | question 7 |"),
                   "md: largest losses");
        TEST_CHECK(strstr(html, "tuned &lt;model&gt;") && !strstr(html, "tuned <model>"), "html escapes names");
        TEST_CHECK(count(html, "<svg") == 6 && count(html, "</svg>") == 6, "html: 6 inline charts, got %zu",
                   count(html, "<svg"));
        TEST_CHECK(!strstr(html, "src=") && !strstr(html, "href=") && !strstr(html, "<link"),
                   "html has no external assets");
        TEST_CHECK(strstr(md, "(training-3-loss.svg)") && strstr(md, "(training-3-lr.svg)") &&
                       strstr(md, "(training-3-metrics.svg)") && strstr(md, "(training-3-grad_norm.svg)"),
                   "md: training charts");
        TEST_CHECK(count(ranks, "\n") == 3 * NQ, "ranks.jsonl lines %zu", count(ranks, "\n"));
        TEST_CHECK(strstr(ranks, "{\"query_id\": \"q9\", \"model\": \"base-model\", \"rank\": null"),
                   "ranks: no relevant in the top 100 is null");
        TEST_CHECK(strstr(ranks, "{\"query_id\": \"q9\", \"model\": \"tuned <model>\", \"rank\": 50"),
                   "ranks: rank 50");
        TEST_CHECK(strstr(mj, "\"accuracy@5\": 0.8,") && count(mj, "\"mrr@10\"") == 3, "metrics.json");
    }
    const char *svgs[] = {"metrics.svg", "accuracy_at_k.svg", "training-3-loss.svg"};
    for (size_t i = 0; i < 3; i++) {
        char *s = read_text(rdir, svgs[i]);
        TEST_CHECK(s && !strncmp(s, "<svg ", 5) && count(s, "</svg>") == 1, "%s well formed", svgs[i]);
        free(s);
    }
    free(md); free(html); free(ranks); free(mj);
    for (int i = 0; i < 3; i++) et_eval_run_free(&runs[i]);
    et_dataset_free(ds);
}

static void test_charts_edge_cases(void) {
    et_buf b = {0};
    et_error err = {0};
    double x[1] = {5}, y[1] = {0.25}, yl[3] = {1e-3, 1e-1, 10}, xl[3] = {1, 2, 3};
    et_series one = {"single", x, y, 1}, lg = {"log", xl, yl, 3};
    TEST_CHECK(et_svg_lines(&b, "one point", "x", "y", &one, 1, 0, 0, &err) == 0, "single point: %s", err.msg);
    TEST_CHECK(et_svg_lines(&b, "log", "x", "y", &lg, 1, 0, 1, &err) == 0, "log axis: %s", err.msg);
    double nanv[1] = {NAN};
    et_series none = {"nan", x, nanv, 1};
    TEST_CHECK(et_svg_lines(&b, "none", "x", "y", &none, 1, 0, 0, &err) == ET_EINVAL, "no finite point rejected");
    const char *g[2] = {"a", "b"}, *s[1] = {"s&<"};
    double v[2] = {0.5, NAN};
    TEST_CHECK(et_svg_bars(&b, "bars", g, 2, s, 1, v, 0, &err) == 0, "bars: %s", err.msg);
    TEST_CHECK(strstr(b.data, "s&amp;&lt;") && !strstr(b.data, "nan") && !strstr(b.data, "inf"),
               "escaped names, no nan/inf in the SVG");
    et_buf_free(&b);
}

int main(void) {
    const char *build = getenv("BUILD");
    snprintf(out_dir, sizeof out_dir, "%s/test-out/report", build ? build : "build");
    et_mkdir_p(out_dir, NULL);
    test_report_files();
    test_charts_edge_cases();
    printf("report written to %s/report\n", out_dir);
    return test_summary("test_report");
}
