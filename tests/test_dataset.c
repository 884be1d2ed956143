/* test_dataset.c - the four dataset formats: load, save, round trip, bad input. */
#include <unistd.h>

#include "chunks.h"
#include "dataset.h"
#include "test_util.h"

static char dir[512];

static const char *path_of(const char *name) {
    static char p[4][768];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof(p[k]), "%s/%s", dir, name);
    return p[k];
}

static void put_file(const char *name, const char *text) {
    FILE *f = fopen(path_of(name), "wb");
    fputs(text, f);
    fclose(f);
}

/* Same queries (in order), same relevant texts, same negatives. */
static int same(const et_dataset *a, const et_dataset *b) {
    if (a->n_queries != b->n_queries) return 0;
    for (size_t i = 0; i < a->n_queries; i++) {
        if (strcmp(a->queries[i], b->queries[i])) return 0;
        size_t na = a->rel_off[i + 1] - a->rel_off[i], nb = b->rel_off[i + 1] - b->rel_off[i];
        if (na != nb) return 0;
        for (size_t r = 0; r < na; r++)
            if (strcmp(a->docs[a->rel[a->rel_off[i] + r]], b->docs[b->rel[b->rel_off[i] + r]])) return 0;
        na = a->neg_off[i + 1] - a->neg_off[i];
        nb = b->neg_off[i + 1] - b->neg_off[i];
        if (na != nb) return 0;
        for (size_t r = 0; r < na; r++)
            if (strcmp(a->docs[a->neg[a->neg_off[i] + r]], b->docs[b->neg[b->neg_off[i] + r]])) return 0;
    }
    return 1;
}

static void expect_error(const char *name, int format, const char *needle) {
    et_error err = {0};
    et_dataset *ds = NULL;
    int rc = et_dataset_load(&ds, path_of(name), format, NULL, &err);
    TEST_CHECK(rc != 0 && ds == NULL, "%s: expected an error", name);
    TEST_CHECK(strstr(err.msg, needle) != NULL, "%s: message '%s' lacks '%s'", name, err.msg, needle);
    et_dataset_free(ds);
}

