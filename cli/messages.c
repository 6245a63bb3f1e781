/* messages.c — error messages and argument checks shared by mococtl's commands. */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mococtl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

int cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mococtl: ", stderr);
    if (command) fprintf(stderr, "%s: ", command);
    vfprintf(stderr, fmt, ap);
    if (command)
        fprintf(stderr, "\n(see `mococtl %s --help`)\n", command);
    else
        fputs("\n(see `mococtl --help`)\n", stderr);
    va_end(ap);
    return EXIT_USAGE;
}

int cli_parse_int(const char *text, long long min, long long max, long long *out)
{
    if (!text || !*text) return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

int cli_parse_job_id(const char *command, const char *text, int64_t *id)
{
    long long v;
    if (cli_parse_int(text, 1, INT64_MAX, &v) != 0) {
        cli_usage_error(command, "'%s' is not a job id (a positive number, as `mococtl ls` "
                        "shows)", text);
        return -1;
    }
    *id = v;
    return 0;
}

int cli_bad_option(const char *command, int c, char **argv, int optind_now)
{
    const char *arg = optind_now > 0 ? argv[optind_now - 1] : "?";
    if (c == ':') return cli_usage_error(command, "%s needs a value", arg);
    return cli_usage_error(command, "unknown option %s", arg);
}
