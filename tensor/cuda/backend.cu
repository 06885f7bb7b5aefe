/* backend.cu: the CUDA device: initialisation (device 0, one stream, one cuBLAS handle),
 * availability, device memory for the arenas, copies, the scratch buffers, error reporting and
 * the backend's row of the op table.
 *
 * Memory: arenas take their chunks from sgt_cuda_malloc; an arena grows on the first (measuring)
 * step and is one reused chunk after that, so the step loop calls no cudaMalloc (the scratch
 * buffers likewise only grow). Everything is queued on one non-blocking stream; host copies go
 * through that stream and wait for it, so they see every kernel queued before them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

extern "C" {
#include "../custom.h"
}

#define CUBLAS_WORKSPACE_BYTES ((size_t)32 << 20) /* NVIDIA's recommendation for Hopper */

sgt_kernel sgt_cuda_kernel_table[SGT_NOPS];
bool sgt_cuda_bf16_table[SGT_NOPS];

static struct {
    bool counted, ready, sync_each_launch;
    int ndevice;
    char count_error[160];        /* why there is no device, for the error message */
    cudaStream_t stream;
    cublasHandle_t cublas;
    void *scratch, *host_scratch, *cublas_ws;
    size_t scratch_size, host_scratch_size;
} g;

/* ---- errors ---- */

void sgt_cuda_fail(cudaError_t e, const char *what, const char *file, int line) {
    sgt_fail_at(file, line, "CUDA error %s (%s) from %s%s", cudaGetErrorName(e), cudaGetErrorString(e), what,
                g.sync_each_launch ? "" : " (errors of earlier kernels surface at the next synchronising call: "
                                          "rerun with SGT_CUDA_SYNC=1 to report them at their launch)");
}

void sgt_cublas_fail(cublasStatus_t s, const char *what, const char *file, int line) {
    sgt_fail_at(file, line, "cuBLAS error %s (%s) from %s", cublasGetStatusName(s), cublasGetStatusString(s), what);
}

void sgt_cuda_launch_check(const char *kernel, const char *file, int line) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        sgt_fail_at(file, line, "CUDA kernel %s failed to launch: %s (%s)", kernel, cudaGetErrorName(e),
                    cudaGetErrorString(e));
    if (g.sync_each_launch && !sgt_cuda_graph_recording()) { /* a recording cannot wait for the device */
        e = cudaStreamSynchronize(g.stream);
        if (e != cudaSuccess)
            sgt_fail_at(file, line, "CUDA kernel %s failed: %s (%s) (SGT_CUDA_SYNC=1)", kernel, cudaGetErrorName(e),
                        cudaGetErrorString(e));
    }
}

/* ---- availability and initialisation ---- */

extern "C" int sgt_cuda_device_count(void) {
    if (!g.counted) {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess) {
            /* no driver, no device, or a driver too old: not an error, just no CUDA */
            snprintf(g.count_error, sizeof g.count_error, "cudaGetDeviceCount: %s", cudaGetErrorString(e));
            (void)cudaGetLastError();
            n = 0;
        } else if (n == 0) {
            snprintf(g.count_error, sizeof g.count_error, "cudaGetDeviceCount found no device");
        }
        g.ndevice = n;
        g.counted = true;
    }
    return g.ndevice;
}

static void init(void) {
    if (g.ready) return;
    SGT_CHECK(sgt_cuda_device_count() > 0, "CUDA: no usable device (%s); use --device cpu or auto", g.count_error);
    const char *sync = getenv("SGT_CUDA_SYNC");
    g.sync_each_launch = sync && *sync && strcmp(sync, "0") != 0;
    CUDA_CHECK(cudaSetDevice(0));
    CUDA_CHECK(cudaStreamCreateWithFlags(&g.stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&g.cublas));
    CUBLAS_CHECK(cublasSetStream(g.cublas, g.stream));
    /* a fixed cuBLAS workspace, so that cuBLAS allocates nothing by itself: required inside CUDA
     * graph recordings (cuda/graph.cu), and no allocation in the step loop either way */
    CUDA_CHECK(cudaMalloc(&g.cublas_ws, CUBLAS_WORKSPACE_BYTES));
    CUBLAS_CHECK(cublasSetWorkspace(g.cublas, g.cublas_ws, CUBLAS_WORKSPACE_BYTES));
    sgt_cuda_register_kernels();
    sgt_cuda_kernels = sgt_cuda_kernel_table;
    sgt_cuda_bf16_native = sgt_cuda_bf16_table;
    g.ready = true;
}

cudaStream_t sgt_cuda_stream(void) {
    init();
    return g.stream;
}

extern "C" void *sgt_cuda_stream_handle(void) { return (void *)sgt_cuda_stream(); }

/* the custom family (tensor/custom.h): the op's own CUDA kernel, on the backend's stream */
void sgt_cuda_custom(const sgt_opcall *call) {
    const sgt_custom_op *op = call->custom;
    SGT_CHECK(op->cuda, "custom op '%s' has no CUDA kernel", op->name);
    op->cuda(call->nsrc, call->src, call->ndst, call->dst, call->custom_user);
}

