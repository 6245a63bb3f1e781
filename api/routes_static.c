/* routes_static.c — the dashboard's files: `/` (index.html), `/static/<file>`, Chart.js at
 * `/vendor/chart.js`, and the OpenAPI document at `/api/v1/openapi.json`.
 *
 * Only plain file names directly inside web_dir are served: letters, digits, '.', '-', '_',
 * not starting with '.', so no name can climb out of the folder or reach a hidden file.
 */
#include "api/handlers.h"
#include "api/request.h"
#include "api/respond.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *content_type_of(const char *name)
{
    static const struct { const char *ext, *type; } TYPES[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".map", "application/json; charset=utf-8"},
        {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
            if (strcmp(dot, TYPES[i].ext) == 0) return TYPES[i].type;
    return "application/octet-stream";
}

static int plain_file_name(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255 || name[0] == '.') return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '-' || c == '_'))
            return 0;
    }
    return strstr(name, "..") == NULL;
}

/* Streams path (a regular file) with its type; 404 naming what is missing otherwise. */
static void serve_file(Request *req, const char *path, const char *shown_name, const char *content_type,
                       const char *cache_control)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        /* the server's own paths are not shown: these routes need no token */
        respond_error(req, 404, "not_found", NULL, "%s not found on the server (%s)", shown_name, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        respond_error(req, 404, "not_found", NULL, "%s is not a file", shown_name);
        return;
    }
    struct MHD_Response *r = MHD_create_response_from_fd64((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        respond(req, 500, NULL);
        return;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache_control);
    respond(req, 200, r);
}

static void serve_web_file(Request *req, const char *name)
{
    char path[DAEMON_PATH_MAX + 300];
    snprintf(path, sizeof path, "%s/%s", req->srv->cfg->web_dir, name);
    /* no-cache: the browser revalidates, so a new mocod's dashboard shows up at once */
    serve_file(req, path, name, content_type_of(name), "no-cache");
}

void h_index(Request *req) { serve_web_file(req, "index.html"); }

void h_static(Request *req)
{
    const char *name = req_param(req, 0);
    if (!name || !plain_file_name(name)) {
        respond_error(req, 404, "not_found", NULL,
                      "no such dashboard file; /static/ serves plain file names of the web folder only");
        return;
    }
    serve_web_file(req, name);
}

void h_chartjs(Request *req)
{
    serve_file(req, req->srv->cfg->chartjs, "Chart.js (install Debian's libjs-chart.js or set chartjs)",
               "text/javascript; charset=utf-8", "max-age=86400");
}

void h_openapi(Request *req) { serve_web_file(req, "openapi.json"); }
