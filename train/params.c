/* params.c — the tensor registry of a model; see params.h. */
#include "train/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "kernels/kernels.h"

void params_init(ParamSet *ps) { memset(ps, 0, sizeof *ps); }

int params_add(ParamSet *ps, const char *name, ParamKind kind, int ndim, const int64_t *shape,
               int conv)
{
    if (ps->finalized) die("params: '%s' registered after the arena was allocated", name);
    if (strlen(name) >= PARAM_NAME_MAX) die("params: name too long: %s", name);
    if (ps->count == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 64;
        ps->p = xrealloc(ps->p, (size_t)ps->cap * sizeof *ps->p);
    }
    Param *p = &ps->p[ps->count];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    p->ndim = ndim;
    p->count = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->count *= (size_t)shape[i];
    }
    p->conv = conv;
    return ps->count++;
}

void params_finalize(ParamSet *ps)
{
    /* Learnables first, then float buffers, so the optimizer sees one contiguous range. */
    size_t off = 0;
    for (int i = 0; i < ps->count; i++)
        if (ps->p[i].kind == PARAM_LEARNABLE) { ps->p[i].offset = off; off += ps->p[i].count; }
    ps->n_learn = off;
    for (int i = 0; i < ps->count; i++)
        if (ps->p[i].kind == PARAM_BUFFER_F32) { ps->p[i].offset = off; off += ps->p[i].count; }
    ps->n_buf = off - ps->n_learn;
    size_t ioff = 0;
    for (int i = 0; i < ps->count; i++)
        if (ps->p[i].kind == PARAM_BUFFER_I64) { ps->p[i].offset = ioff; ioff += ps->p[i].count; }
    ps->n_i64 = ioff;

    ps->data = xaligned_alloc((ps->n_learn + ps->n_buf) * sizeof(float));
    ps->grad = xaligned_alloc(ps->n_learn * sizeof(float));
    ps->i64 = xaligned_alloc(ps->n_i64 * sizeof(int64_t));
    for (int i = 0; i < ps->count; i++) {
        Param *p = &ps->p[i];
        if (p->kind == PARAM_BUFFER_I64) {
            p->i64 = ps->i64 + p->offset;
        } else {
            p->data = ps->data + p->offset;
            if (p->kind == PARAM_LEARNABLE) p->grad = ps->grad + p->offset;
        }
    }
    ps->finalized = 1;
}

void params_free(ParamSet *ps)
{
    free(ps->p);
    free(ps->data);
    free(ps->grad);
    free(ps->i64);
    memset(ps, 0, sizeof *ps);
}

Param *params_find(const ParamSet *ps, const char *name)
{
    for (int i = 0; i < ps->count; i++)
        if (strcmp(ps->p[i].name, name) == 0) return &ps->p[i];
    return NULL;
}

void params_zero_grad(ParamSet *ps) { memset(ps->grad, 0, ps->n_learn * sizeof(float)); }

void params_copy(ParamSet *dst, const ParamSet *src)
{
    if (dst->n_learn != src->n_learn || dst->n_buf != src->n_buf || dst->n_i64 != src->n_i64)
        die("params: copying between models of different layouts");
    memcpy(dst->data, src->data, (src->n_learn + src->n_buf) * sizeof(float));
    memcpy(dst->i64, src->i64, src->n_i64 * sizeof(int64_t));
}

/* A ConvShape carrying only the filter dimensions, which is all the layout converters read. */
static ConvShape filter_shape(const Param *p)
{
    return conv_shape_make(1, (int)p->shape[2], (int)p->shape[3], (int)p->shape[1],
                           (int)p->shape[0], (int)p->shape[2], 1, 0);
}

size_t params_export_scratch_floats(const ParamSet *ps)
{
    size_t n = 0;
    for (int i = 0; i < ps->count; i++)
        if (ps->p[i].conv) n += ps->p[i].count;
    return n;
}

static int included(const Param *p, ExportWhat what)
{
    if (what == EXPORT_ALL) return 1;
    return p->kind == PARAM_LEARNABLE;
}

void params_export(const ParamSet *ps, StWriter *w, const char *prefix, ExportWhat what,
                   const float *external, float *scratch, int (*skip)(const char *name))
{
    char name[PARAM_NAME_MAX + 64];
    for (int i = 0; i < ps->count; i++) {
        const Param *p = &ps->p[i];
        if (!included(p, what) || (skip && skip(p->name))) continue;
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        if (p->kind == PARAM_BUFFER_I64) {
            st_writer_add(w, name, ST_I64, p->ndim, p->shape, p->i64);
            continue;
        }
        const float *src = what == EXPORT_GRADS      ? p->grad
                           : what == EXPORT_EXTERNAL ? external + p->offset
                                                     : p->data;
        if (p->conv) {
            ConvShape s = filter_shape(p);
            conv_weight_to_oihw(&s, src, scratch);
            src = scratch;
            scratch += p->count;
        }
        st_writer_add(w, name, ST_F32, p->ndim, p->shape, src);
    }
}

static int shape_matches(const Param *p, const StTensor *t)
{
    if (t->ndim != p->ndim) return 0;
    for (int d = 0; d < p->ndim; d++)
        if (t->shape[d] != p->shape[d]) return 0;
    return 1;
}

static void shape_text(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (int d = 0; d < ndim && o < len; d++)
        o += (size_t)snprintf(buf + o, len - o, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

int params_import(ParamSet *ps, const StFile *f, const char *prefix, ExportWhat what,
                  float *external, int optional, char *err, size_t errlen)
{
    char name[PARAM_NAME_MAX + 64];
    int first = 1;
    for (int i = 0; i < ps->count; i++) {
        Param *p = &ps->p[i];
        if (!included(p, what)) continue;
        snprintf(name, sizeof name, "%s%s", prefix, p->name);
        const StTensor *t = st_find(f, name);
        if (!t) {
            if (first && optional) return 1;
            snprintf(err, errlen, "tensor '%s' is missing", name);
            return -1;
        }
        first = 0;
        StDtype want = p->kind == PARAM_BUFFER_I64 ? ST_I64 : ST_F32;
        if (t->dtype != want) {
            snprintf(err, errlen, "tensor '%s' has the wrong dtype (expected %s)", name,
                     want == ST_I64 ? "I64" : "F32");
            return -1;
        }
        if (!shape_matches(p, t)) {
            char a[96], b[96];
            shape_text(a, sizeof a, t->ndim, t->shape);
            shape_text(b, sizeof b, p->ndim, p->shape);
            snprintf(err, errlen, "tensor '%s' has shape %s, the model expects %s", name, a, b);
            return -1;
        }
        if (p->kind == PARAM_BUFFER_I64) {
            memcpy(p->i64, t->data, p->count * sizeof(int64_t));
            continue;
        }
        float *dst = what == EXPORT_EXTERNAL ? external + p->offset : p->data;
        if (p->conv) {
            ConvShape s = filter_shape(p);
            conv_weight_from_oihw(&s, (const float *)t->data, dst);
        } else {
            memcpy(dst, t->data, p->count * sizeof(float));
        }
    }
    return 0;
}
