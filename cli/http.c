/* http.c — mococtl's libcurl client: requests, streams, and failures turned into messages that
 * say what went wrong and how to fix it, with the exit codes of cli.h.
 */
#include "cli/http.h"

#include "cli/cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Error bodies are short JSON; anything longer is not worth keeping whole. */
#define ERROR_BODY_MAX (64u << 10)

int http_open(Http *h, const char *base, const char *token)
{
    memset(h, 0, sizeof *h);
    CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (rc != CURLE_OK) {
        cli_error("cannot initialise libcurl: %s", curl_easy_strerror(rc));
        return -1;
    }
    h->curl = curl_easy_init();
    if (!h->curl) {
        cli_error("cannot initialise libcurl (curl_easy_init failed; out of memory?)");
        return -1;
    }
    /* "host:port" alone is a common shorthand for the server; give it a scheme. */
    const char *scheme = strstr(base, "://") ? "" : "http://";
    size_t n = strlen(scheme) + strlen(base) + 1;
    h->base = xmalloc(n);
    snprintf(h->base, n, "%s%s", scheme, base);
    for (size_t len = strlen(h->base); len > 0 && h->base[len - 1] == '/'; len--)
        h->base[len - 1] = '\0';
    if (token && *token) {
        for (const char *p = token; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                cli_error("the token holds a control character (a line break?); give just the "
                          "token, the first line of mocod's token file");
                return -1;
            }
        n = strlen(token) + 32;
        h->auth_header = xmalloc(n);
        snprintf(h->auth_header, n, "Authorization: Bearer %s", token);
    }
    return 0;
}

void http_close(Http *h)
{
    if (h->curl) curl_easy_cleanup(h->curl);
    free(h->base);
    free(h->auth_header);
    memset(h, 0, sizeof *h);
    curl_global_cleanup();
}

