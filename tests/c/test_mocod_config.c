/* test_mocod_config.c — mocod's own settings (daemon/daemon_config.c): defaults, the YAML
 * file, flags over the file, and every kind of refusal naming the key or flag; plus the small
 * request parsers of api/ that need no server: Range headers, strict URL integers, the Bearer
 * check and the router's 404/405 distinction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "api/auth.h"
#include "api/params.h"
#include "api/range.h"
#include "api/router.h"
#include "daemon/daemon_config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];
static char cfg_path[512];
static char data_a[512], data_b[512];
static DaemonConfig cfg;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mocod_test_cfg_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    snprintf(cfg_path, sizeof cfg_path, "%s/mocod.yaml", tmpdir);
    snprintf(data_a, sizeof data_a, "%s/data_a", tmpdir);
    snprintf(data_b, sizeof data_b, "%s/data_b", tmpdir);
    if (mkdir(data_a, 0755) != 0 || mkdir(data_b, 0755) != 0) return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Loads with argv = {"mocod", args...}; returns daemon_config_load's result, message in err. */
static int load(char *err, size_t errlen, int n, ...)
{
    char *argv[32];
    argv[0] = "mocod";
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) argv[i + 1] = va_arg(ap, char *);
    va_end(ap);
    return daemon_config_load(n + 1, argv, "/opt/mocod/build/bin/mocod", &cfg, err, errlen);
}

static void expect_error(const char *yaml, const char *fragment1, const char *fragment2)
{
    char err[2048] = "";
    write_file(cfg_path, yaml);
    int rc = load(err, sizeof err, 4, "--config", cfg_path, "--data-root", data_a);
    if (rc != -1) fail_msg("expected `%s` to be refused, got rc %d", yaml, rc);
    if (!strstr(err, fragment1) || (fragment2 && !strstr(err, fragment2)))
        fail_msg("message for `%s` lacks \"%s\"/\"%s\": %s", yaml, fragment1, fragment2 ? fragment2 : "", err);
}

static void test_defaults(void **state)
{
    (void)state;
    char err[2048] = "";
    write_file(cfg_path, "");
    assert_int_equal(load(err, sizeof err, 2, "--config", cfg_path), 0);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_int_equal(cfg.cpu_slots, 1);
    assert_int_equal(cfg.max_body_bytes, 1048576);
    assert_int_equal(cfg.grace_period_s, 30);
    assert_int_equal(cfg.max_restarts, 3);
    assert_string_equal(cfg.token, "");
    assert_string_equal(cfg.moco_train, "/opt/mocod/build/bin/moco-train");
    assert_string_equal(cfg.chartjs, "/usr/share/javascript/chart.js/chart.min.js");
    /* state_dir ./var/mocod, made absolute against the current directory */
    char cwd[PATH_MAX], want[PATH_MAX + 32];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/./var/mocod", cwd);
    assert_string_equal(cfg.state_dir, want);
    /* data roots: the current directory, resolved */
    char real[PATH_MAX];
    assert_non_null(realpath(cwd, real));
    assert_int_equal(cfg.n_data_roots, 1);
    assert_string_equal(cfg.data_roots[0], real);
}

static void test_file_then_flags(void **state)
{
    (void)state;
    char yaml[2048], err[2048] = "";
    snprintf(yaml, sizeof yaml,
             "listen: 127.0.0.1:9000\nstate_dir: %s/state\ndata_roots: [%s, %s]\ncpu_slots: 3\ngpus: 2\n"
             "max_body_bytes: 4096\ngrace_period_s: 5\nmax_restarts: 7\nweb_dir: %s\nchartjs: %s/c.js\n",
             tmpdir, data_a, data_b, tmpdir, tmpdir);
    write_file(cfg_path, yaml);
    assert_int_equal(load(err, sizeof err, 2, "--config", cfg_path), 0);
    assert_int_equal(cfg.listen_port, 9000);
    assert_int_equal(cfg.cpu_slots, 3);
    assert_int_equal(cfg.gpus, 2);
    assert_int_equal(cfg.max_body_bytes, 4096);
    assert_int_equal(cfg.grace_period_s, 5);
    assert_int_equal(cfg.max_restarts, 7);
    assert_int_equal(cfg.n_data_roots, 2);
    assert_non_null(strstr(cfg.data_roots[1], "data_b"));
    assert_string_equal(cfg.web_dir, tmpdir);

    /* flags win; the first --data-root replaces the file's whole list; --flag=value works */
    assert_int_equal(load(err, sizeof err, 9, "--config", cfg_path, "--listen", "localhost:0", "--cpu-slots=4",
                          "--gpus", "0", "--data-root", data_b),
                     0);
    assert_string_equal(cfg.listen_host, "localhost");
    assert_int_equal(cfg.listen_port, 0);
    assert_int_equal(cfg.cpu_slots, 4);
    assert_int_equal(cfg.gpus, 0);
    assert_int_equal(cfg.n_data_roots, 1);
    assert_non_null(strstr(cfg.data_roots[0], "data_b"));
    assert_int_equal(cfg.max_restarts, 7); /* untouched by flags */
}

