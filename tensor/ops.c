/* ops.c: the op constructors: shape and dtype rules, output allocation, and the call to
 * sgt_dispatch. No arithmetic happens here; kernels live in cpu/ (and the CUDA backend). */
#include "ops.h"

#include "gemm_layout.h"
#include "rng.h"

#include <string.h>

static void check_float(const char *op, const sgt_tensor *x) {
    SGT_CHECK(sgt_dtype_is_float(x->dtype), "op '%s': needs f32, f64 or bf16, got %s", op, sgt_dtype_name(x->dtype));
}

/* The dtype of saved statistics (log-sum-exp, rstd, a loss) of a float input: bf16 inputs keep
 * theirs in f32, as mixed precision reduces in f32. */
static sgt_dtype stat_dtype(sgt_dtype t) { return t == SGT_BF16 ? SGT_F32 : t; }

/* the same dtype, or f32 and bf16 (what a mixed-precision boundary may mix) */
static bool f32_bf16_pair(sgt_dtype a, sgt_dtype b) {
    return a == b || (a == SGT_F32 && b == SGT_BF16) || (a == SGT_BF16 && b == SGT_F32);
}

static void check_same_dtype(const char *op, const sgt_tensor *a, const sgt_tensor *b) {
    SGT_CHECK(a->dtype == b->dtype, "op '%s': dtypes differ (%s and %s)", op, sgt_dtype_name(a->dtype),
              sgt_dtype_name(b->dtype));
}

static void check_i32(const char *op, const sgt_tensor *x) {
    SGT_CHECK(x->dtype == SGT_I32, "op '%s': indices must be i32, got %s", op, sgt_dtype_name(x->dtype));
}

static void run(sgt_ctx *c, sgt_op op, int nsrc, sgt_tensor **src, int ndst, sgt_tensor **dst, const int64_t *ip,
                int nip, const double *fp, int nfp) {
    sgt_opcall call = {.op = op, .nsrc = nsrc, .ndst = ndst};
    for (int i = 0; i < nsrc; i++) call.src[i] = src[i];
    for (int i = 0; i < ndst; i++) call.dst[i] = dst[i];
    for (int i = 0; i < nip; i++) call.ip[i] = ip[i];
    for (int i = 0; i < nfp; i++) call.fp[i] = fp[i];
    sgt_dispatch(c, &call);
}

/* Kernels outside the elementwise family take contiguous inputs: this makes them so
 * (a recorded copy, so gradients flow through it). */
#define CONTIG(x) ((x) = sgt_contiguous(c, (x)))

/* numpy broadcasting of n shapes; fails naming the op */
static int broadcast(const char *op, int n, sgt_tensor **xs, int64_t *out) {
    int nd = 0;
    for (int i = 0; i < n; i++) nd = xs[i]->ndim > nd ? xs[i]->ndim : nd;
    for (int d = 0; d < nd; d++) out[d] = 1;
    for (int i = 0; i < n; i++) {
        int lead = nd - xs[i]->ndim;
        for (int d = 0; d < xs[i]->ndim; d++) {
            int64_t s = xs[i]->shape[d], *o = &out[lead + d];
            if (*o == 1) *o = s;
            else if (s != 1 && s != *o) {
                char b0[96], b1[96];
                SGT_FAIL("op '%s': shapes %s and %s do not broadcast", op, sgt_shape_str(xs[0], b0, sizeof b0),
                         sgt_shape_str(xs[i], b1, sizeof b1));
            }
        }
    }
    return nd;
}

/* ---- copies and fills ---- */

void sgt_copy_into(sgt_ctx *c, sgt_tensor *dst, sgt_tensor *src) {
    char b0[96], b1[96];
    SGT_CHECK(sgt_same_shape(dst, src), "copy: shapes %s and %s differ", sgt_shape_str(dst, b0, sizeof b0),
              sgt_shape_str(src, b1, sizeof b1));
    check_same_dtype("copy", dst, src);
    run(c, SGT_OP_COPY, 1, &src, 1, &dst, NULL, 0, NULL, 0);
}

sgt_tensor *sgt_copy(sgt_ctx *c, sgt_tensor *x) {
    sgt_tensor *y = sgt_empty_like(c, x);
    sgt_copy_into(c, y, x);
    return y;
}

sgt_tensor *sgt_cast(sgt_ctx *c, sgt_tensor *x, sgt_dtype t) {
    sgt_tensor *y = sgt_empty(c, t, x->ndim, x->shape);
    run(c, SGT_OP_CAST, 1, &x, 1, &y, NULL, 0, NULL, 0);
    return y;
}

void sgt_fill(sgt_ctx *c, sgt_tensor *dst, double v) { run(c, SGT_OP_FILL, 0, NULL, 1, &dst, NULL, 0, &v, 1); }

void sgt_rng_uniform(sgt_ctx *c, sgt_tensor *dst, uint64_t seed, uint64_t stream, double lo, double hi) {
    check_float("rng_uniform", dst);
    int64_t ip[2] = {(int64_t)seed, (int64_t)stream};
    double fp[2] = {lo, hi};
    run(c, SGT_OP_RNG_UNIFORM, 0, NULL, 1, &dst, ip, 2, fp, 2);
}

void sgt_rng_normal(sgt_ctx *c, sgt_tensor *dst, uint64_t seed, uint64_t stream, double mean, double std) {
    check_float("rng_normal", dst);
    int64_t ip[2] = {(int64_t)seed, (int64_t)stream};
    double fp[2] = {mean, std};
    run(c, SGT_OP_RNG_NORMAL, 0, NULL, 1, &dst, ip, 2, fp, 2);
}

sgt_tensor *sgt_dropout(sgt_ctx *c, sgt_tensor *x, double p, uint64_t seed, uint64_t stream) {
    check_float("dropout", x);
    SGT_CHECK(p >= 0 && p < 1, "dropout: probability %g is outside [0, 1)", p);
    sgt_tensor *xc = sgt_contiguous(c, x); /* the mask is by logical position */
    sgt_tensor *y = sgt_empty(c, x->dtype, x->ndim, x->shape);
    int64_t ip[3] = {(int64_t)seed, (int64_t)stream, (int64_t)sgt_dropout_threshold(p)};
    double fp[2] = {1.0 / (1.0 - p), p};
    run(c, SGT_OP_DROPOUT, 1, &xc, 1, &y, ip, 3, fp, 2);
    return y;
}

/* ---- elementwise ---- */

