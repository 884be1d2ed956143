/* train.c - et_finetune: the fine-tuning loop.
 *
 *   load the base model and the datasets; tokenize every text once (full
 *   mode) or embed it once through the on-disk cache (adapter mode); build
 *   one batch plan per epoch (seeded shuffle + no-duplicates sampler);
 *   then per optimizer step: for each batch of the accumulation group embed
 *   the columns (queries, positives, hard negatives) into encoder slots, compute
 *   the loss and d_emb, backpropagate; clip; AdamW; log; validate and
 *   checkpoint at intervals. The model written to OUT_DIR is the best
 *   validated one (or the last), staged in a temporary directory first.
 *
 * Everything that decides the trajectory (plans, RNG streams, dropout RNG,
 * kernels) is deterministic, and a checkpoint holds the parameters, AdamW
 * moments, the dropout RNG and the position (epoch, batch): a run killed at
 * any point and resumed ends with the same weights as an uninterrupted one.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapter.h"
#include "dataset.h"
#include "embcache.h"
#include "encoder_impl.h"
#include "eval_metrics.h"
#include "loss.h"
#include "model.h"
#include "optim.h"
#include "threads.h"
#include "train_ckpt.h"
#include "train_data.h"
#include "util.h"

#define MAX_NEG 6
#define MAX_COLS (2 + MAX_NEG)
#define SAVE_SECONDS 300.0

/* Defaults per mode (documented in README: ### embtune finetune). */
#define FULL_LR 2e-5
#define FULL_BATCH 16
#define FULL_EPOCHS 2
#define STATIC_LR 5e-3
#define STATIC_BATCH 32
#define STATIC_EPOCHS 10
#define ADAPTER_LR 3e-3
#define ADAPTER_BATCH 32
#define ADAPTER_EPOCHS 20

void et_finetune_opts_default(et_finetune_opts *o) {
    memset(o, 0, sizeof(*o));
    o->warmup = -1;
    o->weight_decay = -1;
    o->negatives = -1;
    o->seed = 42;
}

/* The texts of one role (train queries, train documents, ...). */
typedef struct textset {
    size_t n;
    char **texts;          /* [n] borrowed from a dataset */
    const char *prompt;    /* prepended when embedding (queries), or NULL */
    int adapted;           /* adapter mode: the adapter applies to this set */
    int32_t **ids;         /* full mode: [n] token ids */
    size_t *lens;          /* full mode: [n] */
    float *base;           /* adapter mode: [n, dim] frozen base embeddings */
    float *guide;          /* gist: [n, gd] guide embeddings */
} textset;

typedef struct trainer {
    const et_finetune_opts *o;
    et_finetune_result *res;
    et_model *m, *gm;
    et_dataset *tr, *va;
    int adapter_mode, is_static;
    size_t dim, gd;
    et_encoder *enc;
    et_adapter *ad;
    float *params, *grads;
    size_t n_params;
    const uint8_t *decay;
    uint8_t *own_decay;
    float *own_grads;
    et_loss_cfg loss;
    int cached;
    size_t mini;
    textset tq, td, vq, vd;
    et_train_rows rows;
    et_epoch_plan *plans;
    size_t epochs, batch, accum, n_neg, n_cols, total_steps, warmup;
    et_adamw opt;
    et_adamw_cfg acfg;
    /* batch buffers */
    float *emb[MAX_COLS], *demb[MAX_COLS], *gemb[MAX_COLS];
    uint8_t *valid;       /* [(n_cols - 2) * batch] */
    size_t *cidx;         /* [batch] compacted text indices */
    size_t *crow;         /* [batch] their rows */
    float *ctmp;          /* [batch, dim] */
    const int32_t **bids; /* [batch] */
    size_t *blens;        /* [batch] */
    /* adapter slot buffers (per column) */
    float *ax[MAX_COLS], *ah[MAX_COLS], *az[MAX_COLS];
    size_t aB[MAX_COLS];
    int aon[MAX_COLS];
    /* GradCache RNG states */
    uint8_t *rng_saved;
    size_t rng_size;
    /* files */
    char *ckpt_dir, *state_path, *best_path, *log_path;
    FILE *log;
    char config[65];
    et_ckpt_state st;
    double base_metrics[5]; /* acc@1,3,5,10, mrr@10 of the base model */
    int have_base;
} trainer;

/* ---- small helpers ----------------------------------------------------------------- */

static char *join(const char *a, const char *b, et_error *err) { return et_path_join(a, b, err); }

/* Removes a file or a directory tree (symlinks are removed, never followed). */
static int rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    if (!S_ISDIR(st.st_mode)) return unlink(path);
    DIR *d = opendir(path);
    int rc = 0;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char *p = et_path_join(path, e->d_name, NULL);
            if (!p || rm_rf(p)) rc = -1;
            free(p);
        }
        closedir(d);
    }
    return rmdir(path) || rc ? -1 : 0;
}

/* Removes what a killed run may leave: OUT_DIR/.staging.<pid> directories and
 * <file>.tmp.<pid> files of interrupted atomic writes. */
static void remove_leftovers(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, ".staging.", 9) && !strstr(e->d_name, ".tmp.")) continue;
        char *p = et_path_join(dir, e->d_name, NULL);
        if (p) rm_rf(p);
        free(p);
    }
    closedir(d);
}

static void textset_free(textset *s) {
    if (s->ids)
        for (size_t i = 0; i < s->n; i++) free(s->ids[i]);
    free(s->ids);
    free(s->lens);
    free(s->base);
    free(s->guide);
    memset(s, 0, sizeof(*s));
}

static double now_s(void) { return et_now(); }

/* ---- tokenization (the semantics of et_embed, see embed.c) ------------------------- */

typedef struct tok_job {
    trainer *t;
    textset *s;
    int rc[256];
    et_error errs[256];
} tok_job;

static void tok_task(void *ctx, int ith, int nth) {
    tok_job *j = ctx;
    trainer *t = j->t;
    textset *s = j->s;
    et_error *err = &j->errs[ith % 256];
    const et_tokenizer *tok = et_model_tokenizer(t->m);
    const size_t maxlen = et_model_max_length(t->m);
    size_t plen = s->prompt ? strlen(s->prompt) : 0;
    et_encoding enc = {0};
    et_buf joined = {0};
    long lo, hi;
    et_split((long)s->n, ith, nth, &lo, &hi);
    int rc = ET_OK;
    for (long i = lo; i < hi && !rc; i++) {
        const char *txt = s->texts[i];
        size_t len = strlen(txt);
        if (plen) {
            joined.len = 0;
            if ((rc = et_buf_append(&joined, s->prompt, plen, err)) || (rc = et_buf_append(&joined, txt, len, err)))
                break;
            txt = joined.data;
            len = joined.len;
        }
        rc = et_tokenizer_encode(tok, txt, len, !t->is_static, t->is_static ? 0 : maxlen, &enc, err);
        if (rc) {
            et_err_prefix(err, "text %ld", i);
            break;
        }
        int32_t *ids = et_malloc_n(enc.n ? enc.n : 1, sizeof(int32_t), err);
        if (!ids) {
            rc = ET_ENOMEM;
            break;
        }
        size_t k = 0;
        for (size_t q = 0; q < enc.n; q++) {
            if (t->is_static && enc.ids[q] == t->m->unk_id) continue; /* model2vec drops UNK */
            ids[k++] = enc.ids[q];
        }
        if (t->is_static && k > maxlen) k = maxlen;
        s->ids[i] = ids;
        s->lens[i] = k;
    }
    et_encoding_free(&enc);
    et_buf_free(&joined);
    j->rc[ith % 256] = rc;
}

