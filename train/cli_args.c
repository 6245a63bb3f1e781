/* cli_args.c — see cli_args.h. */
#include "train/cli_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_int(const char *opt, const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < -1 || v > 1000000000) {
        fprintf(stderr, "moco-train: %s needs an integer, got '%s'\n", opt, s);
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cli_args_parse(int argc, char **argv, int first, CliArgs *a)
{
    memset(a, 0, sizeof *a);
    a->events_fd = -1;
    for (int i = first; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int takes_value = 1;
        if (!strcmp(opt, "--config")) a->config = val;
        else if (!strcmp(opt, "--resume")) a->resume = val;
        else if (!strcmp(opt, "--checkpoint")) a->checkpoint = val;
        else if (!strcmp(opt, "--out")) a->out = val;
        else if (!strcmp(opt, "--export")) a->export_what = val;
        else if (!strcmp(opt, "--set")) {
            if (val && a->n_sets == CLI_MAX_SETS) {
                fprintf(stderr, "moco-train: more than %d --set options\n", CLI_MAX_SETS);
                return -1;
            }
            if (val) a->sets[a->n_sets++] = val;
        } else if (!strcmp(opt, "--events-fd")) {
            if (val && parse_int(opt, val, &a->events_fd)) return -1;
        } else if (!strcmp(opt, "--steps")) {
            if (val && parse_int(opt, val, &a->steps)) return -1;
        } else {
            fprintf(stderr, "moco-train: unknown option '%s' (see moco-train --help)\n", opt);
            return -1;
        }
        if (takes_value) {
            if (!val) {
                fprintf(stderr, "moco-train: option %s needs a value\n", opt);
                return -1;
            }
            i++;
        }
    }
    return 0;
}
