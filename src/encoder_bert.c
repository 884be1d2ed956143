/* encoder_bert.c - trainable BERT / XLM-RoBERTa encoder (encoder.h): a
 * training forward pass that saves what backward needs, and full
 * backpropagation into one flat gradient buffer.
 *
 * Layout (llm.c style). Parameters and gradients are one fp32 buffer each,
 * carved by model.h's size table (et_bert_point_params). Activations are
 * one buffer per slot, carved per forward call by a size table for the
 * slot's own token count N (sequences are packed without padding, see
 * kernels_bwd.h), so a slot of 16 queries of 32 tokens costs a quarter of a
 * slot of 16 passages of 128. Per layer the slot keeps
 *
 *   qkv  [N, 3C]  attention input (q, k, v)
 *   att  [N, C]   attention output (heads merged, before the projection)
 *   lse  [NH, N]  softmax log-normalizers (P is recomputed in backward)
 *   res1 [N, C]   x + drop(att Wo^T + bo), LN1's input; mean1, rstd1 [N]
 *   h    [N, F]   FFN pre-activation
 *   res2 [N, C]   x1 + drop(act(h) W2^T + b2), LN2's input; mean2, rstd2 [N]
 *
 * and for the embeddings emb [N, C] (LN input) with its mean/rstd: (6C + F +
 * NH + 4) floats per token and layer, 3.8 KB for bge-small. Everything else
 * is recomputed in backward from these: the layer inputs and LN1 outputs
 * (one layernorm), act(h) (one activation), the attention probabilities
 * (one Q K^T per head, flash-attention style), the dropout masks (a
 * counter-based hash, kernels_bwd.h). Scratch for both passes is shared by
 * all slots and sized for the largest N seen.
 *
 * Dropout sites, as Hugging Face places them: after the embedding LayerNorm,
 * on the attention probabilities, after the attention output projection and
 * after the FFN output projection. Site s of a forward call with draw number
 * d uses the stream (d << 16) | s; the draw counter advances once per
 * training forward, so (seed, draw) is the whole RNG state.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "encoder_impl.h"
#include "kernels.h"
#include "kernels_bwd.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

/* Per-layer saved activations, pointers into a slot's buffer. */
typedef struct bert_layer_act {
    float *qkv, *att, *lse, *res1, *mean1, *rstd1, *h, *res2, *mean2, *rstd2;
} bert_layer_act;

typedef struct bert_slot {
    float *buf;          /* activations, [cap] floats, owned */
    size_t cap;
    int32_t *tok;        /* [2 * tok_cap]: ids then positions, owned */
    size_t tok_cap;
    size_t *offs;        /* [max_batch + 1], owned */
    float *pooled;       /* [max_batch, C] before normalization, owned */
    float *emb;          /* [max_batch, C] output, owned */
    float *norm;         /* [max_batch], owned */
    size_t B, N;
    uint64_t draw;       /* dropout draw of the saved forward */
    int valid;           /* a training forward is saved and not yet consumed */
} bert_slot;

typedef struct bert_impl {
    et_model_config cfg;
    et_bert_params p, g;         /* pointers into enc->params / enc->grads */
    size_t C, F, NH, L;
    int pooling, normalize;
    float p_hidden, p_attn;      /* dropout probabilities in training */
    uint64_t seed, draw;
    bert_slot slots[ET_ENCODER_MAX_SLOTS];
    bert_slot infer;             /* train = 0: one layer's storage, reused */
    float *scratch;              /* shared by forward and backward, [scratch_cap] */
    size_t scratch_cap;
} bert_impl;

/* ---- sizes and carving ------------------------------------------------------------ */

/* Floats of one layer's saved activations for N tokens. */
static int layer_floats(const bert_impl *s, size_t N, size_t *out) {
    size_t per = 6 * s->C + s->F + s->NH + 4;
    return et_size_mul(per, N, out);
}

/* Slot buffer floats: embeddings (N*C + 2N) + nl layers. */
static int slot_floats(const bert_impl *s, size_t N, size_t nl, size_t *out) {
    size_t lf, all, emb;
    if (!layer_floats(s, N, &lf) || !et_size_mul(lf, nl, &all) || !et_size_mul(N, s->C + 2, &emb))
        return 0;
    return et_size_add(all, emb, out);
}

