/* cli.h — what every mococtl command shares: exit codes, the command signature, messages.
 *
 * mococtl speaks only HTTP to mocod (docs/mocod-api.md). Each command lives in its own file and
 * returns one of the exit codes below, which scripts may rely on (docs/mococtl.md).
 */
#ifndef MOCOCTL_CLI_H
#define MOCOCTL_CLI_H

#include <stdint.h>

#include "common/error.h" /* MOCO_PRINTF */

enum {
    EXIT_OK = 0,
    EXIT_SERVER = 1,       /* server-side error or request rejected (watch: a job did not complete) */
    EXIT_USAGE = 2,
    EXIT_NOT_FOUND = 3,    /* 404 */
    EXIT_CONFLICT = 4,     /* 409: action not allowed in the job's state */
    EXIT_CONNECT = 5,      /* cannot reach mocod */
    EXIT_UNAUTHORIZED = 6, /* 401 */
};

typedef struct Http Http;

/* A command gets its own argv (argv[0] is the command's name) and the connection. */
typedef int (*CommandFn)(Http *http, int argc, char **argv);

/* "mococtl: " + message on stderr. */
void cli_error(const char *fmt, ...) MOCO_PRINTF(1, 2);
/* A usage error: the message, a pointer to `mococtl COMMAND --help`, and EXIT_USAGE. */
int cli_usage_error(const char *command, const char *fmt, ...) MOCO_PRINTF(2, 3);

/* For getopt's '?' (unknown option) and ':' (missing value): the message and EXIT_USAGE.
 * Commands call getopt_long with an optstring that starts with ':'. */
int cli_bad_option(const char *command, int c, char **argv, int optind_now);
/* A job id argument: a positive integer. 0, or -1 after a usage message. */
int cli_parse_job_id(const char *command, const char *text, int64_t *id);
/* A whole number in [min, max]. 0 or -1 (no message). */
int cli_parse_int(const char *text, long long min, long long max, long long *out);

/* The commands (one file each; mococtl_main.c dispatches). */
int cmd_submit(Http *http, int argc, char **argv);
int cmd_ls(Http *http, int argc, char **argv);
int cmd_queue(Http *http, int argc, char **argv);
int cmd_show(Http *http, int argc, char **argv);
int cmd_logs(Http *http, int argc, char **argv);
int cmd_watch(Http *http, int argc, char **argv);
int cmd_cancel(Http *http, int argc, char **argv);
int cmd_pause(Http *http, int argc, char **argv);
int cmd_resume(Http *http, int argc, char **argv);
int cmd_priority(Http *http, int argc, char **argv);
int cmd_rm(Http *http, int argc, char **argv);
int cmd_metrics(Http *http, int argc, char **argv);
int cmd_ckpt(Http *http, int argc, char **argv);
int cmd_devices(Http *http, int argc, char **argv);
int cmd_health(Http *http, int argc, char **argv);

/* watch.c: follows jobs until every one is finished; EXIT_OK when all completed, else
 * EXIT_SERVER (or the exit code of a request that failed). Used by `submit --watch` too. */
int watch_jobs(Http *http, const int64_t *ids, int n);

/* Prints the usage of one command (or of all when NULL) on stdout. */
void usage_print(const char *command);

#endif
