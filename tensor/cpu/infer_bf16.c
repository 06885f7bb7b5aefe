/* infer_bf16.c: CPU kernels of the inference ops over bf16 weights (ops.h: sgt_linear_bf16 and
 * sgt_bsparse_swiglu_bf16). Activations and every sum are f32; each weight is widened to f32 in
 * registers as it streams (a bf16 is the top half of an f32: a 16-bit shift), so a decode step
 * reads 2 bytes per weight instead of 4.
 *
 * linear_bf16: y [M, O] = x [M, K] W^T, W bf16 [O, K] (PyTorch's [out, in]).
 *   M <= 4 (decode): threads over output rows; each weight row streams once and meets every x row
 *                    (M dot products per row, 2 vector accumulators each);
 *   M > 4:           threads over tiles of 64 output rows, each widened once into the thread's
 *                    f32 buffer, then one single-threaded sgemm per tile.
 * bsparse_swiglu_bf16: block-major weights wb [nb, 3, bs, C] (block b: its bs gate rows, its bs up
 *   rows, then its bs down columns as rows, i.e. Wd[:, b bs .. b bs + bs)^T), so a selected block
 *   is one contiguous run of 3 bs C weights and a skipped block costs no memory traffic:
 *     y[t] = sum_j m[t, j] WdT_b^T (silu(Wg_b x[t]) * (Wu_b x[t])),  b = idx[t, j]  (m = 1 if absent)
 *   threads over the (token, slot) pairs; each writes its own partial row of y, then every token
 *   sums its k partial rows in slot order: the result does not depend on the thread count.
 *
 * The oracle is the f64 product of the same bf16 values (tests/tensor/test_infer_bf16.c); the
 * vector paths are AVX-512F or AVX2+FMA (-march=native), with a plain C loop otherwise. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "../bf16.h"
/* after our headers: cblas.h pulls in <complex.h>, which defines I */
#include <cblas.h>

#define SMALL_M 4   /* rows of x handled by the streaming kernel */
#define TILE_O 64   /* output rows per widened tile (M > SMALL_M) */

#if defined(__AVX512F__)
#include <immintrin.h>
#define VW 16
typedef __m512 vf;
static inline vf v_zero(void) { return _mm512_setzero_ps(); }
static inline vf v_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void v_store(float *p, vf a) { _mm512_storeu_ps(p, a); }
static inline vf v_set1(float a) { return _mm512_set1_ps(a); }
static inline vf v_fma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline float v_sum(vf a) { return _mm512_reduce_add_ps(a); }
static inline vf v_load_bf16(const uint16_t *w) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)w)), 16));
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VW 8
typedef __m256 vf;
static inline vf v_zero(void) { return _mm256_setzero_ps(); }
static inline vf v_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void v_store(float *p, vf a) { _mm256_storeu_ps(p, a); }
static inline vf v_set1(float a) { return _mm256_set1_ps(a); }
static inline vf v_fma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf v_add(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline float v_sum(vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
}
static inline vf v_load_bf16(const uint16_t *w) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)w)), 16));
}
#else
#define VW 0 /* no vector path: the plain loops below */
#endif