static sgt_tensor *binary(sgt_ctx *c, sgt_op op, sgt_tensor *a, sgt_tensor *b, int64_t ip) {
    const char *name = sgt_ops[op].name;
    check_float(name, a);
    check_same_dtype(name, a, b);
    sgt_tensor *src[2] = {a, b};
    int64_t shape[SGT_MAX_DIMS];
    int nd = broadcast(name, 2, src, shape);
    sgt_tensor *y = sgt_empty(c, a->dtype, nd, shape);
    run(c, op, 2, src, 1, &y, &ip, 1, NULL, 0);
    return y;
}

sgt_tensor *sgt_add(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b) { return binary(c, SGT_OP_ADD, a, b, 0); }
sgt_tensor *sgt_sub(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b) { return binary(c, SGT_OP_SUB, a, b, 0); }
sgt_tensor *sgt_mul(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b) { return binary(c, SGT_OP_MUL, a, b, 0); }
sgt_tensor *sgt_div(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b) { return binary(c, SGT_OP_DIV, a, b, 0); }

void sgt_add_into(sgt_ctx *c, sgt_tensor *dst, sgt_tensor *x) {
    check_float("add_into", dst);
    check_same_dtype("add_into", dst, x);
    sgt_tensor *src[2] = {dst, x};
    int64_t shape[SGT_MAX_DIMS];
    int nd = broadcast("add_into", 2, src, shape);
    char b0[96], b1[96];
    SGT_CHECK(nd == dst->ndim && !memcmp(shape, dst->shape, sizeof(int64_t) * (size_t)nd),
              "add_into: %s does not broadcast into %s", sgt_shape_str(x, b0, sizeof b0),
              sgt_shape_str(dst, b1, sizeof b1));
    run(c, SGT_OP_ADD, 2, src, 1, &dst, NULL, 0, NULL, 0);
}

sgt_tensor *sgt_unary(sgt_ctx *c, sgt_op op, sgt_tensor *x, double s) {
    SGT_CHECK(op == SGT_OP_ADD_SCALAR || op == SGT_OP_MUL_SCALAR || op == SGT_OP_POW_SCALAR ||
                  (op >= SGT_OP_NEG && op <= SGT_OP_RELU),
              "sgt_unary: '%s' is not a unary op", sgt_ops[op].name);
    check_float(sgt_ops[op].name, x);
    sgt_tensor *y = sgt_empty(c, x->dtype, x->ndim, x->shape);
    run(c, op, 1, &x, 1, &y, NULL, 0, &s, 1);
    return y;
}

sgt_tensor *sgt_add_scalar(sgt_ctx *c, sgt_tensor *x, double s) { return sgt_unary(c, SGT_OP_ADD_SCALAR, x, s); }
sgt_tensor *sgt_mul_scalar(sgt_ctx *c, sgt_tensor *x, double s) { return sgt_unary(c, SGT_OP_MUL_SCALAR, x, s); }
sgt_tensor *sgt_pow_scalar(sgt_ctx *c, sgt_tensor *x, double p) { return sgt_unary(c, SGT_OP_POW_SCALAR, x, p); }
sgt_tensor *sgt_neg(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_NEG, x, 0); }
sgt_tensor *sgt_exp(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_EXP, x, 0); }
sgt_tensor *sgt_log(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_LOG, x, 0); }
sgt_tensor *sgt_sqrt(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_SQRT, x, 0); }
sgt_tensor *sgt_rsqrt(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_RSQRT, x, 0); }
sgt_tensor *sgt_tanh(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_TANH, x, 0); }
sgt_tensor *sgt_sigmoid(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_SIGMOID, x, 0); }
sgt_tensor *sgt_silu(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_SILU, x, 0); }
sgt_tensor *sgt_gelu(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_GELU, x, 0); }
sgt_tensor *sgt_gelu_erf(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_GELU_ERF, x, 0); }
sgt_tensor *sgt_sin(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_SIN, x, 0); }
sgt_tensor *sgt_cos(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_COS, x, 0); }
sgt_tensor *sgt_relu(sgt_ctx *c, sgt_tensor *x) { return sgt_unary(c, SGT_OP_RELU, x, 0); }

sgt_tensor *sgt_unary_bwd(sgt_ctx *c, sgt_op op, double s, sgt_tensor *x, sgt_tensor *y, sgt_tensor *dy) {
    char b0[96], b1[96];
    SGT_CHECK(sgt_same_shape(x, dy) && sgt_same_shape(y, dy), "unary_bwd(%s): shapes %s and %s differ",
              sgt_ops[op].name, sgt_shape_str(x, b0, sizeof b0), sgt_shape_str(dy, b1, sizeof b1));
    sgt_tensor *dx = sgt_empty(c, dy->dtype, dy->ndim, dy->shape);
    sgt_tensor *src[3] = {x, y, dy};
    int64_t ip = op;
    run(c, SGT_OP_UNARY_BWD, 3, src, 1, &dx, &ip, 1, &s, 1);
    return dx;
}

/* ---- comparison and selection ---- */

sgt_tensor *sgt_cmp(sgt_ctx *c, sgt_cmp_kind k, sgt_tensor *a, sgt_tensor *b) {
    SGT_CHECK(k >= SGT_CMP_EQ && k <= SGT_CMP_GE, "cmp: bad comparison kind %d", (int)k);
    return binary(c, SGT_OP_CMP, a, b, k);
}

sgt_tensor *sgt_where(sgt_ctx *c, sgt_tensor *cond, sgt_tensor *a, sgt_tensor *b) {
    check_float("where", a);
    check_same_dtype("where", a, b);
    check_same_dtype("where", a, cond);
    sgt_tensor *src[3] = {cond, a, b};
    int64_t shape[SGT_MAX_DIMS];
    int nd = broadcast("where", 3, src, shape);
    sgt_tensor *y = sgt_empty(c, a->dtype, nd, shape);
    run(c, SGT_OP_WHERE, 3, src, 1, &y, NULL, 0, NULL, 0);
    return y;
}

sgt_tensor *sgt_masked_fill(sgt_ctx *c, sgt_tensor *x, sgt_tensor *mask, double v) {
    check_float("masked_fill", x);
    check_same_dtype("masked_fill", x, mask);
    sgt_tensor *src[2] = {x, mask};
    int64_t shape[SGT_MAX_DIMS];
    int nd = broadcast("masked_fill", 2, src, shape);
    char b0[96], b1[96];
    SGT_CHECK(nd == x->ndim && !memcmp(shape, x->shape, sizeof(int64_t) * (size_t)nd),
              "masked_fill: mask %s does not broadcast to %s", sgt_shape_str(mask, b0, sizeof b0),
              sgt_shape_str(x, b1, sizeof b1));
    sgt_tensor *y = sgt_empty_like(c, x);
    run(c, SGT_OP_MASKED_FILL, 2, src, 1, &y, NULL, 0, &v, 1);
    return y;
}

/* ---- reductions ---- */

