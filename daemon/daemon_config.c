/* daemon_config.c — mocod's settings: embedded defaults, then the YAML file, then flags
 * (docs/mocod-api.md, "Running it").
 *
 * Flags are read twice: once to find --config and --help (the file must be applied before the
 * flags so that flags win), then for real after the file. Every problem comes back as one
 * message naming the key or flag and what to write instead; nothing here exits.
 */
#include "daemon/daemon_config.h"

#include "train/config_yaml.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SYSTEM_CONFIG "/etc/mocod/mocod.yaml"
#define DEFAULT_CHARTJS "/usr/share/javascript/chart.js/chart.min.js"
#define CONFIG_FILE_MAX (1 << 20)

/* Token file and data roots are resolved after all sources are merged, so that a flag can
 * replace a file's value without the file's value being checked first. */
typedef struct {
    char token_file[DAEMON_PATH_MAX];
    char roots[DAEMON_MAX_DATA_ROOTS][DAEMON_PATH_MAX]; /* as written, before realpath */
    int n_roots;
    int roots_from_flags;  /* the first --data-root replaces the file's list */
    int gpus_set;
} Pending;

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

static int copy_str(char *dst, size_t dstlen, const char *src, const char *what, char *err,
                    size_t errlen)
{
    size_t n = strlen(src);
    if (n >= dstlen)
        return fail(err, errlen, "%s is too long (%zu bytes, at most %zu)", what, n, dstlen - 1);
    memcpy(dst, src, n + 1);
    return 0;
}

/* Relative paths are taken from the current directory, as a shell user expects. */
static int make_absolute(char *dst, size_t dstlen, const char *path, const char *what, char *err,
                         size_t errlen)
{
    if (path[0] == '\0') return fail(err, errlen, "%s is empty: give a folder or file path", what);
    if (path[0] == '/') return copy_str(dst, dstlen, path, what, err, errlen);
    char cwd[DAEMON_PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return fail(err, errlen, "cannot read the current directory for %s (%s): give an absolute path",
                    what, strerror(errno));
    int n = snprintf(dst, dstlen, "%s/%s", cwd, path);
    if (n < 0 || (size_t)n >= dstlen) return fail(err, errlen, "%s is too long", what);
    return 0;
}

/* Strict decimal integer in [lo, hi]: no sign games, no trailing text. */
static int parse_int_text(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s) return -1;
    const char *p = s;
    if (*p == '-') p++;
    if (!*p) return -1;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9') return -1;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* "HOST:PORT" or "[IPV6]:PORT". */
static int parse_listen(const char *text, DaemonConfig *cfg, const char *what, char *err, size_t errlen)
{
    const char *colon;
    char host[sizeof cfg->listen_host];
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return fail(err, errlen, "%s \"%s\": write an IPv6 address as [ADDRESS]:PORT, e.g. [::1]:8080",
                        what, text);
        size_t n = (size_t)(close - text - 1);
        if (n == 0 || n >= sizeof host) return fail(err, errlen, "%s \"%s\": bad IPv6 address", what, text);
        memcpy(host, text + 1, n);
        host[n] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon || colon == text)
            return fail(err, errlen, "%s \"%s\" must be HOST:PORT, e.g. 127.0.0.1:8080 (port 0 picks a free port)",
                        what, text);
        size_t n = (size_t)(colon - text);
        if (n >= sizeof host) return fail(err, errlen, "%s: host name too long", what);
        memcpy(host, text, n);
        host[n] = '\0';
        if (strchr(host, ':'))
            return fail(err, errlen, "%s \"%s\": write an IPv6 address in brackets, e.g. [::1]:8080", what, text);
    }
    long port;
    if (parse_int_text(colon + 1, 0, 65535, &port) != 0 || colon[1] == '-')
        return fail(err, errlen, "%s \"%s\": the port must be a number from 0 to 65535 (0 picks a free port)",
                    what, text);
    strcpy(cfg->listen_host, host);
    cfg->listen_port = (int)port;
    return 0;
}

