/* block.cuh: deterministic warp and block reductions for the one-block-per-row kernels.
 * A reduction is a fixed tree over a fixed block size, so the same inputs give the same bits on
 * every run. Blocks must be a multiple of 32 threads (sgt_cuda_row_threads sees to it), and every
 * thread of the block must call the reduction (they contain __syncthreads). */
#ifndef SGT_CUDA_BLOCK_CUH
#define SGT_CUDA_BLOCK_CUH

#include "cuda.h"

#define SGT_FULL_MASK 0xffffffffu

struct sgt_sum_op {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
/* max that ignores NaN (as `x > m ? x : m` does in the CPU's softmax and cross-entropy) */
struct sgt_max_op {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return b > a ? b : a; }
};
/* max that propagates NaN (the CPU's sgt_max reduction) */
struct sgt_max_nan_op {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const {
        return a != a ? a : b != b ? b : (b > a ? b : a);
    }
};

template <typename T, typename Op> __device__ __forceinline__ T sgt_warp_reduce(T v, Op op) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(SGT_FULL_MASK, v, o));
    return v;
}

/* Reduces v over the block; every thread gets the result. sh: 33 slots of shared memory. */
template <typename T, typename Op> __device__ T sgt_block_reduce(T v, Op op, T identity, T *sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
    v = sgt_warp_reduce(v, op);
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < nwarp ? sh[lane] : identity;
        v = sgt_warp_reduce(v, op);
        if (lane == 0) sh[32] = v;
    }
    __syncthreads();
    v = sh[32];
    __syncthreads(); /* sh may be reused by the next reduction */
    return v;
}

template <typename T> __device__ __forceinline__ T sgt_block_sum(T v, T *sh) {
    return sgt_block_reduce(v, sgt_sum_op(), (T)0, sh);
}

/* The order of argmax and top-k: is (a, ia) better than (b, ib)? NaN beats every number (the
 * lower index among NaNs), then the larger value, ties to the lower index: strict and total. */
template <typename T, typename I> __device__ __forceinline__ bool sgt_better(T a, I ia, T b, I ib) {
    if (a != a) return b == b || ia < ib;
    if (b != b) return false;
    return a > b || (a == b && ia < ib);
}

/* The best (value, index) pair of the warp under sgt_better, into lane 0; bi < 0 means none. */
template <typename T, typename I> __device__ __forceinline__ void sgt_warp_best(T &best, I &bi) {
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
        const T ov = __shfl_down_sync(SGT_FULL_MASK, best, off);
        const I oi = __shfl_down_sync(SGT_FULL_MASK, bi, off);
        if (oi >= 0 && (bi < 0 || sgt_better(ov, oi, best, bi))) {
            best = ov;
            bi = oi;
        }
    }
}

/* The same over the block: the result lands in thread 0's best and bi (the others' are partial).
 * shv, shi: 32 slots of shared memory each. */
template <typename T, typename I> __device__ void sgt_block_best(T &best, I &bi, T *shv, I *shi) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
    sgt_warp_best(best, bi);
    if (lane == 0) {
        shv[warp] = best;
        shi[warp] = bi;
    }
    __syncthreads();
    if (warp == 0) {
        best = lane < nwarp ? shv[lane] : (T)0;
        bi = lane < nwarp ? shi[lane] : (I)-1;
        sgt_warp_best(best, bi);
    }
}

#endif