/* out[r] = w . x[r] for the R rows of x (R <= SMALL_M, a compile-time constant after inlining) */
static inline __attribute__((always_inline)) void dot_rows(const uint16_t *w, const float *x, int64_t ldx, int R,
                                                           int64_t K, float *out) {
    int64_t k = 0;
    float tail[SMALL_M] = {0};
#if VW
    vf a0[SMALL_M], a1[SMALL_M];
    for (int r = 0; r < R; r++) a0[r] = a1[r] = v_zero();
    for (; k + 2 * VW <= K; k += 2 * VW) {
        const vf w0 = v_load_bf16(w + k), w1 = v_load_bf16(w + k + VW);
        for (int r = 0; r < R; r++) {
            a0[r] = v_fma(w0, v_load(x + r * ldx + k), a0[r]);
            a1[r] = v_fma(w1, v_load(x + r * ldx + k + VW), a1[r]);
        }
    }
    for (; k + VW <= K; k += VW) {
        const vf w0 = v_load_bf16(w + k);
        for (int r = 0; r < R; r++) a0[r] = v_fma(w0, v_load(x + r * ldx + k), a0[r]);
    }
#endif
    for (; k < K; k++) {
        const float wk = sgt_bf16_to_f32(w[k]);
        for (int r = 0; r < R; r++) tail[r] += wk * x[r * ldx + k];
    }
#if VW
    for (int r = 0; r < R; r++) out[r] = v_sum(v_add(a0[r], a1[r])) + tail[r];
#else
    for (int r = 0; r < R; r++) out[r] = tail[r];
#endif
}

/* y[r, o] for rows o of [o0, o1): the streaming kernel for R <= SMALL_M rows of x */
static void linear_small(const float *x, const uint16_t *w, float *y, int R, int64_t O, int64_t K) {
#pragma omp parallel for schedule(static) if (O * K >= SGT_OMP_MIN)
    for (int64_t o = 0; o < O; o++) {
        float d[SMALL_M];
        switch (R) { /* constant R per call, so the accumulators stay in registers */
        case 1: dot_rows(w + o * K, x, K, 1, K, d); break;
        case 2: dot_rows(w + o * K, x, K, 2, K, d); break;
        case 3: dot_rows(w + o * K, x, K, 3, K, d); break;
        default: dot_rows(w + o * K, x, K, 4, K, d); break;
        }
        for (int r = 0; r < R; r++) y[r * O + o] = d[r];
    }
}

/* dst[n] = widened src[n] */
static void widen(float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = sgt_bf16_to_f32(src[i]);
}

void sgt_cpu_linear_bf16(const sgt_opcall *call) {
    const float *x = sgt_ptr(call->src[0]);
    const uint16_t *w = sgt_ptr(call->src[1]);
    float *y = sgt_ptr(call->dst[0]);
    const int64_t K = call->src[1]->shape[1], O = call->src[1]->shape[0], M = sgt_numel(call->src[0]) / (K ? K : 1);
    if (M == 0 || O == 0) return;
    if (K == 0) {
        memset(y, 0, sizeof(float) * (size_t)(M * O));
        return;
    }
    if (M <= SMALL_M) {
        linear_small(x, w, y, (int)M, O, K);
        return;
    }
    const int64_t ntile = (O + TILE_O - 1) / TILE_O;
    int failed = 0;
#pragma omp parallel
    {
        float *wt = malloc(sizeof(float) * (size_t)(TILE_O * K));
        if (!wt) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < ntile; i++) {
            if (!wt) continue;
            const int64_t o0 = i * TILE_O, n = O - o0 < TILE_O ? O - o0 : TILE_O;
            widen(wt, w + o0 * K, n * K);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)n, (int)K, 1.0f, x, (int)K, wt, (int)K,
                        0.0f, y + o0, (int)O);
        }
        free(wt);
    }
    SGT_CHECK(!failed, "linear_bf16: out of host memory for a %lld x %lld f32 tile", (long long)TILE_O, (long long)K);
}

/* ---- block-sparse SwiGLU over block-major bf16 weights ---- */

