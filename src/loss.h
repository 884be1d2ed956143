/* loss.h - contrastive losses on embedding matrices: the loss value and its
 * gradient with respect to every embedding (d_emb), as sentence-transformers
 * defines them. The trainer backpropagates d_emb through the encoder.
 *
 * A batch is B rows of columns: column 0 = anchors (queries), column 1 =
 * positives, columns 2.. = hard negatives, each an [B, d] matrix. With
 * similarity = cosine (embeddings are L2-normalized inside the loss):
 *
 *   ET_LOSS_MNRL      MultipleNegativesRankingLoss: scores = cos(a_i, c_j) *
 *                     scale over the candidates c = [positives; negatives of
 *                     every column], loss = mean_i CE(scores_i, label i).
 *   ET_LOSS_MNRL_SYM  MultipleNegativesSymmetricRankingLoss: (MNRL + the
 *                     CE of each positive over the anchors, on the
 *                     anchor-positive block only) / 2.
 *   ET_LOSS_GIST      GISTEmbedLoss: scores = [cos(a,p) | cos(a,a) | cos(p,p) |
 *                     cos(a,n)...] / temperature; an entry whose GUIDE
 *                     similarity exceeds the guide's sim(a_i, p_i) (minus the
 *                     margin) is masked to -inf (except the true pair).
 *   Matryoshka        (cfg.n_dims > 0) wraps any of them: the sum over dims
 *                     k of weight_k * loss(normalize(emb[:, :k])).
 * CachedMNRL is MNRL; its GradCache scheme lives in the trainer (the loss is
 * computed in row chunks, so its memory is O(chunk * candidates)).
 *
 * Missing hard negatives (a row with fewer negatives than columns) are given
 * by neg_valid = 0: such a candidate is masked out of every row.
 */
#ifndef ET_LOSS_H
#define ET_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "embtune.h"

enum et_loss_kind { ET_LOSS_MNRL = 0, ET_LOSS_MNRL_SYM, ET_LOSS_GIST };

#define ET_LOSS_MAX_DIMS 16

typedef struct et_loss_cfg {
    int kind;              /* enum et_loss_kind */
    float scale;           /* MNRL: similarity scale (default 20) */
    float temperature;     /* GIST: similarity / temperature (default 0.01) */
    int margin_relative;   /* GIST: 0 = absolute margin, 1 = relative */
    float margin;          /* GIST: false-negative margin (default 0) */
    size_t n_dims;         /* Matryoshka: number of dims, 0 = off */
    size_t dims[ET_LOSS_MAX_DIMS];  /* prefix lengths (each <= d) */
    float weights[ET_LOSS_MAX_DIMS];
} et_loss_cfg;

/* Defaults of sentence-transformers (scale 20, temperature 0.01, margin 0). */
void et_loss_cfg_default(et_loss_cfg *cfg, int kind);

typedef struct et_loss_batch {
    size_t B;                   /* rows (>= 1) */
    size_t d;                   /* embedding width */
    size_t n_cols;              /* >= 2: anchors, positives, negatives... */
    const float *const *emb;    /* [n_cols] pointers, each [B, d] */
    const uint8_t *neg_valid;   /* [(n_cols - 2) * B]: 1 = present; NULL = all */
    const float *const *guide;  /* GIST only: [n_cols] pointers, each [B, gd] */
    size_t gd;                  /* guide embedding width */
} et_loss_batch;

/* Computes the loss into *loss and, if d_emb is non-NULL, the gradient of the
 * loss with respect to each column into d_emb[c] [B, d] (overwritten). */
int et_loss_compute(const et_loss_cfg *cfg, const et_loss_batch *b, double *loss,
                    float *const *d_emb, et_error *err);

/* Same contract, plain loops in double precision over the full score matrix:
 * the reference the tests compare et_loss_compute against. */
int et_loss_compute_ref(const et_loss_cfg *cfg, const et_loss_batch *b, double *loss,
                        float *const *d_emb, et_error *err);

/* Name <-> kind: "mnrl", "mnrl-sym", "gist". */
int et_loss_parse(const char *name, int *kind);
const char *et_loss_name(int kind);

/* L2 normalization with F.normalize's eps (1e-12): y = x / max(|x|, eps). */
void et_l2norm_forward(float *y /* [n, d] */, const float *x /* [n, d] */, size_t n, size_t d,
                     size_t ld_x);
/* Backward of the normalization: dx (+)= (dy - y (y . dy)) / max(|x|, eps);
 * accumulates into dx when accumulate != 0. */
void et_l2norm_backward(float *dx /* [n, ld_dx] */, size_t ld_dx, const float *dy /* [n, d] */,
                              const float *y /* [n, d] */, const float *x /* [n, ld_x] */,
                              size_t ld_x, size_t n, size_t d, float weight, int accumulate);

#endif
