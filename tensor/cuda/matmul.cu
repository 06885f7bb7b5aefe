/* matmul.cu: matmul through cuBLAS (cublasGemmEx / cublasGemmStridedBatchedEx) for f32 and f64,
 * and through cuBLASLt (cublasLtMatmul) for bf16: the counterpart of cpu/matmul.c, with the same
 * operand layouts and batch broadcasting (one set of layout, folding and strided-batch logic for
 * every dtype: only the gemm() leaf differs).
 *
 * f32 runs on the tensor cores in TF32 (CUBLAS_COMPUTE_32F_FAST_TF32: inputs rounded to 10
 * mantissa bits, products accumulated in f32), so it is NOT the CPU's exact f32 GEMM: the parity
 * test compares it with a TF32-sized tolerance. f64 uses CUBLAS_COMPUTE_64F.
 *
 * bf16 (mixed precision): A, B and C are CUDA_R_16BF, the compute type CUBLAS_COMPUTE_32F with f32
 * alpha = 1 and beta = 0: bf16 products are exact in f32, they are accumulated in f32, and the
 * result is rounded to bf16 once, on store. This is the CPU's promoted result (f32 GEMM of the
 * same bf16 values, then one rounding) up to the summation order. Split-K algorithms that add
 * their partial sums in the output type (bf16) are excluded through the reduction-scheme mask:
 * only a reduction in the compute type (f32) is allowed. cuBLASLt needs a little host state, kept
 * here: one handle (created on first use), one 32 MiB workspace (allocated once, on the first
 * bf16 matmul: run a step once before recording it in a CUDA graph), and a small cache from the
 * problem (layouts, sizes, batch strides, dtype, pointer alignments) to its descriptors and the
 * algorithm the heuristic chose, so a training step does not call cublasLtMatmulAlgoGetHeuristic
 * for shapes it has seen. Where the heuristic has no algorithm, cublasGemmEx does the bf16 GEMM
 * (with reductions in the compute type too).
 *
 * cuBLASLt epilogues: none are used. CUBLASLT_EPILOGUE_BIAS (and its backward BGRADB) would fuse
 * a Linear's bias add (the router's Linear is the only one with a bias); GELU/RELU(_AUX) would
 * fuse activations this model does not use after a GEMM. The model's Linears have no bias, so
 * there is nothing to fuse in the hot path.
 *
 * cuBLAS is column-major: the row-major product C[M,N] = op(A) op(B) is computed as the
 * column-major C^T[N,M] = op(B)^T op(A)^T, i.e. with the operands swapped and each one's
 * transpose flag kept (a row-major matrix is its own transpose in column-major). */
#include <cublasLt.h>
#include <limits.h>
#include <string.h>

#include "cuda.h"
#include "../gemm_layout.h"

