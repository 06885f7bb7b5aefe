/* loss.cu: the fused cross-entropy kernels over contiguous logits [N, V], of which the first
 * `valid` columns (ip[1]) are the vocabulary and the rest padding: forward (mean NLL over the
 * targets that are not ignored, and the per-row log-sum-exp over the valid columns) and backward
 * (softmax minus one-hot, scaled; exactly 0 in the padding columns and on ignored rows): the
 * counterparts of cpu/loss.c. Logits are f32, f64 or bf16 (native: read as f32, dlogits rounded
 * once to bf16); loss, lse and dloss are f32 for f32 and bf16 logits, f64 for f64. Targets are
 * checked (and counted) on the host first, with the CPU's message.
 *
 * Summation order: each row is one block, in a single pass of an online max and sum (each thread
 * keeps its running max m and sum s of exp(x - m) in f64, rescaling s when m grows; the threads'
 * (m, s) pairs then merge in a fixed tree), where the CPU takes the max first and then sums in
 * f64 lanes: the same terms up to the last bit or two of exp. The rows' NLL terms are summed by
 * one block in a fixed order: deterministic (the CPU's OpenMP reduction is the one whose order may
 * vary). */
#include <math.h>

#include "block.cuh" /* first: it declares the library's C functions with C linkage */
#include "../ce_targets.h"
#include "typed.cuh"

/* the online max and sum: adds x to the running (m, s), s = sum exp(x_j - m) */
template <typename M> __device__ __forceinline__ void ce_push(M &m, double &s, M x) {
    if (x > m) { /* (NaN never is: it goes to the sum and makes it NaN, as on the CPU) */
        s = s * exp((double)m - (double)x) + 1.0;
        m = x;
    } else if (x != (M)-INFINITY) { /* -inf adds 0 (and would be NaN against an m of -inf) */
        s += (double)sgt_exp(x - m);
    }
}

template <typename M> __device__ __forceinline__ void ce_merge(M &m, double &s, M m2, double s2) {
    const M mm = m2 > m ? m2 : m;
    s = (m == mm ? s : s * exp((double)m - (double)mm)) + (m2 == mm ? s2 : s2 * exp((double)m2 - (double)mm));
    m = mm;
}

/* merges the (m, s) of every thread of the block in a fixed tree; every thread gets the result.
 * shm, shs: 33 slots each. */
template <typename M> __device__ void ce_block_merge(M &m, double &s, M *shm, double *shs) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarp = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const M m2 = __shfl_down_sync(SGT_FULL_MASK, m, o);
        const double s2 = __shfl_down_sync(SGT_FULL_MASK, s, o);
        ce_merge(m, s, m2, s2);
    }
    if (lane == 0) shm[warp] = m, shs[warp] = s;
    __syncthreads();
    if (warp == 0) {
        m = lane < nwarp ? shm[lane] : (M)-INFINITY;
        s = lane < nwarp ? shs[lane] : 0.0;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const M m2 = __shfl_down_sync(SGT_FULL_MASK, m, o);
            const double s2 = __shfl_down_sync(SGT_FULL_MASK, s, o);
            ce_merge(m, s, m2, s2);
        }
        if (lane == 0) shm[32] = m, shs[32] = s;
    }
    __syncthreads();
    m = shm[32];
    s = shs[32];
    __syncthreads();
}

/* one block per row: lse[r] over the valid columns, and the row's NLL term (0 for an ignored row)
 * into part[r] */
template <typename T>
__global__ void k_ce_rows(const T *x, const int32_t *tg, typename sgt_math<T>::type *lse, double *part, int64_t N,
                          int64_t V, int64_t valid, int32_t ignore) {
    typedef typename sgt_math<T>::type M;
    __shared__ M shm[33];
    __shared__ double shs[33];
    for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
        const T *xr = x + r * V;
        M m = (M)-INFINITY;
        double s = 0;
        for (int64_t i = threadIdx.x; i < valid; i += blockDim.x) ce_push(m, s, sgt_ld(xr[i]));
        ce_block_merge(m, s, shm, shs);
        if (threadIdx.x == 0) {
            /* a +inf logit: NaN, as the CPU's exp(inf - inf); all -inf: -inf + log(0) = -inf, as there */
            const double l = m == (M)INFINITY ? (double)NAN : (double)m + log(s);
            lse[r] = (M)l;
            part[r] = tg[r] != ignore ? l - (double)sgt_ld(xr[tg[r]]) : 0.0;
        }
    }
}

template <typename S> __global__ void k_ce_total(const double *part, int64_t N, int64_t cnt, S *loss) {
    __shared__ double sh[33];
    double total = 0;
    for (int64_t r = threadIdx.x; r < N; r += blockDim.x) total += part[r];
    total = sgt_block_sum(total, sh);
    if (threadIdx.x == 0) *loss = (S)(cnt ? total / (double)cnt : NAN);
}

/* the targets, fetched to the host, checked against [0, valid) with the CPU's message (cpu/loss.c)
 * and counted (ignored rows aside) */