static sgt_tensor *reduce(sgt_ctx *c, sgt_op op, sgt_tensor *x, uint32_t mask, bool keepdim, sgt_dtype out_t) {
    int64_t shape[SGT_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (mask & (1u << d)) {
            SGT_CHECK(x->shape[d] > 0 || op == SGT_OP_SUM, "op '%s': reducing an empty dim %d", sgt_ops[op].name, d);
            if (keepdim) shape[nd++] = 1;
        } else {
            shape[nd++] = x->shape[d];
        }
    }
    sgt_tensor *y = sgt_empty(c, out_t, nd, shape);
    int64_t ip[2] = {mask, keepdim};
    run(c, op, 1, &x, 1, &y, ip, 2, NULL, 0);
    return y;
}

static uint32_t dim_mask(sgt_tensor *x, int dim, const char *op) {
    if (dim == SGT_ALL_DIMS) return x->ndim ? (1u << x->ndim) - 1 : 0;
    return 1u << sgt_dim(x, dim, op);
}

sgt_tensor *sgt_sum_dims(sgt_ctx *c, sgt_tensor *x, uint32_t mask, bool keepdim) {
    check_float("sum", x);
    SGT_CHECK(mask < (1u << x->ndim) || (x->ndim == 0 && mask == 0), "sum: dims mask 0x%x is out of range for rank %d",
              mask, x->ndim);
    return reduce(c, SGT_OP_SUM, x, mask, keepdim, x->dtype);
}

sgt_tensor *sgt_sum(sgt_ctx *c, sgt_tensor *x, int dim, bool keepdim) {
    return sgt_sum_dims(c, x, dim_mask(x, dim, "sum"), keepdim);
}

sgt_tensor *sgt_mean(sgt_ctx *c, sgt_tensor *x, int dim, bool keepdim) {
    check_float("mean", x);
    return reduce(c, SGT_OP_MEAN, x, dim_mask(x, dim, "mean"), keepdim, x->dtype);
}

sgt_tensor *sgt_max(sgt_ctx *c, sgt_tensor *x, int dim, bool keepdim) {
    check_float("max", x);
    return reduce(c, SGT_OP_MAX, x, dim_mask(x, dim, "max"), keepdim, x->dtype);
}

sgt_tensor *sgt_argmax(sgt_ctx *c, sgt_tensor *x, int dim, bool keepdim) {
    check_float("argmax", x);
    return reduce(c, SGT_OP_ARGMAX, x, dim_mask(x, dim, "argmax"), keepdim, SGT_I32);
}

sgt_tensor *sgt_sum_to(sgt_ctx *c, sgt_tensor *x, int ndim, const int64_t *shape) {
    int lead = x->ndim - ndim;
    char b[96];
    SGT_CHECK(lead >= 0, "sum_to: %s has lower rank than the target rank %d", sgt_shape_str(x, b, sizeof b), ndim);
    uint32_t mask = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (d < lead) mask |= 1u << d;
        else if (shape[d - lead] == 1 && x->shape[d] != 1) mask |= 1u << d;
        else SGT_CHECK(shape[d - lead] == x->shape[d], "sum_to: %s cannot be summed to size %lld in dim %d",
                       sgt_shape_str(x, b, sizeof b), (long long)shape[d - lead], d);
    }
    if (!mask) return x;
    sgt_tensor *s = sgt_sum_dims(c, x, mask, true);
    return lead ? sgt_reshape(c, s, ndim, shape) : s;
}

/* ---- softmax family ---- */

static sgt_tensor *softmax_like(sgt_ctx *c, sgt_op op, sgt_tensor *x, int64_t causal) {
    check_float(sgt_ops[op].name, x);
    SGT_CHECK(x->ndim >= 1, "op '%s': needs rank >= 1", sgt_ops[op].name);
    if (causal) SGT_CHECK(x->ndim >= 2 && x->shape[x->ndim - 1] >= x->shape[x->ndim - 2],
                          "softmax_causal: needs [..., Tq, Tk] with Tk >= Tq");
    CONTIG(x);
    sgt_tensor *y = sgt_empty_like(c, x);
    run(c, op, 1, &x, 1, &y, &causal, 1, NULL, 0);
    return y;
}

sgt_tensor *sgt_softmax(sgt_ctx *c, sgt_tensor *x) { return softmax_like(c, SGT_OP_SOFTMAX, x, 0); }
sgt_tensor *sgt_softmax_causal(sgt_ctx *c, sgt_tensor *x) { return softmax_like(c, SGT_OP_SOFTMAX, x, 1); }
sgt_tensor *sgt_log_softmax(sgt_ctx *c, sgt_tensor *x) { return softmax_like(c, SGT_OP_LOG_SOFTMAX, x, 0); }

sgt_tensor *sgt_softmax_bwd(sgt_ctx *c, sgt_tensor *y, sgt_tensor *dy, bool log) {
    char b0[96], b1[96];
    SGT_CHECK(sgt_same_shape(y, dy), "softmax_bwd: shapes %s and %s differ", sgt_shape_str(y, b0, sizeof b0),
              sgt_shape_str(dy, b1, sizeof b1));
    CONTIG(y);
    CONTIG(dy);
    sgt_tensor *dx = sgt_empty_like(c, y);
    sgt_tensor *src[2] = {y, dy};
    int64_t ip = log;
    run(c, SGT_OP_SOFTMAX_BWD, 2, src, 1, &dx, &ip, 1, NULL, 0);
    return dx;
}

/* ---- matmul ---- */

sgt_tensor *sgt_matmul(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b, bool ta, bool tb) {
    check_float("matmul", a);
    check_same_dtype("matmul", a, b);
    char b0[96], b1[96];
    SGT_CHECK(a->ndim >= 2 && b->ndim >= 2, "matmul: operands must have rank >= 2, got %s and %s",
              sgt_shape_str(a, b0, sizeof b0), sgt_shape_str(b, b1, sizeof b1));
    int64_t M = a->shape[a->ndim - (ta ? 1 : 2)], Ka = a->shape[a->ndim - (ta ? 2 : 1)];
    int64_t Kb = b->shape[b->ndim - (tb ? 1 : 2)], N = b->shape[b->ndim - (tb ? 2 : 1)];
    SGT_CHECK(Ka == Kb, "matmul: inner sizes differ: %s%s @ %s%s", sgt_shape_str(a, b0, sizeof b0), ta ? "^T" : "",
              sgt_shape_str(b, b1, sizeof b1), tb ? "^T" : "");
    /* batch dims broadcast */
    int nba = a->ndim - 2, nbb = b->ndim - 2, nb = nba > nbb ? nba : nbb;
    int64_t shape[SGT_MAX_DIMS];
    for (int d = 0; d < nb; d++) {
        int ia = d - (nb - nba), ib = d - (nb - nbb);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        SGT_CHECK(sa == sb || sa == 1 || sb == 1, "matmul: batch dims of %s and %s do not broadcast",
                  sgt_shape_str(a, b0, sizeof b0), sgt_shape_str(b, b1, sizeof b1));
        shape[d] = sa == 1 ? sb : sa;
    }
    shape[nb] = M;
    shape[nb + 1] = N;
    if (!sgt_gemm_fits(a)) a = sgt_copy(c, a);
    if (!sgt_gemm_fits(b)) b = sgt_copy(c, b);
    sgt_tensor *y = sgt_empty(c, a->dtype, nb + 2, shape);
    sgt_tensor *src[2] = {a, b};
    int64_t ip[2] = {ta, tb};
    run(c, SGT_OP_MATMUL, 2, src, 1, &y, ip, 2, NULL, 0);
    return y;
}

