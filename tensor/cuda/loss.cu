/* loss.cu: the fused cross-entropy kernels over contiguous logits [N, V]: forward (mean NLL over
 * the targets that are not ignored, and the per-row log-sum-exp) and backward (softmax minus
 * one-hot, scaled): the counterparts of cpu/loss.c. Targets are checked (and counted) on the
 * host first, like the CPU does. The forward's per-row terms are summed by one block in a fixed
 * order: deterministic (the CPU's OpenMP reduction is the one whose order may vary). */
#include <math.h>

#include "block.cuh"

/* one block per row: lse[r], and the row's NLL term (0 for an ignored row) into part[r] */
template <typename T>
__global__ void k_ce_rows(const T *x, const int32_t *tg, T *lse, double *part, int64_t N, int64_t V, int32_t ignore) {
    __shared__ double shd[33];
    __shared__ T sht[33];
    for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
        const T *xr = x + r * V;
        T mx = -INFINITY;
        for (int64_t i = threadIdx.x; i < V; i += blockDim.x) mx = xr[i] > mx ? xr[i] : mx;
        mx = sgt_block_reduce(mx, sgt_max_op(), (T)-INFINITY, sht);
        if (isinf(mx) && mx < 0) mx = 0; /* all -inf: keep it finite (the CPU's row_max does the same) */
        double s = 0;
        for (int64_t i = threadIdx.x; i < V; i += blockDim.x) s += sgt_exp(xr[i] - mx);
        s = sgt_block_sum(s, shd);
        if (threadIdx.x == 0) {
            const double l = (double)mx + log(s);
            lse[r] = (T)l;
            part[r] = tg[r] != ignore ? l - (double)xr[tg[r]] : 0.0;
        }
    }
}

template <typename T> __global__ void k_ce_total(const double *part, int64_t N, int64_t cnt, T *loss) {
    __shared__ double sh[33];
    double total = 0;
    for (int64_t r = threadIdx.x; r < N; r += blockDim.x) total += part[r];
    total = sgt_block_sum(total, sh);
    if (threadIdx.x == 0) *loss = (T)(cnt ? total / (double)cnt : NAN);
}

template <typename T> static void ce_typed(const sgt_opcall *call) {
    const sgt_tensor *lt = call->src[0], *tt = call->src[1];
    const int64_t N = lt->shape[0], V = lt->shape[1];
    const int32_t ignore = (int32_t)call->ip[0];
    int32_t *host = (int32_t *)sgt_cuda_host_scratch(sizeof(int32_t) * (size_t)N);
    const int64_t cnt = sgt_cuda_fetch_indices("cross_entropy", tt, V, true, ignore, host);
    T *loss = (T *)sgt_ptr(call->dst[0]), *lse = (T *)sgt_ptr(call->dst[1]);
    double *part = (double *)sgt_cuda_scratch(sizeof(double) * (size_t)(N ? N : 1));
    cudaStream_t s = sgt_cuda_stream();
    if (N) {
        k_ce_rows<T><<<sgt_cuda_row_blocks(N), sgt_cuda_row_threads(V), 0, s>>>(
            (const T *)sgt_ptr(lt), (const int32_t *)sgt_ptr(tt), lse, part, N, V, ignore);
        CUDA_LAUNCH_CHECK("k_ce_rows");
    }
    k_ce_total<T><<<1, SGT_CUDA_THREADS, 0, s>>>(part, N, cnt, loss);
    CUDA_LAUNCH_CHECK("k_ce_total");
}

void sgt_cuda_cross_entropy(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) ce_typed<float>(call);
    else ce_typed<double>(call);
}

/* dlogits = (softmax - onehot(target)) * dloss / cnt, 0 on ignored rows (the CPU's arithmetic:
 * exp(x - lse) * scale, then minus scale at the target) */
template <typename T>
__global__ void k_ce_bwd(const T *x, const int32_t *tg, const T *lse, const T *dloss, T *dx, int64_t N, int64_t V,
                         int64_t cnt, int32_t ignore) {
    const T dl = *dloss;
    const T scale = cnt ? dl / (T)cnt : (T)0;
    SGT_CUDA_FOR_EACH(w, N * V) {
        const int64_t r = w / V, i = w - r * V;
        const int32_t t = tg[r];
        if (t == ignore) {
            dx[w] = 0;
            continue;
        }
        T o = sgt_exp(x[w] - lse[r]) * scale;
        if (i == t) o -= scale;
        dx[w] = o;
    }
}

template <typename T> static void ce_bwd_typed(const sgt_opcall *call) {
    const sgt_tensor *lt = call->src[0], *tt = call->src[1];
    const int64_t N = lt->shape[0], V = lt->shape[1];
    if (!N || !V) return;
    const int32_t ignore = (int32_t)call->ip[0];
    int32_t *host = (int32_t *)sgt_cuda_host_scratch(sizeof(int32_t) * (size_t)N);
    const int64_t cnt = sgt_cuda_fetch_indices("cross_entropy", tt, V, true, ignore, host);
    k_ce_bwd<T><<<sgt_cuda_blocks(N * V), SGT_CUDA_THREADS, 0, sgt_cuda_stream()>>>(
        (const T *)sgt_ptr(lt), (const int32_t *)sgt_ptr(tt), (const T *)sgt_ptr(call->src[2]),
        (const T *)sgt_ptr(call->src[3]), (T *)sgt_ptr(call->dst[0]), N, V, cnt, ignore);
    CUDA_LAUNCH_CHECK("k_ce_bwd");
}

void sgt_cuda_cross_entropy_bwd(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) ce_bwd_typed<float>(call);
    else ce_bwd_typed<double>(call);
}
