/* tok_nstr.c - HF's NormalizedString operations on the workspace pool: transform with
 * alignment tracking, slicing, splitting by matches with a delimiter behavior. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

void tok_ws_free(tok_ws *w) {
    free(w->text); free(w->al); free(w->sp); free(w->sp2); free(w->chg); free(w->m); free(w->m2);
    free(w->cp); free(w->dscore); free(w->dstart); free(w->did);
    free(w->tid); free(w->ts); free(w->te); free(w->tkind); free(w->tsplit);
    if (w->region) onig_region_free(w->region, 1);
    tok_enc_free(&w->enc);
    tok_enc_free(&w->enc2);
    memset(w, 0, sizeof(*w));
}

void tok_enc_free(tok_enc *e) {
    free(e->id); free(e->type); free(e->spec); free(e->s); free(e->e); free(e->lead); free(e->trail);
    memset(e, 0, sizeof(*e));
}

/* Grows an array *p of *cap elements of size sz to hold at least need elements. */
static int grow(void **p, size_t *cap, size_t need, size_t sz, et_error *err) {
    if (need <= *cap) return ET_OK;
    size_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (!et_size_mul(nc, 2, &nc)) return et_err_set(err, ET_ENOMEM, "tokenizer: out of memory");
    }
    void *q = et_realloc_n(*p, nc, sz, err);
    if (!q) return ET_ENOMEM;
    *p = q;
    *cap = nc;
    return ET_OK;
}

int tok_ws_reserve_pool(tok_ws *w, size_t extra, et_error *err) {
    size_t need;
    if (!et_size_add(w->len, extra, &need) || need > UINT32_MAX)
        return et_err_set(err, ET_EINVAL, "tokenizer: text too large to tokenize (limit 4 GiB)");
    if (need <= w->cap) return ET_OK;
    size_t nc = w->cap ? w->cap : 256;
    while (nc < need) nc *= 2;
    char *t = et_realloc_n(w->text, nc, 1, err);
    if (!t) return ET_ENOMEM;
    w->text = t;
    tok_align *a = et_realloc_n(w->al, nc, sizeof(tok_align), err);
    if (!a) return ET_ENOMEM;
    w->al = a;
    w->cap = nc;
    return ET_OK;
}

int tok_ws_push_split(tok_ws *w, const tok_split *s, et_error *err) {
    int rc = grow((void **)&w->sp2, &w->capsp2, w->nsp2 + 1, sizeof(tok_split), err);
    if (rc) return rc;
    w->sp2[w->nsp2++] = *s;
    return ET_OK;
}

int tok_ws_push_chg(tok_ws *w, uint32_t c, int32_t chg, et_error *err) {
    if (w->nchg == w->capchg) {
        int rc = grow((void **)&w->chg, &w->capchg, w->nchg + 1, sizeof(tok_chg), err);
        if (rc) return rc;
    }
    w->chg[w->nchg].c = c;
    w->chg[w->nchg].chg = chg;
    w->nchg++;
    return ET_OK;
}

int tok_ws_push_match(tok_ws *w, size_t s, size_t e, int m, et_error *err) {
    if (w->nm == w->capm) {
        int rc = grow((void **)&w->m, &w->capm, w->nm + 1, sizeof(tok_match), err);
        if (rc) return rc;
    }
    w->m[w->nm].s = s;
    w->m[w->nm].e = e;
    w->m[w->nm].m = m;
    w->nm++;
    return ET_OK;
}

int tok_ws_push_token(tok_ws *w, int32_t id, size_t s, size_t e, int kind, et_error *err) {
    if (w->ntok == w->captok) {
        size_t nc = w->captok ? w->captok * 2 : 256;
        int32_t *a = et_realloc_n(w->tid, nc, sizeof(*a), err);
        if (!a) return ET_ENOMEM;
        w->tid = a;
        uint32_t *b = et_realloc_n(w->ts, nc, sizeof(*b), err);
        if (!b) return ET_ENOMEM;
        w->ts = b;
        uint32_t *c = et_realloc_n(w->te, nc, sizeof(*c), err);
        if (!c) return ET_ENOMEM;
        w->te = c;
        uint8_t *d = et_realloc_n(w->tkind, nc, 1, err);
        if (!d) return ET_ENOMEM;
        w->tkind = d;
        uint32_t *f = et_realloc_n(w->tsplit, nc, sizeof(*f), err);
        if (!f) return ET_ENOMEM;
        w->tsplit = f;
        w->captok = nc;
    }
    w->tid[w->ntok] = id;
    w->ts[w->ntok] = (uint32_t)s;
    w->te[w->ntok] = (uint32_t)e;
    w->tkind[w->ntok] = (uint8_t)kind;
    w->tsplit[w->ntok] = 0;
    w->ntok++;
    return ET_OK;
}

