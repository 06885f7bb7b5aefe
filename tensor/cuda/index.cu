/* index.cu: CUDA kernels that move data by integer indices: embedding gather and its scatter-add,
 * top-k, gather/scatter along the last dim, and concat: the counterparts of cpu/index.c. Inputs
 * are contiguous (ops.c sees to it).
 *
 * Indices are copied to the host and range-checked there before any kernel reads them (one small
 * copy and a stream sync per call), so a bad id is the CPU's clear error, not a device fault;
 * except while a graph is being recorded (tensor/graph.h), where no host round trip is possible.
 * Nothing here uses float atomics: index_add_rows sums each destination element over its source
 * rows in ascending order, the CPU's order, so it matches the CPU bit for bit. */
#include <limits.h>

#include "block.cuh"

int64_t sgt_cuda_fetch_indices(const char *op, const sgt_tensor *idx, int64_t limit, bool use_ignore, int32_t ignore,
                               int32_t *host) {
    SGT_CHECK(idx->dtype == SGT_I32 && sgt_is_contiguous(idx), "%s: indices must be contiguous i32", op);
    if (sgt_cuda_graph_recording()) return -1; /* no host round trip inside a graph (tensor/graph.h) */
    const int64_t n = sgt_numel(idx);
    sgt_device_copy(host, SGT_CPU, sgt_ptr(idx), idx->device, (size_t)n * sizeof(int32_t));
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) {
        if (use_ignore && host[i] == ignore) continue;
        SGT_CHECK(host[i] >= 0 && host[i] < limit, "%s: index %d at position %lld is outside [0, %lld)", op, host[i],
                  (long long)i, (long long)limit);
        cnt++;
    }
    return cnt;
}

/* ---- embedding ---- */

/* y [n, C] = table rows idx[i]; E is an unsigned type as wide as the element */
template <typename E> __global__ void k_embedding(const E *tab, const int32_t *idx, E *y, int64_t n, int64_t C) {
    SGT_CUDA_FOR_EACH(w, n * C) {
        const int64_t i = w / C, j = w - i * C;
        y[w] = tab[(int64_t)idx[i] * C + j];
    }
}

void sgt_cuda_embedding(const sgt_opcall *call) {
    const sgt_tensor *tab = call->src[0], *it = call->src[1];
    const int64_t V = tab->shape[0], C = tab->shape[1], n = sgt_numel(it);
    if (!n || !C) return;
    int32_t *host = (int32_t *)sgt_cuda_host_scratch((size_t)n * sizeof(int32_t));
    sgt_cuda_fetch_indices("embedding", it, V, false, 0, host);
    const unsigned g = sgt_cuda_blocks(n * C);
    cudaStream_t s = sgt_cuda_stream();
    if (sgt_dtype_size(tab->dtype) == 4)
        k_embedding<uint32_t><<<g, SGT_CUDA_THREADS, 0, s>>>((const uint32_t *)sgt_ptr(tab), (const int32_t *)sgt_ptr(it),
                                                            (uint32_t *)sgt_ptr(call->dst[0]), n, C);
    else
        k_embedding<uint64_t><<<g, SGT_CUDA_THREADS, 0, s>>>((const uint64_t *)sgt_ptr(tab), (const int32_t *)sgt_ptr(it),
                                                            (uint64_t *)sgt_ptr(call->dst[0]), n, C);
    CUDA_LAUNCH_CHECK("k_embedding");
}

/* ---- index_copy_rows: dst row idx[i] = rows[i] (dst rows strided by ld elements) ----
 * A repeated index takes the last of its rows (the CPU's order): each thread walks the indices
 * for its column and keeps the last write, so no two threads write one element. */
template <typename E>
__global__ void k_index_copy(E *dst, const int32_t *idx, const E *rows, int64_t n, int64_t C, int64_t ld) {
    SGT_CUDA_FOR_EACH(w, n * C) {
        const int64_t i = w / C, j = w - i * C;
        bool last = true;
        for (int64_t q = i + 1; q < n && last; q++) last = idx[q] != idx[i];
        if (last) dst[(int64_t)idx[i] * ld + j] = rows[w];
    }
}

