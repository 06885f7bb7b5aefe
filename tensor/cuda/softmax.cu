/* softmax.cu: CUDA kernels for softmax (optionally causal-masked), log-softmax and their backward
 * over the last dim of contiguous inputs: the counterparts of cpu/softmax.c, one block per row.
 * Row maxima are NaN-ignoring as on the CPU; sums accumulate in f64 with a fixed tree. */
#include <math.h>

#include "block.cuh"

template <typename T>
__global__ void k_softmax(const T *x, T *y, int64_t rows, int64_t n, bool causal, bool logsm, int64_t tq, int64_t shift) {
    __shared__ double shd[33];
    __shared__ T sht[33];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * n;
        T *yr = y + r * n;
        const int64_t valid = causal ? (r % tq) + shift + 1 : n;
        T mx = -INFINITY;
        for (int64_t i = threadIdx.x; i < valid; i += blockDim.x) mx = xr[i] > mx ? xr[i] : mx;
        mx = sgt_block_reduce(mx, sgt_max_op(), (T)-INFINITY, sht);
        if (isinf(mx) && mx < 0) mx = 0; /* all -inf: keep it finite */
        double sum = 0;
        for (int64_t i = threadIdx.x; i < valid; i += blockDim.x) {
            const T e = sgt_exp(xr[i] - mx);
            sum += e;
            if (!logsm) yr[i] = e;
        }
        sum = sgt_block_sum(sum, shd);
        if (logsm) {
            const T lse = mx + (T)log(sum);
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] - lse;
        } else {
            const T inv = (T)(1.0 / sum);
            /* each thread scales the entries it wrote itself */
            for (int64_t i = threadIdx.x; i < valid; i += blockDim.x) yr[i] *= inv;
            for (int64_t i = valid + threadIdx.x; i < n; i += blockDim.x) yr[i] = 0;
        }
    }
}

template <typename T> static void softmax_typed(const sgt_opcall *call) {
    const sgt_tensor *xt = call->src[0];
    const int64_t n = xt->shape[xt->ndim - 1], rows = n ? sgt_numel(xt) / n : 0;
    if (!rows) return;
    const bool causal = call->ip[0], logsm = call->op == SGT_OP_LOG_SOFTMAX;
    const int64_t tq = causal ? xt->shape[xt->ndim - 2] : 1, shift = n - tq;
    k_softmax<T><<<sgt_cuda_row_blocks(rows), sgt_cuda_row_threads(n), 0, sgt_cuda_stream()>>>(
        (const T *)sgt_ptr(xt), (T *)sgt_ptr(call->dst[0]), rows, n, causal, logsm, tq, shift);
    CUDA_LAUNCH_CHECK("k_softmax");
}

void sgt_cuda_softmax(const sgt_opcall *call) {
    if (call->dst[0]->dtype == SGT_F32) softmax_typed<float>(call);
    else softmax_typed<double>(call);
}

template <typename T> __global__ void k_softmax_bwd(const T *y, const T *dy, T *dx, int64_t rows, int64_t n, bool logsm) {
    __shared__ double sh[33];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *yr = y + r * n, *gr = dy + r * n;
        T *o = dx + r * n;
        double s = 0;
        if (logsm)
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += gr[i];
        else
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += (double)gr[i] * yr[i];
        s = sgt_block_sum(s, sh);
        if (logsm)
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) o[i] = gr[i] - sgt_exp(yr[i]) * (T)s;
        else
            for (int64_t i = threadIdx.x; i < n; i += blockDim.x) o[i] = yr[i] * (gr[i] - (T)s);
    }
}

template <typename T> static void softmax_bwd_typed(const sgt_opcall *call) {
    const sgt_tensor *yt = call->src[0];
    const int64_t n = yt->shape[yt->ndim - 1], rows = n ? sgt_numel(yt) / n : 0;
    if (!rows) return;
    k_softmax_bwd<T><<<sgt_cuda_row_blocks(rows), sgt_cuda_row_threads(n), 0, sgt_cuda_stream()>>>(
        (const T *)sgt_ptr(yt), (const T *)sgt_ptr(call->src[1]), (T *)sgt_ptr(call->dst[0]), rows, n, (bool)call->ip[0]);
    CUDA_LAUNCH_CHECK("k_softmax_bwd");
}

void sgt_cuda_softmax_bwd(const sgt_opcall *call) {
    if (call->dst[0]->dtype == SGT_F32) softmax_bwd_typed<float>(call);
    else softmax_bwd_typed<double>(call);
}