#define CUBLASLT_CHECK(call)                                                            \
    do {                                                                                \
        cublasStatus_t sgt_s_ = (call);                                                 \
        if (sgt_s_ != CUBLAS_STATUS_SUCCESS) sgt_cublas_fail(sgt_s_, #call, __FILE__, __LINE__); \
    } while (0)

static int as_int(int64_t v, const char *what) {
    SGT_CHECK(v >= 0 && v <= INT_MAX, "matmul: %s = %lld does not fit cuBLAS's int", what, (long long)v);
    return (int)v;
}

/* ---- cuBLASLt (bf16) ---- */

#define LT_WORKSPACE_BYTES ((size_t)32 << 20)
#define LT_CACHE_SIZE 128

/* One GEMM problem as cuBLASLt sees it (column-major, operands already swapped). Zeroed before it
 * is filled, so that it compares with memcmp. */
typedef struct {
    int32_t dtype, opa, opb;
    int32_t m, n, k, lda, ldb, ldc, batch;
    int64_t sa, sb, sc;          /* batch strides in elements, of the cuBLASLt A (ours B), B and C */
    uint32_t align_a, align_b, align_c; /* bytes, a power of two <= 256 */
} lt_key;

typedef struct {
    lt_key key;
    bool used, have_algo; /* have_algo false: the heuristic found nothing, use cublasGemmEx */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} lt_plan;

static struct {
    cublasLtHandle_t handle;
    void *workspace;
    lt_plan plan[LT_CACHE_SIZE];
    int next; /* the slot to evict when the cache is full (round robin) */
} lt;

/* the largest power of two (<= 256) dividing the address of every matrix of the batch */
static uint32_t lt_alignment(const void *p, int64_t stride_bytes, int batch) {
    uint64_t bits = (uint64_t)(uintptr_t)p | 256u;
    if (batch > 1) bits |= (uint64_t)stride_bytes;
    return (uint32_t)(bits & (~bits + 1));
}

static cublasLtMatrixLayout_t lt_layout(cudaDataType_t t, int rows, int cols, int ld, int batch, int64_t stride) {
    cublasLtMatrixLayout_t l;
    CUBLASLT_CHECK(cublasLtMatrixLayoutCreate(&l, t, (uint64_t)rows, (uint64_t)cols, (int64_t)ld));
    if (batch > 1) {
        const int32_t nb = batch;
        CUBLASLT_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &nb, sizeof nb));
        CUBLASLT_CHECK(
            cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
    return l;
}

static void lt_release(lt_plan *p) {
    if (!p->used) return;
    CUBLASLT_CHECK(cublasLtMatrixLayoutDestroy(p->la));
    CUBLASLT_CHECK(cublasLtMatrixLayoutDestroy(p->lb));
    CUBLASLT_CHECK(cublasLtMatrixLayoutDestroy(p->lc));
    CUBLASLT_CHECK(cublasLtMatmulDescDestroy(p->op));
    p->used = false;
}

/* the cached plan of problem k, made (descriptors, heuristic) on a miss */
static const lt_plan *lt_plan_for(const lt_key *k) {
    for (int i = 0; i < LT_CACHE_SIZE; i++)
        if (lt.plan[i].used && !memcmp(&lt.plan[i].key, k, sizeof *k)) return &lt.plan[i];
    if (!lt.handle) {
        SGT_CHECK(!sgt_cuda_graph_recording(), "matmul: the first bf16 matmul allocates cuBLASLt's workspace, so it "
                                               "cannot run inside a graph recording: run the step once before recording it");
        (void)sgt_cuda_stream(); /* the backend (device 0) is up */
        CUBLASLT_CHECK(cublasLtCreate(&lt.handle));
        lt.workspace = sgt_cuda_malloc(LT_WORKSPACE_BYTES);
    }
    lt_plan *p = &lt.plan[lt.next];
    lt.next = (lt.next + 1) % LT_CACHE_SIZE;
    lt_release(p);
    memset(p, 0, sizeof *p);
    p->key = *k;
    const cudaDataType_t t = CUDA_R_16BF;
    CUBLASLT_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const int32_t opa = k->opa, opb = k->opb;
    CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    CUBLASLT_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    /* stored shapes: op N keeps rows x cols = m x k (A) and k x n (B); op T stores the transpose */
    p->la = opa == CUBLAS_OP_N ? lt_layout(t, k->m, k->k, k->lda, k->batch, k->sa)
                               : lt_layout(t, k->k, k->m, k->lda, k->batch, k->sa);
    p->lb = opb == CUBLAS_OP_N ? lt_layout(t, k->k, k->n, k->ldb, k->batch, k->sb)
                               : lt_layout(t, k->n, k->k, k->ldb, k->batch, k->sb);
    p->lc = lt_layout(t, k->m, k->n, k->ldc, k->batch, k->sc);
    p->used = true;

    cublasLtMatmulPreference_t pref;
    CUBLASLT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const uint64_t ws = LT_WORKSPACE_BYTES;
    const uint32_t reduction = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE; /* split-K partial sums in f32 only */
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &reduction,
                                                        sizeof reduction));
    /* views need not be 256-byte aligned (the default the heuristic assumes) */
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &k->align_a,
                                                        sizeof k->align_a));
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &k->align_b,
                                                        sizeof k->align_b));
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &k->align_c,
                                                        sizeof k->align_c));
    CUBLASLT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &k->align_c,
                                                        sizeof k->align_c));
    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    int found = 0;
    const cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(lt.handle, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &found);
    CUBLASLT_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (st != CUBLAS_STATUS_NOT_SUPPORTED) CUBLASLT_CHECK(st); /* NOT_SUPPORTED: no algorithm for this problem */
    p->have_algo = st == CUBLAS_STATUS_SUCCESS && found > 0 && res.state == CUBLAS_STATUS_SUCCESS;
    if (p->have_algo) p->algo = res.algo;
    return p;
}

