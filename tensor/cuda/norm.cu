/* norm.cu: CUDA kernels for RMSNorm and LayerNorm over the last dim, forward and backward: the
 * counterparts of cpu/norm.c, with its formulas and precision (row statistics in f64). Rows get
 * one block each; weight/bias gradients are column sums whose row groups combine in a fixed
 * order, so every result is deterministic.
 *
 * RMSNorm takes bf16 natively, and mixed dtypes: x and w are f32, f64 or bf16 (bf16 stored as its
 * 16 bits, tensor/bf16.h), y may be any float dtype (an f32 residual normalised straight into a
 * bf16 activation), rstd is f32 unless x is f64; its backward takes dy in any float dtype and
 * writes dx and dw in x's. The elementwise math is f32 for f32 and bf16 inputs and f64 for f64
 * (the CPU's promoted bf16 path: the f32 kernel between casts), each result rounded once into its
 * dtype (f64 into bf16 through f32, as the casts do). LayerNorm is f32 or f64 throughout. */
#include <math.h>

#include "block.cuh"
#include "typed.cuh"

/* x, w of type TX (math type M, also rstd's), y of type TY */
template <typename TX, typename TY>
__global__ void k_rmsnorm(const TX *x, const TX *w, TY *y, typename sgt_math<TX>::type *rstd, int64_t rows, int64_t C,
                          double eps) {
    typedef typename sgt_math<TX>::type M;
    __shared__ double sh[33];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const TX *xr = x + r * C;
        double ss = 0;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            const double v = sgt_ld(xr[i]);
            ss += v * v;
        }
        ss = sgt_block_sum(ss, sh);
        const M rs = (M)(1.0 / sqrt(ss / (double)C + eps));
        if (threadIdx.x == 0) rstd[r] = rs;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) sgt_st(y + r * C + i, sgt_ld(xr[i]) * rs * sgt_ld(w[i]));
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

/* dx per row; mean is NULL for RMSNorm. x, w, dx of type TX; mean and rstd of type TS; dy of type
 * TD (LayerNorm: all one type) */
template <typename TX, typename TS, typename TD>
__global__ void k_norm_dx(const TX *x, const TX *w, const TS *mean, const TS *rstd, const TD *dy, TX *dx, int64_t rows,
                          int64_t C) {
    __shared__ double sh[33];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const TX *xr = x + r * C;
        const TD *gr = dy + r * C;
        const double m = mean ? (double)mean[r] : 0.0, rs = (double)rstd[r];
        double sg = 0, sgx = 0;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            double g = (double)sgt_ld(gr[i]) * (double)sgt_ld(w[i]), xh = ((double)sgt_ld(xr[i]) - m) * rs;
            sg += g;
            sgx += g * xh;
        }
        sg = sgt_block_sum(sg, sh);
        sgx = sgt_block_sum(sgx, sh);
        const double mg = mean ? sg / (double)C : 0.0, mgx = sgx / (double)C;
        for (int64_t i = threadIdx.x; i < C; i += blockDim.x) {
            double g = (double)sgt_ld(gr[i]) * (double)sgt_ld(w[i]), xh = ((double)sgt_ld(xr[i]) - m) * rs;
            sgt_st(dx + r * C + i, rs * (g - mg - xh * mgx));
        }
    }
}

/* dw (and db) summed over rows. Block (32, 16): thread (tx, ty) of column tile c sums rows ty,
 * ty+16, ... of column c*32+tx; the 16 partials are then added in order of ty. */
