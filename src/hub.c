/* hub.c - Hugging Face Hub downloads (libcurl) into the standard HF cache.
 * Layout, protocol and trust rules: see hub.h. */
#include "hub.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

#define HUB_DEFAULT_ENDPOINT "https://huggingface.co"
#define HUB_API_MAX ((size_t)16 << 20) /* revision listing JSON */
#define HUB_ERRBODY_MAX 1024           /* kept from an error reply, for messages */
#define HUB_MAX_FILES 4096             /* files per repo we are willing to plan */

/* ---- names and specs ----------------------------------------------------------------- */

static int name_char(int c) { return isalnum(c) || c == '_' || c == '-' || c == '.'; }

static int valid_repo_part(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char((unsigned char)s[i])) return 0;
    if (s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.') return 0;
    for (size_t i = 0; i + 1 < n; i++)
        if ((s[i] == '-' && s[i + 1] == '-') || (s[i] == '.' && s[i + 1] == '.')) return 0;
    return 1;
}

int et_hub_valid_repo(const char *repo) {
    size_t n = strlen(repo);
    if (n == 0 || n > 96) return 0;
    const char *slash = strchr(repo, '/');
    if (!slash || strchr(slash + 1, '/')) return 0;
    return valid_repo_part(repo, (size_t)(slash - repo)) &&
           valid_repo_part(slash + 1, n - (size_t)(slash - repo) - 1);
}

/* Relative path of non-empty components other than "." and "..". */
static int valid_rel_path(const char *s, size_t max_len, int allow_utf8) {
    size_t n = strlen(s);
    if (n == 0 || n > max_len || s[0] == '/') return 0;
    const char *c = s;
    while (*c) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        for (size_t i = 0; i < len; i++) {
            unsigned char ch = (unsigned char)c[i];
            if (ch < 0x20 || ch == 0x7f || ch == '\\') return 0;
            if (ch >= 0x80 && !allow_utf8) return 0;
            if (ch == ' ' && !allow_utf8) return 0;
        }
        if (!e) break;
        c = e + 1;
    }
    return s[n - 1] != '/';
}

int et_hub_valid_revision(const char *rev) { return valid_rel_path(rev, 255, 0); }
int et_hub_valid_filename(const char *name) { return valid_rel_path(name, 1024, 1); }

int et_hub_is_commit(const char *s) {
    size_t i = 0;
    for (; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return i == 40;
}

static int is_hex_len(const char *s, size_t want) {
    size_t i = 0;
    for (; s[i]; i++)
        if (!isxdigit((unsigned char)s[i])) return 0;
    return i == want;
}

int et_hub_parse_spec(const char *spec, char **repo, char **rev) {
    *repo = *rev = NULL;
    const char *at = strchr(spec, '@');
    size_t rl = at ? (size_t)(at - spec) : strlen(spec);
    char buf[128];
    if (rl == 0 || rl >= sizeof(buf)) return 0;
    memcpy(buf, spec, rl);
    buf[rl] = 0;
    const char *r = at ? at + 1 : "main";
    if (!et_hub_valid_repo(buf) || !et_hub_valid_revision(r)) return 0;
    *repo = strdup(buf);
    *rev = strdup(r);
    if (!*repo || !*rev) {
        free(*repo);
        free(*rev);
        *repo = *rev = NULL;
        return 0;
    }
    return 1;
}

int et_hub_normalize_etag(char *etag) {
    char *s = etag;
    while (*s == ' ' || *s == '\t') s++;
    if (s[0] == 'W' && s[1] == '/') s += 2;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        s++;
        n -= 2;
    }
    memmove(etag, s, n);
    etag[n] = 0;
    if (n == 0 || n > 128 || !strcmp(etag, ".") || !strcmp(etag, "..")) return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_char((unsigned char)etag[i])) return 0;
    return 1;
}

int et_hub_wanted_file(const char *name) {
    static const char *const top[] = {
        "config.json", "config_sentence_transformers.json", "sentence_bert_config.json",
        "modules.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
        "vocab.txt", "vocab.json", "merges.txt", "added_tokens.json", "sentencepiece.bpe.model",
        "spiece.model", "model.safetensors", "model.safetensors.index.json"};
    if (!et_hub_valid_filename(name)) return 0;
    const char *slash = strchr(name, '/');
    if (!slash) {
        for (size_t i = 0; i < ET_ARRAY_LEN(top); i++)
            if (!strcmp(name, top[i])) return 1;
        return 0;
    }
    /* sentence-transformers module folders: "1_Pooling/config.json", "2_Dense/..." */
    if (strchr(slash + 1, '/')) return 0;
    const char *p = name;
    if (!isdigit((unsigned char)*p)) return 0;
    while (isdigit((unsigned char)*p)) p++;
    if (*p != '_' || p + 1 == slash) return 0;
    for (p++; p < slash; p++)
        if (!isalnum((unsigned char)*p) && *p != '_') return 0;
    return et_ends_with(name, ".json") || et_ends_with(name, ".txt") ||
           et_ends_with(name, ".safetensors") || et_ends_with(name, ".model");
}

/* ---- SHA-1 ------------------------------------------------------------------------------ */

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t *b) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 |
               (uint32_t)b[4 * i + 2] << 8 | (uint32_t)b[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (bb & c) | (~bb & d); k = 0x5a827999; }
        else if (i < 40) { f = bb ^ c ^ d; k = 0x6ed9eba1; }
        else if (i < 60) { f = (bb & c) | (bb & d) | (c & d); k = 0x8f1bbcdc; }
        else { f = bb ^ c ^ d; k = 0xca62c1d6; }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(bb, 30);
        bb = a;
        a = t;
    }
    h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e;
}

