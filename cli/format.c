/* format.c — durations, ages, times, sizes and aligned tables for mococtl's output. */
#include "cli/format.h"

#include "common/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void fmt_duration(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0) {
        snprintf(buf, n, "-");
        return;
    }
    long long t = (long long)(s + 0.5);
    if (t < 60)
        snprintf(buf, n, "%llds", t);
    else if (t < 3600)
        snprintf(buf, n, "%lldm%02llds", t / 60, t % 60);
    else if (t < 86400)
        snprintf(buf, n, "%lldh%02lldm", t / 3600, (t % 3600) / 60);
    else
        snprintf(buf, n, "%lldd%02lldh", t / 86400, (t % 86400) / 3600);
}

double now_seconds(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (double)time(NULL);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void fmt_age(double ts, char *buf, size_t n)
{
    if (!(ts > 0)) {
        snprintf(buf, n, "-");
        return;
    }
    double age = now_seconds() - ts;
    fmt_duration(age < 0 ? 0 : age, buf, n); /* clocks of client and server may differ a little */
}

void fmt_time(double ts, char *buf, size_t n)
{
    time_t t = (time_t)ts;
    struct tm tm;
    if (!(ts > 0) || !localtime_r(&t, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(buf, n, "-");
}

void fmt_bytes(double b, char *buf, size_t n)
{
    static const char *units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (b < 1024) {
        snprintf(buf, n, "%.0f B", b);
        return;
    }
    int u = -1;
    while (b >= 1024 && u < 3) {
        b /= 1024;
        u++;
    }
    snprintf(buf, n, "%.1f %s", b, units[u]);
}

const char *json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int json_num(const cJSON *obj, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v)) return 0;
    *out = v->valuedouble;
    return 1;
}

double json_num_or(const cJSON *obj, const char *key, double fallback)
{
    double v;
    return json_num(obj, key, &v) ? v : fallback;
}

/* ---- tables --------------------------------------------------------------------------------- */

void table_init(Table *t, int ncols, const char **headers, const char *right)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->headers = headers;
    t->right = right;
}

void table_add(Table *t, const char **cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = xrealloc(t->cells, (size_t)t->cap * t->ncols * sizeof(char *));
    }
    for (int c = 0; c < t->ncols; c++)
        t->cells[(size_t)t->nrows * t->ncols + c] = xstrdup(cells[c] ? cells[c] : "-");
    t->nrows++;
}

/* Display width of UTF-8 text: one column per code point (the tables hold no wide glyphs). */
static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) w++;
    return w;
}

static void print_cell(const char *text, int width, int right, int last)
{
    int pad = width - text_width(text);
    if (right) printf("%*s", pad > 0 ? pad : 0, "");
    fputs(text, stdout);
    if (!right && !last) printf("%*s", pad > 0 ? pad : 0, "");
}

void table_print(const Table *t)
{
    int *width = xcalloc((size_t)t->ncols, sizeof(int));
    for (int c = 0; c < t->ncols; c++) {
        width[c] = text_width(t->headers[c]);
        for (int r = 0; r < t->nrows; r++) {
            int w = text_width(t->cells[(size_t)r * t->ncols + c]);
            if (w > width[c]) width[c] = w;
        }
    }
    for (int r = -1; r < t->nrows; r++) {
        for (int c = 0; c < t->ncols; c++) {
            const char *text = r < 0 ? t->headers[c] : t->cells[(size_t)r * t->ncols + c];
            int right = t->right && t->right[c] == 'r';
            print_cell(text, width[c], right, c == t->ncols - 1);
            if (c < t->ncols - 1) fputs("  ", stdout);
        }
        putchar('\n');
    }
    free(width);
}

void table_free(Table *t)
{
    for (size_t i = 0; i < (size_t)t->nrows * t->ncols; i++) free(t->cells[i]);
    free(t->cells);
    memset(t, 0, sizeof *t);
}