/* Scratch floats: forward x, x1, tmp [N,C], g [N,F]; backward dx, dres, dtmp,
 * x1, xin, datt [N,C], dqkv [N,3C], g, dg [N,F]: 9C + 2F per token. */
static int scratch_floats(const bert_impl *s, size_t N, size_t *out) {
    return et_size_mul(9 * s->C + 2 * s->F, N, out);
}

static void carve_layer(bert_layer_act *a, float *p, size_t N, const bert_impl *s) {
    size_t C = s->C;
    a->qkv = p, p += N * 3 * C;
    a->att = p, p += N * C;
    a->lse = p, p += N * s->NH;
    a->res1 = p, p += N * C;
    a->mean1 = p, p += N;
    a->rstd1 = p, p += N;
    a->h = p, p += N * s->F;
    a->res2 = p, p += N * C;
    a->mean2 = p, p += N;
    a->rstd2 = p;
}

typedef struct {
    float *emb, *emb_mean, *emb_rstd;
    float *layers; /* first layer's storage */
    size_t layer_stride; /* floats between layers (0: all layers share one) */
} slot_view;

static void carve_slot(slot_view *v, float *buf, size_t N, int per_layer, const bert_impl *s) {
    v->emb = buf;
    v->emb_mean = buf + N * s->C;
    v->emb_rstd = v->emb_mean + N;
    v->layers = v->emb_rstd + N;
    size_t lf = 0;
    layer_floats(s, N, &lf);
    v->layer_stride = per_layer ? lf : 0;
}

static void layer_at(bert_layer_act *a, const slot_view *v, size_t l, size_t N, const bert_impl *s) {
    carve_layer(a, v->layers + l * v->layer_stride, N, s);
}

/* Grows *buf to at least n floats (contents not kept). */
static int ensure_floats(float **buf, size_t *cap, size_t n, et_error *err) {
    if (n <= *cap && *buf) return ET_OK;
    free(*buf);
    *buf = et_malloc_n(n ? n : 1, sizeof(float), err);
    *cap = *buf ? n : 0;
    return *buf ? ET_OK : ET_ENOMEM;
}

static int slot_prepare(bert_slot *sl, const et_encoder *enc, bert_impl *s, size_t N, size_t nl, et_error *err) {
    size_t need;
    if (!slot_floats(s, N, nl, &need)) return et_err_set(err, ET_ENOMEM, "encoder: activation size overflows");
    if (ensure_floats(&sl->buf, &sl->cap, need, err)) return ET_ENOMEM;
    if (N > sl->tok_cap || !sl->tok) {
        free(sl->tok);
        sl->tok = et_malloc_n(N, 2 * sizeof(int32_t), err);
        sl->tok_cap = sl->tok ? N : 0;
        if (!sl->tok) return ET_ENOMEM;
    }
    size_t MB = enc->opts.max_batch;
    if (!sl->offs && !(sl->offs = et_malloc_n(MB + 1, sizeof(size_t), err))) return ET_ENOMEM;
    if (!sl->pooled && !(sl->pooled = et_malloc_n(MB, s->C * sizeof(float), err))) return ET_ENOMEM;
    if (!sl->emb && !(sl->emb = et_malloc_n(MB, s->C * sizeof(float), err))) return ET_ENOMEM;
    if (!sl->norm && !(sl->norm = et_malloc_n(MB, sizeof(float), err))) return ET_ENOMEM;
    size_t sc;
    if (!scratch_floats(s, N, &sc)) return et_err_set(err, ET_ENOMEM, "encoder: scratch size overflows");
    return ensure_floats(&s->scratch, &s->scratch_cap, sc, err);
}

static void slot_free(bert_slot *sl) {
    free(sl->buf);
    free(sl->tok);
    free(sl->offs);
    free(sl->pooled);
    free(sl->emb);
    free(sl->norm);
    memset(sl, 0, sizeof(*sl));
}

/* ---- dropout sites -------------------------------------------------------------------- */

enum { SITE_EMB = 0, SITE_ATTN = 1, SITE_ATTN_OUT = 2, SITE_FFN_OUT = 3 };