void et_sha1_init(et_sha1_ctx *c) {
    static const uint32_t iv[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    memcpy(c->h, iv, sizeof(iv));
    c->total = 0;
    c->fill = 0;
}

void et_sha1_update(et_sha1_ctx *c, const void *data, size_t n) {
    const uint8_t *p = data;
    c->total += n;
    if (c->fill) {
        size_t take = ET_MIN(n, 64 - c->fill);
        memcpy(c->block + c->fill, p, take);
        c->fill += take;
        p += take;
        n -= take;
        if (c->fill < 64) return;
        sha1_block(c->h, c->block);
        c->fill = 0;
    }
    for (; n >= 64; p += 64, n -= 64) sha1_block(c->h, p);
    memcpy(c->block, p, n);
    c->fill = n;
}

void et_sha1_final(et_sha1_ctx *c, uint8_t out[20]) {
    uint64_t bits = c->total * 8;
    uint8_t pad = 0x80;
    et_sha1_update(c, &pad, 1);
    uint8_t zero = 0;
    while (c->fill != 56) et_sha1_update(c, &zero, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; i++) len[i] = (uint8_t)(bits >> (56 - 8 * i));
    et_sha1_update(c, len, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

/* ---- environment -------------------------------------------------------------------------- */

static const char *env_nonempty(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int env_true(const char *name) {
    const char *v = getenv(name);
    if (!v) return 0;
    return !strcasecmp(v, "1") || !strcasecmp(v, "on") || !strcasecmp(v, "yes") ||
           !strcasecmp(v, "true");
}

static char *hf_home(et_error *err) {
    const char *h = env_nonempty("HF_HOME");
    if (h) return et_strdup(h, err);
    const char *x = env_nonempty("XDG_CACHE_HOME");
    if (x) return et_path_join(x, "huggingface", err);
    const char *home = env_nonempty("HOME");
    if (!home) {
        et_err_set(err, ET_EINVAL, "cannot locate the Hugging Face cache: set HF_HOME or HOME");
        return NULL;
    }
    et_buf b = {0};
    if (et_buf_printf(&b, err, "%s/.cache/huggingface", home)) return NULL;
    return b.data;
}

char *et_hub_cache_dir(et_error *err) {
    const char *c = env_nonempty("HF_HUB_CACHE");
    if (!c) c = env_nonempty("HUGGINGFACE_HUB_CACHE");
    if (c) return et_strdup(c, err);
    char *home = hf_home(err);
    if (!home) return NULL;
    char *hub = et_path_join(home, "hub", err);
    free(home);
    return hub;
}

/* Token: explicit, $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, else the token file.
 * *out = NULL when there is none. Never printed. */
static int load_token(const char *explicit_token, char **out, et_error *err) {
    *out = NULL;
    char *t = NULL;
    const char *e = explicit_token ? explicit_token : env_nonempty("HF_TOKEN");
    if (!e) e = env_nonempty("HUGGING_FACE_HUB_TOKEN");
    if (e) {
        t = et_strdup(e, err);
        if (!t) return ET_ENOMEM;
    } else {
        char *path = NULL;
        const char *tp = env_nonempty("HF_TOKEN_PATH");
        if (tp) path = et_strdup(tp, err);
        else {
            char *home = hf_home(err);
            if (!home) return err ? err->code : ET_EINVAL;
            path = et_path_join(home, "token", err);
            free(home);
        }
        if (!path) return ET_ENOMEM;
        size_t len;
        if (et_file_exists(path) && et_read_file(path, 4096, &t, &len, NULL) != ET_OK) t = NULL;
        free(path);
        if (!t) return ET_OK;
    }
    /* trim whitespace; refuse control characters (they would corrupt the header) */
    char *s = t;
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) n--;
    memmove(t, s, n);
    t[n] = 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)t[i] < 0x20 || t[i] == 0x7f) {
            free(t);
            return et_err_set(err, ET_EINVAL,
                              "the Hugging Face token contains control characters (check HF_TOKEN "
                              "or the token file)");
        }
    }
    if (n == 0) {
        free(t);
        t = NULL;
    }
    *out = t;
    return ET_OK;
}

/* ---- HTTP ------------------------------------------------------------------------------------ */

typedef struct hub {
    char *endpoint; /* no trailing slash */
    char *cache;
    char *token;
    int quiet;
    int retries;
    long timeout_s;
    char *repo, *rev;
    char *repo_dir; /* cache/models--org--name */
    char *lock_dir; /* cache/.locks/models--org--name */
    CURL *curl;     /* reused: keeps connections alive */
    size_t n_fetched, n_cached;
    uint64_t bytes_fetched;
} hub;

typedef struct hub_resp {
    long status;
    char etag[192], linked_etag[192], commit[64], location[4096], content_range[128];
    char error_code[64], error_message[256];
    long long content_length, linked_size;
    int bad_header; /* a header we need was too long or malformed */
} hub_resp;

static void resp_reset(hub_resp *r) {
    memset(r, 0, sizeof(*r));
    r->content_length = r->linked_size = -1;
}

static void copy_header(char *dst, size_t cap, const char *v, size_t n, int *bad) {
    if (n >= cap) {
        dst[0] = 0;
        *bad = 1;
        return;
    }
    memcpy(dst, v, n);
    dst[n] = 0;
}

static long long parse_ll(const char *v, size_t n) {
    if (n == 0 || n > 19) return -1;
    long long x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud) {
    hub_resp *r = ud;
    size_t len = size * nitems;
    if (len >= 5 && !strncmp(buf, "HTTP/", 5)) { /* a new response (after a redirect) */
        resp_reset(r);
        const char *sp = memchr(buf, ' ', len);
        if (sp && (size_t)(sp - buf) + 4 <= len) r->status = (long)parse_ll(sp + 1, 3);
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon) return len;
    size_t nl = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vn = len - nl - 1;
    while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
    while (vn && (v[vn - 1] == '\r' || v[vn - 1] == '\n' || v[vn - 1] == ' ')) vn--;
#define HDR(name) (nl == sizeof(name) - 1 && !strncasecmp(buf, name, nl))
    if (HDR("etag")) copy_header(r->etag, sizeof(r->etag), v, vn, &r->bad_header);
    else if (HDR("x-linked-etag")) copy_header(r->linked_etag, sizeof(r->linked_etag), v, vn, &r->bad_header);
    else if (HDR("x-repo-commit")) copy_header(r->commit, sizeof(r->commit), v, vn, &r->bad_header);
    else if (HDR("location")) copy_header(r->location, sizeof(r->location), v, vn, &r->bad_header);
    else if (HDR("content-range")) copy_header(r->content_range, sizeof(r->content_range), v, vn, &r->bad_header);
    else if (HDR("x-error-code")) copy_header(r->error_code, sizeof(r->error_code), v, vn, &r->bad_header);
    else if (HDR("x-error-message")) {
        size_t m = ET_MIN(vn, sizeof(r->error_message) - 1); /* a message may be cut */
        memcpy(r->error_message, v, m);
        r->error_message[m] = 0;
    } else if (HDR("content-length")) r->content_length = parse_ll(v, vn);
    else if (HDR("x-linked-size")) r->linked_size = parse_ll(v, vn);
#undef HDR
    return len;
}

/* Printable copy of a server-provided string (hostile: no control characters). */
static void sanitize(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

typedef struct mem_sink {
    et_buf buf;
    size_t max;
    int overflow;
} mem_sink;

static size_t mem_write_cb(char *p, size_t size, size_t n, void *ud) {
    mem_sink *m = ud;
    size_t len = size * n;
    if (m->buf.len + len > m->max) {
        m->overflow = 1;
        return 0;
    }
    if (et_buf_append(&m->buf, p, len, NULL)) return 0;
    return len;
}

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

/* One request on the shared handle. method: "GET" or "HEAD". */
static CURLcode hub_perform(hub *h, const char *method, const char *url, int send_auth, int follow,
                            const char *range, hub_resp *resp, curl_write_callback wcb, void *wud,
                            char errbuf[CURL_ERROR_SIZE]) {
    CURL *c = h->curl;
    curl_easy_reset(c);
    resp_reset(resp);
    errbuf[0] = 0;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Accept-Encoding: identity");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "embtune/" ET_VERSION " (libcurl; hf_hub compatible)");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, h->timeout_s);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, h->timeout_s);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, resp);
    if (!strcmp(method, "HEAD")) curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (wcb) {
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, wcb);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, wud);
    }
    if (range) curl_easy_setopt(c, CURLOPT_RANGE, range);
    if (send_auth && h->token) {
        /* libcurl does not send these credentials to another host after a redirect */
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BEARER);
        curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER, h->token);
    }
    CURLcode cc = curl_easy_perform(c);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (cc == CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
        if (code) resp->status = code;
    }
    return cc;
}

