/* logs.c — `mococtl logs ID [-f] [--offset N]`: the worker's log, streamed to stdout. With -f
 * it follows until the job ends, and when the connection drops (mocod restarting) it reconnects
 * at the byte it had reached, so no line is printed twice or lost.
 */
#include "cli/cli.h"
#include "cli/http.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* How long -f keeps trying to reach a mocod that went away (a restart takes seconds). */
#define FOLLOW_RETRY_SECONDS 60

typedef struct {
    long long offset;   /* bytes of the log written so far, counted from its start */
    int follow;
    int write_failed;
} LogSink;

static int write_log(const char *data, size_t len, void *user)
{
    LogSink *s = user;
    if (fwrite(data, 1, len, stdout) != len) {
        s->write_failed = errno ? errno : EIO;
        return -1;
    }
    if (s->follow && fflush(stdout) != 0) {
        s->write_failed = errno ? errno : EIO;
        return -1;
    }
    s->offset += (long long)len;
    return 0;
}

int cmd_logs(Http *http, int argc, char **argv)
{
    static const struct option options[] = {
        {"follow", no_argument, NULL, 'f'}, {"offset", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},   {NULL, 0, NULL, 0},
    };
    LogSink sink = {0, 0, 0};
    int c;
    while ((c = getopt_long(argc, argv, ":fo:h", options, NULL)) != -1) {
        switch (c) {
        case 'f': sink.follow = 1; break;
        case 'o':
            if (cli_parse_int(optarg, 0, INT64_MAX, &sink.offset) != 0)
                return cli_usage_error("logs", "--offset %s: expected a byte offset (0 or more)",
                                       optarg);
            break;
        case 'h': usage_print("logs"); return EXIT_OK;
        default: return cli_bad_option("logs", c, argv, optind);
        }
    }
    if (optind != argc - 1) return cli_usage_error("logs", "give one job id");
    int64_t id;
    if (cli_parse_job_id("logs", argv[optind], &id) != 0) return EXIT_USAGE;

    char what[64];
    snprintf(what, sizeof what, "logs of job %lld", (long long)id);
    int waited = 0, connected = 0, rc;
    for (;;) {
        long long offset_before = sink.offset;
        char path[128];
        snprintf(path, sizeof path, "/api/v1/jobs/%lld/logs?offset=%lld%s", (long long)id,
                 sink.offset, sink.follow ? "&follow=1" : "");
        HttpResponse r;
        /* a follow stream may be quiet for hours; a plain read has no reason to hang */
        http_stream(http, path, NULL, sink.follow ? 0 : 600, write_log, &sink, &r);
        if (sink.write_failed) {
            http_response_free(&r);
            cli_error("cannot write the log to stdout: %s", strerror(sink.write_failed));
            return EXIT_SERVER;
        }
        int transport_failed = r.curl_code != CURLE_OK;
        int ok_status = r.status >= 200 && r.status < 300;
        if (ok_status) connected = 1;
        if (sink.offset > offset_before) waited = 0; /* it was working: a fresh minute */
        if (sink.follow && connected && transport_failed && (ok_status || r.status == 0) &&
            waited < FOLLOW_RETRY_SECONDS) {
            /* the stream broke or mocod is restarting: go on from where we are */
            if (waited == 0)
                fprintf(stderr, "mococtl: lost mocod (%s); reconnecting at byte %lld...\n",
                        r.curl_error, sink.offset);
            http_response_free(&r);
            sleep(1);
            waited++;
            continue;
        }
        rc = http_check(http, &r, what);
        http_response_free(&r);
        if (rc != EXIT_OK || !transport_failed) break;
    }
    if (fflush(stdout) != 0) {
        cli_error("cannot write the log to stdout: %s", strerror(errno));
        return EXIT_SERVER;
    }
    return rc;
}
