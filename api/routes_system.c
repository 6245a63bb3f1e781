/* routes_system.c — /healthz, /metrics (Prometheus), /api/v1/devices and /api/v1/queue. */
#include "api/handlers.h"
#include "api/request.h"
#include "api/respond.h"

#include <stdlib.h>
#include <string.h>

void h_healthz(Request *req)
{
    cJSON *h = service_health(req->srv->svc);
    if (!h) {
        respond_error(req, 503, "unavailable", NULL, "the daemon core is not answering; see mocod's stderr");
        return;
    }
    respond_json(req, 200, h);
}

/* The core's gauges followed by this layer's request counters. */
void h_prometheus(Request *req)
{
    char *core = service_prometheus(req->srv->svc);
    if (!core) {
        respond_error(req, 500, "internal", NULL, "the daemon core could not produce its metrics");
        return;
    }
    char *text = http_stats_prometheus(&req->srv->stats, core);
    free(core);
    if (!text) {
        respond_error(req, 500, "internal", NULL, "out of memory building /metrics");
        return;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        respond(req, 500, NULL);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8");
    respond(req, 200, r);
}

void h_devices(Request *req)
{
    cJSON *d = service_devices(req->srv->svc);
    if (!d) {
        respond_error(req, 500, "internal", NULL, "the daemon core could not list the devices");
        return;
    }
    respond_json(req, 200, d);
}

void h_queue(Request *req)
{
    cJSON *q = service_queue(req->srv->svc);
    if (!q) {
        respond_error(req, 500, "internal", NULL, "the daemon core could not list the queue");
        return;
    }
    respond_json(req, 200, q);
}
