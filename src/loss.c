/* loss.c - MNRL, symmetric MNRL, GISTEmbed and Matryoshka on embedding
 * matrices; see loss.h for the definitions.
 *
 * Layout of the computation (et_loss_compute): for each Matryoshka prefix
 * (or once, at full width) every column is normalized, then the rows are
 * processed in chunks of LOSS_CHUNK: the chunk's score rows over all
 * candidate blocks are built with sgemm, masked, soft-maxed, turned into
 * dS = (softmax - onehot) / B, and pushed back to the normalized embeddings
 * with two more sgemms per block. Memory is O(LOSS_CHUNK * candidates), so
 * the GradCache trainer can use very large batches.
 */
#include "loss.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define LOSS_CHUNK 32
#define NORM_EPS 1e-12

void et_loss_cfg_default(et_loss_cfg *cfg, int kind) {
    memset(cfg, 0, sizeof(*cfg));
    cfg->kind = kind;
    cfg->scale = 20.0f;
    cfg->temperature = 0.01f;
    cfg->margin_relative = 0;
    cfg->margin = 0.0f;
}

int et_loss_parse(const char *name, int *kind) {
    if (!strcmp(name, "mnrl")) *kind = ET_LOSS_MNRL;
    else if (!strcmp(name, "mnrl-sym")) *kind = ET_LOSS_MNRL_SYM;
    else if (!strcmp(name, "gist")) *kind = ET_LOSS_GIST;
    else return -1;
    return 0;
}

const char *et_loss_name(int kind) {
    switch (kind) {
    case ET_LOSS_MNRL: return "mnrl";
    case ET_LOSS_MNRL_SYM: return "mnrl-sym";
    case ET_LOSS_GIST: return "gist";
    default: return "?";
    }
}

/* ---- normalization ------------------------------------------------------------ */

void et_l2norm_forward(float *y, const float *x, size_t n, size_t d, size_t ld_x) {
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * ld_x;
        double ss = 0;
        for (size_t k = 0; k < d; k++) ss += (double)xi[k] * xi[k];
        double nrm = sqrt(ss);
        float inv = (float)(1.0 / (nrm > NORM_EPS ? nrm : NORM_EPS));
        for (size_t k = 0; k < d; k++) y[i * d + k] = xi[k] * inv;
    }
}

void et_l2norm_backward(float *dx, size_t ld_dx, const float *dy, const float *y,
                              const float *x, size_t ld_x, size_t n, size_t d, float weight,
                              int accumulate) {
    for (size_t i = 0; i < n; i++) {
        const float *xi = x + i * ld_x, *yi = y + i * d, *dyi = dy + i * d;
        float *dxi = dx + i * ld_dx;
        double ss = 0, dot = 0;
        for (size_t k = 0; k < d; k++) {
            ss += (double)xi[k] * xi[k];
            dot += (double)yi[k] * dyi[k];
        }
        double nrm = sqrt(ss);
        if (nrm > NORM_EPS) {
            float s = (float)(weight / nrm), fd = (float)dot;
            for (size_t k = 0; k < d; k++) {
                float g = s * (dyi[k] - yi[k] * fd);
                dxi[k] = accumulate ? dxi[k] + g : g;
            }
        } else { /* max(|x|, eps) = eps: the map is x / eps, locally linear */
            float s = (float)(weight / NORM_EPS);
            for (size_t k = 0; k < d; k++) {
                float g = s * dyi[k];
                dxi[k] = accumulate ? dxi[k] + g : g;
            }
        }
    }
}

/* ---- validation --------------------------------------------------------------- */

static int check_batch(const et_loss_cfg *cfg, const et_loss_batch *b, et_error *err) {
    if (!b->emb || b->n_cols < 2 || b->B == 0 || b->d == 0)
        return et_err_set(err, ET_EINVAL, "loss: need >= 2 columns of >= 1 rows (got %zu x %zu, d %zu)",
                          b->n_cols, b->B, b->d);
    for (size_t c = 0; c < b->n_cols; c++)
        if (!b->emb[c]) return et_err_set(err, ET_EINVAL, "loss: column %zu is NULL", c);
    if (cfg->kind != ET_LOSS_MNRL && cfg->kind != ET_LOSS_MNRL_SYM && cfg->kind != ET_LOSS_GIST)
        return et_err_set(err, ET_EINVAL, "loss: unknown kind %d", cfg->kind);
    if (cfg->kind == ET_LOSS_GIST) {
        if (!b->guide || b->gd == 0)
            return et_err_set(err, ET_EINVAL, "loss gist: guide embeddings are required");
        for (size_t c = 0; c < b->n_cols; c++)
            if (!b->guide[c]) return et_err_set(err, ET_EINVAL, "loss gist: guide column %zu is NULL", c);
        if (!(cfg->temperature > 0))
            return et_err_set(err, ET_EINVAL, "loss gist: temperature must be > 0");
    }
    if (cfg->n_dims > ET_LOSS_MAX_DIMS)
        return et_err_set(err, ET_EINVAL, "loss: at most %d Matryoshka dims", ET_LOSS_MAX_DIMS);
    for (size_t k = 0; k < cfg->n_dims; k++)
        if (cfg->dims[k] == 0 || cfg->dims[k] > b->d)
            return et_err_set(err, ET_EINVAL,
                              "loss: Matryoshka dim %zu must be in 1..%zu (the embedding width)",
                              cfg->dims[k], b->d);
    return ET_OK;
}