static et_dropout site_drop(const bert_impl *s, uint64_t draw, size_t layer, int kind, int train) {
    et_dropout d = {0.0f, 0};
    float p = kind == SITE_ATTN ? s->p_attn : s->p_hidden;
    if (!train || p <= 0.0f) return d;
    uint64_t site = kind == SITE_EMB ? 0 : 1 + 3 * (uint64_t)layer + (uint64_t)(kind - 1);
    d.p = p;
    d.key = et_dropout_key(s->seed, (draw << 16) | site);
    return d;
}

/* ---- helpers ---------------------------------------------------------------------------- */

static void act_forward(const bert_impl *s, float *out, const float *inp, size_t n) {
    if (s->cfg.act == ET_ACT_GELU) gelu_forward(out, inp, n);
    else if (s->cfg.act == ET_ACT_GELU_TANH) gelu_tanh_forward(out, inp, n);
    else relu_forward(out, inp, n);
}

static void act_backward(const bert_impl *s, float *dinp, const float *inp, const float *dout, size_t n) {
    if (s->cfg.act == ET_ACT_GELU) gelu_backward(dinp, inp, dout, n);
    else if (s->cfg.act == ET_ACT_GELU_TANH) gelu_tanh_backward(dinp, inp, dout, n);
    else relu_backward(dinp, inp, dout, n);
}

/* Gradient through a dropout site: src itself when the site is off, else
 * src * mask / (1 - p) written into dst. */
static const float *drop_grad(float *dst, const float *src, const et_dropout *d, const size_t *offs, size_t B,
                              size_t N, size_t C) {
    if (d->p <= 0.0f) return src;
    memcpy(dst, src, N * C * sizeof(float));
    dropout_hidden(dst, d, offs, B, C);
    return dst;
}

/* Layer inputs: x_0 = drop(LN(emb)), x_{l+1} = LN2_l(res2_l). Recomputed
 * with the forward's kernels on the same inputs, so bitwise equal. */
static void layer_input(const bert_impl *s, float *x, const slot_view *v, size_t l, size_t N,
                        const size_t *offs, size_t B, uint64_t draw, int train) {
    size_t C = s->C;
    if (l == 0) {
        layernorm_forward(x, NULL, NULL, v->emb, s->p.emb_lnw, s->p.emb_lnb, N, C, s->cfg.ln_eps);
        et_dropout d = site_drop(s, draw, 0, SITE_EMB, train);
        dropout_hidden(x, &d, offs, B, C);
    } else {
        bert_layer_act a;
        layer_at(&a, v, l - 1, N, s);
        layernorm_forward(x, NULL, NULL, a.res2, s->p.ln2w + (l - 1) * C, s->p.ln2b + (l - 1) * C, N, C,
                          s->cfg.ln_eps);
    }
}

/* ---- forward ------------------------------------------------------------------------------ */