void http_response_free(HttpResponse *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

char *http_escape(Http *h, const char *text)
{
    char *s = curl_easy_escape(h->curl, text, 0);
    if (!s) die("out of memory escaping a URL part");
    return s;
}

/* ---- callbacks ------------------------------------------------------------------------------ */

typedef struct {
    Http *h;
    HttpResponse *r;
    HttpSink sink;       /* NULL: collect everything into r->body */
    void *user;
    size_t cap;
} Transfer;

static void append_body(Transfer *t, const char *data, size_t n)
{
    HttpResponse *r = t->r;
    if (r->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < r->len + n + 1) cap *= 2;
        r->body = xrealloc(r->body, cap);
        t->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    Transfer *t = userp;
    size_t n = size * nmemb;
    long status = 0;
    if (curl_easy_getinfo(t->h->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) status = 0;
    if (t->sink && status >= 200 && status < 300) {
        if (t->sink(data, n, t->user) != 0) {
            t->r->aborted = 1;
            return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
        }
        return n;
    }
    if (!t->sink || t->r->len + n <= ERROR_BODY_MAX) append_body(t, data, n);
    return n;
}

/* Parses "Name: value" header lines we care about; a new status line starts over. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    Transfer *t = userp;
    size_t n = size * nmemb;
    char line[256];
    size_t m = n < sizeof line - 1 ? n : sizeof line - 1;
    memcpy(line, data, m);
    line[m] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) {
        t->r->log_size = -1;
        t->r->content_length = -1;
    } else if (strncasecmp(line, "X-Log-Size:", 11) == 0) {
        t->r->log_size = strtoll(line + 11, NULL, 10);
    } else if (strncasecmp(line, "Content-Length:", 15) == 0) {
        t->r->content_length = strtoll(line + 15, NULL, 10);
    }
    return n;
}

/* ---- requests ------------------------------------------------------------------------------- */

#define SETOPT(h, opt, val)                                                                   \
    do {                                                                                      \
        CURLcode c_ = curl_easy_setopt((h)->curl, opt, val);                                  \
        if (c_ != CURLE_OK) die("libcurl: cannot set " #opt ": %s", curl_easy_strerror(c_));  \
    } while (0)

static int perform(Http *h, const char *method, const char *path, const char *content_type,
                   const char *body, size_t body_len, const char *extra_header, long timeout_s,
                   HttpSink sink, void *user, HttpResponse *r)
{
    memset(r, 0, sizeof *r);
    r->log_size = -1;
    r->content_length = -1;
    Transfer t = {h, r, sink, user, 0};
    size_t url_len = strlen(h->base) + strlen(path) + 1;
    char *url = xmalloc(url_len);
    snprintf(url, url_len, "%s%s", h->base, path);

    struct curl_slist *headers = NULL, *tmp;
#define ADD_HEADER(text)                                                     \
    do {                                                                     \
        tmp = curl_slist_append(headers, text);                              \
        if (!tmp) die("out of memory building the request headers");        \
        headers = tmp;                                                       \
    } while (0)
    ADD_HEADER("Expect:"); /* no 100-continue round trip before a request body */
    ADD_HEADER("Accept: application/json, text/plain, */*");
    if (h->auth_header) ADD_HEADER(h->auth_header);
    char ctype[160];
    if (content_type) {
        snprintf(ctype, sizeof ctype, "Content-Type: %s", content_type);
        ADD_HEADER(ctype);
    }
    if (extra_header) ADD_HEADER(extra_header);
#undef ADD_HEADER

    curl_easy_reset(h->curl); /* keeps the connection cache */
    SETOPT(h, CURLOPT_URL, url);
    SETOPT(h, CURLOPT_HTTPHEADER, headers);
    SETOPT(h, CURLOPT_USERAGENT, "mococtl/1");
    SETOPT(h, CURLOPT_NOSIGNAL, 1L);
    SETOPT(h, CURLOPT_CONNECTTIMEOUT, 10L);
    SETOPT(h, CURLOPT_TIMEOUT, timeout_s);
    SETOPT(h, CURLOPT_ERRORBUFFER, r->curl_error);
    SETOPT(h, CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(h, CURLOPT_WRITEDATA, &t);
    SETOPT(h, CURLOPT_HEADERFUNCTION, on_header);
    SETOPT(h, CURLOPT_HEADERDATA, &t);
    if (strcmp(method, "GET") != 0) SETOPT(h, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0 || body) {
        SETOPT(h, CURLOPT_POSTFIELDS, body ? body : "");
        SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
    }
    r->curl_code = curl_easy_perform(h->curl);
    long status = 0;
    if (curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) status = 0;
    r->status = status;
    curl_off_t connect_us = 0;
    r->connected = curl_easy_getinfo(h->curl, CURLINFO_CONNECT_TIME_T, &connect_us) == CURLE_OK &&
                   connect_us > 0;
    if (!r->body) append_body(&t, "", 0); /* callers may read body as a string */
    curl_slist_free_all(headers);
    free(url);
    if (r->curl_code == CURLE_OK) return 0;
    if (r->curl_error[0] == '\0')
        snprintf(r->curl_error, sizeof r->curl_error, "%s", curl_easy_strerror(r->curl_code));
    return -1;
}

int http_request(Http *h, const char *method, const char *path, const char *content_type,
                 const char *body, size_t body_len, const char *extra_header, HttpResponse *r)
{
    return perform(h, method, path, content_type, body, body_len, extra_header, 120, NULL, NULL,
                   r);
}

int http_stream(Http *h, const char *path, const char *extra_header, long timeout_s,
                HttpSink sink, void *user, HttpResponse *r)
{
    return perform(h, "GET", path, NULL, NULL, 0, extra_header, timeout_s, sink, user, r);
}

/* ---- failures ------------------------------------------------------------------------------- */

int http_check(const Http *h, const HttpResponse *r, const char *what)
{
    if (r->curl_code != CURLE_OK && !r->aborted) {
        if (r->status == 0 && r->curl_code == CURLE_OPERATION_TIMEDOUT && r->connected)
            /* it took the connection but never answered: telling the user to start mocod
             * would send them the wrong way */
            cli_error("%s: mocod at %s took the connection but did not answer (%s); it may be "
                      "stuck or overloaded: look at its log, or check that this address is "
                      "really mocod", what, h->base, r->curl_error);
        else if (r->status == 0 &&
            (r->curl_code == CURLE_COULDNT_CONNECT || r->curl_code == CURLE_COULDNT_RESOLVE_HOST ||
             r->curl_code == CURLE_COULDNT_RESOLVE_PROXY ||
             r->curl_code == CURLE_OPERATION_TIMEDOUT))
            cli_error("cannot connect to mocod at %s (%s). Start it (e.g. `mocod --listen "
                      "127.0.0.1:8080`) or point MOCOD_URL or --server at the running one",
                      h->base, r->curl_error);
        else if (r->status == 0)
            cli_error("%s: no answer from mocod at %s (%s); is that address really mocod?",
                      what, h->base, r->curl_error);
        else
            cli_error("%s: the connection to mocod at %s broke off (%s)", what, h->base,
                      r->curl_error);
        return EXIT_CONNECT;
    }
    if (r->status >= 200 && r->status < 300) return EXIT_OK;

    /* mocod's errors: {"error": {"code", "message", "field"}} */
    const char *message = NULL, *field = NULL, *code = NULL;
    cJSON *doc = r->body ? cJSON_Parse(r->body) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(doc, "error");
    if (cJSON_IsObject(err)) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(err, "message");
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(err, "field");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(err, "code");
        if (cJSON_IsString(m)) message = m->valuestring;
        if (cJSON_IsString(f) && f->valuestring[0]) field = f->valuestring;
        if (cJSON_IsString(c)) code = c->valuestring;
    }
    char fallback[200];
    if (!message) {
        /* not mocod's JSON (a proxy, another server): show the start of what came back */
        size_t n = 0;
        const char *b = r->body ? r->body : "";
        while (b[n] && b[n] != '\n' && n < 120) n++;
        snprintf(fallback, sizeof fallback, "HTTP %ld%s%.*s", r->status, n ? ": " : "", (int)n, b);
        message = fallback;
    }
    const char *hint = "";
    if (r->status == 401)
        hint = " — set MOCOD_TOKEN (or --token / --token-file) to the token in mocod's token_file";
    cli_error("%s: %s%s%s%s [HTTP %ld%s%s]%s", what, message, field ? " (field " : "",
              field ? field : "", field ? ")" : "", r->status, code ? " " : "", code ? code : "",
              hint);
    cJSON_Delete(doc);
    switch (r->status) {
    case 401: return EXIT_UNAUTHORIZED;
    case 404: return EXIT_NOT_FOUND;
    case 409: return EXIT_CONFLICT;
    default: return EXIT_SERVER;
    }
}

int api_call(Http *h, const char *method, const char *path, const cJSON *body, cJSON **out,
             const char *what)
{
    *out = NULL;
    char *text = NULL;
    if (body) {
        text = cJSON_PrintUnformatted(body);
        if (!text) die("out of memory encoding the request");
    }
    HttpResponse r;
    http_request(h, method, path, text ? "application/json" : NULL, text,
                 text ? strlen(text) : 0, NULL, &r);
    free(text);
    int rc = http_check(h, &r, what);
    if (rc == EXIT_OK && r.len > 0) {
        *out = cJSON_ParseWithLength(r.body, r.len);
        if (!*out) {
            cli_error("%s: mocod at %s answered with something that is not JSON (HTTP %ld); is "
                      "that address really mocod?", what, h->base, r.status);
            rc = EXIT_SERVER;
        }
    }
    http_response_free(&r);
    return rc;
}