cublasHandle_t sgt_cuda_cublas(void) {
    init();
    return g.cublas;
}

/* ---- memory ---- */

extern "C" void *sgt_cuda_malloc(size_t nbytes) {
    init();
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, nbytes ? nbytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
        SGT_FAIL("CUDA out of memory: %zu bytes requested (%.1f MiB), %zu bytes free (%.1f MiB) of %zu on device 0",
                 nbytes, nbytes / 1048576.0, free_b, free_b / 1048576.0, total_b);
    }
    if (e != cudaSuccess) sgt_cuda_fail(e, "cudaMalloc", __FILE__, __LINE__);
    return p;
}

extern "C" void sgt_cuda_free(void *p) {
    if (!p || !g.ready) return;
    /* queued kernels may still use the bytes: let them finish first */
    CUDA_CHECK(cudaStreamSynchronize(g.stream));
    CUDA_CHECK(cudaFree(p));
}

extern "C" void sgt_cuda_memcpy(void *dst, const void *src, size_t n, sgt_cuda_copy_kind kind) {
    init();
    if (!n) return;
    const cudaMemcpyKind k = kind == SGT_CUDA_H2D   ? cudaMemcpyHostToDevice
                             : kind == SGT_CUDA_D2H ? cudaMemcpyDeviceToHost
                                                    : cudaMemcpyDeviceToDevice;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n, k, g.stream));
    CUDA_CHECK(cudaStreamSynchronize(g.stream));
}

extern "C" void sgt_cuda_synchronize(void) {
    if (g.ready) CUDA_CHECK(cudaStreamSynchronize(g.stream));
}

void *sgt_cuda_scratch(size_t nbytes) {
    if (nbytes > g.scratch_size) {
        size_t size = nbytes > 2 * g.scratch_size ? nbytes : 2 * g.scratch_size;
        if (size < ((size_t)1 << 20)) size = (size_t)1 << 20;
        sgt_cuda_free(g.scratch); /* waits for the kernels that used it */
        g.scratch = NULL;
        g.scratch_size = 0;
        g.scratch = sgt_cuda_malloc(size);
        g.scratch_size = size;
    }
    return g.scratch;
}

void *sgt_cuda_host_scratch(size_t nbytes) {
    if (nbytes > g.host_scratch_size) {
        size_t size = nbytes > 2 * g.host_scratch_size ? nbytes : 2 * g.host_scratch_size;
        if (size < ((size_t)1 << 16)) size = (size_t)1 << 16;
        free(g.host_scratch);
        g.host_scratch = malloc(size);
        SGT_CHECK(g.host_scratch, "CUDA backend: out of host memory for %zu bytes of scratch", size);
        g.host_scratch_size = size;
    }
    return g.host_scratch;
}

/* ---- the op table (the same bindings as cpu/cpu_backend.c) ---- */

extern "C" void sgt_cuda_register_kernels(void) {
    /* from op_list.h's family column: op e runs sgt_cuda_<family>; views run no kernel */
    sgt_kernel *t = sgt_cuda_kernel_table;
#define sgt_cuda_view NULL
#define SGT_OP(e, n, v, f) t[SGT_OP_##e] = sgt_cuda_##f;
#include "../op_list.h"
#undef SGT_OP
#undef sgt_cuda_view
    /* ops whose kernels take bf16 themselves (the mixed-precision hot path); the others meet bf16
     * through the dispatch point's f32 promotion */
    bool *n = sgt_cuda_bf16_table;
    const sgt_op native[] = {SGT_OP_COPY, SGT_OP_CAST, SGT_OP_FILL, SGT_OP_ADD, SGT_OP_SUB, SGT_OP_MUL, SGT_OP_DIV,
                             SGT_OP_ADD_SCALAR, SGT_OP_MUL_SCALAR, SGT_OP_POW_SCALAR, SGT_OP_NEG, SGT_OP_EXP,
                             SGT_OP_LOG, SGT_OP_SQRT, SGT_OP_RSQRT, SGT_OP_TANH, SGT_OP_SIGMOID, SGT_OP_SILU,
                             SGT_OP_GELU, SGT_OP_GELU_ERF, SGT_OP_SIN, SGT_OP_COS, SGT_OP_RELU,
                             SGT_OP_UNARY_BWD, SGT_OP_CMP, SGT_OP_WHERE,
                             SGT_OP_MASKED_FILL, SGT_OP_MATMUL, SGT_OP_CROSS_ENTROPY, SGT_OP_CROSS_ENTROPY_BWD,
                             SGT_OP_RMSNORM, SGT_OP_RMSNORM_BWD, SGT_OP_ATTENTION, SGT_OP_ATTENTION_BWD,
                             SGT_OP_SWIGLU, SGT_OP_SWIGLU_BWD, SGT_OP_LINEAR_BF16, SGT_OP_BSPARSE_SWIGLU_BF16,
                             SGT_OP_BSPARSE_SWIGLU, SGT_OP_BSPARSE_SWIGLU_BWD};
    for (size_t i = 0; i < sizeof native / sizeof *native; i++) n[native[i]] = true;
    n[SGT_OP_INDEX_COPY_ROWS] = true; /* moves bytes of any width */
}
