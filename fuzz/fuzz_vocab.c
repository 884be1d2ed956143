/* fuzz_vocab.c - the tokenizer of a model directory without tokenizer.json:
 * vocab.txt + tokenizer_config.json + special_tokens_map.json, on arbitrary
 * bytes (the input cut at NUL bytes into the three files; a missing part is
 * an absent file). An accepted tokenizer encodes a fixed text and the input
 * itself with offsets inside the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embtune.h"
#include "fuzz_tmp.h"

static void check_enc(const et_encoding *e, size_t len) {
    for (size_t i = 0; i < e->n; i++)
        if (e->offsets[2 * i] > e->offsets[2 * i + 1] || e->offsets[2 * i + 1] > len) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const names[3] = {"vocab.txt", "tokenizer_config.json", "special_tokens_map.json"};
    char path[256];
    size_t pos = 0;
    for (int k = 0; k < 3; k++) {
        const uint8_t *z = pos < size ? memchr(data + pos, 0, size - pos) : NULL;
        size_t e = k == 2 || !z ? size : (size_t)(z - data);
        if (pos < size || k == 0) fuzz_write(path, sizeof(path), names[k], data + pos, e - pos);
        else unlink(fuzz_path(path, sizeof(path), names[k]));
        pos = e < size ? e + 1 : size;
    }
    et_tokenizer *tok = NULL;
    et_error err = {0};
    if (et_tokenizer_load_dir(&tok, fuzz_tmpdir(), &err)) {
        if (!err.msg[0]) abort();
        return 0;
    }
    static const char text[] = "Hello, World! Ünïcödé 東京 [CLS] [SEP] a##b [MASK] x";
    et_encoding enc = {0};
    if (!et_tokenizer_encode(tok, text, sizeof(text) - 1, 1, 16, &enc, &err)) {
        check_enc(&enc, sizeof(text) - 1);
        if (enc.n > 16) abort();
    }
    if (!et_tokenizer_encode(tok, (const char *)data, size < 512 ? size : 512, 1, 0, &enc, &err))
        check_enc(&enc, size < 512 ? size : 512);
    for (size_t i = 0; i < enc.n; i++) (void)et_tokenizer_id_to_token(tok, enc.ids[i]);
    et_encoding_free(&enc);
    et_tokenizer_free(tok);
    return 0;
}
