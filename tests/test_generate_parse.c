/* test_generate_parse.c - reply parsing over a table of realistic LLM replies,
 * reply-body extraction (OpenAI, llama.cpp, vLLM, Ollama shapes), key scrubbing,
 * endpoint URLs, and the embedded generator's basic contract. */
#include "generate_local.h"
#include "generate_parse.h"
#include "llm_client.h"
#include "test_util.h"

typedef struct reply_case {
    const char *name;
    const char *reply;
    size_t want;
    int truncated;
    const char *expect[6]; /* NULL-terminated */
} reply_case;

static const char *CTX =
    "R is an integrated suite of software facilities for data manipulation, calculation and graphical display. "
    "The function read.table() reads a file in table format and creates a data frame from it. "
    "A factor is a vector object used to specify a discrete classification of the components of other vectors.";

static const reply_case cases[] = {
    {"plain lines", "What does read.table() create?\nWhat is a factor used for?", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"numbered with preamble", "Here are two questions:\n\n1. What does read.table() create?\n2. What is a factor used for?", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"parenthesis numbering and trailing commentary",
     "1) What does read.table() create?\n2) What is a factor used for?\n\nThese questions test understanding of data input.", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"markdown bold labels",
     "Sure! Here are 2 questions based on the context:\n\n**Question 1:** What does read.table() create?\n\n**Question 2:** What is a factor used for?\n\nLet me know if you need more!", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"label on its own line", "**Question 1:**\nWhat does read.table() create?\n\n**Question 2:**\nWhat is a factor used for?", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"Q labels with answers", "Q1: What does read.table() create?\nA1: A data frame.\nQ2: What is a factor used for?\nA2: Classification.", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"bullets of several kinds", "- What does read.table() create?\n* What is a factor used for?\n\xe2\x80\xa2 Which facilities does R integrate?", 3, 0,
     {"What does read.table() create?", "What is a factor used for?", "Which facilities does R integrate?", NULL}},
    {"quotes and emphasis", "1. \"What does read.table() create?\"\n2. *What is a factor used for?*\n3. \xe2\x80\x9cWhich facilities does R integrate?\xe2\x80\x9d", 3, 0,
     {"What does read.table() create?", "What is a factor used for?", "Which facilities does R integrate?", NULL}},
    {"too many: first N kept", "1. What does read.table() create?\n2. What is a factor used for?\n3. Which facilities does R integrate?", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"duplicates normalized", "1. What does read.table() create?\n2. what does READ.TABLE() create ?\n3. What is a factor used for?", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"reasoning block", "<think>\nThe user wants questions. Should I ask about factors? Yes.\n</think>\n\n1. What does read.table() create?\n2. What is a factor used for?", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"unopened think close", "Okay, what should I ask? Maybe about factors?\n</think>\nWhat does read.table() create?\nWhat is a factor used for?", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"unclosed think (cut off)", "What does read.table() create?\n<think>What else could I ask about?", 2, 0,
     {"What does read.table() create?", NULL}},
    {"two questions on one line", "1. What does read.table() create? 2. What is a factor used for?", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"preamble on the same line", "Sure! Here they are: What does read.table() create?\nWhat is a factor used for?", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"interrogative without question mark", "1. What does read.table() create\n2. How is a factor used.", 2, 0,
     {"What does read.table() create?", "How is a factor used?", NULL}},
    {"verbatim copy of the context dropped",
     "1. The function read.table() reads a file in table format and creates a data frame from it?\n2. What is a factor used for?", 2, 0,
     {"What is a factor used for?", NULL}},
    {"JSON array", "[\"What does read.table() create?\", \"What is a factor used for?\"]", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"JSON object in a code fence", "```json\n{\"questions\": [\"What does read.table() create?\", \"What is a factor used for?\"]}\n```", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"markdown heading and code fence lines", "### Questions\n```\nWhat does read.table() create?\nWhat is a factor used for?\n```", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"meta questions dropped", "What does read.table() create?\nWould you like me to generate more questions?\nWhat is a factor used for?", 3, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"truncated last line dropped", "1. What does read.table() create?\n2. What is a factor", 2, 1,
     {"What does read.table() create?", NULL}},
    {"commentary after the question mark", "1. What does read.table() create? (tests recall of data input)\n2. What is a factor used for? - classification", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"fullwidth question mark", "R\xe3\x81\xaf\xe4\xbd\x95\xe3\x81\xa7\xe3\x81\x99\xe3\x81\x8b \xe3\x83\x87\xe3\x83\xbc\xe3\x82\xbf \xe5\x88\x86\xe6\x9e\x90\xef\xbc\x9f", 1, 0,
     {"R\xe3\x81\xaf\xe4\xbd\x95\xe3\x81\xa7\xe3\x81\x99\xe3\x81\x8b \xe3\x83\x87\xe3\x83\xbc\xe3\x82\xbf \xe5\x88\x86\xe6\x9e\x90\xef\xbc\x9f", NULL}},
    {"empty", "", 2, 0, {NULL}},
    {"no questions at all", "I'm sorry, but I cannot generate questions from this context.", 2, 0, {NULL}},
    {"CRLF and numbering with colon", "1: What does read.table() create?\r\n2: What is a factor used for?\r\n", 2, 0,
     {"What does read.table() create?", "What is a factor used for?", NULL}},
    {"invalid UTF-8 and control bytes repaired", "1. What is \xff\xfe data\x01" "frame?", 1, 0,
     {"What is \xef\xbf\xbd\xef\xbf\xbd data frame?", NULL}},
    {"decimal is not numbering", "1.5 is what value in the example?", 1, 0, {"1.5 is what value in the example?", NULL}},
};

