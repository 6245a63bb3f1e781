/* watch.c — `mococtl watch ID [ID...]` (and `submit --watch`): live progress until every
 * watched job has finished. On a terminal one redrawn bar per job; otherwise (a pipe, a CI
 * log) one plain line per change. Exit status 0 when every job completed, 1 otherwise.
 *
 * It polls GET /api/v1/jobs/{id} once a second rather than reading the event stream: the job
 * object already carries progress, ETA and the last metrics, polling survives a mocod restart
 * without any resubscription logic, and one small request per job per second costs nothing.
 */
#include "cli/cli.h"
#include "cli/format.h"
#include "cli/http.h"
#include "cli/jobs_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* How long to keep trying to reach a mocod that went away (a restart takes seconds). */
#define RECONNECT_SECONDS 60
#define BAR_WIDE 20    /* progress bar columns on a terminal of 140 columns or more */
#define BAR_NARROW 10  /* below: the metrics at the end of the line matter more */
#define NAME_MAX_COLS 28

typedef struct {
    int64_t id;
    cJSON *job;        /* the latest job object */
    int finished;      /* completed, failed or canceled (or deleted while watched) */
    int gone;          /* 404 while watched */
    char change[512];  /* non-TTY: what the last printed line said, to print only changes */
} Watched;

static int terminal_width(void)
{
    struct winsize ws;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 100;
}

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Appends printf output to buf at *o, never past n. */
#define APPEND(buf, n, o, ...)                                                             \
    do {                                                                                   \
        if (*(o) < (n)) *(o) += (size_t)snprintf((buf) + *(o), (n) - *(o), __VA_ARGS__);   \
    } while (0)

/* " knn 31.0/80.1 lincls 70.2/89.9": every evaluation's top-1/top-5 among the last values. */
static void eval_values(const cJSON *last, char *buf, size_t n, size_t *o)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, last) {
        size_t len = strlen(item->string);
        if (!cJSON_IsNumber(item) || len <= 5 || strcmp(item->string + len - 5, "_top1") != 0)
            continue;
        char top5[128];
        snprintf(top5, sizeof top5, "%.*s_top5", (int)(len - 5), item->string);
        double t5;
        if (json_num(last, top5, &t5))
            APPEND(buf, n, o, "  %.*s %.1f/%.1f", (int)(len - 5), item->string,
                   item->valuedouble, t5);
        else
            APPEND(buf, n, o, "  %.*s %.1f", (int)(len - 5), item->string, item->valuedouble);
    }
}

/* The metrics part shared by both displays: epoch, step, loss, acc, evaluations. */
static void progress_values(const cJSON *job, char *buf, size_t n, size_t *o)
{
    double epochs = json_num_or(job, "epochs", 0), total = json_num_or(job, "total_steps", 0);
    if (epochs > 0) APPEND(buf, n, o, "  epoch %.0f/%.0f", json_num_or(job, "epoch", 0), epochs);
    if (total > 0) APPEND(buf, n, o, "  step %.0f/%.0f", json_num_or(job, "step", 0), total);
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(job, "last");
    double v;
    if (json_num(last, "loss", &v)) APPEND(buf, n, o, "  loss %.4f", v);
    if (json_num(last, "acc1", &v)) APPEND(buf, n, o, "  acc1 %.2f", v);
    if (json_num(last, "acc5", &v)) APPEND(buf, n, o, "  acc5 %.2f", v);
    eval_values(last, buf, n, o);
}

static double job_progress(const cJSON *job)
{
    const char *state = json_str(job, "state");
    if (state && strcmp(state, "completed") == 0) return 1.0;
    double p = json_num_or(job, "progress", 0);
    return p < 0 ? 0 : p > 1 ? 1 : p;
}

/* Code points of UTF-8 text (a column each: names are rarely wide). */
static int utf8_columns(const char *text)
{
    int cols = 0;
    for (const char *p = text; *p; p++)
        if (((unsigned char)*p & 0xc0) != 0x80) cols++;
    return cols;
}

/* Appends text cut to `cols` code points (never inside a character) and padded to them. */
static void append_column(char *buf, size_t n, size_t *o, const char *text, int cols)
{
    int seen = 0;
    const char *p = text;
    for (; *p; p++) {
        if (((unsigned char)*p & 0xc0) != 0x80 && seen++ == cols) break;
        APPEND(buf, n, o, "%c", *p);
    }
    for (; seen < cols; seen++) APPEND(buf, n, o, " ");
}

