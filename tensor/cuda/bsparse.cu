/* bsparse.cu: CUDA kernels of the block-sparse SwiGLU that computes only the selected blocks
 * (see ops.h; the CPU's is cpu/bsparse.c). Slot s = t k + j is token t's j-th selected block
 * b = idx[s]; the block's hidden units are rows b bs .. b bs + bs - 1 of wg and wu and the same
 * columns of wd.
 *
 * Plain kernels, one output element per thread or warp, every sum in a fixed order (no atomics):
 *   forward:  G, U and h = m silu(G) U per (slot, unit), one warp each (coalesced rows of wg, wu);
 *             y[t, c] = sum over t's slots and units of wd[c, unit] h, one thread each;
 *   backward: per slot (one block, threads over units): dH = dy[t] . wd[:, unit], then dG, dU,
 *             m h and dm = dH . h; dx per (t, c); the weight gradients per weight element, over
 *             the block's slots in ascending order (the host groups the slots by block).
 * They run on the CUDA cores in the working precision, not on cuBLAS: correct and deterministic,
 * not yet tuned (the CPU's grouped GEMMs are the model for a faster version). The op's workspace
 * output is not used; temporaries live in the backend's scratch buffer. */
#include <limits.h>

#include <mma.h>

#include "block.cuh"

#define TC_LAUNCH(kern, grid, block, ...)                              \
    do {                                                               \
        kern<<<grid, block, 0, sgt_cuda_stream()>>>(__VA_ARGS__);      \
        CUDA_LAUNCH_CHECK(#kern);                                      \
    } while (0)
#include "bsparse_tc.cuh"

template <typename T> __device__ __forceinline__ T silu_of(T g) { return g / ((T)1 + sgt_exp(-g)); }

template <typename T> __device__ __forceinline__ T dsilu_of(T g) {
    T s = (T)1 / ((T)1 + sgt_exp(-g));
    return s * ((T)1 + g * ((T)1 - s));
}

/* ---- forward ---- */

/* one warp per (slot, unit) w = s bs + r: G[w], U[w] and H[w] = m[s] silu(G) U */
template <typename T>
__global__ void k_bs_gate_up(const T *x, const T *wg, const T *wu, const int32_t *idx, const T *m, T *G, T *U, T *H,
                             int64_t nslot, int64_t k, int64_t C, int64_t bs) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    const int64_t total = nslot * bs, stride = (int64_t)gridDim.x * wpb;
    for (int64_t w = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); w < total; w += stride) { /* warp-uniform */
        const int64_t s = w / bs, r = w - s * bs, t = s / k, row = (int64_t)idx[s] * bs + r;
        const T *xr = x + t * C, *gr = wg + row * C, *ur = wu + row * C;
        T g = 0, u = 0;
        for (int64_t c = lane; c < C; c += 32) {
            g += gr[c] * xr[c];
            u += ur[c] * xr[c];
        }
        g = sgt_warp_reduce(g, sgt_sum_op());
        u = sgt_warp_reduce(u, sgt_sum_op());
        if (lane == 0) {
            G[w] = g;
            U[w] = u;
            H[w] = m[s] * silu_of(g) * u;
        }
    }
}

/* y[t, c] = sum_j sum_r wd[c, idx[t, j] bs + r] H[t, j, r] */
template <typename T>
__global__ void k_bs_down(const T *wd, const int32_t *idx, const T *H, T *y, int64_t N, int64_t k, int64_t C, int64_t I,
                          int64_t bs) {
    SGT_CUDA_FOR_EACH(w, N * C) {
        const int64_t t = w / C, c = w - t * C;
        T acc = 0;
        for (int64_t j = 0; j < k; j++) {
            const T *wr = wd + c * I + (int64_t)idx[t * k + j] * bs, *h = H + (t * k + j) * bs;
            for (int64_t r = 0; r < bs; r++) acc += wr[r] * h[r];
        }
        y[w] = acc;
    }
}

