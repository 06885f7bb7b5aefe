/* cpu_backend.c: the CPU backend's row of the op table (which kernel runs each op, from op_list.h)
 * and which ops take bf16 themselves. */
#include "cpu.h"

/* from op_list.h's family column: op e runs sgt_cpu_<family>; views run no kernel */
#define sgt_cpu_view NULL
const sgt_kernel sgt_cpu_kernels[SGT_NOPS] = {
#define SGT_OP(e, n, v, f) [SGT_OP_##e] = sgt_cpu_##f,
#include "../op_list.h"
#undef SGT_OP
};
#undef sgt_cpu_view

/* Ops whose CPU kernels take bf16 operands themselves; every other op meets bf16 through the
 * dispatch point's promotion (f32 temporaries around the f32 kernel, tensor.c): on the CPU bf16
 * is the reference path for the GPU's, not a fast path. */
const bool sgt_cpu_bf16_native[SGT_NOPS] = {
    [SGT_OP_COPY] = true,
    [SGT_OP_INDEX_COPY_ROWS] = true, /* moves bytes */
    [SGT_OP_CAST] = true,
    [SGT_OP_LINEAR_BF16] = true,         /* bf16 weights are their point: widened in registers */
    [SGT_OP_BSPARSE_SWIGLU_BF16] = true,
};
