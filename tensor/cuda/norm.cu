/* norm.cu: CUDA kernels for RMSNorm and LayerNorm over the last dim, forward and backward: the
 * counterparts of cpu/norm.c, with its formulas and precision (row statistics in f64). Rows get
 * one block each; weight/bias gradients are column sums whose row groups combine in a fixed
 * order, so every result is deterministic. */
#include <math.h>

#include "block.cuh"

template <typename T>
__global__ void k_rmsnorm(const T *x, const T *w, T *y, T *rstd, int64_t rows, int64_t C, double eps) {
    __shared__ double sh[33];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * C;
        double ss = 0;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) ss += (double)xr[i] * xr[i];
        ss = sgt_block_sum(ss, sh);
        const T rs = (T)(1.0 / sqrt(ss / (double)C + eps));
        if (threadIdx.x == 0) rstd[r] = rs;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) y[r * C + i] = xr[i] * rs * w[i];
    }
}

template <typename T>
__global__ void k_layernorm(const T *x, const T *w, const T *b, T *y, T *mean, T *rstd, int64_t rows, int64_t C,
                            double eps) {
    __shared__ double sh[33];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * C;
        double s = 0, ss = 0;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) s += xr[i];
        s = sgt_block_sum(s, sh);
        const double m = s / (double)C;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) ss += ((double)xr[i] - m) * ((double)xr[i] - m);
        ss = sgt_block_sum(ss, sh);
        const T rs = (T)(1.0 / sqrt(ss / (double)C + eps));
        if (threadIdx.x == 0) {
            mean[r] = (T)m;
            rstd[r] = rs;
        }
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) y[r * C + i] = (xr[i] - (T)m) * rs * w[i] + b[i];
    }
}

/* dx per row; mean is NULL for RMSNorm */
template <typename T>
__global__ void k_norm_dx(const T *x, const T *w, const T *mean, const T *rstd, const T *dy, T *dx, int64_t rows,
                          int64_t C) {
    __shared__ double sh[33];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * C, *gr = dy + r * C;
        const T m = mean ? mean[r] : (T)0, rs = rstd[r];
        double sg = 0, sgx = 0;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            double g = (double)gr[i] * w[i], xh = ((double)xr[i] - m) * rs;
            sg += g;
            sgx += g * xh;
        }
        sg = sgt_block_sum(sg, sh);
        sgx = sgt_block_sum(sgx, sh);
        const double mg = mean ? sg / (double)C : 0.0, mgx = sgx / (double)C;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            double g = (double)gr[i] * w[i], xh = ((double)xr[i] - m) * rs;
            dx[r * C + i] = (T)(rs * (g - mg - xh * mgx));
        }
    }
}

/* dw (and db) summed over rows. Block (32, 16): thread (tx, ty) of column tile c sums rows ty,
 * ty+16, ... of column c*32+tx; the 16 partials are then added in order of ty. */
