/* submit.c — `mococtl submit FILE [--set k=v ...] [--name N] [--priority P] [--after ID]
 * [--not-before TIME] [--watch] [--dry-run]`: sends a job spec to mocod and prints the new id.
 */
#include "cli/cli.h"
#include "cli/format.h"
#include "cli/http.h"
#include "cli/spec_file.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --not-before: Unix seconds, "+10m" from now (s, m, h, d), or an RFC 3339 time that mocod
 * parses. NULL after a usage message. */
static cJSON *parse_not_before(const char *text)
{
    char *end;
    if (text[0] == '+') {
        double v = strtod(text + 1, &end);
        double unit = 0;
        if (end != text + 1 && v >= 0) {
            if (*end == '\0' || strcmp(end, "s") == 0) unit = 1;
            else if (strcmp(end, "m") == 0) unit = 60;
            else if (strcmp(end, "h") == 0) unit = 3600;
            else if (strcmp(end, "d") == 0) unit = 86400;
        }
        if (unit == 0) {
            cli_usage_error("submit", "--not-before %s: expected +N with s, m, h or d (e.g. "
                            "+30m), Unix seconds, or an RFC 3339 time", text);
            return NULL;
        }
        return cJSON_CreateNumber(floor(now_seconds() + v * unit));
    }
    double v = strtod(text, &end);
    if (end != text && *end == '\0' && isfinite(v)) return cJSON_CreateNumber(v);
    if (text[0] == '\0') {
        cli_usage_error("submit", "--not-before needs a time");
        return NULL;
    }
    return cJSON_CreateString(text); /* RFC 3339; mocod says so when it is not */
}

static void set_key(cJSON *spec, const char *key, cJSON *value)
{
    if (!value) die("out of memory building the job spec");
    cJSON_DeleteItemFromObjectCaseSensitive(spec, key);
    cJSON_AddItemToObject(spec, key, value);
}

int cmd_submit(Http *http, int argc, char **argv)
{
    static const struct option options[] = {
        {"set", required_argument, NULL, 's'},   {"name", required_argument, NULL, 'n'},
        {"priority", required_argument, NULL, 'p'}, {"after", required_argument, NULL, 'a'},
        {"not-before", required_argument, NULL, 'b'}, {"watch", no_argument, NULL, 'w'},
        {"dry-run", no_argument, NULL, 'd'},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char **sets = xcalloc((size_t)argc, sizeof(char *));
    int n_sets = 0, watch = 0, dry_run = 0;
    const char *name = NULL, *not_before = NULL;
    long long priority = 0, after = 0;
    int have_priority = 0, have_after = 0, rc = EXIT_USAGE, c;
    cJSON *spec = NULL;
    while ((c = getopt_long(argc, argv, ":s:n:p:a:b:wdh", options, NULL)) != -1) {
        switch (c) {
        case 's': sets[n_sets++] = optarg; break;
        case 'n': name = optarg; break;
        case 'p':
            if (cli_parse_int(optarg, -1000000000, 1000000000, &priority) != 0) {
                rc = cli_usage_error("submit", "--priority %s: expected a whole number", optarg);
                goto out;
            }
            have_priority = 1;
            break;
        case 'a':
            if (cli_parse_int(optarg, 1, INT64_MAX, &after) != 0) {
                rc = cli_usage_error("submit", "--after %s: expected a job id", optarg);
                goto out;
            }
            have_after = 1;
            break;
        case 'b': not_before = optarg; break;
        case 'w': watch = 1; break;
        case 'd': dry_run = 1; break;
        case 'h': usage_print("submit"); rc = EXIT_OK; goto out;
        default: rc = cli_bad_option("submit", c, argv, optind); goto out;
        }
    }
    if (optind != argc - 1) {
        rc = cli_usage_error("submit", optind >= argc ? "which job spec? give a YAML or JSON file"
                                                      : "give exactly one job spec file");
        goto out;
    }
    const char *path = argv[optind];
    spec = spec_file_load(path, sets, n_sets);
    if (!spec) {
        rc = EXIT_USAGE;
        goto out;
    }
    if (spec_absolute_paths(spec) != 0) {
        rc = EXIT_USAGE;
        goto out;
    }
    if (name) set_key(spec, "name", cJSON_CreateString(name));
    if (have_priority) set_key(spec, "priority", cJSON_CreateNumber((double)priority));
    if (have_after) set_key(spec, "after", cJSON_CreateNumber((double)after));
    if (not_before) {
        cJSON *nb = parse_not_before(not_before);
        if (!nb) goto out;
        set_key(spec, "not_before", nb);
    }
    if (dry_run) {
        char *text = cJSON_Print(spec);
        if (!text) die("out of memory printing the job spec");
        puts(text);
        free(text);
        rc = EXIT_OK;
        goto out;
    }

    cJSON *job = NULL;
    rc = api_call(http, "POST", "/api/v1/jobs", spec, &job, "submit");
    if (rc != EXIT_OK) goto out;
    double id = json_num_or(job, "id", 0);
    if (!(id >= 1)) {
        cli_error("submit: mocod's answer has no job id; is %s really mocod?", http->base);
        cJSON_Delete(job);
        rc = EXIT_SERVER;
        goto out;
    }
    const char *jname = json_str(job, "name"), *kind = json_str(job, "kind");
    const char *state = json_str(job, "state");
    printf("%lld\n", (long long)id);
    fflush(stdout);
    fprintf(stderr, "mococtl: submitted job %lld%s%s%s (%s, %s)\n", (long long)id,
            jname ? " '" : "", jname ? jname : "", jname ? "'" : "", kind ? kind : "?",
            state ? state : "?");
    cJSON_Delete(job);
    if (watch) {
        int64_t ids[1] = {(int64_t)id};
        rc = watch_jobs(http, ids, 1);
    }
out:
    cJSON_Delete(spec);
    free(sets);
    return rc;
}