static int bert_forward(et_encoder *enc, int slot, const int32_t *const *ids, const size_t *lens, size_t B,
                        int train, float *emb, et_error *err) {
    bert_impl *s = enc->impl;
    const et_model_config *c = &s->cfg;
    const et_bert_params *p = &s->p;
    size_t C = s->C, F = s->F, NH = s->NH, L = s->L, N = 0;
    size_t limit = c->max_position > c->pos_offset ? c->max_position - c->pos_offset : 0;
    if (train) s->slots[slot].valid = 0; /* even if this call fails */
    for (size_t b = 0; b < B; b++) {
        if (lens[b] == 0) return et_err_set(err, ET_EINVAL, "encoder forward: sequence %zu is empty", b);
        if (lens[b] > limit || lens[b] > 65536)
            return et_err_set(err, ET_EINVAL, "encoder forward: sequence %zu has %zu tokens, more than the "
                              "model's %zu positions", b, lens[b], limit);
        for (size_t t = 0; t < lens[b]; t++)
            if (ids[b][t] < 0 || (size_t)ids[b][t] >= c->vocab_size)
                return et_err_set(err, ET_EINVAL, "encoder forward: sequence %zu: token id %d at %zu is "
                                  "outside the vocabulary (%zu)", b, (int)ids[b][t], t, c->vocab_size);
        N += lens[b];
    }
    bert_slot *sl = train ? &s->slots[slot] : &s->infer;
    int rc = slot_prepare(sl, enc, s, N, train ? L : 1, err);
    if (rc) return rc;
    sl->offs[0] = 0;
    int32_t *tid = sl->tok, *pos = sl->tok + N;
    for (size_t b = 0, n = 0; b < B; b++) {
        for (size_t t = 0; t < lens[b]; t++, n++) {
            tid[n] = ids[b][t];
            pos[n] = (int32_t)(c->pos_offset + t);
        }
        sl->offs[b + 1] = n;
    }
    const size_t *offs = sl->offs;
    uint64_t draw = train ? s->draw++ : 0;
    slot_view v;
    carve_slot(&v, sl->buf, N, train, s);
    float *x = s->scratch, *x1 = x + N * C, *tmp = x1 + N * C, *g = tmp + N * C;

    embedding_forward(v.emb, tid, pos, NULL, p->wte, p->wpe, c->type_vocab_size ? p->wtt : NULL, N, C);
    layernorm_forward(x, v.emb_mean, v.emb_rstd, v.emb, p->emb_lnw, p->emb_lnb, N, C, c->ln_eps);
    et_dropout d = site_drop(s, draw, 0, SITE_EMB, train);
    dropout_hidden(x, &d, offs, B, C);
    for (size_t l = 0; l < L; l++) {
        bert_layer_act a;
        layer_at(&a, &v, l, N, s);
        matmul_forward(a.qkv, x, p->qkvw + l * 3 * C * C, p->qkvb + l * 3 * C, N, C, 3 * C);
        d = site_drop(s, draw, l, SITE_ATTN, train);
        attention_forward_train(a.att, a.lse, a.qkv, offs, B, C, NH, &d);
        matmul_forward(tmp, a.att, p->attprojw + l * C * C, p->attprojb + l * C, N, C, C);
        d = site_drop(s, draw, l, SITE_ATTN_OUT, train);
        dropout_hidden(tmp, &d, offs, B, C);
        residual_layernorm_forward(x1, a.res1, a.mean1, a.rstd1, tmp, x, p->ln1w + l * C, p->ln1b + l * C, N,
                                   C, c->ln_eps);
        matmul_forward(a.h, x1, p->fcw + l * F * C, p->fcb + l * F, N, C, F);
        act_forward(s, g, a.h, N * F);
        matmul_forward(tmp, g, p->fcprojw + l * C * F, p->fcprojb + l * C, N, F, C);
        d = site_drop(s, draw, l, SITE_FFN_OUT, train);
        dropout_hidden(tmp, &d, offs, B, C);
        residual_layernorm_forward(x, a.res2, a.mean2, a.rstd2, tmp, x1, p->ln2w + l * C, p->ln2b + l * C, N,
                                   C, c->ln_eps);
    }
    pool_forward_packed(sl->pooled, x, offs, B, C, s->pooling);
    if (s->normalize) l2norm_forward(emb, sl->norm, sl->pooled, B, C);
    else memcpy(emb, sl->pooled, B * C * sizeof(float));
    if (train) {
        memcpy(sl->emb, emb, B * C * sizeof(float));
        sl->B = B;
        sl->N = N;
        sl->draw = draw;
        sl->valid = 1;
    }
    return ET_OK;
}

/* ---- backward ------------------------------------------------------------------------------ */

