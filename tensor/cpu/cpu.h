/* cpu.h: shared machinery of the CPU kernels: the strided multi-operand iterator, OpenMP
 * thresholds, and the kernel prototypes that cpu_backend.c binds into the op table. */
#ifndef SGT_CPU_H
#define SGT_CPU_H

#include "../kernel_list.h"
#include "../tensor.h"

/* Below this many elements an op runs on one thread (fork/join costs more than it saves). */
#define SGT_OMP_MIN 32768

/* Up to 4 operands over one logical shape, each with its own element strides (0 = broadcast).
 * Init coalesces dims that are contiguous for every operand, so a contiguous op is one long row. */
typedef struct {
    int ndim, nop;
    int64_t shape[SGT_MAX_DIMS];
    int64_t stride[4][SGT_MAX_DIMS];
    char *base[4];
    size_t esize[4];
} sgt_iter;

/* ops[0] is usually the output; every operand is broadcast to ops[0]'s shape. */
void sgt_iter_init(sgt_iter *it, int nop, sgt_tensor *const *ops);

/* Calls row(user, n, ptrs, strides) for each run of the innermost dim, split into chunks and
 * spread over OpenMP threads. ptrs[k] points at operand k's first element of the run. */
typedef void (*sgt_row_fn)(void *user, int64_t n, char **ptrs, const int64_t *strides);
void sgt_iter_run(const sgt_iter *it, sgt_row_fn row, void *user);

#define SGT_DECL_KERNEL(k) void sgt_cpu_##k(const sgt_opcall *call);
SGT_KERNEL_FAMILIES(SGT_DECL_KERNEL)
#undef SGT_DECL_KERNEL

#endif
