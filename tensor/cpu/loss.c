/* loss.c: the fused cross-entropy kernels: forward (mean NLL and per-row log-sum-exp) and
 * backward (softmax minus one-hot, scaled), over contiguous logits [N, V] of which the first
 * `valid` columns (ip[1]) are the vocabulary: the others are padding (a vocabulary rounded up for
 * the GEMMs), outside the softmax, with a gradient of exactly 0.
 * Summation order: each row's exp terms are summed in f64 (8 lanes, in blocks of 4096, in order),
 * the rows' NLL terms by an OpenMP reduction in f64 (whose order may vary with the threads; the
 * CUDA kernels sum in a fixed order instead). f32 and f64 only: bf16 logits are promoted to f32
 * at the dispatch point (and their loss and lse are f32 anyway). */
#include <math.h>

#include "../ce_targets.h"
#include "cpu.h"
#include "vmath.h"

#define CE(T, EXP)                                                                                 \
    static void ce_##T(const sgt_opcall *call) {                                                 \
        const sgt_tensor *lt = call->src[0];                                                     \
        const int64_t N = lt->shape[0], V = lt->shape[1], valid = call->ip[1];                   \
        const T *x = sgt_ptr(lt);                                                                \
        const int32_t *tg = sgt_ptr(call->src[1]), ignore = (int32_t)call->ip[0];                \
        T *loss = sgt_ptr(call->dst[0]), *lse = sgt_ptr(call->dst[1]);                           \
        const int64_t cnt = sgt_ce_count_targets(tg, N, valid, V, ignore);                              \
        double total = 0;                                                                        \
        _Pragma("omp parallel for schedule(static) reduction(+ : total) if (N * valid >= SGT_OMP_MIN)") \
        for (int64_t r = 0; r < N; r++) {                                                        \
            const T *xr = x + r * V;                                                             \
            const T mx = row_max_##T(xr, valid);                                                 \
            double s = 0;                                                                        \
            for (int64_t i0 = 0; i0 < valid; i0 += 4096) { /* exp in blocks, summed in f64 */  \
                T e[4096];                                                                       \
                const int64_t m = valid - i0 < 4096 ? valid - i0 : 4096;                         \
                for (int64_t i = 0; i < m; i++) e[i] = EXP(xr[i0 + i] - mx);                     \
                s += row_sum_##T(e, m);                                                          \
            }                                                                                    \
            double l = (double)mx + log(s);                                                      \
            lse[r] = (T)l;                                                                       \
            if (tg[r] != ignore) total += l - (double)xr[tg[r]];                                 \
        }                                                                                        \
        *loss = (T)(cnt ? total / (double)cnt : NAN);                                            \
    }                                                                                            \
    static void ce_bwd_##T(const sgt_opcall *call) {                                             \
        const sgt_tensor *lt = call->src[0];                                                     \
        const int64_t N = lt->shape[0], V = lt->shape[1], valid = call->ip[1];                   \
        const T *x = sgt_ptr(lt), *lse = sgt_ptr(call->src[2]);                                  \
        const int32_t *tg = sgt_ptr(call->src[1]), ignore = (int32_t)call->ip[0];                \
        const T dl = *(const T *)sgt_ptr(call->src[3]);                                          \
        T *dx = sgt_ptr(call->dst[0]);                                                           \
        const int64_t cnt = sgt_ce_count_targets(tg, N, valid, V, ignore);                              \
        const T scale = cnt ? dl / (T)cnt : (T)0;                                                \
        _Pragma("omp parallel for schedule(static) if (N * V >= SGT_OMP_MIN)")                  \
        for (int64_t r = 0; r < N; r++) {                                                        \
            const T *xr = x + r * V;                                                             \
            T *o = dx + r * V;                                                                   \
            if (tg[r] == ignore) {                                                               \
                for (int64_t i = 0; i < V; i++) o[i] = 0;                                        \
                continue;                                                                        \
            }                                                                                    \
            const T l = lse[r];                                                                  \
            for (int64_t i = 0; i < valid; i++) o[i] = EXP(xr[i] - l) * scale;                \
            for (int64_t i = valid; i < V; i++) o[i] = 0; /* padding: outside the softmax */     \
            o[tg[r]] -= scale;                                                                   \
        }                                                                                        \
    }
CE(float, sgt_expf)
CE(double, exp)

void sgt_cpu_cross_entropy(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) ce_float(call);
    else ce_double(call);
}

void sgt_cpu_cross_entropy_bwd(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) ce_bwd_float(call);
    else ce_bwd_double(call);
}
