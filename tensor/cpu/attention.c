/* attention.c: CPU kernels of fused causal attention (flash-style) and its backward.
 *
 * Operands (ops.c, sgt_attention): q [B,H,Tq,D], k and v [B,H,Tk,D], y [B,H,Tq,D], dy like y, with
 * unit stride along D and any strides on the other dims (views of a fused QKV buffer, and of
 * [B,T,H,D] storage); lse [B,H,Tq] contiguous. Query i sees keys j <= i + off, off = Tk - Tq when
 * causal, Tk when not (ip[0] = 1: every key, through the same code). Only f32 and f64 arrive here
 * (bf16 is promoted to f32 at the dispatch point).
 *
 * Forward: one task per (b, h, tile of BQ queries), spread over OpenMP threads (heaviest tiles
 * first). For each tile of BK keys up to the diagonal, S = scale Q K^T (one GEMM), the causal
 * mask, an online softmax (running row max m and sum l; l in double), and O = alpha O + P V (one
 * GEMM). y = O / l and lse = m + log l. Nothing of size Tq x Tk is ever held: the scratch is a few
 * tiles per thread.
 *
 * Backward (flash-attention's): Di = dy_i . y_i first; then for a (query tile, key tile) pair,
 * P = exp(scale Q K^T - lse) and dS = P (dY V^T - Di) are recomputed (two GEMMs), and
 *   dV_j += P^T dY_i,   dK_j += dS^T Q_i,   dQ_i += dS K_j   (dK, dQ scaled once at the end).
 * Two race-free schedules, picked by the work per thread:
 *   - per (b, h): one task walks all its pairs once (5 GEMMs per pair), dQ of the whole sequence
 *     accumulating in the thread's scratch [Tq, D];
 *   - when there are too few (b, h) for the threads: pass 1 over (b, h, key tile) computes dK, dV
 *     (4 GEMMs per pair), pass 2 over (b, h, query tile) computes dQ (3 GEMMs per pair).
 *
 * The GEMMs read the strided views in place when their row stride suits BLAS, and gather a tile
 * into contiguous scratch otherwise. This file is instantiated twice, for float and for double, by
 * including itself with ATTN_T defined (the bottom half). */
#ifndef ATTN_T

#include <limits.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "vmath.h"
/* after our headers: cblas.h pulls in <complex.h>, which defines I */
#include <cblas.h>

#define BQ 64 /* queries per tile */
#define BK 64 /* keys per tile */

#define ATTN_CAT2(a, b) a##_##b
#define ATTN_CAT(a, b) ATTN_CAT2(a, b)

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

/* the layout the kernels assume (ops.c makes it so), checked before any parallel region, where a
 * failure could not unwind */
static void check_layout(const char *op, const sgt_opcall *call) {
    const int64_t D = call->src[0]->shape[3];
    for (int i = 0; i < call->nsrc + call->ndst; i++) {
        const sgt_tensor *x = i < call->nsrc ? call->src[i] : call->dst[i - call->nsrc];
        if (x->ndim != 4) continue; /* lse */
        SGT_CHECK(D <= 1 || x->stride[3] == 1, "%s: operand %d needs a unit stride along D (got %lld)", op, i,
                  (long long)x->stride[3]);
    }
}

/* The keys that count: Tk, or the device-held count of sgt_attention_len (src[3], i32 [1]), which
 * must leave room for the Tq queries: Tq <= len <= Tk. */
static int64_t keys_of(const sgt_opcall *call) {
    const int64_t Tq = call->src[0]->shape[2], Tk = call->src[1]->shape[2];
    if (call->nsrc < 4) return Tk;
    const int64_t len = *(const int32_t *)sgt_ptr(call->src[3]);
    SGT_CHECK(len >= Tq && len <= Tk, "attention: key count %lld is outside [%lld, %lld] (queries, cache size)",
              (long long)len, (long long)Tq, (long long)Tk);
    return len;
}

/* The window offset: query i sees keys j <= i + off (all of them when not causal) */
static int64_t window_off(const sgt_opcall *call, int64_t Tq, int64_t Tk) { return call->ip[0] ? Tk : Tk - Tq; }

/* Whether to give each (b, h) to one thread (5 GEMMs per tile pair) rather than splitting the
 * backward into a key-tile pass and a query-tile pass (7 GEMMs per pair, but finer tasks): the
 * per-(b, h) schedule wins when ceil(BH / n) * 5 <= (BH / n) * 7. */
