/* test_model.c - safetensors reader/writer, config parsers, and the model
 * loader on bad input: every error has a clear message naming the file and
 * the field or tensor, and nothing crashes. Also an export round trip
 * (et_model_hf_tensors + et_safetensors_write) and et_embed_ids == et_embed. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels.h"
#include "model.h"
#include "safetensors.h"
#include "test_util.h"
#include "util.h"

static char root[512];

/* Builds a safetensors image from a header string and n data bytes. */
static size_t st_image(uint8_t *buf, const char *header, size_t ndata) {
    size_t hl = strlen(header);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, 0x3c, ndata);
    return 8 + hl + ndata;
}

static void expect_parse(const char *header, size_t ndata, int code, const char *needle) {
    static uint8_t buf[1 << 16];
    size_t n = st_image(buf, header, ndata);
    et_safetensors st;
    et_error err = {0};
    int rc = et_safetensors_parse(&st, buf, n, "x.safetensors", &err);
    TEST_CHECK(rc == code, "parse %s: rc %d, expected %d (%s)", header, rc, code, err.msg);
    if (code) TEST_CHECK(strstr(err.msg, needle) != NULL, "message '%s' lacks '%s'", err.msg, needle);
    else et_safetensors_close(&st);
}

static void test_safetensors(void) {
    expect_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, 0, "");
    expect_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, ET_EFORMAT,
                 "out of range");
    expect_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, ET_EFORMAT,
                 "tensor 'a'");
    expect_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, ET_EFORMAT,
                 "overlap");
    expect_parse("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ET_EUNSUPPORTED,
                 "dtype 'Q4'");
    expect_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,8]}}", 8, ET_EFORMAT, "shape");
    expect_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                 "\"data_offsets\":[0,8]}}", 8, ET_EFORMAT, "shape");
    expect_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, ET_EFORMAT,
                 "out of range");
    expect_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, ET_EFORMAT, "data_offsets");
    expect_parse("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, ET_EFORMAT, "twice");
    expect_parse("{\"__metadata__\":{\"format\":1}}", 0, ET_EFORMAT, "__metadata__");
    expect_parse("[1,2]", 0, ET_EFORMAT, "JSON object");
    expect_parse("{\"a\":", 0, ET_EFORMAT, "invalid JSON");
    /* header length beyond the file */
    uint8_t b[16] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}'};
    et_safetensors st;
    et_error err = {0};
    TEST_CHECK(et_safetensors_parse(&st, b, 10, "h.safetensors", &err) == ET_EFORMAT &&
                   strstr(err.msg, "past the end"), "header beyond file: %s", err.msg);
    TEST_CHECK(et_safetensors_parse(&st, b, 5, "h.safetensors", &err) == ET_EFORMAT, "5-byte file");

    /* writer round trip; bf16/f16 conversions */
    char path[600];
    snprintf(path, sizeof path, "%s/rt.safetensors", root);
    float a[6] = {1, -2, 3.5f, 0, 1e-3f, -7}, c1[1] = {42};
    et_st_out t[2] = {{"layer.a", a, 2, {2, 3}}, {"c", c1, 1, {1}}};
    TEST_CHECK(et_safetensors_write(path, t, 2, &err) == 0, "write: %s", err.msg);
    TEST_CHECK(et_safetensors_open(&st, path, &err) == 0, "reopen: %s", err.msg);
    const et_st_tensor *ta = et_safetensors_find(&st, "layer.a");
    TEST_CHECK(ta && ta->ndim == 2 && ta->shape[0] == 2 && ta->shape[1] == 3, "shape back");
    float back[6] = {0};
    if (ta) et_st_to_f32(ta, back, path, &err);
    test_max_err("safetensors round trip", back, a, 6, 0, 0);
    TEST_CHECK((8 + (size_t)(st.tensors[0].data - st.map.data - 8)) % 8 == 0, "data 8-byte aligned");
    et_safetensors_close(&st);
    TEST_CHECK(et_bf16_to_f32(et_f32_to_bf16(1.00390625f)) == 1.0f, "bf16 ties to even");
    TEST_CHECK(et_bf16_to_f32(et_f32_to_bf16(-3.0f)) == -3.0f, "bf16 exact");
    TEST_CHECK(et_f16_to_f32(0x3c00) == 1.0f && et_f16_to_f32(0xc000) == -2.0f, "f16 normal");
    TEST_CHECK(et_f16_to_f32(0x0001) == 5.9604644775390625e-8f, "f16 subnormal");
    TEST_CHECK(isinf(et_f16_to_f32(0x7c00)), "f16 inf");
}

