/* config_yaml.c — YAML to cJSON through libyaml's event parser (see config_yaml.h).
 *
 * A recursive descent over parser events: one function per node kind. The depth is bounded
 * because job specs also arrive over HTTP and a hostile body must not exhaust the stack.
 */
#include "train/config_yaml.h"

#include "common/error.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YAML_MAX_DEPTH 64
/* Aliases copy their anchor's subtree, so nine anchors of nine aliases each expand to 9^9
 * values ("billion laughs") from a 400-byte file. A job spec has about a hundred values; cap
 * the total, aliases included, far above that. */
#define YAML_MAX_NODES 100000

typedef struct {
    yaml_parser_t parser;
    const char *text;
    size_t text_len;
    const char *source;
    YamlLines *lines;
    char *err;
    size_t errlen;
    /* anchors seen so far, for aliases: names and the nodes they label */
    char **anchor_names;
    cJSON **anchor_nodes;
    int n_anchors;
    long n_nodes; /* values built so far, alias copies included (bounded by YAML_MAX_NODES) */
} YamlReader;

static void reader_error(YamlReader *r, size_t line0, size_t col0, const char *fmt, ...)
    MOCO_PRINTF(4, 5);
static void reader_error(YamlReader *r, size_t line0, size_t col0, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(r->err, r->errlen, "%s:%zu:%zu: %s", r->source, line0 + 1, col0 + 1, msg);
}

/* Fetches the next event; on a syntax error, reports libyaml's problem and position. */
static int next_event(YamlReader *r, yaml_event_t *ev)
{
    if (yaml_parser_parse(&r->parser, ev)) return 0;
    const yaml_parser_t *p = &r->parser;
    /* The commonest YAML mistake gets a plain hint. */
    size_t at = p->problem_mark.index;
    const char *hint = (at < r->text_len && r->text[at] == '\t')
                           ? " (a tab: YAML indents with spaces only)" : "";
    reader_error(r, p->problem_mark.line, p->problem_mark.column, "YAML syntax error: %s%s%s%s",
                 p->context ? p->context : "", p->context ? ": " : "",
                 p->problem ? p->problem : "unknown problem", hint);
    return -1;
}

static void record_line(YamlReader *r, const char *path, size_t line0)
{
    YamlLines *l = r->lines;
    if (!l) return;
    if (l->count == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->paths = xrealloc(l->paths, (size_t)l->cap * sizeof *l->paths);
        l->lines = xrealloc(l->lines, (size_t)l->cap * sizeof *l->lines);
    }
    l->paths[l->count] = xstrdup(path);
    l->lines[l->count] = (int)line0 + 1;
    l->count++;
}

int yaml_line_of(const YamlLines *lines, const char *path)
{
    if (!lines || !path) return 0;
    for (int i = 0; i < lines->count; i++)
        if (strcmp(lines->paths[i], path) == 0) return lines->lines[i];
    return 0;
}

void yaml_lines_free(YamlLines *lines)
{
    if (!lines) return;
    for (int i = 0; i < lines->count; i++) free(lines->paths[i]);
    free(lines->paths);
    free(lines->lines);
    memset(lines, 0, sizeof *lines);
}

/* ---- scalars: the YAML 1.2 core schema -------------------------------------------------- */

static int all_digits(const char *s, const char *set)
{
    if (!*s) return 0;
    for (; *s; s++)
        if (!strchr(set, *s)) return 0;
    return 1;
}

static int is_core_float(const char *s)
{
    /* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
    if (*s == '-' || *s == '+') s++;
    int digits = 0;
    while (*s >= '0' && *s <= '9') s++, digits++;
    if (*s == '.') {
        s++;
        int frac = 0;
        while (*s >= '0' && *s <= '9') s++, frac++;
        if (digits == 0 && frac == 0) return 0;
    } else if (digits == 0) {
        return 0;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '-' || *s == '+') s++;
        if (!(*s >= '0' && *s <= '9')) return 0;
        while (*s >= '0' && *s <= '9') s++;
    }
    return *s == '\0';
}

static cJSON *checked(cJSON *node)
{
    if (!node) die("out of memory building the job spec");
    return node;
}

cJSON *yaml_plain_scalar(const char *s)
{
    if (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL"))
        return checked(cJSON_CreateNull());
    if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
        return checked(cJSON_CreateTrue());
    if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
        return checked(cJSON_CreateFalse());
    const char *body = (*s == '-' || *s == '+') ? s + 1 : s;
    if (all_digits(body, "0123456789")) return checked(cJSON_CreateNumber(strtod(s, NULL)));
    if (!strncmp(s, "0o", 2) && all_digits(s + 2, "01234567"))
        return checked(cJSON_CreateNumber((double)strtoull(s + 2, NULL, 8)));
    if (!strncmp(s, "0x", 2) && all_digits(s + 2, "0123456789abcdefABCDEF"))
        return checked(cJSON_CreateNumber((double)strtoull(s + 2, NULL, 16)));
    if (is_core_float(s)) return checked(cJSON_CreateNumber(strtod(s, NULL)));
    /* .inf and .nan are core-schema floats, but JSON cannot hold them; keep them as text so
     * that the type check names them instead of a later printer writing "null". */
    return checked(cJSON_CreateString(s));
}