static bool bwd_per_head(int64_t BH, int nthreads) {
    const int64_t n = nthreads > 0 ? nthreads : 1;
    return 5 * n * ((BH + n - 1) / n) <= 7 * BH;
}

#define ATTN_T float
#define ATTN_SFX f32
#define ATTN_GEMM cblas_sgemm
#define ATTN_EXP sgt_expf
#define ATTN_ROW_SUM row_sum_float
#include "attention.c"
#undef ATTN_T
#undef ATTN_SFX
#undef ATTN_GEMM
#undef ATTN_EXP
#undef ATTN_ROW_SUM

#define ATTN_T double
#define ATTN_SFX f64
#define ATTN_GEMM cblas_dgemm
#define ATTN_EXP exp
#define ATTN_ROW_SUM row_sum_double
#include "attention.c"
#undef ATTN_T
#undef ATTN_SFX
#undef ATTN_GEMM
#undef ATTN_EXP
#undef ATTN_ROW_SUM

void sgt_cpu_attention(const sgt_opcall *call) {
    check_layout("attention", call);
    keys_of(call); /* checked here, outside the parallel region */
    if (call->dst[0]->dtype == SGT_F64) attention_fwd_f64(call);
    else attention_fwd_f32(call);
}

void sgt_cpu_attention_bwd(const sgt_opcall *call) {
    check_layout("attention_bwd", call);
    if (call->dst[0]->dtype == SGT_F64) attention_bwd_f64(call);
    else attention_bwd_f32(call);
}

#else /* ---- the body, once per element type ATTN_T ---- */

#define T ATTN_T
#define F(name) ATTN_CAT(name, ATTN_SFX)

/* Rows t0 .. t0+n-1 of x[b, h] as a row-major n x D matrix: its address and leading dimension.
 * In place when BLAS can read it so (row stride >= D), else gathered into buf (n x D). */
static const T *F(rows)(const sgt_tensor *x, int64_t b, int64_t h, int64_t t0, int64_t n, int64_t D, T *buf,
                        int *ld) {
    const T *p = (const T *)sgt_ptr(x) + b * x->stride[0] + h * x->stride[1] + t0 * x->stride[2];
    const int64_t s = x->stride[2], dl = D > 1 ? D : 1;
    if (n <= 1 || (s >= dl && s <= INT_MAX)) {
        *ld = n <= 1 ? (int)dl : (int)s;
        return p;
    }
    for (int64_t r = 0; r < n; r++) memcpy(buf + r * dl, p + r * s, sizeof(T) * (size_t)D);
    *ld = (int)dl;
    return buf;
}

/* x[b, h, t0 + r, d] = src[r * lds + d] * mul for r < n, d < D */
static void F(put_rows)(sgt_tensor *x, int64_t b, int64_t h, int64_t t0, int64_t n, int64_t D, const T *src,
                        int64_t lds, T mul) {
    T *p = (T *)sgt_ptr(x) + b * x->stride[0] + h * x->stride[1] + t0 * x->stride[2];
    for (int64_t r = 0; r < n; r++) {
        T *o = p + r * x->stride[2];
        const T *s = src + r * lds;
        for (int64_t d = 0; d < D; d++) o[d] = s[d] * mul;
    }
}

/* ---- forward ---- */

/* workspace of one thread, in elements of T */
static size_t F(fwd_ws)(int64_t dl) { return (size_t)(BQ * dl + 2 * BK * dl + BQ * BK + BQ * dl); }