/* ---- embedding ---- */

sgt_tensor *sgt_embedding(sgt_ctx *c, sgt_tensor *table, sgt_tensor *idx) {
    check_float("embedding", table);
    check_i32("embedding", idx);
    SGT_CHECK(table->ndim == 2, "embedding: table must be [V, C]");
    SGT_CHECK(idx->ndim < SGT_MAX_DIMS, "embedding: index rank %d too large", idx->ndim);
    CONTIG(table);
    CONTIG(idx);
    int64_t shape[SGT_MAX_DIMS];
    memcpy(shape, idx->shape, sizeof(int64_t) * (size_t)idx->ndim);
    shape[idx->ndim] = table->shape[1];
    sgt_tensor *y = sgt_empty(c, table->dtype, idx->ndim + 1, shape);
    sgt_tensor *src[2] = {table, idx};
    run(c, SGT_OP_EMBEDDING, 2, src, 1, &y, NULL, 0, NULL, 0);
    return y;
}

void sgt_index_add_rows(sgt_ctx *c, sgt_tensor *dst, sgt_tensor *idx, sgt_tensor *rows) {
    check_float("index_add_rows", dst);
    check_i32("index_add_rows", idx);
    check_same_dtype("index_add_rows", dst, rows);
    SGT_CHECK(dst->ndim == 2 && rows->ndim == idx->ndim + 1 && rows->shape[rows->ndim - 1] == dst->shape[1] &&
                  sgt_numel(rows) == sgt_numel(idx) * dst->shape[1],
              "index_add_rows: rows must be [..., C] matching idx [...] and dst [V, C]");
    SGT_CHECK(sgt_is_contiguous(dst), "index_add_rows: destination must be contiguous");
    CONTIG(idx);
    CONTIG(rows);
    sgt_tensor *src[3] = {dst, idx, rows};
    run(c, SGT_OP_INDEX_ADD_ROWS, 3, src, 1, &dst, NULL, 0, NULL, 0);
}

void sgt_index_copy_rows(sgt_ctx *c, sgt_tensor *dst, sgt_tensor *idx, sgt_tensor *rows) {
    check_i32("index_copy_rows", idx);
    check_same_dtype("index_copy_rows", dst, rows);
    SGT_CHECK(dst->ndim == 2 && rows->ndim == idx->ndim + 1 && rows->shape[rows->ndim - 1] == dst->shape[1] &&
                  sgt_numel(rows) == sgt_numel(idx) * dst->shape[1],
              "index_copy_rows: rows must be [..., C] matching idx [...] and dst [V, C]");
    SGT_CHECK(dst->shape[1] <= 1 || dst->stride[1] == 1, "index_copy_rows: destination rows must be contiguous");
    CONTIG(idx);
    CONTIG(rows);
    sgt_tensor *src[3] = {dst, idx, rows};
    run(c, SGT_OP_INDEX_COPY_ROWS, 3, src, 1, &dst, NULL, 0, NULL, 0);
}

/* ---- cross-entropy ---- */

static void check_ce(sgt_tensor *logits, sgt_tensor *targets) {
    check_float("cross_entropy", logits);
    check_i32("cross_entropy", targets);
    char b0[96], b1[96];
    SGT_CHECK(logits->ndim == 2 && targets->ndim == 1 && targets->shape[0] == logits->shape[0],
              "cross_entropy: needs logits [N, V] and targets [N], got %s and %s",
              sgt_shape_str(logits, b0, sizeof b0), sgt_shape_str(targets, b1, sizeof b1));
}

static int64_t ce_valid(const sgt_tensor *logits, int64_t valid) {
    const int64_t V = logits->shape[1];
    SGT_CHECK(valid >= 0 && valid <= V, "cross_entropy: %lld valid columns of %lld", (long long)valid, (long long)V);
    SGT_CHECK(valid > 0 || V == 0, "cross_entropy: no valid column");
    return valid;
}

sgt_tensor *sgt_cross_entropy_padded(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, int32_t ignore_index,
                                     int64_t valid, sgt_tensor **lse_out) {
    check_ce(logits, targets);
    CONTIG(logits);
    CONTIG(targets);
    const sgt_dtype st = stat_dtype(logits->dtype);
    sgt_tensor *dst[2] = {sgt_empty(c, st, 0, NULL), sgt_empty(c, st, 1, logits->shape)};
    sgt_tensor *src[2] = {logits, targets};
    int64_t ip[2] = {ignore_index, ce_valid(logits, valid)};
    run(c, SGT_OP_CROSS_ENTROPY, 2, src, 2, dst, ip, 2, NULL, 0);
    if (lse_out) *lse_out = dst[1];
    return dst[0];
}

sgt_tensor *sgt_cross_entropy(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, int32_t ignore_index,
                              sgt_tensor **lse_out) {
    return sgt_cross_entropy_padded(c, logits, targets, ignore_index, logits->ndim == 2 ? logits->shape[1] : 0,
                                    lse_out);
}

sgt_tensor *sgt_cross_entropy_bwd(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, sgt_tensor *lse,
                                  sgt_tensor *dloss, int32_t ignore_index, int64_t valid) {
    check_ce(logits, targets);
    CONTIG(logits);
    CONTIG(targets);
    CONTIG(lse);
    SGT_CHECK(lse->dtype == stat_dtype(logits->dtype) && dloss->dtype == lse->dtype,
              "cross_entropy_bwd: lse and dloss must be %s for %s logits", sgt_dtype_name(stat_dtype(logits->dtype)),
              sgt_dtype_name(logits->dtype));
    sgt_tensor *dx = sgt_empty_like(c, logits);
    sgt_tensor *src[4] = {logits, targets, lse, dloss};
    int64_t ip[2] = {ignore_index, ce_valid(logits, valid)};
    run(c, SGT_OP_CROSS_ENTROPY_BWD, 4, src, 1, &dx, ip, 2, NULL, 0);
    return dx;
}

