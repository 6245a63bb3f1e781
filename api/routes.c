/* routes.c — the table of every route of docs/mocod-api.md (and of web/openapi.json). */
#include "api/handlers.h"

const Route API_ROUTES[] = {
    {"GET", "/healthz", h_healthz, ROUTE_PUBLIC},
    {"GET", "/metrics", h_prometheus, 0},
    {"GET", "/", h_index, ROUTE_PUBLIC},
    {"GET", "/static/{file}", h_static, ROUTE_PUBLIC},
    {"GET", "/vendor/chart.js", h_chartjs, ROUTE_PUBLIC},
    {"GET", "/api/v1/openapi.json", h_openapi, 0},
    {"POST", "/api/v1/jobs", h_submit, 0},
    {"GET", "/api/v1/jobs", h_list_jobs, 0},
    {"GET", "/api/v1/jobs/{id}", h_get_job, 0},
    {"DELETE", "/api/v1/jobs/{id}", h_delete_job, 0},
    {"POST", "/api/v1/jobs/{id}/cancel", h_cancel, 0},
    {"POST", "/api/v1/jobs/{id}/pause", h_pause, 0},
    {"POST", "/api/v1/jobs/{id}/resume", h_resume, 0},
    {"POST", "/api/v1/jobs/{id}/priority", h_priority, 0},
    {"GET", "/api/v1/jobs/{id}/metrics", h_job_metrics, 0},
    {"GET", "/api/v1/jobs/{id}/events", h_events_job, 0},
    {"GET", "/api/v1/jobs/{id}/logs", h_logs, 0},
    {"GET", "/api/v1/jobs/{id}/checkpoints", h_checkpoints, 0},
    {"GET", "/api/v1/jobs/{id}/checkpoints/{name}", h_checkpoint_file, 0},
    {"GET", "/api/v1/events", h_events_all, 0},
    {"GET", "/api/v1/devices", h_devices, 0},
    {"GET", "/api/v1/queue", h_queue, 0},
};

const size_t API_N_ROUTES = sizeof API_ROUTES / sizeof API_ROUTES[0];
