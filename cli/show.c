/* show.c — `mococtl show ID [--json]`: one job in words, with its state history. */
#include "cli/cli.h"
#include "cli/format.h"
#include "cli/http.h"
#include "cli/jobs_table.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void row(const char *label, const char *value)
{
    printf("  %-11s %s\n", label, value && *value ? value : "-");
}

static void time_row(const char *label, const cJSON *job, const char *key)
{
    double ts;
    char when[64] = "-", ago[32], text[128];
    if (json_num(job, key, &ts) && ts > 0) {
        fmt_time(ts, when, sizeof when);
        fmt_age(ts, ago, sizeof ago);
        snprintf(text, sizeof text, "%s (%s ago)", when, ago);
        row(label, text);
    } else {
        row(label, "-");
    }
}

static void append_value(const char *key, double value, char *buf, size_t n, size_t *o)
{
    if (*o >= n) return;
    int decimals = strstr(key, "loss") ? 4 : strcmp(key, "lr") == 0 ? 6 : 2;
    *o += (size_t)snprintf(buf + *o, n - *o, "%s%s %.*f", *o ? "  " : "", key, decimals, value);
}

/* "loss 5.4900  acc1 54.20  acc5 74.30  knn_top1 31.00 ... lr 0.030000" from the job's last
 * values: moco-train's order, evaluations next, the learning rate last; img/s is on the
 * "speed" line. */
static void last_values(const cJSON *last, char *buf, size_t n)
{
    static const char *const first[] = {"loss", "acc1", "acc5"};
    size_t o = 0;
    double v;
    buf[0] = '\0';
    for (int i = 0; i < 3; i++)
        if (json_num(last, first[i], &v)) append_value(first[i], v, buf, n, &o);
    const cJSON *item;
    cJSON_ArrayForEach(item, last) {
        const char *key = item->string;
        if (cJSON_IsNumber(item) && strcmp(key, "loss") && strcmp(key, "acc1") &&
            strcmp(key, "acc5") && strcmp(key, "lr") && strcmp(key, "images_per_s"))
            append_value(key, item->valuedouble, buf, n, &o);
    }
    if (json_num(last, "lr", &v)) append_value("lr", v, buf, n, &o);
}

static void print_job(const cJSON *job)
{
    char text[1024];
    const cJSON *spec = cJSON_GetObjectItemCaseSensitive(job, "spec");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(spec, "model");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(spec, "data");
    const char *name = json_str(job, "name");
    printf("job %.0f%s%s\n", json_num_or(job, "id", 0), name ? ": " : "", name ? name : "");

    const char *kind = json_str(job, "kind"), *arch = json_str(model, "arch");
    /* the MoCo method names how a pretraining trains; an evaluation only inherits it */
    const char *method = kind && strcmp(kind, "pretrain") == 0 ? json_str(spec, "method") : NULL;
    snprintf(text, sizeof text, "%s%s%s%s%s", kind ? kind : "?",
             method ? "  " : "", method ? method : "", arch ? "  " : "", arch ? arch : "");
    row("kind", text);
    const char *state = json_str(job, "state"), *reason = json_str(job, "reason");
    snprintf(text, sizeof text, "%s%s%s%s", state ? state : "?", reason && *reason ? "  (" : "",
             reason && *reason ? reason : "", reason && *reason ? ")" : "");
    row("state", text);
    snprintf(text, sizeof text, "%.0f", json_num_or(job, "priority", 0));
    row("priority", text);
    time_row("created", job, "created_at");
    time_row("started", job, "started_at");
    time_row("finished", job, "finished_at");
    double v;
    if (json_num(job, "after", &v)) {
        snprintf(text, sizeof text, "job %.0f completes", v);
        row("after", text);
    }
    if (json_num(job, "not_before", &v)) time_row("not before", job, "not_before");
    snprintf(text, sizeof text, "%.0f of %.0f", json_num_or(job, "restarts", 0),
             json_num_or(job, "max_restarts", 0));
    row("restarts", text);
    const cJSON *gpus = cJSON_GetObjectItemCaseSensitive(job, "gpus");
    size_t o = 0;
    text[0] = '\0';
    const cJSON *g;
    cJSON_ArrayForEach(g, gpus)
        if (cJSON_IsNumber(g) && o < sizeof text)
            o += (size_t)snprintf(text + o, sizeof text - o, "%s%d", o ? "," : "", g->valueint);
    row("gpus", o ? text : "none (CPU)");

    double total = json_num_or(job, "total_steps", 0), epochs = json_num_or(job, "epochs", 0);
    /* epoch and step only where the job has them (a kNN evaluation has neither) */
    size_t len = (size_t)snprintf(text, sizeof text, "%.1f%%", json_num_or(job, "progress", 0) * 100);
    if (epochs > 0 && len < sizeof text)
        len += (size_t)snprintf(text + len, sizeof text - len, "  epoch %.0f/%.0f",
                                json_num_or(job, "epoch", 0), epochs);
    if (total > 0 && len < sizeof text)
        snprintf(text + len, sizeof text - len, "  step %.0f/%.0f", json_num_or(job, "step", 0), total);
    row("progress", text);
    if (!job_state_finished(state) && json_num(job, "images_per_s", &v) && v > 0) {
        char eta[32] = "-";
        double e;
        if (json_num(job, "eta_s", &e)) fmt_duration(e, eta, sizeof eta);
        snprintf(text, sizeof text, "%.1f img/s  ETA %s", v, eta);
        row("speed", text);
    }
    last_values(cJSON_GetObjectItemCaseSensitive(job, "last"), text, sizeof text);
    row("last", text);
    const char *train = json_str(data, "train"), *val = json_str(data, "val");
    if (train) row("train data", train);
    if (val && *val) row("val data", val);
    const char *pretrained = json_str(model, "pretrained");
    if (pretrained && *pretrained) row("pretrained", pretrained);

    const cJSON *transitions = cJSON_GetObjectItemCaseSensitive(job, "transitions");
    if (cJSON_GetArraySize(transitions) > 0) {
        printf("transitions\n");
        const cJSON *tr;
        cJSON_ArrayForEach(tr, transitions) {
            char when[64];
            fmt_time(json_num_or(tr, "ts", 0), when, sizeof when);
            const char *from = json_str(tr, "from"), *to = json_str(tr, "to");
            const char *why = json_str(tr, "reason");
            if (why && *why)
                printf("  %s  %-9s -> %-9s  %s\n", when, from ? from : "-", to ? to : "?", why);
            else
                printf("  %s  %-9s -> %s\n", when, from ? from : "-", to ? to : "?");
        }
    }
}

int cmd_show(Http *http, int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int json = 0, c;
    while ((c = getopt_long(argc, argv, ":jh", options, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': usage_print("show"); return EXIT_OK;
        default: return cli_bad_option("show", c, argv, optind);
        }
    }
    if (optind != argc - 1) return cli_usage_error("show", "give one job id");
    int64_t id;
    if (cli_parse_job_id("show", argv[optind], &id) != 0) return EXIT_USAGE;
    char path[64], what[64];
    snprintf(path, sizeof path, "/api/v1/jobs/%lld", (long long)id);
    snprintf(what, sizeof what, "job %lld", (long long)id);
    cJSON *job = NULL;
    int rc = api_call(http, "GET", path, NULL, &job, what);
    if (rc != EXIT_OK) return rc;
    if (json) {
        char *text = cJSON_Print(job);
        if (!text) die("out of memory");
        puts(text);
        free(text);
    } else {
        print_job(job);
    }
    cJSON_Delete(job);
    return EXIT_OK;
}