static int bert_backward(et_encoder *enc, int slot, const float *d_emb, et_error *err) {
    bert_impl *s = enc->impl;
    bert_slot *sl = &s->slots[slot];
    if (!sl->valid)
        return et_err_set(err, ET_EINVAL, "encoder backward: slot %d has no saved training forward pass", slot);
    const et_model_config *c = &s->cfg;
    const et_bert_params *p = &s->p, *gp = &s->g;
    size_t C = s->C, F = s->F, NH = s->NH, L = s->L, N = sl->N, B = sl->B;
    const size_t *offs = sl->offs;
    uint64_t draw = sl->draw;
    slot_view v;
    carve_slot(&v, sl->buf, N, 1, s);
    float *dx = s->scratch, *dres = dx + N * C, *dtmp = dres + N * C, *x1 = dtmp + N * C;
    float *xin = x1 + N * C, *datt = xin + N * C, *dqkv = datt + N * C, *g = dqkv + N * 3 * C;
    float *dg = g + N * F;
    /* pooled gradient, through the normalization; dtmp's first B*C floats hold it */
    float *dpool = dtmp;
    memset(dpool, 0, B * C * sizeof(float));
    if (s->normalize) l2norm_backward(dpool, d_emb, sl->emb, sl->norm, B, C);
    else memcpy(dpool, d_emb, B * C * sizeof(float));
    memset(dx, 0, N * C * sizeof(float));
    if (s->pooling == ET_POOL_MAX) { /* needs the final hidden states */
        layer_input(s, xin, &v, L, N, offs, B, draw, 1);
        pool_backward_packed(dx, dpool, xin, offs, B, C, s->pooling);
    } else {
        pool_backward_packed(dx, dpool, NULL, offs, B, C, s->pooling);
    }
    for (size_t l = L; l-- > 0;) {
        bert_layer_act a;
        layer_at(&a, &v, l, N, s);
        /* x_{l+1} = LN2(res2), res2 = x1 + drop(act(h) W2^T + b2) */
        memset(dres, 0, N * C * sizeof(float));
        layernorm_backward(dres, gp->ln2w + l * C, gp->ln2b + l * C, dx, a.res2, a.mean2, a.rstd2,
                           p->ln2w + l * C, N, C);
        et_dropout d = site_drop(s, draw, l, SITE_FFN_OUT, 1);
        const float *dffn = drop_grad(dtmp, dres, &d, offs, B, N, C);
        layernorm_forward(x1, NULL, NULL, a.res1, p->ln1w + l * C, p->ln1b + l * C, N, C, c->ln_eps);
        act_forward(s, g, a.h, N * F);
        memset(dg, 0, N * F * sizeof(float));
        matmul_backward(dg, gp->fcprojw + l * C * F, gp->fcprojb + l * C, dffn, g, p->fcprojw + l * C * F, N, F,
                        C);
        memset(g, 0, N * F * sizeof(float)); /* g becomes dh */
        act_backward(s, g, a.h, dg, N * F);
        /* dres is d x1 from the residual; add the FFN path */
        matmul_backward(dres, gp->fcw + l * F * C, gp->fcb + l * F, g, x1, p->fcw + l * F * C, N, C, F);
        /* x1 = LN1(res1), res1 = x_l + drop(att Wo^T + bo) */
        memset(dx, 0, N * C * sizeof(float));
        layernorm_backward(dx, gp->ln1w + l * C, gp->ln1b + l * C, dres, a.res1, a.mean1, a.rstd1,
                           p->ln1w + l * C, N, C);
        d = site_drop(s, draw, l, SITE_ATTN_OUT, 1);
        const float *dproj = drop_grad(dtmp, dx, &d, offs, B, N, C);
        memset(datt, 0, N * C * sizeof(float));
        matmul_backward(datt, gp->attprojw + l * C * C, gp->attprojb + l * C, dproj, a.att,
                        p->attprojw + l * C * C, N, C, C);
        memset(dqkv, 0, N * 3 * C * sizeof(float));
        d = site_drop(s, draw, l, SITE_ATTN, 1);
        attention_backward(dqkv, datt, a.qkv, a.att, a.lse, offs, B, C, NH, &d);
        /* dx already holds the residual path to x_l; add the q/k/v path */
        layer_input(s, xin, &v, l, N, offs, B, draw, 1);
        matmul_backward(dx, gp->qkvw + l * 3 * C * C, gp->qkvb + l * 3 * C, dqkv, xin, p->qkvw + l * 3 * C * C,
                        N, C, 3 * C);
    }
    /* x_0 = drop(LN(emb)), emb = wte[id] + wpe[pos] + wtt[0] */
    et_dropout d = site_drop(s, draw, 0, SITE_EMB, 1);
    dropout_hidden(dx, &d, offs, B, C);
    memset(dres, 0, N * C * sizeof(float));
    layernorm_backward(dres, gp->emb_lnw, gp->emb_lnb, dx, v.emb, v.emb_mean, v.emb_rstd, p->emb_lnw, N, C);
    int32_t skip_id = c->pad_token_id >= 0 && (size_t)c->pad_token_id < c->vocab_size ? c->pad_token_id : -1;
    int32_t skip_pos = c->arch == ET_ARCH_XLMR ? c->pad_token_id : -1;
    embedding_backward(gp->wte, gp->wpe, c->type_vocab_size ? gp->wtt : NULL, dres, sl->tok, sl->tok + N, NULL,
                       skip_id, skip_pos, N, C);
    sl->valid = 0;
    return ET_OK;
}

