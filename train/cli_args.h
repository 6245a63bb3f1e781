/* cli_args.h — the command-line options shared by moco-train's subcommands.
 *
 *   --config FILE  --set key.path=value (repeatable)  --resume CKPT  --events-fd N
 *   --events-file PATH (events appended to a file; wherever --events-fd is taken)
 *   --steps N (bench)  --checkpoint CKPT --out FILE --export backbone (export)
 * Unknown options, options that the subcommand does not take, options given twice, missing
 * or empty values are errors that name the option (exit status 2, as every usage error).
 */
#ifndef MOCO_CLI_ARGS_H
#define MOCO_CLI_ARGS_H

#define CLI_MAX_SETS 64

/* One bit per option, for the set a subcommand accepts. */
enum {
    CLI_CONFIG = 1u << 0,
    CLI_SET = 1u << 1,
    CLI_RESUME = 1u << 2,
    CLI_EVENTS_FD = 1u << 3,
    CLI_STEPS = 1u << 4,
    CLI_CHECKPOINT = 1u << 5,
    CLI_OUT = 1u << 6,
    CLI_EXPORT = 1u << 7,
    CLI_EVENTS_FILE = 1u << 8,
};

typedef struct {
    const char *config;
    const char *sets[CLI_MAX_SETS];
    int n_sets;
    const char *resume;
    int events_fd;
    const char *events_file;
    int steps;
    const char *checkpoint;
    const char *out;
    const char *export_what;
} CliArgs;

/* Parses argv[first..argc) for subcommand `command` (named in messages), which accepts the
 * options in `allowed` (CLI_* bits). 0, or -1 after printing the problem on stderr. */
int cli_args_parse(int argc, char **argv, int first, const char *command, unsigned allowed,
                   CliArgs *a);

#endif
