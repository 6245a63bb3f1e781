/* test_mocod_service.c — the daemon core through daemon/service.h, without HTTP and without
 * training: submit validation (every rejection names its field), job actions and their
 * conflicts, list paging, `after` failing when its job is canceled, crash recovery of rows a
 * dead mocod left behind, the state-directory lock, and the worker machinery with a fake
 * moco-train (a shell script that writes events on fd 3 and exits with a chosen status):
 * events become metrics and progress, exit statuses become states, the worker sees only fds
 * 0-3, a missing program fails the job with the reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/service.h"

static char tmpdir[256], data_dir[512], state_dir[512];
static DaemonConfig cfg;

static void write_file(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot write %s", path);
    fputs(text, f);
    fclose(f);
    chmod(path, (mode_t)mode);
}

/* A stand-in for moco-train: reads the job name from spec.json ("fake-<status>"), writes a
 * start, two metrics, an eval and a checkpoint event, lists its open fds into the log, and
 * exits with <status>. */
static const char *fake_worker =
    "#!/bin/sh\n"
    "spec=$3\n"
    "status=$(sed -n 's/.*\"name\":\"fake-\\([0-9]*\\)\".*/\\1/p' \"$spec\")\n"
    "echo \"fake worker: $*\" >&2\n"
    "echo \"open fds: $(ls /proc/self/fd | sort -n | tr '\\n' ' ')\" >&2\n"
    "echo '{\"kind\":\"start\",\"step\":0,\"epoch\":0,\"total_steps\":2,\"steps_per_epoch\":2,\"ts\":1}' >&3\n"
    "echo '{\"kind\":\"metric\",\"step\":1,\"epoch\":0,\"loss\":2.5,\"acc1\":10,\"lr\":0.1,\"images_per_s\":8,\"ts\":2}' >&3\n"
    "echo '{\"kind\":\"metric\",\"step\":2,\"epoch\":0,\"loss\":2.0,\"acc1\":20,\"lr\":0.1,\"images_per_s\":8,\"ts\":3}' >&3\n"
    "echo 'not json at all' >&3\n"
    "echo '{\"kind\":\"eval\",\"eval\":\"knn\",\"top1\":33.5,\"top5\":null,\"step\":2,\"epoch\":0,\"ts\":4}' >&3\n"
    "printf '{\"kind\":\"done\",\"step\":2,\"epoch\":1,\"ts\":5}' >&3\n"
    "echo \"the last words of the fake worker\" >&2\n"
    "exit $status\n";

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mocod_test_service_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    char path[700];
    snprintf(data_dir, sizeof data_dir, "%s/data", tmpdir);
    snprintf(state_dir, sizeof state_dir, "%s/state", tmpdir);
    mkdir(data_dir, 0755);
    /* image folders with one class each: submit refuses a folder without class folders */
    const char *folders[] = {"train", "train/cat", "val", "val/cat"};
    for (size_t i = 0; i < sizeof folders / sizeof folders[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", data_dir, folders[i]);
        mkdir(path, 0755);
    }
    snprintf(path, sizeof path, "%s/fake-moco-train", tmpdir);
    write_file(path, fake_worker, 0755);
    memset(&cfg, 0, sizeof cfg);
    snprintf(cfg.listen_host, sizeof cfg.listen_host, "127.0.0.1");
    snprintf(cfg.state_dir, sizeof cfg.state_dir, "%s", state_dir);
    if (!realpath(data_dir, cfg.data_roots[0])) return -1;
    cfg.n_data_roots = 1;
    cfg.cpu_slots = 0; /* nothing starts unless a test asks */
    cfg.gpus = 0;
    cfg.max_body_bytes = 1 << 20;
    cfg.grace_period_s = 2;
    cfg.max_restarts = 3;
    snprintf(cfg.moco_train, sizeof cfg.moco_train, "%s", path);
    snprintf(cfg.mpirun, sizeof cfg.mpirun, "mpirun"); /* the default of daemon_config.c */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static Service *open_service(void)
{
    ServiceError err;
    Service *s = service_open(&cfg, &err);
    if (!s) fail_msg("service_open: %s", err.message);
    return s;
}

/* A small valid pretraining spec in YAML, with extra lines appended. */
static char *spec_yaml(const char *extra)
{
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "kind: pretrain\n"
             "model: {arch: resnet18, cifar_stem: true, dim: 32}\n"
             "moco: {k: 64}\n"
             "data: {train: %s/train, val: %s/val, image_size: 32, workers: 1}\n"
             "optim: {batch_size: 16, epochs: 1}\n"
             "%s",
             data_dir, data_dir, extra ? extra : "");
    return buf;
}