static void test_replies(void) {
    for (size_t c = 0; c < ET_ARRAY_LEN(cases); c++) {
        const reply_case *rc = &cases[c];
        et_strlist out = {0};
        et_error err = {0};
        int r = et_gen_parse_questions(rc->reply, strlen(rc->reply), CTX, NULL, rc->want, rc->truncated, &out, &err);
        TEST_CHECK(r == 0, "%s: status %d %s", rc->name, r, err.msg);
        size_t ne = 0;
        while (rc->expect[ne]) ne++;
        TEST_CHECK(out.n == ne, "%s: %zu questions, expected %zu", rc->name, out.n, ne);
        for (size_t k = 0; k < out.n && k < ne; k++)
            TEST_CHECK(!strcmp(out.v[k], rc->expect[k]), "%s: question %zu = '%s', expected '%s'", rc->name, k,
                       out.v[k], rc->expect[k]);
        if (out.n != ne)
            for (size_t k = 0; k < out.n; k++) fprintf(stderr, "    got [%zu] '%s'\n", k, out.v[k]);
        et_strlist_free(&out);
    }
}

static void test_have(void) {
    /* a follow-up reply repeating a kept question: only the new one counts */
    et_strlist have = {0};
    et_error err = {0};
    et_strlist_push(&have, "What does read.table() create?", 30, &err);
    const char *reply = "1. What does read.table() create?\n2. What is a factor used for?";
    TEST_CHECK(et_gen_parse_questions(reply, strlen(reply), CTX, &have, 1, 0, &have, &err) == 0, "%s", err.msg);
    TEST_CHECK(have.n == 2 && !strcmp(have.v[1], "What is a factor used for?"), "follow-up kept %zu", have.n);
    et_strlist_free(&have);
}

static void test_reply_text(void) {
    struct {
        const char *name, *body, *text;
        int ok, trunc;
    } t[] = {
        {"openai", "{\"id\":\"x\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Q?\"},"
                   "\"finish_reason\":\"stop\"}],\"usage\":{\"total_tokens\":3}}", "Q?", 1, 0},
        {"no usage (llama.cpp)", "{\"choices\":[{\"message\":{\"content\":\"A?\\nB?\"}}]}", "A?\nB?", 1, 0},
        {"reasoning_content beside content (vLLM, llama.cpp)",
         "{\"choices\":[{\"message\":{\"content\":\"A?\",\"reasoning_content\":\"hmm?\"}}]}", "A?", 1, 0},
        {"ollama reasoning field", "{\"choices\":[{\"message\":{\"content\":\"A?\",\"reasoning\":\"hmm\"}}]}", "A?", 1, 0},
        {"content parts", "{\"choices\":[{\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"A?\"},"
                          "{\"type\":\"text\",\"text\":\"B?\"}]}}]}", "A?\nB?", 1, 0},
        {"completions style", "{\"choices\":[{\"text\":\"A?\",\"finish_reason\":\"length\"}]}", "A?", 1, 1},
        {"only reasoning", "{\"choices\":[{\"message\":{\"content\":null,\"reasoning_content\":\"thinking\"},"
                           "\"finish_reason\":\"length\"}]}", NULL, 0, 0},
        {"error object", "{\"error\":{\"message\":\"model not found\",\"type\":\"invalid_request_error\"}}", NULL, 0, 0},
        {"html", "<html><body>502 Bad Gateway</body></html>", NULL, 0, 0},
        {"truncated", "{\"choices\":[{\"message\":{\"content\":\"A", NULL, 0, 0},
        {"empty choices", "{\"choices\":[]}", NULL, 0, 0},
        {"refusal", "{\"choices\":[{\"message\":{\"content\":null,\"refusal\":\"no\"}}]}", NULL, 0, 0},
    };
    for (size_t i = 0; i < ET_ARRAY_LEN(t); i++) {
        char *text = NULL;
        int trunc = 0;
        et_error err = {0};
        int r = et_gen_reply_text(t[i].body, strlen(t[i].body), &text, &trunc, &err);
        TEST_CHECK((r == 0) == t[i].ok, "%s: status %d (%s)", t[i].name, r, err.msg);
        if (t[i].ok && text) {
            TEST_CHECK(!strcmp(text, t[i].text), "%s: text '%s'", t[i].name, text);
            TEST_CHECK(trunc == t[i].trunc, "%s: truncated %d", t[i].name, trunc);
        }
        if (!t[i].ok) TEST_CHECK(err.msg[0] != 0, "%s: no message", t[i].name);
        free(text);
    }
}