/* The example installed as /etc/mocod/mocod.yaml loads (its /data root replaced by a flag,
 * as it need not exist here) and says what its comments say. */
static void test_example_file_loads(void **state)
{
    (void)state;
    char err[2048] = "";
    if (load(err, sizeof err, 4, "--config", "packaging/mocod.yaml", "--data-root", data_a) != 0)
        fail_msg("packaging/mocod.yaml does not load: %s", err);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.state_dir, "/var/lib/mocod");
    assert_int_equal(cfg.grace_period_s, 30);
}

static void test_file_errors_name_the_key(void **state)
{
    (void)state;
    expect_error("bogus_key: 1\n", "unknown key \"bogus_key\"", "cpu_slots");
    expect_error("cpu_slots: two\n", "cpu_slots", "whole number");
    expect_error("cpu_slots: 1.5\n", "cpu_slots", NULL);
    expect_error("gpus: -1\n", "gpus", NULL);
    expect_error("max_body_bytes: 10\n", "max_body_bytes", "1024");
    expect_error("listen: 8080\n", "listen", "string");
    expect_error("listen: \"nohost\"\n", "listen", "HOST:PORT");
    expect_error("listen: \"127.0.0.1:70000\"\n", "listen", "65535");
    expect_error("data_roots: /data\n", "data_roots", "list");
    expect_error("data_roots: []\n", "data_roots", "empty");
    expect_error("- a\n- b\n", "mapping", NULL);
    expect_error("listen: [unclosed\n", "mocod.yaml:", NULL);
    expect_error("moco_train: /nonexistent/moco-train\n", "moco_train", NULL);
}

static void test_flag_errors(void **state)
{
    (void)state;
    char err[2048] = "";
    write_file(cfg_path, "");
    assert_int_equal(load(err, sizeof err, 3, "--config", cfg_path, "--frobnicate"), -1);
    assert_non_null(strstr(err, "--frobnicate"));
    assert_int_equal(load(err, sizeof err, 3, "--config", cfg_path, "--gpus"), -1);
    assert_non_null(strstr(err, "--gpus needs a value"));
    assert_int_equal(load(err, sizeof err, 4, "--config", cfg_path, "--cpu-slots", "1x"), -1);
    assert_non_null(strstr(err, "--cpu-slots"));
    assert_int_equal(load(err, sizeof err, 4, "--config", cfg_path, "--data-root", "/nonexistent_mocod_root"), -1);
    assert_non_null(strstr(err, "/nonexistent_mocod_root"));
    assert_int_equal(load(err, sizeof err, 3, "--config", "/nonexistent/mocod.yaml", "--help"), 1); /* help first */
    assert_int_equal(load(err, sizeof err, 2, "--config", "/nonexistent/mocod.yaml"), -1);
    assert_non_null(strstr(err, "/nonexistent/mocod.yaml"));
}