/* One terminal line: "  7 name  running [=====>     ]  44%  epoch ... 31.5 img/s  ETA 1m35s" */
static void tty_line(const Watched *w, int name_cols, int bar, char *buf, size_t n)
{
    size_t o = 0;
    const cJSON *job = w->job;
    const char *name = json_str(job, "name"), *state = w->gone ? "deleted" : json_str(job, "state");
    APPEND(buf, n, &o, "%4lld ", (long long)w->id);
    append_column(buf, n, &o, name ? name : "", name_cols);
    APPEND(buf, n, &o, " %-9s ", state ? state : "?");
    double p = job_progress(job);
    int filled = (int)(p * bar + 0.5);
    APPEND(buf, n, &o, "[");
    for (int i = 0; i < bar; i++)
        APPEND(buf, n, &o, "%c", i < filled ? '=' : (i == filled ? '>' : ' '));
    APPEND(buf, n, &o, "] %3.0f%%", p * 100);
    /* ETA and speed before the metrics: a narrow terminal cuts the end of the line */
    double v;
    if (!w->finished && json_num(job, "eta_s", &v)) {
        char eta[32];
        fmt_duration(v, eta, sizeof eta);
        APPEND(buf, n, &o, "  ETA %s", eta);
    }
    if (!w->finished && json_num(job, "images_per_s", &v) && v > 0)
        APPEND(buf, n, &o, "  %.1f img/s", v);
    const char *reason = json_str(job, "reason");
    if (w->finished && reason && *reason) APPEND(buf, n, &o, "  (%s)", reason);
    progress_values(job, buf, n, &o);
}

/* Cuts UTF-8 text after `columns` code points (one column each: names are rarely wide). */
static void truncate_columns(char *text, int columns)
{
    int seen = 0;
    for (char *p = text; *p; p++)
        if (((unsigned char)*p & 0xc0) != 0x80 && seen++ == columns) {
            *p = '\0';
            return;
        }
}

static void draw_tty(const Watched *ws, int n, int redraw)
{
    int width = terminal_width();
    /* the name column as wide as the longest name watched (within reason), so that names
     * like lincls_demo_cifar10_small stay readable */
    int name_cols = 4;
    for (int i = 0; i < n; i++) {
        const char *name = json_str(ws[i].job, "name");
        int len = name ? utf8_columns(name) : 0;
        if (len > name_cols) name_cols = len < NAME_MAX_COLS ? len : NAME_MAX_COLS;
    }
    int bar = width >= 140 ? BAR_WIDE : BAR_NARROW;
    if (redraw) printf("\033[%dA", n); /* back to the first line of the previous frame */
    for (int i = 0; i < n; i++) {
        char line[1024];
        tty_line(&ws[i], name_cols, bar, line, sizeof line);
        truncate_columns(line, width - 1); /* a wrapped line would break the redraw */
        printf("\r\033[2K%s\n", line);
    }
    fflush(stdout);
}

/* Plain output: a line when the job's state, step or metrics change. */
static void print_changes(Watched *w)
{
    char change[512], line[768];
    size_t o = 0;
    const cJSON *job = w->job;
    const char *state = w->gone ? "deleted" : json_str(job, "state");
    APPEND(change, sizeof change, &o, "%s %3.0f%%", state ? state : "?", job_progress(job) * 100);
    progress_values(job, change, sizeof change, &o);
    if (strcmp(change, w->change) == 0) return;
    snprintf(w->change, sizeof w->change, "%s", change);
    const char *name = json_str(job, "name");
    o = 0;
    APPEND(line, sizeof line, &o, "job %lld%s%s: %s", (long long)w->id, name ? " " : "",
           name ? name : "", change);
    double v;
    if (!w->finished && json_num(job, "images_per_s", &v) && v > 0)
        APPEND(line, sizeof line, &o, "  %.1f img/s", v);
    if (!w->finished && json_num(job, "eta_s", &v)) {
        char eta[32];
        fmt_duration(v, eta, sizeof eta);
        APPEND(line, sizeof line, &o, "  ETA %s", eta);
    }
    const char *reason = json_str(job, "reason");
    if (w->finished && reason && *reason) APPEND(line, sizeof line, &o, "  (%s)", reason);
    puts(line);
    fflush(stdout);
}

