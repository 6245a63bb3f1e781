/* moco_train_main.c — the moco-train program: subcommand dispatch and usage.
 *
 * moco-train is complete on its own (the equivalent of main_moco.py): a researcher runs it
 * from a shell without the daemon, and mocod launches it for every job (DESIGN §1).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "train/blas_core.h"
#include "train/align.h"
#include "train/bench.h"
#include "train/checkpoint.h"
#include "train/cli_args.h"
#include "train/comm.h"
#include "train/events.h"
#include "train/knn_job.h"
#include "train/lincls.h"
#include "train/pretrain.h"

static void usage(FILE *out)
{
    fputs("usage: moco-train pretrain --config FILE [--set key.path=value ...] [--resume CKPT|DIR] [--events-fd N]\n"
          "       mpirun -np R moco-train pretrain ...   (R data-parallel ranks; see docs/moco-train.md)\n"
          "       moco-train align --config FILE --state IN.safetensors --batch B.safetensors --out OUT.safetensors\n"
          "                        [--rank-states DIR]   (also under mpirun)\n"
          "       moco-train bench --config FILE [--set ...] [--steps N]\n"
          "       moco-train lincls --config FILE [--set ...] [--resume CKPT|DIR] [--events-fd N]\n"
          "       moco-train knn --config FILE [--checkpoint CKPT] [--set ...] [--events-fd N]   (CKPT default: model.pretrained)\n"
          "       moco-train --export backbone --checkpoint CKPT --out FILE\n"
          "Wherever --events-fd N is taken, --events-file PATH appends the events to a file instead.\n"
          "Configs: see configs/; every job-spec key is in docs/job-spec.md.\n", out);
}

/* Usage errors end with status 2 and the usage text, as README promises. */
static int usage_error(const char *msg)
{
    fprintf(stderr, "moco-train: %s\n", msg);
    usage(stderr);
    return 2;
}

/* --events-fd must name a descriptor open for writing: a typo there would otherwise lose every
 * event of the run after one warning. */
static int check_events_fd(CliArgs *a)
{
    if (a->events_file && comm_launcher_rank() > 0) return 0; /* rank 0 alone writes events */
    if (a->events_file) { /* appended: a resumed run continues the same file */
        a->events_fd = open(a->events_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (a->events_fd < 0) {
            fprintf(stderr, "moco-train: --events-file %s: %s\n", a->events_file, strerror(errno));
            return -1;
        }
        return 0;
    }
    int fd = a->events_fd;
    if (fd < 0) return 0;
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 && comm_mpi_started()) {
        fprintf(stderr, "moco-train: --events-fd %d: mpirun does not pass descriptors above 2 to "
                "the ranks; use --events-file PATH instead\n", fd);
        return -1;
    }
    if (flags < 0) {
        fprintf(stderr, "moco-train: --events-fd %d is not an open file descriptor (the caller "
                "must pass it open for writing, e.g. 3>events.jsonl)\n", fd);
        return -1;
    }
    if ((flags & O_ACCMODE) == O_RDONLY) {
        fprintf(stderr, "moco-train: --events-fd %d is open read-only; events need a descriptor "
                "open for writing\n", fd);
        return -1;
    }
    return 0;
}

static int export_main(const CliArgs *a)
{
    char err[2048];
    if (strcmp(a->export_what, "backbone") != 0) {
        fprintf(stderr, "moco-train: --export: only 'backbone' is supported, got '%s'\n", a->export_what);
        return 2;
    }
    if (!a->checkpoint || !a->out)
        return usage_error("--export backbone needs --checkpoint CKPT and --out FILE");
    events_open(a->events_fd);
    if (checkpoint_export_backbone(a->checkpoint, a->out, err, sizeof err) != 0) die("%s", err);
    fprintf(stderr, "backbone written to %s\n", a->out);
    return 0;
}

/* lincls, knn, bench and --export run as one process: started as several ranks they would
 * each train or write the same files. pretrain and align are the data-parallel commands. */
static int refuse_ranks(const char *cmd)
{
    int n = comm_launcher_size();
    if (n == 1 || n == 0) return 0;
    if (comm_launcher_rank() <= 0)
        fprintf(stderr, "moco-train: %s runs as a single process, but the launcher started %d%s "
                "ranks; run it without mpirun/srun (only pretrain and align run on several ranks)\n",
                cmd, n, n < 0 ? " (unknown number of)" : "");
    return 2;
}

int main(int argc, char **argv)
{
    blas_core_reexec_if_generic(argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "align")) return align_main(argc - 1, argv + 1);
    if (strcmp(cmd, "pretrain") != 0 && refuse_ranks(cmd) != 0) return 2;
    CliArgs args;
    if (!strcmp(cmd, "--export")) {
        if (cli_args_parse(argc, argv, 1, "--export", CLI_EXPORT | CLI_CHECKPOINT | CLI_OUT | CLI_EVENTS_FD,
                           &args) != 0 || check_events_fd(&args) != 0)
            return 2;
        return export_main(&args);
    }
    if (!strcmp(cmd, "knn")) {
        if (cli_args_parse(argc, argv, 2, cmd, KNN_JOB_OPTIONS, &args) != 0 ||
            check_events_fd(&args) != 0)
            return 2;
        if (!args.config) return usage_error("knn needs --config FILE (and --checkpoint CKPT or model.pretrained)");
        return knn_job_main(&args);
    }
    if (!strcmp(cmd, "lincls")) {
        if (cli_args_parse(argc, argv, 2, cmd, CLI_CONFIG | CLI_SET | CLI_RESUME | CLI_EVENTS_FD,
                           &args) != 0 || check_events_fd(&args) != 0)
            return 2;
        if (!args.config && !args.resume)
            return usage_error("lincls needs --config FILE, or --resume CKPT to continue a run "
                               "with its own config");
        return lincls_main(&args);
    }
    int is_pretrain = !strcmp(cmd, "pretrain"), is_bench = !strcmp(cmd, "bench");
    if (!is_pretrain && !is_bench) {
        fprintf(stderr, "moco-train: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    unsigned allowed = is_pretrain ? CLI_CONFIG | CLI_SET | CLI_RESUME | CLI_EVENTS_FD
                                   : CLI_CONFIG | CLI_SET | CLI_STEPS;
    if (cli_args_parse(argc, argv, 2, cmd, allowed, &args) != 0 || check_events_fd(&args) != 0)
        return 2;
    if (is_pretrain && !args.config && !args.resume)
        return usage_error("pretrain needs --config FILE (see configs/ for recipes), or --resume CKPT "
                           "to continue a run with its own config");
    if (is_bench && !args.config) return usage_error("bench needs --config FILE");
    return is_pretrain ? pretrain_main(&args) : bench_main(&args);
}
