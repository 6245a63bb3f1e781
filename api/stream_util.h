/* stream_util.h — what the long-lived responses (events, followed logs) share. */
#ifndef MOCOD_API_STREAM_UTIL_H
#define MOCOD_API_STREAM_UTIL_H

#include "api/request.h"

/* Waits up to wait_ms for the client's socket to hang up; 1 when it has (the stream should
 * end), 0 otherwise. sock < 0 just sleeps. */
int client_gone(int sock, int wait_ms);
/* Long streams are quiet by design: no idle timeout for this connection. */
void stream_disable_timeout(Request *req);
/* Seconds on a monotonic clock. */
double monotonic_s(void);

#endif
