/* stream_events.c — server-sent events: GET /api/v1/events (all jobs) and
 * GET /api/v1/jobs/{id}/events (one job).
 *
 * Each event goes out as "event: KIND\ndata: JSON\n\n". The reader blocks in this connection's
 * thread on the subscription (a second at a time, to notice a departed client or a stopping
 * mocod), and sends ": keepalive" after 15 quiet seconds so that proxies and browsers keep the
 * stream open. The subscription belongs to the response and is released with it.
 */
#include "api/handlers.h"
#include "api/request.h"
#include "api/respond.h"
#include "api/stream_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEEPALIVE_S 15.0
#define WAIT_MS 1000

typedef struct {
    ApiServer *srv;
    EventSub *sub;
    int sock;
    char *pending;     /* formatted bytes not yet handed to libmicrohttpd */
    size_t plen, poff;
    double last_sent;
} SseStream;

static int set_pending(SseStream *s, char *text, size_t len)
{
    free(s->pending);
    s->pending = text;
    s->plen = len;
    s->poff = 0;
    return text ? 0 : -1;
}

static char *dup_text(const char *t, size_t *len)
{
    *len = strlen(t);
    char *c = malloc(*len + 1);
    if (c) memcpy(c, t, *len + 1);
    return c;
}

/* "event: KIND\n" then one "data: " line per line of json, then a blank line. */
static char *format_event(const char *kind, const char *json, size_t *len)
{
    size_t klen = strlen(kind), jlen = strlen(json), lines = 1;
    for (const char *p = json; *p; p++) lines += *p == '\n';
    size_t cap = 8 + klen + 1 + jlen + lines * 7 + 2;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t n = (size_t)snprintf(out, cap, "event: %s\n", kind);
    const char *line = json;
    for (;;) {
        const char *nl = strchr(line, '\n');
        size_t l = nl ? (size_t)(nl - line) : strlen(line);
        memcpy(out + n, "data: ", 6);
        n += 6;
        memcpy(out + n, line, l);
        n += l;
        out[n++] = '\n';
        if (!nl) break;
        line = nl + 1;
    }
    out[n++] = '\n';
    out[n] = '\0';
    *len = n;
    return out;
}

static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    SseStream *s = cls;
    for (;;) {
        if (s->poff < s->plen) {
            size_t n = s->plen - s->poff < max ? s->plen - s->poff : max;
            memcpy(buf, s->pending + s->poff, n);
            s->poff += n;
            s->last_sent = monotonic_s();
            return (ssize_t)n;
        }
        if (atomic_load(&s->srv->stopping)) return MHD_CONTENT_READER_END_OF_STREAM;
        if (client_gone(s->sock, 0)) return MHD_CONTENT_READER_END_WITH_ERROR;
        const char *kind = NULL;
        char *json = NULL;
        int got = service_next_event(s->sub, &kind, &json, WAIT_MS);
        if (got < 0) return MHD_CONTENT_READER_END_OF_STREAM;  /* the service is shutting down */
        size_t len = 0;
        if (got > 0) {
            char *text = format_event(kind ? kind : "message", json ? json : "{}", &len);
            free(json);
            if (set_pending(s, text, len) != 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        } else if (monotonic_s() - s->last_sent >= KEEPALIVE_S) {
            char *text = dup_text(": keepalive\n\n", &len);
            if (set_pending(s, text, len) != 0) return MHD_CONTENT_READER_END_WITH_ERROR;
        }
    }
}

static void sse_free(void *cls)
{
    SseStream *s = cls;
    if (s->sub) service_unsubscribe(s->sub);
    free(s->pending);
    free(s);
}

static void events_respond(Request *req, int64_t job_id)
{
    SseStream *s = calloc(1, sizeof *s);
    if (!s) {
        respond_error(req, 500, "internal", NULL, "out of memory opening the event stream");
        return;
    }
    s->srv = req->srv;
    s->sock = req_socket(req);
    s->sub = service_subscribe(req->srv->svc, job_id);
    if (!s->sub) {
        free(s);
        respond_error(req, 503, "unavailable", NULL, "the daemon is not taking event subscriptions (shutting down?)");
        return;
    }
    /* A first comment gets the headers and the stream under way at once; retry tells browsers
     * how soon to reconnect. */
    size_t len = 0;
    char *hello = dup_text(": mocod events\nretry: 3000\n\n", &len);
    if (set_pending(s, hello, len) != 0) {
        sse_free(s);
        respond(req, 500, NULL);
        return;
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_read, s, sse_free);
    if (!r) {
        sse_free(s);
        respond(req, 500, NULL);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream; charset=utf-8");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    MHD_add_response_header(r, "X-Accel-Buffering", "no");
    stream_disable_timeout(req);
    respond(req, 200, r);
}

void h_events_all(Request *req) { events_respond(req, 0); }

void h_events_job(Request *req)
{
    int64_t id;
    if (req_job_id(req, 0, &id)) return;
    ServiceError err = {0};
    cJSON *job = service_get_job(req->srv->svc, id, 0, &err);
    if (!job) {
        respond_service_error(req, &err);
        return;
    }
    cJSON_Delete(job);
    events_respond(req, id);
}
