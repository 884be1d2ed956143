/* report_svg.c - small SVG chart writer (grouped bars, line charts) for the
 * evaluation report; see report.h. No external assets: plain SVG 1.1 with
 * inline attributes, readable in any browser and in Markdown viewers. */
#include <math.h>
#include <string.h>

#include "report.h"

#define SVG_W 720.0
#define SVG_H 380.0
#define PAD_L 64.0
#define PAD_R 16.0
#define PAD_B 46.0

static const char *const palette[] = {"#4c72b0", "#dd8452", "#55a868", "#c44e52",
                                      "#8172b3", "#937860", "#da8bc3", "#8c8c8c"};
#define N_COLORS (sizeof(palette) / sizeof(palette[0]))

int et_buf_xml(et_buf *out, const char *s, et_error *err) {
    int rc = ET_OK;
    for (const char *p = s; *p && !rc; p++) {
        switch (*p) {
        case '&': rc = et_buf_puts(out, "&amp;", err); break;
        case '<': rc = et_buf_puts(out, "&lt;", err); break;
        case '>': rc = et_buf_puts(out, "&gt;", err); break;
        case '"': rc = et_buf_puts(out, "&quot;", err); break;
        default: rc = et_buf_append(out, p, 1, err);
        }
    }
    return rc;
}

