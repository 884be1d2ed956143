/* zz_tok_pending.c - TEMPORARY weak stand-ins for the et_tokenizer_* functions
 * until the tokenizer (branch `tok`) lands on main; delete this file then.
 * Weak: any real definition wins (the shared library links both; in the static
 * library tokenizer objects sort before this one, so the archive index resolves
 * every et_tokenizer_* symbol to them first). Without the real tokenizer, text
 * input fails with a clear message; token-id input (et_embed_ids, embtune
 * embed --ids) works. */
#include "embtune.h"
#include "util.h"

#define ET_WEAK __attribute__((weak))

ET_WEAK int et_tokenizer_load_dir(et_tokenizer **out, const char *dir, et_error *err) {
    (void)dir;
    (void)err;
    *out = NULL;
    return ET_OK;
}
ET_WEAK void et_tokenizer_free(et_tokenizer *tok) { (void)tok; }
ET_WEAK int et_tokenizer_encode(const et_tokenizer *tok, const char *text, size_t len, int add_special,
                                size_t max_len, et_encoding *enc, et_error *err) {
    (void)tok; (void)text; (void)len; (void)add_special; (void)max_len; (void)enc;
    return et_err_set(err, ET_EUNSUPPORTED, "the tokenizer is not built yet (use --ids)");
}
ET_WEAK size_t et_tokenizer_vocab_size(const et_tokenizer *tok) { (void)tok; return 0; }
ET_WEAK const char *et_tokenizer_type(const et_tokenizer *tok) { (void)tok; return "pending"; }
ET_WEAK int32_t et_tokenizer_token_to_id(const et_tokenizer *tok, const char *token) {
    (void)tok; (void)token;
    return -1;
}
ET_WEAK size_t et_tokenizer_num_special(const et_tokenizer *tok) { (void)tok; return 2; }
ET_WEAK void et_encoding_free(et_encoding *enc) { (void)enc; }