static int tokenize_set(trainer *t, textset *s, et_error *err) {
    s->ids = et_calloc(s->n ? s->n : 1, sizeof(int32_t *), err);
    s->lens = et_calloc(s->n ? s->n : 1, sizeof(size_t), err);
    if (!s->ids || !s->lens) return ET_ENOMEM;
    tok_job *j = et_calloc(1, sizeof(*j), err);
    if (!j) return ET_ENOMEM;
    j->t = t, j->s = s;
    et_parallel_n(tok_task, j, 256);
    int rc = ET_OK;
    for (int i = 0; i < 256 && !rc; i++)
        if (j->rc[i]) {
            rc = j->rc[i];
            if (err) *err = j->errs[i];
        }
    free(j);
    return rc;
}

/* ---- columns: forward / backward through the encoder or the adapter ----------------- */

/* Embeds texts idx[0..B) of set s into out [B, dim]. train: saves what
 * backward needs in `slot`. */
static int col_forward(trainer *t, int slot, const textset *s, const size_t *idx, size_t B, int train, float *out,
                       et_error *err) {
    if (!t->adapter_mode) {
        for (size_t b = 0; b < B; b++) {
            t->bids[b] = s->ids[idx[b]];
            t->blens[b] = s->lens[idx[b]];
        }
        return et_encoder_forward(t->enc, slot, (const int32_t *const *)t->bids, t->blens, B, train, out, err);
    }
    const size_t d = t->dim;
    float *x = t->ax[slot];
    for (size_t b = 0; b < B; b++) memcpy(x + b * d, s->base + idx[b] * d, d * sizeof(float));
    if (s->adapted) et_adapter_forward(t->ad, x, B, out, t->ah[slot], t->az[slot]);
    else memcpy(out, x, B * d * sizeof(float));
    t->aB[slot] = B;
    t->aon[slot] = train && s->adapted;
    return ET_OK;
}

static int col_backward(trainer *t, int slot, const float *d_emb, et_error *err) {
    if (!t->adapter_mode) return et_encoder_backward(t->enc, slot, d_emb, err);
    if (t->aon[slot]) et_adapter_backward(t->ad, t->ax[slot], t->ah[slot], t->az[slot], d_emb, t->aB[slot], t->grads);
    t->aon[slot] = 0;
    return ET_OK;
}

/* Embeds a whole set for evaluation into out [n, dim] (eval mode, no dropout),
 * in batches of similar lengths. */
static int embed_set(trainer *t, const textset *s, float *out, et_error *err) {
    const size_t d = t->dim, mb = t->cached ? t->mini : t->batch;
    if (t->adapter_mode) {
        for (size_t i = 0; i < s->n; i += mb) {
            size_t B = ET_MIN(mb, s->n - i);
            if (s->adapted) et_adapter_forward(t->ad, s->base + i * d, B, out + i * d, t->ah[0], t->az[0]);
            else memcpy(out + i * d, s->base + i * d, B * d * sizeof(float));
        }
        return ET_OK;
    }
    size_t *order = et_malloc_n(s->n ? s->n : 1, sizeof(size_t), err);
    if (!order) return ET_ENOMEM;
    for (size_t i = 0; i < s->n; i++) order[i] = i;
    /* sort by length (insertion into buckets is enough; qsort with a context-free comparator needs globals) */
    size_t maxl = 0;
    for (size_t i = 0; i < s->n; i++) maxl = ET_MAX(maxl, s->lens[i]);
    size_t *cnt = et_calloc(maxl + 2, sizeof(size_t), err);
    size_t *sorted = et_malloc_n(s->n ? s->n : 1, sizeof(size_t), err);
    int rc = ET_OK;
    if (!cnt || !sorted) {
        rc = ET_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < s->n; i++) cnt[s->lens[i] + 1]++;
    for (size_t l = 1; l <= maxl + 1; l++) cnt[l] += cnt[l - 1];
    for (size_t i = 0; i < s->n; i++) sorted[cnt[s->lens[i]]++] = i;
    for (size_t i = 0; i < s->n && !rc; i += mb) {
        size_t B = ET_MIN(mb, s->n - i);
        rc = col_forward(t, 0, s, sorted + i, B, 0, t->ctmp, err);
        for (size_t b = 0; b < B && !rc; b++) memcpy(out + sorted[i + b] * d, t->ctmp + b * d, d * sizeof(float));
    }
done:
    free(order);
    free(cnt);
    free(sorted);
    return rc;
}

/* Validation: cosine top-k of the validation queries over its corpus. */
static int evaluate(trainer *t, double m[5], et_error *err) {
    const size_t d = t->dim, nq = t->vq.n, nd = t->vd.n;
    static const size_t ks[4] = {1, 3, 5, 10};
    size_t depth = et_ir_depth(ks, 4);
    float *q = et_malloc_n(nq, d * sizeof(float), err), *dc = et_malloc_n(nd, d * sizeof(float), err);
    size_t *ranked = et_malloc_n(nq, depth * sizeof(size_t), err);
    int rc = !q || !dc || !ranked ? ET_ENOMEM : ET_OK;
    if (!rc) rc = embed_set(t, &t->vq, q, err);
    if (!rc) rc = embed_set(t, &t->vd, dc, err);
    if (!rc) {
        et_l2_normalize(q, nq, d);
        et_l2_normalize(dc, nd, d);
        rc = et_topk(q, nq, dc, nd, d, depth, ranked, NULL, err);
    }
    et_ir_result r;
    if (!rc) rc = et_ir_metrics(ranked, nq, depth, t->va->rel_off, t->va->rel, ks, 4, &r, err);
    if (!rc) {
        for (int i = 0; i < 4; i++) m[i] = r.accuracy[i];
        m[4] = r.mrr10;
    }
    free(q), free(dc), free(ranked);
    if (rc) et_err_prefix(err, "validation");
    return rc;
}

/* ---- one batch ------------------------------------------------------------------------ */

/* Text set and text index of column c, row i of the batch starting at plan offset. */
static void batch_col(trainer *t, const et_epoch_plan *p, size_t lo, size_t B, size_t c, size_t *idx, uint8_t *valid) {
    for (size_t i = 0; i < B; i++) {
        size_t r = p->order[lo + i];
        if (c == 0) idx[i] = t->rows.q[r];
        else if (c == 1) idx[i] = t->rows.pos[r];
        else {
            size_t dn = p->neg[(lo + i) * p->n_neg + (c - 2)];
            valid[i] = dn != SIZE_MAX;
            idx[i] = dn;
        }
    }
}

/* Gathers the present rows of column c (negatives may be missing) into
 * t->cidx (text indices) and t->crow (batch rows); returns their count. */
static size_t compact(trainer *t, const size_t *cols_idx, size_t B, size_t c) {
    size_t k = 0;
    for (size_t i = 0; i < B; i++)
        if (c < 2 || t->valid[(c - 2) * B + i]) {
            t->cidx[k] = cols_idx[c * B + i];
            t->crow[k++] = i;
        }
    return k;
}