static void F(fwd_tile)(const sgt_opcall *call, int64_t b, int64_t h, int64_t i0, T *ws) {
    const sgt_tensor *q = call->src[0], *k = call->src[1], *v = call->src[2];
    sgt_tensor *y = call->dst[0];
    T *lse = (T *)sgt_ptr(call->dst[1]);
    const int64_t H = q->shape[1], Tq = q->shape[2], Tk = keys_of(call), D = q->shape[3], dl = D > 1 ? D : 1;
    const int64_t off = window_off(call, Tq, Tk), nq = min64(BQ, Tq - i0);
    (void)k;
    const T scale = (T)call->fp[0];
    T *qbuf = ws, *kbuf = qbuf + BQ * dl, *vbuf = kbuf + BK * dl, *S = vbuf + BK * dl, *O = S + BQ * BK;
    T m[BQ];      /* running row max */
    double l[BQ]; /* running row sum of exp(s - m) */

    int ldq, ldk, ldv;
    const T *Q = F(rows)(q, b, h, i0, nq, D, qbuf, &ldq);
    for (int64_t r = 0; r < nq; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
    }
    memset(O, 0, sizeof(T) * (size_t)(nq * dl));
    /* keys past kend are masked for every row of the tile */
    const int64_t kend = min64(i0 + nq + off, Tk);
    for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        const int64_t nk = min64(BK, kend - j0);
        const T *K = F(rows)(k, b, h, j0, nk, D, kbuf, &ldk);
        const T *V = F(rows)(v, b, h, j0, nk, D, vbuf, &ldv);
        ATTN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)D, scale, Q, ldq, K, ldk, (T)0, S,
                  BK);
        for (int64_t r = 0; r < nq; r++) {
            T *Sr = S + r * BK;
            /* row r sees keys j0 .. i0 + r + off of this tile */
            const int64_t lim = min64(nk, max64(0, i0 + r + off - j0 + 1));
            T mx = -INFINITY;
            for (int64_t c = 0; c < lim; c++) mx = Sr[c] > mx ? Sr[c] : mx;
            const T mnew = mx > m[r] ? mx : m[r];
            /* every row sees key 0 in the first tile, so m is finite from then on */
            const T alpha = lim == 0 ? (T)1 : m[r] == -INFINITY ? (T)0 : ATTN_EXP(m[r] - mnew);
            for (int64_t c = 0; c < lim; c++) Sr[c] = ATTN_EXP(Sr[c] - mnew);
            for (int64_t c = lim; c < nk; c++) Sr[c] = 0;
            l[r] = l[r] * (double)alpha + ATTN_ROW_SUM(Sr, lim);
            m[r] = mnew;
            if (alpha != 1) {
                T *Or = O + r * dl;
                for (int64_t d = 0; d < D; d++) Or[d] *= alpha;
            }
        }
        ATTN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)D, (int)nk, (T)1, S, BK, V, ldv, (T)1, O,
                  (int)dl);
    }
    T *yb = (T *)sgt_ptr(y) + b * y->stride[0] + h * y->stride[1];
    for (int64_t r = 0; r < nq; r++) {
        const T inv = (T)(1.0 / l[r]);
        T *yr = yb + (i0 + r) * y->stride[2];
        const T *Or = O + r * dl;
        for (int64_t d = 0; d < D; d++) yr[d] = Or[d] * inv;
        lse[(b * H + h) * Tq + i0 + r] = (T)((double)m[r] + log(l[r]));
    }
}

static void F(attention_fwd)(const sgt_opcall *call) {
    const sgt_tensor *q = call->src[0], *k = call->src[1];
    const int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Tk = k->shape[2], D = q->shape[3];
    const int64_t dl = D > 1 ? D : 1, nqt = (Tq + BQ - 1) / BQ, tasks = B * H * nqt;
    if (tasks == 0) return;
    const int nth = omp_get_max_threads();
    const size_t per = F(fwd_ws)(dl);
    T *ws = malloc(sizeof(T) * per * (size_t)nth);
    SGT_CHECK(ws, "attention: out of memory for %d x %zu bytes of scratch", nth, sizeof(T) * per);
    const bool par = tasks > 1 && B * H * Tq * Tk * dl >= SGT_OMP_MIN;
#pragma omp parallel if (par)
    {
        T *w = ws + per * (size_t)omp_get_thread_num();
        /* the last query tiles see the most keys: hand them out first */
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < tasks; t++) {
            const int64_t bh = t % (B * H), qt = nqt - 1 - t / (B * H);
            F(fwd_tile)(call, bh / H, bh % H, qt * BQ, w);
        }
    }
    free(ws);
}

/* ---- backward ---- */

typedef struct {
    const sgt_tensor *q, *k, *v, *dy;
    sgt_tensor *dq, *dk, *dv;
    const T *lse, *Di; /* [B, H, Tq] */
    int64_t H, Tq, Tk, D, dl, off;
    T scale;
} F(bwd_ctx);

/* scratch of one thread: Q, dY, K, V gathers, P, dS, dK, dV accumulators, then dQ (dq_rows rows) */
static size_t F(bwd_ws)(int64_t dl, int64_t dq_rows) {
    return (size_t)(2 * BQ * dl + 2 * BK * dl + 2 * BQ * BK + 2 * BK * dl + dq_rows * dl);
}

/* P and dS of queries i0 .. i0+nq-1 against keys j0 .. j0+nk-1 (both nq x nk, row stride BK),
 * masked entries exactly 0 */