/* ---- norms ---- */

static void check_norm(const char *op, sgt_tensor *x, sgt_tensor *w) {
    check_float(op, x);
    check_same_dtype(op, x, w);
    char b0[96], b1[96];
    SGT_CHECK(x->ndim >= 1 && w->ndim == 1 && w->shape[0] == x->shape[x->ndim - 1],
              "%s: weight %s does not match the last dim of %s", op, sgt_shape_str(w, b0, sizeof b0),
              sgt_shape_str(x, b1, sizeof b1));
}

sgt_tensor *sgt_rmsnorm(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, double eps, sgt_tensor **rstd_out) {
    return sgt_rmsnorm_to(c, x, w, eps, x->dtype, rstd_out);
}

sgt_tensor *sgt_rmsnorm_to(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, double eps, sgt_dtype out,
                           sgt_tensor **rstd_out) {
    check_norm("rmsnorm", x, w);
    SGT_CHECK(f32_bf16_pair(x->dtype, out), "rmsnorm: output dtype %s for %s input (only f32 <-> bf16 may differ)",
              sgt_dtype_name(out), sgt_dtype_name(x->dtype));
    CONTIG(x);
    CONTIG(w);
    sgt_tensor *dst[2] = {sgt_empty(c, out, x->ndim, x->shape), sgt_empty(c, stat_dtype(x->dtype), x->ndim - 1, x->shape)};
    sgt_tensor *src[2] = {x, w};
    run(c, SGT_OP_RMSNORM, 2, src, 2, dst, NULL, 0, &eps, 1);
    if (rstd_out) *rstd_out = dst[1];
    return dst[0];
}

void sgt_rmsnorm_bwd(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, sgt_tensor *rstd, sgt_tensor *dy, sgt_tensor **dx,
                     sgt_tensor **dw) {
    check_norm("rmsnorm_bwd", x, w);
    SGT_CHECK(f32_bf16_pair(x->dtype, dy->dtype) && rstd->dtype == stat_dtype(x->dtype),
              "rmsnorm_bwd: dy %s and rstd %s do not go with x %s", sgt_dtype_name(dy->dtype),
              sgt_dtype_name(rstd->dtype), sgt_dtype_name(x->dtype)); /* dy: the output's dtype */
    CONTIG(x);
    CONTIG(w);
    CONTIG(rstd);
    CONTIG(dy);
    sgt_tensor *dst[2] = {sgt_empty_like(c, x), sgt_empty_like(c, w)};
    sgt_tensor *src[4] = {x, w, rstd, dy};
    run(c, SGT_OP_RMSNORM_BWD, 4, src, 2, dst, NULL, 0, NULL, 0);
    *dx = dst[0];
    *dw = dst[1];
}

sgt_tensor *sgt_layernorm(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, sgt_tensor *b, double eps, sgt_tensor **mean_out,
                          sgt_tensor **rstd_out) {
    check_norm("layernorm", x, w);
    check_norm("layernorm", x, b);
    CONTIG(x);
    CONTIG(w);
    CONTIG(b);
    sgt_tensor *dst[3] = {sgt_empty_like(c, x), sgt_empty(c, x->dtype, x->ndim - 1, x->shape),
                          sgt_empty(c, x->dtype, x->ndim - 1, x->shape)};
    sgt_tensor *src[3] = {x, w, b};
    run(c, SGT_OP_LAYERNORM, 3, src, 3, dst, NULL, 0, &eps, 1);
    if (mean_out) *mean_out = dst[1];
    if (rstd_out) *rstd_out = dst[2];
    return dst[0];
}

void sgt_layernorm_bwd(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w, sgt_tensor *mean, sgt_tensor *rstd, sgt_tensor *dy,
                       sgt_tensor **dx, sgt_tensor **dw, sgt_tensor **db) {
    check_norm("layernorm_bwd", x, w);
    CONTIG(x);
    CONTIG(w);
    CONTIG(mean);
    CONTIG(rstd);
    CONTIG(dy);
    sgt_tensor *dst[3] = {sgt_empty_like(c, x), sgt_empty_like(c, w), sgt_empty_like(c, w)};
    sgt_tensor *src[5] = {x, w, mean, rstd, dy};
    run(c, SGT_OP_LAYERNORM_BWD, 5, src, 3, dst, NULL, 0, NULL, 0);
    *dx = dst[0];
    *dw = dst[1];
    *db = dst[2];
}

/* ---- top-k, gather, scatter ---- */

void sgt_topk(sgt_ctx *c, sgt_tensor *x, int k, sgt_tensor **values, sgt_tensor **indices) {
    check_float("topk", x);
    SGT_CHECK(x->ndim >= 1 && k >= 1 && k <= x->shape[x->ndim - 1], "topk: k=%d is outside 1..%lld", k,
              x->ndim ? (long long)x->shape[x->ndim - 1] : 0LL);
    int64_t shape[SGT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 1] = k;
    CONTIG(x);
    sgt_tensor *dst[2] = {sgt_empty(c, x->dtype, x->ndim, shape), sgt_empty(c, SGT_I32, x->ndim, shape)};
    int64_t ip = k;
    run(c, SGT_OP_TOPK, 1, &x, 2, dst, &ip, 1, NULL, 0);
    *values = dst[0];
    *indices = dst[1];
}

static void check_last_index(const char *op, sgt_tensor *x, sgt_tensor *idx) {
    check_i32(op, idx);
    char b0[96], b1[96];
    bool ok = x->ndim == idx->ndim && x->ndim >= 1;
    for (int d = 0; ok && d < x->ndim - 1; d++) ok = x->shape[d] == idx->shape[d];
    SGT_CHECK(ok, "%s: %s and index %s must agree but for the last dim", op, sgt_shape_str(x, b0, sizeof b0),
              sgt_shape_str(idx, b1, sizeof b1));
}

sgt_tensor *sgt_gather_last(sgt_ctx *c, sgt_tensor *x, sgt_tensor *idx) {
    check_float("gather_last", x);
    check_last_index("gather_last", x, idx);
    CONTIG(x);
    CONTIG(idx);
    sgt_tensor *y = sgt_empty(c, x->dtype, idx->ndim, idx->shape);
    sgt_tensor *src[2] = {x, idx};
    run(c, SGT_OP_GATHER_LAST, 2, src, 1, &y, NULL, 0, NULL, 0);
    return y;
}