/* acc[C] (+)= sum_r h[r] WdT[r, :] over the bs rows of WdT (bf16 [bs, C]), rows four at a time */
static void down_rows(const uint16_t *wdt, const float *h, int64_t bs, int64_t C, float *acc) {
    memset(acc, 0, sizeof(float) * (size_t)C);
    int64_t r = 0;
#if VW
    for (; r + 4 <= bs; r += 4) {
        const uint16_t *w0 = wdt + r * C, *w1 = w0 + C, *w2 = w1 + C, *w3 = w2 + C;
        const vf h0 = v_set1(h[r]), h1 = v_set1(h[r + 1]), h2 = v_set1(h[r + 2]), h3 = v_set1(h[r + 3]);
        int64_t c = 0;
        for (; c + VW <= C; c += VW) {
            vf a = v_load(acc + c);
            a = v_fma(h0, v_load_bf16(w0 + c), a);
            a = v_fma(h1, v_load_bf16(w1 + c), a);
            a = v_fma(h2, v_load_bf16(w2 + c), a);
            a = v_fma(h3, v_load_bf16(w3 + c), a);
            v_store(acc + c, a);
        }
        for (; c < C; c++)
            for (int64_t q = 0; q < 4; q++) acc[c] += h[r + q] * sgt_bf16_to_f32(w0[q * C + c]);
    }
#endif
    for (; r < bs; r++)
        for (int64_t c = 0; c < C; c++) acc[c] += h[r] * sgt_bf16_to_f32(wdt[r * C + c]);
}

/* one (token, slot): part[C] = m WdT_b^T (silu(Wg_b x) * (Wu_b x)), streaming block b's 3 bs C weights */
static void block_slot(const float *x, const uint16_t *blk, float m, int64_t bs, int64_t C, float *h, float *part) {
    for (int64_t r = 0; r < bs; r++) {
        float gu[2];
        dot_rows(blk + r * C, x, 0, 1, C, &gu[0]);
        dot_rows(blk + (bs + r) * C, x, 0, 1, C, &gu[1]);
        h[r] = m * (gu[0] / (1.0f + expf(-gu[0]))) * gu[1];
    }
    down_rows(blk + 2 * bs * C, h, bs, C, part);
}

void sgt_cpu_bsparse_swiglu_bf16(const sgt_opcall *call) {
    const float *x = sgt_ptr(call->src[0]);
    const uint16_t *wb = sgt_ptr(call->src[1]);
    const int32_t *idx = sgt_ptr(call->src[2]);
    const float *m = call->nsrc > 3 ? (const float *)sgt_ptr(call->src[3]) : NULL;
    float *y = sgt_ptr(call->dst[0]), *part = sgt_ptr(call->dst[1]); /* part [N, k, C] */
    const int64_t N = call->src[0]->shape[0], C = call->src[0]->shape[1], k = call->src[2]->shape[1];
    const int64_t nb = call->src[1]->shape[0], bs = call->src[1]->shape[2];
    if (N == 0 || C == 0) return;
    if (k == 0) {
        memset(y, 0, sizeof(float) * (size_t)(N * C));
        return;
    }
    for (int64_t s = 0; s < N * k; s++) /* before the parallel region, where a failure cannot unwind */
        SGT_CHECK(idx[s] >= 0 && idx[s] < nb, "bsparse_swiglu_bf16: block index %d at slot %lld is outside [0, %lld)",
                  idx[s], (long long)s, (long long)nb);
    int failed = 0;
#pragma omp parallel if (N * k * bs * C >= SGT_OMP_MIN)
    {
        float *h = malloc(sizeof(float) * (size_t)bs);
        if (!h) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int64_t s = 0; s < N * k; s++)
            if (h) block_slot(x + (s / k) * C, wb + (int64_t)idx[s] * 3 * bs * C, m ? m[s] : 1.0f, bs, C, h, part + s * C);
        free(h);
    }
    SGT_CHECK(!failed, "bsparse_swiglu_bf16: out of host memory for %lld hidden units", (long long)bs);
#pragma omp parallel for schedule(static) if (N * k * C >= SGT_OMP_MIN)
    for (int64_t t = 0; t < N; t++) {
        float *o = y + t * C;
        memcpy(o, part + t * k * C, sizeof(float) * (size_t)C);
        for (int64_t j = 1; j < k; j++)
            for (int64_t c = 0; c < C; c++) o[c] += part[(t * k + j) * C + c];
    }
}
