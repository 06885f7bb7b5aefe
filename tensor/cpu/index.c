/* index.c: CPU kernels that move data by integer indices: embedding gather and its scatter-add,
 * top-k, gather/scatter along the last dim, and concat. Inputs are contiguous (ops.c sees to it).
 * Indices are range-checked before any thread starts, so a bad id is a clear error, not a crash. */
#include <string.h>

#include "cpu.h"

static void check_indices(const char *op, const int32_t *idx, int64_t n, int64_t limit) {
    for (int64_t i = 0; i < n; i++)
        SGT_CHECK(idx[i] >= 0 && idx[i] < limit, "%s: index %d at position %lld is outside [0, %lld)", op, idx[i],
                  (long long)i, (long long)limit);
}

void sgt_cpu_embedding(const sgt_opcall *call) {
    const sgt_tensor *tab = call->src[0], *it = call->src[1];
    const int64_t V = tab->shape[0], C = tab->shape[1], n = sgt_numel(it);
    const int32_t *idx = sgt_ptr(it);
    const size_t row = (size_t)C * sgt_dtype_size(tab->dtype);
    check_indices("embedding", idx, n, V);
    const char *t = sgt_ptr(tab);
    char *y = sgt_ptr(call->dst[0]);
#pragma omp parallel for schedule(static) if (n * C >= SGT_OMP_MIN)
    for (int64_t i = 0; i < n; i++) memcpy(y + (size_t)i * row, t + (size_t)idx[i] * row, row);
}

/* dst [V, C] += rows at idx. Threads own disjoint column stripes, so it is deterministic. */
#define INDEX_ADD(T)                                                                            \
    static void index_add_##T(T *dst, const int32_t *idx, const T *rows, int64_t n, int64_t C) { \
        const int64_t CH = 64, nch = (C + CH - 1) / CH;                                         \
        _Pragma("omp parallel for schedule(static) if (n * C >= SGT_OMP_MIN)")                 \
        for (int64_t ch = 0; ch < nch; ch++) {                                                  \
            int64_t j0 = ch * CH, j1 = j0 + CH < C ? j0 + CH : C;                               \
            for (int64_t i = 0; i < n; i++) {                                                   \
                T *d = dst + (int64_t)idx[i] * C;                                               \
                const T *r = rows + i * C;                                                      \
                for (int64_t j = j0; j < j1; j++) d[j] += r[j];                                 \
            }                                                                                   \
        }                                                                                       \
    }
INDEX_ADD(float)
INDEX_ADD(double)

void sgt_cpu_index_add_rows(const sgt_opcall *call) {
    sgt_tensor *dst = call->dst[0];
    const sgt_tensor *it = call->src[1], *rows = call->src[2];
    SGT_CHECK(sgt_is_contiguous(dst), "index_add_rows: destination must be contiguous");
    const int64_t n = sgt_numel(it), C = dst->shape[1];
    const int32_t *idx = sgt_ptr(it);
    check_indices("index_add_rows", idx, n, dst->shape[0]);
    if (dst->dtype == SGT_F32) index_add_float(sgt_ptr(dst), idx, sgt_ptr(rows), n, C);
    else index_add_double(sgt_ptr(dst), idx, sgt_ptr(rows), n, C);
}

/* dst row idx[i] = rows[i]: a byte copy per row (any dtype); dst's rows may be strided. A repeated
 * index takes the last of its rows, as a sequence of assignments would. */
void sgt_cpu_index_copy_rows(const sgt_opcall *call) {
    sgt_tensor *dst = call->dst[0];
    const sgt_tensor *it = call->src[1], *rows = call->src[2];
    const int64_t n = sgt_numel(it), C = dst->shape[1];
    const int32_t *idx = sgt_ptr(it);
    check_indices("index_copy_rows", idx, n, dst->shape[0]);
    const size_t es = sgt_dtype_size(dst->dtype);
    char *d = sgt_ptr(dst);
    const char *r = sgt_ptr(rows);
    for (int64_t i = 0; i < n; i++) memcpy(d + (size_t)(idx[i] * dst->stride[0]) * es, r + (size_t)(i * C) * es, (size_t)C * es);
}

/* top-k by partial selection: k passes of "largest not yet taken" for small k, else a sort of
 * indices. Ties go to the lower index; NaN counts as largest. */
