/* cli_args.h — the command-line options shared by moco-train's subcommands.
 *
 *   --config FILE  --set key.path=value (repeatable)  --resume CKPT  --events-fd N
 *   --steps N (bench)  --checkpoint CKPT --out FILE --export backbone (export)
 * Unknown options and missing values are errors that name the option.
 */
#ifndef MOCO_CLI_ARGS_H
#define MOCO_CLI_ARGS_H

#define CLI_MAX_SETS 64

typedef struct {
    const char *config;
    const char *sets[CLI_MAX_SETS];
    int n_sets;
    const char *resume;
    int events_fd;
    int steps;
    const char *checkpoint;
    const char *out;
    const char *export_what;
} CliArgs;

/* Parses argv[first..argc). 0, or -1 after printing the problem and usage on stderr. */
int cli_args_parse(int argc, char **argv, int first, CliArgs *a);

#endif