static void F(pair)(const F(bwd_ctx) *x, int64_t b, int64_t h, int64_t i0, int64_t nq, int64_t j0, int64_t nk,
                    const T *Q, int ldq, const T *dY, int lddy, const T *K, int ldk, const T *V, int ldv, T *P,
                    T *dS) {
    ATTN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)x->D, x->scale, Q, ldq, K, ldk, (T)0, P,
              BK);
    ATTN_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)nk, (int)x->D, (T)1, dY, lddy, V, ldv, (T)0, dS,
              BK);
    const int64_t row0 = (b * x->H + h) * x->Tq + i0;
    for (int64_t r = 0; r < nq; r++) {
        T *Pr = P + r * BK, *dSr = dS + r * BK;
        const int64_t lim = min64(nk, max64(0, i0 + r + x->off - j0 + 1));
        const T lse = x->lse[row0 + r], Di = x->Di[row0 + r];
        for (int64_t c = 0; c < lim; c++) {
            const T p = ATTN_EXP(Pr[c] - lse);
            Pr[c] = p;
            dSr[c] = p * (dSr[c] - Di);
        }
        for (int64_t c = lim; c < nk; c++) Pr[c] = dSr[c] = 0;
    }
}

/* dK, dV of keys j0 .. j0+nk-1 of (b, h) over every query that sees them; with dQ != NULL (the
 * per-head schedule) also dQ[i] += dS K for those queries (dQ: rows of the whole sequence) */
static void F(bwd_keys)(const F(bwd_ctx) *x, int64_t b, int64_t h, int64_t j0, T *ws, T *dQ) {
    const int64_t dl = x->dl, D = x->D, nk = min64(BK, x->Tk - j0);
    T *qbuf = ws, *dybuf = qbuf + BQ * dl, *kbuf = dybuf + BQ * dl, *vbuf = kbuf + BK * dl, *P = vbuf + BK * dl;
    T *dS = P + BQ * BK, *dK = dS + BQ * BK, *dV = dK + BK * dl;
    int ldq, lddy, ldk, ldv;
    const T *K = F(rows)(x->k, b, h, j0, nk, D, kbuf, &ldk);
    const T *V = F(rows)(x->v, b, h, j0, nk, D, vbuf, &ldv);
    memset(dK, 0, sizeof(T) * (size_t)(nk * dl));
    memset(dV, 0, sizeof(T) * (size_t)(nk * dl));
    /* query i sees key j0 when i >= j0 - off */
    const int64_t first = max64(0, j0 - x->off) / BQ * BQ;
    for (int64_t i0 = first; i0 < x->Tq; i0 += BQ) {
        const int64_t nq = min64(BQ, x->Tq - i0);
        const T *Q = F(rows)(x->q, b, h, i0, nq, D, qbuf, &ldq);
        const T *dY = F(rows)(x->dy, b, h, i0, nq, D, dybuf, &lddy);
        F(pair)(x, b, h, i0, nq, j0, nk, Q, ldq, dY, lddy, K, ldk, V, ldv, P, dS);
        ATTN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)D, (int)nq, (T)1, P, BK, dY, lddy, (T)1, dV,
                  (int)dl);
        ATTN_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)D, (int)nq, (T)1, dS, BK, Q, ldq, (T)1, dK,
                  (int)dl);
        if (dQ)
            ATTN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)D, (int)nk, (T)1, dS, BK, K, ldk, (T)1,
                      dQ + i0 * dl, (int)dl);
    }
    F(put_rows)(x->dk, b, h, j0, nk, D, dK, dl, x->scale);
    F(put_rows)(x->dv, b, h, j0, nk, D, dV, dl, (T)1);
}

/* dQ of queries i0 .. i0+nq-1 of (b, h) over the keys they see (the second pass) */
static void F(bwd_queries)(const F(bwd_ctx) *x, int64_t b, int64_t h, int64_t i0, T *ws) {
    const int64_t dl = x->dl, D = x->D, nq = min64(BQ, x->Tq - i0);
    T *qbuf = ws, *dybuf = qbuf + BQ * dl, *kbuf = dybuf + BQ * dl, *vbuf = kbuf + BK * dl, *P = vbuf + BK * dl;
    T *dS = P + BQ * BK, *dQ = dS + BQ * BK + 2 * BK * dl;
    int ldq, lddy, ldk, ldv;
    const T *Q = F(rows)(x->q, b, h, i0, nq, D, qbuf, &ldq);
    const T *dY = F(rows)(x->dy, b, h, i0, nq, D, dybuf, &lddy);
    memset(dQ, 0, sizeof(T) * (size_t)(nq * dl));
    const int64_t kend = min64(i0 + nq + x->off, x->Tk);
    for (int64_t j0 = 0; j0 < kend; j0 += BK) {
        const int64_t nk = min64(BK, kend - j0);
        const T *K = F(rows)(x->k, b, h, j0, nk, D, kbuf, &ldk);
        const T *V = F(rows)(x->v, b, h, j0, nk, D, vbuf, &ldv);
        F(pair)(x, b, h, i0, nq, j0, nk, Q, ldq, dY, lddy, K, ldk, V, ldv, P, dS);
        ATTN_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nq, (int)D, (int)nk, (T)1, dS, BK, K, ldk, (T)1, dQ,
                  (int)dl);
    }
    F(put_rows)(x->dq, b, h, i0, nq, D, dQ, dl, x->scale);
}

