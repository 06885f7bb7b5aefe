/* bsparse.c: CPU kernels of the block-sparse SwiGLU that skips unselected blocks (see ops.h).
 *
 * Few tokens (decode): for each token, a BLAS GEMV per selected block for gate and up, then the
 * selected down columns (block-contiguous rows of the transposed copy when there is one); threads
 * split the blocks, then the output rows, so exactly the selected weights are read once.
 *
 * Many tokens (prefill, training): the N k (token, block) slots are grouped by block with one
 * counting sort (off[b] .. off[b+1] are block b's positions in the sorted order, order[p] the slot
 * at position p, pos[s] its inverse), every operand row is gathered once into sorted order, and the
 * work is split into tasks of at most BS_ROWS sorted rows of one block, which threads take
 * dynamically, each calling BLAS on one thread (OpenBLAS runs single-threaded inside a parallel
 * region): small per-block GEMMs split by BLAS over threads spend much of their time in its
 * thread handshakes, which also slow down when other OpenMP regions ran just before (measured by
 * bench/bench_ffn.c). Per task:
 *   forward:   [Gs | Us] = Xs [Wg_b; Wu_b]^T, Hs = m silu(Gs) Us, then Ys = Hs Wd[:, B]^T into
 *              the task's own rows of Xs (read by no one else afterwards);
 *   backward:  dH = dYs Wd[:, B], dm, Hm = m silu(G) U, dG, dU per row; then per (block, weight):
 *              dWd[:, B] = dYs_b^T Hm_b and [dWg_b; dWu_b] = [dG | dU]_b^T Xs_b (whole blocks, K =
 *              the block's rows; unselected blocks get zeros); then dXs = [dG | dU] [Wg_b; Wu_b]
 *              into the rows of dYs, no longer needed.
 * The outputs per token are then a segmented reduction over its k sorted rows, in slot order
 * j = 0 .. k-1: no atomics, and the sums do not depend on the thread count (each task's rows and
 * K dimension are fixed by the routing alone).
 *
 * Gate and up run as one GEMM against the block's rows of both stacked in a per-thread buffer
 * ([Wg_b; Wu_b], [2 bs, C]), and so do their weight gradients and their share of dX: BLAS runs
 * N = 128 well above N = 64 (bench_ffn; one extra copy of 2 bs C elements per block).
 *
 * Scratch (sorted rows of x, dy and the hiddens: (1 or 2) N k C + 3 N k bs elements, and
 * 2 bs C per thread) is the calling thread's own buffer, grown on demand and reused by every later call: no allocation
 * once the largest layer has run. This file is instantiated twice, for float and for double, by
 * including itself with BS_T defined (the bottom half). */
#ifndef BS_T

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "vmath.h"
/* after our headers: cblas.h pulls in <complex.h>, which defines I */
#include <cblas.h>

#define DECODE_MAX_TOKENS 4
#define DECODE_MAX_HIDDEN 8192 /* k * bs held on the stack */
#define BS_ROWS 256            /* sorted rows per task at most (fixed: results do not depend on threads) */

#define BS_CAT2(a, b) a##_##b
#define BS_CAT(a, b) BS_CAT2(a, b)

/* The calling thread's scratch of at least `bytes`, kept for later calls (contents undefined). */
static _Thread_local void *bs_scratch;
static _Thread_local size_t bs_scratch_cap;

static void *scratch(size_t bytes) {
    if (bytes > bs_scratch_cap) {
        free(bs_scratch);
        const size_t cap = bytes + bytes / 4;
        bs_scratch = malloc(cap);
        bs_scratch_cap = bs_scratch ? cap : 0;
        SGT_CHECK(bs_scratch, "bsparse_swiglu: out of memory for %zu bytes of scratch", cap);
    }
    return bs_scratch;
}

