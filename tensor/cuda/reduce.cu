/* reduce.cu: CUDA kernels for sum, mean, max (over any set of dims) and argmax: the counterparts
 * of cpu/reduce.c. f32 sums accumulate in f64 as on the CPU; max propagates NaN; argmax returns
 * the first maximum (the first NaN if there is one), by logical index over the reduced dims.
 *
 * One block per output element reduces with a fixed tree (block.cuh), and the "leading dims
 * reduced, contiguous" case (bias gradients) uses a column kernel whose threads own columns and
 * combine row groups in a fixed order: both deterministic. Only the summation order differs
 * from the CPU's, hence tolerances in the parity test instead of exact equality. */
#include <math.h>

#include "block.cuh"

/* the kept and reduced dims of x, as cpu/reduce.c's plan() */
struct reduce_plan {
    int nk, nr;
    int64_t kshape[SGT_MAX_DIMS], kstride[SGT_MAX_DIMS];
    int64_t rshape[SGT_MAX_DIMS], rstride[SGT_MAX_DIMS];
    int64_t nout, ninner;
};

static reduce_plan make_plan(const sgt_tensor *x, uint32_t mask) {
    reduce_plan p;
    memset(&p, 0, sizeof p);
    p.nout = p.ninner = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (mask & (1u << d)) {
            p.rshape[p.nr] = x->shape[d];
            p.rstride[p.nr++] = x->stride[d];
            p.ninner *= x->shape[d];
        } else {
            p.kshape[p.nk] = x->shape[d];
            p.kstride[p.nk++] = x->stride[d];
            p.nout *= x->shape[d];
        }
    }
    return p;
}

__device__ __forceinline__ int64_t offset_from(int64_t i, int n, const int64_t *shape, const int64_t *stride) {
    int64_t off = 0;
    for (int d = n - 1; d >= 0; d--) {
        const int64_t q = i / shape[d];
        off += (i - q * shape[d]) * stride[d];
        i = q;
    }
    return off;
}

enum { R_SUM, R_MAX };

/* one block per output element; the block's threads stride over the reduced elements */
template <typename T, int KIND> __global__ void k_reduce(const T *x, T *y, reduce_plan p, double scale) {
    __shared__ double sh[33];
    for (int64_t o = blockIdx.x; o < p.nout; o += gridDim.x) {
        const T *xo = x + offset_from(o, p.nk, p.kshape, p.kstride);
        double acc = KIND == R_MAX ? -INFINITY : 0.0;
        for (int64_t r = threadIdx.x; r < p.ninner; r += blockDim.x) {
            const double v = xo[offset_from(r, p.nr, p.rshape, p.rstride)];
            acc = KIND == R_MAX ? sgt_max_nan_op()(acc, v) : acc + v;
        }
        if (KIND == R_MAX) acc = sgt_block_reduce(acc, sgt_max_nan_op(), (double)-INFINITY, sh);
        else acc = sgt_block_sum(acc, sh);
        if (threadIdx.x == 0) y[o] = (T)(acc * scale);
    }
}

/* x [rows, cols] contiguous, summed over rows. Block (32, 16): thread (tx, ty) of column tile c
 * sums rows ty, ty+16, ... of column c*32+tx; the 16 partials are then added in order of ty. */
#define COL_TY 16
template <typename T> __global__ void k_column_sum(const T *x, T *y, int64_t rows, int64_t cols, double scale) {
    __shared__ double part[COL_TY][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t ntile = (cols + 31) / 32;
    for (int64_t tile = blockIdx.x; tile < ntile; tile += gridDim.x) {
        const int64_t j = tile * 32 + tx;
        double acc = 0;
        if (j < cols)
            for (int64_t r = ty; r < rows; r += COL_TY) acc += x[r * cols + j];
        part[ty][tx] = acc;
        __syncthreads();
        if (ty == 0 && j < cols) {
            double s = 0;
            for (int k = 0; k < COL_TY; k++) s += part[k][tx];
            y[j] = (T)(s * scale);
        }
        __syncthreads();
    }
}

template <typename T> static void reduce_typed(const sgt_opcall *call) {
    const sgt_tensor *xt = call->src[0];
    T *y = (T *)sgt_ptr(call->dst[0]);
    const T *x = (const T *)xt->data + xt->offset;
    const uint32_t mask = (uint32_t)call->ip[0];
    reduce_plan p = make_plan(xt, mask);
    if (!p.nout) return;
    const sgt_op op = call->op;
    const double scale = op == SGT_OP_MEAN ? 1.0 / (double)p.ninner : 1.0;
    cudaStream_t s = sgt_cuda_stream();
    int lead_reduced = 0;
    while (lead_reduced < xt->ndim && (mask & (1u << lead_reduced))) lead_reduced++;
    if (op != SGT_OP_MAX && sgt_is_contiguous(xt) && lead_reduced == p.nr && p.nk > 0) {
        const int64_t ntile = (p.nout + 31) / 32;
        k_column_sum<T><<<sgt_cuda_row_blocks(ntile), dim3(32, COL_TY), 0, s>>>(x, y, p.ninner, p.nout, scale);
        CUDA_LAUNCH_CHECK("k_column_sum");
        return;
    }
    const int threads = sgt_cuda_row_threads(p.ninner);
    const unsigned blocks = sgt_cuda_row_blocks(p.nout);
    if (op == SGT_OP_MAX) k_reduce<T, R_MAX><<<blocks, threads, 0, s>>>(x, y, p, scale);
    else k_reduce<T, R_SUM><<<blocks, threads, 0, s>>>(x, y, p, scale);
    CUDA_LAUNCH_CHECK("k_reduce");
}

void sgt_cuda_reduce(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) reduce_typed<float>(call);
    else reduce_typed<double>(call);
}

/* ---- argmax: the first best element of each output's run, in sgt_better's order (block.cuh:
 * NaN beats numbers, ties go to the lower index) ---- */

template <typename T> __global__ void k_argmax(const T *x, int32_t *y, reduce_plan p) {
    __shared__ T shv[32];
    __shared__ int64_t shi[32];
    for (int64_t o = blockIdx.x; o < p.nout; o += gridDim.x) {
        const T *xo = x + offset_from(o, p.nk, p.kshape, p.kstride);
        T best = 0;
        int64_t bi = -1; /* -1: nothing seen */
        for (int64_t r = threadIdx.x; r < p.ninner; r += blockDim.x) {
            const T v = xo[offset_from(r, p.nr, p.rshape, p.rstride)];
            if (bi < 0 || sgt_better(v, r, best, bi)) {
                best = v;
                bi = r;
            }
        }
        sgt_block_best(best, bi, shv, shi);
        if (threadIdx.x == 0) y[o] = (int32_t)(bi < 0 ? 0 : bi);
        __syncthreads();
    }
}

void sgt_cuda_argmax(const sgt_opcall *call) {
    const sgt_tensor *xt = call->src[0];
    reduce_plan p = make_plan(xt, (uint32_t)call->ip[0]);
    if (!p.nout) return;
    int32_t *y = (int32_t *)sgt_ptr(call->dst[0]);
    const int threads = sgt_cuda_row_threads(p.ninner);
    const unsigned blocks = sgt_cuda_row_blocks(p.nout);
    cudaStream_t s = sgt_cuda_stream();
    if (xt->dtype == SGT_F32) k_argmax<float><<<blocks, threads, 0, s>>>((const float *)xt->data + xt->offset, y, p);
    else k_argmax<double><<<blocks, threads, 0, s>>>((const double *)xt->data + xt->offset, y, p);
    CUDA_LAUNCH_CHECK("k_argmax");
}