/* ---- backward ---- */

/* one block per slot, threads over units: dH, then m h, dG, dU, and dm[s] = dH . h */
template <typename T>
__global__ void k_bs_bwd_slot(const T *wd, const int32_t *idx, const T *m, const T *G, const T *U, const T *dy, T *Hm,
                              T *dG, T *dU, T *dm, int64_t nslot, int64_t k, int64_t C, int64_t I, int64_t bs) {
    __shared__ T sh[33];
    for (int64_t s = blockIdx.x; s < nslot; s += gridDim.x) {
        const int64_t t = s / k, b = idx[s];
        const T mi = m[s];
        const T *dyr = dy + t * C;
        T part = 0;
        for (int64_t r = threadIdx.x; r < bs; r += blockDim.x) {
            const T *wc = wd + b * bs + r; /* column b bs + r of wd, stride I */
            T dh = 0;
            for (int64_t c = 0; c < C; c++) dh += dyr[c] * wc[c * I];
            const int64_t o = s * bs + r;
            const T g = G[o], u = U[o], sg = silu_of(g), h = sg * u, dhm = dh * mi;
            part += dh * h;
            Hm[o] = mi * h;
            dG[o] = dhm * u * dsilu_of(g);
            dU[o] = dhm * sg;
        }
        part = sgt_block_reduce(part, sgt_sum_op(), (T)0, sh);
        if (threadIdx.x == 0) dm[s] = part;
    }
}

/* dx[t, c] = sum_j sum_r dG[s, r] wg[b bs + r, c] + dU[s, r] wu[b bs + r, c] */
template <typename T>
__global__ void k_bs_bwd_dx(const T *wg, const T *wu, const int32_t *idx, const T *dG, const T *dU, T *dx, int64_t N,
                            int64_t k, int64_t C, int64_t bs) {
    SGT_CUDA_FOR_EACH(w, N * C) {
        const int64_t t = w / C, c = w - t * C;
        T acc = 0;
        for (int64_t j = 0; j < k; j++) {
            const int64_t s = t * k + j, b = idx[s];
            for (int64_t r = 0; r < bs; r++) {
                const int64_t row = b * bs + r;
                acc += dG[s * bs + r] * wg[row * C + c] + dU[s * bs + r] * wu[row * C + c];
            }
        }
        dx[w] = acc;
    }
}

/* dwg, dwu [I, C]: element (b bs + r, c) sums dG/dU[s, r] x[t_s, c] over block b's slots
 * order[off[b] .. off[b + 1]) in ascending order; blocks nobody chose get 0 */
template <typename T>
__global__ void k_bs_bwd_dwgu(const T *x, const T *dG, const T *dU, const int32_t *off, const int32_t *order, T *dwg,
                              T *dwu, int64_t I, int64_t C, int64_t k, int64_t bs) {
    SGT_CUDA_FOR_EACH(w, I * C) {
        const int64_t row = w / C, c = w - row * C, b = row / bs, r = row - b * bs;
        T ag = 0, au = 0;
        for (int32_t p = off[b]; p < off[b + 1]; p++) {
            const int64_t s = order[p];
            const T xv = x[(s / k) * C + c];
            ag += dG[s * bs + r] * xv;
            au += dU[s * bs + r] * xv;
        }
        dwg[w] = ag;
        dwu[w] = au;
    }
}

/* dwd [C, I]: element (c, b bs + r) sums dy[t_s, c] m h[s, r] over block b's slots */
template <typename T>
__global__ void k_bs_bwd_dwd(const T *dy, const T *Hm, const int32_t *off, const int32_t *order, T *dwd, int64_t I,
                             int64_t C, int64_t k, int64_t bs) {
    SGT_CUDA_FOR_EACH(w, C * I) {
        const int64_t c = w / I, col = w - c * I, b = col / bs, r = col - b * bs;
        T a = 0;
        for (int32_t p = off[b]; p < off[b + 1]; p++) {
            const int64_t s = order[p];
            a += dy[(s / k) * C + c] * Hm[s * bs + r];
        }
        dwd[w] = a;
    }
}

