/* matmul.cu: matmul through cuBLAS (cublasGemmEx / cublasGemmStridedBatchedEx): the counterpart
 * of cpu/matmul.c, with the same operand layouts and batch broadcasting.
 *
 * f32 runs on the tensor cores in TF32 (CUBLAS_COMPUTE_32F_FAST_TF32: inputs rounded to 10
 * mantissa bits, products accumulated in f32), so it is NOT the CPU's exact f32 GEMM: the parity
 * test compares it with a TF32-sized tolerance. f64 uses CUBLAS_COMPUTE_64F.
 *
 * cuBLAS is column-major: the row-major product C[M,N] = op(A) op(B) is computed as the
 * column-major C^T[N,M] = op(B)^T op(A)^T, i.e. with the operands swapped and each one's
 * transpose flag kept (a row-major matrix is its own transpose in column-major). */
#include <limits.h>

#include "cuda.h"
#include "../gemm_layout.h"


static int as_int(int64_t v, const char *what) {
    SGT_CHECK(v >= 0 && v <= INT_MAX, "matmul: %s = %lld does not fit cuBLAS's int", what, (long long)v);
    return (int)v;
}

/* batch GEMMs of row-major C[M,N] (ldc = N) = op(A) op(B); operand i of the batch at A + i*sa etc. */
static void gemm(sgt_dtype dt, sgt_gemm_layout la, sgt_gemm_layout lb, int64_t M, int64_t N, int64_t K, const void *A,
                 const void *B, void *C, int64_t batch, int64_t sa, int64_t sb, int64_t sc) {
    if (M == 0 || N == 0 || batch == 0) return;
    const cublasOperation_t opa = la.trans ? CUBLAS_OP_T : CUBLAS_OP_N, opb = lb.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m = as_int(N, "N"), n = as_int(M, "M"), k = as_int(K, "K");
    const int lda = as_int(la.ld, "lda"), ldb = as_int(lb.ld, "ldb"), ldc = m;
    const int nb = as_int(batch, "batch count");
    const bool f32 = dt == SGT_F32;
    const float a32 = 1.0f, b32 = 0.0f;
    const double a64 = 1.0, b64 = 0.0;
    const void *alpha = f32 ? (const void *)&a32 : (const void *)&a64, *beta = f32 ? (const void *)&b32 : (const void *)&b64;
    const cudaDataType_t t = f32 ? CUDA_R_32F : CUDA_R_64F;
    const cublasComputeType_t ct = f32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_64F;
    cublasHandle_t h = sgt_cuda_cublas();
    if (nb == 1)
        CUBLAS_CHECK(cublasGemmEx(h, opb, opa, m, n, k, alpha, B, t, ldb, A, t, lda, beta, C, t, ldc, ct,
                                  CUBLAS_GEMM_DEFAULT));
    else
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(h, opb, opa, m, n, k, alpha, B, t, ldb, (long long)sb, A, t, lda,
                                                (long long)sa, beta, C, t, ldc, (long long)sc, nb, ct,
                                                CUBLAS_GEMM_DEFAULT));
}

void sgt_cuda_matmul(const sgt_opcall *call) {
    const sgt_tensor *a = call->src[0], *b = call->src[1];
    sgt_tensor *y = call->dst[0];
    const bool ta = call->ip[0], tb = call->ip[1];
    const int64_t M = y->shape[y->ndim - 2], N = y->shape[y->ndim - 1];
    const int64_t K = a->shape[a->ndim - (ta ? 2 : 1)];
    const int64_t es = (int64_t)sgt_dtype_size(y->dtype);
    const sgt_gemm_layout la = sgt_gemm_layout_of(a, ta), lb = sgt_gemm_layout_of(b, tb);
    const int nb = y->ndim - 2;
    int64_t batch = 1;
    for (int d = 0; d < nb; d++) batch *= y->shape[d];
    if (!batch || !M || !N) return;
    if (K == 0) {
        sgt_opcall fill;
        memset(&fill, 0, sizeof fill);
        fill.op = SGT_OP_FILL;
        fill.ndst = 1;
        fill.dst[0] = y;
        sgt_cuda_fill(&fill);
        return;
    }
    const char *pa = (const char *)sgt_ptr(a), *pb = (const char *)sgt_ptr(b);
    char *py = (char *)sgt_ptr(y);

    /* b unbatched, a row-major with its batch dims folding into M rows: one GEMM (as the CPU) */
    bool b_flat = true;
    for (int d = 0; d < b->ndim - 2; d++) b_flat &= b->shape[d] == 1 || b->stride[d] == 0;
    if (nb > 0 && b_flat && !la.trans && a->ndim == y->ndim) {
        bool fold = true;
        int64_t expect = a->stride[a->ndim - 2] * a->shape[a->ndim - 2];
        for (int d = a->ndim - 3; d >= 0 && fold; d--) {
            /* a must really hold every batch (not broadcast it) and step through it evenly */
            fold = a->shape[d] == y->shape[d] && (a->shape[d] == 1 || a->stride[d] == expect);
            expect *= a->shape[d];
        }
        if (fold && a->shape[a->ndim - 2] > 1) {
            gemm(y->dtype, la, lb, batch * M, N, K, pa, pb, py, 1, 0, 0, 0);
            return;
        }
    }

    /* Per batch dim of y: each operand's element stride (0 where it broadcasts). The innermost run
     * of batch dims along which every operand advances by a constant stride is one strided-batched
     * call; the remaining outer dims are a host loop over such calls. */
    int64_t shape[SGT_MAX_DIMS], st[3][SGT_MAX_DIMS];
    int n = 0;
    const int lead_a = nb - (a->ndim - 2), lead_b = nb - (b->ndim - 2);
    int64_t ys = M * N;
    for (int d = nb - 1; d >= 0; d--) { /* y is contiguous: its batch strides follow from the shape */
        if (y->shape[d] != 1) {
            const int ja = d - lead_a, jb = d - lead_b;
            shape[n] = y->shape[d];
            st[0][n] = ja >= 0 && a->shape[ja] != 1 ? a->stride[ja] : 0;
            st[1][n] = jb >= 0 && b->shape[jb] != 1 ? b->stride[jb] : 0;
            st[2][n] = ys;
            n++;
        }
        ys *= y->shape[d];
    }
    /* shape/st are innermost first; find how many inner dims merge into one linear batch index */
    int inner = n ? 1 : 0;
    int64_t count = n ? shape[0] : 1;
    while (inner < n) {
        bool ok = true;
        for (int k = 0; k < 3; k++) ok &= st[k][inner] == st[k][0] * count;
        if (!ok) break;
        count *= shape[inner];
        inner++;
    }
    int64_t outer = 1;
    for (int d = inner; d < n; d++) outer *= shape[d];
    const int64_t sa = n ? st[0][0] : 0, sb = n ? st[1][0] : 0, sc = n ? st[2][0] : M * N;
    for (int64_t o = 0; o < outer; o++) {
        int64_t oa = 0, ob = 0, oy = 0, r = o;
        for (int d = inner; d < n; d++) {
            const int64_t i = r % shape[d];
            r /= shape[d];
            oa += i * st[0][d];
            ob += i * st[1][d];
            oy += i * st[2][d];
        }
        gemm(y->dtype, la, lb, M, N, K, pa + oa * es, pb + ob * es, py + oy * es, count, sa, sb, sc);
    }
}