int main(void) {
    snprintf(dir, sizeof(dir), "%s/test-out/dataset", getenv("BUILD") ? getenv("BUILD") : "build");
    et_error err = {0};
    TEST_CHECK(et_mkdir_p(dir, &err) == 0, "mkdir %s", err.msg);

    put_file("llama.json",
          "{\"queries\": {\"q1\": \"what is R?\", \"q2\": \"how to read CSV \\\"files\\\"?\"},\n"
          " \"corpus\": {\"n1\": \"R is a language.\", \"n2\": \"Use read.csv().\\nIt reads files.\", \"n3\": \"Unused.\"},\n"
          " \"relevant_docs\": {\"q1\": [\"n1\"], \"q2\": [\"n2\", \"n1\"]}, \"mode\": \"text\"}");
    et_dataset *ds = NULL;
    int rc = et_dataset_load(&ds, path_of("llama.json"), ET_DS_AUTO, NULL, &err);
    TEST_CHECK(rc == 0, "load llama: %s", err.msg);
    if (rc) return test_summary("test_dataset");
    TEST_CHECK(ds->n_queries == 2 && ds->n_docs == 3, "counts %zu %zu", ds->n_queries, ds->n_docs);
    TEST_CHECK(!strcmp(ds->qids[1], "q2") && ds->rel_off[2] - ds->rel_off[1] == 2, "q2 has 2 relevant");
    TEST_CHECK(!strcmp(ds->docs[ds->rel[ds->rel_off[1] + 1]], "R is a language."), "q2 second relevant is n1");

    /* round trips through every format */
    static const struct { const char *name; int format; } fmts[] = {
        {"rt.json", ET_DS_LLAMA}, {"rt-flag.jsonl", ET_DS_FLAG}, {"rt-beir", ET_DS_BEIR}};
    for (size_t i = 0; i < 3; i++) {
        TEST_CHECK(et_dataset_save(ds, path_of(fmts[i].name), fmts[i].format, &err) == 0, "save %s: %s",
                   fmts[i].name, err.msg);
        et_dataset *back = NULL;
        rc = et_dataset_load(&back, path_of(fmts[i].name), ET_DS_AUTO, NULL, &err);
        TEST_CHECK(rc == 0, "reload %s: %s", fmts[i].name, err.msg);
        if (!rc) TEST_CHECK(same(ds, back), "%s round trip differs", fmts[i].name);
        et_dataset_free(back);
    }
    /* pairs: one row per positive, so q2 becomes two single-positive queries */
    TEST_CHECK(et_dataset_save(ds, path_of("rt-pairs.jsonl"), ET_DS_PAIRS, &err) == 0, "save pairs");
    et_dataset *pairs = NULL;
    TEST_CHECK(et_dataset_load(&pairs, path_of("rt-pairs.jsonl"), ET_DS_AUTO, NULL, &err) == 0, "load pairs: %s", err.msg);
    if (pairs) {
        TEST_CHECK(pairs->n_queries == 3 && pairs->n_docs == 2, "pairs counts %zu %zu", pairs->n_queries, pairs->n_docs);
        et_dataset_free(pairs);
    }
    et_dataset_free(ds);

    /* triplets and arrays: negatives kept, identical passages deduplicated */
    put_file("trip.jsonl",
          "{\"anchor\": \"a1\", \"positive\": \"p1\", \"negative\": \"n1\"}\n"
          "\n"
          "[\"a2\", \"p1\", \"n2\", \"n3\"]\n"
          "{\"anchor\": \"\", \"positive\": \"p9\"}\n");
    rc = et_dataset_load(&ds, path_of("trip.jsonl"), ET_DS_AUTO, NULL, &err);
    TEST_CHECK(rc == 0, "load triplets: %s", err.msg);
    if (!rc) {
        TEST_CHECK(ds->n_queries == 2, "2 queries, got %zu", ds->n_queries);
        TEST_CHECK(ds->n_skipped == 1, "1 skipped row, got %zu", ds->n_skipped);
        TEST_CHECK(ds->rel[0] == ds->rel[1], "p1 is one corpus entry");
        TEST_CHECK(ds->neg_off[2] - ds->neg_off[1] == 2, "a2 has 2 negatives");
        TEST_CHECK(et_dataset_save(ds, path_of("trip-rt.jsonl"), ET_DS_PAIRS, &err) == 0, "save triplets");
        et_dataset_free(ds);
    }

    put_file("flag.jsonl", "{\"query\": \"q\", \"pos\": [\"p\"], \"neg\": [\"n\"]}\n{\"query\": \"q2\", \"pos\": \"oops\"}\n");
    expect_error("flag.jsonl", ET_DS_AUTO, "flag.jsonl:2: field 'pos': expected an array");
    put_file("bad.jsonl", "{\"anchor\": \"a\", \"positive\": \"p\"}\n{\"anchor\": \"a\", \n");
    expect_error("bad.jsonl", ET_DS_PAIRS, "bad.jsonl: line 2: invalid JSON");
    put_file("missing.json", "{\"queries\": {\"q1\": \"x\"}, \"corpus\": {\"n1\": \"y\"}, \"relevant_docs\": {\"q1\": [\"n7\"]}}");
    expect_error("missing.json", ET_DS_AUTO, "relevant doc 'n7' is not in the corpus");
    put_file("empty.json", "{\"queries\": {}, \"corpus\": {}, \"relevant_docs\": {}}");
    expect_error("empty.json", ET_DS_AUTO, "no usable queries");
    put_file("nocorpus.json", "{\"queries\": {}, \"relevant_docs\": {}}");
    expect_error("nocorpus.json", ET_DS_AUTO, "missing field 'corpus'");
    put_file("empty.jsonl", "");
    expect_error("empty.jsonl", ET_DS_AUTO, "no usable queries");
    expect_error("does-not-exist.json", ET_DS_AUTO, "does-not-exist.json");

    /* BEIR with a bad qrels line */
    et_mkdir_p(path_of("beir-bad/qrels"), &err);
    put_file("beir-bad/corpus.jsonl", "{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"x\"}\n");
    put_file("beir-bad/queries.jsonl", "{\"_id\": \"q1\", \"text\": \"y\"}\n");
    put_file("beir-bad/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td2\t1\n");
    expect_error("beir-bad", ET_DS_AUTO, "test.tsv:2: corpus id 'd2' is not in corpus.jsonl");

    /* chunk files: save/load round trip, stable ids, errors with line numbers */
    et_chunks cs = {0}, back = {0};
    TEST_CHECK(et_chunks_add(&cs, NULL, "a.pdf", "first \"chunk\"\n", 1, 2, 5, &err) == 0, "add");
    TEST_CHECK(et_chunks_add(&cs, NULL, "b.pdf", "second", 0, 0, 1, &err) == 0, "add");
    char id2[18];
    et_chunk_make_id(id2, "a.pdf", "first \"chunk\"\n");
    TEST_CHECK(!strcmp(cs.items[0].id, id2), "id is a function of doc and text");
    et_chunk_make_id(id2, "b.pdf", "first \"chunk\"\n");
    TEST_CHECK(strcmp(cs.items[0].id, id2) != 0, "id depends on doc");
    TEST_CHECK(et_chunks_save(&cs, path_of("chunks.jsonl"), &err) == 0, "save chunks");
    TEST_CHECK(et_chunks_load(&back, path_of("chunks.jsonl"), &err) == 0, "load chunks: %s", err.msg);
    TEST_CHECK(back.n == 2 && !strcmp(back.items[0].text, cs.items[0].text) && back.items[0].page_end == 2 &&
                   back.items[0].n_tokens == 5 && !strcmp(back.items[1].doc, "b.pdf"), "chunk round trip");
    et_chunks_free(&cs);
    et_chunks_free(&back);
    put_file("chunks-bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": 3}\n");
    TEST_CHECK(et_chunks_load(&back, path_of("chunks-bad.jsonl"), &err) == ET_EFORMAT &&
                   strstr(err.msg, "chunks-bad.jsonl:2: field 'text': expected a string, got number"),
               "bad chunk line: %s", err.msg);
    return test_summary("test_dataset");
}
