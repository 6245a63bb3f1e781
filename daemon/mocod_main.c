/* mocod_main.c — the mocod program: settings, state directory, daemon core, HTTP server, and a
 * graceful stop on SIGTERM/SIGINT (docs/mocod-api.md, "Running it").
 *
 * Signals reach the main thread through a pipe (the handler only writes a byte), so the stop
 * runs in ordinary code: the HTTP server first (no new requests, open streams end), then the
 * core (workers checkpoint and are requeued). A second signal during that stop ends mocod at
 * once (SA_RESETHAND). The actual port goes to STATE_DIR/mocod.port for scripts and tests
 * that start mocod with port 0.
 */
#include "api/api.h"
#include "daemon/daemon_config.h"
#include "daemon/service.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int signal_pipe[2] = {-1, -1};
static pid_t mocod_pid;

static void on_stop_signal(int sig)
{
    /* A worker between fork and exec still has this handler (and this pipe): a cancel that
     * reaches it then must end that worker, as SIGTERM's default would, and never stop mocod. */
    if (getpid() != mocod_pid) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, NULL);
        raise(sig);
        return;
    }
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    ssize_t ignored = write(signal_pipe[1], &b, 1);
    (void)ignored;
    errno = saved;
}

static int install_signals(void)
{
    mocod_pid = getpid();
    if (pipe2(signal_pipe, O_CLOEXEC) != 0) return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESETHAND | SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0) return -1;
    /* A client that hangs up mid-download must not kill the daemon. */
    struct sigaction ign;
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    return sigaction(SIGPIPE, &ign, NULL);
}

static int mkdir_p(const char *path)
{
    char buf[DAEMON_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    struct stat st;
    if (stat(buf, &st) != 0) return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* STATE_DIR/mocod.port, written to a temporary name and renamed: a reader never sees half. */
static int write_port_file(const char *state_dir, int port)
{
    char path[DAEMON_PATH_MAX + 32], tmp[DAEMON_PATH_MAX + 48];
    snprintf(path, sizeof path, "%s/mocod.port", state_dir);
    snprintf(tmp, sizeof tmp, "%s/.mocod.port.%ld", state_dir, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    char text[16];
    int n = snprintf(text, sizeof text, "%d\n", port);
    int ok = write(fd, text, (size_t)n) == n && fsync(fd) == 0;
    ok = (close(fd) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        errno = e;
        return -1;
    }
    return 0;
}

static void remove_port_file(const char *state_dir)
{
    char path[DAEMON_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/mocod.port", state_dir);
    unlink(path);
}

static int wait_for_stop_signal(void)
{
    unsigned char b = 0;
    for (;;) {
        ssize_t n = read(signal_pipe[0], &b, 1);
        if (n == 1) return b;
        if (n < 0 && errno == EINTR) continue;
        return 0;
    }
}

int main(int argc, char **argv)
{
    char exe[DAEMON_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) exe[n] = '\0';
    else snprintf(exe, sizeof exe, "%s", argv[0]);

    DaemonConfig *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        fprintf(stderr, "mocod: out of memory\n");
        return 1;
    }
    char err[2048] = "";
    int rc = daemon_config_load(argc, argv, exe, cfg, err, sizeof err);
    if (rc == 1) {
        free(cfg);
        return 0;
    }
    if (rc != 0) {
        fprintf(stderr, "mocod: %s\n", err);
        free(cfg);
        return 2;
    }
    if (install_signals() != 0) {
        fprintf(stderr, "mocod: cannot install signal handlers: %s\n", strerror(errno));
        free(cfg);
        return 1;
    }
    if (mkdir_p(cfg->state_dir) != 0) {
        fprintf(stderr, "mocod: state directory %s: %s; create it or choose another with --state-dir\n",
                cfg->state_dir, strerror(errno));
        free(cfg);
        return 1;
    }
    if (access(cfg->moco_train, X_OK) != 0)
        fprintf(stderr, "mocod: warning: the worker program %s is missing (%s); jobs will fail until it "
                "is built (make) or moco_train is set\n", cfg->moco_train, strerror(errno));

    ServiceError serr = {0};
    Service *svc = service_open(cfg, &serr);
    if (!svc) {
        fprintf(stderr, "mocod: %s\n", serr.message[0] ? serr.message : "the daemon core could not start");
        free(cfg);
        return 1;
    }
    ApiServer *api = api_start(cfg, svc, err, sizeof err);
    if (!api) {
        fprintf(stderr, "mocod: %s\n", err);
        service_close(svc);
        free(cfg);
        return 1;
    }
    int port = api_port(api);
    if (write_port_file(cfg->state_dir, port) != 0)
        fprintf(stderr, "mocod: warning: cannot write %s/mocod.port: %s\n", cfg->state_dir, strerror(errno));
    int v6 = strchr(cfg->listen_host, ':') != NULL;
    fprintf(stderr, "mocod: listening on http://%s%s%s:%d (state %s, %d GPU%s, %d CPU slot%s)\n", v6 ? "[" : "",
            cfg->listen_host, v6 ? "]" : "", port, cfg->state_dir, cfg->gpus, cfg->gpus == 1 ? "" : "s",
            cfg->cpu_slots, cfg->cpu_slots == 1 ? "" : "s");

    int sig = wait_for_stop_signal();
    fprintf(stderr, "mocod: %s received: stopping (workers checkpoint and are requeued)\n",
            sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "stop");
    api_stop(api);
    service_close(svc);
    remove_port_file(cfg->state_dir);
    fprintf(stderr, "mocod: stopped\n");
    free(cfg);
    return 0;
}