static void test_configs(void) {
    et_model_config c;
    et_error err = {0};
#define CFG(s, code, needle)                                                                     \
    do {                                                                                         \
        int rc_ = et_config_parse(&c, s, strlen(s), "config.json", &err);                       \
        TEST_CHECK(rc_ == (code), "config %s: rc %d (%s)", s, rc_, err.msg);                     \
        if (code) TEST_CHECK(strstr(err.msg, needle) != NULL, "'%s' lacks '%s'", err.msg, needle); \
    } while (0)
    const char *ok = "{\"model_type\":\"bert\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
                     "\"num_attention_heads\":2,\"intermediate_size\":16,\"max_position_embeddings\":12}";
    CFG(ok, 0, "");
    TEST_CHECK(c.arch == ET_ARCH_BERT && c.type_vocab_size == 2 && c.act == ET_ACT_GELU &&
                   fabsf(c.ln_eps - 1e-12f) < 1e-15f, "bert defaults");
    CFG("{\"model_type\":\"gpt2\"}", ET_EUNSUPPORTED, "'gpt2'");
    CFG("{\"model_type\":\"bert\"}", ET_ENOTFOUND, "'vocab_size'");
    CFG("{\"model_type\":\"bert\",\"vocab_size\":10,\"hidden_size\":9,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16,\"max_position_embeddings\":12}",
        ET_EFORMAT, "multiple");
    CFG("{\"model_type\":\"bert\",\"vocab_size\":\"10\"}", ET_EFORMAT, "'vocab_size'");
    CFG("{\"model_type\":\"bert\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16,\"max_position_embeddings\":12,"
        "\"position_embedding_type\":\"relative_key\"}", ET_EUNSUPPORTED, "position_embedding_type");
    CFG("{\"model_type\":\"bert\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16,\"max_position_embeddings\":12,"
        "\"hidden_act\":\"swish\"}", ET_EUNSUPPORTED, "hidden_act");
    CFG("{\"model_type\":\"xlm-roberta\",\"vocab_size\":10,\"hidden_size\":8,\"num_hidden_layers\":1,"
        "\"num_attention_heads\":2,\"intermediate_size\":16,\"max_position_embeddings\":12,"
        "\"hidden_act\":\"gelu_new\"}", 0, "");
    TEST_CHECK(c.arch == ET_ARCH_XLMR && c.pos_offset == 2 && c.act == ET_ACT_GELU_TANH, "xlmr offset");
    CFG("[]", ET_EFORMAT, "object");
    CFG("{", ET_EFORMAT, "invalid JSON");
    int pool, incl;
#define POOL(s, code, want)                                                                  \
    do {                                                                                     \
        int rc_ = et_pooling_config_parse(&pool, &incl, s, strlen(s), "1_Pooling/config.json", &err); \
        TEST_CHECK(rc_ == (code) && (code || pool == (want)), "pooling %s: rc %d pool %d (%s)", s, \
                   rc_, pool, err.msg);                                                      \
    } while (0)
    POOL("{\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":false}", 0, ET_POOL_CLS);
    POOL("{\"pooling_mode_lasttoken\":true}", 0, ET_POOL_LAST);
    POOL("{\"pooling_mode_cls_token\":true,\"pooling_mode_mean_tokens\":true}", ET_EUNSUPPORTED, 0);
    POOL("{\"pooling_mode_weightedmean_tokens\":true}", 0, ET_POOL_WEIGHTEDMEAN);
    TEST_CHECK(incl == 1, "include_prompt defaults to true");
    POOL("{\"pooling_mode_mean_sqrt_len_tokens\":true,\"include_prompt\":false}", 0, ET_POOL_MEAN_SQRT_LEN);
    TEST_CHECK(incl == 0, "include_prompt false");
    POOL("{\"pooling_mode_mean_tokens\":true,\"include_prompt\":\"no\"}", ET_EFORMAT, 0);
    POOL("{\"pooling_mode\":\"max\"}", 0, ET_POOL_MAX);
    POOL("{}", ET_EFORMAT, 0);
    et_st_modules mods;
    const char *mj = "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"},"
                     "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}]";
    TEST_CHECK(et_modules_parse(&mods, mj, strlen(mj), "modules.json", &err) == 0 && mods.has_pooling &&
                   !strcmp(mods.pooling_path, "1_Pooling") && !mods.has_normalize, "modules.json");
    const char *bad = "[{\"type\":\"sentence_transformers.models.Dense\",\"path\":\"2_Dense\"}]";
    TEST_CHECK(et_modules_parse(&mods, bad, strlen(bad), "modules.json", &err) == ET_EUNSUPPORTED &&
                   strstr(err.msg, "Dense"), "Dense module: %s", err.msg);
    const char *trav = "[{\"type\":\"sentence_transformers.models.Pooling\",\"path\":\"../x\"}]";
    TEST_CHECK(et_modules_parse(&mods, trav, strlen(trav), "modules.json", &err) == ET_EFORMAT,
               "path traversal rejected");
}

