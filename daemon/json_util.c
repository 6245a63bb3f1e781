/* json_util.c — see json_util.h. */
#include "daemon/json_util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int make_numbers_exact(cJSON *node)
{
    for (cJSON *c = node ? node->child : NULL; c; c = c->next) {
        if (cJSON_IsNumber(c)) {
            char buf[40];
            for (int digits = 15; digits <= 17; digits++) {
                snprintf(buf, sizeof buf, "%.*g", digits, c->valuedouble);
                if (strtod(buf, NULL) == c->valuedouble) break;
            }
            /* Turn the node into a raw one in place, keeping its key and position. */
            char *raw = strdup(buf);
            if (!raw) return -1;
            c->type = cJSON_Raw;
            c->valuestring = raw;
        } else if (cJSON_IsObject(c) || cJSON_IsArray(c)) {
            if (make_numbers_exact(c) != 0) return -1;
        }
    }
    return 0;
}

char *json_print_exact(cJSON *tree)
{
    if (!tree) return NULL;
    if (cJSON_IsNumber(tree)) return cJSON_PrintUnformatted(tree); /* a bare number: no parent */
    if (make_numbers_exact(tree) != 0) return NULL;
    return cJSON_PrintUnformatted(tree);
}

cJSON *json_at(cJSON *tree, const char *path)
{
    char part[128];
    cJSON *node = tree;
    const char *p = path;
    while (node && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof part || !cJSON_IsObject(node)) return NULL;
        memcpy(part, p, n);
        part[n] = '\0';
        node = cJSON_GetObjectItemCaseSensitive(node, part);
        p = dot ? dot + 1 : p + n;
    }
    return node;
}

int json_set_string(cJSON *tree, const char *path, const char *value)
{
    char part[128];
    cJSON *node = tree;
    const char *p = path;
    for (;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (n >= sizeof part || !cJSON_IsObject(node)) return -1;
        memcpy(part, p, n);
        part[n] = '\0';
        if (!dot) {
            cJSON *s = cJSON_CreateString(value);
            if (!s) return -1;
            if (cJSON_GetObjectItemCaseSensitive(node, part))
                return cJSON_ReplaceItemInObjectCaseSensitive(node, part, s) ? 0 : -1;
            return cJSON_AddItemToObject(node, part, s) ? 0 : -1;
        }
        cJSON *child = cJSON_GetObjectItemCaseSensitive(node, part);
        if (!child || cJSON_IsNull(child)) {
            cJSON *section = cJSON_CreateObject();
            if (!section) return -1;
            int ok = child ? cJSON_ReplaceItemInObjectCaseSensitive(node, part, section)
                           : cJSON_AddItemToObject(node, part, section);
            if (!ok) return -1;
            child = section;
        }
        node = child;
        p = dot + 1;
    }
}

/* Bytes of the well-formed UTF-8 sequence at s[0..n), or 0 when none starts there. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;      /* overlong */
        else if (c == 0xED) hi = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;      /* overlong */
        else if (c == 0xF4) hi = 0x8F; /* past U+10FFFF */
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

size_t utf8_valid_prefix(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t k = utf8_sequence(u + i, n - i);
        if (k == 0) break;
        i += k;
    }
    return i;
}

int utf8_repair(const char *s, size_t n, char **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    size_t i = utf8_valid_prefix(s, n);
    if (i == n) return 0;
    /* at worst every byte becomes the three bytes of U+FFFD */
    char *buf = malloc(3 * n + 1);
    if (!buf) return -1;
    memcpy(buf, s, i);
    size_t o = i;
    const unsigned char *u = (const unsigned char *)s;
    while (i < n) {
        size_t k = utf8_sequence(u + i, n - i);
        if (k == 0) {
            memcpy(buf + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(buf + o, s + i, k);
            o += k;
            i += k;
        }
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 1;
}
