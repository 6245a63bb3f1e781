/* actions.c — the one-shot job commands: cancel, pause, resume, priority, rm. Each prints what
 * happened on stderr; scripts read the exit status (4 when the job's state does not allow it).
 */
#include "cli/cli.h"
#include "cli/format.h"
#include "cli/http.h"

#include <stdio.h>
#include <string.h>

/* argv is "COMMAND ID" plus n_extra more arguments (left in argv). EXIT_OK with *id, or with
 * *helped set after printing the help, or a usage error's code. Not getopt: a priority may be
 * negative ("priority 7 -5"). */
static int parse_id_args(const char *command, int argc, char **argv, int n_extra, int64_t *id,
                         int *helped)
{
    *helped = 0;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_print(command);
            *helped = 1;
            return EXIT_OK;
        }
    if (argc != 2 + n_extra)
        return cli_usage_error(command, n_extra ? "give a job id and a number"
                                                : "give one job id");
    if (cli_parse_job_id(command, argv[1], id) != 0) return EXIT_USAGE;
    return EXIT_OK;
}

/* POST /api/v1/jobs/ID/ACTION for cancel, pause and resume. */
static int job_action(Http *http, int argc, char **argv, const char *action, const char *done)
{
    int64_t id;
    int helped;
    int rc = parse_id_args(action, argc, argv, 0, &id, &helped);
    if (rc != EXIT_OK || helped) return rc;
    char path[96], what[64];
    snprintf(path, sizeof path, "/api/v1/jobs/%lld/%s", (long long)id, action);
    snprintf(what, sizeof what, "%s job %lld", action, (long long)id);
    cJSON *job = NULL;
    rc = api_call(http, "POST", path, NULL, &job, what);
    if (rc != EXIT_OK) return rc;
    const char *state = json_str(job, "state");
    fprintf(stderr, "mococtl: job %lld %s (now %s)\n", (long long)id, done, state ? state : "?");
    cJSON_Delete(job);
    return EXIT_OK;
}

int cmd_cancel(Http *http, int argc, char **argv)
{
    return job_action(http, argc, argv, "cancel", "is being canceled");
}

int cmd_pause(Http *http, int argc, char **argv)
{
    return job_action(http, argc, argv, "pause", "is being paused");
}

int cmd_resume(Http *http, int argc, char **argv)
{
    return job_action(http, argc, argv, "resume", "resumes");
}

int cmd_priority(Http *http, int argc, char **argv)
{
    int64_t id;
    int helped;
    int rc = parse_id_args("priority", argc, argv, 1, &id, &helped);
    if (rc != EXIT_OK || helped) return rc;
    long long priority;
    if (cli_parse_int(argv[2], -1000000000, 1000000000, &priority) != 0)
        return cli_usage_error("priority", "'%s' is not a whole number", argv[2]);
    cJSON *body = cJSON_CreateObject();
    if (!body || !cJSON_AddNumberToObject(body, "priority", (double)priority))
        die("out of memory");
    char path[96], what[64];
    snprintf(path, sizeof path, "/api/v1/jobs/%lld/priority", (long long)id);
    snprintf(what, sizeof what, "set the priority of job %lld", (long long)id);
    cJSON *job = NULL;
    rc = api_call(http, "POST", path, body, &job, what);
    cJSON_Delete(body);
    if (rc != EXIT_OK) return rc;
    fprintf(stderr, "mococtl: job %lld has priority %lld\n", (long long)id, priority);
    cJSON_Delete(job);
    return EXIT_OK;
}

int cmd_rm(Http *http, int argc, char **argv)
{
    int64_t id;
    int helped;
    int rc = parse_id_args("rm", argc, argv, 0, &id, &helped);
    if (rc != EXIT_OK || helped) return rc;
    char path[64], what[64];
    snprintf(path, sizeof path, "/api/v1/jobs/%lld", (long long)id);
    snprintf(what, sizeof what, "delete job %lld", (long long)id);
    cJSON *none = NULL;
    rc = api_call(http, "DELETE", path, NULL, &none, what);
    cJSON_Delete(none);
    if (rc == EXIT_OK) fprintf(stderr, "mococtl: job %lld deleted\n", (long long)id);
    return rc;
}