static int curl_transient(CURLcode cc) {
    switch (cc) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

static int status_transient(long st) { return st == 429 || st == 500 || st == 502 || st == 503 || st == 504; }

static void backoff(int attempt) {
    double s = 0.25 * (double)(1 << ET_MIN(attempt, 5)); /* 0.25, 0.5, 1, 2, 4, 8 s */
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static int net_error(hub *h, CURLcode cc, const char *errbuf, const char *what, et_error *err) {
    const char *detail = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(cc);
    if (cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_COULDNT_CONNECT)
        return et_err_set(err, ET_ENET,
                          "%s: cannot reach %s (%s); set HF_HUB_OFFLINE=1 to use the cache only, "
                          "or HF_ENDPOINT for a mirror",
                          what, h->endpoint, detail);
    return et_err_set(err, ET_ENET, "%s: %s", what, detail);
}

/* Maps an HTTP error reply to a message that says what to do. */
static int http_error(hub *h, hub_resp *r, const char *file, et_error *err) {
    sanitize(r->error_code);
    sanitize(r->error_message);
    char why[320] = "";
    if (r->error_message[0]) snprintf(why, sizeof(why), " (hub says: %s)", r->error_message);
    const char *tok = h->token ? "the token sent (HF_TOKEN) has no access to it"
                               : "HF_TOKEN is not set";
    long st = r->status;
    if (!strcmp(r->error_code, "GatedRepo"))
        return et_err_set(err, ET_ENET,
                          "%s is a gated repository (HTTP %ld): accept its conditions at %s/%s "
                          "and set HF_TOKEN to a token of that account; %s%s",
                          h->repo, st, h->endpoint, h->repo, tok, why);
    if (!strcmp(r->error_code, "RevisionNotFound"))
        return et_err_set(err, ET_ENET, "%s: revision '%s' not found (HTTP %ld)%s", h->repo,
                          h->rev, st, why);
    if (!strcmp(r->error_code, "EntryNotFound"))
        return et_err_set(err, ET_ENET, "%s@%s: file '%s' not found (HTTP %ld)%s", h->repo, h->rev,
                          file ? file : "?", st, why);
    if (!strcmp(r->error_code, "RepoNotFound") || st == 401)
        return et_err_set(err, ET_ENET,
                          "repository %s not found at %s (HTTP %ld): check the id; if it is "
                          "private or gated, %s%s",
                          h->repo, h->endpoint, st, tok, why);
    if (st == 403)
        return et_err_set(err, ET_ENET, "%s: access denied (HTTP 403); %s%s", h->repo, tok, why);
    if (st == 404)
        return et_err_set(err, ET_ENET, "%s@%s: %s not found (HTTP 404)%s", h->repo, h->rev,
                          file ? file : "revision", why);
    if (st == 429)
        return et_err_set(err, ET_ENET, "%s: rate limited by the hub (HTTP 429); try again later%s",
                          h->repo, why);
    return et_err_set(err, ET_ENET, "%s@%s: %s: HTTP %ld%s", h->repo, h->rev,
                      file ? file : "revision info", st, why);
}

/* ---- revision listing ------------------------------------------------------------------------ */

typedef et_hub_listing hub_listing;

void et_hub_listing_free(et_hub_listing *l) {
    for (size_t i = 0; i < l->n; i++) free(l->files[i]);
    free(l->files);
    free(l->other_weights);
    memset(l, 0, sizeof(*l));
}

static int listing_add(hub_listing *l, const char *name, et_error *err) {
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->files[i], name)) return ET_OK;
    if (l->n >= HUB_MAX_FILES) return et_err_set(err, ET_EFORMAT, "too many files in the repository listing");
    char **nf = et_realloc_n(l->files, l->n + 1, sizeof(char *), err);
    if (!nf) return ET_ENOMEM;
    l->files = nf;
    if (!(l->files[l->n] = et_strdup(name, err))) return ET_ENOMEM;
    l->n++;
    return ET_OK;
}

static char *escape_path(CURL *c, const char *path, et_error *err) {
    /* percent-encode each component, keep the slashes */
    et_buf b = {0};
    const char *p = path;
    for (;;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char *esc = curl_easy_escape(c, p, (int)n);
        if (!esc || et_buf_puts(&b, esc, err)) {
            curl_free(esc);
            et_buf_free(&b);
            if (!esc) et_err_set(err, ET_ENOMEM, "out of memory");
            return NULL;
        }
        curl_free(esc);
        if (!e) break;
        if (et_buf_puts(&b, "/", err)) {
            et_buf_free(&b);
            return NULL;
        }
        p = e + 1;
    }
    return b.data;
}

int et_hub_parse_listing(et_hub_listing *l, const char *body, size_t len, const char *what, et_error *err) {
    memset(l, 0, sizeof(*l));
    cJSON *j = NULL;
    int rc = et_json_parse(&j, body, len, what, err);
    if (rc) return rc;
    const char *sha = NULL;
    const cJSON *sib = NULL;
    if ((rc = et_json_req_str(j, what, "sha", &sha, err)) ||
        (rc = et_json_req_arr(j, what, "siblings", &sib, err))) {
        cJSON_Delete(j);
        return rc;
    }
    if (!et_hub_is_commit(sha)) {
        cJSON_Delete(j);
        return et_err_set(err, ET_EFORMAT, "%s: field 'sha': expected a 40-hex commit id", what);
    }
    memcpy(l->commit, sha, 41);
    const cJSON *it;
    cJSON_ArrayForEach(it, sib) {
        const cJSON *fn = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, "rfilename") : NULL;
        if (!cJSON_IsString(fn)) {
            rc = et_err_set(err, ET_EFORMAT, "%s: field 'siblings[].rfilename': expected a string, got %s",
                            what, et_json_type_name(fn));
            break;
        }
        const char *name = fn->valuestring;
        if (!et_hub_valid_filename(name)) continue; /* never becomes a path */
        if (!strcmp(name, "model.safetensors") || !strcmp(name, "model.safetensors.index.json"))
            l->has_weights = 1;
        if (!l->other_weights && (!strcmp(name, "pytorch_model.bin") || !strcmp(name, "model.onnx") ||
                                  !strcmp(name, "onnx/model.onnx") || et_ends_with(name, ".gguf")))
            l->other_weights = et_strdup(name, NULL);
        if (et_hub_wanted_file(name) && (rc = listing_add(l, name, err))) break;
    }
    cJSON_Delete(j);
    if (rc) et_hub_listing_free(l);
    return rc;
}

