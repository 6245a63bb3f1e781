/* http_server.c — the libmicrohttpd daemon and the life of one request (see api.h).
 *
 * libmicrohttpd calls the access handler several times per request: once when the headers are
 * in (routing, auth and the Content-Length limit are decided there, so an unauthorized or
 * oversized upload is refused before its body is read), once per piece of body, and once at
 * the end, when the route's handler runs. The Request is freed in the request-completed
 * callback; streaming responses own their state and free it in the response's own callback.
 */
#include "api/api.h"

#include "api/auth.h"
#include "api/handlers.h"
#include "api/params.h"
#include "api/request.h"
#include "api/respond.h"
#include "api/stream_util.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CONNECTION_LIMIT 512u
#define CONNECTION_MEMORY_LIMIT ((size_t)128 * 1024)
#define IDLE_TIMEOUT_S 60u
/* At most one "connection limit" note in this many seconds (log_mhd_message). */
#define LIMIT_NOTE_S 10.0

/* A client that keeps sending past the body limit is cut off once it has sent this many
 * times the limit: answering 413 needs the body to end, but not forever. */
#define DISCARD_FACTOR 4

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decoding of the path and query values, except %00: a decoded NUL would silently cut
 * a C string ("index.html%00.png" → "index.html"), so "%00" stays as three characters, which
 * no job id, checkpoint or file name can match. */
static size_t unescape_keep_nul(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *r = s, *w = s;
    while (*r) {
        if (r[0] == '%' && hex_value(r[1]) >= 0 && hex_value(r[2]) >= 0) {
            int v = hex_value(r[1]) * 16 + hex_value(r[2]);
            if (v != 0) {
                *w++ = (char)v;
                r += 3;
                continue;
            }
        }
        *w++ = *r++;
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* libmicrohttpd's own messages, prefixed like the rest of mocod's log. Those a client causes
 * (a hang-up, a malformed or oversized request, which it already got a 4xx for) are dropped:
 * any client could otherwise fill the log. Resource trouble (threads, sockets, memory) stays. */
static void log_mhd_message(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    static const char *const CLIENT_CAUSED[] = {
        "closed by remote side",
        "application error generating response", /* a stream whose client left */
        "HTTP response code is 4",
        "Not enough memory in pool to allocate header record", /* headers over the limit: 431 */
    };
    for (size_t i = 0; i < sizeof CLIENT_CAUSED / sizeof CLIENT_CAUSED[0]; i++)
        if (strstr(msg, CLIENT_CAUSED[i])) return;
    size_t n = strlen(msg);
    while (n > 0 && msg[n - 1] == '\n') msg[--n] = '\0';
    /* The connection limit is worth knowing about, but libmicrohttpd says so once per refused
     * connection: a client that floods mocod with connections would fill the log. Once per
     * LIMIT_NOTE_S at most, with the count of the ones in between. */
    if (strstr(msg, "connection limit")) {
        static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
        static double last;
        static unsigned long suppressed;
        pthread_mutex_lock(&mu);
        double now = monotonic_s();
        int say = last == 0 || now - last >= LIMIT_NOTE_S;
        unsigned long before = suppressed;
        if (say) {
            last = now;
            suppressed = 0;
        } else {
            suppressed++;
        }
        pthread_mutex_unlock(&mu);
        if (!say) return;
        if (before)
            fprintf(stderr, "mocod: http: %s (and %lu more since the last such note)\n", msg, before);
        else
            fprintf(stderr, "mocod: http: %s\n", msg);
        return;
    }
    fprintf(stderr, "mocod: http: %s\n", msg);
}

/* Routing, auth and the declared body size, decided as soon as the headers are in. */
static void begin_request(Request *req)
{
    ApiServer *srv = req->srv;
    RouteStatus st = router_match(API_ROUTES, API_N_ROUTES, req->method, req->path, &req->match);
    unsigned flags = st == ROUTE_FOUND ? req->match.route->flags : req->match.path_flags;
    if (!(flags & ROUTE_PUBLIC) && srv->cfg->token[0] &&
        !auth_bearer_ok(req_header(req, MHD_HTTP_HEADER_AUTHORIZATION), srv->cfg->token)) {
        respond_error(req, 401, "unauthorized", NULL,
                      req_header(req, MHD_HTTP_HEADER_AUTHORIZATION)
                          ? "the Bearer token is wrong: send the token from the daemon's token_file"
                          : "this daemon needs a token: send `Authorization: Bearer <token>` (the first "
                            "line of the daemon's token_file; mococtl reads MOCOD_TOKEN)");
        return;
    }
    if (st == ROUTE_NOT_FOUND) {
        respond_error(req, 404, "not_found", NULL,
                      "no such route: %s %.200s; the API is under /api/v1 (GET /api/v1/openapi.json lists it)",
                      req->method, req->path_for_log);
        return;
    }
    if (st == ROUTE_WRONG_METHOD) {
        respond_error(req, 405, "method_not_allowed", NULL, "%s is not allowed on %.200s; allowed: %s",
                      req->method, req->path_for_log, req->match.allow);
        return;
    }
    const char *cl = req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
    int64_t declared;
    if (cl && parse_i64_strict(cl, 0, INT64_MAX, &declared) == 0 &&
        (uint64_t)declared > srv->cfg->max_body_bytes) {
        req->body_too_large = 1;
        respond_error(req, 413, "payload_too_large", NULL,
                      "the request body is %lld bytes, more than max_body_bytes (%zu); a job spec is a "
                      "few kilobytes: check what is being sent", (long long)declared, srv->cfg->max_body_bytes);
    }
}

/* Appends a piece of body, or counts it as discarded once the limit is passed. */
static void take_body(Request *req, const char *data, size_t size)
{
    size_t limit = req->srv->cfg->max_body_bytes;
    if (req->answered) return;
    if (req->body_too_large || size > limit - req->body_len) {
        req->body_too_large = 1;
        req->body_discarded += size;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return;
    }
    if (req->body_len + size + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 4096;
        while (cap < req->body_len + size + 1) cap *= 2;
        if (cap > limit + 1) cap = limit + 1;
        char *grown = realloc(req->body, cap);
        if (!grown) {
            /* treated as too large: the answer is a 413 rather than a crash */
            req->body_too_large = 1;
            return;
        }
        req->body = grown;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, size);
    req->body_len += size;
    req->body[req->body_len] = '\0';
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    (void)version;
    ApiServer *srv = cls;
    Request *req = *con_cls;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req) return MHD_NO;
        *con_cls = req;
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        req->path = strdup(url);
        req->path_for_log = strdup(url);
        if (!req->path || !req->path_for_log) return MHD_NO;
        /* With a body coming, decide now, so that a refused upload is never read. Without one,
         * decide at the final call: an answer queued this early closes the connection, which a
         * keep-alive client (the dashboard) should not pay for a 404. */
        if (req_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH) || req_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
            req->begun = 1;
            begin_request(req);
        }
        return req->answered ? req->queue_result : MHD_YES;
    }
    if (*upload_data_size != 0) {
        take_body(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        if (req->body_discarded > (uint64_t)DISCARD_FACTOR * srv->cfg->max_body_bytes) return MHD_NO;
        return MHD_YES;
    }
    if (!req->begun) {
        req->begun = 1;
        begin_request(req);
    }
    if (req->answered) return req->queue_result;
    if (req->body_too_large) {
        respond_error(req, 413, "payload_too_large", NULL,
                      "the request body is larger than max_body_bytes (%zu); a job spec is a few kilobytes",
                      srv->cfg->max_body_bytes);
        return req->queue_result;
    }
    if (atomic_load(&srv->stopping)) {
        respond_error(req, 503, "unavailable", NULL, "mocod is shutting down; retry when it is back");
        return req->queue_result;
    }
    req->match.route->handler(req);
    if (!req->answered)
        respond_error(req, 500, "internal", NULL, "the handler of %s %.200s gave no answer (a mocod bug)",
                      req->method, req->path_for_log);
    return req->queue_result;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    Request *req = *con_cls;
    if (!req) return;
    free(req->body);
    free(req->path);
    free(req->path_for_log);
    free(req);
    *con_cls = NULL;
}