sgt_tensor *sgt_scatter_add_last(sgt_ctx *c, sgt_tensor *v, sgt_tensor *idx, int64_t n) {
    check_float("scatter_add_last", v);
    check_last_index("scatter_add_last", v, idx);
    SGT_CHECK(sgt_same_shape(v, idx), "scatter_add_last: values and index shapes differ");
    CONTIG(v);
    CONTIG(idx);
    int64_t shape[SGT_MAX_DIMS];
    memcpy(shape, v->shape, sizeof(int64_t) * (size_t)v->ndim);
    shape[v->ndim - 1] = n;
    sgt_tensor *y = sgt_empty(c, v->dtype, v->ndim, shape);
    sgt_tensor *src[2] = {v, idx};
    run(c, SGT_OP_SCATTER_ADD_LAST, 2, src, 1, &y, &n, 1, NULL, 0);
    return y;
}

/* ---- concat ---- */

sgt_tensor *sgt_concat(sgt_ctx *c, int n, sgt_tensor **xs, int dim) {
    SGT_CHECK(n >= 1 && n <= SGT_MAX_SRC, "concat: %d inputs (1..%d supported)", n, SGT_MAX_SRC);
    int d = sgt_dim(xs[0], dim, "concat");
    int64_t shape[SGT_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof(int64_t) * (size_t)xs[0]->ndim);
    shape[d] = 0;
    for (int i = 0; i < n; i++) {
        check_same_dtype("concat", xs[0], xs[i]);
        char b0[96], b1[96];
        bool ok = xs[i]->ndim == xs[0]->ndim;
        for (int k = 0; ok && k < xs[0]->ndim; k++) ok = k == d || xs[i]->shape[k] == xs[0]->shape[k];
        SGT_CHECK(ok, "concat: %s and %s differ outside dim %d", sgt_shape_str(xs[0], b0, sizeof b0),
                  sgt_shape_str(xs[i], b1, sizeof b1), d);
        shape[d] += xs[i]->shape[d];
    }
    sgt_tensor *y = sgt_empty(c, xs[0]->dtype, xs[0]->ndim, shape);
    sgt_tensor *src[SGT_MAX_SRC];
    for (int i = 0; i < n; i++) src[i] = sgt_contiguous(c, xs[i]);
    int64_t ip = d;
    run(c, SGT_OP_CONCAT, n, src, 1, &y, &ip, 1, NULL, 0);
    return y;
}

/* ---- optimizer ---- */

void sgt_adamw_update(sgt_ctx *c, sgt_tensor *param, sgt_tensor *grad, sgt_tensor *m, sgt_tensor *v, double lr,
                      double b1, double b2, double eps, double wd, double bc1, double bc2) {
    sgt_tensor *t[4] = {param, grad, m, v};
    for (int i = 0; i < 4; i++) {
        check_float("adamw", t[i]);
        check_same_dtype("adamw", param, t[i]);
        char b0[96], b1s[96];
        SGT_CHECK(sgt_same_shape(param, t[i]) && sgt_is_contiguous(t[i]),
                  "adamw: %s and %s must be contiguous and of one shape", sgt_shape_str(param, b0, sizeof b0),
                  sgt_shape_str(t[i], b1s, sizeof b1s));
    }
    double fp[7] = {lr, b1, b2, eps, wd, bc1, bc2};
    sgt_tensor *dst[3] = {param, m, v};
    run(c, SGT_OP_ADAMW, 4, t, 3, dst, NULL, 0, fp, 7);
}

/* ---- block-sparse SwiGLU ---- */

static void check_bsparse(sgt_tensor *x, sgt_tensor *wg, sgt_tensor *wu, sgt_tensor *wd, sgt_tensor *idx, sgt_tensor *m,
                          int64_t bs) {
    const char *op = "bsparse_swiglu";
    check_float(op, x);
    sgt_tensor *w[4] = {wg, wu, wd, m};
    for (int i = 0; i < 4; i++) check_same_dtype(op, x, w[i]);
    check_i32(op, idx);
    char b0[96], b1[96];
    SGT_CHECK(x->ndim == 2 && idx->ndim == 2 && idx->shape[0] == x->shape[0] && sgt_same_shape(idx, m),
              "%s: needs x [N, C], idx and m [N, k], got %s and %s", op, sgt_shape_str(x, b0, sizeof b0),
              sgt_shape_str(idx, b1, sizeof b1));
    const int64_t C = x->shape[1], I = wg->shape[0];
    SGT_CHECK(wg->ndim == 2 && sgt_same_shape(wg, wu) && wg->shape[1] == C && wd->ndim == 2 && wd->shape[0] == C &&
                  wd->shape[1] == I,
              "%s: weights must be gate/up [I, C] and down [C, I] for C = %lld, got %s and %s", op, (long long)C,
              sgt_shape_str(wg, b0, sizeof b0), sgt_shape_str(wd, b1, sizeof b1));
    SGT_CHECK(bs > 0 && I % bs == 0, "%s: block size %lld does not divide the hidden width %lld", op, (long long)bs,
              (long long)I);
}

sgt_tensor *sgt_bsparse_swiglu_ex(sgt_ctx *c, sgt_tensor *x, sgt_tensor *wg, sgt_tensor *wu, sgt_tensor *wd,
                                  sgt_tensor *wd_t, sgt_tensor *idx, sgt_tensor *m, int64_t block_size,
                                  sgt_tensor **G_out, sgt_tensor **U_out) {
    check_bsparse(x, wg, wu, wd, idx, m, block_size);
    CONTIG(x);
    CONTIG(wg);
    CONTIG(wu);
    CONTIG(wd);
    CONTIG(idx);
    CONTIG(m);
    if (wd_t) {
        check_same_dtype("bsparse_swiglu", x, wd_t);
        SGT_CHECK(wd_t->ndim == 2 && wd_t->shape[0] == wd->shape[1] && wd_t->shape[1] == wd->shape[0] &&
                      sgt_is_contiguous(wd_t),
                  "bsparse_swiglu: the transposed down weights must be a contiguous [I, C]");
    }
    /* the kernels' workspaces are their backends' own (reused across calls), not step tensors */
    const int64_t N = x->shape[0], k = idx->shape[1];
    sgt_tensor *dst[3] = {sgt_empty(c, x->dtype, 2, x->shape), sgt_empty(c, x->dtype, SGT_SHAPE(N, k, block_size)),
                          sgt_empty(c, x->dtype, SGT_SHAPE(N, k, block_size))};
    sgt_tensor *src[7] = {x, wg, wu, wd, idx, m, wd_t};
    run(c, SGT_OP_BSPARSE_SWIGLU, wd_t ? 7 : 6, src, 3, dst, &block_size, 1, NULL, 0);
    if (G_out) *G_out = dst[1];
    if (U_out) *U_out = dst[2];
    return dst[0];
}

