/* service.h — what mocod's HTTP layer (api/) may ask of the daemon core (daemon/, db/).
 *
 * The seam between "speaks HTTP" and "owns jobs": api/ parses requests and writes responses;
 * everything about jobs, the database, workers and files is behind these calls. Every call is
 * thread-safe (libmicrohttpd runs one thread per connection) and never exits the process.
 * Results are cJSON trees the caller frees; on failure a call returns NULL (or -1) and fills
 * *err with the HTTP status, an error code and a message that names the problem and the fix
 * (docs/mocod-api.md, "Errors"). The JSON shapes are those of docs/mocod-api.md.
 */
#ifndef MOCOD_SERVICE_H
#define MOCOD_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/daemon_config.h"

typedef struct cJSON cJSON;
typedef struct Service Service;

typedef struct {
    int status;          /* HTTP status: 400, 404, 409, 413, 416, 500, 503 */
    char code[32];       /* "invalid_spec", "not_found", "conflict", ... */
    char field[128];     /* the spec key at fault, or "" */
    char message[1024];
} ServiceError;

/* ---- lifetime ------------------------------------------------------------------------------ */
/* Opens (creating or migrating) STATE_DIR/mocod.db, recovers jobs a previous daemon left
 * running (DESIGN §5), and starts the scheduler and supervisor thread. NULL with err filled
 * when the state directory or database cannot be used. */
Service *service_open(const DaemonConfig *cfg, ServiceError *err);
/* Graceful stop: asks running workers to checkpoint (SIGTERM), waits up to the grace period
 * (SIGKILL after), requeues their jobs without counting a restart, ends subscriptions, closes
 * the database. */
void service_close(Service *s);

/* ---- jobs ------------------------------------------------------------------------------- */
/* body: YAML or JSON job spec plus daemon keys; content_type may be NULL (sniffed).
 * Returns the new job object (201). */
cJSON *service_submit(Service *s, const char *body, size_t len, const char *content_type,
                      ServiceError *err);
/* states: comma-separated filter or NULL; limit 1..500; page_token NULL or from a previous page. */
cJSON *service_list_jobs(Service *s, const char *states, int limit, const char *page_token,
                         ServiceError *err);
/* with_history adds `transitions`. */
cJSON *service_get_job(Service *s, int64_t id, int with_history, ServiceError *err);

typedef enum { JOB_ACTION_CANCEL, JOB_ACTION_PAUSE, JOB_ACTION_RESUME } JobAction;
cJSON *service_job_action(Service *s, int64_t id, JobAction action, ServiceError *err);
cJSON *service_set_priority(Service *s, int64_t id, int priority, ServiceError *err);
/* 0 on success (204). */
int service_delete_job(Service *s, int64_t id, ServiceError *err);

/* ---- metrics ------------------------------------------------------------------------------ */
/* key NULL: {"keys": [...]}. Otherwise points with step > since_step, at most max_results
 * (1..10000) per page; downsample > 0 returns at most that many bucket means over all steps
 * > since_step (no paging). */
cJSON *service_metrics(Service *s, int64_t id, const char *key, int64_t since_step,
                       int max_results, const char *page_token, int downsample, ServiceError *err);

/* ---- logs and files ------------------------------------------------------------------------ */
/* Absolute path of the job's log file (it may not exist yet) into buf. 0 or -1. */
int service_log_path(Service *s, int64_t id, char *buf, size_t buflen, ServiceError *err);
/* 1 while the job can still write to its log (not completed/failed/canceled/paused), else 0;
 * -1 for an unknown job. For logs?follow=1. */
int service_job_is_active(Service *s, int64_t id);
cJSON *service_list_checkpoints(Service *s, int64_t id, ServiceError *err);
/* Resolves a checkpoint name (a plain file name from the list; anything with '/' or ".." is
 * 404) to an absolute path. format NULL or "" = the file itself; "backbone" = a backbone export
 * made (once, cached next to it) by `moco-train --export backbone`. 0 or -1. */
int service_checkpoint_file(Service *s, int64_t id, const char *name, const char *format,
                            char *path, size_t pathlen, ServiceError *err);

/* ---- machine and queue -------------------------------------------------------------------- */
cJSON *service_devices(Service *s);
cJSON *service_queue(Service *s);
cJSON *service_health(Service *s);
/* Prometheus text exposition of the daemon's gauges (job states, per-job images/s and step,
 * uptime), malloc'd; api/ appends its own request counters. */
char *service_prometheus(Service *s);

/* ---- live events (server-sent events) ----------------------------------------------------- */
/* A subscription receives every event published after it was made: job_id 0 = all jobs.
 * service_next_event waits up to timeout_ms; returns 1 with *kind (static string) and *json
 * (malloc'd, caller frees) set, 0 on timeout, -1 when the service is shutting down. A slow
 * subscriber that falls more than 1024 events behind loses the oldest (it is sent a `lagged`
 * event once). */
typedef struct EventSub EventSub;
EventSub *service_subscribe(Service *s, int64_t job_id);
int service_next_event(EventSub *sub, const char **kind, char **json, int timeout_ms);
void service_unsubscribe(EventSub *sub);

#endif