/* Runs forward + loss + backward for one batch; adds loss * scale to *loss_sum. */
static int run_batch(trainer *t, const et_epoch_plan *p, size_t lo, size_t B, float gscale, double *loss_out,
                     et_error *err) {
    const size_t d = t->dim, nc = t->n_cols;
    int rc = ET_OK;
    size_t *cols_idx = et_malloc_n(nc * B, sizeof(size_t), err);
    if (!cols_idx) return ET_ENOMEM;
    /* which rows of each column are present, and their texts */
    size_t ncomp[MAX_COLS];
    for (size_t c = 0; c < nc; c++) {
        uint8_t *v = c >= 2 ? t->valid + (c - 2) * B : NULL;
        uint8_t dummy[1];
        batch_col(t, p, lo, B, c, cols_idx + c * B, v ? v : dummy);
        if (!v) ncomp[c] = B;
        else {
            ncomp[c] = 0;
            for (size_t i = 0; i < B; i++) ncomp[c] += v[i];
        }
    }
    const textset *set_of[MAX_COLS];
    for (size_t c = 0; c < nc; c++) set_of[c] = c == 0 ? &t->tq : &t->td;

    const size_t mb = t->cached ? t->mini : B;
    size_t n_rng = 0;
    /* forward */
    for (size_t c = 0; c < nc && !rc; c++) {
        memset(t->emb[c], 0, B * d * sizeof(float));
        size_t k = compact(t, cols_idx, B, c);
        for (size_t s = 0; s < k && !rc; s += mb) {
            size_t n = ET_MIN(mb, k - s);
            int slot = t->cached ? 0 : (int)c;
            if (t->cached && t->rng_size) {
                et_encoder_rng_state(t->enc, t->rng_saved + n_rng * t->rng_size, t->rng_size);
                n_rng++;
            }
            rc = col_forward(t, slot, set_of[c], t->cidx + s, n, 1, t->ctmp, err);
            for (size_t i = 0; i < n && !rc; i++)
                memcpy(t->emb[c] + t->crow[s + i] * d, t->ctmp + i * d, d * sizeof(float));
        }
        if (t->gd && !rc) {
            memset(t->gemb[c], 0, B * t->gd * sizeof(float));
            for (size_t i = 0; i < k; i++)
                memcpy(t->gemb[c] + t->crow[i] * t->gd, set_of[c]->guide + t->cidx[i] * t->gd, t->gd * sizeof(float));
        }
    }
    uint8_t *rng_after = NULL;
    if (!rc && t->cached && t->rng_size) {
        rng_after = et_malloc(t->rng_size, err);
        if (!rng_after) rc = ET_ENOMEM;
        else et_encoder_rng_state(t->enc, rng_after, t->rng_size);
    }
    /* loss */
    double loss = 0;
    if (!rc) {
        et_loss_batch lb = {B, d, nc, (const float *const *)t->emb, nc > 2 ? t->valid : NULL,
                            t->gd ? (const float *const *)t->gemb : NULL, t->gd};
        rc = et_loss_compute(&t->loss, &lb, &loss, t->demb, err);
    }
    /* backward */
    n_rng = 0;
    for (size_t c = 0; c < nc && !rc; c++) {
        size_t k = compact(t, cols_idx, B, c);
        for (size_t s = 0; s < k && !rc; s += mb) {
            size_t n = ET_MIN(mb, k - s);
            int slot = t->cached ? 0 : (int)c;
            if (t->cached) { /* GradCache: re-run the mini-batch with the same dropout, then backward */
                if (t->rng_size)
                    rc = et_encoder_set_rng_state(t->enc, t->rng_saved + (n_rng++) * t->rng_size, t->rng_size, err);
                if (!rc) rc = col_forward(t, slot, set_of[c], t->cidx + s, n, 1, t->ctmp, err);
            }
            for (size_t i = 0; i < n && !rc; i++) {
                const float *g = t->demb[c] + t->crow[s + i] * d;
                for (size_t k2 = 0; k2 < d; k2++) t->ctmp[i * d + k2] = g[k2] * gscale;
            }
            if (!rc) rc = col_backward(t, slot, t->ctmp, err);
        }
    }
    if (!rc && rng_after) rc = et_encoder_set_rng_state(t->enc, rng_after, t->rng_size, err);
    free(rng_after);
    free(cols_idx);
    if (!rc) *loss_out = loss;
    return rc;
}

/* ---- files ------------------------------------------------------------------------------ */

static int log_line(trainer *t, const char *line, et_error *err) {
    if (fputs(line, t->log) < 0 || fputc('\n', t->log) < 0 || fflush(t->log) != 0)
        return et_err_set(err, ET_EIO, "%s: write failed: %s", t->log_path, strerror(errno));
    return ET_OK;
}

/* ", \"rows\": [[qid, doc id, negative id or null, ...], ...]" of batches [b0, b1). */
static int batch_rows_json(const trainer *t, const et_epoch_plan *p, size_t b0, size_t b1, et_buf *b, et_error *err) {
    int rc = et_buf_puts(b, ", \"rows\": [", err);
    for (size_t i = p->batch_off[b0]; i < p->batch_off[b1] && !rc; i++) {
        size_t r = p->order[i];
        const char *q = t->tr->qids[t->rows.q[r]], *d = t->tr->doc_ids[t->rows.pos[r]];
        rc = et_buf_puts(b, i > p->batch_off[b0] ? ", [" : "[", err);
        if (!rc) rc = et_buf_json_string(b, q, strlen(q), err);
        if (!rc) rc = et_buf_puts(b, ", ", err);
        if (!rc) rc = et_buf_json_string(b, d, strlen(d), err);
        for (size_t k = 0; k < p->n_neg && !rc; k++) {
            size_t dn = p->neg[i * p->n_neg + k];
            rc = et_buf_puts(b, ", ", err);
            if (!rc) rc = dn == SIZE_MAX ? et_buf_puts(b, "null", err)
                                         : et_buf_json_string(b, t->tr->doc_ids[dn], strlen(t->tr->doc_ids[dn]), err);
        }
        if (!rc) rc = et_buf_puts(b, "]", err);
    }
    if (!rc) rc = et_buf_puts(b, "]", err);
    return rc;
}

static int save_state(trainer *t, et_error *err) {
    uint8_t *rng = NULL;
    size_t rn = t->enc ? et_encoder_rng_state(t->enc, NULL, 0) : 0;
    if (rn) {
        rng = et_malloc(rn, err);
        if (!rng) return ET_ENOMEM;
        et_encoder_rng_state(t->enc, rng, rn);
    }
    t->st.opt_t = t->opt.t;
    long pos = ftell(t->log);
    t->st.log_bytes = pos > 0 ? (uint64_t)pos : 0;
    int rc = et_ckpt_save(t->state_path, &t->st, t->params, t->opt.m, t->opt.v, t->n_params, rng, rn, err);
    free(rng);
    return rc;
}

