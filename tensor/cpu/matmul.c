/* matmul.c: CPU matmul through OpenBLAS (cblas_sgemm / cblas_dgemm), batched with broadcast
 * batch dims. Operands need a unit stride in one of their last two dims (ops.c makes them so);
 * the other stride becomes the leading dimension, so transposed views cost nothing.
 * When b has no batch (a Linear layer) and a's batch folds into rows, one GEMM does it all. */
#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <strings.h>

#include "cpu.h"
#include "../gemm_layout.h"


/* one output row (M = 1, batch-1 decoding): a GEMV, so BLAS does not pack the whole weight
 * matrix for a single row (packing doubled the bytes moved and dominated decode time) */
static void gemv_row(sgt_dtype dt, sgt_gemm_layout la, sgt_gemm_layout lb, int64_t N, int64_t K, const void *A, const void *B,
                     void *C) {
    /* y[N] = op(B)^T-view: y = Bs x when B is stored [N, K] (lb.trans), y = Bs^T x when stored [K, N] */
    const int incx = la.trans ? (int)la.ld : 1;
    const CBLAS_TRANSPOSE t = lb.trans ? CblasNoTrans : CblasTrans;
    const int rows = lb.trans ? (int)N : (int)K, cols = lb.trans ? (int)K : (int)N;
    if (dt == SGT_F32) cblas_sgemv(CblasRowMajor, t, rows, cols, 1.0f, B, (int)lb.ld, A, incx, 0.0f, C, 1);
    else cblas_dgemv(CblasRowMajor, t, rows, cols, 1.0, B, (int)lb.ld, A, incx, 0.0, C, 1);
}

static void gemm(sgt_dtype dt, sgt_gemm_layout la, sgt_gemm_layout lb, int64_t M, int64_t N, int64_t K, const void *A,
                 const void *B, void *C, int64_t ldc) {
    if (M == 0 || N == 0) return;
    if (M == 1) {
        gemv_row(dt, la, lb, N, K, A, B, C);
        return;
    }
    CBLAS_TRANSPOSE ta = la.trans ? CblasTrans : CblasNoTrans, tb = lb.trans ? CblasTrans : CblasNoTrans;
    if (dt == SGT_F32)
        cblas_sgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0f, A, (int)la.ld, B, (int)lb.ld, 0.0f, C,
                    (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, ta, tb, (int)M, (int)N, (int)K, 1.0, A, (int)la.ld, B, (int)lb.ld, 0.0, C,
                    (int)ldc);
}

void sgt_cpu_matmul(const sgt_opcall *call) {
    const sgt_tensor *a = call->src[0], *b = call->src[1];
    sgt_tensor *y = call->dst[0];
    const bool ta = call->ip[0], tb = call->ip[1];
    const int64_t M = y->shape[y->ndim - 2], N = y->shape[y->ndim - 1];
    const int64_t K = a->shape[a->ndim - (ta ? 2 : 1)];
    const size_t es = sgt_dtype_size(y->dtype);
    sgt_gemm_layout la = sgt_gemm_layout_of(a, ta), lb = sgt_gemm_layout_of(b, tb);
    const int nb = y->ndim - 2;
    int64_t batch = 1;
    for (int d = 0; d < nb; d++) batch *= y->shape[d];
    if (K == 0) {
        sgt_opcall fill = {.op = SGT_OP_FILL, .ndst = 1, .dst = {y}};
        sgt_cpu_fill(&fill);
        return;
    }

    /* b unbatched, a row-major with its batch dims folding into M rows: one GEMM */
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
            gemm(y->dtype, la, lb, batch * M, N, K, sgt_ptr(a), sgt_ptr(b), sgt_ptr(y), N);
            return;
        }
    }

    const int lead_a = nb - (a->ndim - 2), lead_b = nb - (b->ndim - 2);
    for (int64_t bi = 0; bi < batch; bi++) {
        int64_t oa = 0, ob = 0, r = bi;
        for (int d = nb - 1; d >= 0; d--) {
            int64_t i = r % y->shape[d];
            r /= y->shape[d];
            int ja = d - lead_a, jb = d - lead_b;
            if (ja >= 0 && a->shape[ja] != 1) oa += i * a->stride[ja];
            if (jb >= 0 && b->shape[jb] != 1) ob += i * b->stride[jb];
        }
        gemm(y->dtype, la, lb, M, N, K, (const char *)sgt_ptr(a) + oa * (int64_t)es,
             (const char *)sgt_ptr(b) + ob * (int64_t)es, (char *)sgt_ptr(y) + bi * M * N * (int64_t)es, N);
    }
}

void sgt_set_threads(int n) {
    if (n <= 0) return;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int sgt_get_threads(void) { return omp_get_max_threads(); }

const char *sgt_cpu_blas_note(void) {
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "prescott") || getenv("OPENBLAS_CORETYPE")) return NULL;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "OpenBLAS runs its generic Prescott kernels on this AVX-512 CPU (a core it does not know); "
               "export OPENBLAS_CORETYPE=SKYLAKEX for ~3x faster matrix products";
    if (__builtin_cpu_supports("avx2"))
        return "OpenBLAS runs its generic Prescott kernels on this AVX2 CPU (a core it does not know); "
               "export OPENBLAS_CORETYPE=HASWELL for faster matrix products";
#endif
    return NULL;
}
