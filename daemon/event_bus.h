/* event_bus.h — live job events for server-sent events (service_subscribe/next_event).
 *
 * A ring of the last EVENT_BUS_CAPACITY events, each with a sequence number. Publishing
 * never blocks on subscribers: a subscriber keeps its own cursor (the next sequence number it
 * wants) and reads at its pace; one that falls more than the ring's size behind skips to the
 * oldest event still held and is told once, with a `lagged` event saying how many it missed.
 * A mutex guards the ring and a condition variable wakes waiting subscribers.
 *
 * Lifetime: the bus lives until it was released (event_bus_release, at service_close) and
 * its last subscription is gone, so an HTTP thread still holding a subscription never reads
 * freed memory.
 */
#ifndef MOCOD_EVENT_BUS_H
#define MOCOD_EVENT_BUS_H

#include <stdint.h>

#define EVENT_BUS_CAPACITY 1024

typedef struct EventBus EventBus;
typedef struct EventSub EventSub;

EventBus *event_bus_new(void);
/* Copies json. kind is one of the job event kinds ("state", "start", "metric", "eval",
 * "checkpoint", "log", "done", "error"); others are dropped. job: the job it belongs to. */
void event_bus_publish(EventBus *bus, int64_t job, const char *kind, const char *json);
/* Ends every wait with -1 (shutdown) and frees the bus once no subscription remains. */
void event_bus_release(EventBus *bus);

/* job_id 0: all jobs. NULL when out of memory or the bus is shutting down. */
EventSub *event_bus_subscribe(EventBus *bus, int64_t job_id);
/* 1 with *kind (static) and *json (malloc'd), 0 on timeout, -1 when shutting down. */
int event_bus_next(EventSub *sub, const char **kind, char **json, int timeout_ms);
void event_bus_unsubscribe(EventSub *sub);

#endif