#define TOPK(T)                                                                                  \
    static inline bool better_##T(T a, int32_t ia, T b, int32_t ib) {                            \
        if (a != a) return b == b || ia < ib;                                                    \
        if (b != b) return false;                                                                \
        return a > b || (a == b && ia < ib);                                                     \
    }                                                                                            \
    static void topk_##T(const T *x, T *vals, int32_t *inds, int64_t rows, int64_t n, int64_t k) { \
        _Pragma("omp parallel for schedule(static) if (rows * n >= SGT_OMP_MIN)")               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * n;                                                             \
            T *vr = vals + r * k;                                                                \
            int32_t *ir = inds + r * k;                                                          \
            /* insertion into a sorted list of the best k seen so far */                        \
            int64_t have = 0;                                                                    \
            for (int32_t i = 0; i < (int32_t)n; i++) {                                           \
                T v = xr[i];                                                                     \
                if (have == k && !better_##T(v, i, vr[k - 1], ir[k - 1])) continue;              \
                int64_t pos = have < k ? have++ : k - 1;                                         \
                while (pos > 0 && better_##T(v, i, vr[pos - 1], ir[pos - 1])) {                  \
                    vr[pos] = vr[pos - 1];                                                       \
                    ir[pos] = ir[pos - 1];                                                       \
                    pos--;                                                                       \
                }                                                                                \
                vr[pos] = v;                                                                     \
                ir[pos] = i;                                                                     \
            }                                                                                    \
        }                                                                                        \
    }
TOPK(float)
TOPK(double)

void sgt_cpu_topk(const sgt_opcall *call) {
    const sgt_tensor *x = call->src[0];
    const int64_t n = x->shape[x->ndim - 1], rows = n ? sgt_numel(x) / n : 0, k = call->ip[0];
    if (x->dtype == SGT_F32) topk_float(sgt_ptr(x), sgt_ptr(call->dst[0]), sgt_ptr(call->dst[1]), rows, n, k);
    else topk_double(sgt_ptr(x), sgt_ptr(call->dst[0]), sgt_ptr(call->dst[1]), rows, n, k);
}

#define GATHER_SCATTER(T)                                                                        \
    static void gather_##T(const T *x, const int32_t *idx, T *y, int64_t rows, int64_t n, int64_t k) { \
        _Pragma("omp parallel for schedule(static) if (rows * k >= SGT_OMP_MIN)")               \
        for (int64_t r = 0; r < rows; r++)                                                       \
            for (int64_t j = 0; j < k; j++) y[r * k + j] = x[r * n + idx[r * k + j]];            \
    }                                                                                            \
    static void scatter_##T(const T *v, const int32_t *idx, T *y, int64_t rows, int64_t n, int64_t k) { \
        _Pragma("omp parallel for schedule(static) if (rows * n >= SGT_OMP_MIN)")               \
        for (int64_t r = 0; r < rows; r++) {                                                     \
            T *yr = y + r * n;                                                                   \
            for (int64_t j = 0; j < n; j++) yr[j] = 0;                                           \
            for (int64_t j = 0; j < k; j++) yr[idx[r * k + j]] += v[r * k + j];                  \
        }                                                                                        \
    }
GATHER_SCATTER(float)
GATHER_SCATTER(double)

void sgt_cpu_gather_last(const sgt_opcall *call) {
    const sgt_tensor *x = call->src[0], *it = call->src[1];
    const int64_t n = x->shape[x->ndim - 1], k = it->shape[it->ndim - 1], rows = k ? sgt_numel(it) / k : 0;
    check_indices("gather_last", sgt_ptr(it), sgt_numel(it), n);
    if (x->dtype == SGT_F32) gather_float(sgt_ptr(x), sgt_ptr(it), sgt_ptr(call->dst[0]), rows, n, k);
    else gather_double(sgt_ptr(x), sgt_ptr(it), sgt_ptr(call->dst[0]), rows, n, k);
}

void sgt_cpu_scatter_add_last(const sgt_opcall *call) {
    const sgt_tensor *v = call->src[0], *it = call->src[1];
    const int64_t n = call->ip[0], k = it->shape[it->ndim - 1], rows = sgt_numel(call->dst[0]) / (n ? n : 1);
    check_indices("scatter_add_last", sgt_ptr(it), sgt_numel(it), n);
    if (v->dtype == SGT_F32) scatter_float(sgt_ptr(v), sgt_ptr(it), sgt_ptr(call->dst[0]), rows, n, k);
    else scatter_double(sgt_ptr(v), sgt_ptr(it), sgt_ptr(call->dst[0]), rows, n, k);
}

/* concat: each input is a contiguous [outer, len_i * inner] block copied into its column range */
void sgt_cpu_concat(const sgt_opcall *call) {
    sgt_tensor *y = call->dst[0];
    const int d = (int)call->ip[0];
    const size_t es = sgt_dtype_size(y->dtype);
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < d; i++) outer *= y->shape[i];
    for (int i = d + 1; i < y->ndim; i++) inner *= y->shape[i];
    const int64_t yrow = y->shape[d] * inner;
    int64_t at = 0;
    for (int s = 0; s < call->nsrc; s++) {
        const sgt_tensor *x = call->src[s];
        const int64_t xrow = x->shape[d] * inner;
        const char *xp = sgt_ptr(x);
        char *yp = sgt_ptr(y);
        for (int64_t o = 0; o < outer; o++)
            memcpy(yp + (size_t)(o * yrow + at) * es, xp + (size_t)(o * xrow) * es, (size_t)xrow * es);
        at += xrow;
    }
}
