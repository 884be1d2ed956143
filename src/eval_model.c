/* eval_model.c - evaluating embedding models, and adapters on top of them,
 * on a dataset; see eval_model.h.
 *
 * Queries are embedded first and kept; the corpus is embedded in blocks that
 * are fed to one streaming exact top-k per system (et_topk_begin/feed/end):
 * the model itself, then each adapter (queries transformed once; document
 * blocks transformed too when the adapter was trained on both). Memory is
 * O(queries + one block) whatever the corpus size, and the base model runs
 * once for all its adapters.
 *
 * Embeddings go through the embedding cache (embcache.h, keyed by the model's
 * fingerprint, the prompt and the text): re-running an evaluation, or
 * evaluating after fine-tuning embedded the same texts, costs no model time,
 * and an interrupted evaluation keeps what it embedded.
 *
 * Prompts follow sentence-transformers' encode_query / encode_document: the
 * model's "query" prompt for queries and its "document" / "passage" /
 * "corpus" prompt for documents when config_sentence_transformers.json
 * defines them, else its default prompt; --prompt / --prompt-name override
 * the query side. */
#include "eval_model.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "embcache.h"
#include "report.h"

#define CORPUS_BLOCK 8192

void et_eval_model_opts_default(et_eval_model_opts *o) {
    memset(o, 0, sizeof(*o));
    o->use_cache = 1;
}

static const char *last_component(const char *path, size_t *len) {
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    const char *s = path + n;
    while (s > path && s[-1] != '/') s--;
    *len = (size_t)(path + n - s);
    return s;
}

/* Same model: equal strings, else equal real paths, else (when a path does
 * not resolve, e.g. a hub id) equal last components. */
static int same_model(const char *a, const char *b) {
    if (!strcmp(a, b)) return 1;
    char ra[PATH_MAX], rb[PATH_MAX];
    if (realpath(a, ra) && realpath(b, rb)) return !strcmp(ra, rb);
    size_t la, lb;
    const char *sa = last_component(a, &la), *sb = last_component(b, &lb);
    return la == lb && !memcmp(sa, sb, la);
}

int et_eval_adapter_target(const char *adapter_dir, const char *const *models, size_t n_models) {
    et_adapter *a = NULL;
    if (et_adapter_load(&a, adapter_dir, NULL)) return 0;
    const char *base = et_adapter_base_model(a);
    int which = 0;
    if (base && *base)
        for (size_t i = 0; i < n_models; i++)
            if (same_model(base, models[i])) {
                which = (int)i;
                break;
            }
    et_adapter_free(a);
    return which;
}

static const char *doc_prompt(const et_model *m) {
    static const char *names[3] = {"document", "passage", "corpus"};
    for (int i = 0; i < 3; i++) {
        const char *p = et_model_prompt(m, names[i]);
        if (p) return p;
    }
    const char *def = et_model_default_prompt(m);
    return def ? et_model_prompt(m, def) : NULL;
}

/* Query prompt: --prompt, else --prompt-name ("none" = no prompt; a name the
 * model lacks is an error), else "query", else the model's default prompt. */
static int query_prompt(const et_model *m, const char *model_dir, const et_eval_model_opts *o, const char **out,
                        et_error *err) {
    *out = NULL;
    if (o->prompt) {
        *out = o->prompt;
        return ET_OK;
    }
    if (o->prompt_name) {
        if (!strcmp(o->prompt_name, "none")) return ET_OK;
        if (!(*out = et_model_prompt(m, o->prompt_name)))
            return et_err_set(err, ET_EINVAL,
                              "%s: the model has no prompt named '%s' (config_sentence_transformers.json)",
                              model_dir, o->prompt_name);
        return ET_OK;
    }
    if ((*out = et_model_prompt(m, "query"))) return ET_OK;
    const char *def = et_model_default_prompt(m);
    *out = def ? et_model_prompt(m, def) : NULL;
    return ET_OK;
}

/* One system being evaluated: the model (adapter NULL) or an adapter on it. */
typedef struct {
    et_eval_run *run;
    et_adapter *adapter;  /* owned */
    float *q;             /* [nq, dim] queries as this system sees them (normalized) */
    et_topk_state *st;
    double seconds;       /* adapter + search time */
} system_t;

