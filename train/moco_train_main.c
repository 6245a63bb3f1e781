/* moco_train_main.c — the moco-train program: subcommand dispatch and usage.
 *
 * moco-train is complete on its own (the equivalent of main_moco.py): a researcher runs it
 * from a shell without the daemon, and mocod launches it for every job (DESIGN §1).
 */
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "train/align.h"
#include "train/bench.h"
#include "train/checkpoint.h"
#include "train/cli_args.h"
#include "train/pretrain.h"

static void usage(FILE *out)
{
    fputs("usage: moco-train pretrain --config FILE [--set key.path=value ...] [--resume CKPT|DIR] [--events-fd N]\n"
          "       moco-train align --config FILE --state IN.safetensors --batch B.safetensors --out OUT.safetensors\n"
          "       moco-train bench --config FILE [--set ...] [--steps N]\n"
          "       moco-train --export backbone --checkpoint CKPT --out FILE\n"
          "Configs: see configs/ (job spec keys as in docs and DESIGN §4). lincls and knn come with the\n"
          "evaluation release.\n", out);
}

static int export_main(const CliArgs *a)
{
    char err[2048];
    if (!a->export_what || strcmp(a->export_what, "backbone") != 0)
        die("--export: only 'backbone' is supported, got '%s'", a->export_what ? a->export_what : "");
    if (!a->checkpoint || !a->out) die("--export backbone needs --checkpoint CKPT and --out FILE");
    if (checkpoint_export_backbone(a->checkpoint, a->out, err, sizeof err) != 0) die("%s", err);
    fprintf(stderr, "backbone written to %s\n", a->out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "align")) return align_main(argc - 1, argv + 1);
    CliArgs args;
    if (!strcmp(cmd, "--export")) {
        if (cli_args_parse(argc, argv, 1, &args) != 0) return 2;
        return export_main(&args);
    }
    int is_pretrain = !strcmp(cmd, "pretrain"), is_bench = !strcmp(cmd, "bench");
    if (!is_pretrain && !is_bench) {
        if (!strcmp(cmd, "lincls") || !strcmp(cmd, "knn"))
            fprintf(stderr, "moco-train: '%s' is not built yet (linear evaluation and kNN come next)\n", cmd);
        else
            fprintf(stderr, "moco-train: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    if (cli_args_parse(argc, argv, 2, &args) != 0) return 2;
    return is_pretrain ? pretrain_main(&args) : bench_main(&args);
}
