/* event_bus.c — the ring of live job events; see event_bus.h. */
#include "daemon/event_bus.h"

#include "daemon/json_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The kinds a subscriber may be handed; *kind points into this table, so it stays valid. */
static const char *const known_kinds[] = {"state", "start", "metric", "eval", "checkpoint",
                                          "log", "done", "error", "lagged"};

typedef struct {
    uint64_t seq;
    int64_t job;
    const char *kind;
    char *json;
} Event;

struct EventBus {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    Event ring[EVENT_BUS_CAPACITY];
    uint64_t next_seq;   /* the sequence number the next event gets; events 1.. */
    int subscribers;
    int released;
};

struct EventSub {
    EventBus *bus;
    int64_t job;
    uint64_t cursor;     /* the next sequence number this subscriber reads */
};

static const char *intern_kind(const char *kind)
{
    for (size_t i = 0; i < sizeof known_kinds / sizeof known_kinds[0]; i++)
        if (strcmp(known_kinds[i], kind) == 0) return known_kinds[i];
    return NULL;
}

EventBus *event_bus_new(void)
{
    EventBus *bus = calloc(1, sizeof *bus);
    if (!bus) return NULL;
    pthread_condattr_t ca;
    /* Waits measure timeouts on the monotonic clock: a wall-clock jump must not wake every
     * subscriber at once or hold them for an hour. */
    if (pthread_condattr_init(&ca) != 0) {
        free(bus);
        return NULL;
    }
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int ok = pthread_mutex_init(&bus->mu, NULL) == 0;
    if (ok && pthread_cond_init(&bus->cond, &ca) != 0) {
        pthread_mutex_destroy(&bus->mu);
        ok = 0;
    }
    pthread_condattr_destroy(&ca);
    if (!ok) {
        free(bus);
        return NULL;
    }
    bus->next_seq = 1;
    return bus;
}

static void bus_free(EventBus *bus)
{
    for (int i = 0; i < EVENT_BUS_CAPACITY; i++) free(bus->ring[i].json);
    pthread_cond_destroy(&bus->cond);
    pthread_mutex_destroy(&bus->mu);
    free(bus);
}

void event_bus_publish(EventBus *bus, int64_t job, const char *kind, const char *json)
{
    const char *k = intern_kind(kind);
    if (!bus || !k || strcmp(k, "lagged") == 0) return;
    /* Events carry worker text (log lines, reasons quoting them) that may not be UTF-8; the
     * stream is read as UTF-8 (EventSource), so stray bytes become U+FFFD here. */
    char *copy;
    size_t copy_len;
    int fixed = utf8_repair(json, strlen(json), &copy, &copy_len);
    if (fixed == 0) copy = strdup(json);
    if (!copy) return; /* out of memory: a live view misses one event; history is in SQLite */
    pthread_mutex_lock(&bus->mu);
    Event *e = &bus->ring[bus->next_seq % EVENT_BUS_CAPACITY];
    free(e->json);
    e->seq = bus->next_seq++;
    e->job = job;
    e->kind = k;
    e->json = copy;
    pthread_cond_broadcast(&bus->cond);
    pthread_mutex_unlock(&bus->mu);
}

void event_bus_release(EventBus *bus)
{
    if (!bus) return;
    pthread_mutex_lock(&bus->mu);
    bus->released = 1;
    int last = bus->subscribers == 0;
    pthread_cond_broadcast(&bus->cond);
    pthread_mutex_unlock(&bus->mu);
    if (last) bus_free(bus);
}

EventSub *event_bus_subscribe(EventBus *bus, int64_t job_id)
{
    if (!bus) return NULL;
    EventSub *sub = calloc(1, sizeof *sub);
    if (!sub) return NULL;
    pthread_mutex_lock(&bus->mu);
    if (bus->released) {
        pthread_mutex_unlock(&bus->mu);
        free(sub);
        return NULL;
    }
    bus->subscribers++;
    sub->bus = bus;
    sub->job = job_id;
    sub->cursor = bus->next_seq; /* only events published from now on */
    pthread_mutex_unlock(&bus->mu);
    return sub;
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

int event_bus_next(EventSub *sub, const char **kind, char **json, int timeout_ms)
{
    EventBus *bus = sub->bus;
    struct timespec deadline;
    deadline_after(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&bus->mu);
    for (;;) {
        if (bus->released) {
            pthread_mutex_unlock(&bus->mu);
            return -1;
        }
        uint64_t oldest = bus->next_seq > EVENT_BUS_CAPACITY ? bus->next_seq - EVENT_BUS_CAPACITY : 1;
        if (sub->cursor < oldest) {
            uint64_t missed = oldest - sub->cursor;
            sub->cursor = oldest;
            pthread_mutex_unlock(&bus->mu);
            char buf[160];
            snprintf(buf, sizeof buf, "{\"missed\": %llu, \"message\": \"this client fell more "
                     "than %d events behind; the oldest were dropped\"}",
                     (unsigned long long)missed, EVENT_BUS_CAPACITY);
            *json = strdup(buf);
            if (!*json) return 0;
            *kind = known_kinds[8];
            return 1;
        }
        while (sub->cursor < bus->next_seq) {
            Event *e = &bus->ring[sub->cursor % EVENT_BUS_CAPACITY];
            sub->cursor++;
            if (sub->job != 0 && e->job != sub->job) continue;
            *kind = e->kind;
            *json = strdup(e->json);
            pthread_mutex_unlock(&bus->mu);
            return *json ? 1 : 0;
        }
        int rc = pthread_cond_timedwait(&bus->cond, &bus->mu, &deadline);
        if (rc == ETIMEDOUT && sub->cursor >= bus->next_seq && !bus->released) {
            pthread_mutex_unlock(&bus->mu);
            return 0;
        }
    }
}

void event_bus_unsubscribe(EventSub *sub)
{
    if (!sub) return;
    EventBus *bus = sub->bus;
    pthread_mutex_lock(&bus->mu);
    int last = --bus->subscribers == 0 && bus->released;
    pthread_mutex_unlock(&bus->mu);
    free(sub);
    if (last) bus_free(bus);
}
