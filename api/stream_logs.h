/* stream_logs.h — GET /api/v1/jobs/{id}/logs?follow=1: the log from an offset, then whatever
 * the worker appends, until the job stops writing (finished, paused, deleted). */
#ifndef MOCOD_API_STREAM_LOGS_H
#define MOCOD_API_STREAM_LOGS_H

#include <stdint.h>

#include "api/request.h"

/* Answers req with the followed log. fd: the log opened (or -1 when it does not exist yet;
 * it is opened once it appears), owned from here on; size: its size now (X-Log-Size). */
void logs_follow_respond(Request *req, int64_t job_id, const char *path, int fd, uint64_t offset,
                         uint64_t size);

#endif