static int64_t submit_ok(Service *s, const char *body)
{
    ServiceError err;
    cJSON *j = service_submit(s, body, strlen(body), NULL, &err);
    if (!j) fail_msg("submit: %d %s (field %s)", err.status, err.message, err.field);
    int64_t id = (int64_t)cJSON_GetObjectItem(j, "id")->valuedouble;
    cJSON_Delete(j);
    return id;
}

/* Submits and expects a 400 naming `field`; the message must contain `needle`. */
static void submit_fails(Service *s, const char *body, const char *ctype, const char *field,
                         const char *needle)
{
    ServiceError err;
    memset(&err, 0, sizeof err);
    cJSON *j = service_submit(s, body, strlen(body), ctype, &err);
    if (j) {
        char *t = cJSON_PrintUnformatted(j);
        fail_msg("accepted a bad spec (want field '%s'): %s", field, t);
    }
    assert_int_equal(err.status, 400);
    if (strcmp(err.field, field) != 0)
        fail_msg("field '%s', want '%s' (%s)", err.field, field, err.message);
    if (needle && !strstr(err.message, needle))
        fail_msg("message lacks '%s': %s", needle, err.message);
}

static cJSON *get_job(Service *s, int64_t id)
{
    ServiceError err;
    cJSON *j = service_get_job(s, id, 1, &err);
    if (!j) fail_msg("get %lld: %s", (long long)id, err.message);
    return j;
}

static const char *state_of(cJSON *j) { return cJSON_GetObjectItem(j, "state")->valuestring; }

/* Polls until the job is in `want` (or 30 s pass). */
static cJSON *wait_state(Service *s, int64_t id, const char *want)
{
    for (int i = 0; i < 600; i++) {
        cJSON *j = get_job(s, id);
        if (strcmp(state_of(j), want) == 0) return j;
        cJSON_Delete(j);
        usleep(50000);
    }
    cJSON *j = get_job(s, id);
    char *t = cJSON_Print(j);
    fail_msg("job %lld never became %s: %s", (long long)id, want, t);
    return NULL;
}

