/* swiglu.cu: the fused SwiGLU activation with an optional per-block mask, forward and backward:
 * the counterparts of cpu/swiglu.c, over contiguous g, u, dh [N, I] and m, dm [N, I / bs]:
 *   h  = silu(g) u m[n, i / bs]                    (no m factor without a mask)
 *   dg = ((dh m) u) silu'(g),  du = (dh m) silu(g),  dm[n, b] = sum over the block of dh (silu(g) u)
 * with the unary SILU kernel's formulas and the CPU's grouping of the products. f32, f64 and bf16
 * natively (bf16 stored as its 16 bits, tensor/bf16.h: read as f32, f32 math, one rounding on
 * store, as the CPU's promoted path); f64 in f64.
 *
 * h, dg and du are elementwise (grid-stride). dm is a deterministic reduction per (row, block):
 * a group of G lanes of a warp (G the power of two >= bs, at most 32, so small blocks do not idle
 * a whole warp) walks the block's elements, writes their dg and du, and adds the block's terms in
 * f64 (as the CPU does), then the group combines its lanes by a fixed shuffle tree. */
#include <math.h>

#include "cuda.h"
#include "typed.cuh"

/* h = silu(g) u [m]; m NULL without a mask. Element w = r I + i has mask value m[r, i / bs], which
 * is m[w / bs] as bs divides I. */
template <typename T> __global__ void k_swiglu(const T *g, const T *u, const T *m, T *h, int64_t n, int64_t bs) {
    typedef typename sgt_math<T>::type M;
    SGT_CUDA_FOR_EACH(w, n) {
        const M x = sgt_ld(g[w]);
        M y = x / ((M)1 + sgt_exp(-x)) * sgt_ld(u[w]);
        if (m) y = y * sgt_ld(m[w / bs]);
        sgt_st(h + w, y);
    }
}

/* the unmasked backward, elementwise */
template <typename T> __global__ void k_swiglu_bwd(const T *g, const T *u, const T *dh, T *dg, T *du, int64_t n) {
    typedef typename sgt_math<T>::type M;
    SGT_CUDA_FOR_EACH(w, n) {
        const M x = sgt_ld(g[w]), d = sgt_ld(dh[w]);
        const M e = sgt_exp(-x), s = x / ((M)1 + e), sg = (M)1 / ((M)1 + e);
        sgt_st(dg + w, d * sgt_ld(u[w]) * sg * ((M)1 + x * ((M)1 - sg)));
        sgt_st(du + w, d * s);
    }
}

/* the masked backward: items = N * nb (row, block) pairs; a group of G lanes per item (G divides
 * 32). Element j of item k is at k * bs + j. Every lane of a warp runs the same number of loop
 * trips (the bound is uniform per warp), so the shuffles see the whole warp. */
template <typename T>
__global__ void k_swiglu_bwd_masked(const T *g, const T *u, const T *m, const T *dh, T *dg, T *du, T *dm,
                                    int64_t items, int64_t bs, int G) {
    typedef typename sgt_math<T>::type M;
    const int lane = threadIdx.x & 31, sub = lane / G, sl = lane % G, per_warp = 32 / G;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarp = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t base = warp * per_warp; base < items; base += nwarp * per_warp) {
        const int64_t k = base + sub;
        double acc = 0;
        if (k < items) {
            const M mk = sgt_ld(m[k]);
            for (int64_t j = sl; j < bs; j += G) {
                const int64_t w = k * bs + j;
                const M x = sgt_ld(g[w]), uu = sgt_ld(u[w]), d = sgt_ld(dh[w]);
                const M e = sgt_exp(-x), s = x / ((M)1 + e), sg = (M)1 / ((M)1 + e);
                const M da = d * mk; /* the gradient of silu(g) u */
                sgt_st(dg + w, da * uu * sg * ((M)1 + x * ((M)1 - sg)));
                sgt_st(du + w, da * s);
                acc += (double)(d * (s * uu));
            }
        }
        for (int o = G / 2; o > 0; o >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, o, G);
        if (k < items && sl == 0) sgt_st(dm + k, (M)acc);
    }
}

template <typename T> static void swiglu_typed(const sgt_opcall *call) {
    const sgt_tensor *gt = call->src[0];
    const int64_t n = sgt_numel(gt);
    if (!n) return;
    const bool masked = call->nsrc == 3;
    k_swiglu<T><<<sgt_cuda_blocks(n), SGT_CUDA_THREADS, 0, sgt_cuda_stream()>>>(
        (const T *)sgt_ptr(gt), (const T *)sgt_ptr(call->src[1]), masked ? (const T *)sgt_ptr(call->src[2]) : NULL,
        (T *)sgt_ptr(call->dst[0]), n, masked ? call->ip[0] : 1);
    CUDA_LAUNCH_CHECK("k_swiglu");
}

template <typename T> static void swiglu_bwd_typed(const sgt_opcall *call) {
    const sgt_tensor *gt = call->src[0];
    const int64_t n = sgt_numel(gt);
    if (!n) return;
    const T *g = (const T *)sgt_ptr(gt), *u = (const T *)sgt_ptr(call->src[1]);
    const T *dh = (const T *)sgt_ptr(call->src[call->nsrc - 1]);
    T *dg = (T *)sgt_ptr(call->dst[0]), *du = (T *)sgt_ptr(call->dst[1]);
    cudaStream_t s = sgt_cuda_stream();
    if (call->nsrc == 3) {
        k_swiglu_bwd<T><<<sgt_cuda_blocks(n), SGT_CUDA_THREADS, 0, s>>>(g, u, dh, dg, du, n);
        CUDA_LAUNCH_CHECK("k_swiglu_bwd");
        return;
    }
    const int64_t bs = call->ip[0], items = n / bs;
    int G = 1;
    while (G < 32 && G < bs) G *= 2;
    const int64_t warps = (items + 32 / G - 1) / (32 / G);
    k_swiglu_bwd_masked<T><<<sgt_cuda_blocks(warps * 32), SGT_CUDA_THREADS, 0, s>>>(
        g, u, (const T *)sgt_ptr(call->src[2]), dh, dg, du, (T *)sgt_ptr(call->dst[2]), items, bs, G);
    CUDA_LAUNCH_CHECK("k_swiglu_bwd_masked");
}

void sgt_cuda_swiglu(const sgt_opcall *call) {
    switch (call->src[0]->dtype) {
    case SGT_F32: swiglu_typed<float>(call); break;
    case SGT_F64: swiglu_typed<double>(call); break;
    case SGT_BF16: swiglu_typed<uint16_t>(call); break;
    default: SGT_FAIL("swiglu: dtype %s", sgt_dtype_name(call->src[0]->dtype));
    }
}

void sgt_cuda_swiglu_bwd(const sgt_opcall *call) {
    switch (call->src[0]->dtype) {
    case SGT_F32: swiglu_bwd_typed<float>(call); break;
    case SGT_F64: swiglu_bwd_typed<double>(call); break;
    case SGT_BF16: swiglu_bwd_typed<uint16_t>(call); break;
    default: SGT_FAIL("swiglu_bwd: dtype %s", sgt_dtype_name(call->src[0]->dtype));
    }
}