sgt_tensor *sgt_bsparse_swiglu(sgt_ctx *c, sgt_tensor *x, sgt_tensor *wg, sgt_tensor *wu, sgt_tensor *wd,
                               sgt_tensor *idx, sgt_tensor *m, int64_t block_size, sgt_tensor **G_out,
                               sgt_tensor **U_out) {
    return sgt_bsparse_swiglu_ex(c, x, wg, wu, wd, NULL, idx, m, block_size, G_out, U_out);
}

void sgt_bsparse_swiglu_bwd(sgt_ctx *c, sgt_tensor *x, sgt_tensor *wg, sgt_tensor *wu, sgt_tensor *wd, sgt_tensor *idx,
                            sgt_tensor *m, sgt_tensor *G, sgt_tensor *U, sgt_tensor *dy, int64_t block_size,
                            sgt_tensor **dx, sgt_tensor **dwg, sgt_tensor **dwu, sgt_tensor **dwd, sgt_tensor **dm) {
    check_bsparse(x, wg, wu, wd, idx, m, block_size);
    CONTIG(x);
    CONTIG(wg);
    CONTIG(wu);
    CONTIG(wd);
    CONTIG(idx);
    CONTIG(m);
    CONTIG(G);
    CONTIG(U);
    CONTIG(dy);
    sgt_tensor *dst[5] = {sgt_empty_like(c, x), sgt_empty_like(c, wg), sgt_empty_like(c, wu), sgt_empty_like(c, wd),
                          sgt_empty_like(c, m)};
    sgt_tensor *src[9] = {x, wg, wu, wd, idx, m, G, U, dy};
    run(c, SGT_OP_BSPARSE_SWIGLU_BWD, 9, src, 5, dst, &block_size, 1, NULL, 0);
    *dx = dst[0];
    *dwg = dst[1];
    *dwu = dst[2];
    *dwd = dst[3];
    *dm = dst[4];
}

/* ---- fused attention ---- */

/* x as a [B, H, T, D] view whose D stride is 1 (a copy only if it is not) */
static sgt_tensor *unit_last(sgt_ctx *c, sgt_tensor *x) {
    return x->shape[3] <= 1 || x->stride[3] == 1 ? x : sgt_copy(c, x);
}

/* a [B, H, T, D] tensor over fresh [B, T, H, D] storage (not an op: just how its bytes are laid out) */
static sgt_tensor *bhtd_over_bthd(sgt_ctx *c, sgt_dtype t, int64_t B, int64_t H, int64_t T, int64_t D) {
    sgt_tensor *s = sgt_empty(c, t, SGT_SHAPE(B, T, H, D));
    sgt_tensor *v = sgt_alias(c, s);
    const int64_t sh[4] = {B, H, T, D}, st[4] = {T * H * D, D, H * D, 1};
    for (int i = 0; i < 4; i++) {
        v->shape[i] = sh[i];
        v->stride[i] = st[i];
    }
    return v;
}

static void check_attention(const char *op, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v) {
    char b0[96], b1[96], b2[96];
    check_float(op, q);
    check_same_dtype(op, q, k);
    check_same_dtype(op, q, v);
    SGT_CHECK(q->ndim == 4 && k->ndim == 4 && v->ndim == 4 && sgt_same_shape(k, v) && q->shape[0] == k->shape[0] &&
                  q->shape[1] == k->shape[1] && q->shape[3] == k->shape[3] && q->shape[2] <= k->shape[2],
              "%s: needs q [B,H,Tq,D] and k, v [B,H,Tk,D] with Tq <= Tk, got %s, %s, %s", op,
              sgt_shape_str(q, b0, sizeof b0), sgt_shape_str(k, b1, sizeof b1), sgt_shape_str(v, b2, sizeof b2));
}

sgt_tensor *sgt_attention(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, double scale,
                          sgt_tensor **lse_out) {
    return sgt_attention_ex(c, q, k, v, NULL, scale, true, lse_out);
}

sgt_tensor *sgt_attention_len(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, sgt_tensor *len, double scale,
                              sgt_tensor **lse_out) {
    return sgt_attention_ex(c, q, k, v, len, scale, true, lse_out);
}

sgt_tensor *sgt_attention_ex(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, sgt_tensor *len, double scale,
                             bool causal, sgt_tensor **lse_out) {
    check_attention("attention", q, k, v);
    if (len) {
        check_i32("attention", len);
        SGT_CHECK(sgt_numel(len) == 1 && len->device == q->device, "attention: len must be one i32 on q's device");
    }
    q = unit_last(c, q);
    k = unit_last(c, k);
    v = unit_last(c, v);
    const int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], D = q->shape[3];
    sgt_tensor *dst[2] = {bhtd_over_bthd(c, q->dtype, B, H, Tq, D), sgt_empty(c, stat_dtype(q->dtype), SGT_SHAPE(B, H, Tq))};
    sgt_tensor *src[4] = {q, k, v, len};
    const int64_t not_causal = !causal;
    run(c, SGT_OP_ATTENTION, len ? 4 : 3, src, 2, dst, &not_causal, 1, &scale, 1);
    if (lse_out) *lse_out = dst[1];
    return dst[0];
}

void sgt_attention_bwd(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, sgt_tensor *y, sgt_tensor *lse,
                       sgt_tensor *dy, double scale, sgt_tensor **dq, sgt_tensor **dk, sgt_tensor **dv) {
    sgt_attention_bwd_ex(c, q, k, v, y, lse, dy, scale, true, dq, dk, dv);
}

void sgt_attention_bwd_ex(sgt_ctx *c, sgt_tensor *q, sgt_tensor *k, sgt_tensor *v, sgt_tensor *y, sgt_tensor *lse,
                          sgt_tensor *dy, double scale, bool causal, sgt_tensor **dq, sgt_tensor **dk,
                          sgt_tensor **dv) {
    check_attention("attention_bwd", q, k, v);
    check_same_dtype("attention_bwd", q, y);
    check_same_dtype("attention_bwd", q, dy);
    char b0[96], b1[96];
    SGT_CHECK(sgt_same_shape(q, y) && sgt_same_shape(q, dy) && lse->ndim == 3 && lse->dtype == stat_dtype(q->dtype),
              "attention_bwd: y and dy must be shaped like q %s, lse [B,H,Tq] %s", sgt_shape_str(q, b0, sizeof b0),
              sgt_shape_str(lse, b1, sizeof b1));
    q = unit_last(c, q);
    k = unit_last(c, k);
    v = unit_last(c, v);
    y = unit_last(c, y);
    dy = unit_last(c, dy);
    CONTIG(lse);
    const int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Tk = k->shape[2], D = q->shape[3];
    sgt_tensor *dst[3] = {bhtd_over_bthd(c, q->dtype, B, H, Tq, D), bhtd_over_bthd(c, q->dtype, B, H, Tk, D),
                          bhtd_over_bthd(c, q->dtype, B, H, Tk, D)};
    sgt_tensor *src[6] = {q, k, v, y, lse, dy};
    const int64_t not_causal = !causal;
    run(c, SGT_OP_ATTENTION_BWD, 6, src, 3, dst, &not_causal, 1, &scale, 1);
    *dq = dst[0];
    *dk = dst[1];
    *dv = dst[2];
}

