/* metrics.c — `mococtl metrics ID [--key K] [--csv] [--since STEP]`: a job's metric history.
 * One key: step, value, time. No key: every key joined by step, one column each (a key without
 * a point at a step leaves its cell empty: eval metrics come once an epoch, loss every step).
 */
#include "cli/cli.h"
#include "cli/format.h"
#include "cli/http.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Points per request: the most mocod gives (docs/mocod-api.md). */
#define PAGE_POINTS 10000

typedef struct {
    char *key;
    long long *steps;
    double *values, *ts;
    int n, cap;
} Series;

static void series_add(Series *s, long long step, double value, double ts)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->steps = xrealloc(s->steps, (size_t)s->cap * sizeof *s->steps);
        s->values = xrealloc(s->values, (size_t)s->cap * sizeof *s->values);
        s->ts = xrealloc(s->ts, (size_t)s->cap * sizeof *s->ts);
    }
    s->steps[s->n] = step;
    s->values[s->n] = value;
    s->ts[s->n] = ts;
    s->n++;
}

static void series_free(Series *s)
{
    free(s->key);
    free(s->steps);
    free(s->values);
    free(s->ts);
}

/* Every point of one key after `since`, following the pages. */
static int fetch_series(Http *http, int64_t id, long long since, Series *s)
{
    char *key = http_escape(http, s->key);
    char *token = NULL, what[256];
    snprintf(what, sizeof what, "metric %s of job %lld", s->key, (long long)id);
    int rc = EXIT_OK;
    do {
        char path[1024];
        int n = snprintf(path, sizeof path, "/api/v1/jobs/%lld/metrics?key=%s&max_results=%d",
                         (long long)id, key, PAGE_POINTS);
        if (since >= 0) n += snprintf(path + n, sizeof path - (size_t)n, "&since_step=%lld", since);
        if (token) {
            char *t = http_escape(http, token);
            n += snprintf(path + n, sizeof path - (size_t)n, "&page_token=%s", t);
            curl_free(t);
        }
        if ((size_t)n >= sizeof path) {
            cli_error("%s: the key is too long", what);
            rc = EXIT_USAGE;
            break;
        }
        cJSON *page = NULL;
        rc = api_call(http, "GET", path, NULL, &page, what);
        if (rc != EXIT_OK) break;
        const cJSON *p;
        cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(page, "points")) {
            double step, value;
            if (json_num(p, "step", &step) && json_num(p, "value", &value))
                series_add(s, (long long)step, value, json_num_or(p, "ts", 0));
        }
        const char *next = json_str(page, "next_page_token");
        /* the same token again would fetch the same page forever (see list.c) */
        if (next && *next && token && strcmp(next, token) == 0) {
            cli_error("%s: the server at %s answered page_token %s with the same "
                      "next_page_token; is that address really mocod?", what, http->base, token);
            cJSON_Delete(page);
            rc = EXIT_SERVER;
            break;
        }
        free(token);
        token = NULL;
        if (next && *next) token = xstrdup(next);
        cJSON_Delete(page);
    } while (token);
    free(token);
    curl_free(key);
    return rc;
}

/* Column order of the joined table: the training metrics as moco-train prints them, then the
 * evaluations and anything else by name (mocod lists keys alphabetically). */
static int key_rank(const char *key)
{
    static const char *const first[] = {"loss", "acc1", "acc5", "lr", "images_per_s"};
    for (int i = 0; i < 5; i++)
        if (strcmp(key, first[i]) == 0) return i;
    return 5;
}

static int cmp_series(const void *a, const void *b)
{
    const Series *x = a, *y = b;
    int rx = key_rank(x->key), ry = key_rank(y->key);
    if (rx != ry) return rx - ry;
    return strcmp(x->key, y->key);
}

static void print_one(const Series *s, int csv)
{
    if (csv) {
        printf("step,value,ts\n");
        for (int i = 0; i < s->n; i++)
            printf("%lld,%.9g,%.3f\n", s->steps[i], s->values[i], s->ts[i]);
        return;
    }
    static const char *headers[] = {"STEP", "VALUE", "TIME"};
    Table t;
    table_init(&t, 3, headers, "rrl");
    for (int i = 0; i < s->n; i++) {
        char step[32], value[32], when[64];
        snprintf(step, sizeof step, "%lld", s->steps[i]);
        snprintf(value, sizeof value, "%.6g", s->values[i]);
        fmt_time(s->ts[i], when, sizeof when);
        const char *cells[] = {step, value, when};
        table_add(&t, cells);
    }
    table_print(&t);
    table_free(&t);
}

