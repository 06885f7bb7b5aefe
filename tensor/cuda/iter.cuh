/* iter.cuh: strided N-d indexing for the elementwise CUDA kernels (the GPU's counterpart of
 * cpu/iter.c, written separately so that the two backends share no indexing code).
 *
 * Up to NOP operands over one logical shape, operand 0 the output: every operand is broadcast to
 * the output's shape (stride 0 on broadcast dims), size-1 dims are dropped and dims that every
 * operand steps through as one are merged, so a contiguous op is a single dim. A thread maps the
 * output's linear (row-major) index to each operand's element offset. */
#ifndef SGT_CUDA_ITER_CUH
#define SGT_CUDA_ITER_CUH

#include <string.h>

#include "cuda.h"

template <int NOP> struct sgt_cuda_iter {
    int ndim;                          /* >= 1 after init */
    int64_t n;                         /* elements of the output */
    int64_t shape[SGT_MAX_DIMS];
    int64_t stride[NOP][SGT_MAX_DIMS]; /* in elements; 0 on broadcast dims */
    char *base[NOP];                   /* operand k's first element (its offset applied) */
};

/* host: ops[0] is the output */
template <int NOP> static sgt_cuda_iter<NOP> sgt_cuda_iter_init(sgt_tensor *const *ops) {
    sgt_cuda_iter<NOP> it;
    memset(&it, 0, sizeof it);
    const sgt_tensor *out = ops[0];
    int64_t shape[SGT_MAX_DIMS], stride[NOP][SGT_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < out->ndim; d++) {
        if (out->shape[d] == 1) continue;
        shape[nd] = out->shape[d];
        for (int k = 0; k < NOP; k++) {
            const sgt_tensor *x = ops[k];
            int j = d - (out->ndim - x->ndim);
            stride[k][nd] = (j >= 0 && x->shape[j] != 1) ? x->stride[j] : 0;
        }
        nd++;
    }
    int m = 0;
    for (int d = 0; d < nd; d++) {
        bool merge = m > 0;
        /* against the merged dim's current stride (it.stride), not the raw one at index m - 1 */
        for (int k = 0; merge && k < NOP; k++) merge = it.stride[k][m - 1] == stride[k][d] * shape[d];
        if (merge) {
            it.shape[m - 1] *= shape[d];
            for (int k = 0; k < NOP; k++) it.stride[k][m - 1] = stride[k][d];
        } else {
            it.shape[m] = shape[d];
            for (int k = 0; k < NOP; k++) it.stride[k][m] = stride[k][d];
            m++;
        }
    }
    if (m == 0) { /* one element */
        it.shape[0] = 1;
        m = 1;
    }
    it.ndim = m;
    it.n = sgt_numel(out);
    for (int k = 0; k < NOP; k++) it.base[k] = (char *)sgt_ptr(ops[k]);
    return it;
}

/* device: element offsets (in elements) of output index i in every operand */
template <int NOP>
__device__ __forceinline__ void sgt_cuda_iter_offsets(const sgt_cuda_iter<NOP> &it, int64_t i, int64_t *off) {
#pragma unroll
    for (int k = 0; k < NOP; k++) off[k] = 0;
    for (int d = it.ndim - 1; d > 0; d--) {
        const int64_t q = i / it.shape[d], r = i - q * it.shape[d];
#pragma unroll
        for (int k = 0; k < NOP; k++) off[k] += r * it.stride[k][d];
        i = q;
    }
#pragma unroll
    for (int k = 0; k < NOP; k++) off[k] += i * it.stride[k][0];
}

/* a reference to operand k's element at offset off, as type T */
template <typename T, int NOP>
__device__ __forceinline__ T &sgt_cuda_at(const sgt_cuda_iter<NOP> &it, int k, int64_t off) {
    return ((T *)it.base[k])[off];
}

#endif