static void test_submit_valid(void **state)
{
    (void)state;
    Service *s = open_service();
    char body[4200];
    snprintf(body, sizeof body, "%s", spec_yaml("priority: 5\nnot_before: 2030-01-01T00:00:00Z\n"
                                                "max_restarts: 1\ncheckpoint: {dir: /etc}\n"));
    int64_t id = submit_ok(s, body);
    cJSON *j = get_job(s, id);
    assert_string_equal(state_of(j), "queued");
    char name[64];
    snprintf(name, sizeof name, "pretrain-%lld", (long long)id);
    assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, name);
    assert_int_equal(cJSON_GetObjectItem(j, "priority")->valueint, 5);
    assert_int_equal(cJSON_GetObjectItem(j, "max_restarts")->valueint, 1);
    assert_true(fabs(cJSON_GetObjectItem(j, "not_before")->valuedouble - 1893456000.0) < 1e-6);
    cJSON *spec = cJSON_GetObjectItem(j, "spec");
    /* daemon keys are not part of the spec; checkpoint.dir is forced to the job's folder */
    assert_null(cJSON_GetObjectItem(spec, "priority"));
    char want[1024];
    snprintf(want, sizeof want, "%s/jobs/%lld/checkpoints", state_dir, (long long)id);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "checkpoint"), "dir")->valuestring, want);
    /* resolved: defaults filled in */
    assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(spec, "moco"), "m")->valuedouble > 0.9);
    cJSON *hist = cJSON_GetObjectItem(j, "transitions");
    assert_int_equal(cJSON_GetArraySize(hist), 1);
    cJSON_Delete(j);
    /* JSON with a name and an exact seed near 2^53 */
    char json[4096];
    snprintf(json, sizeof json,
             "{\"name\": \"exact\", \"seed\": 9007199254740991, \"model\": {\"arch\": \"resnet18\"},"
             " \"moco\": {\"k\": 64}, \"data\": {\"train\": \"%s/train\"}, \"optim\": {\"batch_size\": 16}}",
             data_dir);
    id = submit_ok(s, json);
    j = get_job(s, id);
    assert_string_equal(cJSON_GetObjectItem(j, "name")->valuestring, "exact");
    cJSON_Delete(j);
    /* the stored spec keeps the seed to the last digit (cJSON's printer would not) */
    char db_path[700], sql[128];
    snprintf(db_path, sizeof db_path, "%s/mocod.db", state_dir);
    snprintf(sql, sizeof sql, "SELECT spec FROM jobs WHERE id = %lld", (long long)id);
    sqlite3 *c;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(db_path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(c, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_non_null(strstr((const char *)sqlite3_column_text(st, 0), "\"seed\":9007199254740991"));
    sqlite3_finalize(st);
    sqlite3_close(c);
    service_close(s);
}

static void test_submit_rejections(void **state)
{
    (void)state;
    Service *s = open_service();
    char body[4200];
    submit_fails(s, "", NULL, "", "empty");
    submit_fails(s, "kind: [unclosed\n", NULL, "", "request body");
    submit_fails(s, "{\"kind\": ", "application/json", "", "JSON syntax error");
    submit_fails(s, "- a\n- b\n", NULL, "", "mapping");
    submit_fails(s, spec_yaml("optim: {lr: fast}\n"), NULL, "", NULL); /* duplicate key optim */
    snprintf(body, sizeof body, "%s", spec_yaml("seed: lots\n"));
    submit_fails(s, body, NULL, "seed", "integer");
    submit_fails(s, spec_yaml("optimizer: {lr: 0.1}\n"), NULL, "optimizer", "unknown key");
    submit_fails(s, spec_yaml("precision: bf16\n"), NULL, "precision", "GPUs");
    submit_fails(s, spec_yaml("priority: high\n"), NULL, "priority", "integer");
    submit_fails(s, spec_yaml("priority: 1.5\n"), NULL, "priority", NULL);
    submit_fails(s, spec_yaml("not_before: tomorrow\n"), NULL, "not_before", "RFC 3339");
    submit_fails(s, spec_yaml("after: 999\n"), NULL, "after", "999");
    submit_fails(s, spec_yaml("after: -1\n"), NULL, "after", NULL);
    submit_fails(s, spec_yaml("max_restarts: -2\n"), NULL, "max_restarts", NULL);
    submit_fails(s, spec_yaml("resources: {gpus: 2}\n"), NULL, "resources.gpus", "offers 0");
    /* moco.k must hold whole batches */
    snprintf(body, sizeof body,
             "model: {arch: resnet18}\nmoco: {k: 70}\ndata: {train: %s/train}\noptim: {batch_size: 16}\n",
             data_dir);
    submit_fails(s, body, NULL, "moco.k", "multiple");
    /* paths: outside the roots, missing, relative */
    snprintf(body, sizeof body, "data: {train: /etc}\nmoco: {k: 64}\noptim: {batch_size: 16}\n");
    submit_fails(s, body, NULL, "data.train", "--data-root");
    snprintf(body, sizeof body, "data: {train: %s/nope}\nmoco: {k: 64}\noptim: {batch_size: 16}\n",
             data_dir);
    submit_fails(s, body, NULL, "data.train", "No such file");
    snprintf(body, sizeof body, "data: {train: data/train}\nmoco: {k: 64}\noptim: {batch_size: 16}\n");
    submit_fails(s, body, NULL, "data.train", "absolute");
    /* a symlink inside a root that points outside it is judged by where it points */
    char link[700];
    snprintf(link, sizeof link, "%s/escape", data_dir);
    assert_int_equal(symlink("/etc", link), 0);
    snprintf(body, sizeof body, "data: {train: %s}\nmoco: {k: 64}\noptim: {batch_size: 16}\n", link);
    submit_fails(s, body, NULL, "data.train", "really /etc");
    /* lincls: pretrained must exist, job:<id> must name a pretrain job */
    snprintf(body, sizeof body, "kind: lincls\nmodel: {pretrained: 'job:999'}\n"
             "data: {train: %s/train, val: %s/val}\n", data_dir, data_dir);
    submit_fails(s, body, NULL, "model.pretrained", "999");
    snprintf(body, sizeof body, "kind: lincls\nmodel: {pretrained: 'job:x'}\n"
             "data: {train: %s/train, val: %s/val}\n", data_dir, data_dir);
    submit_fails(s, body, NULL, "model.pretrained", NULL);
    snprintf(body, sizeof body, "kind: lincls\nmodel: {pretrained: /etc/passwd}\n"
             "data: {train: %s/train, val: %s/val}\n", data_dir, data_dir);
    submit_fails(s, body, NULL, "model.pretrained", "data root");
    /* nothing was stored by any of these */
    ServiceError err;
    cJSON *list = service_list_jobs(s, NULL, 50, NULL, &err);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(list, "jobs")), 0);
    cJSON_Delete(list);
    service_close(s);
}