/* ---- the fast path ------------------------------------------------------------- */

/* A block of candidate columns: score(i, j) = s * q_i . c_j. */
typedef struct blk {
    const float *q, *c;     /* [B, dim] normalized */
    float *dq, *dc;         /* [B, dim] gradient accumulators */
    const float *gq, *gc;   /* [B, gd] normalized guide (GIST) or NULL */
    const uint8_t *valid;   /* [B] candidate present, or NULL */
    int protect_diag;       /* GIST anchor-positive block: never mask (i, i) */
} blk;

/* Loss and gradient w.r.t. normalized columns xn[c] [B, dim] into dxn[c]
 * (zeroed here). guide: normalized guide columns [B, gd] (GIST). */
static int loss_core(const et_loss_cfg *cfg, size_t B, size_t dim, size_t n_cols,
                     float *const *xn, float *const *dxn, const uint8_t *neg_valid,
                     float *const *gn, size_t gd, double *loss_out, et_error *err) {
    blk blocks[3 + 64];
    size_t nb = 0;
    const int gist = cfg->kind == ET_LOSS_GIST, sym = cfg->kind == ET_LOSS_MNRL_SYM;
    if (n_cols - 2 > 64) return et_err_set(err, ET_EINVAL, "loss: at most 64 negative columns");
    const float s = gist ? 1.0f / cfg->temperature : cfg->scale;
    for (size_t c = 0; c < n_cols; c++) memset(dxn[c], 0, B * dim * sizeof(float));

    blocks[nb++] = (blk){xn[0], xn[1], dxn[0], dxn[1], gist ? gn[0] : NULL, gist ? gn[1] : NULL, NULL, 1};
    if (gist) {
        blocks[nb++] = (blk){xn[0], xn[0], dxn[0], dxn[0], gn[0], gn[0], NULL, 0};
        blocks[nb++] = (blk){xn[1], xn[1], dxn[1], dxn[1], gn[1], gn[1], NULL, 0};
    }
    for (size_t c = 2; c < n_cols; c++)
        blocks[nb++] = (blk){xn[0], xn[c], dxn[0], dxn[c], gist ? gn[0] : NULL, gist ? gn[c] : NULL,
                             neg_valid ? neg_valid + (c - 2) * B : NULL, 0};

    size_t ncand = nb * B, R = ET_MIN((size_t)LOSS_CHUNK, B);
    float *S = et_malloc_n(R * ncand, sizeof(float), err);
    double *thr = gist ? et_malloc_n(B, sizeof(double), err) : NULL;
    double *clse = sym ? et_malloc_n(B, sizeof(double), err) : NULL;
    float *tmp = sym || gist ? et_malloc_n(R * B, sizeof(float), err) : NULL;
    if (!S || (gist && !thr) || (sym && !clse) || ((sym || gist) && !tmp)) {
        free(S), free(thr), free(clse), free(tmp);
        return ET_ENOMEM;
    }
    if (gist) /* the guide's similarity of each true pair: the masking threshold */
        for (size_t i = 0; i < B; i++) {
            double t = 0;
            for (size_t k = 0; k < gd; k++) t += (double)gn[0][i * gd + k] * gn[1][i * gd + k];
            thr[i] = cfg->margin_relative ? t * (1.0 - cfg->margin) : t - cfg->margin;
        }
    const float NEG_INF = -INFINITY;
    double loss_fwd = 0, loss_bwd = 0;

    if (sym) { /* column log-sum-exp of the anchor-positive block */
        double *cmax = clse, *csum = et_calloc(B, sizeof(double), err);
        if (!csum) {
            free(S), free(thr), free(clse), free(tmp);
            return ET_ENOMEM;
        }
        for (size_t j = 0; j < B; j++) cmax[j] = -INFINITY;
        for (size_t r0 = 0; r0 < B; r0 += R) {
            size_t nr = ET_MIN(R, B - r0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)B, (int)dim, s,
                        xn[0] + r0 * dim, (int)dim, xn[1], (int)dim, 0.0f, tmp, (int)B);
            for (size_t i = 0; i < nr; i++)
                for (size_t j = 0; j < B; j++) {
                    double v = tmp[i * B + j];
                    if (v > cmax[j]) {
                        csum[j] = csum[j] * exp(cmax[j] - v) + 1.0;
                        cmax[j] = v;
                    } else {
                        csum[j] += exp(v - cmax[j]);
                    }
                }
        }
        for (size_t j = 0; j < B; j++) {
            clse[j] = cmax[j] + log(csum[j]);
        }
        free(csum);
    }

    const double wf = sym ? 0.5 / (double)B : 1.0 / (double)B, wb = 0.5 / (double)B;
    for (size_t r0 = 0; r0 < B; r0 += R) {
        size_t nr = ET_MIN(R, B - r0);
        for (size_t k = 0; k < nb; k++) {
            const blk *bk = &blocks[k];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)B, (int)dim, s,
                        bk->q + r0 * dim, (int)dim, bk->c, (int)dim, 0.0f, S + k * B, (int)ncand);
            if (bk->gq) /* the guide's similarities of the same pairs */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)B, (int)gd, 1.0f,
                            bk->gq + r0 * gd, (int)gd, bk->gc, (int)gd, 0.0f, tmp, (int)B);
            for (size_t i = 0; i < nr; i++) {
                float *row = S + i * ncand + k * B;
                size_t gi = r0 + i;
                if (bk->valid)
                    for (size_t j = 0; j < B; j++)
                        if (!bk->valid[j]) row[j] = NEG_INF;
                if (bk->gq) {
                    const float *g = tmp + i * B;
                    for (size_t j = 0; j < B; j++)
                        if (g[j] > thr[gi] && !(bk->protect_diag && j == gi)) row[j] = NEG_INF;
                }
            }
        }
        /* softmax rows -> dS = wf * (p - onehot) (+ the symmetric column term) */
        for (size_t i = 0; i < nr; i++) {
            float *row = S + i * ncand;
            size_t gi = r0 + i;
            double mx = -INFINITY;
            for (size_t j = 0; j < ncand; j++)
                if (row[j] > mx) mx = row[j];
            double sum = 0;
            for (size_t j = 0; j < ncand; j++) sum += exp((double)row[j] - mx);
            double lse = mx + log(sum), pos = row[gi];
            loss_fwd += lse - pos;
            for (size_t j = 0; j < ncand; j++) {
                double p = exp((double)row[j] - lse), g = wf * (p - (j == gi ? 1.0 : 0.0));
                if (sym && j < B) g += wb * (exp((double)row[j] - clse[j]) - (j == gi ? 1.0 : 0.0));
                row[j] = (float)g;
            }
            if (sym) loss_bwd += clse[gi] - pos;
        }
        /* back to the normalized embeddings */
        for (size_t k = 0; k < nb; k++) {
            const blk *bk = &blocks[k];
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)dim, (int)B, s,
                        S + k * B, (int)ncand, bk->c, (int)dim, 1.0f, bk->dq + r0 * dim, (int)dim);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)B, (int)dim, (int)nr, s,
                        S + k * B, (int)ncand, bk->q + r0 * dim, (int)dim, 1.0f, bk->dc, (int)dim);
        }
    }
    *loss_out = sym ? 0.5 * (loss_fwd + loss_bwd) / (double)B : loss_fwd / (double)B;
    free(S), free(thr), free(clse), free(tmp);
    return ET_OK;
}

