/* list.c — `mococtl ls` (jobs, newest first, paged) and `mococtl queue` (running, then queued
 * in start order). */
#include "cli/cli.h"
#include "cli/http.h"
#include "cli/jobs_table.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends the jobs of `page` to `all` (moving them). */
static void take_jobs(cJSON *all, cJSON *page, const char *key)
{
    cJSON *jobs = cJSON_DetachItemFromObjectCaseSensitive(page, key);
    if (!cJSON_IsArray(jobs)) {
        cJSON_Delete(jobs);
        return;
    }
    cJSON *job;
    while ((job = cJSON_DetachItemFromArray(jobs, 0)) != NULL) cJSON_AddItemToArray(all, job);
    cJSON_Delete(jobs);
}

int cmd_ls(Http *http, int argc, char **argv)
{
    static const struct option options[] = {
        {"state", required_argument, NULL, 's'}, {"limit", required_argument, NULL, 'n'},
        {"all", no_argument, NULL, 'a'},         {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    const char *states = NULL;
    long long limit = 0;
    int all = 0, json = 0, c;
    while ((c = getopt_long(argc, argv, ":s:n:ajh", options, NULL)) != -1) {
        switch (c) {
        case 's': states = optarg; break;
        case 'n':
            if (cli_parse_int(optarg, 1, 500, &limit) != 0)
                return cli_usage_error("ls", "--limit %s: expected a number from 1 to 500",
                                       optarg);
            break;
        case 'a': all = 1; break;
        case 'j': json = 1; break;
        case 'h': usage_print("ls"); return EXIT_OK;
        default: return cli_bad_option("ls", c, argv, optind);
        }
    }
    if (optind < argc) return cli_usage_error("ls", "unexpected argument '%s'", argv[optind]);

    cJSON *jobs = cJSON_CreateArray();
    if (!jobs) die("out of memory");
    char *token = NULL;
    int more = 0, rc = EXIT_OK;
    do {
        char path[1024];
        int n = snprintf(path, sizeof path, "/api/v1/jobs?limit=%lld", limit ? limit : 50);
        if (states) {
            char *s = http_escape(http, states);
            n += snprintf(path + n, sizeof path - (size_t)n, "&state=%s", s);
            curl_free(s);
        }
        if (token) {
            char *t = http_escape(http, token);
            n += snprintf(path + n, sizeof path - (size_t)n, "&page_token=%s", t);
            curl_free(t);
        }
        if ((size_t)n >= sizeof path) {
            rc = cli_usage_error("ls", "--state is too long");
            break;
        }
        cJSON *page = NULL;
        rc = api_call(http, "GET", path, NULL, &page, "list jobs");
        if (rc != EXIT_OK) break;
        const char *next = json_str(page, "next_page_token");
        /* A server that hands back the page it was asked for would keep --all going forever
         * (and growing); mocod's tokens always move on. */
        if (next && *next && token && strcmp(next, token) == 0) {
            cli_error("list jobs: the server at %s answered page_token %s with the same "
                      "next_page_token; is that address really mocod?", http->base, token);
            cJSON_Delete(page);
            rc = EXIT_SERVER;
            break;
        }
        free(token);
        token = NULL;
        if (next && *next) token = xstrdup(next);
        take_jobs(jobs, page, "jobs");
        cJSON_Delete(page);
        more = token != NULL;
    } while (all && more);
    free(token);

    if (rc == EXIT_OK) {
        if (json) {
            char *text = cJSON_Print(jobs);
            if (!text) die("out of memory");
            puts(text);
            free(text);
        } else {
            Table t;
            jobs_table_init(&t);
            const cJSON *job;
            cJSON_ArrayForEach(job, jobs) jobs_table_add(&t, job);
            table_print(&t);
            table_free(&t);
            if (more)
                fprintf(stderr, "mococtl: more jobs than shown; --all lists every one\n");
        }
    }
    cJSON_Delete(jobs);
    return rc;
}

int cmd_queue(Http *http, int argc, char **argv)
{
    if (argc > 1) {
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
            usage_print("queue");
            return EXIT_OK;
        }
        return cli_usage_error("queue", "takes no arguments");
    }
    cJSON *q = NULL;
    int rc = api_call(http, "GET", "/api/v1/queue", NULL, &q, "queue");
    if (rc != EXIT_OK) return rc;
    static const char *sections[] = {"running", "queued"};
    for (int s = 0; s < 2; s++) {
        const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(q, sections[s]);
        int n = cJSON_GetArraySize(jobs);
        printf("%s%s (%d)%s\n", s ? "\n" : "", sections[s], n,
               s == 1 && n > 0 ? ", in the order they will start:" : "");
        if (n == 0) continue;
        Table t;
        jobs_table_init(&t);
        const cJSON *job;
        cJSON_ArrayForEach(job, jobs) jobs_table_add(&t, job);
        table_print(&t);
        table_free(&t);
    }
    cJSON_Delete(q);
    return EXIT_OK;
}
