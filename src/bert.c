/* bert.c - inference forward pass of BERT and XLM-RoBERTa encoders (post-LN):
 *
 *   x = LN(wte[ids] + wpe[pos] + wtt[0])          pos = t (BERT), t + pad + 1 (XLM-R)
 *   per layer:
 *     qkv = x Wqkv^T + bqkv                         [B*T, 3C]
 *     a   = softmax(q k^T / sqrt(HS), keys < len) v [B*T, C]
 *     x   = LN1(x + a Wo^T + bo)
 *     h   = act(x W1^T + b1)                        [B*T, F]
 *     x   = LN2(x + h W2^T + b2)
 *   out = pool(x) (cls | mean | max | last), then L2-normalized if the model
 *   has a Normalize module.
 *
 * The model code only sequences kernels (kernels.h); activations are one
 * buffer per batch, reused across layers (no [B, NH, T, T] tensor).
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model.h"
#include "util.h"

int et_bert_embed_batch(et_model *m, const int32_t *const *ids, const size_t *lens, size_t B,
                        size_t skip, float *out, et_error *err) {
    const et_model_config *c = &m->cfg;
    const et_bert_params *p = &m->p;
    size_t C = c->hidden, F = c->intermediate, NH = c->n_heads, T = 0;
    size_t limit = c->max_position - c->pos_offset;
    for (size_t b = 0; b < B; b++) {
        if (lens[b] == 0) return et_err_set(err, ET_EINVAL, "sequence %zu is empty", b);
        if (lens[b] > limit)
            return et_err_set(err, ET_EINVAL, "sequence %zu has %zu tokens, more than the model's %zu "
                              "positions", b, lens[b], limit);
        for (size_t t = 0; t < lens[b]; t++)
            if (ids[b][t] < 0 || (size_t)ids[b][t] >= c->vocab_size)
                return et_err_set(err, ET_EINVAL, "sequence %zu: token id %d at %zu is outside the "
                                  "vocabulary (%zu)", b, ids[b][t], t, c->vocab_size);
        if (lens[b] > T) T = lens[b];
    }
    if (B == 0) return ET_OK;
    size_t N = B * T, FC = F > 3 * C ? F : 3 * C;
    /* x [N,C] | buf [N,max(F,3C)] (qkv, then the FFN hidden) | att [N,C] | tmp [N,C] */
    size_t n_floats = N * (3 * C + FC), n_ints = 2 * N;
    float *act = et_malloc_n(n_floats, sizeof(float), err);
    int32_t *tok = et_malloc_n(n_ints, sizeof(int32_t), err);
    if (!act || !tok) {
        free(act);
        free(tok);
        return ET_ENOMEM;
    }
    float *x = act, *buf = x + N * C, *att = buf + N * FC, *tmp = att + N * C;
    int32_t *tid = tok, *pos = tok + N;
    int32_t pad = (size_t)c->pad_token_id < c->vocab_size ? c->pad_token_id : 0;
    for (size_t b = 0; b < B; b++)
        for (size_t t = 0; t < T; t++) {
            tid[b * T + t] = t < lens[b] ? ids[b][t] : pad;
            /* padded rows: any valid position (their values never reach a real row) */
            pos[b * T + t] = (int32_t)(c->pos_offset + (t < lens[b] ? t : 0));
        }
    int rc = ET_OK;
    embedding_forward(x, tid, pos, NULL, p->wte, p->wpe, c->type_vocab_size ? p->wtt : NULL, N, C);
    layernorm_forward(x, NULL, NULL, x, p->emb_lnw, p->emb_lnb, N, C, c->ln_eps);
    for (size_t l = 0; l < c->n_layers; l++) {
        matmul_forward(buf, x, p->qkvw + l * 3 * C * C, p->qkvb + l * 3 * C, N, C, 3 * C);
        if ((rc = attention_forward_infer(att, buf, lens, B, T, C, NH))) {
            et_err_set(err, rc, "out of memory in attention (T = %zu)", T);
            break;
        }
        matmul_forward(tmp, att, p->attprojw + l * C * C, p->attprojb + l * C, N, C, C);
        residual_layernorm_forward(x, NULL, NULL, NULL, x, tmp, p->ln1w + l * C, p->ln1b + l * C, N, C,
                                   c->ln_eps);
        matmul_forward(buf, x, p->fcw + l * F * C, p->fcb + l * F, N, C, F);
        if (c->act == ET_ACT_GELU) gelu_forward(buf, buf, N * F);
        else if (c->act == ET_ACT_GELU_TANH) gelu_tanh_forward(buf, buf, N * F);
        else relu_forward(buf, buf, N * F);
        matmul_forward(tmp, buf, p->fcprojw + l * C * F, p->fcprojb + l * C, N, F, C);
        residual_layernorm_forward(x, NULL, NULL, NULL, x, tmp, p->ln2w + l * C, p->ln2b + l * C, N, C,
                                   c->ln_eps);
    }
    if (!rc) {
        pool_forward(out, x, lens, skip, B, T, C, m->pooling);
        if (m->normalize) l2norm_forward(out, NULL, out, B, C);
    }
    free(act);
    free(tok);
    return rc;
}