static int fetch_listing(hub *h, hub_listing *l, et_error *err) {
    memset(l, 0, sizeof(*l));
    char *rev = curl_easy_escape(h->curl, h->rev, 0);
    et_buf url = {0};
    int rc = et_buf_printf(&url, err, "%s/api/models/%s/revision/%s", h->endpoint, h->repo,
                           rev ? rev : "");
    curl_free(rev);
    if (rc) return rc;
    hub_resp r;
    mem_sink body = {.max = HUB_API_MAX};
    char eb[CURL_ERROR_SIZE];
    CURLcode cc = CURLE_OK;
    for (int attempt = 0;; attempt++) {
        body.buf.len = 0;
        body.overflow = 0;
        cc = hub_perform(h, "GET", url.data, 1, 1, NULL, &r, mem_write_cb, &body, eb);
        int transient = cc != CURLE_OK ? curl_transient(cc) : status_transient(r.status);
        if (!transient || attempt >= h->retries) break;
        backoff(attempt);
    }
    char what[200];
    snprintf(what, sizeof(what), "%s@%s: listing the revision", h->repo, h->rev);
    if (cc != CURLE_OK) {
        rc = body.overflow ? et_err_set(err, ET_EFORMAT, "%s: reply larger than %zu bytes", what, HUB_API_MAX)
                           : net_error(h, cc, eb, what, err);
        goto done;
    }
    if (r.status != 200) {
        rc = http_error(h, &r, NULL, err);
        goto done;
    }
    rc = et_hub_parse_listing(l, body.buf.data ? body.buf.data : "", body.buf.len, what, err);
done:
    et_buf_free(&url);
    et_buf_free(&body.buf);
    return rc;
}

/* ---- one blob ---------------------------------------------------------------------------------- */

enum { HASH_NONE = 0, HASH_SHA256, HASH_GIT_SHA1 };

typedef struct blob_writer {
    int fd;
    uint64_t have;   /* bytes in the .incomplete file */
    long long expect; /* -1 = unknown */
    int hash_kind;
    et_sha256_ctx sha256;
    et_sha1_ctx sha1;
    hub_resp *resp;
    int started;     /* the current response's first body byte was seen */
    int failed;      /* protocol or disk error inside the callback */
    char why[256];
    mem_sink errbody; /* body of an error reply */
    et_progress prog;
    uint64_t session_start;
} blob_writer;

static void writer_hash_reset(blob_writer *w) {
    et_sha256_init(&w->sha256);
    et_sha1_init(&w->sha1);
    if (w->hash_kind == HASH_GIT_SHA1) {
        char hdr[40];
        int n = snprintf(hdr, sizeof(hdr), "blob %lld", w->expect);
        et_sha1_update(&w->sha1, hdr, (size_t)n + 1); /* includes the NUL */
    }
}

static void writer_hash(blob_writer *w, const void *p, size_t n) {
    if (w->hash_kind == HASH_SHA256) et_sha256_update(&w->sha256, p, n);
    else if (w->hash_kind == HASH_GIT_SHA1) et_sha1_update(&w->sha1, p, n);
}

static int writer_restart(blob_writer *w) {
    if (ftruncate(w->fd, 0) || lseek(w->fd, 0, SEEK_SET) < 0) return -1;
    w->have = 0;
    writer_hash_reset(w);
    return 0;
}

/* Hashes the bytes already in the partial file. */
static int writer_hash_existing(blob_writer *w) {
    if (lseek(w->fd, 0, SEEK_SET) < 0) return -1;
    enum { CHUNK = 1 << 16 };
    uint8_t *buf = malloc(CHUNK);
    if (!buf) return -1;
    uint64_t left = w->have;
    while (left) {
        ssize_t r = read(w->fd, buf, (size_t)ET_MIN(left, (uint64_t)CHUNK));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(buf);
            return -1;
        }
        writer_hash(w, buf, (size_t)r);
        left -= (uint64_t)r;
    }
    free(buf);
    return lseek(w->fd, (off_t)w->have, SEEK_SET) < 0 ? -1 : 0;
}

static size_t blob_write_cb(char *p, size_t size, size_t nitems, void *ud) {
    blob_writer *w = ud;
    size_t len = size * nitems;
    long st = w->resp->status;
    if (st >= 300 && st < 400) return len; /* body of a redirect */
    if (st != 200 && st != 206) { /* an error reply: keep its start for the message */
        size_t keep = ET_MIN(len, w->errbody.max - ET_MIN(w->errbody.max, w->errbody.buf.len));
        if (keep) et_buf_append(&w->errbody.buf, p, keep, NULL);
        return len;
    }
    if (!w->started) {
        w->started = 1;
        if (st == 200 && w->have > 0 && writer_restart(w)) {
            snprintf(w->why, sizeof(w->why), "cannot truncate the partial file: %s", strerror(errno));
            w->failed = 2;
            return 0;
        }
        if (st == 206) {
            long long s = -1, e = -1, t = -1;
            if (sscanf(w->resp->content_range, "bytes %lld-%lld/%lld", &s, &e, &t) < 2 ||
                s != (long long)w->have || (t >= 0 && w->expect >= 0 && t != w->expect)) {
                snprintf(w->why, sizeof(w->why),
                         "server answered the resume request with range '%.60s' (wanted bytes %llu-)",
                         w->resp->content_range, (unsigned long long)w->have);
                w->failed = 1;
                return 0;
            }
        }
    }
    if (w->expect >= 0 && w->have + len > (uint64_t)w->expect) {
        snprintf(w->why, sizeof(w->why), "server sent more than the %lld bytes announced", w->expect);
        w->failed = 1;
        return 0;
    }
    const char *q = p;
    size_t left = len;
    while (left) {
        ssize_t wr = write(w->fd, q, left);
        if (wr < 0 && errno == EINTR) continue;
        if (wr <= 0) {
            snprintf(w->why, sizeof(w->why), "write error: %s", strerror(errno));
            w->failed = 2;
            return 0;
        }
        q += wr;
        left -= (size_t)wr;
    }
    writer_hash(w, p, len);
    w->have += len;
    et_progress_update(&w->prog, (size_t)((w->have - ET_MIN(w->have, w->session_start)) >> 10), NULL);
    return len;
}

static char *path_fmt(et_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *path_fmt(et_error *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        et_err_set(err, ET_ENOMEM, "out of memory");
        return NULL;
    }
    return s;
}

static int mkdir_parent(const char *path, et_error *err) {
    char *d = et_strdup(path, err);
    if (!d) return ET_ENOMEM;
    char *slash = strrchr(d, '/');
    int rc = ET_OK;
    if (slash && slash != d) {
        *slash = 0;
        rc = et_mkdir_p(d, err);
    }
    free(d);
    return rc;
}

