/* strmap.h - open-addressing hash map from byte strings to int64 values.
 * Keys are copied into the map's own arena. Used for vocabularies and ids. */
#ifndef ET_STRMAP_H
#define ET_STRMAP_H

#include "util.h"

typedef struct et_strmap {
    uint64_t *hashes;  /* [cap], 0 = empty slot */
    size_t *key_off;   /* [cap] offsets into keys */
    size_t *key_len;   /* [cap] */
    int64_t *values;   /* [cap] */
    size_t cap, count;
    et_buf keys;       /* arena of key bytes */
} et_strmap;

void et_strmap_init(et_strmap *m);
void et_strmap_free(et_strmap *m);
/* Inserts or overwrites key -> value. */
int et_strmap_put(et_strmap *m, const char *key, size_t len, int64_t value, et_error *err);
/* Inserts only if absent; *existing (may be NULL) gets the stored value and
 * the function returns 1 if the key was already present, 0 if inserted, <0 on
 * error (err set). */
int et_strmap_put_new(et_strmap *m, const char *key, size_t len, int64_t value, int64_t *existing,
                      et_error *err);
/* 1 and *value if present, else 0. */
int et_strmap_get(const et_strmap *m, const char *key, size_t len, int64_t *value);

#endif