/* ---- RNG state ------------------------------------------------------------------------------ */

#define RNG_MAGIC 0x31524245u /* "EBR1" */

static size_t bert_rng_state(const et_encoder *enc, void *buf, size_t cap) {
    const bert_impl *s = enc->impl;
    uint8_t tmp[20];
    uint32_t magic = RNG_MAGIC;
    memcpy(tmp, &magic, 4);
    memcpy(tmp + 4, &s->seed, 8);
    memcpy(tmp + 12, &s->draw, 8);
    if (buf && cap >= sizeof tmp) memcpy(buf, tmp, sizeof tmp);
    return sizeof tmp;
}

static int bert_set_rng_state(et_encoder *enc, const void *buf, size_t n, et_error *err) {
    bert_impl *s = enc->impl;
    uint32_t magic;
    if (n != 20 || !buf) return et_err_set(err, ET_EFORMAT, "encoder RNG state: expected 20 bytes, got %zu", n);
    memcpy(&magic, buf, 4);
    if (magic != RNG_MAGIC) return et_err_set(err, ET_EFORMAT, "encoder RNG state: not a BERT encoder state");
    memcpy(&s->seed, (const uint8_t *)buf + 4, 8);
    memcpy(&s->draw, (const uint8_t *)buf + 12, 8);
    return ET_OK;
}

/* ---- save ------------------------------------------------------------------------------------ */

/* Copies src_dir/name to dst_dir/name atomically (creating subdirectories).
 * A missing source is skipped (returns ET_ENOTFOUND without setting err when
 * !required). */
static int copy_model_file(const char *src_dir, const char *name, const char *dst_dir, int required,
                           et_error *err) {
    char *src = et_path_join(src_dir, name, err), *dst = src ? et_path_join(dst_dir, name, err) : NULL;
    char *data = NULL;
    size_t n = 0;
    int rc = dst ? ET_OK : ET_ENOMEM;
    if (!rc && !et_file_exists(src)) {
        rc = ET_ENOTFOUND;
        if (required) et_err_set(err, rc, "%s: missing (needed to save the fine-tuned model)", src);
    }
    if (!rc) {
        char *slash = strrchr(dst, '/');
        if (slash && slash > dst + strlen(dst_dir)) { /* name has a directory part */
            *slash = '\0';
            rc = et_mkdir_p(dst, err);
            *slash = '/';
        }
    }
    if (!rc) rc = et_read_file(src, 0, &data, &n, err);
    if (!rc) rc = et_write_file_atomic(dst, data, n, err);
    free(data), free(src), free(dst);
    return rc;
}

static int write_text(const char *dir, const char *name, const char *text, et_error *err) {
    char *p = et_path_join(dir, name, err);
    int rc = p ? et_write_file_atomic(p, text, strlen(text), err) : ET_ENOMEM;
    free(p);
    return rc;
}

/* Writes a model directory that embtune and sentence-transformers load:
 * model.safetensors (the current parameters, the base model's tensor names),
 * the base's config.json and tokenizer files, and the sentence-transformers
 * modules (Transformer, Pooling with the model's pooling, Normalize when the
 * model normalizes). Every file is written atomically. */
