/* embed.c - et_embed / et_embed_ids: tokenization (threaded), length
 * bucketing (sequences sorted by length, batched under a token budget),
 * forward, and scatter of the rows back to input order. */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "threads.h"
#include "util.h"

/* Tokens per forward batch: batch_size sequences of 128 tokens; longer
 * sequences get fewer per batch (at least one). Keeps activation memory flat. */
#define TOKENS_PER_SEQ_BUDGET 128

typedef struct {
    const int32_t *const *ids;
    const size_t *lens;
    size_t i;
} seq_ref;

static int cmp_len_desc(const void *a, const void *b) {
    const seq_ref *x = a, *y = b;
    size_t lx = x->lens[x->i], ly = y->lens[y->i];
    if (lx != ly) return lx > ly ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i ? 1 : 0; /* stable: deterministic batches */
}

/* skip: leading tokens of every sequence left out of the pooling (a prompt, include_prompt false) */
static int embed_sorted(et_model *m, const int32_t *const *ids, const size_t *lens, size_t n, size_t skip,
                        float *out, et_error *err) {
    size_t D = m->cfg.hidden, bs = m->batch_size ? m->batch_size : 32;
    if (n == 0) return ET_OK;
    seq_ref *order = et_malloc_n(n, sizeof(*order), err);
    const int32_t **bids = et_malloc_n(bs, sizeof(*bids), err);
    size_t *blens = et_malloc_n(bs, sizeof(*blens), err);
    float *bout = et_malloc_n(bs, D * sizeof(float), err);
    int rc = ET_OK;
    if (!order || !bids || !blens || !bout) {
        rc = ET_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) order[i] = (seq_ref){ids, lens, i};
    qsort(order, n, sizeof(*order), cmp_len_desc);
    size_t budget = bs * TOKENS_PER_SEQ_BUDGET;
    for (size_t s = 0; s < n && !rc;) {
        size_t T = lens[order[s].i] ? lens[order[s].i] : 1, B = 0;
        size_t cap = m->cfg.arch == ET_ARCH_STATIC ? bs : ET_MAX((size_t)1, ET_MIN(bs, budget / T));
        while (B < cap && s + B < n) {
            bids[B] = ids[order[s + B].i];
            blens[B] = lens[order[s + B].i];
            B++;
        }
        rc = m->cfg.arch == ET_ARCH_STATIC ? et_static_embed_batch(m, bids, blens, B, bout, err)
                                           : et_bert_embed_batch(m, bids, blens, B, skip, bout, err);
        if (rc) {
            et_err_prefix(err, "input %zu", order[s].i);
            break;
        }
        for (size_t b = 0; b < B; b++) memcpy(out + order[s + b].i * D, bout + b * D, D * sizeof(float));
        s += B;
    }
done:
    free(order);
    free(bids);
    free(blens);
    free(bout);
    return rc;
}

int et_embed_ids(et_model *m, const int32_t *const *ids, const size_t *lens, size_t n, float *out,
                 et_error *err) {
    if (!m || (n && (!ids || !lens || !out))) return et_err_set(err, ET_EINVAL, "et_embed_ids: NULL argument");
    return embed_sorted(m, ids, lens, n, 0, out, err);
}

/* ---- text -> ids (threaded) ------------------------------------------------------ */

typedef struct {
    et_model *m;
    const char *const *texts;
    size_t n;
    const char *prompt;
    int32_t **ids;    /* [n], each malloc'd */
    size_t *lens;     /* [n] */
    int rc[256];
    et_error errs[256];
} tok_task;

static void tok_run(void *ctx, int ith, int nth) {
    tok_task *t = ctx;
    et_model *m = t->m;
    et_error *err = &t->errs[ith];
    et_encoding enc = {0};
    et_buf joined = {0};
    long lo, hi;
    et_split((long)t->n, ith, nth, &lo, &hi);
    int is_static = m->cfg.arch == ET_ARCH_STATIC;
    size_t plen = t->prompt ? strlen(t->prompt) : 0;
    int rc = ET_OK;
    for (long i = lo; i < hi && !rc; i++) {
        const char *s = t->texts[i] ? t->texts[i] : "";
        size_t len = strlen(s);
        if (plen) {
            joined.len = 0;
            if ((rc = et_buf_append(&joined, t->prompt, plen, err)) ||
                (rc = et_buf_append(&joined, s, len, err)))
                break;
            s = joined.data;
            len = joined.len;
        }
        rc = et_tokenizer_encode(m->tok, s, len, !is_static, is_static ? 0 : m->max_length, &enc, err);
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
        for (size_t j = 0; j < enc.n; j++) {
            if (is_static && enc.ids[j] == m->unk_id) continue; /* model2vec drops UNK */
            ids[k++] = enc.ids[j];
        }
        if (is_static && k > m->max_length) k = m->max_length;
        t->ids[i] = ids;
        t->lens[i] = k;
    }
    et_encoding_free(&enc);
    et_buf_free(&joined);
    t->rc[ith] = rc;
}

int et_embed(et_model *m, const char *const *texts, size_t n, const char *prompt, float *out,
             et_error *err) {
    if (!m || (n && (!texts || !out))) return et_err_set(err, ET_EINVAL, "et_embed: NULL argument");
    if (n == 0) return ET_OK;
    tok_task *t = et_calloc(1, sizeof(*t), err);
    if (!t) return ET_ENOMEM;
    t->m = m;
    t->texts = texts;
    t->n = n;
    t->prompt = prompt && prompt[0] ? prompt : NULL;
    t->ids = et_calloc(n, sizeof(*t->ids), err);
    t->lens = et_calloc(n, sizeof(*t->lens), err);
    int rc = ET_OK;
    if (!t->ids || !t->lens) {
        rc = ET_ENOMEM;
        goto done;
    }
    int nth = et_get_threads();
    if (nth > 256) nth = 256;
    if (n < 64) nth = 1;
    et_parallel_n(tok_run, t, nth);
    for (int i = 0; i < nth && !rc; i++)
        if (t->rc[i]) {
            rc = t->rc[i];
            if (err) *err = t->errs[i];
        }
    /* sentence-transformers: prompt_length = len(tokenize([prompt]).input_ids) - 1 (the prompt's
     * tokens with the leading special token, not the trailing one); Pooling with include_prompt
     * false zeroes the attention mask over them (even for an empty prompt: the [CLS]) */
    size_t skip = 0;
    if (!rc && prompt && !m->include_prompt && m->cfg.arch != ET_ARCH_STATIC) {
        et_encoding enc = {0};
        rc = et_tokenizer_encode(m->tok, prompt, strlen(prompt), 1, m->max_length, &enc, err);
        if (rc) et_err_prefix(err, "prompt");
        else skip = enc.n ? enc.n - 1 : 0;
        et_encoding_free(&enc);
    }
    if (!rc) rc = embed_sorted(m, (const int32_t *const *)t->ids, t->lens, n, skip, out, err);
done:
    if (t->ids)
        for (size_t i = 0; i < n; i++) free(t->ids[i]);
    free(t->ids);
    free(t->lens);
    free(t);
    return rc;
}