static cJSON *scalar_node(const yaml_event_t *ev)
{
    const char *value = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag && strcmp(tag, YAML_STR_TAG) == 0) return checked(cJSON_CreateString(value));
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return checked(cJSON_CreateString(value));
    return yaml_plain_scalar(value);
}

/* ---- collections ------------------------------------------------------------------------ */

static cJSON *parse_node(YamlReader *r, yaml_event_t *ev, int depth, const char *path);

static void remember_anchor(YamlReader *r, const yaml_char_t *anchor, cJSON *node)
{
    if (!anchor) return;
    r->anchor_names = xrealloc(r->anchor_names, (size_t)(r->n_anchors + 1) * sizeof(char *));
    r->anchor_nodes = xrealloc(r->anchor_nodes, (size_t)(r->n_anchors + 1) * sizeof(cJSON *));
    r->anchor_names[r->n_anchors] = xstrdup((const char *)anchor);
    r->anchor_nodes[r->n_anchors] = node;
    r->n_anchors++;
}

static cJSON *parse_sequence(YamlReader *r, int depth, const char *path)
{
    cJSON *arr = checked(cJSON_CreateArray());
    for (;;) {
        yaml_event_t ev;
        if (next_event(r, &ev) != 0) break;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return arr;
        }
        cJSON *item = parse_node(r, &ev, depth + 1, path);
        yaml_event_delete(&ev);
        if (!item) break;
        cJSON_AddItemToArray(arr, item);
    }
    cJSON_Delete(arr);
    return NULL;
}

static cJSON *parse_mapping(YamlReader *r, int depth, const char *path)
{
    cJSON *obj = checked(cJSON_CreateObject());
    for (;;) {
        yaml_event_t key;
        if (next_event(r, &key) != 0) break;
        if (key.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&key);
            return obj;
        }
        if (key.type != YAML_SCALAR_EVENT) {
            reader_error(r, key.start_mark.line, key.start_mark.column,
                         "mapping keys must be plain words, not lists or mappings");
            yaml_event_delete(&key);
            break;
        }
        const char *name = (const char *)key.data.scalar.value;
        if (cJSON_GetObjectItemCaseSensitive(obj, name)) {
            reader_error(r, key.start_mark.line, key.start_mark.column,
                         "duplicate key '%s' (each key may appear once per mapping)", name);
            yaml_event_delete(&key);
            break;
        }
        yaml_event_t value_ev;
        if (next_event(r, &value_ev) != 0) {
            yaml_event_delete(&key);
            break;
        }
        size_t line0 = value_ev.start_mark.line;
        size_t child_len = strlen(path) + strlen(name) + 2;
        char *child = xmalloc(child_len);
        snprintf(child, child_len, "%s%s%s", path, *path ? "." : "", name);
        cJSON *value = parse_node(r, &value_ev, depth + 1, child);
        yaml_event_delete(&value_ev);
        if (!value) {
            free(child);
            yaml_event_delete(&key);
            break;
        }
        cJSON_AddItemToObject(obj, name, value);
        record_line(r, child, line0);
        free(child);
        yaml_event_delete(&key);
    }
    cJSON_Delete(obj);
    return NULL;
}

/* Values in a built subtree (its depth is bounded by YAML_MAX_DEPTH). */
static long count_nodes(const cJSON *node)
{
    long n = 1;
    for (const cJSON *c = node->child; c; c = c->next) n += count_nodes(c);
    return n;
}

/* Counts n more values; refuses once the document holds more than YAML_MAX_NODES. */
static int charge_nodes(YamlReader *r, const yaml_event_t *ev, long n)
{
    r->n_nodes += n;
    if (r->n_nodes <= YAML_MAX_NODES) return 0;
    reader_error(r, ev->start_mark.line, ev->start_mark.column,
                 "more than %d values (aliases expanded); a job spec is a small mapping",
                 YAML_MAX_NODES);
    return -1;
}