int et_loss_compute(const et_loss_cfg *cfg, const et_loss_batch *b, double *loss,
                    float *const *d_emb, et_error *err) {
    int rc = check_batch(cfg, b, err);
    if (rc) return rc;
    const size_t B = b->B, d = b->d, nc = b->n_cols;
    const int gist = cfg->kind == ET_LOSS_GIST;
    size_t n_dims = cfg->n_dims ? cfg->n_dims : 1;
    size_t per = B * d;
    /* xn[c], dxn[c]: [B, dim] each; gn[c]: [B, gd] */
    float *mem = et_malloc_n(2 * nc * per + (gist ? nc * B * b->gd : 0), sizeof(float), err);
    float **ptr = et_calloc(3 * nc, sizeof(float *), err);
    if (!mem || !ptr) {
        free(mem), free(ptr);
        return ET_ENOMEM;
    }
    float **xn = ptr, **dxn = ptr + nc, **gn = ptr + 2 * nc;
    for (size_t c = 0; c < nc; c++) {
        xn[c] = mem + c * per;
        dxn[c] = mem + (nc + c) * per;
        if (gist) {
            gn[c] = mem + 2 * nc * per + c * B * b->gd;
            et_l2norm_forward(gn[c], b->guide[c], B, b->gd, b->gd);
        }
    }
    double total = 0;
    for (size_t k = 0; k < n_dims && !rc; k++) {
        size_t dim = cfg->n_dims ? cfg->dims[k] : d;
        float w = cfg->n_dims ? cfg->weights[k] : 1.0f;
        for (size_t c = 0; c < nc; c++) et_l2norm_forward(xn[c], b->emb[c], B, dim, d);
        double l = 0;
        rc = loss_core(cfg, B, dim, nc, xn, dxn, b->neg_valid, gn, b->gd, &l, err);
        if (rc) break;
        total += w * l;
        if (d_emb)
            for (size_t c = 0; c < nc; c++) {
                if (k == 0 && dim < d) /* columns past the largest prefix get no gradient */
                    for (size_t i = 0; i < B; i++) memset(d_emb[c] + i * d + dim, 0, (d - dim) * sizeof(float));
                et_l2norm_backward(d_emb[c], d, dxn[c], xn[c], b->emb[c], d, B, dim, w, k > 0);
            }
    }
    free(mem);
    free(ptr);
    if (rc) return rc;
    if (!isfinite(total)) return et_err_set(err, ET_ENUMERIC, "loss is not finite (%g)", total);
    *loss = total;
    return ET_OK;
}