ApiServer *api_start(const DaemonConfig *cfg, Service *svc, char *err, size_t errlen)
{
    char port_text[16];
    snprintf(port_text, sizeof port_text, "%d", cfg->listen_port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(cfg->listen_host, port_text, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(err, errlen, "listen address %s: %s; use an IP address or a resolvable host name",
                 cfg->listen_host, gai_strerror(gai));
        if (ai) freeaddrinfo(ai);
        return NULL;
    }
    ApiServer *srv = calloc(1, sizeof *srv);
    if (!srv) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "out of memory starting the HTTP server");
        return NULL;
    }
    srv->cfg = cfg;
    srv->svc = svc;
    atomic_init(&srv->stopping, 0);
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                     MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    errno = 0;
    /* the logger first, so that it also gets the messages about the options that follow */
    srv->mhd = MHD_start_daemon(flags, (uint16_t)cfg->listen_port, NULL, NULL, on_access, srv,
                                MHD_OPTION_EXTERNAL_LOGGER, log_mhd_message, NULL,
                                MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                MHD_OPTION_CONNECTION_LIMIT, CONNECTION_LIMIT,
                                MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY_LIMIT,
                                MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                                MHD_OPTION_UNESCAPE_CALLBACK, unescape_keep_nul, NULL,
                                MHD_OPTION_END);
    int saved = errno;
    freeaddrinfo(ai);
    if (!srv->mhd) {
        snprintf(err, errlen, "cannot listen on %s:%d%s%s; is another mocod (or another program) using "
                 "that port? Pick another with --listen HOST:PORT",
                 cfg->listen_host, cfg->listen_port, saved ? ": " : "", saved ? strerror(saved) : "");
        free(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di && di->port ? di->port : cfg->listen_port;
    return srv;
}

int api_port(const ApiServer *srv) { return srv->port; }

void api_stop(ApiServer *srv)
{
    if (!srv) return;
    atomic_store(&srv->stopping, 1);
    MHD_stop_daemon(srv->mhd);
    free(srv);
}
