/* chunks.c - chunk JSONL files (see chunks.h). */
#include "chunks.h"

#include <stdlib.h>
#include <string.h>

#include "json.h"

void et_chunk_make_id(char out[18], const char *doc, const char *text) {
    uint64_t h = et_hash64(doc, strlen(doc), 0);
    h = et_hash64("\0", 1, h);
    h = et_hash64(text, strlen(text), h);
    snprintf(out, 18, "c%016llx", (unsigned long long)h);
}

int et_chunks_add(et_chunks *cs, const char *id, const char *doc, const char *text, size_t page_start,
                  size_t page_end, size_t n_tokens, et_error *err) {
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 64;
        et_chunk *p = et_realloc_n(cs->items, cap, sizeof(*p), err);
        if (!p) return ET_ENOMEM;
        cs->items = p;
        cs->cap = cap;
    }
    char idbuf[18];
    if (!id) {
        et_chunk_make_id(idbuf, doc, text);
        id = idbuf;
    }
    et_chunk *c = &cs->items[cs->n];
    c->id = et_strdup(id, err);
    c->doc = et_strdup(doc, err);
    c->text = et_strdup(text, err);
    if (!c->id || !c->doc || !c->text) {
        free(c->id);
        free(c->doc);
        free(c->text);
        return ET_ENOMEM;
    }
    c->page_start = page_start;
    c->page_end = page_end;
    c->n_tokens = n_tokens;
    cs->n++;
    return ET_OK;
}

void et_chunks_free(et_chunks *cs) {
    for (size_t i = 0; i < cs->n; i++) {
        free(cs->items[i].id);
        free(cs->items[i].doc);
        free(cs->items[i].text);
    }
    free(cs->items);
    memset(cs, 0, sizeof(*cs));
}

int et_chunks_load(et_chunks *cs, const char *path, et_error *err) {
    memset(cs, 0, sizeof(*cs));
    char *data;
    size_t len;
    int rc = et_read_file(path, (size_t)4 << 30, &data, &len, err);
    if (rc) return rc;
    size_t line = 0;
    for (size_t pos = 0; pos < len && !rc;) {
        char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len;
        line++;
        size_t b = pos;
        while (b < end && (data[b] == ' ' || data[b] == '\t' || data[b] == '\r')) b++;
        if (b < end) {
            char where[600];
            snprintf(where, sizeof(where), "%s:%zu", path, line);
            cJSON *row = NULL;
            rc = et_json_parse(&row, data + b, end - b, where, err);
            const char *id = NULL, *doc = "", *text = NULL;
            size_t ps = 0, pe = 0, nt = 0;
            if (!rc) rc = et_json_req_str(row, where, "text", &text, err);
            if (!rc) rc = et_json_opt_str(row, where, "id", &id, err);
            if (!rc) rc = et_json_opt_str(row, where, "doc", &doc, err);
            if (!rc) rc = et_json_opt_size(row, where, "page_start", &ps, err);
            if (!rc) rc = et_json_opt_size(row, where, "page_end", &pe, err);
            if (!rc) rc = et_json_opt_size(row, where, "n_tokens", &nt, err);
            if (!rc && !*text) rc = et_err_set(err, ET_EFORMAT, "%s: field 'text' is empty", where);
            if (!rc) rc = et_chunks_add(cs, id, doc, text, ps, pe, nt, err);
            cJSON_Delete(row);
        }
        pos = end + 1;
    }
    free(data);
    if (!rc && cs->n == 0) rc = et_err_set(err, ET_EFORMAT, "%s: no chunks", path);
    if (rc) et_chunks_free(cs);
    return rc;
}

int et_chunk_to_json(et_buf *b, const et_chunk *c, et_error *err) {
    int rc = et_buf_puts(b, "{\"id\": ", err);
    if (!rc) rc = et_buf_json_string(b, c->id, strlen(c->id), err);
    if (!rc) rc = et_buf_puts(b, ", \"doc\": ", err);
    if (!rc) rc = et_buf_json_string(b, c->doc, strlen(c->doc), err);
    if (!rc) rc = et_buf_printf(b, err, ", \"page_start\": %zu, \"page_end\": %zu, \"text\": ", c->page_start,
                                c->page_end);
    if (!rc) rc = et_buf_json_string(b, c->text, strlen(c->text), err);
    if (!rc) rc = et_buf_printf(b, err, ", \"n_tokens\": %zu}\n", c->n_tokens);
    return rc;
}

int et_chunks_save(const et_chunks *cs, const char *path, et_error *err) {
    et_buf b = {0};
    int rc = ET_OK;
    for (size_t i = 0; i < cs->n && !rc; i++) rc = et_chunk_to_json(&b, &cs->items[i], err);
    if (!rc) rc = et_write_file_atomic(path, b.data, b.len, err);
    et_buf_free(&b);
    return rc;
}
