/* blas_core.h — makes OpenBLAS use the vector kernels the CPU actually has.
 *
 * Debian's OpenBLAS 0.3.21 (DYNAMIC_ARCH) picks its kernels by CPU model at load time; on CPUs
 * newer than it knows (seen: AMD EPYC Zen 4, with AVX-512) it falls back to "Prescott", SSE3 kernels, and every
 * GEMM runs at a fraction of the machine's rate (measured: moco-train at half PyTorch's speed).
 * The choice can only be overridden before the library loads (OPENBLAS_CORETYPE), so when it
 * fell back while the CPU has AVX2 or AVX-512, moco-train sets the variable and re-executes
 * itself (same pid, same open file descriptors, so --events-fd and the daemon's bookkeeping are
 * unaffected). OPENBLAS_CORETYPE set by the user is always left alone.
 */
#ifndef MOCO_BLAS_CORE_H
#define MOCO_BLAS_CORE_H

/* Returns only when no re-exec is needed or it failed (then with a warning). */
void blas_core_reexec_if_generic(char **argv);

#endif