void sgt_cuda_index_copy_rows(const sgt_opcall *call) {
    sgt_tensor *dst = call->dst[0];
    const sgt_tensor *it = call->src[1], *rows = call->src[2];
    const int64_t n = sgt_numel(it), C = dst->shape[1];
    if (!n || !C) return;
    int32_t *host = (int32_t *)sgt_cuda_host_scratch((size_t)n * sizeof(int32_t));
    sgt_cuda_fetch_indices("index_copy_rows", it, dst->shape[0], false, 0, host);
    const unsigned g = sgt_cuda_blocks(n * C);
    cudaStream_t s = sgt_cuda_stream();
    const int32_t *d_idx = (const int32_t *)sgt_ptr(it);
    switch (sgt_dtype_size(dst->dtype)) {
    case 2: k_index_copy<uint16_t><<<g, SGT_CUDA_THREADS, 0, s>>>((uint16_t *)sgt_ptr(dst), d_idx, (const uint16_t *)sgt_ptr(rows), n, C, dst->stride[0]); break;
    case 4: k_index_copy<uint32_t><<<g, SGT_CUDA_THREADS, 0, s>>>((uint32_t *)sgt_ptr(dst), d_idx, (const uint32_t *)sgt_ptr(rows), n, C, dst->stride[0]); break;
    default: k_index_copy<uint64_t><<<g, SGT_CUDA_THREADS, 0, s>>>((uint64_t *)sgt_ptr(dst), d_idx, (const uint64_t *)sgt_ptr(rows), n, C, dst->stride[0]); break;
    }
    CUDA_LAUNCH_CHECK("k_index_copy");
}

/* ---- index_add_rows: dst [V, C] += rows [n, C] at idx [n] ----
 * The host groups the source rows by destination row (a stable counting sort: within a group,
 * ascending source position) and uploads the groups; a thread owns one (group, column) element
 * and adds its sources in that order, exactly the sequence of += the CPU kernel performs. */
template <typename T>
__global__ void k_index_add(T *dst, const T *rows, const int32_t *order, const int32_t *seg_row,
                            const int32_t *seg_start, int64_t nseg, int64_t C) {
    SGT_CUDA_FOR_EACH(w, nseg * C) {
        const int64_t u = w / C, j = w - u * C;
        T *d = dst + (int64_t)seg_row[u] * C + j;
        T acc = *d;
        for (int32_t p = seg_start[u]; p < seg_start[u + 1]; p++) acc += rows[(int64_t)order[p] * C + j];
        *d = acc;
    }
}

void sgt_cuda_index_add_rows(const sgt_opcall *call) {
    sgt_tensor *dst = call->dst[0];
    const sgt_tensor *it = call->src[1], *rows = call->src[2];
    SGT_CHECK(sgt_is_contiguous(dst), "index_add_rows: destination must be contiguous");
    const int64_t n = sgt_numel(it), V = dst->shape[0], C = dst->shape[1];
    if (!n || !C) return;
    SGT_CHECK(n < INT_MAX && V < INT_MAX, "index_add_rows: %lld indices into %lld rows is too many", (long long)n,
              (long long)V);
    /* host scratch: idx[n] | count[V] | order[n] | seg_row[n] | seg_start[n + 1] */
    int32_t *idx = (int32_t *)sgt_cuda_host_scratch(sizeof(int32_t) * (size_t)(4 * n + V + 1));
    int32_t *count = idx + n, *order = count + V, *seg_row = order + n, *seg_start = seg_row + n;
    SGT_CHECK(!sgt_cuda_graph_recording(), "index_add_rows: groups its indices on the host, so it cannot be recorded in a graph");
    sgt_cuda_fetch_indices("index_add_rows", it, V, false, 0, idx);
    memset(count, 0, sizeof(int32_t) * (size_t)V);
    for (int64_t i = 0; i < n; i++) count[idx[i]]++;
    int64_t nseg = 0, at = 0;
    for (int64_t v = 0; v < V; v++) { /* count[v] becomes the next free slot of row v's group */
        if (!count[v]) continue;
        seg_row[nseg] = (int32_t)v;
        seg_start[nseg++] = (int32_t)at;
        const int32_t c = count[v];
        count[v] = (int32_t)at;
        at += c;
    }
    seg_start[nseg] = (int32_t)n;
    for (int64_t i = 0; i < n; i++) order[count[idx[i]]++] = (int32_t)i;
    /* the device gets order | seg_row | seg_start in the host's layout, in one copy */
    int32_t *d_order = (int32_t *)sgt_cuda_scratch(sizeof(int32_t) * (size_t)(3 * n + 1));
    int32_t *d_row = d_order + n, *d_start = d_row + n;
    sgt_device_copy(d_order, SGT_CUDA, order, SGT_CPU, sizeof(int32_t) * (size_t)(3 * n + 1));
    const unsigned g = sgt_cuda_blocks(nseg * C);
    cudaStream_t s = sgt_cuda_stream();
    if (dst->dtype == SGT_F32)
        k_index_add<float><<<g, SGT_CUDA_THREADS, 0, s>>>((float *)sgt_ptr(dst), (const float *)sgt_ptr(rows), d_order,
                                                         d_row, d_start, nseg, C);
    else
        k_index_add<double><<<g, SGT_CUDA_THREADS, 0, s>>>((double *)sgt_ptr(dst), (const double *)sgt_ptr(rows),
                                                          d_order, d_row, d_start, nseg, C);
    CUDA_LAUNCH_CHECK("k_index_add");
}