static int is_loopback_host(const char *host)
{
    if (strcmp(host, "localhost") == 0) return 1;
    struct in_addr a4;
    if (inet_pton(AF_INET, host, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return 1;
        if (IN6_IS_ADDR_V4MAPPED(&a6)) return a6.s6_addr[12] == 127;
    }
    return 0;
}

/* First line of the file, surrounding whitespace removed. */
static int read_token(const char *path, char *token, size_t toklen, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, errlen, "token_file %s: %s; create it with the token on its first line "
                    "(e.g. `openssl rand -hex 32 > %s`)", path, strerror(errno), path);
    char line[1024];
    char *got = fgets(line, sizeof line, f);
    int read_error = ferror(f);
    fclose(f);
    if (read_error)
        return fail(err, errlen, "token_file %s: cannot be read (%s)", path, strerror(errno));
    if (!got) line[0] = '\0';
    char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) n--;
    s[n] = '\0';
    if (n == 0)
        return fail(err, errlen, "token_file %s: the first line is empty; put the token there "
                    "(e.g. `openssl rand -hex 32 > %s`)", path, path);
    if (n >= toklen)
        return fail(err, errlen, "token_file %s: the token is %zu characters, at most %zu", path, n, toklen - 1);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return fail(err, errlen, "token_file %s: the token may hold only visible ASCII characters "
                        "without spaces (it travels in an HTTP header)", path);
    memcpy(token, s, n + 1);
    return 0;
}

/* /dev/nvidia0, /dev/nvidia1, ... (not nvidiactl, nvidia-uvm). */
static int count_gpus(void)
{
    DIR *d = opendir("/dev");
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *s = e->d_name;
        if (strncmp(s, "nvidia", 6) != 0 || !s[6]) continue;
        int digits = 1;
        for (const char *p = s + 6; *p; p++)
            if (*p < '0' || *p > '9') digits = 0;
        n += digits;
    }
    closedir(d);
    return n;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* moco_train and web_dir default to places relative to the binary (build tree or install). */
static void set_binary_defaults(DaemonConfig *cfg, const char *argv0_path)
{
    char bin[DAEMON_PATH_MAX] = ".";
    if (argv0_path && argv0_path[0]) {
        snprintf(bin, sizeof bin, "%s", argv0_path);
        char *slash = strrchr(bin, '/');
        if (slash == bin) bin[1] = '\0';
        else if (slash) *slash = '\0';
        else strcpy(bin, ".");
    }
    snprintf(cfg->moco_train, sizeof cfg->moco_train, "%s/moco-train", bin);
    char cand[DAEMON_PATH_MAX + 32], real[PATH_MAX];
    snprintf(cand, sizeof cand, "%s/../../web", bin);
    if (!is_dir(cand)) snprintf(cand, sizeof cand, "%s/../share/mocod/web", bin);
    const char *web = realpath(cand, real) ? real : cand;
    size_t n = strlen(web);
    if (n < sizeof cfg->web_dir) memcpy(cfg->web_dir, web, n + 1);
}

static void set_defaults(DaemonConfig *cfg, const char *argv0_path)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    strcpy(cfg->state_dir, "./var/mocod");
    cfg->cpu_slots = 1;
    cfg->gpus = 0;
    cfg->max_body_bytes = 1048576;
    cfg->grace_period_s = 30;
    cfg->max_restarts = 3;
    set_binary_defaults(cfg, argv0_path);
    strcpy(cfg->mpirun, "mpirun");
    strcpy(cfg->chartjs, DEFAULT_CHARTJS);
}

/* ---- the YAML file --------------------------------------------------------------------------- */

static int want_string(const cJSON *item, const char *src, const char *example, const char **out,
                       char *err, size_t errlen)
{
    if (!cJSON_IsString(item))
        return fail(err, errlen, "%s: %s must be a string, e.g. `%s: %s`", src, item->string,
                    item->string, example);
    *out = item->valuestring;
    return 0;
}

static int want_int(const cJSON *item, const char *src, long lo, long hi, long *out, char *err,
                    size_t errlen)
{
    double v = item->valuedouble;
    if (!cJSON_IsNumber(item) || v != floor(v) || v < (double)lo || v > (double)hi)
        return fail(err, errlen, "%s: %s must be a whole number from %ld to %ld", src, item->string,
                    lo, hi);
    *out = (long)v;
    return 0;
}

