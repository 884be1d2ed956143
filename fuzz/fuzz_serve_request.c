/* fuzz_serve_request.c - libFuzzer harness for the embeddings server's request
 * parser (serve_parse_request, both APIs) and the reply/error formatters.
 * Invariants checked: a parse either fails with a 4xx/5xx error whose message
 * is NUL-terminated, or yields n >= 1 inputs within the limits, each non-empty,
 * token ids within the vocabulary, dimensions within the width; and every
 * reply (vectors or error) is valid JSON of the expected shape. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve.h"

static void check(int cond) {
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const serve_limits lim = {.max_inputs = 64, .dim = 8, .vocab_size = 1000};
    for (int api = 0; api < 2; api++) {
        serve_request req;
        serve_error e;
        memset(&e, 0, sizeof(e));
        int rc = serve_parse_request(&req, api, (const char *)data, size, &lim, &e);
        et_buf b = {0};
        if (rc) {
            check(rc == e.status && e.status >= 400 && e.status < 600);
            check(memchr(e.message, 0, sizeof(e.message)) != NULL);
            check(serve_format_error(&b, api, &e, NULL) == 0 && b.len > 0);
            cJSON *j = cJSON_ParseWithLength(b.data, b.len);
            const cJSON *eo = cJSON_GetObjectItem(j, "error");
            check(j && eo && (api == SERVE_TEI ? cJSON_IsString(eo)
                                               : cJSON_IsString(cJSON_GetObjectItem(eo, "message"))));
            cJSON_Delete(j);
        } else {
            check(req.n >= 1 && req.n <= lim.max_inputs);
            check((req.texts != NULL) != (req.ids != NULL));
            for (size_t i = 0; i < req.n; i++) {
                if (req.texts) check(req.text_lens[i] > 0 && strlen(req.texts[i]) == req.text_lens[i]);
                else {
                    check(req.id_lens[i] > 0);
                    for (size_t k = 0; k < req.id_lens[i]; k++)
                        check(req.ids[i][k] >= 0 && (size_t)req.ids[i][k] < lim.vocab_size);
                }
            }
            check(req.dimensions <= lim.dim);
            size_t dims = req.dimensions ? req.dimensions : lim.dim;
            float *v = calloc(req.n * dims, sizeof(float));
            check(v != NULL);
            for (size_t i = 0; i < req.n * dims; i++) v[i] = (float)i * 0.25f - 1.0f;
            int f = api == SERVE_TEI ? serve_format_tei(&b, v, req.n, dims, NULL)
                                     : serve_format_openai(&b, v, req.n, dims, req.encoding, "m", 3, NULL);
            check(f == 0 && b.len > 0);
            cJSON *j = cJSON_ParseWithLength(b.data, b.len);
            const cJSON *rows = api == SERVE_TEI ? j : cJSON_GetObjectItem(j, "data");
            check(j && cJSON_IsArray(rows) && (size_t)cJSON_GetArraySize(rows) == req.n);
            if (api == SERVE_OPENAI && req.encoding == SERVE_BASE64) {
                const char *s64 = cJSON_GetObjectItem(rows->child, "embedding")->valuestring;
                check(s64 && strlen(s64) == (dims * 4 + 2) / 3 * 4);
            } else {
                const cJSON *r0 = api == SERVE_TEI ? rows->child : cJSON_GetObjectItem(rows->child, "embedding");
                check(cJSON_IsArray(r0) && (size_t)cJSON_GetArraySize(r0) == dims &&
                      cJSON_GetArrayItem(r0, 1 % (int)dims)->valuedouble == (double)v[1 % dims]);
            }
            cJSON_Delete(j);
            free(v);
        }
        et_buf_free(&b);
        serve_request_free(&req);
    }
    return 0;
}
