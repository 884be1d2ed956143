/* static_model.c - model2vec / StaticEmbedding forward:
 *
 *   ids  = tokenizer(text) without special tokens, UNK dropped, first max_length kept
 *   emb  = mean over ids of weights[id] * table[mapping[id]]   (weights = 1 and
 *          mapping = identity when absent); zero vector when no id is left
 *   out  = emb / ||emb|| if the model normalizes (a zero vector stays zero)
 *
 * Accumulation is in double, as model2vec's numpy code computes in float64
 * when the weights are F64.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "util.h"

int et_static_embed_batch(et_model *m, const int32_t *const *ids, const size_t *lens, size_t B,
                          float *out, et_error *err) {
    size_t D = m->cfg.hidden, V = m->cfg.vocab_size;
    double *acc = et_malloc_n(D, sizeof(double), err);
    if (!acc) return ET_ENOMEM;
    for (size_t b = 0; b < B; b++) {
        memset(acc, 0, D * sizeof(double));
        size_t used = 0;
        for (size_t t = 0; t < lens[b] && used < m->max_length; t++) {
            int32_t id = ids[b][t];
            if (id == m->unk_id) continue;
            if (id < 0 || (size_t)id >= V) {
                free(acc);
                return et_err_set(err, ET_EINVAL, "sequence %zu: token id %d at %zu is outside the "
                                  "vocabulary (%zu)", b, id, t, V);
            }
            size_t row = m->mapping ? (size_t)m->mapping[id] : (size_t)id;
            double w = m->tok_weights ? m->tok_weights[id] : 1.0;
            const float *e = m->static_emb + row * D;
            for (size_t d = 0; d < D; d++) acc[d] += (double)e[d] * w;
            used++;
        }
        double nrm = 0;
        for (size_t d = 0; d < D; d++) {
            if (used) acc[d] /= (double)used;
            nrm += acc[d] * acc[d];
        }
        nrm = sqrt(nrm);
        double s = m->normalize && nrm > 0 ? 1.0 / nrm : 1.0;
        for (size_t d = 0; d < D; d++) out[b * D + d] = (float)(acc[d] * s);
    }
    free(acc);
    return ET_OK;
}
