/* infer_bf16.cu: CUDA kernels of the inference ops over bf16 weights (ops.h: sgt_linear_bf16,
 * sgt_bsparse_swiglu_bf16; the CPU's are cpu/infer_bf16.c, its f64 oracle in the tests).
 * Activations and sums are f32; weights stream as bf16, 8 per 16-byte load, widened in registers.
 *
 *   linear_bf16:          one warp per output row o; the warp streams W[o] once and forms its dot
 *                         with each of x's M rows (M <= 4: all in one pass; larger M loops over
 *                         row groups, re-reading W[o] from cache), then a warp reduction.
 *   bsparse_swiglu_bf16:  one thread block per (token, slot) s: its warps form the 2 bs gate and up
 *                         dots of block idx[s] against x (held in shared memory), h = m silu(g) u
 *                         in shared memory, then part[s, c] = sum_r h[r] WdT[r, c] with threads
 *                         over c (coalesced rows); a second kernel sums each token's k partial rows
 *                         in slot order. No atomics: sums in a fixed order.
 * No host round trip (the decode step is replayed as a CUDA graph): a block index outside
 * [0, nb) traps the kernel, which surfaces as a CUDA error at the next synchronising call. */
#include <cuda_bf16.h>

#include "block.cuh"

#define LB_ROWS 4 /* x rows per pass of linear_bf16 */

/* the 8 bf16 of a 16-byte load, widened */
__device__ __forceinline__ void widen8(uint4 v, float *f) {
    const uint32_t u[4] = {v.x, v.y, v.z, v.w};
    for (int i = 0; i < 4; i++) {
        f[2 * i] = __uint_as_float(u[i] << 16);
        f[2 * i + 1] = __uint_as_float(u[i] & 0xffff0000u);
    }
}

/* acc[r] += w[k] x[r][k] over this lane's share of one row of K weights (vectorised when aligned) */
template <int R>
__device__ __forceinline__ void lane_dots(const uint16_t *w, const float *x, int64_t ldx, int64_t K, int lane,
                                          float *acc) {
    const bool vec = (K % 8 == 0) && (((uintptr_t)w & 15) == 0);
    int64_t k0 = 0;
    if (vec) {
        for (int64_t k = (int64_t)lane * 8; k + 8 <= K; k += 32 * 8) {
            float f[8];
            widen8(*(const uint4 *)(w + k), f);
            for (int r = 0; r < R; r++)
                for (int i = 0; i < 8; i++) acc[r] += f[i] * x[r * ldx + k + i];
        }
        k0 = K; /* K % 8 == 0: nothing left */
    }
    for (int64_t k = k0 + lane; k < K; k += 32) {
        const float f = __uint_as_float((uint32_t)w[k] << 16);
        for (int r = 0; r < R; r++) acc[r] += f * x[r * ldx + k];
    }
}

template <int R>
__global__ void k_linear_bf16(const float *x, const uint16_t *w, float *y, int64_t M, int64_t O, int64_t K) {
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (int64_t o = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); o < O; o += (int64_t)gridDim.x * wpb) {
        for (int64_t r0 = 0; r0 < M; r0 += R) {
            float acc[R];
            for (int r = 0; r < R; r++) acc[r] = 0;
            const int64_t nr = M - r0 < R ? M - r0 : R;
            if (nr == R) lane_dots<R>(w + o * K, x + r0 * K, K, K, lane, acc);
            else /* the last, partial group: one row at a time */
                for (int64_t r = 0; r < nr; r++) lane_dots<1>(w + o * K, x + (r0 + r) * K, K, K, lane, &acc[r]);
            for (int r = 0; r < R; r++) acc[r] = sgt_warp_reduce(acc[r], sgt_sum_op());
            if (lane == 0)
                for (int64_t r = 0; r < nr; r++) y[(r0 + r) * O + o] = acc[r];
        }
    }
}

void sgt_cuda_linear_bf16(const sgt_opcall *call) {
    const sgt_tensor *x = call->src[0], *w = call->src[1];
    const int64_t K = w->shape[1], O = w->shape[0], M = K ? sgt_numel(x) / K : 0;
    float *y = (float *)sgt_ptr(call->dst[0]);
    if (M == 0 || O == 0) return;
    if (K == 0) {
        CUDA_CHECK(cudaMemsetAsync(y, 0, sizeof(float) * (size_t)(M * O), sgt_cuda_stream()));
        return;
    }
    const int threads = 256;
    k_linear_bf16<LB_ROWS><<<sgt_cuda_blocks(O * 32, threads), threads, 0, sgt_cuda_stream()>>>(
        (const float *)sgt_ptr(x), (const uint16_t *)sgt_ptr(w), y, M, O, K);
    CUDA_LAUNCH_CHECK("k_linear_bf16");
}