static int64_t ce_count(const sgt_tensor *tt, int64_t valid, int64_t V, int32_t ignore) {
    SGT_CHECK(tt->dtype == SGT_I32 && sgt_is_contiguous(tt), "cross_entropy: targets must be contiguous i32");
    SGT_CHECK(!sgt_cuda_graph_recording(), "cross_entropy: counts its targets on the host, so it cannot be recorded in a graph");
    const int64_t N = sgt_numel(tt);
    int32_t *t = (int32_t *)sgt_cuda_host_scratch(sizeof(int32_t) * (size_t)(N ? N : 1));
    if (N) sgt_device_copy(t, SGT_CPU, sgt_ptr(tt), tt->device, sizeof(int32_t) * (size_t)N);
    return sgt_ce_count_targets(t, N, valid, V, ignore);
}

template <typename T> static void ce_typed(const sgt_opcall *call) {
    typedef typename sgt_math<T>::type M;
    const sgt_tensor *lt = call->src[0], *tt = call->src[1];
    const int64_t N = lt->shape[0], V = lt->shape[1], valid = call->ip[1];
    const int32_t ignore = (int32_t)call->ip[0];
    const int64_t cnt = ce_count(tt, valid, V, ignore);
    M *loss = (M *)sgt_ptr(call->dst[0]), *lse = (M *)sgt_ptr(call->dst[1]);
    double *part = (double *)sgt_cuda_scratch(sizeof(double) * (size_t)(N ? N : 1));
    cudaStream_t s = sgt_cuda_stream();
    if (N) {
        k_ce_rows<T><<<sgt_cuda_row_blocks(N), sgt_cuda_row_threads(valid), 0, s>>>(
            (const T *)sgt_ptr(lt), (const int32_t *)sgt_ptr(tt), lse, part, N, V, valid, ignore);
        CUDA_LAUNCH_CHECK("k_ce_rows");
    }
    k_ce_total<M><<<1, SGT_CUDA_THREADS, 0, s>>>(part, N, cnt, loss);
    CUDA_LAUNCH_CHECK("k_ce_total");
}

void sgt_cuda_cross_entropy(const sgt_opcall *call) {
    switch (call->src[0]->dtype) {
    case SGT_F32: ce_typed<float>(call); break;
    case SGT_F64: ce_typed<double>(call); break;
    case SGT_BF16: ce_typed<uint16_t>(call); break;
    default: SGT_FAIL("cross_entropy: logits of dtype %s", sgt_dtype_name(call->src[0]->dtype));
    }
}

/* dlogits = (softmax - onehot(target)) * dloss / cnt over the valid columns, 0 in the padding
 * columns and on ignored rows (the CPU's arithmetic: exp(x - lse) * scale, then minus scale at
 * the target, in f32 for f32 and bf16 logits, then one rounding to bf16) */
template <typename T>
__global__ void k_ce_bwd(const T *x, const int32_t *tg, const typename sgt_math<T>::type *lse,
                         const typename sgt_math<T>::type *dloss, T *dx, int64_t N, int64_t V, int64_t valid, int64_t cnt,
                         int32_t ignore) {
    typedef typename sgt_math<T>::type M;
    const M dl = *dloss;
    const M scale = cnt ? dl / (M)cnt : (M)0;
    SGT_CUDA_FOR_EACH(w, N * V) {
        const int64_t r = w / V, i = w - r * V;
        const int32_t t = tg[r];
        if (t == ignore || i >= valid) {
            sgt_st(dx + w, (M)0);
            continue;
        }
        M o = sgt_exp(sgt_ld(x[w]) - lse[r]) * scale;
        if (i == t) o -= scale;
        sgt_st(dx + w, o);
    }
}

template <typename T> static void ce_bwd_typed(const sgt_opcall *call) {
    typedef typename sgt_math<T>::type M;
    const sgt_tensor *lt = call->src[0], *tt = call->src[1];
    const int64_t N = lt->shape[0], V = lt->shape[1], valid = call->ip[1];
    const int32_t ignore = (int32_t)call->ip[0];
    const int64_t cnt = ce_count(tt, valid, V, ignore);
    if (!N || !V) return;
    k_ce_bwd<T><<<sgt_cuda_blocks(N * V), SGT_CUDA_THREADS, 0, sgt_cuda_stream()>>>(
        (const T *)sgt_ptr(lt), (const int32_t *)sgt_ptr(tt), (const M *)sgt_ptr(call->src[2]),
        (const M *)sgt_ptr(call->src[3]), (T *)sgt_ptr(call->dst[0]), N, V, valid, cnt, ignore);
    CUDA_LAUNCH_CHECK("k_ce_bwd");
}

void sgt_cuda_cross_entropy_bwd(const sgt_opcall *call) {
    switch (call->src[0]->dtype) {
    case SGT_F32: ce_bwd_typed<float>(call); break;
    case SGT_F64: ce_bwd_typed<double>(call); break;
    case SGT_BF16: ce_bwd_typed<uint16_t>(call); break;
    default: SGT_FAIL("cross_entropy_bwd: logits of dtype %s", sgt_dtype_name(call->src[0]->dtype));
    }
}