static void F(attention_bwd)(const sgt_opcall *call) {
    F(bwd_ctx) x = {.q = call->src[0], .k = call->src[1], .v = call->src[2], .dy = call->src[5],
                    .dq = call->dst[0], .dk = call->dst[1], .dv = call->dst[2],
                    .lse = (const T *)sgt_ptr(call->src[4]), .scale = (T)call->fp[0]};
    const sgt_tensor *y = call->src[3];
    const int64_t B = x.q->shape[0], H = x.q->shape[1], Tq = x.q->shape[2], Tk = x.k->shape[2], D = x.q->shape[3];
    x.H = H;
    x.Tq = Tq;
    x.Tk = Tk;
    x.D = D;
    x.dl = D > 1 ? D : 1;
    x.off = window_off(call, Tq, Tk);
    const int64_t BH = B * H, rows = BH * Tq, dl = x.dl;
    if (BH == 0 || Tk == 0) return;
    const int nth = omp_get_max_threads();
    const bool par = BH * Tq * Tk * dl >= SGT_OMP_MIN;
    const bool per_head = !par || bwd_per_head(BH, nth);

    T *Di = malloc(sizeof(T) * (size_t)(rows ? rows : 1));
    const size_t per = F(bwd_ws)(dl, per_head ? max64(Tq, BQ) : BQ);
    T *ws = malloc(sizeof(T) * per * (size_t)nth);
    SGT_CHECK(Di && ws, "attention_bwd: out of memory for %d x %zu bytes of scratch", nth, sizeof(T) * per);
    x.Di = Di;

    /* Di = dy_i . y_i, accumulated in double */
#pragma omp parallel for schedule(static) if (rows * dl >= SGT_OMP_MIN)
    for (int64_t r = 0; r < rows; r++) {
        const int64_t b = r / (H * Tq), h = r / Tq % H, i = r % Tq;
        const T *yr = (const T *)sgt_ptr(y) + b * y->stride[0] + h * y->stride[1] + i * y->stride[2];
        const T *gr = (const T *)sgt_ptr(x.dy) + b * x.dy->stride[0] + h * x.dy->stride[1] + i * x.dy->stride[2];
        double s = 0;
        for (int64_t d = 0; d < D; d++) s += (double)gr[d] * (double)yr[d];
        Di[r] = (T)s;
    }

    const int64_t nkt = (Tk + BK - 1) / BK, nqt = (Tq + BQ - 1) / BQ;
    if (per_head) {
#pragma omp parallel if (par)
        {
            T *w = ws + per * (size_t)omp_get_thread_num(), *dQ = w + F(bwd_ws)(dl, 0);
#pragma omp for schedule(dynamic, 1)
            for (int64_t bh = 0; bh < BH; bh++) {
                const int64_t b = bh / H, h = bh % H;
                memset(dQ, 0, sizeof(T) * (size_t)(Tq * dl));
                for (int64_t kt = 0; kt < nkt; kt++) F(bwd_keys)(&x, b, h, kt * BK, w, dQ);
                F(put_rows)(x.dq, b, h, 0, Tq, D, dQ, dl, x.scale);
            }
        }
    } else {
#pragma omp parallel
        {
            T *w = ws + per * (size_t)omp_get_thread_num();
            /* key tiles: the first ones are seen by the most queries */
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < BH * nkt; t++) {
                const int64_t bh = t % BH, kt = t / BH;
                F(bwd_keys)(&x, bh / H, bh % H, kt * BK, w, NULL);
            }
            /* query tiles: the last ones see the most keys (the implicit barrier above separates
             * the passes, though they touch different outputs) */
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < BH * nqt; t++) {
                const int64_t bh = t % BH, qt = nqt - 1 - t / BH;
                F(bwd_queries)(&x, bh / H, bh % H, qt * BQ, w);
            }
        }
    }
    free(ws);
    free(Di);
}

#undef T
#undef F

#endif