/* ---- fused SwiGLU ---- */

static void check_swiglu(const char *op, sgt_tensor *g, sgt_tensor *u, sgt_tensor *m, int64_t bs) {
    char b0[96], b1[96];
    check_float(op, g);
    check_same_dtype(op, g, u);
    SGT_CHECK(sgt_same_shape(g, u) && g->ndim >= 1, "%s: gate %s and up %s differ in shape", op,
              sgt_shape_str(g, b0, sizeof b0), sgt_shape_str(u, b1, sizeof b1));
    if (!m) return;
    check_same_dtype(op, g, m);
    const int64_t I = g->shape[g->ndim - 1];
    bool ok = bs > 0 && I % bs == 0 && m->ndim == g->ndim && m->shape[m->ndim - 1] == I / bs;
    for (int d = 0; ok && d < g->ndim - 1; d++) ok = m->shape[d] == g->shape[d];
    SGT_CHECK(ok, "%s: mask %s does not hold one value per block of %lld in %s", op, sgt_shape_str(m, b0, sizeof b0),
              (long long)bs, sgt_shape_str(g, b1, sizeof b1));
}

sgt_tensor *sgt_swiglu(sgt_ctx *c, sgt_tensor *g, sgt_tensor *u, sgt_tensor *m, int64_t block_size) {
    check_swiglu("swiglu", g, u, m, block_size);
    CONTIG(g);
    CONTIG(u);
    if (m) CONTIG(m);
    sgt_tensor *h = sgt_empty_like(c, g);
    sgt_tensor *src[3] = {g, u, m};
    int64_t ip = m ? block_size : 0;
    run(c, SGT_OP_SWIGLU, m ? 3 : 2, src, 1, &h, &ip, 1, NULL, 0);
    return h;
}

void sgt_swiglu_bwd(sgt_ctx *c, sgt_tensor *g, sgt_tensor *u, sgt_tensor *m, sgt_tensor *dh, int64_t block_size,
                    sgt_tensor **dg, sgt_tensor **du, sgt_tensor **dm) {
    check_swiglu("swiglu_bwd", g, u, m, block_size);
    check_same_dtype("swiglu_bwd", g, dh);
    char b0[96], b1[96];
    SGT_CHECK(sgt_same_shape(g, dh), "swiglu_bwd: dh %s is not shaped like g %s", sgt_shape_str(dh, b0, sizeof b0),
              sgt_shape_str(g, b1, sizeof b1));
    CONTIG(g);
    CONTIG(u);
    CONTIG(dh);
    if (m) CONTIG(m);
    sgt_tensor *dst[3] = {sgt_empty_like(c, g), sgt_empty_like(c, u), m ? sgt_empty_like(c, m) : NULL};
    int64_t ip = m ? block_size : 0;
    if (m) {
        sgt_tensor *src[4] = {g, u, m, dh};
        run(c, SGT_OP_SWIGLU_BWD, 4, src, 3, dst, &ip, 1, NULL, 0);
    } else {
        sgt_tensor *src[3] = {g, u, dh};
        run(c, SGT_OP_SWIGLU_BWD, 3, src, 2, dst, &ip, 1, NULL, 0);
    }
    *dg = dst[0];
    *du = dst[1];
    if (dm) *dm = dst[2];
}

/* ---- inference over bf16 weights ---- */

sgt_tensor *sgt_linear_bf16(sgt_ctx *c, sgt_tensor *x, sgt_tensor *w) {
    char b0[96], b1[96];
    SGT_CHECK(x->dtype == SGT_F32 && w->dtype == SGT_BF16, "linear_bf16: needs x f32 and w bf16, got %s and %s",
              sgt_dtype_name(x->dtype), sgt_dtype_name(w->dtype));
    SGT_CHECK(x->ndim >= 1 && w->ndim == 2 && x->shape[x->ndim - 1] == w->shape[1],
              "linear_bf16: x %s does not end in w's inner size (w %s)", sgt_shape_str(x, b0, sizeof b0),
              sgt_shape_str(w, b1, sizeof b1));
    CONTIG(x);
    CONTIG(w);
    int64_t shape[SGT_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = x->shape[d];
    shape[x->ndim - 1] = w->shape[0];
    sgt_tensor *y = sgt_empty(c, SGT_F32, x->ndim, shape), *src[2] = {x, w};
    run(c, SGT_OP_LINEAR_BF16, 2, src, 1, &y, NULL, 0, NULL, 0);
    return y;
}

sgt_tensor *sgt_bsparse_swiglu_bf16(sgt_ctx *c, sgt_tensor *x, sgt_tensor *wb, sgt_tensor *idx, sgt_tensor *m) {
    const char *op = "bsparse_swiglu_bf16";
    char b0[96], b1[96];
    SGT_CHECK(x->dtype == SGT_F32 && wb->dtype == SGT_BF16 && (!m || m->dtype == SGT_F32),
              "%s: needs x and m f32 and wb bf16, got %s and %s", op, sgt_dtype_name(x->dtype), sgt_dtype_name(wb->dtype));
    check_i32(op, idx);
    SGT_CHECK(x->ndim == 2 && idx->ndim == 2 && idx->shape[0] == x->shape[0] && (!m || sgt_same_shape(idx, m)),
              "%s: needs x [N, C], idx and m [N, k], got %s and %s", op, sgt_shape_str(x, b0, sizeof b0),
              sgt_shape_str(idx, b1, sizeof b1));
    SGT_CHECK(wb->ndim == 4 && wb->shape[1] == 3 && wb->shape[3] == x->shape[1] && sgt_is_contiguous(wb),
              "%s: weights must be a contiguous block-major [nb, 3, bs, C] for C = %lld, got %s", op,
              (long long)x->shape[1], sgt_shape_str(wb, b0, sizeof b0));
    CONTIG(x);
    CONTIG(idx);
    if (m) CONTIG(m);
    const int64_t N = x->shape[0], k = idx->shape[1];
    sgt_tensor *dst[2] = {sgt_empty(c, SGT_F32, 2, x->shape), sgt_empty(c, SGT_F32, SGT_SHAPE(N, k, x->shape[1]))};
    sgt_tensor *src[4] = {x, wb, idx, m};
    run(c, SGT_OP_BSPARSE_SWIGLU_BF16, m ? 4 : 3, src, 2, dst, NULL, 0, NULL, 0);
    return dst[0];
}
