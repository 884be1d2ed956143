/* report.h - the evaluation report: report.md and report.html (self-contained,
 * inline SVG), and the SVG charts, all drawn here.
 *
 * Charts: the metrics of every run as grouped bars; accuracy@k for k = 1..K
 * as curves (from the per-query first relevant ranks); and, for a run whose
 * model has a training log, its loss / learning-rate / metric curves.
 *
 * Training log: a JSONL file beside the model (a *.jsonl whose first row is
 * an object with a "step" key), one object per row. Every numeric key is a
 * series against "step"; keys containing "loss" go to the loss chart, "lr" /
 * "learning_rate" to the learning-rate chart, the rest (except "epoch") to
 * the metrics chart. Rows without a key simply have no point for it.
 */
#ifndef ET_REPORT_H
#define ET_REPORT_H

#include "eval.h"

/* ---- SVG charts (report_svg.c) --------------------------------------------------- */

typedef struct et_series {
    const char *name;
    const double *x; /* [n] */
    const double *y; /* [n] */
    size_t n;
} et_series;

/* Grouped bar chart: n_groups groups (x axis labels), one bar per series
 * in each group; values [n_series, n_groups], y axis from 0 to ymax (0 = the
 * data's maximum, rounded up). Appends one <svg> element to out. */
int et_svg_bars(et_buf *out, const char *title, const char *const *groups, size_t n_groups,
                const char *const *series, size_t n_series, const double *values, double ymax,
                et_error *err);

/* Line chart of n_series (x, y) series. y_from_zero: y axis starts at 0;
 * log_y: logarithmic y axis (positive values only; others are skipped). */
int et_svg_lines(et_buf *out, const char *title, const char *xlabel, const char *ylabel,
                 const et_series *series, size_t n_series, int y_from_zero, int log_y, et_error *err);

/* Appends s with &, <, >, " escaped (for HTML/SVG text and attributes). */
int et_buf_xml(et_buf *out, const char *s, et_error *err);

/* ---- training logs (report.c) ------------------------------------------------------ */

/* Finds a training log in model_dir; *path = malloc'd path or NULL if none. */
int et_report_find_train_log(const char *model_dir, char **path, et_error *err);

typedef struct et_train_log {
    size_t n_rows;
    size_t n_keys;
    char **keys;     /* [n_keys] numeric keys other than "step", in first-seen order */
    double *step;    /* [n_rows] "step" (row index when absent) */
    double *vals;    /* [n_rows, n_keys], NaN where the row lacks the key */
} et_train_log;

/* Reads a training log; malformed rows are errors naming file:line. */
int et_train_log_read(et_train_log *log, const char *path, et_error *err);
/* Same from len bytes (need not be NUL-terminated); path names it in messages. */
int et_train_log_parse(et_train_log *log, const char *data, size_t len, const char *path, et_error *err);
void et_train_log_free(et_train_log *log);

/* ---- the report ---------------------------------------------------------------------- */

/* Writes report.md, report.html and the charts (metrics.svg, accuracy_at_k.svg,
 * training-<n>.svg) into dir. The first run of kind "model" is the baseline that
 * the others are compared against (deltas with paired-bootstrap 95% intervals,
 * queries won / lost). */
int et_report_write(const char *dir, const char *dataset_path, const et_dataset *ds,
                    const et_eval_run *runs, size_t n_runs, et_error *err);

#endif