/* Downloads url into blobs/<etag> (via <etag>.incomplete), verifying size and hash. */
static int download_blob(hub *h, const char *file, const char *url, int send_auth, const char *etag,
                         long long expect, const char *blob, et_error *err) {
    char *part = path_fmt(err, "%s.incomplete", blob);
    if (!part) return ET_ENOMEM;
    int rc = ET_OK;
    blob_writer w = {.fd = -1, .expect = expect};
    w.errbody.max = HUB_ERRBODY_MAX;
    if (is_hex_len(etag, 64)) w.hash_kind = HASH_SHA256;
    else if (is_hex_len(etag, 40) && expect >= 0) w.hash_kind = HASH_GIT_SHA1;
    w.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    struct stat stt;
    if (w.fd < 0 || fstat(w.fd, &stt)) {
        rc = et_err_set(err, ET_EIO, "%s: cannot open: %s", part, strerror(errno));
        goto out;
    }
    w.have = (uint64_t)stt.st_size;
    writer_hash_reset(&w);
    if (expect >= 0 && w.have > (uint64_t)expect) {
        if (writer_restart(&w)) goto ioerr;
    } else if (w.have > 0 && writer_hash_existing(&w)) {
        goto ioerr;
    }
    uint64_t resumed_from = w.have;
    int fresh_retry_done = 0;
    if (!h->quiet && resumed_from > 0)
        fprintf(stderr, "embtune: resuming %s at %.1f MB\n", file, (double)resumed_from / 1e6);
    hub_resp r;
    w.resp = &r;
    char label[160];
    snprintf(label, sizeof(label), "%s", file);
    et_progress_init(&w.prog, label, "KiB/s", expect > 0 ? (size_t)(((uint64_t)expect - w.have) >> 10) : 0);
    w.session_start = w.have;
    char eb[CURL_ERROR_SIZE];
    for (int attempt = 0;; attempt++) {
        if (!(expect >= 0 && w.have == (uint64_t)expect)) {
            char range[48];
            snprintf(range, sizeof(range), "%llu-", (unsigned long long)w.have);
            w.started = 0;
            w.failed = 0;
            w.errbody.buf.len = 0;
            CURLcode cc = hub_perform(h, "GET", url, send_auth, 1, w.have ? range : NULL, &r,
                                      blob_write_cb, &w, eb);
            int transient = 0;
            if (w.failed == 2) {
                rc = et_err_set(err, ET_EIO, "%s: %s", part, w.why);
                goto out;
            } else if (w.failed == 1) {
                /* protocol trouble (bad Content-Range, too many bytes): start over */
                if (writer_restart(&w)) goto ioerr;
                transient = 1;
                snprintf(eb, sizeof(eb), "%s", w.why);
            } else if (cc != CURLE_OK) {
                if (!curl_transient(cc)) {
                    rc = net_error(h, cc, eb, file, err);
                    goto out;
                }
                transient = 1;
            } else if (r.status == 416 && w.have > 0) {
                if (expect >= 0 && w.have == (uint64_t)expect) goto complete;
                if (writer_restart(&w)) goto ioerr;
                transient = 1;
                snprintf(eb, sizeof(eb), "HTTP 416 on resume");
            } else if (r.status == 200 || r.status == 206) {
                if (expect < 0 || w.have == (uint64_t)expect) goto complete;
                transient = 1; /* the body ended early without a transport error */
                snprintf(eb, sizeof(eb), "body ended at %llu of %lld bytes",
                         (unsigned long long)w.have, expect);
            } else if (status_transient(r.status)) {
                transient = 1;
                snprintf(eb, sizeof(eb), "HTTP %ld", r.status);
            } else {
                rc = http_error(h, &r, file, err);
                goto out;
            }
            if (transient && attempt >= h->retries) {
                rc = et_err_set(err, ET_ENET,
                                "%s: download interrupted after %d attempt%s (%s); %llu bytes are "
                                "kept in %s and the next run resumes from there",
                                file, attempt + 1, attempt ? "s" : "", eb, (unsigned long long)w.have, part);
                goto out;
            }
            if (!h->quiet)
                fprintf(stderr, "embtune: %s: %s; retrying from byte %llu\n", file, eb,
                        (unsigned long long)w.have);
            backoff(attempt);
            continue;
        }
    complete:
        if (w.hash_kind != HASH_NONE) {
            uint8_t d[32];
            char hex[65];
            if (w.hash_kind == HASH_SHA256) {
                et_sha256_final(&w.sha256, d);
                et_hex(hex, d, 32);
            } else {
                et_sha1_final(&w.sha1, d);
                et_hex(hex, d, 20);
            }
            if (strcasecmp(hex, etag) != 0) {
                if (resumed_from > 0 && !fresh_retry_done) {
                    /* the old partial file may be the culprit: one clean try */
                    fresh_retry_done = 1;
                    resumed_from = 0;
                    if (writer_restart(&w)) goto ioerr;
                    if (!h->quiet)
                        fprintf(stderr, "embtune: %s: checksum mismatch after resuming; downloading "
                                        "again from the start\n", file);
                    continue;
                }
                close(w.fd);
                w.fd = -1;
                unlink(part);
                rc = et_err_set(err, ET_EFORMAT,
                                "%s: checksum mismatch: the hub's ETag says %s %s but the %llu bytes "
                                "received hash to %s; the download was discarded",
                                file, w.hash_kind == HASH_SHA256 ? "sha256" : "git blob sha1", etag,
                                (unsigned long long)w.have, hex);
                goto out;
            }
        }
        break;
    }
    et_progress_done(&w.prog, (size_t)((w.have - ET_MIN(w.have, w.session_start)) >> 10));
    if (fsync(w.fd)) goto ioerr;
    close(w.fd);
    w.fd = -1;
    if (rename(part, blob)) {
        rc = et_err_set(err, ET_EIO, "%s: cannot rename to %s: %s", part, blob, strerror(errno));
        goto out;
    }
    h->n_fetched++;
    h->bytes_fetched += w.have - w.session_start;
    goto out;
ioerr:
    rc = et_err_set(err, ET_EIO, "%s: %s", part, strerror(errno));
out:
    if (w.fd >= 0) close(w.fd);
    et_buf_free(&w.errbody.buf);
    free(part);
    return rc;
}

/* ---- one file ------------------------------------------------------------------------------------ */

/* Same scheme://host[:port] as the endpoint? (then the token may go there) */
static int same_origin(const char *a, const char *b) {
    CURLU *ua = curl_url(), *ub = curl_url();
    int same = 0;
    if (ua && ub && !curl_url_set(ua, CURLUPART_URL, a, 0) && !curl_url_set(ub, CURLUPART_URL, b, 0)) {
        char *sa = NULL, *sb = NULL, *ha = NULL, *hb = NULL, *pa = NULL, *pb = NULL;
        curl_url_get(ua, CURLUPART_SCHEME, &sa, 0);
        curl_url_get(ub, CURLUPART_SCHEME, &sb, 0);
        curl_url_get(ua, CURLUPART_HOST, &ha, 0);
        curl_url_get(ub, CURLUPART_HOST, &hb, 0);
        curl_url_get(ua, CURLUPART_PORT, &pa, CURLU_DEFAULT_PORT);
        curl_url_get(ub, CURLUPART_PORT, &pb, CURLU_DEFAULT_PORT);
        same = sa && sb && ha && hb && pa && pb && !strcasecmp(sa, sb) && !strcasecmp(ha, hb) &&
               !strcmp(pa, pb);
        curl_free(sa); curl_free(sb); curl_free(ha); curl_free(hb); curl_free(pa); curl_free(pb);
    }
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

/* Resolves a possibly relative Location against base; malloc'd. */
static char *resolve_url(const char *base, const char *loc, et_error *err) {
    CURLU *u = curl_url();
    char *out = NULL;
    if (u && !curl_url_set(u, CURLUPART_URL, base, 0) && !curl_url_set(u, CURLUPART_URL, loc, 0)) {
        char *s = NULL;
        if (!curl_url_get(u, CURLUPART_URL, &s, 0)) {
            out = et_strdup(s, err);
            curl_free(s);
        }
    }
    curl_url_cleanup(u);
    if (!out) et_err_set(err, ET_EFORMAT, "the hub sent an unusable redirect location");
    return out;
}

typedef struct planned {
    char *file;
    char etag[129]; /* "" = already in the snapshot */
} planned;

static int lock_blob(hub *h, const char *etag, int *fd_out, et_error *err) {
    int rc = et_mkdir_p(h->lock_dir, err);
    if (rc) return rc;
    char *lp = path_fmt(err, "%s/%s.lock", h->lock_dir, etag);
    if (!lp) return ET_ENOMEM;
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = et_err_set(err, ET_EIO, "%s: cannot open lock file: %s", lp, strerror(errno));
        free(lp);
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        if (!h->quiet) fprintf(stderr, "embtune: waiting for another download of %s (lock %s)\n", etag, lp);
        while (flock(fd, LOCK_EX) && errno == EINTR) {}
    }
    free(lp);
    *fd_out = fd;
    return ET_OK;
}