static cJSON *parse_node(YamlReader *r, yaml_event_t *ev, int depth, const char *path)
{
    if (depth > YAML_MAX_DEPTH) {
        reader_error(r, ev->start_mark.line, ev->start_mark.column,
                     "nested more than %d levels deep", YAML_MAX_DEPTH);
        return NULL;
    }
    cJSON *node = NULL;
    if (ev->type != YAML_ALIAS_EVENT && charge_nodes(r, ev, 1) != 0) return NULL;
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        node = scalar_node(ev);
        remember_anchor(r, ev->data.scalar.anchor, node);
        return node;
    case YAML_SEQUENCE_START_EVENT:
        node = parse_sequence(r, depth, path);
        if (node) remember_anchor(r, ev->data.sequence_start.anchor, node);
        return node;
    case YAML_MAPPING_START_EVENT:
        node = parse_mapping(r, depth, path);
        if (node) remember_anchor(r, ev->data.mapping_start.anchor, node);
        return node;
    case YAML_ALIAS_EVENT:
        for (int i = r->n_anchors - 1; i >= 0; i--)
            if (!strcmp(r->anchor_names[i], (const char *)ev->data.alias.anchor)) {
                if (charge_nodes(r, ev, count_nodes(r->anchor_nodes[i])) != 0) return NULL;
                return checked(cJSON_Duplicate(r->anchor_nodes[i], 1));
            }
        reader_error(r, ev->start_mark.line, ev->start_mark.column, "unknown alias *%s",
                     (const char *)ev->data.alias.anchor);
        return NULL;
    default:
        reader_error(r, ev->start_mark.line, ev->start_mark.column,
                     "unexpected YAML event %d", (int)ev->type);
        return NULL;
    }
}

/* Reads the next event: 0 when it is of type `want`, 1 when it is another (the caller owns
 * and deletes it), -1 on a syntax error (nothing to delete). */
static int expect_event(YamlReader *r, yaml_event_type_t want, yaml_event_t *out)
{
    if (next_event(r, out) != 0) return -1;
    if (out->type == want) return 0;
    return 1;
}

cJSON *yaml_to_json(const char *text, size_t len, const char *source, YamlLines *lines,
                    char *err, size_t errlen)
{
    YamlReader r;
    memset(&r, 0, sizeof r);
    r.text = text;
    r.text_len = len;
    r.source = source;
    r.lines = lines;
    r.err = err;
    r.errlen = errlen;
    if (!yaml_parser_initialize(&r.parser)) die("out of memory initialising the YAML parser");
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text, len);

    cJSON *root = NULL;
    yaml_event_t ev;
    if (expect_event(&r, YAML_STREAM_START_EVENT, &ev) != 0) goto out;
    yaml_event_delete(&ev);
    int rc = expect_event(&r, YAML_DOCUMENT_START_EVENT, &ev);
    if (rc < 0) goto out;
    if (rc == 1) { /* no document at all: an empty file */
        yaml_event_delete(&ev);
        root = checked(cJSON_CreateNull());
        goto out;
    }
    yaml_event_delete(&ev);
    if (next_event(&r, &ev) != 0) goto out;
    root = parse_node(&r, &ev, 0, "");
    yaml_event_delete(&ev);
    if (!root) goto out;
    rc = expect_event(&r, YAML_DOCUMENT_END_EVENT, &ev);
    if (rc < 0) goto fail_root;
    if (rc == 1) { /* libyaml always ends a document after its root; this is defensive */
        reader_error(&r, ev.start_mark.line, ev.start_mark.column, "unexpected content");
        yaml_event_delete(&ev);
        goto fail_root;
    }
    yaml_event_delete(&ev);
    rc = expect_event(&r, YAML_STREAM_END_EVENT, &ev);
    if (rc < 0) goto fail_root;
    if (rc == 1) {
        reader_error(&r, ev.start_mark.line, ev.start_mark.column,
                     "more than one YAML document; a job spec is one document");
        yaml_event_delete(&ev);
        goto fail_root;
    }
    yaml_event_delete(&ev);
    goto out;

fail_root:
    cJSON_Delete(root);
    root = NULL;
out:
    for (int i = 0; i < r.n_anchors; i++) free(r.anchor_names[i]);
    free(r.anchor_names);
    free(r.anchor_nodes);
    yaml_parser_delete(&r.parser);
    if (!root && lines) yaml_lines_free(lines); /* its nodes are gone */
    return root;
}
