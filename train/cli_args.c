/* cli_args.c — see cli_args.h. */
#include "train/cli_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An integer option in [min, 10^9]. */
static int parse_int(const char *opt, const char *s, long min, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > 1000000000) {
        fprintf(stderr, "moco-train: %s needs an integer >= %ld, got '%s'\n", opt, min, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static const struct {
    const char *name;
    unsigned bit;
} options[] = {
    {"--config", CLI_CONFIG},   {"--set", CLI_SET},   {"--resume", CLI_RESUME},
    {"--events-fd", CLI_EVENTS_FD}, {"--steps", CLI_STEPS}, {"--checkpoint", CLI_CHECKPOINT},
    {"--out", CLI_OUT},         {"--export", CLI_EXPORT}, {"--events-file", CLI_EVENTS_FILE},
};

int cli_args_parse(int argc, char **argv, int first, const char *command, unsigned allowed,
                   CliArgs *a)
{
    memset(a, 0, sizeof *a);
    a->events_fd = -1;
    unsigned seen = 0;
    for (int i = first; i < argc; i++) {
        const char *opt = argv[i];
        unsigned bit = 0;
        for (size_t k = 0; k < sizeof options / sizeof options[0]; k++)
            if (!strcmp(opt, options[k].name)) bit = options[k].bit;
        if (!bit) {
            if (opt[0] == '-')
                fprintf(stderr, "moco-train: unknown option '%s' (see moco-train --help)\n", opt);
            else
                fprintf(stderr, "moco-train: unexpected argument '%s': every value follows its "
                        "option, e.g. --config FILE (see moco-train --help)\n", opt);
            return -1;
        }
        /* --events-file goes wherever --events-fd does (under mpirun, descriptors above 2 do
         * not reach the ranks, so launchers name a file). */
        if (!(allowed & (bit == CLI_EVENTS_FILE ? CLI_EVENTS_FD : bit))) {
            fprintf(stderr, "moco-train: %s does not take %s (see moco-train --help)\n", command,
                    opt);
            return -1;
        }
        if ((seen & bit) && bit != CLI_SET) {
            fprintf(stderr, "moco-train: option %s given twice\n", opt);
            return -1;
        }
        seen |= bit;
        if ((seen & CLI_EVENTS_FD) && (seen & CLI_EVENTS_FILE)) {
            fprintf(stderr, "moco-train: give --events-fd or --events-file, not both\n");
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "moco-train: option %s needs a value\n", opt);
            return -1;
        }
        const char *val = argv[++i];
        if (!val[0]) {
            fprintf(stderr, "moco-train: option %s needs a value, got an empty string\n", opt);
            return -1;
        }
        switch (bit) {
        case CLI_CONFIG: a->config = val; break;
        case CLI_RESUME: a->resume = val; break;
        case CLI_CHECKPOINT: a->checkpoint = val; break;
        case CLI_OUT: a->out = val; break;
        case CLI_EXPORT: a->export_what = val; break;
        case CLI_EVENTS_FILE: a->events_file = val; break;
        case CLI_SET:
            if (a->n_sets == CLI_MAX_SETS) {
                fprintf(stderr, "moco-train: more than %d --set options\n", CLI_MAX_SETS);
                return -1;
            }
            a->sets[a->n_sets++] = val;
            break;
        case CLI_EVENTS_FD: /* -1: no events (what a launcher passes when it wants none) */
            if (parse_int(opt, val, -1, &a->events_fd)) return -1;
            break;
        case CLI_STEPS:
            if (parse_int(opt, val, 1, &a->steps)) return -1;
            break;
        }
    }
    return 0;
}
