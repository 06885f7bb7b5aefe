/* tensor.c: tensor creation, host access, shape queries, views and the dispatch point. */
#include "tensor.h"

#include "bf16.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "custom.h"
#include "ops.h"

const sgt_op_info sgt_ops[SGT_NOPS] = {
#define SGT_OP(e, n, v, f) [SGT_OP_##e] = {n, v},
#include "op_list.h"
#undef SGT_OP
};

const sgt_kernel *sgt_cuda_kernels;
const bool *sgt_cuda_bf16_native;

/* ---- creation ---- */

/* the struct is host memory even when the bytes are on a device */
static sgt_tensor *new_struct(sgt_ctx *c) {
    sgt_tensor *t = sgt_arena_alloc_host(c->arena, sizeof *t);
    memset(t, 0, sizeof *t);
    return t;
}

static void set_contiguous_strides(sgt_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

sgt_tensor *sgt_empty(sgt_ctx *c, sgt_dtype dt, int ndim, const int64_t *shape) {
    SGT_CHECK(ndim >= 0 && ndim <= SGT_MAX_DIMS, "tensor rank %d is outside 0..%d", ndim, SGT_MAX_DIMS);
    SGT_CHECK((unsigned)dt < SGT_NDTYPE, "bad dtype %d", (int)dt);
    sgt_tensor *t = new_struct(c);
    t->dtype = dt;
    t->device = c->arena->device;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        SGT_CHECK(shape[i] >= 0, "negative size %lld in dim %d", (long long)shape[i], i);
        t->shape[i] = shape[i];
    }
    set_contiguous_strides(t);
    t->data = sgt_arena_alloc(c->arena, (size_t)sgt_numel(t) * sgt_dtype_size(dt));
    return t;
}

sgt_tensor *sgt_empty_like(sgt_ctx *c, const sgt_tensor *x) { return sgt_empty(c, x->dtype, x->ndim, x->shape); }

sgt_tensor *sgt_full(sgt_ctx *c, sgt_dtype t, int ndim, const int64_t *shape, double v) {
    sgt_tensor *x = sgt_empty(c, t, ndim, shape);
    sgt_fill(c, x, v);
    return x;
}

sgt_tensor *sgt_zeros(sgt_ctx *c, sgt_dtype t, int ndim, const int64_t *shape) { return sgt_full(c, t, ndim, shape, 0.0); }

sgt_tensor *sgt_scalar(sgt_ctx *c, sgt_dtype t, double v) { return sgt_full(c, t, 0, NULL, v); }

sgt_tensor *sgt_alias(sgt_ctx *c, const sgt_tensor *x) {
    sgt_tensor *t = new_struct(c);
    *t = *x;
    t->ext = NULL;
    return t;
}

/* ---- host access (device tensors are staged through host memory) ---- */

static int64_t offset_of(const sgt_tensor *x, int64_t linear) {
    int64_t off = x->offset;
    for (int d = x->ndim - 1; d >= 0; d--) {
        int64_t i = linear % x->shape[d];
        linear /= x->shape[d];
        off += i * x->stride[d];
    }
    return off;
}

/* element i of a host array of dtype t */
static double load(const void *base, sgt_dtype t, int64_t i) {
    switch (t) {
    case SGT_F32: return ((const float *)base)[i];
    case SGT_F64: return ((const double *)base)[i];
    case SGT_I32: return ((const int32_t *)base)[i];
    case SGT_BF16: return sgt_bf16_to_f32(((const uint16_t *)base)[i]);
    default: SGT_FAIL("host access to a %s tensor is not supported", sgt_dtype_name(t));
    }
}

static void store(void *base, sgt_dtype t, int64_t i, double v) {
    switch (t) {
    case SGT_F32: ((float *)base)[i] = (float)v; break;
    case SGT_F64: ((double *)base)[i] = v; break;
    case SGT_I32: ((int32_t *)base)[i] = (int32_t)v; break;
    case SGT_BF16: ((uint16_t *)base)[i] = sgt_f32_to_bf16((float)v); break; /* through f32, as the cast op */
    default: SGT_FAIL("host access to a %s tensor is not supported", sgt_dtype_name(t));
    }
}