static int fetch_file(hub *h, const char *commit, const char *file, planned *pl, et_error *err) {
    int rc = ET_OK;
    char *esc = NULL, *url = NULL, *get_url = NULL, *blob = NULL;
    char *ptr = path_fmt(err, "%s/snapshots/%s/%s", h->repo_dir, commit, file);
    if (!ptr) return ET_ENOMEM;
    pl->etag[0] = 0;
    struct stat st;
    if (!stat(ptr, &st) && S_ISREG(st.st_mode)) { /* already there (follows the symlink) */
        h->n_cached++;
        goto out;
    }
    if (!(esc = escape_path(h->curl, file, err))) { rc = ET_ENOMEM; goto out; }
    if (!(url = path_fmt(err, "%s/%s/resolve/%s/%s", h->endpoint, h->repo, commit, esc))) {
        rc = ET_ENOMEM;
        goto out;
    }
    /* HEAD without following redirects: the hub's own reply carries the etag;
     * relative redirects (renamed repos) are followed by hand */
    hub_resp r;
    char eb[CURL_ERROR_SIZE];
    char *head_url = et_strdup(url, err);
    if (!head_url) { rc = ET_ENOMEM; goto out; }
    for (int hops = 0, attempt = 0;;) {
        CURLcode cc = hub_perform(h, "HEAD", head_url, 1, 0, NULL, &r, NULL, NULL, eb);
        if (cc != CURLE_OK || status_transient(r.status)) {
            if ((cc == CURLE_OK || curl_transient(cc)) && attempt < h->retries) {
                backoff(attempt++);
                continue;
            }
            rc = cc != CURLE_OK ? net_error(h, cc, eb, file, err) : http_error(h, &r, file, err);
            break;
        }
        if (r.status >= 300 && r.status < 400 && r.location[0] && r.location[0] == '/' &&
            r.location[1] != '/' && ++hops <= 5) {
            char *next = resolve_url(head_url, r.location, err);
            if (!next) { rc = ET_EFORMAT; break; }
            free(head_url);
            head_url = next;
            continue;
        }
        break;
    }
    if (rc) { free(head_url); goto out; }
    if (r.status >= 400 || r.status < 200) {
        free(head_url);
        rc = http_error(h, &r, file, err);
        goto out;
    }
    if (r.bad_header) {
        free(head_url);
        rc = et_err_set(err, ET_EFORMAT, "%s: the hub sent an over-long header", file);
        goto out;
    }
    char etag[192];
    snprintf(etag, sizeof(etag), "%s", r.linked_etag[0] ? r.linked_etag : r.etag);
    if (!etag[0]) {
        free(head_url);
        rc = et_err_set(err, ET_EFORMAT, "%s: the hub sent no ETag, so the file cannot be verified or cached", file);
        goto out;
    }
    if (!et_hub_normalize_etag(etag)) {
        free(head_url);
        sanitize(etag);
        rc = et_err_set(err, ET_EFORMAT, "%s: unusable ETag '%.80s'", file, etag);
        goto out;
    }
    if (r.commit[0] && strcmp(r.commit, commit) != 0) {
        free(head_url);
        sanitize(r.commit);
        rc = et_err_set(err, ET_EFORMAT, "%s: the hub answered for commit '%.64s', asked for %s", file,
                        r.commit, commit);
        goto out;
    }
    long long expect = r.linked_size >= 0 ? r.linked_size : (r.status == 200 ? r.content_length : -1);
    if (r.status >= 300 && r.location[0]) {
        get_url = resolve_url(head_url, r.location, err);
    } else {
        get_url = et_strdup(head_url, err);
    }
    free(head_url);
    if (!get_url) { rc = err ? err->code : ET_ENOMEM; goto out; }
    snprintf(pl->etag, sizeof(pl->etag), "%s", etag);
    if (!(blob = path_fmt(err, "%s/blobs/%s", h->repo_dir, etag))) { rc = ET_ENOMEM; goto out; }
    if (!stat(blob, &st) && S_ISREG(st.st_mode) && (expect < 0 || st.st_size == expect)) {
        h->n_cached++;
        goto out;
    }
    if ((rc = mkdir_parent(blob, err))) goto out;
    int lfd = -1;
    if ((rc = lock_blob(h, etag, &lfd, err))) goto out;
    if (!stat(blob, &st) && S_ISREG(st.st_mode) && (expect < 0 || st.st_size == expect)) {
        h->n_cached++; /* another process fetched it while we waited */
    } else {
        int send_auth = same_origin(get_url, h->endpoint);
        rc = download_blob(h, file, get_url, send_auth, etag, expect, blob, err);
    }
    close(lfd);
out:
    free(ptr);
    free(esc);
    free(url);
    free(get_url);
    free(blob);
    return rc;
}

/* snapshots/<commit>/<file> -> ../../blobs/<etag> (one more ../ per subfolder) */
static int link_snapshot(hub *h, const char *commit, const planned *pl, et_error *err) {
    if (!pl->etag[0]) return ET_OK;
    char *ptr = path_fmt(err, "%s/snapshots/%s/%s", h->repo_dir, commit, pl->file);
    if (!ptr) return ET_ENOMEM;
    et_buf target = {0};
    int rc = et_buf_puts(&target, "../../", err);
    for (const char *c = pl->file; !rc && *c; c++)
        if (*c == '/') rc = et_buf_puts(&target, "../", err);
    if (!rc) rc = et_buf_printf(&target, err, "blobs/%s", pl->etag);
    if (!rc) rc = mkdir_parent(ptr, err);
    if (!rc) {
        char cur[1024];
        ssize_t n = readlink(ptr, cur, sizeof(cur) - 1);
        if (n >= 0) cur[n] = 0;
        if (n < 0 || strcmp(cur, target.data) != 0) {
            char *tmp = path_fmt(err, "%s.tmp.%ld", ptr, (long)getpid());
            if (!tmp) rc = ET_ENOMEM;
            else {
                unlink(tmp);
                if (symlink(target.data, tmp) || rename(tmp, ptr)) {
                    rc = et_err_set(err, ET_EIO, "%s: cannot create the snapshot link: %s", ptr,
                                    strerror(errno));
                    unlink(tmp);
                }
                free(tmp);
            }
        }
    }
    et_buf_free(&target);
    free(ptr);
    return rc;
}

/* Shard names from model.safetensors.index.json ("weight_map" values). */
static int add_shards(hub *h, const char *index_path, hub_listing *l, et_error *err) {
    cJSON *j = NULL;
    int rc = et_json_load(&j, index_path, err);
    if (rc) return rc;
    rc = et_hub_listing_add_shards(l, j, h->repo, err);
    cJSON_Delete(j);
    return rc;
}

