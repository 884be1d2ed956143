/* strmap.c - open-addressing (linear probing) string -> int64 map. */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t key_hash(const char *k, size_t n) {
    uint64_t h = et_hash64(k, n, 0x9e3779b97f4a7c15ULL);
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h ? h : 1;
}

void et_strmap_init(et_strmap *m) { memset(m, 0, sizeof(*m)); }

void et_strmap_free(et_strmap *m) {
    free(m->hashes);
    free(m->key_off);
    free(m->key_len);
    free(m->values);
    et_buf_free(&m->keys);
    memset(m, 0, sizeof(*m));
}

static size_t find_slot(const et_strmap *m, uint64_t h, const char *k, size_t n, int *found) {
    size_t mask = m->cap - 1, i = (size_t)h & mask;
    for (;;) {
        if (m->hashes[i] == 0) { *found = 0; return i; }
        if (m->hashes[i] == h && m->key_len[i] == n && (n == 0 || !memcmp(m->keys.data + m->key_off[i], k, n))) {
            *found = 1;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static int grow(et_strmap *m, et_error *err) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    uint64_t *hs = et_calloc(cap, sizeof(*hs), err);
    size_t *ko = et_malloc_n(cap, sizeof(*ko), err);
    size_t *kl = et_malloc_n(cap, sizeof(*kl), err);
    int64_t *vs = et_malloc_n(cap, sizeof(*vs), err);
    if (!hs || !ko || !kl || !vs) {
        free(hs); free(ko); free(kl); free(vs);
        return ET_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->hashes[i]) continue;
        size_t j = (size_t)m->hashes[i] & (cap - 1);
        while (hs[j]) j = (j + 1) & (cap - 1);
        hs[j] = m->hashes[i]; ko[j] = m->key_off[i]; kl[j] = m->key_len[i]; vs[j] = m->values[i];
    }
    free(m->hashes); free(m->key_off); free(m->key_len); free(m->values);
    m->hashes = hs; m->key_off = ko; m->key_len = kl; m->values = vs;
    m->cap = cap;
    return ET_OK;
}

int et_strmap_put_new(et_strmap *m, const char *key, size_t len, int64_t value, int64_t *existing,
                      et_error *err) {
    if ((m->count + 1) * 4 > m->cap * 3) {
        int rc = grow(m, err);
        if (rc) return -rc;
    }
    uint64_t h = key_hash(key, len);
    int found;
    size_t i = find_slot(m, h, key, len, &found);
    if (found) {
        if (existing) *existing = m->values[i];
        return 1;
    }
    size_t off = m->keys.len;
    int rc = et_buf_append(&m->keys, key, len, err);
    if (rc) return -rc;
    m->hashes[i] = h;
    m->key_off[i] = off;
    m->key_len[i] = len;
    m->values[i] = value;
    m->count++;
    return 0;
}

int et_strmap_put(et_strmap *m, const char *key, size_t len, int64_t value, et_error *err) {
    int r = et_strmap_put_new(m, key, len, value, NULL, err);
    if (r < 0) return -r;
    if (r == 1) {
        int found;
        size_t i = find_slot(m, key_hash(key, len), key, len, &found);
        m->values[i] = value;
    }
    return ET_OK;
}

int et_strmap_get(const et_strmap *m, const char *key, size_t len, int64_t *value) {
    if (!m->cap) return 0;
    int found;
    size_t i = find_slot(m, key_hash(key, len), key, len, &found);
    if (found && value) *value = m->values[i];
    return found;
}
