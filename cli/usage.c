/* usage.c — mococtl's help text: the overview (`mococtl --help`) and one entry per command
 * (`mococtl COMMAND --help`). docs/mococtl.md says the same at length.
 */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    const char *synopsis;
    const char *detail;
} CommandHelp;

static const CommandHelp commands[] = {
    {"submit",
     "submit FILE [--set key.path=value ...] [--name N] [--priority P] [--after ID]\n"
     "         [--not-before TIME] [--watch] [--dry-run]",
     "Submits a job spec (YAML or JSON, docs/job-spec.md; FILE - reads stdin) and prints the new\n"
     "job's id alone on stdout, so that `id=$(mococtl submit job.yaml)` works.\n"
     "  --set key.path=value  override one key; the value is YAML (--set optim.milestones=[120,160])\n"
     "  --name N, --priority P, --after ID, --not-before TIME   the daemon's scheduling keys;\n"
     "                        TIME is Unix seconds, an RFC 3339 time, or +30s/+10m/+2h/+1d from now\n"
     "  --watch               then follow it as `mococtl watch` does (and exit as it does)\n"
     "  --dry-run             print the JSON that would be sent, send nothing\n"
     "Relative data.train, data.val and model.pretrained paths are made absolute against the\n"
     "current directory (mocod would otherwise read them relative to its own); job:ID stays."},
    {"ls", "ls [--state S[,S...]] [--limit N] [--all] [--json]",
     "Lists jobs, newest first: ID NAME KIND STATE PROGRESS STEP LOSS IMG/S ETA AGE.\n"
     "  --state S[,S]  only these states (queued, starting, running, pausing, paused, canceling,\n"
     "                 completed, failed, canceled)\n"
     "  --limit N      at most N per page (1-500, default 50)\n"
     "  --all          follow the pages to the last job\n"
     "  --json         the job objects as a JSON array"},
    {"show", "show ID [--json]",
     "One job: kind, state and reason, scheduling, progress, last metrics, the data it reads and\n"
     "every state transition. --json prints the job object as mocod returns it."},
    {"logs", "logs ID [-f] [--offset N]",
     "Prints the worker's log (its stderr). -f follows it until the job ends (reconnecting where\n"
     "it left off if the connection drops); --offset N starts at byte N."},
    {"watch", "watch ID [ID...]",
     "Shows live progress of the jobs until every one has finished: on a terminal a bar per job\n"
     "(epoch, step, loss, acc1/acc5, kNN/linear top-1/top-5, img/s, ETA), otherwise one line per\n"
     "change. Exits 0 when all completed, 1 when any failed or was canceled."},
    {"cancel", "cancel ID", "Cancels a queued or running job (409, exit 4, when it has already finished)."},
    {"pause", "pause ID", "Pauses a running job at a checkpoint (a queued one at once)."},
    {"resume", "resume ID", "Requeues a paused job (or a failed one, from its last checkpoint)."},
    {"priority", "priority ID N", "Sets a job's priority (higher starts first)."},
    {"rm", "rm ID", "Deletes a finished job with its folder, metrics and history."},
    {"metrics", "metrics ID [--key K] [--csv] [--since STEP]",
     "Without --key: every metric key joined by step (one column per key). With --key: step,\n"
     "value and time of that key. --csv writes CSV instead of a table; --since STEP only steps\n"
     "after STEP."},
    {"ckpt", "ckpt ls ID [--json]\nckpt download ID NAME [-o FILE] [--backbone] [--continue] [--force]",
     "ls: the job's checkpoints (name, step, epoch, size, sha256).\n"
     "download: streams NAME to FILE (default: NAME in the current directory) and checks its\n"
     "size and sha256 against the listing.\n"
     "  --backbone   a backbone export (torchvision names, loads into torchvision's resnet)\n"
     "  --continue   FILE holds the first part of an interrupted download: fetch the rest\n"
     "  --force      overwrite an existing FILE"},
    {"queue", "queue", "Running jobs, then queued ones in the order they will start."},
    {"devices", "devices", "The GPUs and which job holds each; CPU cores and job slots."},
    {"health", "health", "Whether mocod answers, its version, uptime and running jobs."},
};
#define N_COMMANDS ((int)(sizeof commands / sizeof commands[0]))

/* A synopsis line that starts with a space continues the one before; any other is a new form
 * of the command and gets the prefix again. */
static void print_synopsis(const char *prefix, const char *again, const char *synopsis)
{
    const char *line = synopsis;
    int forms = 0;
    while (*line) {
        const char *end = strchr(line, '\n');
        int n = end ? (int)(end - line) : (int)strlen(line);
        printf("%s%.*s\n", line[0] == ' ' ? "" : forms++ ? again : prefix, n, line);
        line += n + (end ? 1 : 0);
    }
}

static void print_exit_codes(void)
{
    puts("exit status (scripts may rely on it):\n"
         "  0  success\n"
         "  1  server-side error or request rejected (its message is printed); watch: a job did\n"
         "     not complete\n"
         "  2  usage error\n"
         "  3  not found (HTTP 404, e.g. no such job)\n"
         "  4  conflict (HTTP 409: not allowed in the job's state, e.g. cancel a finished job)\n"
         "  5  cannot connect to mocod\n"
         "  6  unauthorized (HTTP 401: set MOCOD_TOKEN)");
}

void usage_print(const char *command)
{
    if (command) {
        for (int i = 0; i < N_COMMANDS; i++)
            if (strcmp(commands[i].name, command) == 0) {
                print_synopsis("usage: mococtl [global options] ",
                               "   or: mococtl [global options] ", commands[i].synopsis);
                printf("\n%s\n", commands[i].detail);
                return;
            }
    }
    puts("mococtl — the command-line client of mocod, the MoCo training daemon\n"
         "\n"
         "usage: mococtl [--server URL] [--token T | --token-file FILE] COMMAND [ARGS...]\n"
         "\n"
         "  --server URL       mocod's address (default: $MOCOD_URL, else http://127.0.0.1:8080)\n"
         "  --token T          Bearer token (default: $MOCOD_TOKEN)\n"
         "  --token-file FILE  read the token from the first line of FILE\n"
         "\n"
         "commands:");
    for (int i = 0; i < N_COMMANDS; i++) print_synopsis("  ", "  ", commands[i].synopsis);
    puts("\n`mococtl COMMAND --help` explains one command.\n");
    print_exit_codes();
}
