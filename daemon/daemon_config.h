/* daemon_config.h — mocod's own settings (docs/mocod-api.md, "Running it").
 *
 * Embedded defaults, then /etc/mocod/mocod.yaml (or --config FILE), then command-line flags.
 * Loading never exits: errors come back as a message naming the key or flag and the fix.
 */
#ifndef MOCOD_DAEMON_CONFIG_H
#define MOCOD_DAEMON_CONFIG_H

#include <stddef.h>

#define DAEMON_PATH_MAX 4096
#define DAEMON_MAX_DATA_ROOTS 32

typedef struct {
    char listen_host[256];      /* "127.0.0.1" */
    int listen_port;            /* 8080; 0 = pick a free port */
    char state_dir[DAEMON_PATH_MAX];
    char data_roots[DAEMON_MAX_DATA_ROOTS][DAEMON_PATH_MAX];  /* absolute, resolved */
    int n_data_roots;
    char token[256];            /* "" = no auth (only allowed on loopback) */
    int cpu_slots;              /* CPU jobs at once */
    int gpus;                   /* GPUs offered to jobs */
    size_t max_body_bytes;
    int grace_period_s;
    int max_restarts;
    char moco_train[DAEMON_PATH_MAX];  /* worker program, absolute */
    char mpirun[DAEMON_PATH_MAX];      /* multi-rank launcher: absolute, or a name for PATH */
    char web_dir[DAEMON_PATH_MAX];     /* dashboard files */
    char chartjs[DAEMON_PATH_MAX];     /* Chart.js file served at /vendor/chart.js */
} DaemonConfig;

/* Fills cfg from defaults, the config file (argv's --config, else /etc/mocod/mocod.yaml if it
 * exists) and argv. argv0_path: the running binary (for moco_train/web_dir defaults). Returns 0,
 * 1 when --help was printed, or -1 with a message in err. */
int daemon_config_load(int argc, char **argv, const char *argv0_path, DaemonConfig *cfg,
                       char *err, size_t errlen);

#endif