void tok_ws_swap_splits(tok_ws *w) {
    tok_split *t = w->sp;
    size_t c = w->capsp;
    w->sp = w->sp2;
    w->capsp = w->capsp2;
    w->nsp = w->nsp2;
    w->sp2 = t;
    w->capsp2 = c;
    w->nsp2 = 0;
}

int tok_ws_init_text(tok_ws *w, const char *text, size_t len, et_error *err) {
    w->len = 0;
    w->nsp = w->nsp2 = 0;
    w->nchg = 0;
    w->ntok = 0;
    int rc = tok_ws_reserve_pool(w, len + 1, err);
    if (rc) return rc;
    memcpy(w->text, text, len);
    /* each byte of a char aligns with the whole char */
    size_t i = 0;
    while (i < len) {
        size_t n = tok_utf8_len((uint8_t)text[i]);
        if (n > len - i) n = len - i;
        for (size_t k = 0; k < n; k++) {
            w->al[i + k].s = (uint32_t)i;
            w->al[i + k].e = (uint32_t)(i + n);
        }
        i += n;
    }
    w->len = len;
    tok_split s = {0, len, 0, (uint32_t)len, -1};
    rc = tok_ws_push_split(w, &s, err);
    if (rc) return rc;
    tok_ws_swap_splits(w);
    return ET_OK;
}

int tok_transform_range(tok_ws *w, size_t si, size_t ns, size_t ne, size_t initial_offset,
                        et_error *err) {
    tok_split sp = w->sp[si];
    size_t n = sp.len;
    if (ne > n) ne = n;
    if (ns > ne) ns = ne;
    size_t newlen = 0;
    for (size_t i = 0; i < w->nchg; i++) newlen += tok_cp_len(w->chg[i].c);
    size_t total = ns + newlen + (n - ne);
    size_t end0 = w->len;
    int rc = tok_ws_reserve_pool(w, total, err);
    if (rc) return rc;
    const char *T = w->text + sp.off;
    const tok_align *AL = w->al + sp.off;
    char *out = w->text + end0;
    tok_align *oal = w->al + end0;
    memcpy(out, T, ns);
    memcpy(oal, AL, ns * sizeof(tok_align));
    size_t o = ns;
    size_t rp = ns; /* cursor over the replaced chars */
    for (size_t k = 0; k < initial_offset && rp < ne; k++) rp += tok_utf8_len((uint8_t)T[rp]);
    size_t offset = rp;
    tok_align zero = {sp.orig_s, sp.orig_s};
    for (size_t i = 0; i < w->nchg; i++) {
        uint32_t c = w->chg[i].c;
        int32_t chg = w->chg[i].chg;
        size_t idx = offset;
        tok_align a;
        if (chg > 0) a = idx < 1 ? zero : (idx - 1 < n ? AL[idx - 1] : (n ? AL[n - 1] : zero));
        else a = idx < n ? AL[idx] : (n ? AL[n - 1] : zero);
        if (chg <= 0 && rp < ne) {
            size_t l = tok_utf8_len((uint8_t)T[rp]);
            rp += l;
            offset += l;
        }
        if (chg < 0) {
            for (int32_t k = 0; k < -chg && rp < ne; k++) {
                size_t l = tok_utf8_len((uint8_t)T[rp]);
                rp += l;
                offset += l;
            }
        }
        size_t l = tok_utf8_put(out + o, c);
        for (size_t k = 0; k < l; k++) oal[o + k] = a;
        o += l;
    }
    memcpy(out + o, T + ne, n - ne);
    memcpy(oal + o, AL + ne, (n - ne) * sizeof(tok_align));
    w->nchg = 0;
    int last = sp.off + sp.len == end0;
    if (total <= sp.len || last) {
        memmove(w->text + sp.off, out, total);
        memmove(w->al + sp.off, oal, total * sizeof(tok_align));
        w->len = last ? sp.off + total : end0;
    } else {
        sp.off = end0;
        w->len = end0 + total;
    }
    sp.len = total;
    w->sp[si] = sp;
    return ET_OK;
}

int tok_transform(tok_ws *w, size_t si, size_t initial_offset, et_error *err) {
    return tok_transform_range(w, si, 0, w->sp[si].len, initial_offset, err);
}

void tok_convert_offsets(const tok_ws *w, const tok_split *sp, size_t a, size_t b, uint32_t *os,
                         uint32_t *oe) {
    if (a >= b || b > sp->len) {
        *os = sp->orig_s;
        *oe = sp->orig_s;
        return;
    }
    *os = w->al[sp->off + a].s;
    *oe = w->al[sp->off + b - 1].e;
}

