/* ckpt.c — `mococtl ckpt ls ID` and `mococtl ckpt download ID NAME [-o FILE] [--backbone]
 * [--continue] [--force]`. Downloads stream to the file (checkpoints are hundreds of MiB), are
 * checked against the size and sha256 that mocod lists, and an interrupted one continues with
 * an HTTP Range request from the bytes already on disk.
 */
#include "cli/cli.h"
#include "cli/format.h"
#include "cli/http.h"
#include "cli/sha256.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int list_checkpoints(Http *http, int64_t id, cJSON **out)
{
    char path[96], what[64];
    snprintf(path, sizeof path, "/api/v1/jobs/%lld/checkpoints", (long long)id);
    snprintf(what, sizeof what, "checkpoints of job %lld", (long long)id);
    return api_call(http, "GET", path, NULL, out, what);
}

static int ckpt_ls(Http *http, int argc, char **argv)
{
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int json = 0, c;
    while ((c = getopt_long(argc, argv, ":jh", options, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h': usage_print("ckpt"); return EXIT_OK;
        default: return cli_bad_option("ckpt ls", c, argv, optind);
        }
    }
    if (optind != argc - 1) return cli_usage_error("ckpt", "ckpt ls: give one job id");
    int64_t id;
    if (cli_parse_job_id("ckpt", argv[optind], &id) != 0) return EXIT_USAGE;
    cJSON *doc = NULL;
    int rc = list_checkpoints(http, id, &doc);
    if (rc != EXIT_OK) return rc;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "checkpoints");
    if (json) {
        char *text = cJSON_Print(list);
        if (!text) die("out of memory");
        puts(text);
        free(text);
    } else {
        static const char *headers[] = {"NAME", "STEP", "EPOCH", "SIZE", "SHA256", "MODIFIED"};
        Table t;
        table_init(&t, 6, headers, "lrrrll");
        const cJSON *ck;
        cJSON_ArrayForEach(ck, list) {
            char step[32], epoch[32], size[32], sha[20], when[64];
            snprintf(step, sizeof step, "%.0f", json_num_or(ck, "step", 0));
            snprintf(epoch, sizeof epoch, "%.0f", json_num_or(ck, "epoch", 0));
            fmt_bytes(json_num_or(ck, "size", 0), size, sizeof size);
            const char *digest = json_str(ck, "sha256");
            snprintf(sha, sizeof sha, "%.16s", digest ? digest : "-");
            fmt_time(json_num_or(ck, "mtime", 0), when, sizeof when);
            const char *cells[] = {json_str(ck, "name"), step, epoch, size, sha, when};
            table_add(&t, cells);
        }
        if (t.nrows == 0)
            fprintf(stderr, "mococtl: job %lld has no checkpoints yet\n", (long long)id);
        else
            table_print(&t);
        table_free(&t);
    }
    cJSON_Delete(doc);
    return EXIT_OK;
}

/* ---- download ------------------------------------------------------------------------------ */

typedef struct {
    Http *http;
    FILE *f;
    const char *out;
    long long start;       /* bytes on disk before this request */
    long long received;    /* bytes of this response written */
    long long expected;    /* whole file, or -1 when unknown (exports) */
    Sha256 sha;
    int checked_status;
    int write_errno;
    int show_progress;
    double last_progress;
} Download;

