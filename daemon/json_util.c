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