/* mpirun: a path (made absolute) or a bare name looked up on PATH when a multi-rank job
 * starts. Not checked here: a machine without OpenMPI still runs single-rank jobs, and the job
 * that needs it fails saying what to install (launch.c). */
static int set_mpirun(DaemonConfig *cfg, const char *value, const char *src, char *err,
                      size_t errlen)
{
    char what[DAEMON_PATH_MAX + 16];
    if (src[0] == '-') snprintf(what, sizeof what, "%s", src);
    else snprintf(what, sizeof what, "%s: mpirun", src);
    if (!value[0])
        return fail(err, errlen, "%s is empty: give mpirun's path (e.g. /usr/bin/mpirun) or "
                    "leave it out to find mpirun on PATH", what);
    if (!strchr(value, '/')) return copy_str(cfg->mpirun, sizeof cfg->mpirun, value, what, err, errlen);
    return make_absolute(cfg->mpirun, sizeof cfg->mpirun, value, what, err, errlen);
}

static int apply_file_key(DaemonConfig *cfg, Pending *pend, const cJSON *item, const char *src,
                          char *err, size_t errlen)
{
    const char *k = item->string;
    const char *s = "";
    long v = 0;
    if (strcmp(k, "listen") == 0) {
        if (want_string(item, src, "127.0.0.1:8080", &s, err, errlen)) return -1;
        char what[DAEMON_PATH_MAX + 16];
        snprintf(what, sizeof what, "%s: listen", src);
        return parse_listen(s, cfg, what, err, errlen);
    }
    if (strcmp(k, "state_dir") == 0) {
        if (want_string(item, src, "/var/lib/mocod", &s, err, errlen)) return -1;
        return make_absolute(cfg->state_dir, sizeof cfg->state_dir, s, "state_dir", err, errlen);
    }
    if (strcmp(k, "data_roots") == 0) {
        if (!cJSON_IsArray(item))
            return fail(err, errlen, "%s: data_roots must be a list of folders, e.g. `data_roots: [/data]`", src);
        pend->n_roots = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, item) {
            if (!cJSON_IsString(e))
                return fail(err, errlen, "%s: data_roots[%d] must be a folder path (a string)", src,
                            pend->n_roots);
            if (pend->n_roots == DAEMON_MAX_DATA_ROOTS)
                return fail(err, errlen, "%s: data_roots lists more than %d folders; use a common parent",
                            src, DAEMON_MAX_DATA_ROOTS);
            if (copy_str(pend->roots[pend->n_roots], DAEMON_PATH_MAX, e->valuestring, "data_roots entry",
                         err, errlen))
                return -1;
            pend->n_roots++;
        }
        if (pend->n_roots == 0)
            return fail(err, errlen, "%s: data_roots is empty; list the folders jobs may read, e.g. `data_roots: [/data]`",
                        src);
        return 0;
    }
    if (strcmp(k, "token_file") == 0) {
        if (want_string(item, src, "/etc/mocod/token", &s, err, errlen)) return -1;
        return copy_str(pend->token_file, sizeof pend->token_file, s, "token_file", err, errlen);
    }
    if (strcmp(k, "cpu_slots") == 0) {
        if (want_int(item, src, 0, 4096, &v, err, errlen)) return -1;
        cfg->cpu_slots = (int)v;
        return 0;
    }
    if (strcmp(k, "gpus") == 0) {
        if (want_int(item, src, 0, 1024, &v, err, errlen)) return -1;
        cfg->gpus = (int)v;
        pend->gpus_set = 1;
        return 0;
    }
    if (strcmp(k, "max_body_bytes") == 0) {
        if (want_int(item, src, 1024, 1L << 30, &v, err, errlen)) return -1;
        cfg->max_body_bytes = (size_t)v;
        return 0;
    }
    if (strcmp(k, "grace_period_s") == 0) {
        if (want_int(item, src, 0, 86400, &v, err, errlen)) return -1;
        cfg->grace_period_s = (int)v;
        return 0;
    }
    if (strcmp(k, "max_restarts") == 0) {
        if (want_int(item, src, 0, 1000, &v, err, errlen)) return -1;
        cfg->max_restarts = (int)v;
        return 0;
    }
    if (strcmp(k, "moco_train") == 0) {
        if (want_string(item, src, "/usr/bin/moco-train", &s, err, errlen)) return -1;
        if (make_absolute(cfg->moco_train, sizeof cfg->moco_train, s, "moco_train", err, errlen)) return -1;
        if (access(cfg->moco_train, X_OK) != 0)
            return fail(err, errlen, "%s: moco_train %s: %s; give the path of the moco-train program",
                        src, cfg->moco_train, strerror(errno));
        return 0;
    }
    if (strcmp(k, "mpirun") == 0) {
        if (want_string(item, src, "/usr/bin/mpirun", &s, err, errlen)) return -1;
        return set_mpirun(cfg, s, src, err, errlen);
    }
    if (strcmp(k, "web_dir") == 0) {
        if (want_string(item, src, "/usr/share/mocod/web", &s, err, errlen)) return -1;
        return make_absolute(cfg->web_dir, sizeof cfg->web_dir, s, "web_dir", err, errlen);
    }
    if (strcmp(k, "chartjs") == 0) {
        if (want_string(item, src, DEFAULT_CHARTJS, &s, err, errlen)) return -1;
        return make_absolute(cfg->chartjs, sizeof cfg->chartjs, s, "chartjs", err, errlen);
    }
    return fail(err, errlen, "%s: unknown key \"%s\"; the keys are listen, state_dir, data_roots, "
                "token_file, cpu_slots, gpus, max_body_bytes, grace_period_s, max_restarts, "
                "moco_train, mpirun, web_dir, chartjs (docs/mocod-api.md)", src, k);
}

