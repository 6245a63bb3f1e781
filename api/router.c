/* router.c — segment-wise matching of paths against route patterns (see router.h). */
#include "api/router.h"

#include <stdio.h>
#include <string.h>

/* Splits "/a/b/c" in place into segments; -1 for empty segments ("//", a trailing '/' after a
 * non-root path) or too many. The root "/" has zero segments. */
static int split_path(char *path, char **segs)
{
    if (path[0] != '/') return -1;
    if (path[1] == '\0') return 0;
    int n = 0;
    char *p = path + 1;
    for (;;) {
        char *slash = strchr(p, '/');
        if (slash) *slash = '\0';
        if (*p == '\0' || n == ROUTE_MAX_SEGMENTS) return -1;
        segs[n++] = p;
        if (!slash) break;
        p = slash + 1;
    }
    return n;
}

/* Does the pattern match the segments? Fills params when so. */
static int pattern_matches(const char *pattern, char **segs, int n_segs, const char **params, int *n_params)
{
    const char *p = pattern;
    int i = 0, np = 0;
    if (strcmp(pattern, "/") == 0) {
        *n_params = 0;
        return n_segs == 0;
    }
    while (*p == '/') {
        p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (i >= n_segs) return 0;
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            if (np == ROUTE_MAX_PARAMS) return 0;
            params[np++] = segs[i];
        } else if (strlen(segs[i]) != len || strncmp(segs[i], p, len) != 0) {
            return 0;
        }
        i++;
        p += len;
    }
    if (i != n_segs) return 0;
    *n_params = np;
    return 1;
}

static int method_allows(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0) return 1;
    return strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0;
}

static void add_allow(char *allow, size_t cap, const char *method)
{
    /* no duplicates: two GET patterns may share a path shape */
    size_t mlen = strlen(method);
    for (const char *a = allow; (a = strstr(a, method)) != NULL; a += mlen)
        if ((a == allow || a[-1] == ' ') && (a[mlen] == ',' || a[mlen] == '\0')) return;
    size_t n = strlen(allow);
    snprintf(allow + n, cap - n, "%s%s", n ? ", " : "", method);
}

RouteStatus router_match(const Route *table, size_t n_routes, const char *method, char *path,
                         RouteMatch *m)
{
    memset(m, 0, sizeof *m);
    char *segs[ROUTE_MAX_SEGMENTS];
    int n_segs = split_path(path, segs);
    if (n_segs < 0) return ROUTE_NOT_FOUND;
    int path_known = 0;
    for (size_t r = 0; r < n_routes; r++) {
        const char *params[ROUTE_MAX_PARAMS] = {0};
        int np = 0;
        if (!pattern_matches(table[r].pattern, segs, n_segs, params, &np)) continue;
        path_known = 1;
        m->path_flags |= table[r].flags;
        if (method_allows(table[r].method, method)) {
            m->route = &table[r];
            m->n_params = np;
            memcpy(m->params, params, sizeof params);
            m->allow[0] = '\0';
            return ROUTE_FOUND;
        }
        add_allow(m->allow, sizeof m->allow, table[r].method);
        if (strcmp(table[r].method, "GET") == 0) add_allow(m->allow, sizeof m->allow, "HEAD");
    }
    return path_known ? ROUTE_WRONG_METHOD : ROUTE_NOT_FOUND;
}
