/* machine.c — `mococtl devices` (GPUs and the jobs holding them, CPU job slots) and
 * `mococtl health` (does mocod answer, and how is it). */
#include "cli/cli.h"
#include "cli/format.h"
#include "cli/http.h"

#include <stdio.h>
#include <string.h>

/* Both commands take no arguments but --help. 1 when done (help or usage error in *rc). */
static int no_args(const char *command, int argc, char **argv, int *rc)
{
    if (argc <= 1) return 0;
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_print(command);
        *rc = EXIT_OK;
    } else {
        *rc = cli_usage_error(command, "takes no arguments");
    }
    return 1;
}

int cmd_devices(Http *http, int argc, char **argv)
{
    int rc;
    if (no_args("devices", argc, argv, &rc)) return rc;
    cJSON *doc = NULL;
    rc = api_call(http, "GET", "/api/v1/devices", NULL, &doc, "devices");
    if (rc != EXIT_OK) return rc;
    const cJSON *gpus = cJSON_GetObjectItemCaseSensitive(doc, "gpus");
    if (cJSON_GetArraySize(gpus) == 0) {
        printf("no GPUs\n");
    } else {
        static const char *headers[] = {"GPU", "JOB"};
        Table t;
        table_init(&t, 2, headers, "rr");
        const cJSON *g;
        cJSON_ArrayForEach(g, gpus) {
            char index[16], job[32] = "-";
            snprintf(index, sizeof index, "%.0f", json_num_or(g, "index", 0));
            double j;
            if (json_num(g, "job", &j)) snprintf(job, sizeof job, "%.0f", j);
            const char *cells[] = {index, job};
            table_add(&t, cells);
        }
        table_print(&t);
        table_free(&t);
    }
    const cJSON *cpu = cJSON_GetObjectItemCaseSensitive(doc, "cpu");
    if (cJSON_IsObject(cpu))
        printf("cpu: %.0f cores; CPU jobs: %.0f of %.0f slots in use\n",
               json_num_or(cpu, "cores", 0), json_num_or(cpu, "used", 0),
               json_num_or(cpu, "slots", 0));
    cJSON_Delete(doc);
    return EXIT_OK;
}

int cmd_health(Http *http, int argc, char **argv)
{
    int rc;
    if (no_args("health", argc, argv, &rc)) return rc;
    cJSON *doc = NULL;
    rc = api_call(http, "GET", "/healthz", NULL, &doc, "health");
    if (rc != EXIT_OK) return rc;
    const char *status = json_str(doc, "status"), *version = json_str(doc, "version");
    char up[32];
    fmt_duration(json_num_or(doc, "uptime_s", -1), up, sizeof up);
    double running = json_num_or(doc, "jobs_running", 0);
    printf("mocod at %s: %s, version %s, up %s, %.0f job%s running\n", http->base,
           status ? status : "?", version ? version : "?", up, running, running == 1 ? "" : "s");
    rc = status && strcmp(status, "ok") == 0 ? EXIT_OK : EXIT_SERVER;
    cJSON_Delete(doc);
    return rc;
}