/* ---- a tiny model on disk ------------------------------------------------------- */

#define V 40
#define C 8
#define F 16
#define P 16

static void write_text(const char *dir, const char *name, const char *text) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    et_error err;
    et_write_file_atomic(p, text, strlen(text), &err);
}

static const char *CONFIG = "{\"model_type\":\"bert\",\"vocab_size\":40,\"hidden_size\":8,"
                            "\"num_hidden_layers\":1,\"num_attention_heads\":2,"
                            "\"intermediate_size\":16,\"max_position_embeddings\":16}";

/* Writes a 1-layer BERT with deterministic weights; skip = tensor name to leave out,
 * bad_shape = tensor name written with a wrong shape. */
static void make_model(const char *dir, const char *skip, const char *bad_shape) {
    et_error err;
    et_mkdir_p(dir, &err);
    write_text(dir, "config.json", CONFIG);
    char tok_src[600], tok_dst[700];
    snprintf(tok_src, sizeof tok_src, "%s/fixtures/bge-wordpiece/tokenizer.json",
             getenv("SHARED") ? getenv("SHARED") : "../shared");
    char *tj;
    size_t tl;
    if (et_read_file(tok_src, 0, &tj, &tl, &err) == 0) {
        snprintf(tok_dst, sizeof tok_dst, "%s/tokenizer.json", dir);
        et_write_file_atomic(tok_dst, tj, tl, &err);
        free(tj);
    }
    static float data[V * C + P * C + 2 * C + 4 * C + 64 * 64];
    for (size_t i = 0; i < sizeof(data) / sizeof(data[0]); i++) data[i] = (float)((long)(i * 37 % 101) - 50) / 60.0f;
    struct { const char *n; size_t d0, d1; } ts[] = {
        {"embeddings.word_embeddings.weight", V, C}, {"embeddings.position_embeddings.weight", P, C},
        {"embeddings.token_type_embeddings.weight", 2, C}, {"embeddings.LayerNorm.weight", C, 0},
        {"embeddings.LayerNorm.bias", C, 0},
        {"encoder.layer.0.attention.self.query.weight", C, C}, {"encoder.layer.0.attention.self.query.bias", C, 0},
        {"encoder.layer.0.attention.self.key.weight", C, C}, {"encoder.layer.0.attention.self.key.bias", C, 0},
        {"encoder.layer.0.attention.self.value.weight", C, C}, {"encoder.layer.0.attention.self.value.bias", C, 0},
        {"encoder.layer.0.attention.output.dense.weight", C, C}, {"encoder.layer.0.attention.output.dense.bias", C, 0},
        {"encoder.layer.0.attention.output.LayerNorm.weight", C, 0}, {"encoder.layer.0.attention.output.LayerNorm.bias", C, 0},
        {"encoder.layer.0.intermediate.dense.weight", F, C}, {"encoder.layer.0.intermediate.dense.bias", F, 0},
        {"encoder.layer.0.output.dense.weight", C, F}, {"encoder.layer.0.output.dense.bias", C, 0},
        {"encoder.layer.0.output.LayerNorm.weight", C, 0}, {"encoder.layer.0.output.LayerNorm.bias", C, 0},
    };
    et_st_out out[32];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        if (skip && !strcmp(skip, ts[i].n)) continue;
        out[n].name = ts[i].n;
        out[n].data = data;
        out[n].ndim = ts[i].d1 ? 2 : 1;
        out[n].shape[0] = ts[i].d0;
        out[n].shape[1] = ts[i].d1;
        if (bad_shape && !strcmp(bad_shape, ts[i].n)) out[n].shape[0] += 1;
        n++;
    }
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    TEST_CHECK(et_safetensors_write(p, out, n, &err) == 0, "write model: %s", err.msg);
}

static void expect_load(const char *dir, int code, const char *n1, const char *n2) {
    et_model *m = NULL;
    et_error err = {0};
    et_model_opts o = {0, 0, 1};
    int rc = et_model_load(&m, dir, &o, &err);
    TEST_CHECK(rc == code, "load %s: rc %d, expected %d (%s)", dir, rc, code, err.msg);
    if (n1) TEST_CHECK(strstr(err.msg, n1) != NULL, "message '%s' lacks '%s'", err.msg, n1);
    if (n2) TEST_CHECK(strstr(err.msg, n2) != NULL, "message '%s' lacks '%s'", err.msg, n2);
    if (!rc) et_model_free(m);
    else printf("  expected error: %s\n", err.msg);
}