#define NORM_TY 16
template <typename T>
__global__ void k_norm_dw(const T *x, const T *mean, const T *rstd, const T *dy, T *dw, T *db, int64_t rows, int64_t C) {
    __shared__ double pw[NORM_TY][33], pb[NORM_TY][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t ntile = (C + 31) / 32;
    for (int64_t tile = blockIdx.x; tile < ntile; tile += gridDim.x) {
        const int64_t j = tile * 32 + tx;
        double aw = 0, ab = 0;
        if (j < C)
            for (int64_t r = ty; r < rows; r += NORM_TY) {
                const T m = mean ? mean[r] : (T)0, rs = rstd[r];
                double g = dy[r * C + j];
                aw += g * ((double)x[r * C + j] - m) * rs;
                ab += g;
            }
        pw[ty][tx] = aw;
        pb[ty][tx] = ab;
        __syncthreads();
        if (ty == 0 && j < C) {
            double sw = 0, sb = 0;
            for (int k = 0; k < NORM_TY; k++) {
                sw += pw[k][tx];
                sb += pb[k][tx];
            }
            dw[j] = (T)sw;
            if (db) db[j] = (T)sb;
        }
        __syncthreads();
    }
}

template <typename T> static void norm_bwd(const sgt_opcall *call, bool layer) {
    const sgt_tensor *xt = call->src[0];
    const int64_t C = xt->shape[xt->ndim - 1], rows = C ? sgt_numel(xt) / C : 0;
    if (!C) return;
    const T *x = (const T *)sgt_ptr(xt), *w = (const T *)sgt_ptr(call->src[1]);
    const T *mean = layer ? (const T *)sgt_ptr(call->src[2]) : NULL;
    const T *rstd = (const T *)sgt_ptr(call->src[layer ? 3 : 2]), *dy = (const T *)sgt_ptr(call->src[layer ? 4 : 3]);
    T *dx = (T *)sgt_ptr(call->dst[0]), *dw = (T *)sgt_ptr(call->dst[1]);
    T *db = layer ? (T *)sgt_ptr(call->dst[2]) : NULL;
    cudaStream_t s = sgt_cuda_stream();
    if (rows) {
        k_norm_dx<T><<<sgt_cuda_row_blocks(rows), sgt_cuda_row_threads(C), 0, s>>>(x, w, mean, rstd, dy, dx, rows, C);
        CUDA_LAUNCH_CHECK("k_norm_dx");
    }
    /* with no rows the column sums are zeros, which the kernel writes too */
    k_norm_dw<T><<<sgt_cuda_row_blocks((C + 31) / 32), dim3(32, NORM_TY), 0, s>>>(x, mean, rstd, dy, dw, db, rows, C);
    CUDA_LAUNCH_CHECK("k_norm_dw");
}

template <typename T> static void rmsnorm_typed(const sgt_opcall *call) {
    const sgt_tensor *xt = call->src[0];
    const int64_t C = xt->shape[xt->ndim - 1], rows = C ? sgt_numel(xt) / C : 0;
    if (!rows) return;
    k_rmsnorm<T><<<sgt_cuda_row_blocks(rows), sgt_cuda_row_threads(C), 0, sgt_cuda_stream()>>>(
        (const T *)sgt_ptr(xt), (const T *)sgt_ptr(call->src[1]), (T *)sgt_ptr(call->dst[0]),
        (T *)sgt_ptr(call->dst[1]), rows, C, call->fp[0]);
    CUDA_LAUNCH_CHECK("k_rmsnorm");
}

template <typename T> static void layernorm_typed(const sgt_opcall *call) {
    const sgt_tensor *xt = call->src[0];
    const int64_t C = xt->shape[xt->ndim - 1], rows = C ? sgt_numel(xt) / C : 0;
    if (!rows) return;
    k_layernorm<T><<<sgt_cuda_row_blocks(rows), sgt_cuda_row_threads(C), 0, sgt_cuda_stream()>>>(
        (const T *)sgt_ptr(xt), (const T *)sgt_ptr(call->src[1]), (const T *)sgt_ptr(call->src[2]),
        (T *)sgt_ptr(call->dst[0]), (T *)sgt_ptr(call->dst[1]), (T *)sgt_ptr(call->dst[2]), rows, C, call->fp[0]);
    CUDA_LAUNCH_CHECK("k_layernorm");
}

void sgt_cuda_rmsnorm(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) rmsnorm_typed<float>(call);
    else rmsnorm_typed<double>(call);
}

void sgt_cuda_layernorm(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) layernorm_typed<float>(call);
    else layernorm_typed<double>(call);
}

void sgt_cuda_rmsnorm_bwd(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) norm_bwd<float>(call, false);
    else norm_bwd<double>(call, false);
}

void sgt_cuda_layernorm_bwd(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) norm_bwd<float>(call, true);
    else norm_bwd<double>(call, true);
}