/* bytes rounded up to a cache line, so every scratch array starts aligned */
static size_t line(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

/* The routing grouped by block: off[b] .. off[b+1] are the sorted positions of the slots
 * (t k + j) that chose block b, in slot order; order[p] is the slot at position p and pos its
 * inverse. Checks every index (before any parallel region, where a failure could not unwind). */
static void group_by_block(const int32_t *idx, int64_t N, int64_t k, int64_t nb, int32_t *off, int32_t *order,
                           int32_t *pos) {
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
    int32_t *fill = pos; /* cursors first, then overwritten by the inverse */
    for (int64_t b = 0; b < nb; b++) fill[b] = off[b];
    for (int64_t s = 0; s < N * k; s++) order[fill[idx[s]]++] = (int32_t)s;
    for (int64_t p = 0; p < N * k; p++) pos[order[p]] = (int32_t)p;
}

/* a task: rows [p0, p0 + n) of block b in sorted order */
typedef struct {
    int32_t b, p0, n;
} bs_task;

/* the tasks of every block's rows: a block of n rows in ceil(n / BS_ROWS) near-equal pieces;
 * returns their count */
static int64_t make_tasks(const int32_t *off, int64_t nb, bs_task *t) {
    int64_t nt = 0;
    for (int64_t b = 0; b < nb; b++) {
        const int64_t n = off[b + 1] - off[b], parts = (n + BS_ROWS - 1) / BS_ROWS;
        for (int64_t i = 0; i < parts; i++) {
            const int64_t r0 = n * i / parts, r1 = n * (i + 1) / parts;
            t[nt++] = (bs_task){(int32_t)b, (int32_t)(off[b] + r0), (int32_t)(r1 - r0)};
        }
    }
    return nt;
}

typedef struct {
    int32_t *off, *order, *pos;
    bs_task *tasks;
    int64_t ntask;
    char *rest; /* the float scratch after the int arrays */
} bs_groups;

/* The int scratch of the grouped path (off, order, pos, tasks), laid out from ws: returns its size
 * in bytes and, with g, points g's arrays into it (ws may be NULL to size it only). pos serves as
 * group_by_block's nb cursors first, so it and order get max(S, nb) entries. */
static size_t group_layout(int64_t S, int64_t nb, char *ws, bs_groups *g) {
    const size_t sz[4] = {line(sizeof(int32_t) * (size_t)(nb + 1)), line(sizeof(int32_t) * (size_t)(S > nb ? S : nb)),
                          line(sizeof(int32_t) * (size_t)(S > nb ? S : nb)),
                          line(sizeof(bs_task) * (size_t)(S / BS_ROWS + nb + 1))};
    if (g) {
        g->off = (int32_t *)ws;
        g->order = (int32_t *)(ws + sz[0]);
        g->pos = (int32_t *)(ws + sz[0] + sz[1]);
        g->tasks = (bs_task *)(ws + sz[0] + sz[1] + sz[2]);
        g->rest = ws + sz[0] + sz[1] + sz[2] + sz[3];
    }
    return sz[0] + sz[1] + sz[2] + sz[3];
}

static bs_groups make_groups(const int32_t *idx, int64_t N, int64_t k, int64_t nb, char *ws) {
    bs_groups g;
    group_layout(N * k, nb, ws, &g);
    group_by_block(idx, N, k, nb, g.off, g.order, g.pos);
    g.ntask = make_tasks(g.off, nb, g.tasks);
    return g;
}

/* the float instantiation, then the double one */
#define BS_T float
#define BS_SFX f32
#define BS_GEMM cblas_sgemm
#define BS_GEMV cblas_sgemv
#define BS_EXP sgt_expf
#include "bsparse.c"
#undef BS_T
#undef BS_SFX
#undef BS_GEMM
#undef BS_GEMV
#undef BS_EXP

#define BS_T double
#define BS_SFX f64
#define BS_GEMM cblas_dgemm
#define BS_GEMV cblas_dgemv
#define BS_EXP exp
#include "bsparse.c"
#undef BS_T
#undef BS_SFX
#undef BS_GEMM
#undef BS_GEMV
#undef BS_EXP

void sgt_cpu_bsparse_swiglu(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) bs_fwd_f32(call);
    else bs_fwd_f64(call);
}

void sgt_cpu_bsparse_swiglu_bwd(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) bs_bwd_f32(call);
    else bs_bwd_f64(call);
}