static void corrupt(const char *dir, long offset, const void *bytes, size_t n, long truncate_to) {
    char p[700];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    FILE *f = fopen(p, "r+b");
    if (!f) return;
    if (bytes) {
        fseek(f, offset, SEEK_SET);
        fwrite(bytes, 1, n, f);
    }
    fclose(f);
    if (truncate_to >= 0) TEST_CHECK(truncate(p, truncate_to) == 0, "truncate");
}

static void test_loader(void) {
    char d[700];
    snprintf(d, sizeof d, "%s/good", root);
    make_model(d, NULL, NULL);
    expect_load(d, 0, NULL, NULL);

    /* export round trip: the HF tensor list covers every parameter exactly once */
    et_model *m = NULL;
    et_error err = {0};
    et_model_opts o = {ET_POOL_CLS, 0, 1};
    if (et_model_load(&m, d, &o, &err) == 0) {
        et_hf_tensor *ht;
        size_t nt, covered = 0;
        TEST_CHECK(et_model_hf_tensors(m, &ht, &nt, &err) == 0, "hf tensors");
        et_st_out *so = calloc(nt, sizeof(*so));
        for (size_t i = 0; i < nt; i++) {
            so[i].name = ht[i].name;
            so[i].data = m->params + ht[i].offset;
            so[i].ndim = (size_t)ht[i].ndim;
            so[i].shape[0] = ht[i].shape[0];
            so[i].shape[1] = ht[i].shape[1];
            covered += ht[i].shape[0] * (ht[i].ndim == 2 ? ht[i].shape[1] : 1);
        }
        TEST_CHECK(covered == m->n_params, "tensors cover %zu of %zu params", covered, m->n_params);
        char d2[800], p2[900];
        snprintf(d2, sizeof d2, "%s/exported", root);
        make_model(d2, NULL, NULL);
        snprintf(p2, sizeof p2, "%s/model.safetensors", d2);
        TEST_CHECK(et_safetensors_write(p2, so, nt, &err) == 0, "export: %s", err.msg);
        et_model *m2 = NULL;
        TEST_CHECK(et_model_load(&m2, d2, &o, &err) == 0, "reload export: %s", err.msg);
        if (m2) {
            test_max_err("export round trip params", m2->params, m->params, m->n_params, 0, 0);
            /* et_embed_ids: batch with padding == one by one */
            int32_t s0[5] = {1, 5, 7, 9, 2}, s1[2] = {1, 2}, s2[7] = {1, 3, 3, 39, 4, 0, 2};
            const int32_t *ids[3] = {s0, s1, s2};
            size_t lens[3] = {5, 2, 7};
            float all[3 * C], one[3 * C];
            TEST_CHECK(et_embed_ids(m2, ids, lens, 3, all, &err) == 0, "embed_ids: %s", err.msg);
            for (int i = 0; i < 3; i++) et_embed_ids(m2, ids + i, lens + i, 1, one + i * C, &err);
            test_max_err("batched vs single (padding masks)", all, one, 3 * C, 1e-6, 0);
            int32_t bad[2] = {1, 40};
            const int32_t *bids[1] = {bad};
            size_t blen[1] = {2};
            TEST_CHECK(et_embed_ids(m2, bids, blen, 1, all, &err) == ET_EINVAL && strstr(err.msg, "vocabulary"),
                       "out-of-vocabulary id: %s", err.msg);
            size_t longlen[1] = {17};
            int32_t lng[17] = {0};
            const int32_t *lids[1] = {lng};
            TEST_CHECK(et_embed_ids(m2, lids, longlen, 1, all, &err) == ET_EINVAL && strstr(err.msg, "positions"),
                       "too long: %s", err.msg);
            et_model_free(m2);
        }
        free(so);
        free(ht);
        et_model_free(m);
    }

    snprintf(d, sizeof d, "%s/missing-tensor", root);
    make_model(d, "encoder.layer.0.attention.self.key.bias", NULL);
    expect_load(d, ET_ENOTFOUND, "model.safetensors", "encoder.layer.0.attention.self.key.bias");

    snprintf(d, sizeof d, "%s/bad-shape", root);
    make_model(d, NULL, "encoder.layer.0.intermediate.dense.weight");
    expect_load(d, ET_EFORMAT, "intermediate.dense.weight", "expected [16, 8]");

    snprintf(d, sizeof d, "%s/truncated", root);
    make_model(d, NULL, NULL);
    corrupt(d, 0, NULL, 0, 3000);
    expect_load(d, ET_EFORMAT, "model.safetensors", "out of range");

    snprintf(d, sizeof d, "%s/short", root);
    make_model(d, NULL, NULL);
    corrupt(d, 0, NULL, 0, 5);
    expect_load(d, ET_EFORMAT, "model.safetensors", "too short");

    snprintf(d, sizeof d, "%s/hugeheader", root);
    make_model(d, NULL, NULL);
    uint8_t big[8] = {0, 0, 0, 0, 0, 1, 0, 0};
    corrupt(d, 0, big, 8, -1);
    expect_load(d, ET_EFORMAT, "model.safetensors", "header length");

    snprintf(d, sizeof d, "%s/garbage-header", root);
    make_model(d, NULL, NULL);
    corrupt(d, 8, "@@@@", 4, -1);
    expect_load(d, ET_EFORMAT, "model.safetensors", "JSON");

    /* wrong dtype: an integer tensor where floats are expected */
    snprintf(d, sizeof d, "%s/int-dtype", root);
    make_model(d, NULL, NULL);
    {
        char p[800];
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        char *buf;
        size_t len;
        if (et_read_file(p, 0, &buf, &len, &err) == 0) {
            char *q = strstr(buf + 8, "\"embeddings.LayerNorm.bias\":{\"dtype\":\"F32\"");
            if (q) memcpy(strstr(q, "F32"), "I32", 3);
            et_write_file_atomic(p, buf, len, &err);
            free(buf);
        }
    }
    expect_load(d, ET_EFORMAT, "embeddings.LayerNorm.bias", "dtype I32");

    snprintf(d, sizeof d, "%s/unknown-arch", root);
    make_model(d, NULL, NULL);
    write_text(d, "config.json", "{\"model_type\":\"llama\"}");
    expect_load(d, ET_EUNSUPPORTED, "config.json", "'llama'");

    snprintf(d, sizeof d, "%s/bad-config", root);
    make_model(d, NULL, NULL);
    write_text(d, "config.json", "{\"model_type\": \"bert\", \"vocab_size\": 40,,}");
    expect_load(d, ET_EFORMAT, "config.json", "invalid JSON");

    snprintf(d, sizeof d, "%s/no-config", root);
    make_model(d, NULL, NULL);
    {
        char p[800];
        snprintf(p, sizeof p, "%s/config.json", d);
        unlink(p);
    }
    expect_load(d, ET_ENOTFOUND, "config.json", NULL);

    snprintf(d, sizeof d, "%s/no-weights", root);
    make_model(d, NULL, NULL);
    {
        char p[800];
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        unlink(p);
    }
    expect_load(d, ET_ENOTFOUND, "model.safetensors", NULL);

    snprintf(d, sizeof d, "%s/bad-index", root);
    make_model(d, NULL, NULL);
    {
        char p[800];
        snprintf(p, sizeof p, "%s/model.safetensors", d);
        unlink(p);
        write_text(d, "model.safetensors.index.json", "{\"weight_map\": {\"a\": \"../../etc/passwd\"}}");
    }
    expect_load(d, ET_EFORMAT, "model.safetensors.index.json", "weight_map");

    snprintf(d, sizeof d, "%s/bad-pooling", root);
    make_model(d, NULL, NULL);
    write_text(d, "modules.json", "[{\"type\":\"sentence_transformers.models.Transformer\",\"path\":\"\"},"
                                  "{\"type\":\"sentence_transformers.models.Pooling\",\"path\":\"1_Pooling\"}]");
    expect_load(d, ET_ENOTFOUND, "1_Pooling/config.json", NULL);

    snprintf(d, sizeof d, "%s/bad-stconfig", root);
    make_model(d, NULL, NULL);
    write_text(d, "sentence_bert_config.json", "{\"max_seq_length\": \"long\"}");
    expect_load(d, ET_EFORMAT, "sentence_bert_config.json", "max_seq_length");

    snprintf(d, sizeof d, "%s/bad-prompts", root);
    make_model(d, NULL, NULL);
    write_text(d, "config_sentence_transformers.json", "{\"prompts\": {\"query\": 3}}");
    expect_load(d, ET_EFORMAT, "config_sentence_transformers.json", "prompts.query");

    expect_load("/nonexistent/model", ET_ENOTFOUND, "/nonexistent/model", NULL);
}

int main(void) {
    const char *b = getenv("BUILD");
    snprintf(root, sizeof root, "%s/test-out/model", b ? b : "build");
    et_error err;
    et_mkdir_p(root, &err);
    test_safetensors();
    test_configs();
    test_loader();
    return test_summary("test_model");
}
