/* router.h — matching a request's method and path against a table of routes.
 *
 * Patterns are literal segments and {name} placeholders, each placeholder matching one
 * non-empty path segment: "/api/v1/jobs/{id}/checkpoints/{name}". A GET route also answers
 * HEAD. The outcome tells 404 (no pattern has this path) from 405 (a pattern has it, with
 * other methods, listed for the Allow header).
 */
#ifndef MOCOD_API_ROUTER_H
#define MOCOD_API_ROUTER_H

#include <stddef.h>

typedef struct Request Request;
typedef void (*RouteHandler)(Request *req);

enum {
    ROUTE_PUBLIC = 1u,  /* answered without a token (health check, dashboard files) */
};

typedef struct {
    const char *method;
    const char *pattern;
    RouteHandler handler;
    unsigned flags;
} Route;

#define ROUTE_MAX_PARAMS 4
#define ROUTE_MAX_SEGMENTS 16

typedef enum { ROUTE_FOUND, ROUTE_WRONG_METHOD, ROUTE_NOT_FOUND } RouteStatus;

typedef struct {
    const Route *route;                 /* ROUTE_FOUND: the route; otherwise NULL */
    const char *params[ROUTE_MAX_PARAMS];
    int n_params;
    unsigned path_flags;                /* flags of the routes sharing this path (for 405s) */
    char allow[128];                    /* ROUTE_WRONG_METHOD: "GET, HEAD, POST" */
} RouteMatch;

/* path is modified (its '/' become NULs) and must outlive the match, whose params point into it. */
RouteStatus router_match(const Route *table, size_t n_routes, const char *method, char *path,
                         RouteMatch *m);

#endif