#else /* ---- the kernels for one element type BS_T ---- */

#define T BS_T
#define F(name) BS_CAT(name, BS_SFX)

static inline T F(silu)(T g) { return g / ((T)1 + BS_EXP(-g)); }
static inline T F(dsilu)(T g) {
    const T s = (T)1 / ((T)1 + BS_EXP(-g));
    return s * ((T)1 + g * ((T)1 - s));
}

/* C[M, N] = op(A) op(B) + beta C, row-major */
static void F(gemm)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const T *A, int64_t lda, const T *B,
                    int64_t ldb, T beta, T *Cm, int64_t ldc) {
    if (M == 0 || N == 0) return;
    BS_GEMM(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
            (T)1, A, (int)lda, B, (int)ldb, beta, Cm, (int)ldc);
}

static T F(dot)(const T *a, const T *b, int64_t n) {
    T s[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    for (; i < n; i++) s[0] += a[i] * b[i];
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

/* one token: y = sum_j m_j Wd[:, B_j] (silu(g_j) u_j), reading only the selected weights; with wdt
 * (Wd transposed, [IW, C]) the down rows of a block are contiguous and each thread streams its
 * column range of them; else each output row gathers k runs of bs elements */
static void F(decode)(const T *x, const T *wg, const T *wu, const T *wd, const T *wdt, const int32_t *idx, const T *m,
                      int64_t C, int64_t IW, int64_t k, int64_t bs, T *y, T *G, T *U) {
    T h[DECODE_MAX_HIDDEN];
    /* gate and up: a BLAS GEMV per selected block (inside the parallel loop BLAS runs on one
     * thread), so each block's bs x C rows stream at BLAS speed */
#pragma omp parallel for schedule(static) if (k * bs * C >= SGT_OMP_MIN)
    for (int64_t j = 0; j < k; j++) {
        const int64_t b = idx[j];
        BS_GEMV(CblasRowMajor, CblasNoTrans, (int)bs, (int)C, (T)1, wg + b * bs * C, (int)C, x, 1, (T)0, G + j * bs, 1);
        BS_GEMV(CblasRowMajor, CblasNoTrans, (int)bs, (int)C, (T)1, wu + b * bs * C, (int)C, x, 1, (T)0, U + j * bs, 1);
        for (int64_t r = 0; r < bs; r++) h[j * bs + r] = m[j] * F(silu)(G[j * bs + r]) * U[j * bs + r];
    }
    if (wdt) {
        const int64_t CH = 256, nch = (C + CH - 1) / CH;
#pragma omp parallel for schedule(static) if (k * bs * C >= SGT_OMP_MIN)
        for (int64_t ch = 0; ch < nch; ch++) {
            const int64_t c0 = ch * CH, nc = C - c0 < CH ? C - c0 : CH;
            for (int64_t j = 0; j < k; j++) /* y[c0:] += WdT[B_j rows, c0:]^T h_j */
                BS_GEMV(CblasRowMajor, CblasTrans, (int)bs, (int)nc, (T)1, wdt + idx[j] * bs * C + c0, (int)C,
                        h + j * bs, 1, j ? (T)1 : (T)0, y + c0, 1);
        }
        return;
    }
#pragma omp parallel for schedule(static) if (k * bs * C >= SGT_OMP_MIN)
    for (int64_t c = 0; c < C; c++) {
        T acc = 0;
        for (int64_t j = 0; j < k; j++) acc += F(dot)(wd + c * IW + idx[j] * bs, h + j * bs, bs);
        y[c] = acc;
    }
}

/* rows[p] = src[order[p] / k] for the S sorted positions (rows of C elements) */
static void F(gather)(T *rows, const T *src, const int32_t *order, int64_t S, int64_t k, int64_t C) {
#pragma omp parallel for schedule(static) if (S * C >= SGT_OMP_MIN)
    for (int64_t p = 0; p < S; p++) memcpy(rows + p * C, src + (order[p] / k) * C, sizeof(T) * (size_t)C);
}

/* out[t] = sum over j = 0 .. k-1 of rows[pos[t k + j]]: the segmented reduction, in slot order */
static void F(reduce)(T *out, const T *rows, const int32_t *pos, int64_t N, int64_t k, int64_t C) {
#pragma omp parallel for schedule(static) if (N * k * C >= SGT_OMP_MIN)
    for (int64_t t = 0; t < N; t++) {
        T *o = out + t * C;
        memcpy(o, rows + (int64_t)pos[t * k] * C, sizeof(T) * (size_t)C);
        for (int64_t j = 1; j < k; j++) {
            const T *r = rows + (int64_t)pos[t * k + j] * C;
            for (int64_t c = 0; c < C; c++) o[c] += r[c];
        }
    }
}

/* wp = [Wg_b; Wu_b], the block's gate and up rows stacked ([2 bs, C]): one GEMM of N = 2 bs for
 * both (BLAS runs small-N GEMMs well below its peak, and packs the shared operand only once) */
static void F(pack_gu)(T *wp, const T *wg, const T *wu, int64_t b, int64_t bs, int64_t C) {
    memcpy(wp, wg + b * bs * C, sizeof(T) * (size_t)(bs * C));
    memcpy(wp + bs * C, wu + b * bs * C, sizeof(T) * (size_t)(bs * C));
}

static void F(bs_fwd)(const sgt_opcall *call) {
    const sgt_tensor *xt = call->src[0];
    const T *x = sgt_ptr(xt), *wg = sgt_ptr(call->src[1]), *wu = sgt_ptr(call->src[2]), *wd = sgt_ptr(call->src[3]),
            *m = sgt_ptr(call->src[5]);
    const int32_t *idx = sgt_ptr(call->src[4]);
    T *y = sgt_ptr(call->dst[0]), *G = sgt_ptr(call->dst[1]), *U = sgt_ptr(call->dst[2]);
    const int64_t N = xt->shape[0], C = xt->shape[1], IW = call->src[1]->shape[0], k = call->src[4]->shape[1];
    const int64_t bs = call->ip[0], nb = IW / bs, S = N * k;
    if (N == 0 || C == 0) return;
    if (k == 0) {
        memset(y, 0, sizeof(T) * (size_t)(N * C));
        return;
    }
    if (N <= DECODE_MAX_TOKENS && k * bs <= DECODE_MAX_HIDDEN) {
        for (int64_t s = 0; s < N * k; s++)
            SGT_CHECK(idx[s] >= 0 && idx[s] < nb, "bsparse_swiglu: block index %d is outside [0, %lld)", idx[s],
                      (long long)nb);
        for (int64_t t = 0; t < N; t++)
            F(decode)(x + t * C, wg, wu, wd, call->nsrc > 6 ? (const T *)sgt_ptr(call->src[6]) : NULL, idx + t * k,
                      m + t * k, C, IW, k, bs, y + t * C, G + t * k * bs, U + t * k * bs);
        return;
    }
    /* scratch: Xs [S, C] (then the per-row outputs), GUs [S, 2 bs], Hs [S, bs], per thread [2 bs, C] */
    const int nth = omp_get_max_threads();
    const size_t rows_b = line(sizeof(T) * (size_t)(S * C)), hid_b = line(sizeof(T) * (size_t)(S * bs)),
                 wp_b = line(sizeof(T) * (size_t)(2 * bs * C));
    char *ws = scratch(group_layout(S, nb, NULL, NULL) + rows_b + 3 * hid_b + (size_t)nth * wp_b);
    bs_groups g = make_groups(idx, N, k, nb, ws);
    T *Xs = (T *)g.rest, *GUs = (T *)(g.rest + rows_b), *Hs = (T *)(g.rest + rows_b + 2 * hid_b);
    char *wps = g.rest + rows_b + 3 * hid_b;
    F(gather)(Xs, x, g.order, S, k, C);
#pragma omp parallel if (g.ntask > 1 && S * C * bs >= SGT_OMP_MIN)
    {
        T *wp = (T *)(wps + (size_t)omp_get_thread_num() * wp_b);
        int64_t packed = -1; /* the block wp holds */
#pragma omp for schedule(dynamic, 1)
        for (int64_t ti = 0; ti < g.ntask; ti++) {
            const int64_t b = g.tasks[ti].b, p0 = g.tasks[ti].p0, n = g.tasks[ti].n;
            T *xs = Xs + p0 * C, *gu = GUs + p0 * 2 * bs, *hs = Hs + p0 * bs;
            if (packed != b) F(pack_gu)(wp, wg, wu, b, bs, C), packed = b;
            F(gemm)(false, true, n, 2 * bs, C, xs, C, wp, C, 0, gu, 2 * bs); /* [G | U] = Xs [Wg_b; Wu_b]^T */
            for (int64_t i = 0; i < n; i++) {
                const T mi = m[g.order[p0 + i]], *gr = gu + i * 2 * bs, *ur = gr + bs;
                for (int64_t r = 0; r < bs; r++) hs[i * bs + r] = mi * F(silu)(gr[r]) * ur[r];
            }
            F(gemm)(false, true, n, C, bs, hs, bs, wd + b * bs, IW, 0, xs, C); /* Ys = Hs Wd[:, B]^T, over xs */
        }
    }
    /* G and U back in slot order ([N, k, bs], what backward reads) */
#pragma omp parallel for schedule(static) if (S * bs >= SGT_OMP_MIN)
    for (int64_t s = 0; s < S; s++) {
        const T *gu = GUs + (int64_t)g.pos[s] * 2 * bs;
        memcpy(G + s * bs, gu, sizeof(T) * (size_t)bs);
        memcpy(U + s * bs, gu + bs, sizeof(T) * (size_t)bs);
    }
    F(reduce)(y, Xs, g.pos, N, k, C);
}

static void F(bs_bwd)(const sgt_opcall *call) {
    const sgt_tensor *xt = call->src[0];
    const T *x = sgt_ptr(xt), *wg = sgt_ptr(call->src[1]), *wu = sgt_ptr(call->src[2]), *wd = sgt_ptr(call->src[3]),
            *m = sgt_ptr(call->src[5]), *G = sgt_ptr(call->src[6]), *U = sgt_ptr(call->src[7]),
            *dy = sgt_ptr(call->src[8]);
    const int32_t *idx = sgt_ptr(call->src[4]);
    T *dx = sgt_ptr(call->dst[0]), *dwg = sgt_ptr(call->dst[1]), *dwu = sgt_ptr(call->dst[2]),
      *dwd = sgt_ptr(call->dst[3]), *dm = sgt_ptr(call->dst[4]);
    const int64_t N = xt->shape[0], C = xt->shape[1], IW = call->src[1]->shape[0], k = call->src[4]->shape[1];
    const int64_t bs = call->ip[0], nb = IW / bs, S = N * k;
    if (N == 0 || k == 0 || C == 0) {
        memset(dx, 0, sizeof(T) * (size_t)(N * C));
        memset(dwg, 0, sizeof(T) * (size_t)(IW * C));
        memset(dwu, 0, sizeof(T) * (size_t)(IW * C));
        memset(dwd, 0, sizeof(T) * (size_t)(IW * C));
        return;
    }
    /* scratch: Xs, dYs [S, C], Hm [S, bs], dGU [S, 2 bs] (dG | dU per row), per thread [2 bs, C] */
    const int nth = omp_get_max_threads();
    const size_t rows_b = line(sizeof(T) * (size_t)(S * C)), hid_b = line(sizeof(T) * (size_t)(S * bs)),
                 wp_b = line(sizeof(T) * (size_t)(2 * bs * C));
    char *ws = scratch(group_layout(S, nb, NULL, NULL) + 2 * rows_b + 3 * hid_b + (size_t)nth * wp_b);
    bs_groups g = make_groups(idx, N, k, nb, ws);
    T *Xs = (T *)g.rest, *dYs = (T *)(g.rest + rows_b), *Hm = (T *)(g.rest + 2 * rows_b),
      *dGU = (T *)(g.rest + 2 * rows_b + hid_b);
    char *wps = g.rest + 2 * rows_b + 3 * hid_b;
    F(gather)(Xs, x, g.order, S, k, C);
    F(gather)(dYs, dy, g.order, S, k, C);
    const bool par = g.ntask > 1 && S * C * bs >= SGT_OMP_MIN;
    /* per row: dH = dY Wd[:, B] (into the dG half), dm = dH . silu(G) U, Hm = m silu(G) U, dG, dU */
#pragma omp parallel for schedule(dynamic, 1) if (par)
    for (int64_t ti = 0; ti < g.ntask; ti++) {
        const int64_t b = g.tasks[ti].b, p0 = g.tasks[ti].p0, n = g.tasks[ti].n;
        T *dgu = dGU + p0 * 2 * bs, *hm = Hm + p0 * bs;
        F(gemm)(false, false, n, bs, C, dYs + p0 * C, C, wd + b * bs, IW, 0, dgu, 2 * bs);
        for (int64_t i = 0; i < n; i++) {
            const int64_t s = g.order[p0 + i];
            const T mi = m[s], *gr = G + s * bs, *ur = U + s * bs;
            T *dgr = dgu + i * 2 * bs, *dur = dgr + bs, *hr = hm + i * bs;
            for (int64_t r = 0; r < bs; r++) { /* silu(G) parked in the dU half; H, for dm first */
                dur[r] = F(silu)(gr[r]);
                hr[r] = dur[r] * ur[r];
            }
            dm[s] = F(dot)(dgr, hr, bs);
            for (int64_t r = 0; r < bs; r++) {
                const T dh = dgr[r] * mi;
                hr[r] *= mi;
                dgr[r] = dh * ur[r] * F(dsilu)(gr[r]);
                dur[r] = dh * dur[r];
            }
        }
    }
    /* per (block, weight), whole blocks: dWd[:, B] = dYs_b^T Hm_b; [dWg_b; dWu_b] = dGU_b^T Xs_b (in the
     * thread's [2 bs, C] buffer, then copied out); unselected blocks get zeros */
#pragma omp parallel if (par)
    {
        T *wp = (T *)(wps + (size_t)omp_get_thread_num() * wp_b);
#pragma omp for schedule(dynamic, 1)
        for (int64_t q = 0; q < 2 * nb; q++) {
            const int64_t b = q / 2, p0 = g.off[b], n = g.off[b + 1] - g.off[b];
            if (q % 2 == 0) {
                if (n) F(gemm)(true, false, C, bs, n, dYs + p0 * C, C, Hm + p0 * bs, bs, 0, dwd + b * bs, IW);
                else
                    for (int64_t c = 0; c < C; c++) memset(dwd + c * IW + b * bs, 0, sizeof(T) * (size_t)bs);
            } else if (n) {
                F(gemm)(true, false, 2 * bs, C, n, dGU + p0 * 2 * bs, 2 * bs, Xs + p0 * C, C, 0, wp, C);
                memcpy(dwg + b * bs * C, wp, sizeof(T) * (size_t)(bs * C));
                memcpy(dwu + b * bs * C, wp + bs * C, sizeof(T) * (size_t)(bs * C));
            } else {
                memset(dwg + b * bs * C, 0, sizeof(T) * (size_t)(bs * C));
                memset(dwu + b * bs * C, 0, sizeof(T) * (size_t)(bs * C));
            }
        }
    }
    /* per row: dXs = [dG | dU] [Wg_b; Wu_b], into the rows of dYs (read by nothing after the dWd GEMMs) */
#pragma omp parallel if (par)
    {
        T *wp = (T *)(wps + (size_t)omp_get_thread_num() * wp_b);
        int64_t packed = -1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t ti = 0; ti < g.ntask; ti++) {
            const int64_t b = g.tasks[ti].b, p0 = g.tasks[ti].p0, n = g.tasks[ti].n;
            if (packed != b) F(pack_gu)(wp, wg, wu, b, bs, C), packed = b;
            F(gemm)(false, false, n, C, 2 * bs, dGU + p0 * 2 * bs, 2 * bs, wp, C, 0, dYs + p0 * C, C);
        }
    }
    F(reduce)(dx, dYs, g.pos, N, k, C);
}

#undef T
#undef F
#endif