static void test_job_reference(void **state)
{
    (void)state;
    Service *s = open_service();
    int64_t pre = submit_ok(s, spec_yaml(NULL));
    char body[4096];
    snprintf(body, sizeof body, "kind: lincls\nmodel: {arch: resnet18, pretrained: 'job:%lld'}\n"
             "data: {train: %s/train, val: %s/val}\noptim: {batch_size: 16, epochs: 1}\n",
             (long long)pre, data_dir, data_dir);
    int64_t lin = submit_ok(s, body);
    cJSON *j = get_job(s, lin);
    assert_int_equal((int64_t)cJSON_GetObjectItem(j, "after")->valuedouble, pre); /* implicit */
    assert_string_equal(cJSON_GetObjectItem(j, "kind")->valuestring, "lincls");
    cJSON_Delete(j);
    /* a lincls job is no pretrained model */
    snprintf(body, sizeof body, "kind: lincls\nmodel: {pretrained: 'job:%lld'}\n"
             "data: {train: %s/train, val: %s/val}\n", (long long)lin, data_dir, data_dir);
    submit_fails(s, body, NULL, "model.pretrained", "not a pretrain job");
    service_close(s);
}

static void expect_action(Service *s, int64_t id, JobAction a, int status, const char *state)
{
    ServiceError err;
    memset(&err, 0, sizeof err);
    cJSON *j = service_job_action(s, id, a, &err);
    if (status == 0) {
        if (!j) fail_msg("action failed: %s", err.message);
        assert_string_equal(state_of(j), state);
        cJSON_Delete(j);
    } else {
        assert_null(j);
        assert_int_equal(err.status, status);
    }
}

static void test_actions(void **state)
{
    (void)state;
    Service *s = open_service();
    int64_t id = submit_ok(s, spec_yaml(NULL));
    expect_action(s, id, JOB_ACTION_RESUME, 409, NULL);       /* queued: nothing to resume */
    expect_action(s, id, JOB_ACTION_PAUSE, 0, "paused");      /* queued → paused at once */
    expect_action(s, id, JOB_ACTION_PAUSE, 0, "paused");      /* again: no change */
    expect_action(s, id, JOB_ACTION_RESUME, 0, "queued");
    ServiceError err;
    assert_int_not_equal(service_delete_job(s, id, &err), 0);  /* not finished */
    assert_int_equal(err.status, 409);
    expect_action(s, id, JOB_ACTION_CANCEL, 0, "canceled");
    expect_action(s, id, JOB_ACTION_CANCEL, 409, NULL);
    expect_action(s, id, JOB_ACTION_PAUSE, 409, NULL);
    expect_action(s, id, JOB_ACTION_RESUME, 409, NULL);
    cJSON *j = get_job(s, id);
    cJSON *hist = cJSON_GetObjectItem(j, "transitions");
    static const char *const path[] = {"queued", "paused", "queued", "canceling", "canceled"};
    assert_int_equal(cJSON_GetArraySize(hist), 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, i), "to")->valuestring, path[i]);
    assert_false(cJSON_IsNull(cJSON_GetObjectItem(j, "finished_at")));
    cJSON_Delete(j);
    /* priority */
    int64_t other = submit_ok(s, spec_yaml(NULL));
    j = service_set_priority(s, other, 7, &err);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "priority")->valueint, 7);
    cJSON_Delete(j);
    assert_null(service_set_priority(s, 12345, 1, &err));
    assert_int_equal(err.status, 404);
    /* delete: folder and rows gone */
    char dir[700];
    snprintf(dir, sizeof dir, "%s/jobs/%lld/checkpoints", state_dir, (long long)id);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && touch '%s/x.safetensors' && ln -s /etc/hostname '%s/link'",
             dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(service_delete_job(s, id, &err), 0);
    assert_int_equal(access(dir, F_OK), -1);
    assert_int_equal(access("/etc/hostname", F_OK), 0); /* the link's target is untouched */
    assert_null(service_get_job(s, id, 0, &err));
    assert_int_equal(err.status, 404);
    assert_int_equal(service_job_is_active(s, id), -1);
    assert_int_equal(service_job_is_active(s, other), 1);
    service_close(s);
}

