/* blas_core.c — re-executes moco-train with OPENBLAS_CORETYPE set when OpenBLAS fell back to
 * generic kernels on a CPU with AVX2/AVX-512 (blas_core.h says why). */
#include "train/blas_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/error.h"

/* OpenBLAS's own; declared here because some cblas.h alternatives lack it. */
char *openblas_get_corename(void);

/* The OpenBLAS core type for this CPU's widest vectors, or NULL when generic is right. */
static const char *best_coretype(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

void blas_core_reexec_if_generic(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE")) return;   /* the user's choice, or we already re-executed */
    const char *core = openblas_get_corename();
    if (!core || (strcasecmp(core, "prescott") != 0 && strcasecmp(core, "core2") != 0 &&
                  strcasecmp(core, "nehalem") != 0 && strcasecmp(core, "katmai") != 0))
        return;
    const char *want = best_coretype();
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv);
    /* Still here: run on with the generic kernels, slower but correct. */
    warn("OpenBLAS chose its generic '%s' kernels on a CPU with %s; re-executing with "
         "OPENBLAS_CORETYPE=%s failed, so GEMMs run slower (set OPENBLAS_CORETYPE=%s yourself)",
         core, want, want, want);
    unsetenv("OPENBLAS_CORETYPE");
}
