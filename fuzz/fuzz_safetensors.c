/* fuzz_safetensors.c - the safetensors parser on arbitrary bytes, then every
 * accepted tensor converted (float or int) so out-of-range data would be read. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* a private copy: the parser must not read past `size` (ASan sees the bound) */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    et_safetensors st;
    et_error err;
    if (et_safetensors_parse(&st, buf, size, "fuzz.safetensors", &err) == 0) {
        for (size_t i = 0; i < st.n; i++) {
            const et_st_tensor *t = &st.tensors[i];
            if (t->numel > (1u << 20)) continue;
            float *f = malloc((t->numel ? t->numel : 1) * sizeof(float));
            int32_t *v = malloc((t->numel ? t->numel : 1) * sizeof(int32_t));
            if (f && v) {
                et_st_to_f32(t, f, "fuzz", &err);
                et_st_to_i32(t, v, "fuzz", &err);
            }
            free(f);
            free(v);
            (void)et_safetensors_find(&st, t->name);
        }
        et_safetensors_close(&st);
    }
    free(buf);
    return 0;
}
