/* bsparse.c: CPU kernels of the block-sparse SwiGLU that skips unselected blocks (see ops.h).
 * Few tokens (decode): for each token, a BLAS GEMV per selected block for gate and up, then the
 * selected down columns (block-contiguous rows of the transposed copy when there is one); threads split the blocks, then the output rows, so
 * exactly the selected weights are read once. Many tokens (prefill, training): tokens are grouped
 * by block, gathered, multiplied by the block's weights with one GEMM each, and scattered back;
 * blocks are visited in order, so the sums do not depend on the thread count. */
#include <cblas.h>
#include <math.h>
#include <string.h>

#include "cpu.h"
#include "vmath.h"

#define DECODE_MAX_TOKENS 4
#define DECODE_MAX_HIDDEN 8192 /* k * bs held on the stack */

/* token lists per block: order[off[b] .. off[b+1]) are the (t * k + j) slots that chose block b */
static void group_by_block(const int32_t *idx, int64_t N, int64_t k, int64_t nb, int32_t *off, int32_t *order) {
    for (int64_t b = 0; b <= nb; b++) off[b] = 0;
    for (int64_t s = 0; s < N * k; s++) {
        SGT_CHECK(idx[s] >= 0 && idx[s] < nb, "bsparse_swiglu: block index %d at slot %lld is outside [0, %lld)",
                  idx[s], (long long)s, (long long)nb);
        for (int64_t j = s - s % k; j < s; j++) /* a token names each block at most once */
            SGT_CHECK(idx[j] != idx[s], "bsparse_swiglu: token %lld selects block %d twice", (long long)(s / k),
                      idx[s]);
        off[idx[s] + 1]++;
    }
    for (int64_t b = 0; b < nb; b++) off[b + 1] += off[b];
    int32_t *fill = order + N * k; /* scratch cursor array after order */
    for (int64_t b = 0; b < nb; b++) fill[b] = off[b];
    for (int64_t s = 0; s < N * k; s++) order[fill[idx[s]]++] = (int32_t)s;
}