#define NORM_TY 16
template <typename TX, typename TS, typename TD>
__global__ void k_norm_dw(const TX *x, const TS *mean, const TS *rstd, const TD *dy, TX *dw, TX *db, int64_t rows,
                          int64_t C) {
    __shared__ double pw[NORM_TY][33], pb[NORM_TY][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t ntile = (C + 31) / 32;
    for (int64_t tile = blockIdx.x; tile < ntile; tile += gridDim.x) {
        const int64_t j = tile * 32 + tx;
        double aw = 0, ab = 0;
        if (j < C)
            for (int64_t r = ty; r < rows; r += NORM_TY) {
                const double m = mean ? (double)mean[r] : 0.0, rs = (double)rstd[r];
                double g = sgt_ld(dy[r * C + j]);
                aw += g * ((double)sgt_ld(x[r * C + j]) - m) * rs;
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
            sgt_st(dw + j, sw);
            if (db) sgt_st(db + j, sb);
        }
        __syncthreads();
    }
}

/* src x, w, [mean,] rstd, dy -> dx, dw [, db] */
template <typename TX, typename TS, typename TD> static void norm_bwd(const sgt_opcall *call, bool layer) {
    const sgt_tensor *xt = call->src[0];
    const int64_t C = xt->shape[xt->ndim - 1], rows = C ? sgt_numel(xt) / C : 0;
    if (!C) return;
    const TX *x = (const TX *)sgt_ptr(xt), *w = (const TX *)sgt_ptr(call->src[1]);
    const TS *mean = layer ? (const TS *)sgt_ptr(call->src[2]) : NULL;
    const TS *rstd = (const TS *)sgt_ptr(call->src[layer ? 3 : 2]);
    const TD *dy = (const TD *)sgt_ptr(call->src[layer ? 4 : 3]);
    TX *dx = (TX *)sgt_ptr(call->dst[0]), *dw = (TX *)sgt_ptr(call->dst[1]);
    TX *db = layer ? (TX *)sgt_ptr(call->dst[2]) : NULL;
    cudaStream_t s = sgt_cuda_stream();
    if (rows) {
        k_norm_dx<TX, TS, TD><<<sgt_cuda_row_blocks(rows), sgt_cuda_row_threads(C), 0, s>>>(x, w, mean, rstd, dy, dx,
                                                                                            rows, C);
        CUDA_LAUNCH_CHECK("k_norm_dx");
    }
    /* with no rows the column sums are zeros, which the kernel writes too */
    k_norm_dw<TX, TS, TD><<<sgt_cuda_row_blocks((C + 31) / 32), dim3(32, NORM_TY), 0, s>>>(x, mean, rstd, dy, dw, db,
                                                                                           rows, C);
    CUDA_LAUNCH_CHECK("k_norm_dw");
}

template <typename TX, typename TY> static void rmsnorm_typed(const sgt_opcall *call) {
    typedef typename sgt_math<TX>::type M;
    const sgt_tensor *xt = call->src[0];
    const int64_t C = xt->shape[xt->ndim - 1], rows = C ? sgt_numel(xt) / C : 0;
    if (!rows) return;
    k_rmsnorm<TX, TY><<<sgt_cuda_row_blocks(rows), sgt_cuda_row_threads(C), 0, sgt_cuda_stream()>>>(
        (const TX *)sgt_ptr(xt), (const TX *)sgt_ptr(call->src[1]), (TY *)sgt_ptr(call->dst[0]),
        (M *)sgt_ptr(call->dst[1]), rows, C, call->fp[0]);
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

/* the dtype pairs of RMSNorm: x (f32, f64 or bf16) by y or dy (any float dtype) */
template <typename TX> static void rmsnorm_by_y(const sgt_opcall *call) {
    switch (call->dst[0]->dtype) {
    case SGT_F32: rmsnorm_typed<TX, float>(call); break;
    case SGT_F64: rmsnorm_typed<TX, double>(call); break;
    case SGT_BF16: rmsnorm_typed<TX, uint16_t>(call); break;
    default: SGT_FAIL("rmsnorm: output of dtype %s", sgt_dtype_name(call->dst[0]->dtype));
    }
}

template <typename TX> static void rmsnorm_bwd_by_dy(const sgt_opcall *call) {
    typedef typename sgt_math<TX>::type M;
    switch (call->src[3]->dtype) {
    case SGT_F32: norm_bwd<TX, M, float>(call, false); break;
    case SGT_F64: norm_bwd<TX, M, double>(call, false); break;
    case SGT_BF16: norm_bwd<TX, M, uint16_t>(call, false); break;
    default: SGT_FAIL("rmsnorm_bwd: dy of dtype %s", sgt_dtype_name(call->src[3]->dtype));
    }
}

void sgt_cuda_rmsnorm(const sgt_opcall *call) {
    switch (call->src[0]->dtype) {
    case SGT_F32: rmsnorm_by_y<float>(call); break;
    case SGT_F64: rmsnorm_by_y<double>(call); break;
    case SGT_BF16: rmsnorm_by_y<uint16_t>(call); break;
    default: SGT_FAIL("rmsnorm: x of dtype %s", sgt_dtype_name(call->src[0]->dtype));
    }
}

void sgt_cuda_layernorm(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) layernorm_typed<float>(call);
    else layernorm_typed<double>(call);
}

void sgt_cuda_rmsnorm_bwd(const sgt_opcall *call) {
    switch (call->src[0]->dtype) {
    case SGT_F32: rmsnorm_bwd_by_dy<float>(call); break;
    case SGT_F64: rmsnorm_bwd_by_dy<double>(call); break;
    case SGT_BF16: rmsnorm_bwd_by_dy<uint16_t>(call); break;
    default: SGT_FAIL("rmsnorm_bwd: x of dtype %s", sgt_dtype_name(call->src[0]->dtype));
    }
}

void sgt_cuda_layernorm_bwd(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) norm_bwd<float, float, float>(call, true);
    else norm_bwd<double, double, double>(call, true);
}