static void *host_buf(size_t nbytes) {
    void *p = malloc(nbytes ? nbytes : 1);
    SGT_CHECK(p, "out of host memory staging %zu bytes of a device tensor", nbytes);
    return p;
}

/* The element range [lo, hi] (in elements from data) that a non-empty view touches. Views only
 * ever have non-negative strides (narrow, permute and expand cannot make negative ones). */
static void span_of(const sgt_tensor *x, int64_t *lo, int64_t *hi) {
    int64_t h = x->offset;
    for (int d = 0; d < x->ndim; d++) {
        SGT_CHECK(x->stride[d] >= 0, "host copy: negative stride %lld in dim %d", (long long)x->stride[d], d);
        h += (x->shape[d] - 1) * x->stride[d];
    }
    *lo = x->offset;
    *hi = h;
}

void sgt_copy_to_host(const sgt_tensor *x, void *dst) {
    const int64_t n = sgt_numel(x);
    const size_t es = sgt_dtype_size(x->dtype);
    if (!n) return;
    if (sgt_is_contiguous(x)) {
        sgt_device_copy(dst, SGT_CPU, sgt_ptr(x), x->device, (size_t)n * es);
        return;
    }
    int64_t lo, hi, base = 0; /* src holds the elements from `base` on */
    span_of(x, &lo, &hi);
    const char *src = x->data;
    char *stage = NULL;
    if (x->device != SGT_CPU) { /* fetch the whole span once, gather on the host */
        stage = host_buf((size_t)(hi - lo + 1) * es);
        sgt_device_copy(stage, SGT_CPU, (const char *)x->data + lo * (int64_t)es, x->device, (size_t)(hi - lo + 1) * es);
        src = stage;
        base = lo;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy((char *)dst + i * (int64_t)es, src + (offset_of(x, i) - base) * (int64_t)es, es);
    free(stage);
}

void sgt_copy_from_host(sgt_tensor *x, const void *src) {
    const int64_t n = sgt_numel(x);
    const size_t es = sgt_dtype_size(x->dtype);
    if (!n) return;
    if (sgt_is_contiguous(x)) {
        sgt_device_copy(sgt_ptr(x), x->device, src, SGT_CPU, (size_t)n * es);
        return;
    }
    int64_t lo, hi, base = 0; /* dst holds the elements from `base` on */
    span_of(x, &lo, &hi);
    char *dst = x->data, *stage = NULL;
    const size_t span = (size_t)(hi - lo + 1) * es;
    if (x->device != SGT_CPU) { /* read-modify-write the span, so bytes between the view's elements stay */
        stage = host_buf(span);
        sgt_device_copy(stage, SGT_CPU, (const char *)x->data + lo * (int64_t)es, x->device, span);
        dst = stage;
        base = lo;
    }
    for (int64_t i = 0; i < n; i++)
        memcpy(dst + (offset_of(x, i) - base) * (int64_t)es, (const char *)src + i * (int64_t)es, es);
    if (stage) sgt_device_copy((char *)x->data + lo * (int64_t)es, x->device, stage, SGT_CPU, span);
    free(stage);
}

sgt_tensor *sgt_to_device(sgt_ctx *c, sgt_tensor *x, sgt_device d) {
    SGT_CHECK(c->arena->device == d, "to_device: the context's arena '%s' is on %s, not on %s", c->arena->name,
              sgt_device_name(c->arena->device), sgt_device_name(d));
    sgt_tensor *y = sgt_empty(c, x->dtype, x->ndim, x->shape);
    const size_t nbytes = (size_t)sgt_numel(x) * sgt_dtype_size(x->dtype);
    if (sgt_is_contiguous(x)) {
        sgt_device_copy(y->data, d, sgt_ptr(x), x->device, nbytes);
    } else {
        void *stage = host_buf(nbytes);
        sgt_copy_to_host(x, stage);
        sgt_copy_from_host(y, stage);
        free(stage);
    }
    return y;
}

sgt_tensor *sgt_from_f64(sgt_ctx *c, sgt_dtype t, int ndim, const int64_t *shape, const double *v) {
    sgt_tensor *x = sgt_empty(c, t, ndim, shape);
    int64_t n = sgt_numel(x);
    if (x->device == SGT_CPU) {
        for (int64_t i = 0; i < n; i++) store(x->data, t, i, v[i]);
        return x;
    }
    void *stage = host_buf((size_t)n * sgt_dtype_size(t));
    for (int64_t i = 0; i < n; i++) store(stage, t, i, v[i]);
    sgt_copy_from_host(x, stage);
    free(stage);
    return x;
}

sgt_tensor *sgt_from_i32(sgt_ctx *c, int ndim, const int64_t *shape, const int32_t *v) {
    sgt_tensor *x = sgt_empty(c, SGT_I32, ndim, shape);
    sgt_copy_from_host(x, v);
    return x;
}

void sgt_to_f64(const sgt_tensor *x, double *out) {
    int64_t n = sgt_numel(x);
    if (x->device == SGT_CPU) {
        for (int64_t i = 0; i < n; i++) out[i] = load(x->data, x->dtype, offset_of(x, i));
        return;
    }
    if (x->dtype != SGT_F32 && x->dtype != SGT_F64 && x->dtype != SGT_I32)
        SGT_FAIL("host access to a %s tensor is not supported", sgt_dtype_name(x->dtype));
    void *stage = host_buf((size_t)n * sgt_dtype_size(x->dtype));
    sgt_copy_to_host(x, stage);
    for (int64_t i = 0; i < n; i++) out[i] = load(stage, x->dtype, i);
    free(stage);
}

/* one element, wherever it lives */
static double get_at(const sgt_tensor *x, int64_t off) {
    if (x->device == SGT_CPU) return load(x->data, x->dtype, off);
    char v[8];
    const size_t es = sgt_dtype_size(x->dtype);
    sgt_device_copy(v, SGT_CPU, (const char *)x->data + off * (int64_t)es, x->device, es);
    return load(v, x->dtype, 0);
}

static void set_at(sgt_tensor *x, int64_t off, double v) {
    if (x->device == SGT_CPU) {
        store(x->data, x->dtype, off, v);
        return;
    }
    char b[8];
    const size_t es = sgt_dtype_size(x->dtype);
    store(b, x->dtype, 0, v);
    sgt_device_copy((char *)x->data + off * (int64_t)es, x->device, b, SGT_CPU, es);
}

double sgt_item(const sgt_tensor *x) {
    SGT_CHECK(sgt_numel(x) == 1, "item() of a tensor with %lld elements", (long long)sgt_numel(x));
    return get_at(x, x->offset);
}

static int64_t index_offset(const sgt_tensor *x, const int64_t *idx) {
    int64_t off = x->offset;
    for (int d = 0; d < x->ndim; d++) {
        SGT_CHECK(idx[d] >= 0 && idx[d] < x->shape[d], "index %lld out of range for dim %d of size %lld",
                  (long long)idx[d], d, (long long)x->shape[d]);
        off += idx[d] * x->stride[d];
    }
    return off;
}

double sgt_get(const sgt_tensor *x, const int64_t *idx) { return get_at(x, index_offset(x, idx)); }

void sgt_set(sgt_tensor *x, const int64_t *idx, double v) { set_at(x, index_offset(x, idx), v); }

/* ---- shape queries ---- */

int64_t sgt_numel(const sgt_tensor *x) {
    int64_t n = 1;
    for (int i = 0; i < x->ndim; i++) n *= x->shape[i];
    return n;
}

bool sgt_is_contiguous(const sgt_tensor *x) {
    int64_t s = 1;
    for (int i = x->ndim - 1; i >= 0; i--) {
        if (x->shape[i] != 1 && x->stride[i] != s) return false;
        s *= x->shape[i];
    }
    return true;
}

bool sgt_same_shape(const sgt_tensor *a, const sgt_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *sgt_shape_str(const sgt_tensor *x, char *buf, int n) {
    int k = snprintf(buf, (size_t)n, "[");
    for (int i = 0; i < x->ndim && k < n; i++)
        k += snprintf(buf + k, (size_t)(n - k), "%s%lld", i ? "," : "", (long long)x->shape[i]);
    if (k < n) snprintf(buf + k, (size_t)(n - k), "] %s", sgt_dtype_name(x->dtype));
    return buf;
}

int sgt_dim(const sgt_tensor *x, int dim, const char *op) {
    int d = dim < 0 ? dim + x->ndim : dim;
    SGT_CHECK(d >= 0 && d < x->ndim, "%s: dim %d out of range for a rank-%d tensor", op, dim, x->ndim);
    return d;
}

/* ---- the dispatch point ---- */

static bool uses_bf16(const sgt_opcall *call) {
    for (int i = 0; i < call->nsrc; i++)
        if (call->src[i]->dtype == SGT_BF16) return true;
    for (int i = 0; i < call->ndst; i++)
        if (call->dst[i]->dtype == SGT_BF16) return true;
    return false;
}

/* run kernel k on f32 stand-ins for the bf16 operands (see sgt_cpu_bf16_native in tensor.h).
 * The stand-ins are contiguous, in c's arena, and released when the op returns (on a device the
 * stream orders the reuse). Outputs are cast in as well as out, so in-place and accumulating
 * kernels see their current values. */
static void run_promoted(sgt_ctx *c, sgt_kernel k, sgt_kernel cast, const sgt_opcall *call) {
    sgt_arena_mark mark = sgt_arena_get_mark(c->arena);
    sgt_opcall p = *call;
    sgt_tensor *orig[SGT_MAX_SRC + SGT_MAX_DST], *temp[SGT_MAX_SRC + SGT_MAX_DST];
    int n = 0;
    for (int i = 0; i < call->nsrc + call->ndst; i++) {
        sgt_tensor **slot = i < call->nsrc ? &p.src[i] : &p.dst[i - call->nsrc];
        sgt_tensor *x = *slot;
        if (x->dtype != SGT_BF16) continue;
        sgt_tensor *t = NULL;
        for (int j = 0; j < n && !t; j++) /* one stand-in per tensor (an op may see one twice) */
            if (orig[j] == x) t = temp[j];
        if (!t) {
            t = sgt_empty(c, SGT_F32, x->ndim, x->shape);
            sgt_opcall in = {.op = SGT_OP_CAST, .nsrc = 1, .ndst = 1, .src = {x}, .dst = {t}};
            cast(&in);
            orig[n] = x;
            temp[n++] = t;
        }
        *slot = t;
    }
    k(&p);
    for (int i = 0; i < call->ndst; i++)
        if (call->dst[i]->dtype == SGT_BF16) {
            sgt_opcall out = {.op = SGT_OP_CAST, .nsrc = 1, .ndst = 1, .src = {p.dst[i]}, .dst = {call->dst[i]}};
            cast(&out);
        }
    sgt_arena_rewind(c->arena, mark);
}

const char *sgt_opcall_name(const sgt_opcall *call) {
    return call->op == SGT_OP_CUSTOM && call->custom ? call->custom->name : sgt_ops[call->op].name;
}

void sgt_dispatch(sgt_ctx *c, sgt_opcall *call) {
    const sgt_op_info *info = &sgt_ops[call->op];
    if (!info->is_view) {
        sgt_device dev = call->dst[0]->device;
        for (int i = 0; i < call->nsrc; i++)
            SGT_CHECK(call->src[i]->device == dev, "op '%s': input %d is on %s but the output is on %s", sgt_opcall_name(call), i,
                      sgt_device_name(call->src[i]->device), sgt_device_name(dev));
        sgt_kernel k = NULL, cast = NULL;
        bool native = true;
        if (dev == SGT_CPU) {
            k = sgt_cpu_kernels[call->op];
            cast = sgt_cpu_kernels[SGT_OP_CAST];
            native = sgt_cpu_bf16_native[call->op];
        } else if (dev == SGT_CUDA && sgt_cuda_kernels) {
            k = sgt_cuda_kernels[call->op];
            cast = sgt_cuda_kernels[SGT_OP_CAST];
            native = sgt_cuda_bf16_native && sgt_cuda_bf16_native[call->op];
        }
        SGT_CHECK(k, "op '%s' has no %s kernel", sgt_opcall_name(call), sgt_device_name(dev));
        if (!native && uses_bf16(call)) run_promoted(c, k, cast, call);
        else k(call);
    }
    if (c->observer) c->observer(c->observer_user, call);
}

/* ---- views ---- */

static sgt_tensor *view_of(sgt_ctx *c, sgt_tensor *x) {
    sgt_tensor *v = sgt_alias(c, x);
    v->name = NULL;
    return v;
}

static void record_view(sgt_ctx *c, sgt_op op, sgt_tensor *x, sgt_tensor *v, const int64_t *ip, int nip) {
    sgt_opcall call = {.op = op, .nsrc = 1, .ndst = 1, .src = {x}, .dst = {v}};
    for (int i = 0; i < nip; i++) call.ip[i] = ip[i];
    sgt_dispatch(c, &call);
}

sgt_tensor *sgt_contiguous(sgt_ctx *c, sgt_tensor *x) { return sgt_is_contiguous(x) ? x : sgt_copy(c, x); }

sgt_tensor *sgt_reshape(sgt_ctx *c, sgt_tensor *x, int ndim, const int64_t *shape) {
    SGT_CHECK(ndim >= 0 && ndim <= SGT_MAX_DIMS, "reshape: rank %d is outside 0..%d", ndim, SGT_MAX_DIMS);
    int64_t sh[SGT_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (shape[i] == -1) {
            SGT_CHECK(infer < 0, "reshape: more than one -1 in the new shape");
            infer = i;
        } else {
            known *= shape[i];
        }
    }
    int64_t n = sgt_numel(x);
    if (infer >= 0) {
        SGT_CHECK(known > 0 && n % known == 0, "reshape: cannot infer -1 for %lld elements", (long long)n);
        sh[infer] = n / known;
        known *= sh[infer];
    }
    char b[96];
    SGT_CHECK(known == n, "reshape: %s has %lld elements, the new shape has %lld", sgt_shape_str(x, b, sizeof b),
              (long long)n, (long long)known);
    if (!sgt_is_contiguous(x)) {
        /* a strided x is still viewable when only size-1 dims come or go: the other dims keep
         * their strides (e.g. [1, B, H, T, D] -> [B, H, T, D] of a permuted QKV buffer) */
        int64_t st[SGT_MAX_DIMS];
        int j = 0;
        bool ok = true;
        for (int i = 0; i < ndim && ok; i++) {
            if (sh[i] == 1) {
                st[i] = 1;
                continue;
            }
            while (j < x->ndim && x->shape[j] == 1) j++;
            ok = j < x->ndim && x->shape[j] == sh[i];
            if (ok) st[i] = x->stride[j++];
        }
        while (ok && j < x->ndim && x->shape[j] == 1) j++;
        if (ok && j == x->ndim) {
            sgt_tensor *v = view_of(c, x);
            v->ndim = ndim;
            memcpy(v->shape, sh, sizeof(int64_t) * (size_t)ndim);
            memcpy(v->stride, st, sizeof(int64_t) * (size_t)ndim);
            record_view(c, SGT_OP_RESHAPE, x, v, NULL, 0);
            return v;
        }
    }
    sgt_tensor *src = sgt_contiguous(c, x);
    sgt_tensor *v = view_of(c, src);
    v->ndim = ndim;
    memcpy(v->shape, sh, sizeof(int64_t) * (size_t)ndim);
    set_contiguous_strides(v);
    record_view(c, SGT_OP_RESHAPE, src, v, NULL, 0);
    return v;
}

sgt_tensor *sgt_permute(sgt_ctx *c, sgt_tensor *x, const int *perm) {
    int64_t ip[SGT_MAX_DIMS];
    unsigned seen = 0;
    sgt_tensor *v = view_of(c, x);
    for (int i = 0; i < x->ndim; i++) {
        int p = perm[i];
        SGT_CHECK(p >= 0 && p < x->ndim && !(seen & (1u << p)), "permute: not a permutation of %d dims", x->ndim);
        seen |= 1u << p;
        v->shape[i] = x->shape[p];
        v->stride[i] = x->stride[p];
        ip[i] = p;
    }
    record_view(c, SGT_OP_PERMUTE, x, v, ip, x->ndim);
    return v;
}

sgt_tensor *sgt_transpose(sgt_ctx *c, sgt_tensor *x, int d0, int d1) {
    int perm[SGT_MAX_DIMS];
    d0 = sgt_dim(x, d0, "transpose");
    d1 = sgt_dim(x, d1, "transpose");
    for (int i = 0; i < x->ndim; i++) perm[i] = i;
    perm[d0] = d1;
    perm[d1] = d0;
    return sgt_permute(c, x, perm);
}

sgt_tensor *sgt_narrow(sgt_ctx *c, sgt_tensor *x, int dim, int64_t start, int64_t len) {
    int d = sgt_dim(x, dim, "narrow");
    SGT_CHECK(start >= 0 && len >= 0 && start + len <= x->shape[d],
              "narrow: [%lld, %lld) is outside dim %d of size %lld", (long long)start, (long long)(start + len), d,
              (long long)x->shape[d]);
    sgt_tensor *v = view_of(c, x);
    v->shape[d] = len;
    v->offset += start * x->stride[d];
    int64_t ip[3] = {d, start, len};
    record_view(c, SGT_OP_NARROW, x, v, ip, 3);
    return v;
}

sgt_tensor *sgt_expand(sgt_ctx *c, sgt_tensor *x, int ndim, const int64_t *shape) {
    char b[96];
    SGT_CHECK(ndim >= x->ndim && ndim <= SGT_MAX_DIMS, "expand: cannot expand %s to rank %d",
              sgt_shape_str(x, b, sizeof b), ndim);
    sgt_tensor *v = view_of(c, x);
    int lead = ndim - x->ndim;
    v->ndim = ndim;
    for (int i = ndim - 1; i >= 0; i--) {
        int j = i - lead;
        int64_t xs = j >= 0 ? x->shape[j] : 1, st = j >= 0 ? x->stride[j] : 0;
        SGT_CHECK(xs == shape[i] || xs == 1, "expand: %s cannot broadcast to size %lld in dim %d",
                  sgt_shape_str(x, b, sizeof b), (long long)shape[i], i);
        v->shape[i] = shape[i];
        v->stride[i] = xs == shape[i] ? st : 0;
    }
    record_view(c, SGT_OP_EXPAND, x, v, NULL, 0);
    return v;
}

void sgt_split(sgt_ctx *c, sgt_tensor *x, int dim, int n, const int64_t *sizes, sgt_tensor **out) {
    int d = sgt_dim(x, dim, "split");
    int64_t at = 0;
    for (int i = 0; i < n; i++) {
        out[i] = sgt_narrow(c, x, d, at, sizes[i]);
        at += sizes[i];
    }
    SGT_CHECK(at == x->shape[d], "split: sizes add up to %lld, dim %d has %lld", (long long)at, d,
              (long long)x->shape[d]);
}