/* ---- top-k: one block per row, k rounds of a block-wide "best not yet taken" ----
 * The order (NaN largest, then value, ties to the lower index) is strict and total, so "not yet
 * taken" is simply "after the previous winner in that order", and the result is exact. */

template <typename T> __global__ void k_topk(const T *x, T *vals, int32_t *inds, int64_t rows, int64_t n, int64_t k) {
    __shared__ T shv[32];
    __shared__ int32_t shi[32];
    __shared__ T prev_v;
    __shared__ int32_t prev_i;
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * n;
        for (int64_t p = 0; p < k; p++) {
            T best = 0;
            int32_t bi = -1; /* -1: none */
            for (int32_t i = threadIdx.x; i < (int32_t)n; i += blockDim.x) {
                const T v = xr[i];
                if (p > 0 && !sgt_better(prev_v, prev_i, v, i)) continue; /* taken already */
                if (bi < 0 || sgt_better(v, i, best, bi)) {
                    best = v;
                    bi = i;
                }
            }
            sgt_block_best(best, bi, shv, shi);
            if (threadIdx.x == 0) {
                vals[r * k + p] = best;
                inds[r * k + p] = bi;
                prev_v = best;
                prev_i = bi;
            }
            __syncthreads();
        }
    }
}

void sgt_cuda_topk(const sgt_opcall *call) {
    const sgt_tensor *x = call->src[0];
    const int64_t n = x->shape[x->ndim - 1], rows = n ? sgt_numel(x) / n : 0, k = call->ip[0];
    if (!rows || !k) return;
    SGT_CHECK(n < INT_MAX, "topk: rows of %lld elements are too long", (long long)n);
    const unsigned g = sgt_cuda_row_blocks(rows);
    const int t = sgt_cuda_row_threads(n);
    cudaStream_t s = sgt_cuda_stream();
    if (x->dtype == SGT_F32)
        k_topk<float><<<g, t, 0, s>>>((const float *)sgt_ptr(x), (float *)sgt_ptr(call->dst[0]),
                                      (int32_t *)sgt_ptr(call->dst[1]), rows, n, k);
    else
        k_topk<double><<<g, t, 0, s>>>((const double *)sgt_ptr(x), (double *)sgt_ptr(call->dst[0]),
                                       (int32_t *)sgt_ptr(call->dst[1]), rows, n, k);
    CUDA_LAUNCH_CHECK("k_topk");
}

/* ---- gather / scatter along the last dim ---- */

template <typename T> __global__ void k_gather(const T *x, const int32_t *idx, T *y, int64_t rows, int64_t n, int64_t k) {
    SGT_CUDA_FOR_EACH(w, rows * k) {
        const int64_t r = w / k;
        y[w] = x[r * n + idx[w]];
    }
}

void sgt_cuda_gather_last(const sgt_opcall *call) {
    const sgt_tensor *x = call->src[0], *it = call->src[1];
    const int64_t n = x->shape[x->ndim - 1], k = it->shape[it->ndim - 1], rows = k ? sgt_numel(it) / k : 0;
    if (!rows || !k) return;
    int32_t *host = (int32_t *)sgt_cuda_host_scratch(sizeof(int32_t) * (size_t)sgt_numel(it));
    sgt_cuda_fetch_indices("gather_last", it, n, false, 0, host);
    const unsigned g = sgt_cuda_blocks(rows * k);
    cudaStream_t s = sgt_cuda_stream();
    if (x->dtype == SGT_F32)
        k_gather<float><<<g, SGT_CUDA_THREADS, 0, s>>>((const float *)sgt_ptr(x), (const int32_t *)sgt_ptr(it),
                                                      (float *)sgt_ptr(call->dst[0]), rows, n, k);
    else
        k_gather<double><<<g, SGT_CUDA_THREADS, 0, s>>>((const double *)sgt_ptr(x), (const int32_t *)sgt_ptr(it),
                                                       (double *)sgt_ptr(call->dst[0]), rows, n, k);
    CUDA_LAUNCH_CHECK("k_gather");
}

