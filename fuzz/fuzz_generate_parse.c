/* fuzz_generate_parse.c - libFuzzer harness for LLM reply handling: the
 * chat-completions body extractor and the question parser, on hostile bytes.
 *
 * Input layout: byte 0 = questions wanted (1..8) and the truncated flag;
 * the rest is split at the first 0xFF byte into (reply, context); without
 * one, the whole rest is the reply and a fixed context is used. The reply is
 * parsed both as a response body and as assistant text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "generate_parse.h"
#include "llm_client.h"

static const char *CTX = "The function read.table() reads a file in table format and creates a data frame from it.";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    size_t want = (size_t)(data[0] & 7) + 1;
    int trunc = (data[0] >> 3) & 1;
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    const uint8_t *sep = memchr(rest, 0xFF, n);
    size_t rlen = sep ? (size_t)((const char *)sep - rest) : n;
    char *ctx = NULL;
    if (sep) {
        size_t clen = n - rlen - 1;
        ctx = malloc(clen + 1);
        if (!ctx) return 0;
        memcpy(ctx, rest + rlen + 1, clen);
        ctx[clen] = 0;
    }
    /* as a response body */
    char *text = NULL;
    int t2 = 0;
    if (et_gen_reply_text(rest, rlen, &text, &t2, NULL) == 0) {
        et_strlist out = {0};
        et_gen_parse_questions(text, strlen(text), ctx ? ctx : CTX, NULL, want, t2, &out, NULL);
        for (size_t i = 0; i < out.n; i++)
            if (!out.v[i][0] || strlen(out.v[i]) > ET_GEN_MAX_QUESTION + 1) abort();
        et_strlist_free(&out);
        free(text);
    }
    /* as assistant text, with one kept question to exclude */
    et_strlist have = {0};
    et_strlist_push(&have, "What is R?", 10, NULL);
    size_t before = have.n;
    et_gen_parse_questions(rest, rlen, ctx ? ctx : CTX, &have, want, trunc, &have, NULL);
    if (have.n > before + want) abort(); /* never more than asked */
    for (size_t i = 0; i < have.n; i++) /* output is valid UTF-8 without control bytes */
        for (const unsigned char *u = (const unsigned char *)have.v[i]; *u; u++) {
            if (*u < 0x20 || *u == 0xFF || *u == 0xFE || *u == 0xC0 || *u == 0xC1) abort();
        }
    for (size_t i = 0; i < have.n; i++)
        for (size_t k = i + 1; k < have.n; k++) {
            char a[ET_GEN_MAX_QUESTION + 8], b[ET_GEN_MAX_QUESTION + 8];
            et_gen_normalize(have.v[i], strlen(have.v[i]), a, sizeof(a));
            et_gen_normalize(have.v[k], strlen(have.v[k]), b, sizeof(b));
            if (!strcmp(a, b)) abort(); /* duplicates must be dropped */
        }
    et_strlist_free(&have);
    /* key scrubbing on the same bytes */
    char buf[256];
    size_t k = rlen < sizeof(buf) - 1 ? rlen : sizeof(buf) - 1;
    memcpy(buf, rest, k);
    buf[k] = 0;
    et_llm_scrub(buf, sizeof(buf), "sk-KEY");
    if (strstr(buf, "sk-KEY")) abort();
    free(ctx);
    return 0;
}
