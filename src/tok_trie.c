/* tok_trie.c - byte trie whose edges live in one open-addressing hash table keyed by
 * (parent, byte): compact for 250k-piece vocabularies, one probe per byte on lookup. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

int tok_trie_init(tok_trie *t, et_error *err) {
    memset(t, 0, sizeof(*t));
    t->cap = 1024;
    t->keys = et_calloc(t->cap, sizeof(*t->keys), err);
    t->child = et_malloc_n(t->cap, sizeof(*t->child), err);
    t->cap_nodes = 256;
    t->value = et_malloc_n(t->cap_nodes, sizeof(*t->value), err);
    if (!t->keys || !t->child || !t->value) { tok_trie_free(t); return ET_ENOMEM; }
    t->n_nodes = 1;
    t->value[0] = -1;
    return ET_OK;
}

void tok_trie_free(tok_trie *t) {
    free(t->keys);
    free(t->child);
    free(t->value);
    memset(t, 0, sizeof(*t));
}

static int rehash(tok_trie *t, et_error *err) {
    size_t nc = t->cap * 2;
    uint64_t *k = et_calloc(nc, sizeof(*k), err);
    uint32_t *c = et_malloc_n(nc, sizeof(*c), err);
    if (!k || !c) { free(k); free(c); return ET_ENOMEM; }
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->keys[i]) continue;
        uint64_t h = t->keys[i] * 0x9E3779B97F4A7C15ULL;
        size_t j = (size_t)(h >> 20) & (nc - 1);
        while (k[j]) j = (j + 1) & (nc - 1);
        k[j] = t->keys[i];
        c[j] = t->child[i];
    }
    free(t->keys);
    free(t->child);
    t->keys = k;
    t->child = c;
    t->cap = nc;
    return ET_OK;
}

int tok_trie_put(tok_trie *t, const char *key, size_t len, int32_t value, et_error *err) {
    uint32_t node = 0;
    for (size_t p = 0; p < len; p++) {
        uint32_t nx = tok_trie_step(t, node, (uint8_t)key[p]);
        if (!nx) {
            if ((t->count + 1) * 2 > t->cap) {
                int rc = rehash(t, err);
                if (rc) return rc;
            }
            if (t->n_nodes >= UINT32_MAX - 1)
                return et_err_set(err, ET_EINVAL, "tokenizer: vocabulary too large");
            if (t->n_nodes == t->cap_nodes) {
                int32_t *v = et_realloc_n(t->value, t->cap_nodes * 2, sizeof(*v), err);
                if (!v) return ET_ENOMEM;
                t->value = v;
                t->cap_nodes *= 2;
            }
            nx = (uint32_t)t->n_nodes++;
            t->value[nx] = -1;
            if (node == 0) t->root[(uint8_t)key[p]] = nx;
            uint64_t k = (((uint64_t)node << 8) | (uint8_t)key[p]) + 1;
            uint64_t h = k * 0x9E3779B97F4A7C15ULL;
            size_t i = (size_t)(h >> 20) & (t->cap - 1);
            while (t->keys[i]) i = (i + 1) & (t->cap - 1);
            t->keys[i] = k;
            t->child[i] = nx;
            t->count++;
        }
        node = nx;
    }
    t->value[node] = value;
    return ET_OK;
}