int et_eval_model(et_eval_run *runs, const et_dataset *ds, const char *model_dir, const char *name,
                  const char *const *adapters, size_t n_adapters, const et_eval_model_opts *o,
                  const size_t *ks, size_t n_k, et_error *err) {
    size_t ns = 1 + n_adapters, n_init = 0;
    et_model *m = NULL;
    et_embcache *cache = NULL;
    float *qraw = NULL, *draw = NULL, *dtmp = NULL;
    system_t *sys = et_calloc(ns, sizeof(system_t), err);
    if (!sys) return ET_ENOMEM;
    et_model_opts mo = {0};
    mo.max_length = o->max_length;
    mo.quiet = o->quiet;
    int rc = et_model_load(&m, model_dir, &mo, err);
    if (rc) goto done;
    if (o->batch_size) et_model_set_batch_size(m, o->batch_size);
    const char *qp = NULL, *dp = doc_prompt(m);
    size_t dim = et_model_dim(m), nq = ds->n_queries, nd = ds->n_docs;
    size_t blk = ET_MIN((size_t)CORPUS_BLOCK, nd ? nd : 1), depth = et_ir_depth(ks, n_k);
    if ((rc = query_prompt(m, model_dir, o, &qp, err))) goto done;

    /* the systems and their runs */
    for (size_t s = 0; s < ns; s++) {
        system_t *y = &sys[s];
        y->run = &runs[s];
        if (s == 0) {
            rc = et_eval_run_init(y->run, name, "model", model_dir, err);
        } else {
            const char *adir = adapters[s - 1];
            if ((rc = et_adapter_load(&y->adapter, adir, err))) goto done;
            if (et_adapter_dim(y->adapter) != dim) {
                rc = et_err_set(err, ET_EINVAL, "%s: adapter width %zu does not match model %s (dim %zu)", adir,
                                et_adapter_dim(y->adapter), model_dir, dim);
                goto done;
            }
            size_t al;
            const char *an = last_component(adir, &al);
            char label[512];
            snprintf(label, sizeof label, "%s+%.*s", name, (int)al, an);
            rc = et_eval_run_init(y->run, label, "adapter", adir, err);
        }
        if (rc) goto done;
        n_init++;
        y->run->nq = nq;
        y->run->depth = depth;
        y->run->ranked = et_malloc_n(nq ? nq : 1, depth * sizeof(size_t), err);
        y->run->scores = et_malloc_n(nq ? nq : 1, depth * sizeof(float), err);
        y->q = et_malloc_n(nq ? nq : 1, dim * sizeof(float), err);
        if (!y->run->ranked || !y->run->scores || !y->q) {
            rc = ET_ENOMEM;
            goto done;
        }
        if ((rc = et_report_find_train_log(s ? adapters[s - 1] : model_dir, &y->run->train_log, err))) goto done;
    }
    qraw = et_malloc_n(nq ? nq : 1, dim * sizeof(float), err);
    draw = et_malloc_n(blk, dim * sizeof(float), err);
    dtmp = et_malloc_n(blk, dim * sizeof(float), err);
    if (!qraw || !draw || !dtmp) {
        rc = ET_ENOMEM;
        goto done;
    }

    char key[65] = {0};
    if (o->use_cache) {
        et_error cerr = {0};
        char extra[64]; /* the same key as `embtune finetune --mode adapter`, so they share rows */
        snprintf(extra, sizeof extra, "maxlen=%zu", et_model_max_length(m));
        if (et_embcache_open(&cache, o->cache_path, &cerr) || et_embcache_model_key(cache, model_dir, extra, key, &cerr)) {
            if (!o->quiet) fprintf(stderr, "embtune eval: warning: embedding cache not used: %s\n", cerr.msg);
            et_embcache_close(cache);
            cache = NULL;
        }
    }

    /* queries */
    double t0 = et_now(), t_embed = 0;
    size_t cached = 0, c;
    if ((rc = et_embcache_embed(cache, key, m, (const char *const *)ds->queries, nq, qp, qraw, &c, "eval: queries",
                                err)))
        goto embed_failed;
    cached += c;
    t_embed += et_now() - t0;
    for (size_t s = 0; s < ns && !rc; s++) {
        system_t *y = &sys[s];
        double ts = et_now();
        if (y->adapter) rc = et_adapter_apply(y->adapter, qraw, nq, y->q, err);
        else memcpy(y->q, qraw, nq * dim * sizeof(float));
        if (!rc) {
            et_l2_normalize(y->q, nq, dim);
            rc = et_topk_begin(&y->st, y->q, nq, dim, depth, err);
        }
        y->seconds += et_now() - ts;
        if (rc) et_err_prefix(err, "%s", y->run->source);
    }
    if (rc) goto done;

    /* the corpus, block by block */
    for (size_t d0 = 0; d0 < nd; d0 += blk) {
        size_t n = ET_MIN(blk, nd - d0);
        double te = et_now();
        rc = et_embcache_embed(cache, key, m, (const char *const *)ds->docs + d0, n, dp, draw, &c, "eval: corpus",
                               err);
        if (rc) goto embed_failed;
        cached += c;
        t_embed += et_now() - te;
        for (size_t s = 0; s < ns && !rc; s++) {
            system_t *y = &sys[s];
            double ts = et_now();
            if (y->adapter && et_adapter_applies_to_docs(y->adapter))
                rc = et_adapter_apply(y->adapter, draw, n, dtmp, err);
            else
                memcpy(dtmp, draw, n * dim * sizeof(float));
            if (!rc) {
                et_l2_normalize(dtmp, n, dim);
                rc = et_topk_feed(y->st, dtmp, n, err);
            }
            y->seconds += et_now() - ts;
            if (rc) et_err_prefix(err, "%s", y->run->source);
        }
        if (rc) goto done;
    }
    for (size_t s = 0; s < ns && !rc; s++) {
        system_t *y = &sys[s];
        double ts = et_now();
        rc = et_topk_end(y->st, y->run->ranked, y->run->scores, err);
        if (!rc) rc = et_eval_score(y->run, ds, ks, n_k, err);
        y->seconds += et_now() - ts;
        y->run->search_seconds = y->seconds;
        y->run->embed_seconds = t_embed; /* the shared base-model embedding */
    }
    if (!rc && !o->quiet)
        fprintf(stderr, "embtune eval: %s: %zu queries and %zu documents embedded in %.1f s (%zu from the cache)%s%s%s\n",
                name, nq, nd, t_embed, cached, qp ? ", query prompt \"" : "", qp ? qp : "", qp ? "\"" : "");
    goto done;
embed_failed:
    et_err_prefix(err, "%s", model_dir);
done:
    if (rc)
        for (size_t i = 0; i < n_init; i++) et_eval_run_free(&runs[i]);
    for (size_t s = 0; s < ns; s++) {
        et_adapter_free(sys[s].adapter);
        et_topk_free(sys[s].st);
        free(sys[s].q);
    }
    free(sys);
    free(qraw);
    free(draw);
    free(dtmp);
    et_embcache_close(cache);
    et_model_free(m);
    return rc;
}