static int apply_file(DaemonConfig *cfg, Pending *pend, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(err, errlen, "config file %s: %s; fix the path given to --config", path, strerror(errno));
    char *text = malloc(CONFIG_FILE_MAX + 1);
    if (!text) {
        fclose(f);
        return fail(err, errlen, "config file %s: out of memory", path);
    }
    size_t len = fread(text, 1, CONFIG_FILE_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || len > CONFIG_FILE_MAX) {
        free(text);
        return fail(err, errlen, "config file %s: %s", path,
                    bad ? "cannot be read" : "larger than 1 MiB; is this the right file?");
    }
    char yerr[1024] = "";
    cJSON *root = yaml_to_json(text, len, path, NULL, yerr, sizeof yerr);
    free(text);
    if (!root) return fail(err, errlen, "%s", yerr);
    int rc = 0;
    if (cJSON_IsNull(root)) {
        /* an empty file: all defaults */
    } else if (!cJSON_IsObject(root)) {
        rc = fail(err, errlen, "config file %s must be a mapping of keys (e.g. `listen: 127.0.0.1:8080`)", path);
    } else {
        const cJSON *item;
        cJSON_ArrayForEach(item, root) {
            if ((rc = apply_file_key(cfg, pend, item, path, err, errlen)) != 0) break;
        }
    }
    cJSON_Delete(root);
    return rc;
}

/* ---- flags ------------------------------------------------------------------------------------ */

static void print_usage(FILE *out)
{
    fprintf(out,
            "usage: mocod [--config FILE] [--listen HOST:PORT] [--state-dir DIR]\n"
            "             [--data-root DIR ...] [--token-file FILE] [--cpu-slots N] [--gpus N]\n"
            "             [--mpirun PATH]\n"
            "\n"
            "The mocod training daemon: takes MoCo jobs over HTTP, runs them as moco-train workers.\n"
            "\n"
            "  --config FILE       YAML settings (default %s when it exists)\n"
            "  --listen HOST:PORT  address to serve on (default 127.0.0.1:8080; port 0 picks one)\n"
            "  --state-dir DIR     database and job folders (default ./var/mocod)\n"
            "  --data-root DIR     a folder jobs may read data from; repeat for more (replaces the\n"
            "                      file's data_roots; default the current directory)\n"
            "  --token-file FILE   first line is the Bearer token clients must send\n"
            "  --cpu-slots N       CPU jobs that may run at once (default 1)\n"
            "  --gpus N            GPUs offered to jobs (default: count of /dev/nvidia[0-9]*)\n"
            "  --mpirun PATH       OpenMPI's mpirun, for multi-rank pretraining (default: mpirun\n"
            "                      on PATH; Debian package openmpi-bin)\n"
            "  --help              this text\n"
            "\n"
            "Flags override the file; the file overrides the defaults. docs/mocod-api.md lists every key.\n",
            SYSTEM_CONFIG);
}