int et_hub_listing_add_shards(et_hub_listing *l, const cJSON *j, const char *repo, et_error *err) {
    const cJSON *wm = NULL;
    int rc = et_json_req_obj(j, "model.safetensors.index.json", "weight_map", &wm, err);
    if (rc) return rc;
    const cJSON *it;
    cJSON_ArrayForEach(it, wm) {
        if (!cJSON_IsString(it) || !et_hub_valid_filename(it->valuestring) ||
            !et_ends_with(it->valuestring, ".safetensors") || strchr(it->valuestring, '/')) {
            rc = et_err_set(err, ET_EFORMAT,
                            "%s: model.safetensors.index.json: field 'weight_map': expected "
                            "shard file names ending in .safetensors", repo);
            break;
        }
        if ((rc = listing_add(l, it->valuestring, err))) break;
    }
    return rc;
}

/* ---- snapshot completeness (cache-only resolution) ------------------------------------------------ */

static int snap_has(const char *snap, const char *file) {
    char *p = path_fmt(NULL, "%s/%s", snap, file);
    if (!p) return 0;
    struct stat st;
    int ok = !stat(p, &st) && S_ISREG(st.st_mode);
    free(p);
    return ok;
}

/* What a model directory needs; *missing names the first thing absent. */
static int snapshot_complete(const char *snap, const char **missing, char *what, size_t what_cap) {
    *missing = NULL;
    if (!snap_has(snap, "config.json")) return *missing = "config.json", 0;
    if (!snap_has(snap, "tokenizer.json") && !snap_has(snap, "vocab.txt") &&
        !snap_has(snap, "sentencepiece.bpe.model") && !snap_has(snap, "vocab.json"))
        return *missing = "tokenizer.json (or vocab.txt)", 0;
    if (!snap_has(snap, "model.safetensors")) {
        if (!snap_has(snap, "model.safetensors.index.json")) return *missing = "model.safetensors", 0;
        char *ip = path_fmt(NULL, "%s/model.safetensors.index.json", snap);
        cJSON *j = NULL;
        int ok = ip && !et_json_load(&j, ip, NULL);
        free(ip);
        const cJSON *wm = ok ? cJSON_GetObjectItemCaseSensitive(j, "weight_map") : NULL, *it;
        if (!cJSON_IsObject(wm)) ok = 0;
        if (ok)
            cJSON_ArrayForEach(it, wm) {
                if (!cJSON_IsString(it) || !et_hub_valid_filename(it->valuestring) ||
                    !snap_has(snap, it->valuestring)) {
                    snprintf(what, what_cap, "weight shard %.100s",
                             cJSON_IsString(it) ? it->valuestring : "?");
                    *missing = what;
                    ok = 0;
                    break;
                }
            }
        cJSON_Delete(j);
        if (!ok) return *missing ? 0 : (*missing = "model.safetensors.index.json (readable)", 0);
    }
    if (snap_has(snap, "modules.json")) {
        char *mp = path_fmt(NULL, "%s/modules.json", snap);
        cJSON *j = NULL;
        int ok = mp && !et_json_load(&j, mp, NULL);
        free(mp);
        const cJSON *it;
        if (ok && cJSON_IsArray(j))
            cJSON_ArrayForEach(it, j) {
                const cJSON *ty = cJSON_GetObjectItemCaseSensitive(it, "type");
                const cJSON *pa = cJSON_GetObjectItemCaseSensitive(it, "path");
                if (!cJSON_IsString(ty) || !cJSON_IsString(pa) || !pa->valuestring[0] ||
                    !strcmp(pa->valuestring, ".") || !et_hub_valid_filename(pa->valuestring))
                    continue;
                if (et_ends_with(ty->valuestring, "Pooling") || et_ends_with(ty->valuestring, "Dense")) {
                    snprintf(what, what_cap, "%.120s/config.json", pa->valuestring);
                    if (!snap_has(snap, what)) {
                        *missing = what;
                        ok = 0;
                        break;
                    }
                }
            }
        cJSON_Delete(j);
        if (!ok && *missing) return 0;
    }
    return 1;
}

/* ---- entry points --------------------------------------------------------------------------------- */

static void hub_free(hub *h) {
    if (h->curl) curl_easy_cleanup(h->curl);
    free(h->endpoint);
    free(h->cache);
    free(h->token);
    free(h->repo);
    free(h->rev);
    free(h->repo_dir);
    free(h->lock_dir);
    memset(h, 0, sizeof(*h));
}

static int hub_open(hub *h, const char *spec, const et_hub_opts *o, int need_net, et_error *err) {
    memset(h, 0, sizeof(*h));
    if (!et_hub_parse_spec(spec, &h->repo, &h->rev))
        return et_err_set(err, ET_EINVAL,
                          "'%s' is not a Hugging Face Hub model id (expected org/name or "
                          "org/name@revision)", spec);
    h->quiet = o && o->quiet;
    h->cache = o && o->cache_dir ? et_strdup(o->cache_dir, err) : et_hub_cache_dir(err);
    if (!h->cache) return err ? err->code : ET_ENOMEM;
    char dir[256];
    snprintf(dir, sizeof(dir), "models--%s", h->repo);
    for (char *c = dir; *c; c++)
        if (*c == '/') { /* "org/name" -> "org--name" */
            memmove(c + 2, c + 1, strlen(c + 1) + 1);
            c[0] = c[1] = '-';
            break;
        }
    h->repo_dir = et_path_join(h->cache, dir, err);
    h->lock_dir = path_fmt(err, "%s/.locks/%s", h->cache, dir);
    if (!h->repo_dir || !h->lock_dir) return ET_ENOMEM;
    if (!need_net) return ET_OK;
    const char *ep = o && o->endpoint ? o->endpoint : env_nonempty("HF_ENDPOINT");
    h->endpoint = et_strdup(ep ? ep : HUB_DEFAULT_ENDPOINT, err);
    if (!h->endpoint) return ET_ENOMEM;
    size_t n = strlen(h->endpoint);
    while (n && h->endpoint[n - 1] == '/') h->endpoint[--n] = 0;
    if (strncmp(h->endpoint, "https://", 8) && strncmp(h->endpoint, "http://", 7))
        return et_err_set(err, ET_EINVAL, "HF_ENDPOINT '%s': expected an http:// or https:// URL",
                          h->endpoint);
    int rc = load_token(o ? o->token : NULL, &h->token, err);
    if (rc) return rc;
    h->retries = 5;
    long v;
    const char *e = env_nonempty("ET_HUB_RETRIES");
    if (e && !et_parse_long(e, 0, 100, &v)) h->retries = (int)v;
    h->timeout_s = 30;
    e = env_nonempty("HF_HUB_DOWNLOAD_TIMEOUT");
    double t;
    if (e && !et_parse_double(e, &t) && t >= 1 && t < 86400) h->timeout_s = (long)t;
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, curl_init_once);
    if (!(h->curl = curl_easy_init())) return et_err_set(err, ET_ENOMEM, "curl_easy_init failed");
    return ET_OK;
}