static int cmp_step(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

/* Index of step in a series sorted by step, or -1. */
static int find_step(const Series *s, long long step)
{
    int lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (s->steps[mid] == step) return mid;
        if (s->steps[mid] < step) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

static void print_joined(const Series *ss, int n, int csv)
{
    int total = 0;
    for (int k = 0; k < n; k++) total += ss[k].n;
    long long *steps = xmalloc((size_t)(total ? total : 1) * sizeof *steps);
    int m = 0;
    for (int k = 0; k < n; k++)
        for (int i = 0; i < ss[k].n; i++) steps[m++] = ss[k].steps[i];
    qsort(steps, (size_t)m, sizeof *steps, cmp_step);
    int u = 0;
    for (int i = 0; i < m; i++)
        if (u == 0 || steps[u - 1] != steps[i]) steps[u++] = steps[i];

    const char **headers = xcalloc((size_t)n + 1, sizeof *headers);
    char *right = xcalloc((size_t)n + 2, 1);
    headers[0] = csv ? "step" : "STEP";
    for (int k = 0; k < n; k++) headers[k + 1] = ss[k].key;
    memset(right, 'r', (size_t)n + 1);
    Table t;
    table_init(&t, n + 1, headers, right);
    char **cells = xcalloc((size_t)n + 1, sizeof *cells);
    for (int k = 0; k <= n; k++) cells[k] = xmalloc(32);
    if (csv) {
        for (int k = 0; k <= n; k++) printf("%s%s", k ? "," : "", headers[k]);
        putchar('\n');
    }
    for (int i = 0; i < u; i++) {
        snprintf(cells[0], 32, "%lld", steps[i]);
        for (int k = 0; k < n; k++) {
            int j = find_step(&ss[k], steps[i]);
            if (j < 0)
                snprintf(cells[k + 1], 32, "%s", csv ? "" : "-");
            else
                snprintf(cells[k + 1], 32, csv ? "%.9g" : "%.6g", ss[k].values[j]);
        }
        if (csv) {
            for (int k = 0; k <= n; k++) printf("%s%s", k ? "," : "", cells[k]);
            putchar('\n');
        } else {
            table_add(&t, (const char **)cells);
        }
    }
    if (!csv) table_print(&t);
    table_free(&t);
    for (int k = 0; k <= n; k++) free(cells[k]);
    free(cells);
    free(right);
    free(headers);
    free(steps);
}

int cmd_metrics(Http *http, int argc, char **argv)
{
    static const struct option options[] = {
        {"key", required_argument, NULL, 'k'}, {"csv", no_argument, NULL, 'c'},
        {"since", required_argument, NULL, 's'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key = NULL;
    int csv = 0, c;
    long long since = -1; /* -1: no since_step, every step */
    while ((c = getopt_long(argc, argv, ":k:cs:h", options, NULL)) != -1) {
        switch (c) {
        case 'k': key = optarg; break;
        case 'c': csv = 1; break;
        case 's':
            if (cli_parse_int(optarg, 0, INT64_MAX, &since) != 0)
                return cli_usage_error("metrics", "--since %s: expected a step number", optarg);
            break;
        case 'h': usage_print("metrics"); return EXIT_OK;
        default: return cli_bad_option("metrics", c, argv, optind);
        }
    }
    if (optind != argc - 1) return cli_usage_error("metrics", "give one job id");
    int64_t id;
    if (cli_parse_job_id("metrics", argv[optind], &id) != 0) return EXIT_USAGE;

    Series *series = NULL;
    int n = 0, rc = EXIT_OK;
    if (key) {
        series = xcalloc(1, sizeof *series);
        series[0].key = xstrdup(key);
        n = 1;
    } else {
        char path[96], what[64];
        snprintf(path, sizeof path, "/api/v1/jobs/%lld/metrics", (long long)id);
        snprintf(what, sizeof what, "metrics of job %lld", (long long)id);
        cJSON *doc = NULL;
        rc = api_call(http, "GET", path, NULL, &doc, what);
        if (rc != EXIT_OK) return rc;
        const cJSON *keys = cJSON_GetObjectItemCaseSensitive(doc, "keys");
        series = xcalloc((size_t)cJSON_GetArraySize(keys) + 1, sizeof *series);
        const cJSON *k;
        cJSON_ArrayForEach(k, keys)
            if (cJSON_IsString(k)) series[n++].key = xstrdup(k->valuestring);
        cJSON_Delete(doc);
        qsort(series, (size_t)n, sizeof *series, cmp_series);
    }
    for (int k = 0; k < n && rc == EXIT_OK; k++) rc = fetch_series(http, id, since, &series[k]);
    if (rc == EXIT_OK) {
        if (key)
            print_one(&series[0], csv);
        else if (n == 0)
            fprintf(stderr, "mococtl: job %lld has no metrics yet\n", (long long)id);
        else
            print_joined(series, n, csv);
    }
    for (int k = 0; k < n; k++) series_free(&series[k]);
    free(series);
    if (rc == EXIT_OK && fflush(stdout) != 0) {
        cli_error("cannot write to stdout");
        return EXIT_SERVER;
    }
    return rc;
}