static int bert_save(const et_encoder *enc, const char *dir, et_error *err) {
    const et_model *m = enc->model;
    const bert_impl *s = enc->impl;
    int rc = et_mkdir_p(dir, err);
    if (rc) return rc;
    et_hf_tensor *ts = NULL;
    size_t nt = 0;
    if ((rc = et_model_hf_tensors(m, &ts, &nt, err))) return rc;
    et_st_out *outs = et_calloc(nt ? nt : 1, sizeof(*outs), err);
    char *path = outs ? et_path_join(dir, "model.safetensors", err) : NULL;
    if (!path) {
        free(ts), free(outs);
        return ET_ENOMEM;
    }
    for (size_t i = 0; i < nt; i++) {
        outs[i].name = ts[i].name;
        outs[i].data = enc->params + ts[i].offset;
        outs[i].ndim = (size_t)ts[i].ndim;
        outs[i].shape[0] = ts[i].shape[0];
        outs[i].shape[1] = ts[i].shape[1];
    }
    rc = et_safetensors_write(path, outs, nt, err);
    free(path), free(outs), free(ts);
    if (rc) return rc;
    if ((rc = copy_model_file(m->dir, "config.json", dir, 1, err))) return rc;
    static const char *const tok_files[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                            "vocab.txt", "sentencepiece.bpe.model", "added_tokens.json"};
    int have_tok = 0;
    for (size_t i = 0; i < ET_ARRAY_LEN(tok_files); i++) {
        rc = copy_model_file(m->dir, tok_files[i], dir, 0, err);
        if (rc == ET_OK && i == 0) have_tok = 1;
        if (rc == ET_OK && i == 3) have_tok = 1;
        if (rc && rc != ET_ENOTFOUND) return rc;
    }
    if (!have_tok)
        return et_err_set(err, ET_ENOTFOUND, "%s: no tokenizer.json or vocab.txt to save with the model", m->dir);
    char buf[1024];
    snprintf(buf, sizeof buf,
             "[\n  {\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},\n"
             "  {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": \"sentence_transformers.models.Pooling\"}%s\n]\n",
             s->normalize ? ",\n  {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", "
                            "\"type\": \"sentence_transformers.models.Normalize\"}"
                          : "");
    if ((rc = write_text(dir, "modules.json", buf, err))) return rc;
    char *pdir = et_path_join(dir, "1_Pooling", err);
    rc = pdir ? et_mkdir_p(pdir, err) : ET_ENOMEM;
    free(pdir);
    if (rc) return rc;
    const char *tf[2] = {"false", "true"};
    snprintf(buf, sizeof buf,
             "{\n  \"word_embedding_dimension\": %zu,\n  \"pooling_mode_cls_token\": %s,\n"
             "  \"pooling_mode_mean_tokens\": %s,\n  \"pooling_mode_max_tokens\": %s,\n"
             "  \"pooling_mode_mean_sqrt_len_tokens\": false,\n  \"pooling_mode_weightedmean_tokens\": false,\n"
             "  \"pooling_mode_lasttoken\": %s,\n  \"include_prompt\": true\n}\n",
             s->C, tf[s->pooling == ET_POOL_CLS], tf[s->pooling == ET_POOL_MEAN], tf[s->pooling == ET_POOL_MAX],
             tf[s->pooling == ET_POOL_LAST]);
    if ((rc = write_text(dir, "1_Pooling/config.json", buf, err))) return rc;
    if (s->normalize) {
        char *ndir = et_path_join(dir, "2_Normalize", err);
        rc = ndir ? et_mkdir_p(ndir, err) : ET_ENOMEM;
        free(ndir);
        if (rc) return rc;
    }
    rc = copy_model_file(m->dir, "sentence_bert_config.json", dir, 0, err);
    if (rc == ET_ENOTFOUND) {
        snprintf(buf, sizeof buf, "{\n  \"max_seq_length\": %zu,\n  \"do_lower_case\": false\n}\n", m->max_length);
        rc = write_text(dir, "sentence_bert_config.json", buf, err);
    }
    if (rc) return rc;
    rc = copy_model_file(m->dir, "config_sentence_transformers.json", dir, 0, err);
    if (rc == ET_ENOTFOUND)
        rc = write_text(dir, "config_sentence_transformers.json",
                        "{\n  \"prompts\": {},\n  \"default_prompt_name\": null,\n  \"similarity_fn_name\": \"cosine\"\n}\n",
                        err);
    return rc;
}

/* ---- lifetime ---------------------------------------------------------------------------------- */

static void bert_destroy(et_encoder *enc) {
    bert_impl *s = enc->impl;
    if (s) {
        for (int i = 0; i < ET_ENCODER_MAX_SLOTS; i++) slot_free(&s->slots[i]);
        slot_free(&s->infer);
        free(s->scratch);
    }
    free(s);
    free(enc->params);
    free(enc->grads);
    free(enc->decay_mask);
    free(enc);
}