/* The commit a revision names in the cache (refs/<rev>), or the revision itself if it is a commit. */
static int cached_commit(hub *h, char commit[41]) {
    if (et_hub_is_commit(h->rev)) {
        memcpy(commit, h->rev, 41);
        return 1;
    }
    char *ref = path_fmt(NULL, "%s/refs/%s", h->repo_dir, h->rev);
    char *data = NULL;
    size_t len = 0;
    int ok = ref && et_file_exists(ref) && !et_read_file(ref, 256, &data, &len, NULL);
    free(ref);
    if (ok) {
        while (len && isspace((unsigned char)data[len - 1])) data[--len] = 0;
        ok = et_hub_is_commit(data);
        if (ok) memcpy(commit, data, 41);
    }
    free(data);
    return ok;
}

static int offline_lookup(hub *h, char **snapshot_dir, et_error *err) {
    char commit[41];
    if (!cached_commit(h, commit))
        return et_err_set(err, ET_ENOTFOUND,
                          "%s@%s is not in the Hugging Face cache (%s) and offline mode is on "
                          "(HF_HUB_OFFLINE): download it first with `embtune download %s@%s` "
                          "while online",
                          h->repo, h->rev, h->repo_dir, h->repo, h->rev);
    char *snap = path_fmt(err, "%s/snapshots/%s", h->repo_dir, commit);
    if (!snap) return ET_ENOMEM;
    const char *missing = NULL;
    char what[160];
    if (!et_is_dir(snap) || !snapshot_complete(snap, &missing, what, sizeof(what))) {
        int rc = et_err_set(err, ET_ENOTFOUND,
                            "%s@%s: the cached snapshot %s is incomplete (missing %s) and offline "
                            "mode is on (HF_HUB_OFFLINE): run `embtune download %s@%s` while online",
                            h->repo, h->rev, snap, missing ? missing : "the snapshot", h->repo, h->rev);
        free(snap);
        return rc;
    }
    *snapshot_dir = snap;
    return ET_OK;
}

static const char *human_bytes(char *buf, size_t n, uint64_t b) {
    if (b >= 1000000000ull) snprintf(buf, n, "%.2f GB", (double)b / 1e9);
    else if (b >= 1000000ull) snprintf(buf, n, "%.1f MB", (double)b / 1e6);
    else snprintf(buf, n, "%.1f kB", (double)b / 1e3);
    return buf;
}

static int hub_download(hub *h, char **snapshot_dir, et_error *err) {
    hub_listing l;
    int rc = fetch_listing(h, &l, err);
    if (rc) return rc;
    planned *pl = NULL;
    size_t npl = 0;
    char *snap = NULL;
    if (!l.has_weights) {
        if (l.other_weights)
            rc = et_err_set(err, ET_EUNSUPPORTED,
                            "%s@%s has no model.safetensors (it has %s): embtune reads safetensors "
                            "weights only", h->repo, h->rev, l.other_weights);
        else
            rc = et_err_set(err, ET_EUNSUPPORTED,
                            "%s@%s has no model.safetensors: embtune reads safetensors weights only",
                            h->repo, h->rev);
        goto out;
    }
    if (!h->quiet)
        fprintf(stderr, "embtune: %s@%s -> commit %s (%zu model files)\n", h->repo, h->rev, l.commit, l.n);
    /* phase 1: every blob, in listing order; shards once the index is in */
    for (size_t i = 0; i < l.n; i++) {
        planned *np = et_realloc_n(pl, npl + 1, sizeof(*pl), err);
        if (!np) { rc = ET_ENOMEM; goto out; }
        pl = np;
        memset(&pl[npl], 0, sizeof(*pl));
        if (!(pl[npl].file = et_strdup(l.files[i], err))) { rc = ET_ENOMEM; goto out; }
        npl++;
        if ((rc = fetch_file(h, l.commit, l.files[i], &pl[npl - 1], err))) goto out;
        if (!strcmp(l.files[i], "model.safetensors.index.json")) {
            char *ip = pl[npl - 1].etag[0]
                           ? path_fmt(err, "%s/blobs/%s", h->repo_dir, pl[npl - 1].etag)
                           : path_fmt(err, "%s/snapshots/%s/%s", h->repo_dir, l.commit, l.files[i]);
            if (!ip) { rc = ET_ENOMEM; goto out; }
            rc = add_shards(h, ip, &l, err);
            free(ip);
            if (rc) goto out;
        }
    }
    /* phase 2: the snapshot links, then the ref: the snapshot appears only complete */
    for (size_t i = 0; i < npl; i++)
        if ((rc = link_snapshot(h, l.commit, &pl[i], err))) goto out;
    if (!(snap = path_fmt(err, "%s/snapshots/%s", h->repo_dir, l.commit))) { rc = ET_ENOMEM; goto out; }
    if ((rc = et_mkdir_p(snap, err))) goto out;
    if (strcmp(h->rev, l.commit) != 0) {
        char *ref = path_fmt(err, "%s/refs/%s", h->repo_dir, h->rev);
        if (!ref) { rc = ET_ENOMEM; goto out; }
        rc = mkdir_parent(ref, err);
        if (!rc) rc = et_write_file_atomic(ref, l.commit, 40, err);
        free(ref);
        if (rc) goto out;
    }
    if (!h->quiet) {
        char hb[32];
        fprintf(stderr, "embtune: %s@%s: %zu files fetched (%s), %zu already cached -> %s\n", h->repo,
                h->rev, h->n_fetched, human_bytes(hb, sizeof(hb), h->bytes_fetched), h->n_cached, snap);
    }
    *snapshot_dir = snap;
    snap = NULL;
out:
    for (size_t i = 0; i < npl; i++) free(pl[i].file);
    free(pl);
    free(snap);
    et_hub_listing_free(&l);
    return rc;
}

int et_hub_download(const char *spec, const et_hub_opts *opts, char **snapshot_dir, et_error *err) {
    *snapshot_dir = NULL;
    int offline = (opts && opts->offline) || env_true("HF_HUB_OFFLINE");
    hub h;
    int rc = hub_open(&h, spec, opts, !offline, err);
    if (!rc) {
        if (offline) rc = offline_lookup(&h, snapshot_dir, err);
        else {
            char commit[41];
            const char *missing = NULL;
            char what[160];
            char *snap = NULL;
            if (!(opts && opts->refresh) && cached_commit(&h, commit) &&
                (snap = path_fmt(NULL, "%s/snapshots/%s", h.repo_dir, commit)) &&
                snapshot_complete(snap, &missing, what, sizeof(what))) {
                *snapshot_dir = snap; /* complete in the cache: no network */
            } else {
                free(snap);
                rc = hub_download(&h, snapshot_dir, err);
            }
        }
    }
    hub_free(&h);
    return rc;
}

int et_resolve_model(const char *spec, char **dir, et_error *err) {
    *dir = NULL;
    if (!spec || !*spec) return et_err_set(err, ET_EINVAL, "no model given (-m DIR or -m org/name)");
    if (et_is_dir(spec)) {
        *dir = et_strdup(spec, err);
        return *dir ? ET_OK : ET_ENOMEM;
    }
    char *repo = NULL, *rev = NULL;
    int hub_id = et_hub_parse_spec(spec, &repo, &rev);
    free(repo);
    free(rev);
    if (!hub_id || spec[0] == '.' || spec[0] == '/')
        return et_err_set(err, ET_ENOTFOUND,
                          "model '%s' not found: no such directory, and not a Hugging Face Hub id "
                          "(org/name[@revision])", spec);
    return et_hub_download(spec, NULL, dir, err);
}