/* ---- host side ---- */

typedef struct {
    int64_t N, C, I, k, bs, nb, nslot;
} bs_dims;

static bs_dims dims_of(const sgt_opcall *call) {
    bs_dims d;
    d.N = call->src[0]->shape[0];
    d.C = call->src[0]->shape[1];
    d.I = call->src[1]->shape[0];
    d.k = call->src[4]->shape[1];
    d.bs = call->ip[0];
    d.nb = d.I / d.bs;
    d.nslot = d.N * d.k;
    SGT_CHECK(d.nslot < INT_MAX && d.nb < INT_MAX, "bsparse_swiglu: %lld slots over %lld blocks is too many",
              (long long)d.nslot, (long long)d.nb);
    return d;
}

template <typename T> static void fwd_typed(const sgt_opcall *call) {
    const bs_dims d = dims_of(call);
    const sgt_tensor *it = call->src[4];
    int32_t *hidx = (int32_t *)sgt_cuda_host_scratch(sizeof(int32_t) * (size_t)(d.nslot ? d.nslot : 1));
    sgt_cuda_fetch_indices("bsparse_swiglu", it, d.nb, false, 0, hidx);
    const T *x = (const T *)sgt_ptr(call->src[0]), *wg = (const T *)sgt_ptr(call->src[1]),
            *wu = (const T *)sgt_ptr(call->src[2]), *wd = (const T *)sgt_ptr(call->src[3]),
            *m = (const T *)sgt_ptr(call->src[5]);
    const int32_t *idx = (const int32_t *)sgt_ptr(it);
    T *y = (T *)sgt_ptr(call->dst[0]), *G = (T *)sgt_ptr(call->dst[1]), *U = (T *)sgt_ptr(call->dst[2]);
    T *H = (T *)sgt_cuda_scratch(sizeof(T) * (size_t)(d.nslot * d.bs > 0 ? d.nslot * d.bs : 1));
    cudaStream_t s = sgt_cuda_stream();
    if (d.nslot * d.bs > 0) {
        k_bs_gate_up<T><<<sgt_cuda_blocks(d.nslot * d.bs, SGT_CUDA_THREADS / 32), SGT_CUDA_THREADS, 0, s>>>(
            x, wg, wu, idx, m, G, U, H, d.nslot, d.k, d.C, d.bs);
        CUDA_LAUNCH_CHECK("k_bs_gate_up");
    }
    if (d.N * d.C > 0) {
        k_bs_down<T><<<sgt_cuda_blocks(d.N * d.C), SGT_CUDA_THREADS, 0, s>>>(wd, idx, H, y, d.N, d.k, d.C, d.I, d.bs);
        CUDA_LAUNCH_CHECK("k_bs_down");
    }
}