/* Starts over when the server sent the whole file although we asked for the rest. */
static int restart_if_whole(Download *d)
{
    long status = 0;
    if (curl_easy_getinfo(d->http->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK) return 0;
    if (status == 200 && d->start > 0) {
        fprintf(stderr, "mococtl: the server sent the whole file instead of the rest; starting "
                        "%s over\n", d->out);
        if (fflush(d->f) != 0 || ftruncate(fileno(d->f), 0) != 0 || fseek(d->f, 0, SEEK_SET) != 0)
            return -1;
        d->start = 0;
        sha256_init(&d->sha);
    }
    return 0;
}

static void show_progress(Download *d, int final)
{
    double now = now_seconds();
    if (!d->show_progress || (!final && now - d->last_progress < 0.5)) return;
    d->last_progress = now;
    char got[32], total[32];
    fmt_bytes((double)(d->start + d->received), got, sizeof got);
    if (d->expected > 0) {
        fmt_bytes((double)d->expected, total, sizeof total);
        fprintf(stderr, "\r\033[2K  %s / %s  %3.0f%%", got, total,
                100.0 * (double)(d->start + d->received) / (double)d->expected);
    } else {
        fprintf(stderr, "\r\033[2K  %s", got);
    }
    if (final) fputc('\n', stderr);
}

static int write_chunk(const char *data, size_t len, void *user)
{
    Download *d = user;
    if (!d->checked_status) {
        d->checked_status = 1;
        if (restart_if_whole(d) != 0) {
            d->write_errno = errno ? errno : EIO;
            return -1;
        }
    }
    if (fwrite(data, 1, len, d->f) != len) {
        d->write_errno = errno ? errno : EIO;
        return -1;
    }
    sha256_update(&d->sha, data, len);
    d->received += (long long)len;
    show_progress(d, 0);
    return 0;
}

/* Hashes what is already in the file (a partial download being continued). */
static int hash_existing(FILE *f, Sha256 *sha, long long *size)
{
    char buf[1 << 16];
    size_t n;
    *size = 0;
    if (fseek(f, 0, SEEK_SET) != 0) return -1;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        sha256_update(sha, buf, n);
        *size += (long long)n;
    }
    if (ferror(f)) return -1;
    return fseek(f, 0, SEEK_END);
}

static const cJSON *find_checkpoint(const cJSON *doc, const char *name)
{
    const cJSON *ck;
    cJSON_ArrayForEach(ck, cJSON_GetObjectItemCaseSensitive(doc, "checkpoints")) {
        const char *n = json_str(ck, "name");
        if (n && strcmp(n, name) == 0) return ck;
    }
    return NULL;
}

