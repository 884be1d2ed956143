/* model_params.c - the BERT / XLM-R parameter table (sizes, pointers, names). */
#include "model.h"
#include "util.h"

static const char *const names[ET_BERT_NUM_TENSORS] = {
    "wte", "wpe", "wtt", "emb_lnw", "emb_lnb", "qkvw", "qkvb", "attprojw", "attprojb",
    "ln1w", "ln1b", "fcw", "fcb", "fcprojw", "fcprojb", "ln2w", "ln2b", "poolw", "poolb"};

size_t et_bert_param_sizes(const et_model_config *cfg, size_t sizes[ET_BERT_NUM_TENSORS]) {
    size_t C = cfg->hidden, L = cfg->n_layers, F = cfg->intermediate, ok = 1;
    size_t CC = 0, LC = 0, LCC = 0, LFC = 0, LF = 0;
    ok &= et_size_mul(C, C, &CC) && et_size_mul(L, C, &LC) && et_size_mul(L, CC, &LCC);
    ok &= et_size_mul(L, F, &LF) && et_size_mul(LF, C, &LFC);
    ok &= et_size_mul(cfg->vocab_size, C, &sizes[ET_BERT_WTE]);
    ok &= et_size_mul(cfg->max_position, C, &sizes[ET_BERT_WPE]);
    ok &= et_size_mul(cfg->type_vocab_size, C, &sizes[ET_BERT_WTT]);
    sizes[ET_BERT_EMB_LNW] = C;
    sizes[ET_BERT_EMB_LNB] = C;
    ok &= et_size_mul(LCC, 3, &sizes[ET_BERT_QKVW]);
    ok &= et_size_mul(LC, 3, &sizes[ET_BERT_QKVB]);
    sizes[ET_BERT_ATTPROJW] = LCC;
    sizes[ET_BERT_ATTPROJB] = LC;
    sizes[ET_BERT_LN1W] = LC;
    sizes[ET_BERT_LN1B] = LC;
    sizes[ET_BERT_FCW] = LFC;
    sizes[ET_BERT_FCB] = LF;
    sizes[ET_BERT_FCPROJW] = LFC;
    sizes[ET_BERT_FCPROJB] = LC;
    sizes[ET_BERT_LN2W] = LC;
    sizes[ET_BERT_LN2B] = LC;
    sizes[ET_BERT_POOLW] = cfg->has_pooler ? CC : 0;
    sizes[ET_BERT_POOLB] = cfg->has_pooler ? C : 0;
    size_t total = 0;
    for (int i = 0; i < ET_BERT_NUM_TENSORS; i++) ok &= et_size_add(total, sizes[i], &total);
    return ok ? total : 0;
}

void et_bert_point_params(et_bert_params *p, float *base, const size_t sizes[ET_BERT_NUM_TENSORS]) {
    for (int i = 0; i < ET_BERT_NUM_TENSORS; i++) {
        p->t[i] = base;
        base += sizes[i];
    }
}

int et_bert_param_decays(int i) {
    switch (i) {
    case ET_BERT_WTE: case ET_BERT_WPE: case ET_BERT_WTT: case ET_BERT_QKVW:
    case ET_BERT_ATTPROJW: case ET_BERT_FCW: case ET_BERT_FCPROJW: case ET_BERT_POOLW:
        return 1;
    default:
        return 0;
    }
}

const char *et_bert_param_name(int i) {
    return i >= 0 && i < ET_BERT_NUM_TENSORS ? names[i] : "?";
}
