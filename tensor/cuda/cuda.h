/* cuda.h: shared machinery of the CUDA kernels (.cu files only): the check macros, the stream and
 * cuBLAS handle, launch checking, scratch buffers, grid sizing, the typed math the kernels share
 * with the CPU's libm calls, and the kernel prototypes that backend.cu binds into the op table.
 *
 * Conventions of every kernel here:
 *   - one stream (sgt_cuda_stream) for everything, so work is ordered and arena memory can be
 *     reused as soon as the host moves on;
 *   - grid-stride loops with 64-bit indices, so any size runs with a capped grid;
 *   - every launch is followed by CUDA_LAUNCH_CHECK; SGT_CUDA_SYNC=1 makes it synchronise too;
 *   - reductions are deterministic: fixed trees over fixed block sizes, no float atomics;
 *   - compiled with --fmad=false (the CPU builds with -ffp-contract=off), so + - * / and sqrt
 *     round exactly as on the CPU and only libm-style functions (exp, log, tanh, pow) differ. */
#ifndef SGT_CUDA_H
#define SGT_CUDA_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "../ops.h"
}
#include "../kernel_list.h"
#include "backend.h"

/* Fails through SGT_FAIL-style reporting with the call, the CUDA error and file:line. */
void sgt_cuda_fail(cudaError_t e, const char *what, const char *file, int line);
void sgt_cublas_fail(cublasStatus_t s, const char *what, const char *file, int line);

#define CUDA_CHECK(call)                                                         \
    do {                                                                         \
        cudaError_t sgt_e_ = (call);                                             \
        if (sgt_e_ != cudaSuccess) sgt_cuda_fail(sgt_e_, #call, __FILE__, __LINE__); \
    } while (0)

#define CUBLAS_CHECK(call)                                                              \
    do {                                                                                \
        cublasStatus_t sgt_s_ = (call);                                                 \
        if (sgt_s_ != CUBLAS_STATUS_SUCCESS) sgt_cublas_fail(sgt_s_, #call, __FILE__, __LINE__); \
    } while (0)

/* After every kernel launch: a bad launch fails here, naming the kernel; with SGT_CUDA_SYNC=1 the
 * stream is also synchronised, so a fault inside the kernel is reported at its launch. */
void sgt_cuda_launch_check(const char *kernel, const char *file, int line);
#define CUDA_LAUNCH_CHECK(kernel) sgt_cuda_launch_check(kernel, __FILE__, __LINE__)

cudaStream_t sgt_cuda_stream(void);
cublasHandle_t sgt_cuda_cublas(void);

/* Grow-only scratch buffers, one on the device and one on the host, for kernels that need
 * temporary space (index tables, per-row partial sums). A buffer grows (and only then allocates)
 * when asked for more than it has, so steady-state steps allocate nothing. One user at a time:
 * a kernel wrapper may hold the pointer only until it returns. */
void *sgt_cuda_scratch(size_t nbytes);
void *sgt_cuda_host_scratch(size_t nbytes);

/* The i32 indices of a contiguous device tensor, copied into host[numel] and checked against
 * [0, limit) there with the CPU kernels' message, so a bad id is a clear error before any kernel
 * reads it. Entries equal to `ignore` are skipped when use_ignore; returns how many were not. */
int64_t sgt_cuda_fetch_indices(const char *op, const sgt_tensor *idx, int64_t limit, bool use_ignore,
                               int32_t ignore, int32_t *host);

/* Threads per block of the grid-stride kernels, and how many blocks cover n items (capped; the
 * loops stride over the rest). Never 0, so callers only need to skip empty launches. */
#define SGT_CUDA_THREADS 256
static inline unsigned sgt_cuda_blocks(int64_t n, int threads = SGT_CUDA_THREADS) {
    int64_t b = (n + threads - 1) / threads;
    if (b > 65536) b = 65536;
    return b < 1 ? 1u : (unsigned)b;
}
/* the grid-stride loop: i runs over [0, n) across the whole grid */
#define SGT_CUDA_FOR_EACH(i, n) \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)
/* Threads for one block per row of n items: a multiple of the warp size, at most 256. */
static inline int sgt_cuda_row_threads(int64_t n) {
    int t = 32;
    while (t < 256 && t < n) t *= 2;
    return t;
}
/* Blocks for one-block-per-row kernels (they loop over rows beyond the grid). */
static inline unsigned sgt_cuda_row_blocks(int64_t rows) {
    return rows > 65536 ? 65536u : rows < 1 ? 1u : (unsigned)rows;
}

/* CUDA's libm, float for f32 and double for f64, where the CPU kernels use glibc's (and their own
 * vectorised f32 exp and tanh, cpu/vmath.h): both are accurate to a few ulp, not bit-identical. */
__device__ __forceinline__ float sgt_exp(float x) { return expf(x); }
__device__ __forceinline__ double sgt_exp(double x) { return exp(x); }
__device__ __forceinline__ float sgt_log(float x) { return logf(x); }
__device__ __forceinline__ double sgt_log(double x) { return log(x); }
__device__ __forceinline__ float sgt_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double sgt_sqrt(double x) { return sqrt(x); }
__device__ __forceinline__ float sgt_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double sgt_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float sgt_erfc(float x) { return erfcf(x); }
__device__ __forceinline__ double sgt_erfc(double x) { return erfc(x); }
__device__ __forceinline__ float sgt_sin(float x) { return sinf(x); }
__device__ __forceinline__ double sgt_sin(double x) { return sin(x); }
__device__ __forceinline__ float sgt_cos(float x) { return cosf(x); }
__device__ __forceinline__ double sgt_cos(double x) { return cos(x); }
__device__ __forceinline__ float sgt_pow(float x, float y) { return powf(x, y); }
__device__ __forceinline__ double sgt_pow(double x, double y) { return pow(x, y); }

/* The kernels, one per op family (kernel_list.h); backend.cu binds them to ops from op_list.h. */
#define SGT_CUDA_DECL_KERNEL(k) void sgt_cuda_##k(const sgt_opcall *call);
SGT_KERNEL_FAMILIES(SGT_CUDA_DECL_KERNEL)
#undef SGT_CUDA_DECL_KERNEL

#endif
