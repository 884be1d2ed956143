/* fuzz_config.c - the model-directory JSON loaders on arbitrary bytes:
 * config.json, modules.json, 1_Pooling/config.json, sentence_bert_config.json,
 * config_sentence_transformers.json (prompts), and the .npy reader. The first
 * byte picks the parser so one corpus covers them all. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int which = data[0] % 6;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    char *buf = malloc(n + 1); /* exact-size copy: no reads past n */
    if (!buf) return 0;
    memcpy(buf, s, n);
    et_error err;
    switch (which) {
    case 0: {
        et_model_config c;
        if (et_config_parse(&c, buf, n, "config.json", &err) == 0 && c.arch != ET_ARCH_STATIC) {
            size_t sizes[ET_BERT_NUM_TENSORS];
            (void)et_bert_param_sizes(&c, sizes);
        }
        break;
    }
    case 1: {
        et_st_modules m;
        et_modules_parse(&m, buf, n, "modules.json", &err);
        break;
    }
    case 2: {
        int p, ip;
        et_pooling_config_parse(&p, &ip, buf, n, "1_Pooling/config.json", &err);
        break;
    }
    case 3: {
        size_t ml;
        int lc;
        et_st_config_parse(&ml, &lc, buf, n, "sentence_bert_config.json", &err);
        break;
    }
    case 4: {
        et_model *m = calloc(1, sizeof(*m));
        if (m) {
            et_prompts_parse(m, buf, n, "config_sentence_transformers.json", &err);
            for (size_t i = 0; i < m->n_prompts; i++) {
                free(m->prompt_names[i]);
                free(m->prompt_texts[i]);
            }
            free(m->default_prompt);
            free(m);
        }
        break;
    }
    default: {
        float *v = NULL;
        size_t r, c;
        if (et_npy_parse(buf, n, "x.npy", &v, &r, &c, &err) == 0) free(v);
        break;
    }
    }
    free(buf);
    return 0;
}