/* Fetches one job. EXIT_OK, EXIT_CONNECT when mocod cannot be reached (message not printed:
 * the caller retries first), or another exit code after a message. */
static int poll_job(Http *http, Watched *w, int quiet_connect)
{
    char path[64], what[64];
    snprintf(path, sizeof path, "/api/v1/jobs/%lld", (long long)w->id);
    snprintf(what, sizeof what, "watch job %lld", (long long)w->id);
    HttpResponse r;
    http_request(http, "GET", path, NULL, NULL, 0, NULL, &r);
    if (r.curl_code != CURLE_OK && quiet_connect) {
        http_response_free(&r);
        return EXIT_CONNECT;
    }
    int rc = http_check(http, &r, what);
    if (rc == EXIT_OK) {
        cJSON *job = cJSON_ParseWithLength(r.body, r.len);
        if (!job) {
            cli_error("%s: mocod's answer is not JSON; is %s really mocod?", what, http->base);
            rc = EXIT_SERVER;
        } else {
            cJSON_Delete(w->job);
            w->job = job;
            w->finished = job_state_finished(json_str(job, "state"));
        }
    }
    http_response_free(&r);
    return rc;
}

int watch_jobs(Http *http, const int64_t *ids, int n)
{
    Watched *ws = xcalloc((size_t)n, sizeof *ws);
    for (int i = 0; i < n; i++) ws[i].id = ids[i];
    int tty = isatty(STDOUT_FILENO), drawn = 0, rc = EXIT_OK, first = 1;
    double lost_since = 0;
    for (;;) {
        int all_done = 1, lost = 0;
        for (int i = 0; i < n && rc == EXIT_OK; i++) {
            if (ws[i].finished) continue;
            int prc = poll_job(http, &ws[i], !first);
            if (prc == EXIT_CONNECT && !first) { /* it answered before: a restart? */
                lost = 1;
                all_done = 0;
                break;
            }
            if (prc == EXIT_NOT_FOUND && !first) { /* deleted while we watched */
                ws[i].gone = ws[i].finished = 1;
                continue;
            }
            if (prc != EXIT_OK) rc = prc;
            if (!ws[i].finished) all_done = 0;
        }
        if (rc != EXIT_OK) break;
        first = 0;
        if (lost) {
            if (lost_since == 0) {
                lost_since = now_seconds();
                fprintf(stderr, "mococtl: lost mocod at %s; retrying for %d s...\n", http->base,
                        RECONNECT_SECONDS);
            } else if (now_seconds() - lost_since > RECONNECT_SECONDS) {
                cli_error("watch: mocod at %s has not answered for %d s; giving up (the jobs go "
                          "on; `mococtl watch` again later)", http->base, RECONNECT_SECONDS);
                rc = EXIT_CONNECT;
                break;
            }
            sleep_seconds(1.0);
            continue;
        }
        lost_since = 0;
        if (tty) {
            draw_tty(ws, n, drawn);
            drawn = 1;
        } else {
            for (int i = 0; i < n; i++) print_changes(&ws[i]);
        }
        if (all_done) break;
        sleep_seconds(1.0);
    }
    if (rc == EXIT_OK) {
        int all_completed = 1;
        for (int i = 0; i < n; i++) {
            const char *state = json_str(ws[i].job, "state");
            if (ws[i].gone || !state || strcmp(state, "completed") != 0) all_completed = 0;
        }
        rc = all_completed ? EXIT_OK : EXIT_SERVER;
    }
    for (int i = 0; i < n; i++) cJSON_Delete(ws[i].job);
    free(ws);
    return rc;
}

int cmd_watch(Http *http, int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("watch", "give one or more job ids");
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage_print("watch");
            return EXIT_OK;
        }
    int n = argc - 1;
    int64_t *ids = xcalloc((size_t)n, sizeof *ids);
    for (int i = 0; i < n; i++)
        if (cli_parse_job_id("watch", argv[i + 1], &ids[i]) != 0) {
            free(ids);
            return EXIT_USAGE;
        }
    int rc = watch_jobs(http, ids, n);
    free(ids);
    return rc;
}
