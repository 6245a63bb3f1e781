/* lincls_sanity.c — the official sanity check of linear evaluation: after the first epoch
 * the frozen backbone must equal the pretrained file bit for bit. A change means a bug that
 * would silently turn linear evaluation into fine-tuning (a BN left in train mode updating
 * running statistics, an optimizer reaching past fc). See lincls.h. */
#include "train/lincls.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "kernels/kernels.h"
#include "train/pretrained.h"

/* Elements that differ bitwise, and the largest absolute difference among them. */
typedef struct { size_t differ; double largest; } Diff;

static Diff compare_floats(const float *ours, const void *theirs, size_t count)
{
    Diff d = {0, 0};
    const unsigned char *bytes = theirs;
    for (size_t i = 0; i < count; i++) {
        float t;
        memcpy(&t, bytes + i * sizeof t, sizeof t); /* foreign files need not be aligned */
        if (memcmp(&ours[i], &t, sizeof t) == 0) continue;
        d.differ++;
        double diff = fabs((double)ours[i] - (double)t);
        if (isnan(diff)) diff = INFINITY; /* a NaN on one side is the largest change there is */
        if (diff > d.largest) d.largest = diff;
    }
    return d;
}

static Diff compare_i64(const int64_t *ours, const void *theirs, size_t count)
{
    Diff d = {0, 0};
    const unsigned char *bytes = theirs;
    for (size_t i = 0; i < count; i++) {
        int64_t t;
        memcpy(&t, bytes + i * sizeof t, sizeof t);
        if (ours[i] == t) continue;
        d.differ++;
        double diff = fabs((double)ours[i] - (double)t);
        if (diff > d.largest) d.largest = diff;
    }
    return d;
}

int lincls_sanity_check(const ParamSet *ps, const char *pretrained_path, char *err,
                        size_t errlen)
{
    PretrainedFile pf;
    char open_err[1024];
    if (pretrained_open(pretrained_path, &pf, open_err, sizeof open_err) != 0) {
        snprintf(err, errlen, "sanity check: %s", open_err);
        return -1;
    }
    size_t conv_floats = 0;
    for (int i = 0; i < ps->count; i++)
        if (ps->p[i].conv && ps->p[i].count > conv_floats) conv_floats = ps->p[i].count;
    float *oihw = xmalloc((conv_floats ? conv_floats : 1) * sizeof(float));
    int rc = 0;
    for (int i = 0; i < ps->count && rc == 0; i++) {
        const Param *p = &ps->p[i];
        if (strncmp(p->name, "fc.", 3) == 0) continue;
        const StTensor *t = pretrained_find(&pf, p->name);
        StDtype want = p->kind == PARAM_BUFFER_I64 ? ST_I64 : ST_F32;
        if (!t || t->dtype != want || t->nbytes != p->count * st_dtype_size(want)) {
            snprintf(err, errlen, "sanity check: %s has no matching tensor '%s%s' to compare the "
                     "backbone with", pf.file, pf.prefix, p->name);
            rc = -1;
            break;
        }
        Diff d;
        if (p->kind == PARAM_BUFFER_I64) {
            d = compare_i64(p->i64, t->data, p->count);
        } else {
            const float *ours = p->data;
            if (p->conv) { /* the file holds OIHW; the conversion only moves values */
                ConvShape s = conv_shape_make(1, (int)p->shape[2], (int)p->shape[3],
                                              (int)p->shape[1], (int)p->shape[0],
                                              (int)p->shape[2], 1, 0);
                conv_weight_to_oihw(&s, p->data, oihw);
                ours = oihw;
            }
            d = compare_floats(ours, t->data, p->count);
        }
        if (d.differ > 0) {
            snprintf(err, errlen, "sanity check failed: backbone tensor '%s' changed during "
                     "linear evaluation (%zu of %zu elements differ from %s, largest difference "
                     "%g); the backbone must stay frozen, with BN in eval mode — this is a bug, "
                     "please report it", p->name, d.differ, p->count, pf.file, d.largest);
            rc = -1;
        }
    }
    free(oihw);
    pretrained_close(&pf);
    return rc;
}