static int push_slice(tok_ws *w, const tok_split *src, size_t a, size_t b, et_error *err) {
    if (a >= b) return ET_OK; /* empty pieces are dropped (PreTokenizedString::split) */
    tok_split s;
    s.off = src->off + a;
    s.len = b - a;
    s.orig_s = w->al[s.off].s;
    s.orig_e = w->al[s.off + s.len - 1].e;
    s.added_id = -1;
    return tok_ws_push_split(w, &s, err);
}

int tok_split_by_matches(tok_ws *w, const tok_split *src, int behavior, et_error *err) {
    tok_match *m = w->m;
    size_t nm = w->nm;
    int rc;
    switch (behavior) {
    case TOK_BEH_REMOVED:
        for (size_t i = 0; i < nm; i++)
            if (!m[i].m && (rc = push_slice(w, src, m[i].s, m[i].e, err))) return rc;
        return ET_OK;
    case TOK_BEH_ISOLATED:
        for (size_t i = 0; i < nm; i++)
            if ((rc = push_slice(w, src, m[i].s, m[i].e, err))) return rc;
        return ET_OK;
    case TOK_BEH_CONTIGUOUS:
    case TOK_BEH_MERGED_PREV: {
        /* fold in place: acc = m[0..k) */
        size_t k = 0;
        int prev = 0;
        for (size_t i = 0; i < nm; i++) {
            int merge = behavior == TOK_BEH_CONTIGUOUS ? (m[i].m == prev) : (m[i].m && !prev);
            if (merge && k > 0) m[k - 1].e = m[i].e;
            else m[k++] = m[i];
            prev = m[i].m;
        }
        for (size_t i = 0; i < k; i++)
            if ((rc = push_slice(w, src, m[i].s, m[i].e, err))) return rc;
        return ET_OK;
    }
    case TOK_BEH_MERGED_NEXT: {
        /* fold from the end; acc grows downwards at the top of the array */
        size_t k = nm; /* acc = m[k..nm) in reverse order of creation */
        int prev = 0;
        for (size_t ii = nm; ii-- > 0;) {
            tok_match cur = m[ii];
            if (cur.m && !prev && k < nm) m[k].s = cur.s;
            else m[--k] = cur;
            prev = cur.m;
        }
        for (size_t i = k; i < nm; i++)
            if ((rc = push_slice(w, src, m[i].s, m[i].e, err))) return rc;
        return ET_OK;
    }
    }
    return et_err_set(err, ET_EINVAL, "tokenizer: bad split behavior %d", behavior);
}

int tok_replace_all(tok_ws *w, size_t si, const char *content, size_t clen, et_error *err) {
    tok_split sp = w->sp[si];
    size_t n = sp.len, nm = w->nm;
    /* output size */
    size_t total = 0, any = 0;
    for (size_t k = 0; k < nm; k++) {
        if (w->m[k].m) { total += clen; any = 1; }
        else total += w->m[k].e - w->m[k].s;
    }
    if (!any) return ET_OK;
    size_t end0 = w->len;
    int rc = tok_ws_reserve_pool(w, total, err);
    if (rc) return rc;
    const char *T = w->text + sp.off;
    const tok_align *AL = w->al + sp.off;
    char *out = w->text + end0;
    tok_align *oal = w->al + end0;
    tok_align zero = {sp.orig_s, sp.orig_s};
    size_t o = 0;
    for (size_t k = 0; k < nm; k++) {
        size_t s = w->m[k].s, e = w->m[k].e;
        if (e > n) e = n;
        if (s > e) s = e;
        if (!w->m[k].m) {
            memcpy(out + o, T + s, e - s);
            memcpy(oal + o, AL + s, (e - s) * sizeof(tok_align));
            o += e - s;
            continue;
        }
        /* HF: inserted chars take the alignment of the char before the insertion point,
         * which is the last replaced char (or what precedes an empty match) */
        tok_align a = e > s ? AL[e - 1] : (o ? oal[o - 1] : zero);
        memcpy(out + o, content, clen);
        for (size_t b = 0; b < clen; b++) oal[o + b] = a;
        o += clen;
    }
    int last = sp.off + sp.len == end0;
    if (o <= sp.len || last) {
        memmove(w->text + sp.off, out, o);
        memmove(w->al + sp.off, oal, o * sizeof(tok_align));
        w->len = last ? sp.off + o : end0;
    } else {
        sp.off = end0;
        w->len = end0 + o;
    }
    sp.len = o;
    w->sp[si] = sp;
    return ET_OK;
}
