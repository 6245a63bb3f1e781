/* http.h — mococtl's HTTP client (libcurl): requests to mocod, JSON calls and streams, and the
 * translation of failures into messages and exit codes (cli.h).
 *
 * One curl handle is reused for every request so that `watch` polling keeps its connection.
 */
#ifndef MOCOCTL_HTTP_H
#define MOCOCTL_HTTP_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stddef.h>

typedef struct Http Http; /* also in cli.h; C11 allows the repeat */
struct Http {
    char *base;              /* "http://127.0.0.1:8080", no trailing slash */
    char *auth_header;       /* "Authorization: Bearer ..." or NULL */
    CURL *curl;
};

typedef struct {
    long status;                        /* HTTP status; 0 when no response came */
    CURLcode curl_code;                 /* CURLE_OK unless the transfer failed */
    char curl_error[CURL_ERROR_SIZE];
    char *body;                         /* NUL-terminated (error bodies of streams too) */
    size_t len;
    long long log_size;                 /* X-Log-Size, or -1 */
    long long content_length;           /* Content-Length, or -1 */
    int aborted;                        /* a stream's sink asked to stop */
    int connected;                      /* the TCP connection was made (even if no answer came) */
} HttpResponse;

/* Called with each piece of a 2xx body. Return 0 to go on, -1 to stop the transfer. */
typedef int (*HttpSink)(const char *data, size_t len, void *user);

/* base: a URL ("host:port" gets http://). token may be NULL. 0, or -1 with a message printed. */
int http_open(Http *h, const char *base, const char *token);
void http_close(Http *h);

/* One request; the whole body is collected into r. extra_header may be NULL. Returns 0 when a
 * response came (whatever its status), -1 on a transport failure (r->curl_code says which). */
int http_request(Http *h, const char *method, const char *path, const char *content_type,
                 const char *body, size_t body_len, const char *extra_header, HttpResponse *r);
/* A GET whose 2xx body goes piece by piece to sink (logs, downloads); an error status's body
 * is collected into r->body. timeout_s 0 = none (follow streams). Same return as above. */
int http_stream(Http *h, const char *path, const char *extra_header, long timeout_s,
                HttpSink sink, void *user, HttpResponse *r);
void http_response_free(HttpResponse *r);

/* The exit code for a finished request: EXIT_OK for 2xx; otherwise prints "mococtl: WHAT: the
 * server's message [field]" (or the connection problem and how to fix it) and returns the code. */
int http_check(const Http *h, const HttpResponse *r, const char *what);

/* request + check + JSON parse. On EXIT_OK *out holds the parsed body (NULL when empty). body
 * may be NULL (no request body). */
int api_call(Http *h, const char *method, const char *path, const cJSON *body, cJSON **out,
             const char *what);

/* URL-escapes one path segment or query value (curl_easy_escape); free with curl_free. */
char *http_escape(Http *h, const char *text);

#endif