static void test_list_paging(void **state)
{
    (void)state;
    Service *s = open_service();
    int64_t ids[5];
    for (int i = 0; i < 5; i++) ids[i] = submit_ok(s, spec_yaml(NULL));
    expect_action(s, ids[1], JOB_ACTION_PAUSE, 0, "paused");
    ServiceError err;
    const char *token = NULL;
    char tok[32];
    int seen = 0;
    for (int page = 0; page < 3; page++) {
        cJSON *l = service_list_jobs(s, NULL, 2, token, &err);
        assert_non_null(l);
        cJSON *jobs = cJSON_GetObjectItem(l, "jobs");
        for (int i = 0; i < cJSON_GetArraySize(jobs); i++) {
            int64_t id = (int64_t)cJSON_GetObjectItem(cJSON_GetArrayItem(jobs, i), "id")->valuedouble;
            assert_int_equal(id, ids[4 - seen]); /* newest first */
            seen++;
        }
        cJSON *next = cJSON_GetObjectItem(l, "next_page_token");
        if (page < 2) {
            assert_true(cJSON_IsString(next));
            snprintf(tok, sizeof tok, "%s", next->valuestring);
            token = tok;
        } else {
            assert_true(cJSON_IsNull(next));
        }
        cJSON_Delete(l);
    }
    assert_int_equal(seen, 5);
    cJSON *l = service_list_jobs(s, "paused, completed", 50, NULL, &err);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(l, "jobs")), 1);
    cJSON_Delete(l);
    assert_null(service_list_jobs(s, "paused,bogus", 50, NULL, &err));
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.message, "bogus"));
    assert_null(service_list_jobs(s, NULL, 0, NULL, &err));
    assert_int_equal(err.status, 400);
    assert_null(service_list_jobs(s, NULL, 501, NULL, &err));
    assert_null(service_list_jobs(s, NULL, 10, "abc", &err));
    assert_int_equal(err.status, 400);
    /* queue: queued in start order; devices; health; prometheus */
    cJSON_Delete(service_set_priority(s, ids[3], 9, &err));
    cJSON *q = service_queue(s);
    cJSON *queued = cJSON_GetObjectItem(q, "queued");
    assert_int_equal(cJSON_GetArraySize(queued), 4);
    assert_int_equal((int64_t)cJSON_GetObjectItem(cJSON_GetArrayItem(queued, 0), "id")->valuedouble, ids[3]);
    assert_int_equal((int64_t)cJSON_GetObjectItem(cJSON_GetArrayItem(queued, 1), "id")->valuedouble, ids[0]);
    cJSON_Delete(q);
    cJSON *d = service_devices(s);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(d, "cpu"), "slots")->valueint, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "gpus")), 0);
    cJSON_Delete(d);
    cJSON *h = service_health(s);
    assert_string_equal(cJSON_GetObjectItem(h, "status")->valuestring, "ok");
    cJSON_Delete(h);
    char *prom = service_prometheus(s);
    assert_non_null(strstr(prom, "mocod_jobs{state=\"queued\"} 4\n"));
    assert_non_null(strstr(prom, "mocod_jobs{state=\"paused\"} 1\n"));
    assert_non_null(strstr(prom, "mocod_uptime_seconds "));
    free(prom);
    /* metrics of a job without any; checkpoint names that must never resolve */
    cJSON *m = service_metrics(s, ids[0], NULL, 0, 100, NULL, 0, &err);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "keys")), 0);
    cJSON_Delete(m);
    assert_null(service_metrics(s, ids[0], "loss", 0, 0, NULL, 0, &err));
    assert_int_equal(err.status, 400);
    char path[1024];
    static const char *const bad[] = {"../../mocod.db", ".hidden.safetensors", "a/b.safetensors",
                                      "x..safetensors", "missing.safetensors", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(service_checkpoint_file(s, ids[0], bad[i], NULL, path, sizeof path, &err), -1);
        assert_int_equal(err.status, 404);
    }
    service_close(s);
}

