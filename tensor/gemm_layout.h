/* gemm_layout.h: how a GEMM operand's last two dims map onto BLAS arguments, shared by ops.c
 * (which copies operands that do not fit), cpu/matmul.c (OpenBLAS) and cuda/matmul.cu (cuBLAS).
 * A fitting operand has a unit stride in one of its last two dims and a leading dimension at least
 * the other extent; the other stride becomes the leading dimension, so transposed views are free. */
#ifndef SGT_GEMM_LAYOUT_H
#define SGT_GEMM_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor.h"

typedef struct {
    bool trans; /* as stored in memory: row-major, or its transpose */
    int64_t ld;
} sgt_gemm_layout;

/* Whether x's last two dims can be handed to BLAS as they are. */
static inline bool sgt_gemm_fits(const sgt_tensor *x) {
    int64_t n0 = x->shape[x->ndim - 2], n1 = x->shape[x->ndim - 1];
    int64_t s0 = x->stride[x->ndim - 2], s1 = x->stride[x->ndim - 1];
    int64_t m1 = n1 > 1 ? n1 : 1, m0 = n0 > 1 ? n0 : 1;
    return ((s1 == 1 || n1 == 1) && (n0 == 1 || s0 >= m1)) || ((s0 == 1 || n0 == 1) && (n1 == 1 || s1 >= m0));
}

/* The layout of the logical matrix = x's last two dims, transposed when t; x must fit. */
static inline sgt_gemm_layout sgt_gemm_layout_of(const sgt_tensor *x, bool t) {
    int64_t s0 = x->stride[x->ndim - 2], s1 = x->stride[x->ndim - 1];
    int64_t n0 = x->shape[x->ndim - 2], n1 = x->shape[x->ndim - 1];
    sgt_gemm_layout l;
    if (s1 == 1 || n1 == 1) {
        l.trans = t;
        l.ld = n0 == 1 ? (n1 > 1 ? n1 : 1) : s0;
        if (l.ld < n1) l.ld = n1;
    } else {
        l.trans = !t;
        l.ld = n1 == 1 ? (n0 > 1 ? n0 : 1) : s1;
        if (l.ld < n0) l.ld = n0;
    }
    return l;
}

#endif