#define BSPARSE(T, GEMM, GEMV, EXP)                                                                            \
    static inline T silu_##T(T g) { return g / ((T)1 + EXP(-g)); }                                      \
    static inline T dsilu_##T(T g) {                                                                     \
        T s = (T)1 / ((T)1 + EXP(-g));                                                                   \
        return s * ((T)1 + g * ((T)1 - s));                                                              \
    }                                                                                                    \
    static void gemm_##T(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T *A, int64_t lda,     \
                         const T *B, int64_t ldb, T beta, T *Cm, int64_t ldc) {                          \
        if (M == 0 || N == 0) return;                                                                    \
        GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, \
             (int)K, (T)1, A, (int)lda, B, (int)ldb, beta, Cm, (int)ldc);                                \
    }                                                                                                    \
    static T dot_##T(const T *a, const T *b, int64_t n) {                                                \
        T s[8] = {0};                                                                                    \
        int64_t i = 0;                                                                                   \
        for (; i + 8 <= n; i += 8)                                                                       \
            for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];                                     \
        for (; i < n; i++) s[0] += a[i] * b[i];                                                          \
        return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));                        \
    }                                                                                                    \
    /* one token: y = sum_j m_j Wd[:, B_j] (silu(g_j) u_j), reading only the selected weights; with  \
     * wdt (Wd transposed, [IW, C]) the down rows of a block are contiguous and each thread streams   \
     * its column range of them; else each output row gathers k runs of bs floats */                \
    static void decode_##T(const T *x, const T *wg, const T *wu, const T *wd, const T *wdt, const int32_t *idx, \
                           const T *m, int64_t C, int64_t IW, int64_t k, int64_t bs, T *y, T *G, T *U) {  \
        T h[DECODE_MAX_HIDDEN];                                                                          \
        /* gate and up: a BLAS GEMV per selected block (inside the parallel loop BLAS runs on one   \
         * thread), so each block's bs x C rows stream at BLAS speed */                                 \
        _Pragma("omp parallel for schedule(static) if (k * bs * C >= SGT_OMP_MIN)")                     \
        for (int64_t j = 0; j < k; j++) {                                                                \
            const int64_t b = idx[j];                                                                    \
            GEMV(CblasRowMajor, CblasNoTrans, (int)bs, (int)C, (T)1, wg + b * bs * C, (int)C, x, 1, (T)0, G + j * bs, 1); \
            GEMV(CblasRowMajor, CblasNoTrans, (int)bs, (int)C, (T)1, wu + b * bs * C, (int)C, x, 1, (T)0, U + j * bs, 1); \
            for (int64_t r = 0; r < bs; r++) h[j * bs + r] = m[j] * silu_##T(G[j * bs + r]) * U[j * bs + r]; \
        }                                                                                                \
        if (wdt) {                                                                                       \
            const int64_t CH = 256, nch = (C + CH - 1) / CH;                                             \
            _Pragma("omp parallel for schedule(static) if (k * bs * C >= SGT_OMP_MIN)")                 \
            for (int64_t ch = 0; ch < nch; ch++) {                                                       \
                const int64_t c0 = ch * CH, nc = C - c0 < CH ? C - c0 : CH;                              \
                for (int64_t j = 0; j < k; j++) /* y[c0:] += WdT[B_j rows, c0:]^T h_j */                 \
                    GEMV(CblasRowMajor, CblasTrans, (int)bs, (int)nc, (T)1, wdt + idx[j] * bs * C + c0, (int)C, \
                         h + j * bs, 1, j ? (T)1 : (T)0, y + c0, 1);                                     \
            }                                                                                            \
            return;                                                                                      \
        }                                                                                                \
        _Pragma("omp parallel for schedule(static) if (k * bs * C >= SGT_OMP_MIN)")                     \
        for (int64_t c = 0; c < C; c++) {                                                                \
            T acc = 0;                                                                                   \
            for (int64_t j = 0; j < k; j++) acc += dot_##T(wd + c * IW + idx[j] * bs, h + j * bs, bs);    \
            y[c] = acc;                                                                                  \
        }                                                                                                \
    }                                                                                                    \
    static void fwd_##T(const sgt_opcall *call) {                                                        \
        const sgt_tensor *xt = call->src[0];                                                             \
        const T *x = sgt_ptr(xt), *wg = sgt_ptr(call->src[1]), *wu = sgt_ptr(call->src[2]),              \
                *wd = sgt_ptr(call->src[3]), *m = sgt_ptr(call->src[5]);                                 \
        const int32_t *idx = sgt_ptr(call->src[4]);                                                      \
        T *y = sgt_ptr(call->dst[0]), *G = sgt_ptr(call->dst[1]), *U = sgt_ptr(call->dst[2]);             \
        T *ws = sgt_ptr(call->dst[3]);                                                                   \
        const int64_t N = xt->shape[0], C = xt->shape[1], IW = call->src[1]->shape[0], k = call->src[4]->shape[1]; \
        const int64_t bs = call->ip[0], nb = IW / bs;                                                     \
        if (N <= DECODE_MAX_TOKENS && k * bs <= DECODE_MAX_HIDDEN) {                                     \
            for (int64_t s = 0; s < N * k; s++)                                                          \
                SGT_CHECK(idx[s] >= 0 && idx[s] < nb, "bsparse_swiglu: block index %d is outside [0, %lld)", \
                          idx[s], (long long)nb);                                                        \
            for (int64_t t = 0; t < N; t++)                                                              \
                decode_##T(x + t * C, wg, wu, wd, call->nsrc > 6 ? (const T *)sgt_ptr(call->src[6]) : NULL,  \
                           idx + t * k, m + t * k, C, IW, k, bs, y + t * C,                              \
                           G + t * k * bs, U + t * k * bs);                                              \
            return;                                                                                      \
        }                                                                                                \
        T *Xb = ws, *Yb = Xb + N * C, *Gb = Yb + N * C, *Ub = Gb + N * bs, *Hb = Ub + N * bs;            \
        int32_t *off = (int32_t *)(Hb + N * bs), *order = off + nb + 1;                                  \
        group_by_block(idx, N, k, nb, off, order);                                                       \
        memset(y, 0, sizeof(T) * (size_t)(N * C));                                                       \
        for (int64_t b = 0; b < nb; b++) {                                                               \
            const int64_t n = off[b + 1] - off[b];                                                       \
            if (!n) continue;                                                                            \
            const int32_t *sl = order + off[b];                                                          \
            for (int64_t i = 0; i < n; i++) memcpy(Xb + i * C, x + (sl[i] / k) * C, sizeof(T) * (size_t)C); \
            gemm_##T(false, true, n, bs, C, Xb, C, wg + b * bs * C, C, 0, Gb, bs);                       \
            gemm_##T(false, true, n, bs, C, Xb, C, wu + b * bs * C, C, 0, Ub, bs);                       \
            for (int64_t i = 0; i < n; i++) {                                                            \
                const T mi = m[sl[i]];                                                                   \
                memcpy(G + (int64_t)sl[i] * bs, Gb + i * bs, sizeof(T) * (size_t)bs);                    \
                memcpy(U + (int64_t)sl[i] * bs, Ub + i * bs, sizeof(T) * (size_t)bs);                    \
                for (int64_t r = 0; r < bs; r++) Hb[i * bs + r] = mi * silu_##T(Gb[i * bs + r]) * Ub[i * bs + r]; \
            }                                                                                            \
            gemm_##T(false, true, n, C, bs, Hb, bs, wd + b * bs, IW, 0, Yb, C); /* Hb @ Wd[:, B]^T */      \
            for (int64_t i = 0; i < n; i++) {                                                            \
                T *yr = y + (sl[i] / k) * C;                                                             \
                const T *src = Yb + i * C;                                                               \
                for (int64_t c = 0; c < C; c++) yr[c] += src[c];                                         \
            }                                                                                            \
        }                                                                                                \
    }                                                                                                    \
    static void bwd_##T(const sgt_opcall *call) {                                                        \
        const sgt_tensor *xt = call->src[0];                                                             \
        const T *x = sgt_ptr(xt), *wg = sgt_ptr(call->src[1]), *wu = sgt_ptr(call->src[2]),              \
                *wd = sgt_ptr(call->src[3]), *m = sgt_ptr(call->src[5]), *G = sgt_ptr(call->src[6]),      \
                *U = sgt_ptr(call->src[7]), *dy = sgt_ptr(call->src[8]);                                 \
        const int32_t *idx = sgt_ptr(call->src[4]);                                                      \
        T *dx = sgt_ptr(call->dst[0]), *dwg = sgt_ptr(call->dst[1]), *dwu = sgt_ptr(call->dst[2]),        \
          *dwd = sgt_ptr(call->dst[3]), *dm = sgt_ptr(call->dst[4]), *ws = sgt_ptr(call->dst[5]);         \
        const int64_t N = xt->shape[0], C = xt->shape[1], IW = call->src[1]->shape[0], k = call->src[4]->shape[1]; \
        const int64_t bs = call->ip[0], nb = IW / bs;                                                     \
        T *Xb = ws, *dYb = Xb + N * C, *dXb = dYb + N * C, *Hb = dXb + N * C, *Hm = Hb + N * bs,         \
          *dH = Hm + N * bs, *dG = dH + N * bs, *dU = dG + N * bs, *Gb = dU + N * bs, *Ub = Gb + N * bs;  \
        int32_t *off = (int32_t *)(Ub + N * bs), *order = off + nb + 1;                                  \
        group_by_block(idx, N, k, nb, off, order);                                                       \
        memset(dx, 0, sizeof(T) * (size_t)(N * C));                                                      \
        memset(dwg, 0, sizeof(T) * (size_t)(IW * C));                                                     \
        memset(dwu, 0, sizeof(T) * (size_t)(IW * C));                                                     \
        memset(dwd, 0, sizeof(T) * (size_t)(IW * C));                                                     \
        for (int64_t b = 0; b < nb; b++) {                                                               \
            const int64_t n = off[b + 1] - off[b];                                                       \
            if (!n) continue;                                                                            \
            const int32_t *sl = order + off[b];                                                          \
            for (int64_t i = 0; i < n; i++) {                                                            \
                const int64_t t = sl[i] / k;                                                             \
                memcpy(Xb + i * C, x + t * C, sizeof(T) * (size_t)C);                                    \
                memcpy(dYb + i * C, dy + t * C, sizeof(T) * (size_t)C);                                  \
                memcpy(Gb + i * bs, G + (int64_t)sl[i] * bs, sizeof(T) * (size_t)bs);                    \
                memcpy(Ub + i * bs, U + (int64_t)sl[i] * bs, sizeof(T) * (size_t)bs);                    \
                for (int64_t r = 0; r < bs; r++) {                                                       \
                    Hb[i * bs + r] = silu_##T(Gb[i * bs + r]) * Ub[i * bs + r];                          \
                    Hm[i * bs + r] = m[sl[i]] * Hb[i * bs + r];                                          \
                }                                                                                        \
            }                                                                                            \
            gemm_##T(false, false, n, bs, C, dYb, C, wd + b * bs, IW, 0, dH, bs); /* dY Wd[:, B] */      \
            for (int64_t i = 0; i < n; i++) {                                                            \
                const T mi = m[sl[i]];                                                                   \
                dm[sl[i]] = dot_##T(dH + i * bs, Hb + i * bs, bs);                                       \
                for (int64_t r = 0; r < bs; r++) {                                                       \
                    const T g = Gb[i * bs + r], dh = dH[i * bs + r] * mi;                                \
                    dG[i * bs + r] = dh * Ub[i * bs + r] * dsilu_##T(g);                                 \
                    dU[i * bs + r] = dh * silu_##T(g);                                                   \
                }                                                                                        \
            }                                                                                            \
            gemm_##T(true, false, C, bs, n, dYb, C, Hm, bs, 0, dwd + b * bs, IW);   /* dY^T Hm */         \
            gemm_##T(true, false, bs, C, n, dG, bs, Xb, C, 0, dwg + b * bs * C, C); /* dG^T X */         \
            gemm_##T(true, false, bs, C, n, dU, bs, Xb, C, 0, dwu + b * bs * C, C);                      \
            gemm_##T(false, false, n, C, bs, dG, bs, wg + b * bs * C, C, 0, dXb, C); /* dG Wg_B + dU Wu_B */ \
            gemm_##T(false, false, n, C, bs, dU, bs, wu + b * bs * C, C, 1, dXb, C);                     \
            for (int64_t i = 0; i < n; i++) {                                                            \
                T *o = dx + (sl[i] / k) * C;                                                             \
                const T *src = dXb + i * C;                                                              \
                for (int64_t c = 0; c < C; c++) o[c] += src[c];                                          \
            }                                                                                            \
        }                                                                                                \
    }
BSPARSE(float, cblas_sgemm, cblas_sgemv, sgt_expf)
BSPARSE(double, cblas_dgemm, cblas_dgemv, exp)

void sgt_cpu_bsparse_swiglu(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) fwd_float(call);
    else fwd_double(call);
}

void sgt_cpu_bsparse_swiglu_bwd(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) bwd_float(call);
    else bwd_double(call);
}