/* The config hash: everything that decides the weights. */
static int config_hash(trainer *t, char out[65], et_error *err) {
    const et_finetune_opts *o = t->o;
    char sig[65] = "";
    int rc = et_model_dir_signature(o->base, sig, err);
    if (rc) return rc;
    et_sha256_ctx h;
    et_sha256_init(&h);
    char buf[2048];
    int n = snprintf(buf, sizeof(buf),
                     "v1|mode=%d|adapter=%d/%zu/%d/%d|loss=%d/%.9g/%.9g/%d/%.9g|cached=%d/%zu|epochs=%zu|lr=%.17g|"
                     "batch=%zu|accum=%zu|warmup=%zu|wd=%.17g|clip=%.9g|maxlen=%zu|seed=%llu|neg=%zu|"
                     "dropout=%d|prompt=%s|base=%s|guide=%s|",
                     t->adapter_mode, t->ad ? t->ad->kind : -1, t->ad ? t->ad->hidden : 0, t->ad ? t->ad->bias : 0,
                     t->ad ? t->ad->apply_docs : 0, t->loss.kind, t->loss.scale, t->loss.temperature,
                     t->loss.margin_relative, t->loss.margin, t->cached, t->mini, t->epochs, t->acfg.lr, t->batch,
                     t->accum, t->warmup, t->acfg.weight_decay, t->acfg.max_grad_norm, et_model_max_length(t->m),
                     (unsigned long long)o->seed, t->n_neg, o->no_dropout, t->tq.prompt ? t->tq.prompt : "", sig,
                     o->guide ? o->guide : "");
    et_sha256_update(&h, buf, (size_t)n);
    for (size_t k = 0; k < t->loss.n_dims; k++) {
        n = snprintf(buf, sizeof(buf), "dim=%zu/%.9g|", t->loss.dims[k], t->loss.weights[k]);
        et_sha256_update(&h, buf, (size_t)n);
    }
    const et_dataset *ds = t->tr;
    for (size_t q = 0; q < ds->n_queries; q++) {
        et_sha256_update(&h, ds->queries[q], strlen(ds->queries[q]) + 1);
        et_sha256_update(&h, ds->rel + ds->rel_off[q], (ds->rel_off[q + 1] - ds->rel_off[q]) * sizeof(size_t));
        et_sha256_update(&h, ds->neg + ds->neg_off[q], (ds->neg_off[q + 1] - ds->neg_off[q]) * sizeof(size_t));
    }
    for (size_t i = 0; i < ds->n_docs; i++) et_sha256_update(&h, ds->docs[i], strlen(ds->docs[i]) + 1);
    uint8_t dg[32];
    et_sha256_final(&h, dg);
    et_hex(out, dg, 32);
    return ET_OK;
}

/* Moves every entry of staging into out_dir (model weights last), replacing
 * what is there, then removes staging. */
static int publish(const char *staging, const char *out_dir, et_error *err) {
    static const char *const last[] = {"model.safetensors", "adapter.safetensors"};
    char *names[64];
    size_t n = 0;
    DIR *ls = opendir(staging);
    if (!ls) return et_err_set(err, ET_EIO, "cannot list %s: %s", staging, strerror(errno));
    struct dirent *de;
    int rc = ET_OK;
    while (!rc && (de = readdir(ls))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        if (n == 64) rc = et_err_set(err, ET_EIO, "%s: more entries than a model directory has", staging);
        else if (!(names[n++] = et_strdup(de->d_name, err))) rc = ET_ENOMEM;
    }
    closedir(ls);
    for (int pass = 0; pass < 2 && !rc; pass++)
        for (size_t i = 0; i < n && !rc; i++) {
            int is_last = !strcmp(names[i], last[0]) || !strcmp(names[i], last[1]);
            if (is_last != pass) continue;
            char *src = join(staging, names[i], err), *dst = join(out_dir, names[i], err);
            if (!src || !dst) rc = ET_ENOMEM;
            else {
                struct stat sd;
                if (lstat(dst, &sd) == 0 && S_ISDIR(sd.st_mode)) rm_rf(dst);
                if (rename(src, dst) != 0)
                    rc = et_err_set(err, ET_EIO, "%s: cannot move into place: %s", dst, strerror(errno));
            }
            free(src);
            free(dst);
        }
    for (size_t i = 0; i < n; i++) free(names[i]);
    rm_rf(staging);
    return rc;
}

static int write_output(trainer *t, const float *params, et_error *err) {
    const et_finetune_opts *o = t->o;
    char tmpname[64];
    snprintf(tmpname, sizeof(tmpname), ".staging.%ld", (long)getpid());
    char *staging = join(o->out_dir, tmpname, err);
    if (!staging) return ET_ENOMEM;
    rm_rf(staging);
    float *keep = et_malloc_n(t->n_params, sizeof(float), err);
    int rc = keep ? ET_OK : ET_ENOMEM;
    if (!rc) {
        memcpy(keep, t->params, t->n_params * sizeof(float));
        memcpy(t->params, params, t->n_params * sizeof(float));
        rc = t->adapter_mode ? et_adapter_save(t->ad, staging, err) : et_encoder_save(t->enc, staging, err);
        memcpy(t->params, keep, t->n_params * sizeof(float));
    }
    free(keep);
    if (rc) {
        rm_rf(staging);
        et_err_prefix(err, "writing the model into %s (nothing in %s was changed)", staging, o->out_dir);
    } else {
        rc = publish(staging, o->out_dir, err);
    }
    free(staging);
    return rc;
}

/* ---- setup -------------------------------------------------------------------------------- */

static int load_dataset(et_dataset **out, const char *path, const char *format, const char *what, et_error *err) {
    int fmt = ET_DS_AUTO;
    if (format && et_dataset_format_parse(format, &fmt))
        return et_err_set(err, ET_EINVAL, "unknown dataset format '%s' (expected llama, pairs, flag or beir)", format);
    int rc = et_dataset_load(out, path, fmt, NULL, err);
    if (rc) return et_err_prefix(err, "%s dataset", what);
    return ET_OK;
}

static int setup_loss(trainer *t, et_error *err) {
    const et_finetune_opts *o = t->o;
    const char *name = o->loss ? o->loss : "mnrl";
    int kind = ET_LOSS_MNRL, matryoshka = 0;
    if (!strcmp(name, "matryoshka")) matryoshka = 1;
    else if (!strcmp(name, "cached-mnrl")) t->cached = 1;
    else if (et_loss_parse(name, &kind))
        return et_err_set(err, ET_EINVAL,
                          "unknown loss '%s' (expected mnrl, mnrl-sym, gist, matryoshka or cached-mnrl)", name);
    et_loss_cfg_default(&t->loss, kind);
    if (o->scale > 0) t->loss.scale = o->scale;
    if (o->temperature > 0) t->loss.temperature = o->temperature;
    if (matryoshka || o->n_dims) {
        if (o->n_dims > ET_LOSS_MAX_DIMS) return et_err_set(err, ET_EINVAL, "at most %d Matryoshka dims", ET_LOSS_MAX_DIMS);
        size_t nd = 0;
        if (o->n_dims) {
            for (size_t k = 0; k < o->n_dims; k++) {
                if (o->dims[k] == 0 || o->dims[k] > t->dim)
                    return et_err_set(err, ET_EINVAL, "Matryoshka dim %zu must be in 1..%zu", o->dims[k], t->dim);
                t->loss.dims[nd] = o->dims[k];
                t->loss.weights[nd++] = o->dim_weights[k] > 0 ? o->dim_weights[k] : 1.0f;
            }
        } else {
            for (size_t dd = t->dim; dd >= 32 && nd < 6; dd /= 2) {
                t->loss.dims[nd] = dd;
                t->loss.weights[nd++] = 1.0f;
                if (dd % 2) break;
            }
            if (!nd) t->loss.dims[nd] = t->dim, t->loss.weights[nd++] = 1.0f;
        }
        t->loss.n_dims = nd;
    }
    if (t->loss.kind == ET_LOSS_GIST && !o->guide)
        return et_err_set(err, ET_EINVAL, "loss gist needs a guide model (--guide MODEL)");
    if (o->guide && t->loss.kind != ET_LOSS_GIST)
        return et_err_set(err, ET_EINVAL, "--guide is only used by the gist loss");
    t->mini = o->mini_batch ? o->mini_batch : 32;
    if (t->adapter_mode) t->cached = 0; /* base embeddings are precomputed: nothing to cache */
    return ET_OK;
}