static void test_after_canceled_fails_dependent(void **state)
{
    (void)state;
    Service *s = open_service();
    int64_t first = submit_ok(s, spec_yaml(NULL));
    char extra[64];
    snprintf(extra, sizeof extra, "after: %lld\n", (long long)first);
    int64_t second = submit_ok(s, spec_yaml(extra));
    expect_action(s, first, JOB_ACTION_CANCEL, 0, "canceled");
    cJSON *j = wait_state(s, second, "failed");
    const char *reason = cJSON_GetObjectItem(j, "reason")->valuestring;
    assert_non_null(strstr(reason, "canceled"));
    char needle[32];
    snprintf(needle, sizeof needle, "job %lld", (long long)first);
    assert_non_null(strstr(reason, needle));
    cJSON_Delete(j);
    service_close(s);
}

/* Rows as a mocod killed mid-run leaves them; the next service_open settles them. */
static void test_recovery(void **state)
{
    (void)state;
    Service *s = open_service();
    int64_t ids[5];
    for (int i = 0; i < 5; i++) ids[i] = submit_ok(s, spec_yaml("max_restarts: 1\n"));
    service_close(s);
    char db_path[700];
    snprintf(db_path, sizeof db_path, "%s/mocod.db", state_dir);
    sqlite3 *c;
    assert_int_equal(sqlite3_open(db_path, &c), SQLITE_OK);
    char sql[512];
    /* pid 2^22+1 is above the default pid_max: never a live process */
    snprintf(sql, sizeof sql,
             "UPDATE jobs SET state = 'running', pid = 4194305 WHERE id = %lld;"
             "UPDATE jobs SET state = 'running', restarts = 1 WHERE id = %lld;"
             "UPDATE jobs SET state = 'pausing' WHERE id = %lld;"
             "UPDATE jobs SET state = 'canceling' WHERE id = %lld;"
             "UPDATE jobs SET state = 'starting', pid = %ld WHERE id = %lld;",
             (long long)ids[0], (long long)ids[1], (long long)ids[2], (long long)ids[3],
             (long)getpid(), (long long)ids[4]); /* a live pid that is not its worker */
    assert_int_equal(sqlite3_exec(c, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(c);
    s = open_service();
    static const char *const want[] = {"queued", "failed", "paused", "canceled", "queued"};
    for (int i = 0; i < 5; i++) {
        cJSON *j = get_job(s, ids[i]);
        if (strcmp(state_of(j), want[i]) != 0)
            fail_msg("job %d: %s, want %s", i, state_of(j), want[i]);
        if (i == 0) assert_int_equal(cJSON_GetObjectItem(j, "restarts")->valueint, 1);
        if (i == 1) assert_non_null(strstr(cJSON_GetObjectItem(j, "reason")->valuestring, "no restarts left"));
        assert_true(cJSON_IsNull(cJSON_GetObjectItem(j, "pid")));
        cJSON_Delete(j);
    }
    /* a second daemon on the same state directory is refused */
    ServiceError err;
    assert_null(service_open(&cfg, &err));
    assert_non_null(strstr(err.message, "another mocod"));
    service_close(s);
}

/* The worker machinery with the fake moco-train. */
static void test_fake_workers(void **state)
{
    (void)state;
    cfg.cpu_slots = 1;
    Service *s = open_service();
    EventSub *sub = service_subscribe(s, 0); /* before the worker can write anything */
    int64_t ok = submit_ok(s, spec_yaml("name: fake-0\n"));
    int64_t bad = submit_ok(s, spec_yaml("name: fake-1\n"));
    int64_t retry = submit_ok(s, spec_yaml("name: fake-75\nmax_restarts: 0\n"));
    cJSON *j = wait_state(s, ok, "completed");
    assert_int_equal(cJSON_GetObjectItem(j, "step")->valueint, 2);
    assert_int_equal(cJSON_GetObjectItem(j, "total_steps")->valueint, 2);
    cJSON *last = cJSON_GetObjectItem(j, "last");
    assert_true(fabs(cJSON_GetObjectItem(last, "loss")->valuedouble - 2.0) < 1e-12);
    assert_true(fabs(cJSON_GetObjectItem(last, "knn_top1")->valuedouble - 33.5) < 1e-12);
    cJSON_Delete(j);
    ServiceError err;
    cJSON *m = service_metrics(s, ok, NULL, 0, 100, NULL, 0, &err);
    char *keys = cJSON_PrintUnformatted(cJSON_GetObjectItem(m, "keys"));
    assert_string_equal(keys, "[\"acc1\",\"images_per_s\",\"knn_top1\",\"loss\",\"lr\"]"); /* null top5 skipped */
    free(keys);
    cJSON_Delete(m);
    m = service_metrics(s, ok, "loss", 0, 100, NULL, 0, &err);
    cJSON *pts = cJSON_GetObjectItem(m, "points");
    assert_int_equal(cJSON_GetArraySize(pts), 2);
    assert_true(fabs(cJSON_GetObjectItem(cJSON_GetArrayItem(pts, 0), "value")->valuedouble - 2.5) < 1e-12);
    cJSON_Delete(m);
    /* the live events: the worker's, with "job" added, and state changes */
    int saw_metric = 0, saw_done = 0, saw_completed = 0;
    const char *kind;
    char *json;
    while (service_next_event(sub, &kind, &json, 200) == 1) {
        cJSON *e = cJSON_Parse(json);
        assert_non_null(cJSON_GetObjectItem(e, "job"));
        if ((int64_t)cJSON_GetObjectItem(e, "job")->valuedouble != ok) {
            cJSON_Delete(e);
            free(json);
            continue;
        }
        saw_metric += strcmp(kind, "metric") == 0;
        saw_done += strcmp(kind, "done") == 0; /* the last line had no newline */
        if (!strcmp(kind, "state") && !strcmp(cJSON_GetObjectItem(e, "to")->valuestring, "completed"))
            saw_completed = 1;
        cJSON_Delete(e);
        free(json);
    }
    service_unsubscribe(sub);
    assert_int_equal(saw_metric, 2);
    assert_int_equal(saw_done, 1);
    assert_int_equal(saw_completed, 1);
    /* the worker saw only stdin, stdout, stderr and the event pipe */
    char log[700];
    assert_int_equal(service_log_path(s, ok, log, sizeof log, &err), 0);
    FILE *f = fopen(log, "r");
    assert_non_null(f);
    char line[1024];
    int fds_ok = 0, has_cmd = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "open fds:", 9) == 0) {
            /* ls's own: 0-3 inherited, and 4, the folder it lists; a descriptor leaked by
             * mocod would show up as one more */
            fds_ok = strcmp(line, "open fds: 0 1 2 3 4 \n") == 0;
            if (!fds_ok) fprintf(stderr, "worker fds: %s", line);
        }
        if (strstr(line, "fake worker: pretrain --config") && strstr(line, "--events-fd 3")) has_cmd = 1;
    }
    fclose(f);
    assert_true(has_cmd);
    assert_true(fds_ok);

    j = wait_state(s, bad, "failed");
    const char *reason = cJSON_GetObjectItem(j, "reason")->valuestring;
    assert_non_null(strstr(reason, "status 1"));
    assert_non_null(strstr(reason, "the last words of the fake worker"));
    cJSON_Delete(j);
    j = wait_state(s, retry, "failed"); /* status 75 with no restarts left */
    assert_non_null(strstr(cJSON_GetObjectItem(j, "reason")->valuestring, "no restarts left"));
    cJSON_Delete(j);
    service_close(s);

    /* a worker program that does not exist: the job fails saying so */
    snprintf(cfg.moco_train, sizeof cfg.moco_train, "%s/no-such-moco-train", tmpdir);
    s = open_service();
    int64_t missing = submit_ok(s, spec_yaml(NULL));
    j = wait_state(s, missing, "failed");
    assert_non_null(strstr(cJSON_GetObjectItem(j, "reason")->valuestring, "cannot execute"));
    cJSON_Delete(j);
    service_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_submit_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_rejections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_job_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_actions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_after_canceled_fails_dependent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fake_workers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
