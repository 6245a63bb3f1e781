/* events.h — the job event stream (DESIGN §4 "Job events").
 *
 * One JSON object per line on the file descriptor given by --events-fd. Every event has
 * `kind` (start, metric, eval, checkpoint, log, done, error), `step`, `epoch` and `ts` (Unix
 * seconds, fractional) plus its own fields. The daemon reads these from a pipe; without
 * --events-fd nothing is written. Human-readable progress goes to stderr instead (progress.h).
 */
#ifndef MOCO_EVENTS_H
#define MOCO_EVENTS_H

#include <stdint.h>

typedef struct cJSON cJSON;

/* fd < 0 disables events. Also installs a die() hook that emits an `error` event. */
void events_open(int fd);
/* Current position, stamped on every event. */
void events_set_position(int64_t step, int epoch);
/* Creates an event object with kind/step/epoch/ts filled in; add fields, then events_emit. */
cJSON *event_new(const char *kind);
/* Writes the event as one line and frees it. */
void events_emit(cJSON *event);
/* Convenience: a `log` event with a message. */
void events_log(const char *message);
double wall_time(void);

#endif