/* 1, 2 or 5 times a power of ten, about range / n. */
static double nice_step(double range, int n) {
    if (!(range > 0)) return 1;
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void fmt_num(char *b, size_t n, double v) {
    if (fabs(v) < 1e-12) v = 0;
    snprintf(b, n, "%.4g", v);
}

/* Legend items laid out in rows from (x0, y0); returns the rows used. */
static int legend(et_buf *o, const char *const *names, size_t n, double x0, double y0, int *rows,
                  et_error *err) {
    double x = x0, y = y0;
    int r = 1, rc = ET_OK;
    for (size_t i = 0; i < n && !rc; i++) {
        double w = 22 + 6.6 * (double)strlen(names[i]);
        if (x + w > SVG_W - PAD_R && x > x0) {
            x = x0;
            y += 16;
            r++;
        }
        rc = et_buf_printf(o, err, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                           "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", x, y - 9, palette[i % N_COLORS],
                           x + 14, y);
        if (!rc) rc = et_buf_xml(o, names[i], err);
        if (!rc) rc = et_buf_puts(o, "</text>", err);
        x += w + 10;
    }
    if (rows) *rows = r;
    return rc;
}

/* Rows the legend needs (same layout as legend()). */
static int legend_rows(const char *const *names, size_t n, double x0) {
    double x = x0;
    int r = 1;
    for (size_t i = 0; i < n; i++) {
        double w = 22 + 6.6 * (double)strlen(names[i]);
        if (x + w > SVG_W - PAD_R && x > x0) {
            x = x0;
            r++;
        }
        x += w + 10;
    }
    return r;
}

static int svg_open(et_buf *o, const char *title, et_error *err) {
    int rc = et_buf_printf(o, err,
                           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                           "viewBox=\"0 0 %.0f %.0f\" font-family=\"Helvetica, Arial, sans-serif\">\n"
                           "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n"
                           "<text x=\"%.1f\" y=\"20\" font-size=\"14\" font-weight=\"bold\">",
                           SVG_W, SVG_H, SVG_W, SVG_H, PAD_L);
    if (!rc) rc = et_buf_xml(o, title, err);
    if (!rc) rc = et_buf_puts(o, "</text>\n", err);
    return rc;
}

/* Horizontal grid lines and y tick labels for [lo, hi] with step; v -> pixel. */
static int y_axis(et_buf *o, double lo, double hi, double step, double top, double bot, int log_y,
                  et_error *err) {
    int rc = ET_OK;
    long n = (long)floor((hi - lo) / step + 1e-6);
    if (n > 50) n = 50; /* callers keep it near 5; a bound against rounding */
    for (long i = 0; i <= n && !rc; i++) {
        double v = lo + (double)i * step;
        double py = bot - (v - lo) / (hi - lo) * (bot - top);
        char lab[32];
        fmt_num(lab, sizeof lab, log_y ? pow(10, v) : v);
        rc = et_buf_printf(o, err,
                           "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e0e0e0\"/>"
                           "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%s</text>\n",
                           PAD_L, SVG_W - PAD_R, py, py, PAD_L - 6, py + 3.5, lab);
    }
    if (!rc)
        rc = et_buf_printf(o, err,
                           "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
                           "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                           PAD_L, PAD_L, top, bot, PAD_L, SVG_W - PAD_R, bot, bot);
    return rc;
}

int et_svg_bars(et_buf *o, const char *title, const char *const *groups, size_t n_groups,
                const char *const *series, size_t n_series, const double *values, double ymax,
                et_error *err) {
    if (!n_groups || !n_series) return et_err_set(err, ET_EINVAL, "bar chart without data");
    if (!(ymax > 0)) {
        double mx = 0;
        for (size_t i = 0; i < n_series * n_groups; i++)
            if (values[i] > mx) mx = values[i];
        double st = nice_step(mx > 0 ? mx : 1, 5);
        ymax = ceil((mx > 0 ? mx : 1) / st) * st;
    }
    if (!isfinite(ymax) || ymax > 1e300) return et_err_set(err, ET_EINVAL, "bar chart '%s': values out of range", title);
    double top = 36 + 16.0 * legend_rows(series, n_series, PAD_L) + 8, bot = SVG_H - PAD_B;
    int rc = svg_open(o, title, err);
    if (!rc) rc = legend(o, series, n_series, PAD_L, 40, NULL, err);
    double step = nice_step(ymax, 5);
    if (!rc) rc = y_axis(o, 0, ymax, step, top, bot, 0, err);
    double gw = (SVG_W - PAD_L - PAD_R) / (double)n_groups, bw = gw * 0.8 / (double)n_series;
    for (size_t g = 0; g < n_groups && !rc; g++) {
        double gx = PAD_L + gw * (double)g + gw * 0.1;
        for (size_t s = 0; s < n_series && !rc; s++) {
            double v = values[s * n_groups + g];
            if (!isfinite(v)) continue;
            double h = fmax(0, fmin(v, ymax)) / ymax * (bot - top), x = gx + bw * (double)s;
            rc = et_buf_printf(o, err, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\">"
                               "<title>", x, bot - h, bw * 0.92, h, palette[s % N_COLORS]);
            if (!rc) rc = et_buf_xml(o, series[s], err);
            if (!rc) rc = et_buf_puts(o, ", ", err);
            if (!rc) rc = et_buf_xml(o, groups[g], err);
            if (!rc) rc = et_buf_printf(o, err, ": %.4f</title></rect>", v);
            if (!rc && bw >= 20)
                rc = et_buf_printf(o, err, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\">"
                                   "%.3f</text>", x + bw * 0.46, bot - h - 3, v);
            if (!rc) rc = et_buf_puts(o, "\n", err);
        }
        if (!rc) {
            rc = et_buf_printf(o, err, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">",
                               PAD_L + gw * ((double)g + 0.5), bot + 16);
            if (!rc) rc = et_buf_xml(o, groups[g], err);
            if (!rc) rc = et_buf_puts(o, "</text>\n", err);
        }
    }
    if (!rc) rc = et_buf_puts(o, "</svg>\n", err);
    return rc;
}

int et_svg_lines(et_buf *o, const char *title, const char *xlabel, const char *ylabel,
                 const et_series *series, size_t n_series, int y_from_zero, int log_y, et_error *err) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    size_t npts = 0;
    for (size_t s = 0; s < n_series; s++)
        for (size_t i = 0; i < series[s].n; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (!isfinite(x) || !isfinite(y) || (log_y && !(y > 0))) continue;
            if (log_y) y = log10(y);
            x0 = fmin(x0, x); x1 = fmax(x1, x);
            y0 = fmin(y0, y); y1 = fmax(y1, y);
            npts++;
        }
    if (!npts) return et_err_set(err, ET_EINVAL, "line chart '%s' without finite points", title);
    if (!isfinite(x1 - x0) || !isfinite(y1 - y0) || fabs(x0) > 1e300 || fabs(x1) > 1e300 || fabs(y0) > 1e300 ||
        fabs(y1) > 1e300)
        return et_err_set(err, ET_EINVAL, "line chart '%s': values out of range", title);
    if (y_from_zero && !log_y) {
        y0 = fmin(y0, 0);
        y1 = fmax(y1, 0);
    }
    if (x1 - x0 <= fabs(x0) * 1e-9) { /* one x value: widen around it */
        double h = fmax(1, fabs(x0) * 1e-3);
        x0 -= h; x1 += h;
    }
    if (y1 - y0 <= fabs(y0) * 1e-9) {
        double h = fmax(0.5, fabs(y0) * 1e-3);
        y0 -= h; y1 += h;
    }
    double ys = log_y && y1 - y0 >= 2 ? ceil((y1 - y0) / 6) : nice_step(y1 - y0, 5);
    double ylo = floor(y0 / ys + 1e-9) * ys, yhi = ceil(y1 / ys - 1e-9) * ys;
    if (yhi <= ylo) yhi = ylo + ys;
    const char *names[64];
    size_t nn = ET_MIN(n_series, ET_ARRAY_LEN(names));
    for (size_t s = 0; s < nn; s++) names[s] = series[s].name;
    double top = 36 + 16.0 * legend_rows(names, nn, PAD_L) + 8, bot = SVG_H - PAD_B;
    double left = PAD_L, right = SVG_W - PAD_R;
    int rc = svg_open(o, title, err);
    if (!rc) rc = legend(o, names, nn, PAD_L, 40, NULL, err);
    if (!rc) rc = y_axis(o, ylo, yhi, ys, top, bot, log_y, err);
    double xs = nice_step(x1 - x0, 6);
    int x_int = 1; /* integer x (steps, k): no fractional ticks */
    for (size_t s = 0; s < n_series && x_int; s++)
        for (size_t i = 0; i < series[s].n && x_int; i++)
            if (isfinite(series[s].x[i]) && series[s].x[i] != floor(series[s].x[i])) x_int = 0;
    if (x_int && xs < 1) xs = 1;
    double xv0 = ceil(x0 / xs - 1e-9) * xs;
    long nx = (long)floor((x1 - xv0) / xs + 1e-6);
    if (nx > 50) nx = 50;
    for (long i = 0; i <= nx && !rc; i++) {
        double v = xv0 + (double)i * xs;
        double px = left + (v - x0) / (x1 - x0) * (right - left);
        char lab[32];
        fmt_num(lab, sizeof lab, v);
        rc = et_buf_printf(o, err, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>"
                           "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%s</text>\n",
                           px, px, bot, bot + 4, px, bot + 15, lab);
    }
    if (!rc) {
        rc = et_buf_printf(o, err, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">",
                           (left + right) / 2, SVG_H - 8);
        if (!rc) rc = et_buf_xml(o, xlabel, err);
        if (!rc) rc = et_buf_printf(o, err, "</text>\n<text x=\"14\" y=\"%.1f\" font-size=\"11\" "
                                    "text-anchor=\"middle\" transform=\"rotate(-90 14 %.1f)\">",
                                    (top + bot) / 2, (top + bot) / 2);
        if (!rc) rc = et_buf_xml(o, ylabel, err);
        if (!rc) rc = et_buf_puts(o, "</text>\n", err);
    }
    for (size_t s = 0; s < n_series && !rc; s++) {
        const et_series *se = &series[s];
        const char *col = palette[s % N_COLORS];
        size_t shown = 0;
        rc = et_buf_printf(o, err, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col);
        for (size_t i = 0; i < se->n && !rc; i++) {
            double x = se->x[i], y = se->y[i];
            if (!isfinite(x) || !isfinite(y) || (log_y && !(y > 0))) continue;
            if (log_y) y = log10(y);
            rc = et_buf_printf(o, err, "%s%.1f,%.1f", shown++ ? " " : "",
                               left + (x - x0) / (x1 - x0) * (right - left),
                               bot - (y - ylo) / (yhi - ylo) * (bot - top));
        }
        if (!rc) rc = et_buf_puts(o, "\"/>\n", err);
        if (shown <= 40)
            for (size_t i = 0; i < se->n && !rc; i++) {
                double x = se->x[i], y = se->y[i], yv = y;
                if (!isfinite(x) || !isfinite(y) || (log_y && !(y > 0))) continue;
                if (log_y) y = log10(y);
                rc = et_buf_printf(o, err, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"><title>",
                                   left + (x - x0) / (x1 - x0) * (right - left),
                                   bot - (y - ylo) / (yhi - ylo) * (bot - top), col);
                if (!rc) rc = et_buf_xml(o, se->name, err);
                if (!rc) rc = et_buf_printf(o, err, " (%g, %.4g)</title></circle>\n", x, yv);
            }
    }
    if (!rc) rc = et_buf_puts(o, "</svg>\n", err);
    return rc;
}