static int ckpt_download(Http *http, int argc, char **argv)
{
    static const struct option options[] = {
        {"output", required_argument, NULL, 'o'}, {"backbone", no_argument, NULL, 'b'},
        {"continue", no_argument, NULL, 'c'},     {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int backbone = 0, cont = 0, force = 0, c;
    while ((c = getopt_long(argc, argv, ":o:bcfh", options, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'b': backbone = 1; break;
        case 'c': cont = 1; break;
        case 'f': force = 1; break;
        case 'h': usage_print("ckpt"); return EXIT_OK;
        default: return cli_bad_option("ckpt download", c, argv, optind);
        }
    }
    if (optind != argc - 2)
        return cli_usage_error("ckpt", "ckpt download: give a job id and a checkpoint name "
                               "(`mococtl ckpt ls ID` lists them)");
    if (cont && force) return cli_usage_error("ckpt", "--continue and --force exclude each other");
    int64_t id;
    if (cli_parse_job_id("ckpt", argv[optind], &id) != 0) return EXIT_USAGE;
    const char *name = argv[optind + 1];
    if (!*name || strchr(name, '/'))
        return cli_usage_error("ckpt", "'%s' is not a checkpoint name (a file name as `mococtl "
                               "ckpt ls %lld` shows it)", name, (long long)id);

    /* The listing gives the size and digest to check against. */
    cJSON *doc = NULL;
    int rc = list_checkpoints(http, id, &doc);
    if (rc != EXIT_OK) return rc;
    const cJSON *ck = find_checkpoint(doc, name);
    if (!ck) {
        cli_error("job %lld has no checkpoint '%s'; `mococtl ckpt ls %lld` lists them",
                  (long long)id, name, (long long)id);
        cJSON_Delete(doc);
        return EXIT_NOT_FOUND;
    }
    char expected_sha[65] = "";
    long long expected = -1;
    if (!backbone) {
        const char *digest = json_str(ck, "sha256");
        if (digest) snprintf(expected_sha, sizeof expected_sha, "%s", digest);
        double size;
        if (json_num(ck, "size", &size)) expected = (long long)size;
    }
    cJSON_Delete(doc);

    char default_out[1024];
    if (!out) {
        if (backbone) {
            size_t n = strlen(name);
            const char *ext = ".safetensors";
            size_t el = strlen(ext);
            int has_ext = n > el && strcmp(name + n - el, ext) == 0;
            snprintf(default_out, sizeof default_out, "%.*s-backbone.safetensors",
                     (int)(has_ext ? n - el : n), name);
        } else {
            snprintf(default_out, sizeof default_out, "%s", name);
        }
        out = default_out;
    }

    struct stat st;
    int exists = stat(out, &st) == 0;
    if (exists && !cont && !force) {
        cli_error("%s exists; --continue resumes an interrupted download into it, --force "
                  "overwrites it", out);
        return EXIT_USAGE;
    }
    FILE *f = fopen(out, exists && cont ? "r+b" : "wb");
    if (!f) {
        cli_error("cannot open %s for writing: %s", out, strerror(errno));
        return EXIT_USAGE;
    }
    Download d = {.http = http, .f = f, .out = out, .expected = expected,
                  .show_progress = isatty(STDERR_FILENO)};
    sha256_init(&d.sha);
    if (exists && cont && hash_existing(f, &d.sha, &d.start) != 0) {
        cli_error("cannot read %s to continue it: %s", out, strerror(errno));
        fclose(f);
        return EXIT_USAGE;
    }
    if (expected >= 0 && d.start > expected) {
        cli_error("%s holds %lld bytes, more than the %lld of %s: it is not a partial download of "
                  "it; remove it or use --force", out, d.start, expected, name);
        fclose(f);
        return EXIT_USAGE;
    }

    rc = EXIT_OK;
    if (expected < 0 || d.start < expected) {
        char *esc = http_escape(http, name);
        char path[1024], range[64], what[256];
        snprintf(path, sizeof path, "/api/v1/jobs/%lld/checkpoints/%s%s", (long long)id, esc,
                 backbone ? "?format=backbone" : "");
        curl_free(esc);
        snprintf(range, sizeof range, "Range: bytes=%lld-", d.start);
        snprintf(what, sizeof what, "download %s of job %lld", name, (long long)id);
        if (d.start > 0)
            fprintf(stderr, "mococtl: continuing %s at byte %lld\n", out, d.start);
        HttpResponse r;
        /* no overall time limit: a big checkpoint over a slow link may take long */
        http_stream(http, path, d.start > 0 ? range : NULL, 0, write_chunk, &d, &r);
        show_progress(&d, 1);
        if (d.write_errno) {
            cli_error("cannot write %s: %s", out, strerror(d.write_errno));
            rc = EXIT_SERVER;
        } else {
            rc = http_check(http, &r, what);
            if (rc == EXIT_CONNECT && d.start + d.received > 0)
                fprintf(stderr, "mococtl: %s holds the first %lld bytes; run the same command "
                                "with --continue to fetch the rest\n", out, d.start + d.received);
        }
        http_response_free(&r);
    }
    /* A download is worth keeping only once it is on disk. */
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        if (rc == EXIT_OK) cli_error("cannot write %s: %s", out, strerror(errno));
        if (rc == EXIT_OK) rc = EXIT_SERVER;
    }
    if (fclose(f) != 0 && rc == EXIT_OK) {
        cli_error("cannot write %s: %s", out, strerror(errno));
        rc = EXIT_SERVER;
    }
    if (rc != EXIT_OK) return rc;

    long long total = d.start + d.received;
    char hex[65];
    sha256_final_hex(&d.sha, hex);
    if (expected >= 0 && total != expected) {
        cli_error("%s has %lld bytes but the listing says %lld; run the same command with "
                  "--continue, or --force to start over", out, total, expected);
        return EXIT_SERVER;
    }
    if (expected_sha[0] && strcmp(hex, expected_sha) != 0) {
        if (unlink(out) != 0)
            cli_error("cannot remove %s: %s", out, strerror(errno));
        cli_error("%s: sha256 %s does not match the listing's %s; the file was damaged (or the "
                  "partial file was from another checkpoint) and has been removed: download it "
                  "again", out, hex, expected_sha);
        return EXIT_SERVER;
    }
    char size[32];
    fmt_bytes((double)total, size, sizeof size);
    fprintf(stderr, "mococtl: wrote %s (%s, sha256 %s%s)\n", out, size, hex,
            expected_sha[0] ? " verified" : "; mocod lists no digest for exports");
    puts(out);
    return EXIT_OK;
}

int cmd_ckpt(Http *http, int argc, char **argv)
{
    if (argc < 2) return cli_usage_error("ckpt", "give a subcommand: ls or download");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage_print("ckpt");
        return EXIT_OK;
    }
    if (strcmp(argv[1], "ls") == 0) return ckpt_ls(http, argc - 1, argv + 1);
    if (strcmp(argv[1], "download") == 0 || strcmp(argv[1], "get") == 0)
        return ckpt_download(http, argc - 1, argv + 1);
    return cli_usage_error("ckpt", "unknown subcommand '%s' (ls or download)", argv[1]);
}
