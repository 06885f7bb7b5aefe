/* iter.c: the strided multi-operand iterator behind every elementwise CPU kernel. */
#include <omp.h>

#include "cpu.h"

void sgt_iter_init(sgt_iter *it, int nop, sgt_tensor *const *ops) {
    const sgt_tensor *out = ops[0];
    it->nop = nop;
    int nd = 0;
    int64_t shape[SGT_MAX_DIMS], stride[4][SGT_MAX_DIMS];
    /* broadcast each operand to out's shape, dropping size-1 dims */
    for (int d = 0; d < out->ndim; d++) {
        if (out->shape[d] == 1) continue;
        shape[nd] = out->shape[d];
        for (int k = 0; k < nop; k++) {
            const sgt_tensor *x = ops[k];
            int j = d - (out->ndim - x->ndim);
            stride[k][nd] = (j >= 0 && x->shape[j] != 1) ? x->stride[j] : 0;
        }
        nd++;
    }
    /* coalesce dim d into d-1 when every operand steps through them as one */
    int m = 0;
    for (int d = 0; d < nd; d++) {
        bool merge = m > 0;
        for (int k = 0; merge && k < nop; k++) merge = it->stride[k][m - 1] == stride[k][d] * shape[d];
        if (merge) {
            it->shape[m - 1] *= shape[d];
            for (int k = 0; k < nop; k++) it->stride[k][m - 1] = stride[k][d];
        } else {
            it->shape[m] = shape[d];
            for (int k = 0; k < nop; k++) it->stride[k][m] = stride[k][d];
            m++;
        }
    }
    if (m == 0) { /* a single element */
        it->shape[0] = 1;
        for (int k = 0; k < nop; k++) it->stride[k][0] = 0;
        m = 1;
    }
    it->ndim = m;
    for (int k = 0; k < nop; k++) {
        it->esize[k] = sgt_dtype_size(ops[k]->dtype);
        it->base[k] = (char *)ops[k]->data + ops[k]->offset * (int64_t)it->esize[k];
    }
    for (int d = 0; d < m; d++)
        if (it->shape[d] == 0) it->shape[0] = 0; /* empty */
}

void sgt_iter_run(const sgt_iter *it, sgt_row_fn row, void *user) {
    const int last = it->ndim - 1;
    const int64_t n = it->shape[last];
    int64_t nrows = 1;
    for (int d = 0; d < last; d++) nrows *= it->shape[d];
    if (n == 0 || nrows == 0) return;
    /* split long rows so that a single contiguous run still spreads over the threads */
    const int64_t chunk = n > 65536 ? 65536 : n;
    const int64_t nchunk = (n + chunk - 1) / chunk, units = nrows * nchunk;
    int64_t inner[4];
    for (int k = 0; k < it->nop; k++) inner[k] = it->stride[k][last];
#pragma omp parallel for schedule(static) if (nrows * n >= SGT_OMP_MIN && units > 1)
    for (int64_t u = 0; u < units; u++) {
        int64_t r = u / nchunk, c0 = (u % nchunk) * chunk, len = n - c0 < chunk ? n - c0 : chunk;
        char *p[4];
        int64_t off[4] = {0, 0, 0, 0};
        int64_t rr = r;
        for (int d = last - 1; d >= 0; d--) {
            int64_t i = rr % it->shape[d];
            rr /= it->shape[d];
            for (int k = 0; k < it->nop; k++) off[k] += i * it->stride[k][d];
        }
        for (int k = 0; k < it->nop; k++) p[k] = it->base[k] + (off[k] + c0 * inner[k]) * (int64_t)it->esize[k];
        row(user, len, p, inner);
    }
}