template <typename T> static void bwd_typed(const sgt_opcall *call) {
    const bs_dims d = dims_of(call);
    const sgt_tensor *it = call->src[4];
    /* host: the indices, checked, then the slots grouped by block (a stable counting sort) */
    int32_t *hidx = (int32_t *)sgt_cuda_host_scratch(sizeof(int32_t) * (size_t)(2 * d.nslot + 2 * d.nb + 2));
    int32_t *off = hidx + d.nslot, *order = off + d.nb + 1, *fill = order + d.nslot;
    SGT_CHECK(!sgt_cuda_graph_recording(), "bsparse_swiglu_bwd: groups its slots on the host, so it cannot be recorded in a graph");
    sgt_cuda_fetch_indices("bsparse_swiglu", it, d.nb, false, 0, hidx);
    for (int64_t b = 0; b <= d.nb; b++) off[b] = 0;
    for (int64_t s = 0; s < d.nslot; s++) off[hidx[s] + 1]++;
    for (int64_t b = 0; b < d.nb; b++) off[b + 1] += off[b];
    for (int64_t b = 0; b < d.nb; b++) fill[b] = off[b];
    for (int64_t s = 0; s < d.nslot; s++) order[fill[hidx[s]]++] = (int32_t)s;
    /* device scratch: Hm, dG, dU [nslot, bs] in T, then off and order as copied from the host */
    const size_t nf = (size_t)(d.nslot * d.bs);
    char *ws = (char *)sgt_cuda_scratch(3 * nf * sizeof(T) + sizeof(int32_t) * (size_t)(d.nb + 1 + d.nslot));
    T *Hm = (T *)ws, *dG = Hm + nf, *dU = dG + nf;
    int32_t *d_off = (int32_t *)(dU + nf), *d_order = d_off + d.nb + 1;
    sgt_device_copy(d_off, SGT_CUDA, off, SGT_CPU, sizeof(int32_t) * (size_t)(d.nb + 1 + d.nslot));

    const T *x = (const T *)sgt_ptr(call->src[0]), *wg = (const T *)sgt_ptr(call->src[1]),
            *wu = (const T *)sgt_ptr(call->src[2]), *wd = (const T *)sgt_ptr(call->src[3]),
            *m = (const T *)sgt_ptr(call->src[5]), *G = (const T *)sgt_ptr(call->src[6]),
            *U = (const T *)sgt_ptr(call->src[7]), *dy = (const T *)sgt_ptr(call->src[8]);
    const int32_t *idx = (const int32_t *)sgt_ptr(it);
    T *dx = (T *)sgt_ptr(call->dst[0]), *dwg = (T *)sgt_ptr(call->dst[1]), *dwu = (T *)sgt_ptr(call->dst[2]),
      *dwd = (T *)sgt_ptr(call->dst[3]), *dm = (T *)sgt_ptr(call->dst[4]);
    cudaStream_t s = sgt_cuda_stream();
    if (d.nslot) {
        k_bs_bwd_slot<T><<<sgt_cuda_row_blocks(d.nslot), sgt_cuda_row_threads(d.bs), 0, s>>>(
            wd, idx, m, G, U, dy, Hm, dG, dU, dm, d.nslot, d.k, d.C, d.I, d.bs);
        CUDA_LAUNCH_CHECK("k_bs_bwd_slot");
    }
    if (d.N * d.C > 0) {
        k_bs_bwd_dx<T><<<sgt_cuda_blocks(d.N * d.C), SGT_CUDA_THREADS, 0, s>>>(wg, wu, idx, dG, dU, dx, d.N, d.k, d.C, d.bs);
        CUDA_LAUNCH_CHECK("k_bs_bwd_dx");
    }
    if (d.I * d.C > 0) {
        k_bs_bwd_dwgu<T><<<sgt_cuda_blocks(d.I * d.C), SGT_CUDA_THREADS, 0, s>>>(x, dG, dU, d_off, d_order, dwg, dwu, d.I,
                                                                                 d.C, d.k, d.bs);
        CUDA_LAUNCH_CHECK("k_bs_bwd_dwgu");
        k_bs_bwd_dwd<T><<<sgt_cuda_blocks(d.C * d.I), SGT_CUDA_THREADS, 0, s>>>(dy, Hm, d_off, d_order, dwd, d.I, d.C, d.k,
                                                                                d.bs);
        CUDA_LAUNCH_CHECK("k_bs_bwd_dwd");
    }
}

/* ---- bf16: the tensor-core path (bsparse_tc.cuh) ---- */

static bool aligned16(const sgt_tensor *t) { return ((uintptr_t)sgt_ptr(t) & 15u) == 0; }

