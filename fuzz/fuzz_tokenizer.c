/* fuzz_tokenizer.c - libFuzzer harness for the tokenizer.json loader and the encode pipeline.
 *
 * Input layout: CONFIG \0 TEXT. When CONFIG starts with '#', the second byte picks one of the
 * built-in tokenizers below (every component, small vocabularies) so that the fuzzer spends its
 * time in the encode pipeline; otherwise CONFIG is parsed as a tokenizer.json. TEXT (arbitrary
 * bytes, invalid UTF-8 included) is encoded with and without special tokens and truncated to
 * a length taken from its first byte. Invariants checked: offsets within the input, ordered,
 * count == encode without specials. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embtune.h"

#define WPV "\"[PAD]\":0,\"[UNK]\":1,\"[CLS]\":2,\"[SEP]\":3,\"a\":4,\"b\":5,\"##a\":6,\"##b\":7,\"ab\":8," \
            "\"hello\":9,\"##llo\":10,\"he\":11,\"!\":12,\",\":13,\"é\":14,\"東\":15,\"1\":16,\"##1\":17"
#define UNV "[\"<unk>\",0],[\"▁\",-2],[\"▁a\",-1.5],[\"a\",-2.5],[\"b\",-3],[\"ab\",-1],[\"▁hello\",-4]," \
            "[\"h\",-5],[\"e\",-5],[\"l\",-5],[\"o\",-5],[\"<0x41>\",-9],[\"<0xC3>\",-9],[\"<s>\",0],[\"</s>\",0]"

static const char *builtin[] = {
    /* BERT */
    "{\"added_tokens\":[{\"id\":2,\"content\":\"[CLS]\",\"special\":true},{\"id\":3,\"content\":\"[SEP]\","
    "\"special\":true,\"lstrip\":true,\"rstrip\":true}],"
    "\"normalizer\":{\"type\":\"BertNormalizer\",\"strip_accents\":null},\"pre_tokenizer\":{\"type\":"
    "\"BertPreTokenizer\"},\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":"
    "{\"id\":\"[CLS]\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":1}},{\"SpecialToken\":{\"id\":"
    "\"[SEP]\",\"type_id\":0}}],\"special_tokens\":{\"[CLS]\":{\"id\":\"[CLS]\",\"ids\":[2],\"tokens\":[\"[CLS]\"]},"
    "\"[SEP]\":{\"id\":\"[SEP]\",\"ids\":[3,3],\"tokens\":[\"[SEP]\",\"x\"]}}},"
    "\"model\":{\"type\":\"WordPiece\",\"max_input_chars_per_word\":8,\"vocab\":{" WPV "}}}",
    /* normalizer soup + Split/Digits/Punctuation */
    "{\"added_tokens\":[{\"id\":0,\"content\":\"hello\",\"normalized\":true,\"single_word\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"NFKD\"},{\"type\":\"StripAccents\"},"
    "{\"type\":\"NFC\"},{\"type\":\"NFKC\"},{\"type\":\"NFD\"},{\"type\":\"Lowercase\"},{\"type\":\"Strip\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"Regex\":\"\\\\s+\"},\"content\":\" \"},{\"type\":\"Replace\",\"pattern\":"
    "{\"String\":\"ab\"},\"content\":\"\"},{\"type\":\"Prepend\",\"prepend\":\"#\"}]},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"(?<=\\\\d)\\\\b|\\\\w+\"},\"behavior\":\"MergedWithNext\",\"invert\":true},{\"type\":\"Digits\","
    "\"individual_digits\":true},{\"type\":\"Punctuation\",\"behavior\":\"Contiguous\"},{\"type\":"
    "\"Whitespace\"}]},\"post_processor\":{\"type\":\"BertProcessing\",\"sep\":[\"[SEP]\",3],\"cls\":[\"[CLS]\",2]},"
    "\"model\":{\"type\":\"WordPiece\",\"vocab\":{" WPV "}}}",
    /* XLM-R like Unigram */
    "{\"added_tokens\":[{\"id\":13,\"content\":\"<s>\",\"special\":true},{\"id\":14,\"content\":\"</s>\","
    "\"special\":true},{\"id\":15,\"content\":\"<mask>\",\"special\":true,\"lstrip\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Replace\",\"pattern\":{\"Regex\":"
    "\" {2,}\"},\"content\":\" \"}]},\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"▁\","
    "\"prepend_scheme\":\"first\",\"split\":true},\"post_processor\":{\"type\":\"Sequence\",\"processors\":["
    "{\"type\":\"RobertaProcessing\",\"sep\":[\"</s>\",14],\"cls\":[\"<s>\",13],\"trim_offsets\":true,"
    "\"add_prefix_space\":true}]},"
    "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"byte_fallback\":true,\"vocab\":[" UNV "]}}",
    /* Unigram with Precompiled (rules: A->a, U+200B->"", e+U+0301->é, ﬁ->fi, ①->1; tests/ref/charsmap.js) */
    "{\"normalizer\":{\"type\":\"Precompiled\",\"precompiled_charsmap\":"
    "\""
    "vAMAAAAEAAAAAACAAgAAgAkAAIADAACABgAAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABBBQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAABlmAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAIAMAgCBHQIAgR0CAAAAAAAAAAAAAAAAAAAAAAAAAAAAiy0CAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAJFIAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAKCFAgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAKy0AgAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAzDADAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA4ogDAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAADvsAMAYQAAw6kAZmkAMQA="
    "\"},"
    "\"pre_tokenizer\":{\"type\":\"WhitespaceSplit\"},"
    "\"model\":{\"type\":\"Unigram\",\"unk_id\":0,\"vocab\":[" UNV "]}}",
};