static void test_token_and_listen(void **state)
{
    (void)state;
    char err[2048] = "", tok[600];
    write_file(cfg_path, "");
    /* not loopback and no token: refused, saying how to fix it */
    assert_int_equal(load(err, sizeof err, 6, "--config", cfg_path, "--listen", "0.0.0.0:8080", "--data-root", data_a), -1);
    assert_non_null(strstr(err, "token"));
    assert_non_null(strstr(err, "0.0.0.0:8080"));
    /* loopback in every spelling needs none */
    const char *loops[] = {"127.0.0.1:0", "127.1.2.3:0", "localhost:0", "[::1]:0"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(load(err, sizeof err, 6, "--config", cfg_path, "--listen", loops[i], "--data-root", data_a), 0);
    }
    assert_string_equal(cfg.listen_host, "::1");
    /* the token: first line, trimmed */
    snprintf(tok, sizeof tok, "%s/token", tmpdir);
    write_file(tok, "  s3cret-token \nsecond line\n");
    assert_int_equal(load(err, sizeof err, 8, "--config", cfg_path, "--listen", "0.0.0.0:0", "--token-file", tok,
                          "--data-root", data_a),
                     0);
    assert_string_equal(cfg.token, "s3cret-token");
    write_file(tok, "\n");
    assert_int_equal(load(err, sizeof err, 4, "--config", cfg_path, "--token-file", tok), -1);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(load(err, sizeof err, 4, "--config", cfg_path, "--token-file", "/nonexistent/token"), -1);
    assert_non_null(strstr(err, "/nonexistent/token"));
}

/* ---- api/ parsers ---------------------------------------------------------------------------- */

static void test_range(void **state)
{
    (void)state;
    uint64_t s = 0, n = 0;
    assert_int_equal(range_parse("bytes=0-99", 1000, &s, &n), RANGE_PARTIAL);
    assert_int_equal(s, 0);
    assert_int_equal(n, 100);
    assert_int_equal(range_parse("bytes=100-199", 1000, &s, &n), RANGE_PARTIAL);
    assert_int_equal(s, 100);
    assert_int_equal(n, 100);
    assert_int_equal(range_parse("bytes=-100", 1000, &s, &n), RANGE_PARTIAL);
    assert_int_equal(s, 900);
    assert_int_equal(n, 100);
    assert_int_equal(range_parse("bytes=-5000", 1000, &s, &n), RANGE_PARTIAL); /* whole file */
    assert_int_equal(s, 0);
    assert_int_equal(n, 1000);
    assert_int_equal(range_parse("bytes=990-", 1000, &s, &n), RANGE_PARTIAL);
    assert_int_equal(n, 10);
    assert_int_equal(range_parse("bytes=990-123456", 1000, &s, &n), RANGE_PARTIAL); /* clamped */
    assert_int_equal(n, 10);
    assert_int_equal(range_parse("bytes=1000-", 1000, &s, &n), RANGE_UNSATISFIABLE);
    assert_int_equal(range_parse("bytes=-0", 1000, &s, &n), RANGE_UNSATISFIABLE);
    assert_int_equal(range_parse("bytes=0-0", 0, &s, &n), RANGE_UNSATISFIABLE);
    /* ignored: not a single well-formed byte range */
    assert_int_equal(range_parse(NULL, 1000, &s, &n), RANGE_NONE);
    assert_int_equal(range_parse("bytes=5-1", 1000, &s, &n), RANGE_NONE);
    assert_int_equal(range_parse("bytes=0-1,5-6", 1000, &s, &n), RANGE_NONE);
    assert_int_equal(range_parse("items=0-1", 1000, &s, &n), RANGE_NONE);
    assert_int_equal(range_parse("bytes=-", 1000, &s, &n), RANGE_NONE);
    assert_int_equal(range_parse("bytes=1x-2", 1000, &s, &n), RANGE_NONE);
    assert_int_equal(range_parse("bytes=99999999999999999999999-", 1000, &s, &n), RANGE_NONE);
}