static int embed_base(trainer *t, et_embcache *cache, const char *key, et_model *m, textset *s, float **dst,
                      const char *label, size_t *hits, et_error *err) {
    size_t dim = et_model_dim(m);
    *dst = et_malloc_n(s->n ? s->n : 1, dim * sizeof(float), err);
    if (!*dst) return ET_ENOMEM;
    size_t h = 0;
    int rc = et_embcache_embed(cache, key, m, (const char *const *)s->texts, s->n, s->prompt, *dst, &h,
                               t->o->quiet ? NULL : label, err);
    *hits += h;
    return rc;
}

static void say(const trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const trainer *t, const char *fmt, ...) {
    if (t->o->quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("finetune: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void free_trainer(trainer *t) {
    et_encoder_free(t->enc);
    et_adapter_free(t->ad);
    et_model_free(t->m);
    et_model_free(t->gm);
    et_dataset_free(t->tr);
    et_dataset_free(t->va);
    textset_free(&t->tq);
    textset_free(&t->td);
    textset_free(&t->vq);
    textset_free(&t->vd);
    et_train_rows_free(&t->rows);
    if (t->plans)
        for (size_t e = 0; e < t->epochs; e++) et_epoch_plan_free(&t->plans[e]);
    free(t->plans);
    et_adamw_free(&t->opt);
    for (int c = 0; c < MAX_COLS; c++) {
        free(t->emb[c]), free(t->demb[c]), free(t->gemb[c]);
        free(t->ax[c]), free(t->ah[c]), free(t->az[c]);
    }
    free(t->valid), free(t->cidx), free(t->crow), free(t->ctmp), free(t->bids), free(t->blens);
    free(t->rng_saved);
    free(t->own_decay), free(t->own_grads);
    free(t->ckpt_dir), free(t->state_path), free(t->best_path), free(t->log_path);
    if (t->log) fclose(t->log);
}

static int has_model_files(const char *dir) {
    static const char *const f[] = {"model.safetensors", "adapter.safetensors", "config.json"};
    for (size_t i = 0; i < ET_ARRAY_LEN(f); i++) {
        char p[4200];
        snprintf(p, sizeof(p), "%s/%s", dir, f[i]);
        if (et_file_exists(p)) return 1;
    }
    return 0;
}

static void fmt_metrics(char *buf, size_t n, const double m[5]) {
    snprintf(buf, n, "acc@1 %.4f  acc@3 %.4f  acc@5 %.4f  acc@10 %.4f  MRR@10 %.4f", m[0], m[1], m[2], m[3], m[4]);
}

static int log_eval(trainer *t, size_t step, double epoch, const double m[5], int best, et_error *err) {
    char line[512];
    snprintf(line, sizeof(line),
             "{\"step\": %zu, \"epoch\": %.4f, \"eval\": {\"accuracy@1\": %.6f, \"accuracy@3\": %.6f, "
             "\"accuracy@5\": %.6f, \"accuracy@10\": %.6f, \"mrr@10\": %.6f}, \"best\": %s}",
             step, epoch, m[0], m[1], m[2], m[3], m[4], best ? "true" : "false");
    return log_line(t, line, err);
}

/* ---- the run -------------------------------------------------------------------------------- */

int et_finetune(const et_finetune_opts *o, et_finetune_result *res, et_error *err) {
    et_finetune_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof(*res));
    if (!o || !o->base || !o->train || !o->out_dir)
        return et_err_set(err, ET_EINVAL, "finetune: base model, training data and output directory are required");
    trainer T = {0}, *t = &T;
    t->o = o;
    t->res = res;
    int rc = ET_OK;
    const char *mode = o->mode ? o->mode : "full";
    if (!strcmp(mode, "adapter")) t->adapter_mode = 1;
    else if (strcmp(mode, "full"))
        return et_err_set(err, ET_EINVAL, "unknown mode '%s' (expected full or adapter)", mode);

    /* output directory state */
    if ((rc = et_mkdir_p(o->out_dir, err))) return rc;
    if (!(t->ckpt_dir = join(o->out_dir, "checkpoint", err)) ||
        !(t->state_path = join(t->ckpt_dir, "state.bin", err)) ||
        !(t->best_path = join(t->ckpt_dir, "best.bin", err)) ||
        !(t->log_path = join(o->out_dir, "train_log.jsonl", err))) {
        free_trainer(t);
        return ET_ENOMEM;
    }
    remove_leftovers(o->out_dir);
    remove_leftovers(t->ckpt_dir);
    int have_ckpt = et_file_exists(t->state_path);
    int resume = o->resume;
    if (resume && !have_ckpt) {
        if (has_model_files(o->out_dir)) {
            rc = et_err_set(err, ET_EINVAL, "%s already holds a finished model; nothing to resume "
                                            "(use --overwrite to train again)", o->out_dir);
            free_trainer(t);
            return rc;
        }
        say(t, "no checkpoint in %s yet: starting from the beginning", o->out_dir);
        unlink(t->log_path);
        resume = 0;
    }
    if (!resume && !o->resume && !o->overwrite && (have_ckpt || has_model_files(o->out_dir))) {
        rc = et_err_set(err, ET_EINVAL,
                        have_ckpt ? "%s holds a checkpoint of an earlier run: use --resume to continue it, "
                                    "or --overwrite to start over"
                                  : "%s already holds a model: use --overwrite to replace it",
                        o->out_dir);
        free_trainer(t);
        return rc;
    }
    if (!resume && o->overwrite) {
        rm_rf(t->ckpt_dir);
        unlink(t->log_path);
    }

    /* model and data */
    et_model_opts mo = {.pooling = ET_POOL_DEFAULT, .max_length = o->max_length, .quiet = o->quiet};
    if ((rc = et_model_load(&t->m, o->base, &mo, err))) goto out;
    t->is_static = t->m->cfg.arch == ET_ARCH_STATIC;
    t->dim = et_model_dim(t->m);
    if ((rc = load_dataset(&t->tr, o->train, o->format, "training", err))) goto out;
    if (o->val && (rc = load_dataset(&t->va, o->val, o->format, "validation", err))) goto out;
    if (t->tr->n_skipped) say(t, "training data: skipped %zu rows (%s)", t->tr->n_skipped, t->tr->skip_reason);
    if (t->va && t->va->n_skipped)
        say(t, "validation data: skipped %zu rows (%s)", t->va->n_skipped, t->va->skip_reason);
    if ((rc = et_train_rows_build(&t->rows, t->tr, err))) {
        et_err_prefix(err, "%s", o->train);
        goto out;
    }
    if ((rc = setup_loss(t, err))) goto out;

    /* hyper-parameters */
    t->epochs = o->epochs ? o->epochs : t->adapter_mode ? ADAPTER_EPOCHS : t->is_static ? STATIC_EPOCHS : FULL_EPOCHS;
    t->batch = o->batch_size ? o->batch_size : t->adapter_mode ? ADAPTER_BATCH : t->is_static ? STATIC_BATCH : FULL_BATCH;
    t->accum = o->grad_accum ? o->grad_accum : 1;
    size_t max_neg = 0;
    for (size_t q = 0; q < t->tr->n_queries; q++)
        max_neg = ET_MAX(max_neg, t->tr->neg_off[q + 1] - t->tr->neg_off[q]);
    if (o->negatives < 0) t->n_neg = max_neg ? 1 : 0;
    else t->n_neg = (size_t)o->negatives;
    if (t->n_neg > MAX_NEG) {
        rc = et_err_set(err, ET_EINVAL, "at most %d hard-negative columns (got %zu)", MAX_NEG, t->n_neg);
        goto out;
    }
    if (t->n_neg && !max_neg) say(t, "the training data has no hard negatives; --negatives %zu has no effect", t->n_neg);
    if (!max_neg) t->n_neg = 0;
    t->n_cols = 2 + t->n_neg;

    /* prompts */
    const char *pname = o->prompt_name ? o->prompt_name : "query";
    const char *qprompt = et_model_prompt(t->m, pname);
    if (o->prompt_name && !qprompt) {
        rc = et_err_set(err, ET_EINVAL, "%s has no prompt named '%s' (config_sentence_transformers.json)", o->base,
                        o->prompt_name);
        goto out;
    }
    const char *dprompt = et_model_prompt(t->m, "document");
    if (!dprompt) dprompt = et_model_prompt(t->m, "passage");
    t->tq = (textset){.n = t->tr->n_queries, .texts = t->tr->queries, .prompt = qprompt, .adapted = 1};
    t->td = (textset){.n = t->tr->n_docs, .texts = t->tr->docs, .prompt = dprompt};
    if (t->va) {
        t->vq = (textset){.n = t->va->n_queries, .texts = t->va->queries, .prompt = qprompt, .adapted = 1};
        t->vd = (textset){.n = t->va->n_docs, .texts = t->va->docs, .prompt = dprompt};
    }

    /* the trainable parameters */
    if (t->adapter_mode) {
        int kind = ET_ADAPTER_LINEAR;
        if (o->adapter && et_adapter_parse_kind(o->adapter, &kind)) {
            rc = et_err_set(err, ET_EINVAL, "unknown adapter '%s' (expected linear or mlp)", o->adapter);
            goto out;
        }
        size_t hid = o->adapter_hidden ? o->adapter_hidden : 2 * t->dim;
        if ((rc = et_adapter_new(&t->ad, kind, t->dim, hid, o->adapter_bias, o->seed, err))) goto out;
        t->ad->apply_docs = o->adapter_both;
        t->ad->normalize = 1;
        char *abs = realpath(o->base, NULL);
        free(t->ad->base_model);
        t->ad->base_model = et_strdup(abs ? abs : o->base, err);
        free(abs);
        if (!t->ad->base_model) {
            rc = ET_ENOMEM;
            goto out;
        }
        t->td.adapted = t->vd.adapted = o->adapter_both;
        t->params = t->ad->params;
        t->n_params = t->ad->n_params;
        t->own_grads = et_calloc(t->n_params, sizeof(float), err);
        t->own_decay = et_malloc(t->n_params, err);
        if (!t->own_grads || !t->own_decay) {
            rc = ET_ENOMEM;
            goto out;
        }
        et_adapter_decay_mask(t->ad, t->own_decay);
        t->grads = t->own_grads;
        t->decay = t->own_decay;
    } else {
        et_encoder_opts eo = {.dropout = o->no_dropout ? 0.0f : -1.0f, .seed = o->seed,
                              .max_batch = t->cached ? t->mini : t->batch, .max_len = et_model_max_length(t->m)};
        if (t->va) eo.max_batch = ET_MAX(eo.max_batch, t->cached ? t->mini : t->batch);
        if ((rc = et_encoder_init(&t->enc, t->m, &eo, err))) goto out;
        t->params = et_encoder_params(t->enc, &t->n_params);
        t->grads = et_encoder_grads(t->enc, NULL);
        t->decay = et_encoder_decay_mask(t->enc);
        t->rng_size = et_encoder_rng_state(t->enc, NULL, 0);
        if (!t->is_static) { /* the encoder trains its own copy; from here on the model only lends its
                                tokenizer, config and tensor layout (validation runs the encoder) */
            free(t->m->params);
            t->m->params = NULL;
            memset(&t->m->p, 0, sizeof(t->m->p));
        }
    }

    /* batch buffers */
    {
        size_t B = t->batch, d = t->dim, mbx = ET_MAX(B, t->mini);
        for (size_t c = 0; c < t->n_cols; c++) {
            t->emb[c] = et_malloc_n(B, d * sizeof(float), err);
            t->demb[c] = et_malloc_n(B, d * sizeof(float), err);
            if (!t->emb[c] || !t->demb[c]) {
                rc = ET_ENOMEM;
                goto out;
            }
        }
        t->valid = et_calloc(ET_MAX((size_t)1, t->n_neg * B), 1, err);
        t->cidx = et_malloc_n(B, sizeof(size_t), err);
        t->crow = et_malloc_n(B, sizeof(size_t), err);
        t->ctmp = et_malloc_n(mbx, d * sizeof(float), err);
        t->bids = et_malloc_n(mbx, sizeof(int32_t *), err);
        t->blens = et_malloc_n(mbx, sizeof(size_t), err);
        if (!t->valid || !t->cidx || !t->crow || !t->ctmp || !t->bids || !t->blens) {
            rc = ET_ENOMEM;
            goto out;
        }
        if (t->adapter_mode) {
            size_t hid = t->ad->kind == ET_ADAPTER_MLP ? t->ad->hidden : 1;
            for (size_t c = 0; c < t->n_cols; c++) {
                t->ax[c] = et_malloc_n(mbx, d * sizeof(float), err);
                t->ah[c] = et_malloc_n(mbx, hid * sizeof(float), err);
                t->az[c] = et_malloc_n(mbx, d * sizeof(float), err);
                if (!t->ax[c] || !t->ah[c] || !t->az[c]) {
                    rc = ET_ENOMEM;
                    goto out;
                }
            }
        }
        if (t->cached && t->rng_size) {
            size_t per_col = (B + t->mini - 1) / t->mini;
            t->rng_saved = et_malloc_n(t->n_cols * per_col, t->rng_size, err);
            if (!t->rng_saved) {
                rc = ET_ENOMEM;
                goto out;
            }
        }
    }

    /* epoch plans and the schedule */
    t->plans = et_calloc(t->epochs, sizeof(et_epoch_plan), err);
    if (!t->plans) {
        rc = ET_ENOMEM;
        goto out;
    }
    t->total_steps = 0;
    for (size_t e = 0; e < t->epochs; e++) {
        if ((rc = et_plan_epoch(&t->plans[e], t->tr, &t->rows, t->batch, t->n_neg, o->seed, e, err))) goto out;
        t->total_steps += (t->plans[e].n_batches + t->accum - 1) / t->accum;
    }
    et_adamw_cfg_default(&t->acfg);
    t->acfg.lr = o->lr > 0 ? o->lr : t->adapter_mode ? ADAPTER_LR : t->is_static ? STATIC_LR : FULL_LR;
    t->acfg.weight_decay = o->weight_decay >= 0 ? o->weight_decay : 0.01;
    t->acfg.max_grad_norm = o->max_grad_norm > 0 ? o->max_grad_norm : o->max_grad_norm < 0 ? 0.0f : 1.0f;
    double wu = o->warmup >= 0 ? o->warmup : 0.1;
    t->warmup = wu < 1 ? (size_t)ceil(wu * (double)t->total_steps) : (size_t)wu;
    t->acfg.warmup_steps = t->warmup;
    t->acfg.total_steps = t->total_steps;
    if ((rc = et_adamw_init(&t->opt, t->n_params, &t->acfg, err))) goto out;
    if ((rc = config_hash(t, t->config, err))) goto out;

    /* texts -> ids / base embeddings / guide embeddings */
    double t_prep = now_s();
    if (t->adapter_mode || o->guide) {
        et_embcache *cache = NULL;
        if (!(o->cache && !o->cache[0])) {
            rc = et_embcache_open(&cache, o->cache, err);
            if (rc) goto out;
        }
        char key[65] = "", extra[128];
        size_t hits = 0, total = 0;
        if (t->adapter_mode) {
            snprintf(extra, sizeof(extra), "maxlen=%zu", et_model_max_length(t->m));
            if (cache) rc = et_embcache_model_key(cache, o->base, extra, key, err);
            textset *sets[4] = {&t->tq, &t->td, &t->vq, &t->vd};
            const char *labels[4] = {"embed train queries", "embed train corpus", "embed val queries",
                                     "embed val corpus"};
            for (int i = 0; i < 4 && !rc; i++)
                if (sets[i]->n) {
                    rc = embed_base(t, cache, key, t->m, sets[i], &sets[i]->base, labels[i], &hits, err);
                    total += sets[i]->n;
                }
        }
        if (!rc && o->guide) {
            et_model_opts go = {.pooling = ET_POOL_DEFAULT, .max_length = 0, .quiet = o->quiet};
            rc = et_model_load(&t->gm, o->guide, &go, err);
            if (rc) et_err_prefix(err, "guide model");
            if (!rc) {
                t->gd = et_model_dim(t->gm);
                snprintf(extra, sizeof(extra), "maxlen=%zu", et_model_max_length(t->gm));
                const char *gq = et_model_prompt(t->gm, pname);
                if (cache) rc = et_embcache_model_key(cache, o->guide, extra, key, err);
                textset gsq = t->tq, gsd = t->td;
                gsq.prompt = gq;
                gsd.prompt = NULL;
                if (!rc) rc = embed_base(t, cache, key, t->gm, &gsq, &t->tq.guide, "guide: train queries", &hits, err);
                if (!rc) rc = embed_base(t, cache, key, t->gm, &gsd, &t->td.guide, "guide: train corpus", &hits, err);
                total += t->tq.n + t->td.n;
                for (size_t c = 0; c < t->n_cols && !rc; c++) {
                    t->gemb[c] = et_malloc_n(t->batch, t->gd * sizeof(float), err);
                    if (!t->gemb[c]) rc = ET_ENOMEM;
                }
            }
        }
        if (!rc && cache)
            say(t, "embeddings: %zu texts, %zu from the cache (%s), %.1fs", total, hits, et_embcache_path(cache),
                now_s() - t_prep);
        et_embcache_close(cache);
        if (rc) goto out;
    }
    if (!t->adapter_mode) {
        if ((rc = tokenize_set(t, &t->tq, err)) || (rc = tokenize_set(t, &t->td, err))) goto out;
        if (t->va && ((rc = tokenize_set(t, &t->vq, err)) || (rc = tokenize_set(t, &t->vd, err)))) goto out;
    }

    /* start or resume */
    memset(&t->st, 0, sizeof(t->st));
    t->st.best_score = -1;
    snprintf(t->st.config, sizeof(t->st.config), "%s", t->config);
    if (resume) {
        uint8_t *rng = t->rng_size ? et_malloc(t->rng_size, err) : NULL;
        size_t rn = 0;
        if (t->rng_size && !rng) {
            rc = ET_ENOMEM;
            goto out;
        }
        et_ckpt_state st;
        rc = et_ckpt_load(t->state_path, &st, t->params, t->opt.m, t->opt.v, t->n_params, rng, t->rng_size, &rn, err);
        if (!rc && strcmp(st.config, t->config))
            rc = et_err_set(err, ET_EINVAL,
                            "%s was written with other training options or data; resume with the same "
                            "options, or use --overwrite to start over",
                            t->state_path);
        if (!rc && t->enc) rc = et_encoder_set_rng_state(t->enc, rng, rn, err);
        free(rng);
        if (rc) goto out;
        t->st = st;
        t->opt.t = st.opt_t;
        if (truncate(t->log_path, (off_t)st.log_bytes) != 0 && errno != ENOENT) {
            rc = et_err_set(err, ET_EIO, "%s: cannot truncate: %s", t->log_path, strerror(errno));
            goto out;
        }
        say(t, "resuming at step %llu/%zu (epoch %llu, batch %llu)", (unsigned long long)st.step, t->total_steps,
            (unsigned long long)st.epoch + 1, (unsigned long long)st.batch);
    } else {
        if ((rc = et_mkdir_p(t->ckpt_dir, err))) goto out;
    }
    t->log = fopen(t->log_path, "ab");
    if (!t->log) {
        rc = et_err_set(err, ET_EIO, "%s: cannot open: %s", t->log_path, strerror(errno));
        goto out;
    }
    res->rows = t->rows.n;
    res->validated = t->va != NULL;

    say(t, "%s fine-tuning of %s (%s, dim %zu): %zu pairs, %zu epochs x ~%zu batches of %zu, %zu steps, lr %.3g, "
           "warm-up %zu, loss %s%s%s",
        t->adapter_mode ? (t->ad->kind == ET_ADAPTER_MLP ? "mlp adapter" : "linear adapter")
                        : (t->is_static ? "static table" : "full"),
        o->base, t->m->cfg.arch == ET_ARCH_STATIC ? "static" : "transformer", t->dim, t->rows.n, t->epochs,
        t->plans[0].n_batches, t->batch, t->total_steps, t->acfg.lr, t->warmup, o->loss ? o->loss : "mnrl",
        t->n_neg ? ", hard negatives" : "", t->cached ? ", GradCache" : "");

    if (!resume) {
        et_buf sl = {0};
        rc = et_buf_puts(&sl, "{\"event\": \"start\", \"base\": ", err);
        if (!rc) rc = et_buf_json_string(&sl, o->base, strlen(o->base), err);
        if (!rc)
            rc = et_buf_printf(&sl, err,
                               ", \"mode\": \"%s\", \"loss\": \"%s\", \"pairs\": %zu, \"epochs\": %zu, "
                               "\"batch_size\": %zu, \"steps\": %zu, \"lr\": %.17g, \"warmup\": %zu, \"seed\": %llu}",
                               mode, o->loss ? o->loss : "mnrl", t->rows.n, t->epochs, t->batch, t->total_steps,
                               t->acfg.lr, t->warmup, (unsigned long long)o->seed);
        if (!rc) rc = log_line(t, sl.data, err);
        et_buf_free(&sl);
        if (rc) goto out;
        if (t->va) { /* the base model, and best.bin = the starting point */
            if ((rc = evaluate(t, t->base_metrics, err))) goto out;
            char mb[256];
            fmt_metrics(mb, sizeof(mb), t->base_metrics);
            say(t, "base model on validation: %s", mb);
            if ((rc = log_eval(t, 0, 0.0, t->base_metrics, 1, err))) goto out;
            t->st.best_score = t->base_metrics[4];
            t->st.best_step = 0;
            if ((rc = et_ckpt_save(t->best_path, &t->st, t->params, NULL, NULL, t->n_params, NULL, 0, err))) goto out;
        }
        if ((rc = save_state(t, err))) goto out;
    }

    /* ---- the loop ---- */
    double t0 = now_s(), last_save = t0, loss_acc = 0;
    size_t rows_done = 0, loss_n = 0;
    et_progress pr;
    et_progress_init(&pr, "finetune", "steps/s", t->total_steps);
    pr.enabled = pr.enabled && !o->quiet;
    while (!rc && !t->st.done) {
        size_t e = (size_t)t->st.epoch;
        if (e >= t->epochs) {
            t->st.done = 1;
            break;
        }
        const et_epoch_plan *p = &t->plans[e];
        size_t b0 = (size_t)t->st.batch;
        if (b0 >= p->n_batches) {
            t->st.epoch++;
            t->st.batch = 0;
            continue;
        }
        size_t b1 = ET_MIN(b0 + t->accum, p->n_batches), rows_step = 0;
        memset(t->grads, 0, t->n_params * sizeof(float));
        double step_loss = 0;
        for (size_t b = b0; b < b1 && !rc; b++) {
            size_t lo = p->batch_off[b], B = p->batch_off[b + 1] - lo;
            double l = 0;
            rc = run_batch(t, p, lo, B, 1.0f / (float)(b1 - b0), &l, err);
            step_loss += l / (double)(b1 - b0);
            rows_step += B;
        }
        if (rc) {
            if (err && err->code == ET_ENUMERIC)
                et_err_prefix(err, "step %llu (epoch %zu, batch %zu): training stopped; the last good checkpoint "
                              "(step %llu) is kept in %s (lower --lr, or check the data)",
                              (unsigned long long)t->st.step + 1, e + 1, b0, (unsigned long long)t->st.step,
                              t->ckpt_dir);
            break;
        }
        double gnorm = et_clip_grad_norm(t->grads, t->n_params, t->acfg.max_grad_norm);
        if (!isfinite(gnorm)) {
            rc = et_err_set(err, ET_ENUMERIC,
                            "step %llu: the gradient is not finite; training stopped; the last good checkpoint "
                            "(step %llu) is kept in %s (lower --lr, or check the data)",
                            (unsigned long long)t->st.step + 1, (unsigned long long)t->st.step, t->ckpt_dir);
            break;
        }
        double lr = et_lr_at(&t->acfg, (size_t)t->st.step);
        et_adamw_step(&t->opt, t->params, t->grads, t->decay, lr);
        t->st.step++;
        t->st.batch = b1;
        if (b1 >= p->n_batches) {
            t->st.epoch++;
            t->st.batch = 0;
        }
        t->st.last_loss = step_loss;
        rows_done += rows_step;
        loss_acc += step_loss;
        loss_n++;
        double el = now_s() - t0, pps = el > 0 ? (double)rows_done / el : 0;
        double epoch_f = (double)e + (double)b1 / (double)p->n_batches;
        {
            char line[512];
            snprintf(line, sizeof(line),
                     "{\"step\": %llu, \"epoch\": %.4f, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.4f, "
                     "\"pairs_per_s\": %.1f",
                     (unsigned long long)t->st.step, epoch_f, step_loss, lr, gnorm, pps);
            et_buf lb = {0};
            rc = et_buf_puts(&lb, line, err);
            if (!rc && o->log_batches) rc = batch_rows_json(t, p, b0, b1, &lb, err);
            if (!rc) rc = et_buf_puts(&lb, "}", err);
            if (!rc) rc = log_line(t, lb.data, err);
            et_buf_free(&lb);
            if (rc) break;
            snprintf(line, sizeof(line), "epoch %.2f loss %.4f lr %.2e %.1f pairs/s", epoch_f, loss_acc / loss_n, lr,
                     pps);
            et_progress_update(&pr, (size_t)t->st.step, line);
        }
        int epoch_end = b1 >= p->n_batches, last = t->st.step >= t->total_steps;
        int do_eval = t->va && (last || (o->eval_steps ? t->st.step % o->eval_steps == 0 : epoch_end));
        if (do_eval) {
            double mtr[5];
            if ((rc = evaluate(t, mtr, err))) break;
            int best = mtr[4] > t->st.best_score;
            if (best) {
                t->st.best_score = mtr[4];
                t->st.best_step = t->st.step;
                if ((rc = et_ckpt_save(t->best_path, &t->st, t->params, NULL, NULL, t->n_params, NULL, 0, err))) break;
            }
            if ((rc = log_eval(t, (size_t)t->st.step, epoch_f, mtr, best, err))) break;
            char mb[256];
            fmt_metrics(mb, sizeof(mb), mtr);
            if (pr.shown) fputc('\n', stderr), pr.shown = 0;
            say(t, "step %llu/%zu epoch %.2f loss %.4f | val %s%s", (unsigned long long)t->st.step, t->total_steps,
                epoch_f, loss_acc / loss_n, mb, best ? " (best)" : "");
            loss_acc = 0, loss_n = 0;
        } else if (epoch_end && !t->va) {
            if (pr.shown) fputc('\n', stderr), pr.shown = 0;
            say(t, "step %llu/%zu epoch %zu done, loss %.4f, %.1f pairs/s", (unsigned long long)t->st.step,
                t->total_steps, e + 1, loss_acc / loss_n, pps);
            loss_acc = 0, loss_n = 0;
        }
        if (last) t->st.done = 1;
        int stop = o->stop && *o->stop;
        if (do_eval || epoch_end || last || stop || (o->save_steps && t->st.step % o->save_steps == 0) ||
            (!o->save_steps && now_s() - last_save > SAVE_SECONDS)) {
            if ((rc = save_state(t, err))) break;
            last_save = now_s();
        }
        if (stop && !t->st.done) {
            rc = et_err_set(err, ET_ECANCELED, "interrupted at step %llu/%zu; checkpoint saved: rerun with --resume",
                            (unsigned long long)t->st.step, t->total_steps);
            break;
        }
    }
    if (pr.shown) fputc('\n', stderr);
    res->seconds = now_s() - t0;
    res->pairs_per_s = res->seconds > 0 ? (double)rows_done / res->seconds : 0;
    res->steps = (size_t)t->st.step;
    res->last_loss = t->st.last_loss;
    if (rc) goto out;

    /* ---- write the model ---- */
    {
        float *final = t->params, *best = NULL;
        int use_best = t->va && !o->save_last;
        if (use_best) {
            best = et_malloc_n(t->n_params, sizeof(float), err);
            et_ckpt_state bs;
            if (!best) rc = ET_ENOMEM;
            else rc = et_ckpt_load(t->best_path, &bs, best, NULL, NULL, t->n_params, NULL, 0, NULL, err);
            if (!rc && bs.best_step != t->st.best_step)
                rc = et_err_set(err, ET_EFORMAT, "%s holds step %llu, expected the best step %llu", t->best_path,
                                (unsigned long long)bs.best_step, (unsigned long long)t->st.best_step);
            final = best;
        }
        if (!rc) rc = write_output(t, final, err);
        free(best);
        if (rc) goto out;
        res->best_step = use_best ? (size_t)t->st.best_step : (size_t)t->st.step;
    }
    if (t->va) { /* base metrics and those of the model written, from the log */
        FILE *lf = fopen(t->log_path, "rb");
        char line[1024];
        while (lf && fgets(line, sizeof(line), lf)) {
            unsigned long long step;
            double m[5];
            if (sscanf(line,
                       "{\"step\": %llu, \"epoch\": %*f, \"eval\": {\"accuracy@1\": %lf, \"accuracy@3\": %lf, "
                       "\"accuracy@5\": %lf, \"accuracy@10\": %lf, \"mrr@10\": %lf}",
                       &step, &m[0], &m[1], &m[2], &m[3], &m[4]) == 6) {
                if (step == 0) {
                    memcpy(res->base_acc, m, 4 * sizeof(double));
                    res->base_mrr10 = m[4];
                }
                if (step == res->best_step) {
                    memcpy(res->best_acc, m, 4 * sizeof(double));
                    res->best_mrr10 = m[4];
                }
            }
        }
        if (lf) fclose(lf);
    }
    rm_rf(t->ckpt_dir); /* done: the resumable state is no longer needed */
out:
    free_trainer(t);
    return rc;
}