static void test_scrub_and_urls(void) {
    char s[64] = "key sk-ABC and sk-ABC again";
    et_llm_scrub(s, sizeof(s), "sk-ABC");
    TEST_CHECK(!strcmp(s, "key [REDACTED] and [REDACTED] again"), "scrub: '%s'", s);
    char small[16] = "xx sk-ABC yy";
    et_llm_scrub(small, sizeof(small), "sk-ABC");
    TEST_CHECK(!strstr(small, "sk-ABC") && strlen(small) < sizeof(small), "scrub small: '%s'", small);
    char edge[8] = "sk-ABC";
    et_llm_scrub(edge, sizeof(edge), "sk-ABC");
    TEST_CHECK(!strstr(edge, "sk-ABC"), "scrub edge: '%s'", edge);
    struct { const char *base, *want; } u[] = {
        {"http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/chat/completions"},
        {"http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1/chat/completions"},
        {"http://localhost:11434/v1", "http://localhost:11434/v1/chat/completions"},
        {"https://api.openai.com/v1/", "https://api.openai.com/v1/chat/completions"},
        {"http://h/v1/chat/completions", "http://h/v1/chat/completions"},
    };
    for (size_t i = 0; i < ET_ARRAY_LEN(u); i++) {
        char *e = et_llm_endpoint(u[i].base, "/chat/completions", NULL);
        TEST_CHECK(e && !strcmp(e, u[i].want), "endpoint(%s) = %s", u[i].base, e ? e : "(null)");
        free(e);
    }
}

static void test_local(void) {
    et_chunks cs = {0};
    et_error err = {0};
    et_chunks_add(&cs, NULL, "a.pdf", CTX, 1, 1, 0, &err);
    et_chunks_add(&cs, NULL, "a.pdf",
                  "Lists are ordered collections of objects. The components of a list are numbered and may be "
                  "referred to by name. The function lapply applies a function over the components of a list "
                  "and returns a list of the same length.",
                  2, 2, 0, &err);
    et_chunks_add(&cs, NULL, "b.pdf", "> x <- c(1, 2, 3)\n> y <- x * 2\n", 1, 1, 0, &err);
    et_genlocal *g = NULL;
    TEST_CHECK(et_genlocal_new(&g, &cs, 7, &err) == 0, "%s", err.msg);
    for (size_t i = 0; g && i < cs.n; i++) {
        et_strlist a = {0}, b = {0};
        TEST_CHECK(et_genlocal_questions(g, i, 3, &a, &err) == 0, "%s", err.msg);
        TEST_CHECK(et_genlocal_questions(g, i, 3, &b, &err) == 0, "%s", err.msg);
        TEST_CHECK(a.n == b.n, "chunk %zu: not deterministic", i);
        for (size_t k = 0; k < a.n && k < b.n; k++) TEST_CHECK(!strcmp(a.v[k], b.v[k]), "chunk %zu: not deterministic", i);
        if (i < 2) TEST_CHECK(a.n == 3, "chunk %zu: %zu questions", i, a.n);
        for (size_t k = 0; k < a.n; k++) {
            size_t n = strlen(a.v[k]);
            TEST_CHECK(n > 8 && a.v[k][n - 1] == '?', "chunk %zu: not a question: '%s'", i, a.v[k]);
            /* questions are not verbatim copies, and they pass our own parser's checks */
            et_strlist p = {0};
            et_gen_parse_questions(a.v[k], n, cs.items[i].text, NULL, 1, 0, &p, &err);
            TEST_CHECK(p.n == 1, "chunk %zu: parser rejects '%s'", i, a.v[k]);
            et_strlist_free(&p);
            printf("chunk %zu: %s\n", i, a.v[k]);
        }
        et_strlist_free(&a);
        et_strlist_free(&b);
    }
    et_genlocal_free(g);
    et_chunks_free(&cs);
}

int main(void) {
    test_replies();
    test_have();
    test_reply_text();
    test_scrub_and_urls();
    test_local();
    return test_summary("test_generate_parse");
}