/* the bf16 GEMM where cuBLASLt has no algorithm: cublasGemmEx, with split-K reductions kept in f32 */
static void gemm_ex_bf16(const lt_key *k, const void *A, const void *B, void *C) {
    cublasHandle_t h = sgt_cuda_cublas();
    cublasMath_t mode;
    CUBLAS_CHECK(cublasGetMathMode(h, &mode));
    CUBLAS_CHECK(cublasSetMathMode(h, (cublasMath_t)(mode | CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION)));
    const float alpha = 1.0f, beta = 0.0f;
    const cublasOperation_t opa = (cublasOperation_t)k->opa, opb = (cublasOperation_t)k->opb;
    const cudaDataType_t t = CUDA_R_16BF;
    cublasStatus_t st;
    if (k->batch == 1)
        st = cublasGemmEx(h, opa, opb, k->m, k->n, k->k, &alpha, A, t, k->lda, B, t, k->ldb, &beta, C, t, k->ldc,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    else
        st = cublasGemmStridedBatchedEx(h, opa, opb, k->m, k->n, k->k, &alpha, A, t, k->lda, (long long)k->sa, B, t,
                                        k->ldb, (long long)k->sb, &beta, C, t, k->ldc, (long long)k->sc, k->batch,
                                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    CUBLAS_CHECK(cublasSetMathMode(h, mode));
    CUBLAS_CHECK(st);
}

/* column-major C[m,n] = op(A) op(B) in bf16 with f32 accumulation (A and B are the caller's
 * swapped operands, see the file comment); batch matrices at A + i*sa etc. */
static void gemm_lt_bf16(cublasOperation_t opa, cublasOperation_t opb, int m, int n, int k, const void *A, int lda,
                         int64_t sa, const void *B, int ldb, int64_t sb, void *C, int ldc, int64_t sc, int batch) {
    lt_key key;
    memset(&key, 0, sizeof key);
    key.dtype = SGT_BF16;
    key.opa = opa;
    key.opb = opb;
    key.m = m, key.n = n, key.k = k;
    key.lda = lda, key.ldb = ldb, key.ldc = ldc;
    key.batch = batch;
    if (batch > 1) key.sa = sa, key.sb = sb, key.sc = sc;
    key.align_a = lt_alignment(A, sa * 2, batch);
    key.align_b = lt_alignment(B, sb * 2, batch);
    key.align_c = lt_alignment(C, sc * 2, batch);
    const lt_plan *p = lt_plan_for(&key);
    if (!p->have_algo) {
        gemm_ex_bf16(&key, A, B, C);
        return;
    }
    const float alpha = 1.0f, beta = 0.0f;
    CUBLASLT_CHECK(cublasLtMatmul(lt.handle, p->op, &alpha, A, p->la, B, p->lb, &beta, C, p->lc, C, p->lc, &p->algo,
                                  lt.workspace, LT_WORKSPACE_BYTES, sgt_cuda_stream()));
}

/* ---- the GEMM leaf ---- */

/* batch GEMMs of row-major C[M,N] (ldc = N) = op(A) op(B); operand i of the batch at A + i*sa etc. */
static void gemm(sgt_dtype dt, sgt_gemm_layout la, sgt_gemm_layout lb, int64_t M, int64_t N, int64_t K, const void *A,
                 const void *B, void *C, int64_t batch, int64_t sa, int64_t sb, int64_t sc) {
    if (M == 0 || N == 0 || batch == 0) return;
    const cublasOperation_t opa = la.trans ? CUBLAS_OP_T : CUBLAS_OP_N, opb = lb.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
    const int m = as_int(N, "N"), n = as_int(M, "M"), k = as_int(K, "K");
    const int lda = as_int(la.ld, "lda"), ldb = as_int(lb.ld, "ldb"), ldc = m;
    const int nb = as_int(batch, "batch count");
    if (dt == SGT_BF16) {
        gemm_lt_bf16(opb, opa, m, n, k, B, ldb, sb, A, lda, sa, C, ldc, sc, nb);
        return;
    }
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
    SGT_CHECK(a->dtype == y->dtype && b->dtype == y->dtype, "matmul: %s @ %s -> %s: the CUDA kernel needs one dtype",
              sgt_dtype_name(a->dtype), sgt_dtype_name(b->dtype), sgt_dtype_name(y->dtype));
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