/* ---- the reference: full score matrix, double precision, plain loops -------------------- */

static void norm_d(double *y, const float *x, size_t n, size_t dim, size_t ld) {
    for (size_t i = 0; i < n; i++) {
        double ss = 0;
        for (size_t k = 0; k < dim; k++) ss += (double)x[i * ld + k] * x[i * ld + k];
        double nr = sqrt(ss);
        if (nr < NORM_EPS) nr = NORM_EPS;
        for (size_t k = 0; k < dim; k++) y[i * dim + k] = x[i * ld + k] / nr;
    }
}

static double dot_d(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t k = 0; k < n; k++) s += a[k] * b[k];
    return s;
}

int et_loss_compute_ref(const et_loss_cfg *cfg, const et_loss_batch *b, double *loss,
                        float *const *d_emb, et_error *err) {
    int rc = check_batch(cfg, b, err);
    if (rc) return rc;
    const size_t B = b->B, d = b->d, nc = b->n_cols, gd = b->gd;
    const int gist = cfg->kind == ET_LOSS_GIST, sym = cfg->kind == ET_LOSS_MNRL_SYM;
    size_t n_dims = cfg->n_dims ? cfg->n_dims : 1;
    /* candidate list: (query column, candidate column, protect diagonal) */
    size_t nblk = gist ? 3 + (nc - 2) : nc - 1, ncand = nblk * B;
    int qcol[3 + 64], ccol[3 + 64];
    if (nc - 2 > 64) return et_err_set(err, ET_EINVAL, "loss: at most 64 negative columns");
    size_t k0 = 0;
    qcol[k0] = 0, ccol[k0++] = 1;
    if (gist) qcol[k0] = 0, ccol[k0++] = 0, qcol[k0] = 1, ccol[k0++] = 1;
    for (size_t c = 2; c < nc; c++) qcol[k0] = 0, ccol[k0++] = (int)c;

    double *xn = et_malloc_n(nc * B * d, sizeof(double), err);
    double *dxn = et_malloc_n(nc * B * d, sizeof(double), err);
    double *gnm = gist ? et_malloc_n(nc * B * gd, sizeof(double), err) : NULL;
    double *S = et_malloc_n(B * ncand, sizeof(double), err);
    double *G = et_malloc_n(B * ncand, sizeof(double), err);
    double *dd = et_calloc(nc * B * d, sizeof(double), err);
    if (!xn || !dxn || (gist && !gnm) || !S || !G || !dd) {
        rc = ET_ENOMEM;
        goto done;
    }
    if (gist)
        for (size_t c = 0; c < nc; c++) norm_d(gnm + c * B * gd, b->guide[c], B, gd, gd);
    double total = 0;
    for (size_t m = 0; m < n_dims; m++) {
        size_t dim = cfg->n_dims ? cfg->dims[m] : d;
        double w = cfg->n_dims ? cfg->weights[m] : 1.0;
        double s = gist ? 1.0 / cfg->temperature : cfg->scale;
        for (size_t c = 0; c < nc; c++) norm_d(xn + c * B * dim, b->emb[c], B, dim, d);
        memset(dxn, 0, nc * B * dim * sizeof(double));
        /* scores; -inf for masked */
        for (size_t i = 0; i < B; i++)
            for (size_t k = 0; k < nblk; k++)
                for (size_t j = 0; j < B; j++) {
                    const double *q = xn + (qcol[k] * B + i) * dim, *c = xn + (ccol[k] * B + j) * dim;
                    double v = s * dot_d(q, c, dim);
                    if (ccol[k] >= 2 && b->neg_valid && !b->neg_valid[(ccol[k] - 2) * B + j]) v = -INFINITY;
                    if (gist && !(k == 0 && i == j)) {
                        double t = dot_d(gnm + i * gd, gnm + (B + i) * gd, gd);
                        t = cfg->margin_relative ? t * (1.0 - cfg->margin) : t - cfg->margin;
                        double g = dot_d(gnm + (qcol[k] * B + i) * gd, gnm + (ccol[k] * B + j) * gd, gd);
                        if (g > t) v = -INFINITY;
                    }
                    S[i * ncand + k * B + j] = v;
                }
        /* dL/dS */
        double l = 0;
        memset(G, 0, B * ncand * sizeof(double));
        double wf = sym ? 0.5 : 1.0;
        for (size_t i = 0; i < B; i++) {
            double mx = -INFINITY, sum = 0;
            for (size_t j = 0; j < ncand; j++) mx = fmax(mx, S[i * ncand + j]);
            for (size_t j = 0; j < ncand; j++) sum += exp(S[i * ncand + j] - mx);
            double lse = mx + log(sum);
            l += wf * (lse - S[i * ncand + i]) / B;
            for (size_t j = 0; j < ncand; j++)
                G[i * ncand + j] += wf * (exp(S[i * ncand + j] - lse) - (j == i)) / B;
        }
        if (sym)
            for (size_t j = 0; j < B; j++) {
                double mx = -INFINITY, sum = 0;
                for (size_t i = 0; i < B; i++) mx = fmax(mx, S[i * ncand + j]);
                for (size_t i = 0; i < B; i++) sum += exp(S[i * ncand + j] - mx);
                double lse = mx + log(sum);
                l += 0.5 * (lse - S[j * ncand + j]) / B;
                for (size_t i = 0; i < B; i++)
                    G[i * ncand + j] += 0.5 * (exp(S[i * ncand + j] - lse) - (i == j)) / B;
            }
        total += w * l;
        /* dS -> normalized embeddings */
        for (size_t i = 0; i < B; i++)
            for (size_t k = 0; k < nblk; k++)
                for (size_t j = 0; j < B; j++) {
                    double g = G[i * ncand + k * B + j] * s;
                    if (g == 0) continue;
                    double *dq = dxn + (qcol[k] * B + i) * dim, *dc = dxn + (ccol[k] * B + j) * dim;
                    const double *q = xn + (qcol[k] * B + i) * dim, *c = xn + (ccol[k] * B + j) * dim;
                    for (size_t t = 0; t < dim; t++) {
                        dq[t] += g * c[t];
                        dc[t] += g * q[t];
                    }
                }
        /* normalization backward */
        for (size_t c = 0; c < nc; c++)
            for (size_t i = 0; i < B; i++) {
                const float *x = b->emb[c] + i * d;
                const double *y = xn + (c * B + i) * dim, *dy = dxn + (c * B + i) * dim;
                double ss = 0;
                for (size_t t = 0; t < dim; t++) ss += (double)x[t] * x[t];
                double nr = sqrt(ss), pr = dot_d(y, dy, dim);
                for (size_t t = 0; t < dim; t++)
                    dd[(c * B + i) * d + t] += w * (nr > NORM_EPS ? (dy[t] - y[t] * pr) / nr : dy[t] / NORM_EPS);
            }
    }
    if (!isfinite(total)) {
        rc = et_err_set(err, ET_ENUMERIC, "loss is not finite (%g)", total);
        goto done;
    }
    *loss = total;
    if (d_emb)
        for (size_t c = 0; c < nc; c++)
            for (size_t t = 0; t < B * d; t++) d_emb[c][t] = (float)dd[c * B * d + t];
done:
    free(xn), free(dxn), free(gnm), free(S), free(G), free(dd);
    return rc;
}