static tc_args tc_args_of(const sgt_opcall *call, bool backward) {
    const bs_dims d = dims_of(call);
    tc_args a = {};
    a.N = d.N, a.C = d.C, a.I = d.I, a.k = d.k, a.bs = d.bs, a.nb = d.nb, a.nslot = d.nslot;
    SGT_CHECK(d.C % 8 == 0 && d.bs % 16 == 0,
              "bsparse_swiglu: bf16 on CUDA runs on tensor cores and needs the width a multiple of 8 and the block "
              "size a multiple of 16 (got C = %lld, block size %lld); use f32 for other shapes",
              (long long)d.C, (long long)d.bs);
    const int vec[5] = {0, 1, 2, 3, 8}; /* x, wg, wu, wd (and dy): read in 16-byte vectors */
    for (int i = 0; i < (backward ? 5 : 4); i++)
        SGT_CHECK(aligned16(call->src[vec[i]]), "bsparse_swiglu: bf16 operand %d is not 16-byte aligned (a view at an "
                  "odd offset): copy it first", vec[i]);
    a.x = (const tc_bf16 *)sgt_ptr(call->src[0]);
    a.wg = (const tc_bf16 *)sgt_ptr(call->src[1]);
    a.wu = (const tc_bf16 *)sgt_ptr(call->src[2]);
    a.wd = (const tc_bf16 *)sgt_ptr(call->src[3]);
    a.idx = (const int32_t *)sgt_ptr(call->src[4]);
    a.m = (const tc_bf16 *)sgt_ptr(call->src[5]);
    tc_scratch_layout(&a, sgt_cuda_scratch(tc_scratch_bytes(d.nb, d.nslot, d.bs, d.C, backward)), backward);
    return a;
}

static void tc_fwd(const sgt_opcall *call) {
    tc_args a = tc_args_of(call, false);
    a.y = (tc_bf16 *)sgt_ptr(call->dst[0]);
    a.Gout = (tc_bf16 *)sgt_ptr(call->dst[1]);
    a.Uout = (tc_bf16 *)sgt_ptr(call->dst[2]);
    if (a.nslot == 0 && a.N * a.C > 0) CUDA_CHECK(cudaMemsetAsync(a.y, 0, sizeof(tc_bf16) * (size_t)(a.N * a.C), sgt_cuda_stream()));
    tc_forward(a);
}

static void tc_bwd(const sgt_opcall *call) {
    tc_args a = tc_args_of(call, true);
    a.G = (const tc_bf16 *)sgt_ptr(call->src[6]);
    a.U = (const tc_bf16 *)sgt_ptr(call->src[7]);
    a.dy = (const tc_bf16 *)sgt_ptr(call->src[8]);
    a.dx = (tc_bf16 *)sgt_ptr(call->dst[0]);
    a.dwg = (tc_bf16 *)sgt_ptr(call->dst[1]);
    a.dwu = (tc_bf16 *)sgt_ptr(call->dst[2]);
    a.dwd = (tc_bf16 *)sgt_ptr(call->dst[3]);
    a.dm = (tc_bf16 *)sgt_ptr(call->dst[4]);
    cudaStream_t s = sgt_cuda_stream();
    if (a.nslot == 0) { /* nothing selected: every gradient is zero */
        for (int i = 0; i < 5; i++)
            if (sgt_numel(call->dst[i]))
                CUDA_CHECK(cudaMemsetAsync(sgt_ptr(call->dst[i]), 0, 2 * (size_t)sgt_numel(call->dst[i]), s));
        return;
    }
    /* blocks nobody chose get zero weight gradients: the weight GEMMs write every element of the
     * blocks they cover, and cover all blocks (empty ones sum nothing) */
    tc_backward(a);
}

void sgt_cuda_bsparse_swiglu(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_BF16) tc_fwd(call);
    else if (call->src[0]->dtype == SGT_F32) fwd_typed<float>(call);
    else fwd_typed<double>(call);
}

void sgt_cuda_bsparse_swiglu_bwd(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_BF16) tc_bwd(call);
    else if (call->src[0]->dtype == SGT_F32) bwd_typed<float>(call);
    else bwd_typed<double>(call);
}
