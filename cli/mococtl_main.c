/* mococtl_main.c — mococtl's entry: global options (--server, --token, --token-file and their
 * environment variables MOCOD_URL, MOCOD_TOKEN), then one command (cli.h) per invocation.
 */
#include "cli/cli.h"
#include "cli/http.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_URL "http://127.0.0.1:8080"

static const struct {
    const char *name;
    CommandFn fn;
} dispatch[] = {
    {"submit", cmd_submit},   {"ls", cmd_ls},           {"list", cmd_ls},
    {"show", cmd_show},       {"logs", cmd_logs},       {"watch", cmd_watch},
    {"cancel", cmd_cancel},   {"pause", cmd_pause},     {"resume", cmd_resume},
    {"priority", cmd_priority}, {"rm", cmd_rm},         {"delete", cmd_rm},
    {"metrics", cmd_metrics}, {"ckpt", cmd_ckpt},       {"queue", cmd_queue},
    {"devices", cmd_devices}, {"health", cmd_health},
};

/* The first line of a token file, without its line break. NULL after a message. */
static char *read_token_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_error("cannot read the token file %s: %s", path, strerror(errno));
        return NULL;
    }
    char line[4096];
    char *got = fgets(line, sizeof line, f);
    int failed = ferror(f);
    fclose(f); /* read-only: nothing to lose */
    if (!got || failed) {
        cli_error("the token file %s is empty; its first line should be mocod's token", path);
        return NULL;
    }
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                     line[n - 1] == '\t'))
        line[--n] = '\0';
    if (n == 0) {
        cli_error("the token file %s starts with an empty line; its first line should be "
                  "mocod's token", path);
        return NULL;
    }
    return xstrdup(line);
}

int main(int argc, char **argv)
{
    const char *server = getenv("MOCOD_URL");
    const char *token_arg = NULL, *token_file = NULL;
    static const struct option options[] = {
        {"server", required_argument, NULL, 's'},
        {"token", required_argument, NULL, 't'},
        {"token-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opterr = 0;
    int c;
    /* "+": stop at the command, whose options are its own */
    while ((c = getopt_long(argc, argv, "+:h", options, NULL)) != -1) {
        switch (c) {
        case 's': server = optarg; break;
        case 't': token_arg = optarg; break;
        case 'f': token_file = optarg; break;
        case 'h': usage_print(NULL); return EXIT_OK;
        case ':':
            return cli_usage_error(NULL, "%s needs a value", argv[optind - 1]);
        default:
            if (optopt)
                return cli_usage_error(NULL, "unknown option -%c", optopt);
            return cli_usage_error(NULL, "unknown option %s (global options come before the "
                                   "command: --server, --token, --token-file)", argv[optind - 1]);
        }
    }
    if (optind >= argc) {
        usage_print(NULL);
        return EXIT_USAGE;
    }
    int cmd_index = optind;
    const char *command = argv[cmd_index];
    if (strcmp(command, "help") == 0) {
        usage_print(optind + 1 < argc ? argv[optind + 1] : NULL);
        return EXIT_OK;
    }
    CommandFn fn = NULL;
    for (size_t i = 0; i < sizeof dispatch / sizeof dispatch[0]; i++)
        if (strcmp(dispatch[i].name, command) == 0) fn = dispatch[i].fn;
    if (!fn) return cli_usage_error(NULL, "unknown command '%s'", command);
    if (!server || !*server) server = DEFAULT_URL;

    char *token = NULL;
    if (token_arg && token_file)
        return cli_usage_error(NULL, "give --token or --token-file, not both");
    if (token_file) {
        token = read_token_file(token_file);
        if (!token) return EXIT_USAGE;
    } else if (token_arg) {
        token = xstrdup(token_arg);
    } else if (getenv("MOCOD_TOKEN") && *getenv("MOCOD_TOKEN")) {
        token = xstrdup(getenv("MOCOD_TOKEN"));
    }

    Http http;
    if (http_open(&http, server, token) != 0) {
        free(token);
        return EXIT_USAGE;
    }
    free(token);
    optind = 0; /* each command parses its own options with getopt from the start */
    int rc = fn(&http, argc - cmd_index, argv + cmd_index);
    http_close(&http);
    return rc;
}