typedef enum {
    F_CONFIG, F_LISTEN, F_STATE_DIR, F_DATA_ROOT, F_TOKEN_FILE, F_CPU_SLOTS, F_GPUS, F_MPIRUN, F_HELP
} FlagId;

static const struct { const char *name; FlagId id; int takes_value; } FLAGS[] = {
    {"--config", F_CONFIG, 1},       {"--listen", F_LISTEN, 1},         {"--state-dir", F_STATE_DIR, 1},
    {"--data-root", F_DATA_ROOT, 1}, {"--token-file", F_TOKEN_FILE, 1}, {"--cpu-slots", F_CPU_SLOTS, 1},
    {"--gpus", F_GPUS, 1},           {"--mpirun", F_MPIRUN, 1},         {"--help", F_HELP, 0},
    {"-h", F_HELP, 0},
};

/* Splits argv[*i] ("--flag value" or "--flag=value") into a flag and its value. */
static int next_flag(int argc, char **argv, int *i, FlagId *id, const char **value, char *err, size_t errlen)
{
    const char *arg = argv[*i];
    const char *eq = strchr(arg, '=');
    size_t name_len = eq ? (size_t)(eq - arg) : strlen(arg);
    for (size_t f = 0; f < sizeof FLAGS / sizeof FLAGS[0]; f++) {
        if (strlen(FLAGS[f].name) != name_len || strncmp(FLAGS[f].name, arg, name_len) != 0) continue;
        *id = FLAGS[f].id;
        *value = NULL;
        if (!FLAGS[f].takes_value) {
            if (eq) return fail(err, errlen, "%s takes no value", FLAGS[f].name);
            return 0;
        }
        if (eq) {
            *value = eq + 1;
        } else {
            if (*i + 1 >= argc)
                return fail(err, errlen, "%s needs a value; run mocod --help for the list", FLAGS[f].name);
            *value = argv[++*i];
        }
        return 0;
    }
    return fail(err, errlen, "unknown option \"%s\"; run mocod --help for the list", arg);
}

static int apply_flag(DaemonConfig *cfg, Pending *pend, FlagId id, const char *value, char *err,
                      size_t errlen)
{
    long v = 0;
    switch (id) {
    case F_CONFIG:
    case F_HELP:
        return 0;  /* handled in the first pass */
    case F_LISTEN:
        return parse_listen(value, cfg, "--listen", err, errlen);
    case F_STATE_DIR:
        return make_absolute(cfg->state_dir, sizeof cfg->state_dir, value, "--state-dir", err, errlen);
    case F_DATA_ROOT:
        if (!pend->roots_from_flags) {
            pend->roots_from_flags = 1;
            pend->n_roots = 0;
        }
        if (pend->n_roots == DAEMON_MAX_DATA_ROOTS)
            return fail(err, errlen, "more than %d --data-root folders; use a common parent", DAEMON_MAX_DATA_ROOTS);
        return copy_str(pend->roots[pend->n_roots++], DAEMON_PATH_MAX, value, "--data-root", err, errlen);
    case F_TOKEN_FILE:
        return copy_str(pend->token_file, sizeof pend->token_file, value, "--token-file", err, errlen);
    case F_CPU_SLOTS:
        if (parse_int_text(value, 0, 4096, &v) != 0)
            return fail(err, errlen, "--cpu-slots \"%s\": give a whole number from 0 to 4096", value);
        cfg->cpu_slots = (int)v;
        return 0;
    case F_GPUS:
        if (parse_int_text(value, 0, 1024, &v) != 0)
            return fail(err, errlen, "--gpus \"%s\": give a whole number from 0 to 1024", value);
        cfg->gpus = (int)v;
        pend->gpus_set = 1;
        return 0;
    case F_MPIRUN:
        return set_mpirun(cfg, value, "--mpirun", err, errlen);
    }
    return 0;
}