static const et_encoder_ops bert_ops = {
    .name = "bert",
    .destroy = bert_destroy,
    .forward = bert_forward,
    .backward = bert_backward,
    .rng_state = bert_rng_state,
    .set_rng_state = bert_set_rng_state,
    .save = bert_save,
};

int et_encoder_init_bert(et_encoder **out, const et_model *m, const et_encoder_opts *opts, et_error *err) {
    *out = NULL;
    const et_model_config *c = &m->cfg;
    if (c->arch != ET_ARCH_BERT && c->arch != ET_ARCH_XLMR)
        return et_err_set(err, ET_EINVAL, "bert encoder: the model is not a BERT / XLM-R transformer");
    if (c->hidden == 0 || c->n_heads == 0 || c->hidden % c->n_heads || c->n_layers == 0 || c->intermediate == 0)
        return et_err_set(err, ET_EINVAL, "bert encoder: bad config (hidden %zu, heads %zu, layers %zu)", c->hidden,
                          c->n_heads, c->n_layers);
    if (m->pooling != ET_POOL_CLS && m->pooling != ET_POOL_MEAN && m->pooling != ET_POOL_MAX &&
        m->pooling != ET_POOL_LAST)
        return et_err_set(err, ET_EUNSUPPORTED, "%s: fine-tuning supports cls, mean, max and last-token "
                          "pooling, not this model's '%s' pooling", m->dir, m->pooling == ET_POOL_WEIGHTEDMEAN
                          ? "weightedmean" : "mean_sqrt_len_tokens");
    if (!m->include_prompt)
        return et_err_set(err, ET_EUNSUPPORTED, "%s: 1_Pooling/config.json: include_prompt false is not "
                          "supported for fine-tuning", m->dir);
    et_encoder *enc = et_calloc(1, sizeof(*enc), err);
    bert_impl *s = enc ? et_calloc(1, sizeof(*s), err) : NULL;
    if (!s) {
        free(enc);
        return ET_ENOMEM;
    }
    enc->ops = &bert_ops;
    enc->model = m;
    enc->impl = s;
    enc->opts = *opts;
    if (enc->opts.max_batch == 0) enc->opts.max_batch = 32;
    if (enc->opts.max_len == 0) enc->opts.max_len = m->max_length ? m->max_length : 512;
    enc->dim = c->hidden;
    enc->n_params = m->n_params;
    enc->params = et_malloc_n(m->n_params, sizeof(float), err);
    enc->grads = enc->params ? et_calloc(m->n_params, sizeof(float), err) : NULL;
    enc->decay_mask = enc->grads ? et_malloc(m->n_params, err) : NULL;
    if (!enc->decay_mask) {
        bert_destroy(enc);
        return ET_ENOMEM;
    }
    memcpy(enc->params, m->params, m->n_params * sizeof(float));
    s->cfg = *c;
    et_bert_point_params(&s->p, enc->params, m->sizes);
    et_bert_point_params(&s->g, enc->grads, m->sizes);
    size_t off = 0;
    for (int i = 0; i < ET_BERT_NUM_TENSORS; i++) {
        /* The pooler gets no gradient: PyTorch's AdamW skips it (grad None),
         * so it must not decay either. */
        int decay = et_bert_param_decays(i) && i != ET_BERT_POOLW && i != ET_BERT_POOLB;
        memset(enc->decay_mask + off, decay, m->sizes[i]);
        off += m->sizes[i];
    }
    s->C = c->hidden, s->F = c->intermediate, s->NH = c->n_heads, s->L = c->n_layers;
    s->pooling = m->pooling;
    s->normalize = m->normalize;
    if (opts->dropout < 0) {
        s->p_hidden = c->hidden_dropout;
        s->p_attn = c->attn_dropout;
    } else {
        s->p_hidden = s->p_attn = opts->dropout;
    }
    if (!(s->p_hidden >= 0 && s->p_hidden < 1 && s->p_attn >= 0 && s->p_attn < 1)) {
        bert_destroy(enc);
        return et_err_set(err, ET_EINVAL, "bert encoder: dropout must be in [0, 1) (hidden %g, attention %g)",
                          (double)s->p_hidden, (double)s->p_attn);
    }
    s->seed = opts->seed;
    *out = enc;
    return ET_OK;
}