static void check(const et_encoding *e, size_t len) {
    for (size_t i = 0; i < e->n; i++) {
        if (e->offsets[2 * i] > e->offsets[2 * i + 1] || e->offsets[2 * i + 1] > len) {
            fprintf(stderr, "bad offsets [%zu, %zu] for a %zu-byte input\n", e->offsets[2 * i],
                    e->offsets[2 * i + 1], len);
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t clen = nul ? (size_t)(nul - data) : size;
    const char *text = nul ? (const char *)nul + 1 : "";
    size_t tlen = nul ? size - clen - 1 : 0;
    et_tokenizer *tok = NULL;
    et_error err = {0};
    int rc;
    static et_tokenizer *cache[sizeof(builtin) / sizeof(builtin[0])];
    int cached = 0;
    if (clen >= 1 && data[0] == '#') {
        size_t k = (clen > 1 ? data[1] : 0) % (sizeof(builtin) / sizeof(builtin[0]));
        if (!cache[k]) {
            rc = et_tokenizer_load_buffer(&cache[k], builtin[k], strlen(builtin[k]), "builtin", &err);
            if (rc) { fprintf(stderr, "builtin tokenizer failed: %s\n", err.msg); abort(); }
        }
        tok = cache[k];
        cached = 1;
    } else {
        rc = et_tokenizer_load_buffer(&tok, (const char *)data, clen, "fuzz.json", &err);
        if (rc) {
            if (!err.msg[0]) abort(); /* every failure must say why */
            return 0;
        }
    }
    et_encoding enc = {0};
    size_t max_len = tlen ? (uint8_t)text[0] % 40 : 0;
    if (!et_tokenizer_encode(tok, text, tlen, 1, 0, &enc, &err)) check(&enc, tlen);
    if (!et_tokenizer_encode(tok, text, tlen, 1, max_len, &enc, &err)) {
        check(&enc, tlen);
        if (max_len && enc.n > max_len) abort();
    }
    size_t n = 0;
    int rc1 = et_tokenizer_encode(tok, text, tlen, 0, 0, &enc, &err);
    int rc2 = et_tokenizer_count(tok, text, tlen, &n, &err);
    if (!rc1) check(&enc, tlen);
    if (!rc1 != !rc2 || (!rc1 && n != enc.n)) abort();
    for (size_t i = 0; i < enc.n; i++) (void)et_tokenizer_id_to_token(tok, enc.ids[i]);
    et_encoding_free(&enc);
    if (!cached) et_tokenizer_free(tok);
    return 0;
}