static void test_strict_integers(void **state)
{
    (void)state;
    int64_t v = 0;
    assert_int_equal(parse_job_id("7", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(parse_job_id("9223372036854775807", &v), 0);
    assert_int_equal(v, INT64_MAX);
    const char *bad_ids[] = {"", "0", "-1", "+1", " 1", "1 ", "abc", "1e3", "0x10", "9223372036854775808",
                             "99999999999999999999999", "1.0"};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++)
        if (parse_job_id(bad_ids[i], &v) == 0) fail_msg("job id \"%s\" accepted", bad_ids[i]);
    assert_int_equal(parse_i64_strict("-1", -1, 10, &v), 0);
    assert_int_equal(v, -1);
    assert_int_equal(parse_i64_strict("-2", -1, 10, &v), -1);
    assert_int_equal(parse_i64_strict("-0", 0, 10, &v), -1);
    assert_int_equal(parse_i64_strict("11", 0, 10, &v), -1);
    assert_int_equal(parse_flag("1"), 1);
    assert_int_equal(parse_flag("true"), 1);
    assert_int_equal(parse_flag("0"), 0);
    assert_int_equal(parse_flag(NULL), 0);
    assert_int_equal(parse_flag("2"), -1);
}

static void test_bearer(void **state)
{
    (void)state;
    assert_true(auth_bearer_ok("Bearer abc123", "abc123"));
    assert_true(auth_bearer_ok("bearer   abc123 ", "abc123"));
    assert_false(auth_bearer_ok("Bearer abc12", "abc123"));
    assert_false(auth_bearer_ok("Bearer abc1234", "abc123"));
    assert_false(auth_bearer_ok("Bearer abd123", "abc123"));
    assert_false(auth_bearer_ok("Basic abc123", "abc123"));
    assert_false(auth_bearer_ok("Bearerabc123", "abc123"));
    assert_false(auth_bearer_ok("Bearer ", "abc123"));
    assert_false(auth_bearer_ok(NULL, "abc123"));
    assert_false(auth_bearer_ok("Bearer x", ""));
}

static void h_dummy(Request *req) { (void)req; }

static void test_router(void **state)
{
    (void)state;
    static const Route table[] = {
        {"GET", "/", h_dummy, ROUTE_PUBLIC},
        {"GET", "/api/v1/jobs", h_dummy, 0},
        {"POST", "/api/v1/jobs", h_dummy, 0},
        {"GET", "/api/v1/jobs/{id}", h_dummy, 0},
        {"DELETE", "/api/v1/jobs/{id}", h_dummy, 0},
        {"GET", "/api/v1/jobs/{id}/checkpoints/{name}", h_dummy, 0},
    };
    RouteMatch m;
    char path[128];
    strcpy(path, "/");
    assert_int_equal(router_match(table, 6, "GET", path, &m), ROUTE_FOUND);
    assert_ptr_equal(m.route, &table[0]);
    strcpy(path, "/api/v1/jobs/12/checkpoints/ckpt-3.safetensors");
    assert_int_equal(router_match(table, 6, "GET", path, &m), ROUTE_FOUND);
    assert_int_equal(m.n_params, 2);
    assert_string_equal(m.params[0], "12");
    assert_string_equal(m.params[1], "ckpt-3.safetensors");
    strcpy(path, "/api/v1/jobs/12");
    assert_int_equal(router_match(table, 6, "HEAD", path, &m), ROUTE_FOUND); /* GET answers HEAD */
    strcpy(path, "/api/v1/jobs/12");
    assert_int_equal(router_match(table, 6, "PUT", path, &m), ROUTE_WRONG_METHOD);
    assert_string_equal(m.allow, "GET, HEAD, DELETE");
    strcpy(path, "/api/v1/jobs");
    assert_int_equal(router_match(table, 6, "DELETE", path, &m), ROUTE_WRONG_METHOD);
    assert_string_equal(m.allow, "GET, HEAD, POST");
    const char *missing[] = {"/api/v1/jobs/", "/api/v1//jobs", "/api/v1/jobs/1/2", "/nope", "", "api/v1/jobs",
                             "/api/v1/jobs/12/checkpoints"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        strcpy(path, missing[i]);
        if (router_match(table, 6, "GET", path, &m) != ROUTE_NOT_FOUND) fail_msg("\"%s\" matched", missing[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_file_then_flags),
        cmocka_unit_test(test_example_file_loads),
        cmocka_unit_test(test_file_errors_name_the_key),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_token_and_listen),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_strict_integers),
        cmocka_unit_test(test_bearer),
        cmocka_unit_test(test_router),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
