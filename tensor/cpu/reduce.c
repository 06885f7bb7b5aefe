/* reduce.c: CPU kernels for sum, mean, max (over any set of dims) and argmax.
 * f32 sums accumulate in f64. max propagates NaN; argmax returns the first maximum. */
#include <math.h>

#include "cpu.h"

typedef struct {
    int nk, nr;                       /* kept and reduced dims of x */
    int64_t kshape[SGT_MAX_DIMS], kstride[SGT_MAX_DIMS];
    int64_t rshape[SGT_MAX_DIMS], rstride[SGT_MAX_DIMS];
    int64_t nout, ninner;
} reduce_plan;

static void plan(const sgt_tensor *x, uint32_t mask, reduce_plan *p) {
    p->nk = p->nr = 0;
    p->nout = p->ninner = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (mask & (1u << d)) {
            p->rshape[p->nr] = x->shape[d];
            p->rstride[p->nr++] = x->stride[d];
            p->ninner *= x->shape[d];
        } else {
            p->kshape[p->nk] = x->shape[d];
            p->kstride[p->nk++] = x->stride[d];
            p->nout *= x->shape[d];
        }
    }
}

static int64_t offset_from(int64_t i, int n, const int64_t *shape, const int64_t *stride) {
    int64_t off = 0;
    for (int d = n - 1; d >= 0; d--) {
        off += (i % shape[d]) * stride[d];
        i /= shape[d];
    }
    return off;
}

/* leading dims reduced, trailing dims kept and contiguous: accumulate whole rows */
#define COLUMN_SUM(T)                                                                              \
    static void column_sum_##T(const T *x, T *y, int64_t rows, int64_t cols, double scale) {       \
        const int64_t CH = 256;                                                                    \
        int64_t nch = (cols + CH - 1) / CH;                                                        \
        _Pragma("omp parallel for schedule(static) if (rows * cols >= SGT_OMP_MIN)")              \
        for (int64_t ch = 0; ch < nch; ch++) {                                                     \
            double acc[256] = {0};                                                                 \
            int64_t j0 = ch * CH, nj = cols - j0 < CH ? cols - j0 : CH;                            \
            for (int64_t i = 0; i < rows; i++) {                                                   \
                const T *r = x + i * cols + j0;                                                    \
                for (int64_t j = 0; j < nj; j++) acc[j] += r[j];                                   \
            }                                                                                      \
            for (int64_t j = 0; j < nj; j++) y[j0 + j] = (T)(acc[j] * scale);                      \
        }                                                                                          \
    }

#define REDUCE(T)                                                                                  \
    COLUMN_SUM(T)                                                                                  \
    static void reduce_##T(const sgt_opcall *call) {                                               \
        const sgt_tensor *xt = call->src[0];                                                       \
        T *y = (T *)sgt_ptr(call->dst[0]);                                                         \
        const T *x = (const T *)xt->data + xt->offset;                                             \
        reduce_plan p;                                                                             \
        plan(xt, (uint32_t)call->ip[0], &p);                                                       \
        const sgt_op op = call->op;                                                                \
        const double scale = op == SGT_OP_MEAN ? 1.0 / (double)p.ninner : 1.0;                     \
        bool contig = sgt_is_contiguous(xt);                                                       \
        int lead_reduced = 0;                                                                      \
        while (lead_reduced < xt->ndim && (call->ip[0] & (1u << lead_reduced))) lead_reduced++;    \
        if (op != SGT_OP_MAX && contig && lead_reduced == p.nr && p.nk > 0) {                      \
            column_sum_##T(x, y, p.ninner, p.nout, scale);                                         \
            return;                                                                                \
        }                                                                                          \
        const int last = p.nr - 1;                                                                 \
        const int64_t rn = p.nr ? p.rshape[last] : 1, rs = p.nr ? p.rstride[last] : 0;             \
        const int64_t nrow = p.ninner / (rn ? rn : 1);                                             \
        _Pragma("omp parallel for schedule(static) if (p.nout * p.ninner >= SGT_OMP_MIN)")        \
        for (int64_t o = 0; o < p.nout; o++) {                                                     \
            const T *xo = x + offset_from(o, p.nk, p.kshape, p.kstride);                           \
            double acc = op == SGT_OP_MAX ? -INFINITY : 0.0;                                       \
            for (int64_t r = 0; r < (rn ? nrow : 0); r++) {                                        \
                const T *xr = xo + (p.nr > 1 ? offset_from(r, p.nr - 1, p.rshape, p.rstride) : 0);  \
                if (op == SGT_OP_MAX) {                                                            \
                    for (int64_t i = 0; i < rn; i++) {                                             \
                        double v = xr[i * rs];                                                     \
                        if (v > acc || isnan(v)) acc = v;                                          \
                        if (isnan(acc)) break;                                                     \
                    }                                                                              \
                } else {                                                                           \
                    for (int64_t i = 0; i < rn; i++) acc += xr[i * rs];                            \
                }                                                                                  \
            }                                                                                      \
            y[o] = (T)(acc * scale);                                                               \
        }                                                                                          \
    }                                                                                              \
    static void argmax_##T(const sgt_opcall *call) {                                               \
        const sgt_tensor *xt = call->src[0];                                                       \
        int32_t *y = (int32_t *)sgt_ptr(call->dst[0]);                                             \
        const T *x = (const T *)xt->data + xt->offset;                                             \
        reduce_plan p;                                                                             \
        plan(xt, (uint32_t)call->ip[0], &p);                                                       \
        _Pragma("omp parallel for schedule(static) if (p.nout * p.ninner >= SGT_OMP_MIN)")        \
        for (int64_t o = 0; o < p.nout; o++) {                                                     \
            const T *xo = x + offset_from(o, p.nk, p.kshape, p.kstride);                           \
            T best = 0;                                                                            \
            int64_t bi = 0;                                                                        \
            for (int64_t r = 0; r < p.ninner; r++) {                                               \
                T v = xo[offset_from(r, p.nr, p.rshape, p.rstride)];                               \
                if (r == 0 || v > best || (isnan(v) && !isnan(best))) { best = v; bi = r; }         \
            }                                                                                      \
            y[o] = (int32_t)bi;                                                                    \
        }                                                                                          \
    }
REDUCE(float)
REDUCE(double)

void sgt_cpu_reduce(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) reduce_float(call);
    else reduce_double(call);
}

void sgt_cpu_argmax(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) argmax_float(call);
    else argmax_double(call);
}