/* ---- block-sparse SwiGLU over block-major bf16 weights ---- */

/* block s = (token t, slot j): part[s, :] = m WdT_b^T (silu(Wg_b x) * (Wu_b x)), b = idx[s] */
__global__ void k_bs_bf16_slot(const float *x, const uint16_t *wb, const int32_t *idx, const float *m, float *part,
                               int64_t k, int64_t nb, int64_t bs, int64_t C) {
    extern __shared__ float sh[]; /* x row [C], then g, u [2 bs] */
    float *xs = sh, *gu = sh + C;
    const int64_t s = blockIdx.x, t = s / k;
    const int32_t b = idx[s];
    if (b < 0 || b >= nb) __trap(); /* a bad index is an error, never a silent read elsewhere */
    const uint16_t *blk = wb + (int64_t)b * 3 * bs * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) xs[c] = x[t * C + c];
    __syncthreads();
    const int lane = threadIdx.x & 31, wpb = blockDim.x >> 5;
    for (int64_t r = threadIdx.x >> 5; r < 2 * bs; r += wpb) { /* gate rows, then up rows */
        float a = 0;
        lane_dots<1>(blk + r * C, xs, C, C, lane, &a);
        a = sgt_warp_reduce(a, sgt_sum_op());
        if (lane == 0) gu[r] = a;
    }
    __syncthreads();
    const float ms = m ? m[s] : 1.0f;
    for (int64_t r = threadIdx.x; r < bs; r += blockDim.x) {
        const float g = gu[r];
        gu[r] = ms * (g / (1.0f + expf(-g))) * gu[bs + r]; /* h in place of g */
    }
    __syncthreads();
    const uint16_t *wdt = blk + 2 * bs * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        float acc = 0;
        for (int64_t r = 0; r < bs; r++) acc += gu[r] * __uint_as_float((uint32_t)wdt[r * C + c] << 16);
        part[s * C + c] = acc;
    }
}

/* y[t, c] = sum over j = 0 .. k-1 of part[t k + j, c], in slot order */
__global__ void k_bs_bf16_reduce(const float *part, float *y, int64_t N, int64_t k, int64_t C) {
    SGT_CUDA_FOR_EACH(i, N * C) {
        const int64_t t = i / C, c = i - t * C;
        float acc = part[(t * k) * C + c];
        for (int64_t j = 1; j < k; j++) acc += part[(t * k + j) * C + c];
        y[i] = acc;
    }
}

void sgt_cuda_bsparse_swiglu_bf16(const sgt_opcall *call) {
    const sgt_tensor *x = call->src[0], *wb = call->src[1], *idx = call->src[2];
    const float *m = call->nsrc > 3 ? (const float *)sgt_ptr(call->src[3]) : NULL;
    float *y = (float *)sgt_ptr(call->dst[0]), *part = (float *)sgt_ptr(call->dst[1]);
    const int64_t N = x->shape[0], C = x->shape[1], k = idx->shape[1], nb = wb->shape[0], bs = wb->shape[2];
    if (N == 0 || C == 0) return;
    if (k == 0) {
        CUDA_CHECK(cudaMemsetAsync(y, 0, sizeof(float) * (size_t)(N * C), sgt_cuda_stream()));
        return;
    }
    const size_t shmem = sizeof(float) * (size_t)(C + 2 * bs);
    SGT_CHECK(shmem <= 48 * 1024, "bsparse_swiglu_bf16: width %lld + 2 x block size %lld exceeds the kernel's shared memory",
              (long long)C, (long long)bs);
    SGT_CHECK(N * k <= INT32_MAX, "bsparse_swiglu_bf16: %lld slots exceed the grid", (long long)(N * k));
    k_bs_bf16_slot<<<(unsigned)(N * k), 256, shmem, sgt_cuda_stream()>>>(
        (const float *)sgt_ptr(x), (const uint16_t *)sgt_ptr(wb), (const int32_t *)sgt_ptr(idx), m, part, k, nb, bs, C);
    CUDA_LAUNCH_CHECK("k_bs_bf16_slot");
    k_bs_bf16_reduce<<<sgt_cuda_blocks(N * C), SGT_CUDA_THREADS, 0, sgt_cuda_stream()>>>(part, y, N, k, C);
    CUDA_LAUNCH_CHECK("k_bs_bf16_reduce");
}