/* ---- after all sources -------------------------------------------------------------------------- */

static int finish(DaemonConfig *cfg, Pending *pend, char *err, size_t errlen)
{
    if (cfg->state_dir[0] != '/') {
        char rel[DAEMON_PATH_MAX];
        memcpy(rel, cfg->state_dir, sizeof rel);
        if (make_absolute(cfg->state_dir, sizeof cfg->state_dir, rel, "state_dir", err, errlen)) return -1;
    }
    if (pend->n_roots == 0) {
        if (!getcwd(pend->roots[0], DAEMON_PATH_MAX))
            return fail(err, errlen, "cannot read the current directory (%s); set data_roots or --data-root",
                        strerror(errno));
        pend->n_roots = 1;
    }
    cfg->n_data_roots = 0;
    for (int i = 0; i < pend->n_roots; i++) {
        char real[PATH_MAX];
        if (!realpath(pend->roots[i], real))
            return fail(err, errlen, "data root %s: %s; create the folder or fix data_roots / --data-root",
                        pend->roots[i], strerror(errno));
        if (!is_dir(real))
            return fail(err, errlen, "data root %s is not a folder; data_roots / --data-root list folders",
                        pend->roots[i]);
        if (copy_str(cfg->data_roots[cfg->n_data_roots++], DAEMON_PATH_MAX, real, "data root", err, errlen))
            return -1;
    }
    if (!pend->gpus_set) cfg->gpus = count_gpus();
    cfg->token[0] = '\0';
    if (pend->token_file[0]) {
        char abs[DAEMON_PATH_MAX];
        if (make_absolute(abs, sizeof abs, pend->token_file, "token_file", err, errlen)) return -1;
        if (read_token(abs, cfg->token, sizeof cfg->token, err, errlen)) return -1;
    }
    if (!cfg->token[0] && !is_loopback_host(cfg->listen_host))
        return fail(err, errlen, "refusing to listen on %s:%d without a token: anyone who can reach that "
                    "address could run jobs and read files. Set token_file in the config (or --token-file "
                    "FILE, first line the token), or listen on 127.0.0.1",
                    cfg->listen_host, cfg->listen_port);
    return 0;
}

int daemon_config_load(int argc, char **argv, const char *argv0_path, DaemonConfig *cfg,
                       char *err, size_t errlen)
{
    if (errlen) err[0] = '\0';
    set_defaults(cfg, argv0_path);
    Pending *pend = calloc(1, sizeof *pend);
    if (!pend) return fail(err, errlen, "out of memory reading the settings");

    /* First pass: --help and --config, and flag syntax. */
    const char *config_path = NULL;
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        FlagId id;
        const char *value;
        if ((rc = next_flag(argc, argv, &i, &id, &value, err, errlen)) != 0) break;
        if (id == F_HELP) {
            print_usage(stdout);
            free(pend);
            return 1;
        }
        if (id == F_CONFIG) config_path = value;
    }
    if (rc == 0) {
        if (config_path) rc = apply_file(cfg, pend, config_path, err, errlen);
        else if (access(SYSTEM_CONFIG, F_OK) == 0) rc = apply_file(cfg, pend, SYSTEM_CONFIG, err, errlen);
    }
    for (int i = 1; i < argc && rc == 0; i++) {
        FlagId id;
        const char *value;
        if ((rc = next_flag(argc, argv, &i, &id, &value, err, errlen)) != 0) break;
        rc = apply_flag(cfg, pend, id, value, err, errlen);
    }
    if (rc == 0) rc = finish(cfg, pend, err, errlen);
    free(pend);
    return rc;
}