/* One block per row: the block zeroes the row, then thread 0 adds the k values in order, the
 * CPU's sequence of += (k is small: top-k routing). */
template <typename T> __global__ void k_scatter(const T *v, const int32_t *idx, T *y, int64_t rows, int64_t n, int64_t k) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        T *yr = y + r * n;
        for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = 0;
        __syncthreads();
        if (threadIdx.x == 0)
            for (int64_t j = 0; j < k; j++) yr[idx[r * k + j]] += v[r * k + j];
        __syncthreads();
    }
}

void sgt_cuda_scatter_add_last(const sgt_opcall *call) {
    const sgt_tensor *v = call->src[0], *it = call->src[1];
    const int64_t n = call->ip[0], k = it->shape[it->ndim - 1], rows = sgt_numel(call->dst[0]) / (n ? n : 1);
    if (!rows || !n) return;
    int32_t *host = (int32_t *)sgt_cuda_host_scratch(sizeof(int32_t) * (size_t)sgt_numel(it));
    sgt_cuda_fetch_indices("scatter_add_last", it, n, false, 0, host);
    const unsigned g = sgt_cuda_row_blocks(rows);
    const int t = sgt_cuda_row_threads(n);
    cudaStream_t s = sgt_cuda_stream();
    if (v->dtype == SGT_F32)
        k_scatter<float><<<g, t, 0, s>>>((const float *)sgt_ptr(v), (const int32_t *)sgt_ptr(it),
                                         (float *)sgt_ptr(call->dst[0]), rows, n, k);
    else
        k_scatter<double><<<g, t, 0, s>>>((const double *)sgt_ptr(v), (const int32_t *)sgt_ptr(it),
                                          (double *)sgt_ptr(call->dst[0]), rows, n, k);
    CUDA_LAUNCH_CHECK("k_scatter");
}

/* ---- concat: input i is a contiguous [outer, xrow] block copied into columns [at, at + xrow) ---- */

template <typename E> __global__ void k_concat_part(const E *x, E *y, int64_t outer, int64_t xrow, int64_t yrow, int64_t at) {
    SGT_CUDA_FOR_EACH(w, outer * xrow) {
        const int64_t o = w / xrow, e = w - o * xrow;
        y[o * yrow + at + e] = x[w];
    }
}

template <typename E> static void concat_typed(const sgt_opcall *call, int64_t outer, int64_t inner, int d) {
    sgt_tensor *y = call->dst[0];
    const int64_t yrow = y->shape[d] * inner;
    int64_t at = 0;
    cudaStream_t s = sgt_cuda_stream();
    for (int i = 0; i < call->nsrc; i++) {
        const sgt_tensor *x = call->src[i];
        const int64_t xrow = x->shape[d] * inner;
        if (outer * xrow > 0) {
            k_concat_part<E><<<sgt_cuda_blocks(outer * xrow), SGT_CUDA_THREADS, 0, s>>>(
                (const E *)sgt_ptr(x), (E *)sgt_ptr(y), outer, xrow, yrow, at);
            CUDA_LAUNCH_CHECK("k_concat_part");
        }
        at += xrow;
    }
}

void sgt_cuda_concat(const sgt_opcall *call) {
    sgt_tensor *y = call->dst[0];
    const int d = (int)call->ip[0];
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < d; i++) outer *= y->shape[i];
    for (int i = d + 1; i < y->ndim; i++) inner *= y->shape[i];
    switch (sgt_dtype_size(y->dtype)) {
    case 2: concat_typed<uint16_t>(call, outer, inner, d); break;
    case 4: concat_typed<uint32_t>(call, outer, inner, d); break;
    case 8: concat_typed<uint64_t>(call, outer, inner, d); break;
    default: SGT_FAIL("concat: no CUDA kernel for %s", sgt_dtype_name(y->dtype));
    }
}
