/* handlers.h — the route handlers, one group per file, and the route table (routes.c). */
#ifndef MOCOD_API_HANDLERS_H
#define MOCOD_API_HANDLERS_H

#include <stddef.h>

#include "api/router.h"

extern const Route API_ROUTES[];
extern const size_t API_N_ROUTES;

/* routes_system.c */
void h_healthz(Request *req);
void h_prometheus(Request *req);
void h_devices(Request *req);
void h_queue(Request *req);
/* routes_static.c */
void h_index(Request *req);
void h_static(Request *req);
void h_chartjs(Request *req);
void h_openapi(Request *req);
/* routes_jobs.c */
void h_submit(Request *req);
void h_list_jobs(Request *req);
void h_get_job(Request *req);
void h_delete_job(Request *req);
void h_cancel(Request *req);
void h_pause(Request *req);
void h_resume(Request *req);
void h_priority(Request *req);
void h_job_metrics(Request *req);
/* routes_files.c */
void h_logs(Request *req);
void h_checkpoints(Request *req);
void h_checkpoint_file(Request *req);
/* stream_events.c */
void h_events_all(Request *req);
void h_events_job(Request *req);

#endif
