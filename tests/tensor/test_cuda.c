/* test_cuda.c: the CUDA backend against the CPU backend, which is the oracle (STYLE practice 8).
 *
 * Every op in op_list.h runs on both devices with the same random inputs, on awkward shapes (odd
 * sizes, rank 0, size-1 and empty dims, more rows than the row kernels' grid), on views
 * (transposed, permuted, narrowed, expanded) and broadcasts, in f32 and f64, and the results are
 * compared with |cuda - cpu| <= atol + rtol |cpu|; NaN must meet NaN and Inf the same Inf. Inputs
 * of the elementwise ops, reductions and softmax also get NaN and +-Inf injected.
 *
 * Tolerances (per op, each with its reason where it is used):
 *   EXACT: + - * /, sqrt, comparisons, copies, casts, fills, selection, gathers, the RNG, AdamW and
 *     every index op must agree bit for bit (NaN payloads and the sign of zero aside): both sides
 *     do the same IEEE operations in the same order (the .cu files build with --fmad=false, the C
 *     files with -ffp-contract=off), and index_add_rows / scatter_add_last add in the CPU's order
 *     on purpose.
 *   TRANS: exp, log, tanh, pow come from CUDA's libm instead of the CPU's (glibc, and
 *     cpu/vmath.h for f32 exp and tanh): a few ulp apart.
 *   SUMS: reductions add in another order (fixed trees instead of loops).
 *   TF32: f32 matmul runs on the tensor cores in TF32 (see t_matmul for the bound).
 *
 * The GPU side of each case runs with sentinel memory: the device arena's free space is filled
 * with a byte pattern first, and afterwards every byte outside the tensors the ops were seen to
 * write (the ctx observer records them) must still hold it, so an out-of-bounds write fails.
 *
 * Without a CUDA device every parity test skips; the op-table completeness check and the
 * "no device" error path run anyway. The seed (TEST_SEED) is in every failure message.
 * SGT_CUDA_TEST_ON_CPU=1 (without a device) runs the whole harness with the CPU standing in for
 * the GPU: a check of the test's own logic (shapes, views, tolerances) for those without a GPU. */
#include <unistd.h>

#include "../../nn/checkpoint.h"
#include "../../tensor/print.h"
#include "../common/test_device.h"
#ifdef SGT_HAVE_CUDA
#include "../../tensor/cuda/backend.h"
#endif

/* ---- tolerances ---- */

typedef struct {
    double rtol, atol;
    bool exact; /* bit for bit (NaN payloads aside) */
} tol;

static const tol EXACT = {0, 0, true};
static tol trans_tol(sgt_dtype t) { /* libm differences, a few ulp, with cancellation headroom */
    return t == SGT_F32 ? (tol){1e-5, 1e-6, false} : (tol){1e-11, 1e-13, false};
}
static tol sums_tol(sgt_dtype t) { /* another summation order: the last bit or two of the result */
    return t == SGT_F32 ? (tol){1e-6, 1e-9, false} : (tol){1e-12, 1e-12, false};
}

/* ---- the two devices (tests/common/test_device.h) ---- */

/* the device arena is one big chunk, so every case allocates from the same region (see sentinel_arm) */
TD_GROUP("test_cuda", "parity-cpu", 64u << 20, "parity-cuda", (size_t)512 << 20)


/* ---- inputs (always made on the CPU, then copied; tu_prod, tu_urand: tests/common/test_util.h) ---- */

static sgt_tensor *rnd(sgt_dtype t, int nd, const int64_t *shape, uint64_t stream, double lo, double hi) {
    return tu_rand(C, t, nd, shape, stream, lo, hi);
}

/* few distinct values (integers in [-levels/2, levels/2)): ties on purpose */
static sgt_tensor *levels(sgt_dtype t, int nd, const int64_t *shape, uint64_t stream, int lv) {
    int64_t n = tu_prod(nd, shape);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = floor(tu_urand((uint64_t)i, stream) * lv) - lv / 2;
    sgt_tensor *x = sgt_from_f64(C, t, nd, shape, v);
    free(v);
    return x;
}

static sgt_tensor *rand_idx(int nd, const int64_t *shape, uint64_t stream, int32_t limit) {
    int64_t n = tu_prod(nd, shape);
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = (int32_t)(tu_urand((uint64_t)i, stream) * limit);
    sgt_tensor *x = sgt_from_i32(C, nd, shape, v);
    free(v);
    return x;
}

/* NaN, +Inf and -Inf at a few flat positions of a contiguous CPU tensor */
static void inject(sgt_tensor *x) {
    const int64_t n = sgt_numel(x);
    const int64_t at[4] = {0, n / 2, n / 3 + 1, n - 1};
    const double val[4] = {NAN, INFINITY, -INFINITY, NAN};
    for (int k = 0; k < 4; k++) {
        if (at[k] < 0 || at[k] >= n) continue;
        int64_t idx[SGT_MAX_DIMS], r = at[k];
        for (int d = x->ndim - 1; d >= 0; d--) {
            idx[d] = r % x->shape[d];
            r /= x->shape[d];
        }
        sgt_set(x, idx, val[k]);
    }
}

/* ---- comparison ---- */

static const char *shape_str(const sgt_tensor *x) {
    static char b[4][96];
    static int k;
    return sgt_shape_str(x, b[k++ & 3], 96);
}

/* |g - c| <= tol_i (tolv when given, else atol + rtol |c|); exact: the same value (f32, f64 and
 * i32 convert to double exactly, so that is the same bits but for NaN payloads and the sign of
 * zero, which may depend on summation order even when the value cannot) */
static void compare_at(const sgt_tensor *g, const sgt_tensor *c, tol t, const double *tolv, const char *what,
                       const char *file, int line) {
    if (g->dtype != c->dtype || !sgt_same_shape(g, c))
        fail_msg("%s:%d: %s: cuda result %s, cpu result %s (seed %u)", file, line, what, shape_str(g), shape_str(c),
                 TEST_SEED);
    const int64_t n = sgt_numel(c);
    double *gv = malloc(sizeof(double) * (size_t)(n ? n : 1)), *cv = malloc(sizeof(double) * (size_t)(n ? n : 1));
    sgt_to_f64(g, gv);
    sgt_to_f64(c, cv);
    for (int64_t i = 0; i < n; i++) {
        double a = gv[i], b = cv[i];
        bool ok;
        if (isnan(a) || isnan(b)) ok = isnan(a) && isnan(b);
        else if (t.exact || isinf(a) || isinf(b)) ok = a == b;
        else ok = fabs(a - b) <= (tolv ? tolv[i] : t.atol + t.rtol * fabs(b));
        if (!ok) {
            char msg[800];
            if (t.exact)
                snprintf(msg, sizeof msg, "%s:%d: %s: element %lld of %s: cuda %.17g, cpu %.17g (bit-exact expected, seed %u)",
                         file, line, what, (long long)i, shape_str(c), a, b, TEST_SEED);
            else
                snprintf(msg, sizeof msg, "%s:%d: %s: element %lld of %s: cuda %.17g, cpu %.17g, |diff| %.3g > tol %.3g "
                         "(seed %u)", file, line, what, (long long)i, shape_str(c), a, b, fabs(a - b),
                         tolv ? tolv[i] : t.atol + t.rtol * fabs(b), TEST_SEED);
            free(gv), free(cv);
            fail_msg("%s", msg);
        }
    }
    free(gv), free(cv);
}
#define compare(g, c, t, what) compare_at(g, c, t, NULL, what, __FILE__, __LINE__)

/* ---- sentinel memory around the GPU outputs ---- */

#define SENT_MAX ((size_t)8 << 20)
#define SENT_BYTE 0xA5
#define MAX_WRITTEN 256
static char *sent_base;
static size_t sent_len;
static const sgt_tensor *written[MAX_WRITTEN];
static int nwritten;

static void record_writes(void *user, const sgt_opcall *call) {
    (void)user;
    if (sgt_ops[call->op].is_view) return;
    for (int i = 0; i < call->ndst; i++) {
        assert_true(nwritten < MAX_WRITTEN);
        written[nwritten++] = call->dst[i];
    }
}

/* fills the GPU arena's free space (where the next allocations go) with the pattern */
static void sentinel_arm(void) {
    sgt_arena *a = dev_arena;
    nwritten = 0;
    sent_len = 0;
    /* a CPU arena also holds the tensor structs (see arena.h), so the check is for devices only */
    if (self_check || a->cur >= a->nchunk) return;
    sgt_arena_chunk *ch = &a->chunk[a->cur];
    sent_base = ch->base + ch->used;
    sent_len = ch->size - ch->used < SENT_MAX ? ch->size - ch->used : SENT_MAX;
    unsigned char *h = malloc(sent_len ? sent_len : 1);
    memset(h, SENT_BYTE, sent_len);
    sgt_device_copy(sent_base, DEV, h, SGT_CPU, sent_len);
    free(h);
}

static void sentinel_check(const char *what) {
    if (!sent_len) return;
    unsigned char *got = malloc(sent_len), *mine = calloc(sent_len, 1);
    sgt_device_copy(got, SGT_CPU, sent_base, DEV, sent_len);
    for (int k = 0; k < nwritten; k++) {
        const sgt_tensor *t = written[k];
        if (!sgt_numel(t)) continue;
        const int64_t es = (int64_t)sgt_dtype_size(t->dtype);
        int64_t hi = t->offset;
        for (int d = 0; d < t->ndim; d++) hi += (t->shape[d] - 1) * t->stride[d];
        const char *b = (const char *)t->data + t->offset * es, *e = (const char *)t->data + (hi + 1) * es;
        for (const char *p = b < sent_base ? sent_base : b; p < e && p < sent_base + sent_len; p++) mine[p - sent_base] = 1;
    }
    for (size_t i = 0; i < sent_len; i++)
        if (!mine[i] && got[i] != SENT_BYTE) {
            unsigned v = got[i];
            free(got), free(mine);
            fail_msg("%s: out-of-bounds write on the GPU: byte %zu of the free arena space (outside every output) is "
                     "0x%02x, not the sentinel 0x%02x (seed %u)", what, i, v, SENT_BYTE, TEST_SEED);
        }
    free(got), free(mine);
}

/* ---- one parity case: fn on copies of the inputs on the GPU (with sentinels), then on the CPU ---- */

#define MAXIO 10
typedef int (*case_fn)(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg);

/* returns the number of outputs; gout/cout get them (valid until the caller rewinds) */
static int run_both(const char *what, case_fn fn, const void *arg, int nin, sgt_tensor **cin, sgt_tensor **gout,
                    sgt_tensor **cout) {
    sgt_tensor *gin[MAXIO];
    for (int i = 0; i < nin; i++) gin[i] = sgt_to_device(G, cin[i], DEV);
    sentinel_arm();
    G->observer = record_writes;
    int ng = fn(G, gin, gout, arg);
    G->observer = NULL;
    sgt_device_synchronize(DEV);
    sentinel_check(what);
    int nc = fn(C, cin, cout, arg);
    assert_int_equal(ng, nc);
    for (int i = 0; i < ng; i++) assert_int_equal(gout[i]->device, DEV);
    return nc;
}

/* runs a case and compares every output with the same tolerance */
static void check_case(const char *what, case_fn fn, const void *arg, int nin, sgt_tensor **cin, tol t) {
    marks m = mark_both();
    sgt_tensor *g[MAXIO], *c[MAXIO];
    int n = run_both(what, fn, arg, nin, cin, g, c);
    for (int i = 0; i < n; i++) {
        char w[600];
        snprintf(w, sizeof w, "%s, output %d", what, i);
        compare(g[i], c[i], t, w);
    }
    rewind_both(m);
}

static const sgt_dtype dtypes[2] = {SGT_F32, SGT_F64};

/* ======================================================================================= */
/* copies, casts, fills                                                                     */

static int f_copy_perm(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    out[0] = sgt_copy(c, sgt_permute(c, in[0], (int[]){2, 0, 1}));
    out[1] = sgt_copy(c, sgt_expand(c, in[1], SGT_SHAPE(5, 7)));
    out[2] = sgt_copy(c, sgt_narrow(c, in[0], 2, 1, 5));
    return 3;
}

static int f_copy_into_view(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    sgt_copy_into(c, sgt_narrow(c, in[0], 1, 2, 5), sgt_transpose(c, in[1], 0, 1)); /* [6,5] <- [5,6]^T */
    out[0] = in[0];
    return 1;
}

static int f_cast(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const sgt_dtype to = *(const sgt_dtype *)arg;
    out[0] = sgt_cast(c, sgt_transpose(c, in[0], 0, 1), to);
    return 1;
}

static int f_fill_view(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    sgt_fill(c, sgt_narrow(c, sgt_transpose(c, in[0], 0, 1), 0, 3, 4), 2.5);
    out[0] = in[0];
    out[1] = sgt_zeros(c, in[0]->dtype, SGT_SHAPE(3, 0, 2));
    out[2] = sgt_full(c, in[0]->dtype, 0, NULL, -7.25);
    return 3;
}

static void t_copy_cast_fill(void **s) {
    (void)s;
    NEED_GPU();
    marks m = mark_both();
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        sgt_tensor *in[2] = {rnd(dt, SGT_SHAPE(3, 5, 7), 1, -2, 2), rnd(dt, SGT_SHAPE(1, 7), 2, -2, 2)};
        check_case(WHAT("copy of views, %s", sgt_dtype_name(dt)), f_copy_perm, NULL, 2, in, EXACT);
        sgt_tensor *in2[2] = {rnd(dt, SGT_SHAPE(6, 9), 3, -2, 2), rnd(dt, SGT_SHAPE(5, 6), 4, -2, 2)};
        check_case(WHAT("copy_into a narrowed view, %s", sgt_dtype_name(dt)), f_copy_into_view, NULL, 2, in2, EXACT);
        sgt_tensor *in3[1] = {rnd(dt, SGT_SHAPE(7, 11), 5, -2, 2)};
        check_case(WHAT("fill of a strided view, %s", sgt_dtype_name(dt)), f_fill_view, NULL, 1, in3, EXACT);
        /* casts: to the other float type and to i32 (truncation of in-range values) */
        sgt_tensor *in4[1] = {rnd(dt, SGT_SHAPE(33, 129), 6, -1000, 1000)};
        for (int to = 0; to < 3; to++) {
            sgt_dtype tt = to == 0 ? SGT_F32 : to == 1 ? SGT_F64 : SGT_I32;
            check_case(WHAT("cast %s -> %s", sgt_dtype_name(dt), sgt_dtype_name(tt)), f_cast, &tt, 1, in4, EXACT);
        }
    }
    sgt_tensor *ii[1] = {rand_idx(SGT_SHAPE(33, 129), 7, 100000)};
    const sgt_dtype tf[2] = {SGT_F32, SGT_F64};
    for (int k = 0; k < 2; k++) check_case("cast i32 -> float", f_cast, &tf[k], 1, ii, EXACT);
    sgt_tensor *ii2[1] = {rand_idx(SGT_SHAPE(7, 11), 8, 1000)};
    check_case("fill of an i32 view", f_fill_view, NULL, 1, ii2, EXACT);
    rewind_both(m);
}

/* ======================================================================================= */
/* the RNG: bit for bit                                                                    */

typedef struct {
    sgt_dtype dt;
    bool normal;
    int64_t n;
    double a, b;
} rng_arg;

static int f_rng(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)in;
    const rng_arg *r = arg;
    out[0] = sgt_empty(c, r->dt, 1, &r->n);
    if (r->normal) sgt_rng_normal(c, out[0], 0x5eed0000u + (uint64_t)r->n, 3, r->a, r->b);
    else sgt_rng_uniform(c, out[0], 0x5eed0000u + (uint64_t)r->n, 3, r->a, r->b);
    return 1;
}

static void t_rng_bit_exact(void **s) {
    (void)s;
    NEED_GPU();
    /* (1<<22)+3 elements: more than one pass of the capped grid, not a multiple of anything */
    const int64_t sizes[5] = {1, 129, 1000 * 33, (1 << 22) + 3, 7};
    for (int k = 0; k < 2; k++)
        for (int normal = 0; normal < 2; normal++)
            for (int i = 0; i < 5; i++) {
                rng_arg r = {dtypes[k], normal, sizes[i], normal ? 0.5 : -2.0, normal ? 2.0 : 3.0};
                if (i == 4 && !normal) r.a = 1.0, r.b = 1.0000001; /* lo/hi one f32 ulp apart: the clamp to [lo, hi) */
                check_case(WHAT("rng_%s %s n=%lld", normal ? "normal" : "uniform", sgt_dtype_name(r.dt), (long long)r.n),
                           f_rng, &r, 0, NULL, EXACT);
            }
}

/* dropout: the same mask on both devices (rng.h's integer rule), the same multiply: bit for bit;
 * through a transposed view (the mask is by logical position) and over the capped grid */
typedef struct {
    double p;
    bool transpose;
} dropout_arg;

static int f_dropout(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const dropout_arg *d = arg;
    out[0] = sgt_dropout(c, d->transpose ? sgt_transpose(c, in[0], 0, 1) : in[0], d->p, 0xd509u, 11);
    return 1;
}

static void t_dropout_bit_exact(void **s) {
    (void)s;
    NEED_GPU();
    for (int k = 0; k < 2; k++) {
        sgt_tensor *a[1] = {rnd(dtypes[k], SGT_SHAPE(33, 129), 280, -2, 2)};
        sgt_tensor *b[1] = {rnd(dtypes[k], SGT_SHAPE(3, (1 << 21) + 5), 281, -2, 2)};
        inject(a[0]);
        const dropout_arg d1 = {0.3, true}, d2 = {0.9, false};
        check_case(WHAT("dropout p=0.3 %s, a transposed view with NaN/Inf", sgt_dtype_name(dtypes[k])), f_dropout, &d1, 1,
                   a, EXACT);
        check_case(WHAT("dropout p=0.9 %s n=3*(2^21+5)", sgt_dtype_name(dtypes[k])), f_dropout, &d2, 1, b, EXACT);
    }
}

/* ======================================================================================= */
/* binary ops and comparisons                                                               */

typedef struct {
    sgt_op op;
    int shape_case;
    int kind; /* cmp kind */
} bin_arg;

static sgt_tensor *bin_apply(sgt_ctx *c, const bin_arg *b, sgt_tensor *x, sgt_tensor *y) {
    switch (b->op) {
    case SGT_OP_ADD: return sgt_add(c, x, y);
    case SGT_OP_SUB: return sgt_sub(c, x, y);
    case SGT_OP_MUL: return sgt_mul(c, x, y);
    case SGT_OP_DIV: return sgt_div(c, x, y);
    default: return sgt_cmp(c, (sgt_cmp_kind)b->kind, x, y);
    }
}

/* the inputs' shapes by case: see bin_inputs */
static int f_binary(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const bin_arg *b = arg;
    sgt_tensor *x = in[0], *y = in[1];
    if (b->shape_case == 2) { /* a transposed, b an explicit expand */
        x = sgt_transpose(c, x, 0, 1);
        y = sgt_expand(c, y, SGT_SHAPE(5, 7));
    }
    out[0] = bin_apply(c, b, x, y);
    return 1;
}

static int f_add_into(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    sgt_add_into(c, in[0], in[1]);
    sgt_add_into(c, sgt_narrow(c, in[0], 0, 1, 3), sgt_narrow(c, in[2], 0, 2, 3));
    out[0] = in[0];
    return 1;
}

static void bin_inputs(sgt_dtype dt, int sc, bool ties, uint64_t st, sgt_tensor **in) {
    static const int64_t sa[5][3] = {{3, 5, 7}, {129, 0, 0}, {7, 5, 0}, {4, 1, 6}, {70001, 3, 0}};
    static const int na[5] = {3, 1, 2, 3, 2};
    static const int64_t sb[5][3] = {{5, 1, 0}, {0, 0, 0}, {1, 7, 0}, {1, 3, 1}, {1, 3, 0}};
    static const int nb[5] = {2, 0, 2, 3, 2};
    if (ties) {
        in[0] = levels(dt, na[sc], sa[sc], st, 5);
        in[1] = levels(dt, nb[sc], sb[sc], st + 1, 5);
    } else {
        in[0] = rnd(dt, na[sc], sa[sc], st, -3, 3);
        in[1] = rnd(dt, nb[sc], sb[sc], st + 1, 0.5, 2); /* also a safe divisor */
        double *v = malloc(sizeof(double) * (size_t)sgt_numel(in[1]));
        sgt_to_f64(in[1], v);
        for (int64_t i = 0; i < sgt_numel(in[1]); i += 2) v[i] = -v[i]; /* both signs */
        in[1] = sgt_from_f64(C, dt, in[1]->ndim, in[1]->shape, v);
        free(v);
    }
}

static void t_binary(void **s) {
    (void)s;
    NEED_GPU();
    const sgt_op ops[4] = {SGT_OP_ADD, SGT_OP_SUB, SGT_OP_MUL, SGT_OP_DIV};
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        for (int sc = 0; sc < 5; sc++)
            for (int inj = 0; inj < 2; inj++) {
                marks m = mark_both();
                sgt_tensor *in[2];
                bin_inputs(dt, sc, false, 100 + (uint64_t)sc, in);
                if (inj) inject(in[0]), inject(in[1]); /* Inf - Inf, x / Inf, NaN everywhere */
                for (int o = 0; o < 4; o++) {
                    bin_arg b = {ops[o], sc, 0};
                    /* EXACT: one IEEE operation per element on both sides */
                    check_case(WHAT("%s %s shapes %d%s", sgt_ops[ops[o]].name, sgt_dtype_name(dt), sc,
                                    inj ? " with NaN/Inf" : ""), f_binary, &b, 2, in, EXACT);
                }
                rewind_both(m);
            }
        marks m = mark_both();
        sgt_tensor *in[3] = {rnd(dt, SGT_SHAPE(5, 7), 120, -1, 1), rnd(dt, SGT_SHAPE(7), 121, -1, 1),
                             rnd(dt, SGT_SHAPE(6, 7), 122, -1, 1)};
        check_case(WHAT("add_into (broadcast, and into a view) %s", sgt_dtype_name(dt)), f_add_into, NULL, 3, in, EXACT);
        rewind_both(m);
    }
}

/* ======================================================================================= */
/* unary ops and their backward                                                             */

typedef struct {
    sgt_op op;
    double s;
    bool perm;
} un_arg;

static int f_unary(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const un_arg *u = arg;
    sgt_tensor *x = u->perm ? sgt_permute(c, in[0], (int[]){1, 2, 0}) : in[0];
    out[0] = sgt_unary(c, u->op, x, u->s);
    return 1;
}

static int f_unary_bwd(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const un_arg *u = arg;
    out[0] = sgt_unary_bwd(c, u->op, u->s, in[0], in[1], in[2]);
    return 1;
}

typedef struct {
    sgt_op op;
    double s;
    bool positive; /* domain (0, inf) */
    bool exact;    /* only IEEE-exact operations */
} unary_case;

static const unary_case unary_cases[] = {
    {SGT_OP_ADD_SCALAR, 0.3, false, true},   {SGT_OP_MUL_SCALAR, -1.25, false, true},
    {SGT_OP_POW_SCALAR, 2.0, false, true},   {SGT_OP_POW_SCALAR, 1.7, true, false},
    {SGT_OP_POW_SCALAR, -0.5, true, false},  {SGT_OP_NEG, 0, false, true},
    {SGT_OP_EXP, 0, false, false},           {SGT_OP_LOG, 0, true, false},
    {SGT_OP_SQRT, 0, true, true},            {SGT_OP_RSQRT, 0, true, true},
    {SGT_OP_TANH, 0, false, false},          {SGT_OP_SIGMOID, 0, false, false},
    {SGT_OP_SILU, 0, false, false},          {SGT_OP_GELU, 0, false, false},
    {SGT_OP_GELU_ERF, 0, false, false},      {SGT_OP_SIN, 0, false, false},
    {SGT_OP_COS, 0, false, false},           {SGT_OP_RELU, 0, false, true},
};
#define N_UNARY ((int)(sizeof unary_cases / sizeof unary_cases[0]))

/* backward rules that are pure IEEE arithmetic on their inputs */
static bool bwd_exact(sgt_op op) {
    return op == SGT_OP_ADD_SCALAR || op == SGT_OP_MUL_SCALAR || op == SGT_OP_NEG || op == SGT_OP_EXP ||
           op == SGT_OP_LOG || op == SGT_OP_SQRT || op == SGT_OP_RSQRT || op == SGT_OP_TANH || op == SGT_OP_SIGMOID ||
           op == SGT_OP_RELU;
}

static void t_unary(void **s) {
    (void)s;
    NEED_GPU();
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        for (int i = 0; i < N_UNARY; i++) {
            const unary_case *uc = &unary_cases[i];
            marks m = mark_both();
            double lo = uc->positive ? 0.1 : -3, hi = 3;
            sgt_tensor *a[1] = {rnd(dt, SGT_SHAPE(3, 5, 7), 200 + (uint64_t)i, lo, hi)};
            sgt_tensor *b[1] = {rnd(dt, SGT_SHAPE(1, 129), 220 + (uint64_t)i, lo, hi)};
            sgt_tensor *nanin[1] = {rnd(dt, SGT_SHAPE(1, 2, 37), 240 + (uint64_t)i, lo, hi)};
            inject(nanin[0]);
            /* EXACT for the IEEE ones; TRANS where CUDA's libm is involved */
            tol t = uc->exact ? EXACT : trans_tol(dt);
            un_arg u = {uc->op, uc->s, true};
            const char *nm = sgt_ops[uc->op].name;
            check_case(WHAT("%s(s=%g) %s permuted", nm, uc->s, sgt_dtype_name(dt)), f_unary, &u, 1, a, t);
            un_arg u2 = {uc->op, uc->s, false};
            check_case(WHAT("%s(s=%g) %s [1,129]", nm, uc->s, sgt_dtype_name(dt)), f_unary, &u2, 1, b, t);
            check_case(WHAT("%s(s=%g) %s with NaN/Inf", nm, uc->s, sgt_dtype_name(dt)), f_unary, &u2, 1, nanin, t);
            /* backward: x, y = f(x) from the CPU (so only the backward kernel is compared), dy */
            sgt_tensor *y = sgt_unary(C, uc->op, b[0], uc->s);
            sgt_tensor *bw[3] = {b[0], y, rnd(dt, SGT_SHAPE(1, 129), 260 + (uint64_t)i, -1, 1)};
            /* TRANS, with a larger atol: gelu's derivative multiplies tanh's error by up to ~5 at
             * |x| = 3 (0.5 x (1 - t^2)' du), and dy is up to 1 */
            tol tb = bwd_exact(uc->op) ? EXACT : dt == SGT_F32 ? (tol){1e-5, 1e-5, false} : (tol){1e-11, 1e-12, false};
            check_case(WHAT("unary_bwd(%s, s=%g) %s", nm, uc->s, sgt_dtype_name(dt)), f_unary_bwd, &u2, 3, bw, tb);
            rewind_both(m);
        }
    }
}

/* ======================================================================================= */
/* reductions                                                                               */

typedef struct {
    sgt_op op;
    uint32_t mask; /* for sum; for the others: dim (or SGT_ALL_DIMS) in `dim` */
    int dim;
    bool keepdim, transpose;
} red_arg;

static int f_reduce(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const red_arg *r = arg;
    sgt_tensor *x = r->transpose ? sgt_transpose(c, in[0], 0, in[0]->ndim - 1) : in[0];
    switch (r->op) {
    case SGT_OP_SUM: out[0] = sgt_sum_dims(c, x, r->mask, r->keepdim); break;
    case SGT_OP_MEAN: out[0] = sgt_mean(c, x, r->dim, r->keepdim); break;
    case SGT_OP_MAX: out[0] = sgt_max(c, x, r->dim, r->keepdim); break;
    default: out[0] = sgt_argmax(c, x, r->dim, r->keepdim); break;
    }
    return 1;
}

static void t_reduce(void **s) {
    (void)s;
    NEED_GPU();
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        /* shapes: rank 3, the column-sum path [1000,33], more rows than the grid [70001,3], rank 1 */
        const int64_t shapes[4][3] = {{3, 5, 7}, {1000, 33, 0}, {70001, 3, 0}, {129, 0, 0}};
        const int nds[4] = {3, 2, 2, 1};
        for (int sh = 0; sh < 4; sh++)
            for (int inj = 0; inj < 2; inj++) {
                marks m = mark_both();
                sgt_tensor *x[1] = {rnd(dt, nds[sh], shapes[sh], 300 + (uint64_t)sh, -3, 3)};
                if (inj) inject(x[0]);
                const int nd = nds[sh];
                for (uint32_t mask = 1; mask < (1u << nd); mask++)
                    for (int tr = 0; tr < 2; tr++) {
                        red_arg r = {SGT_OP_SUM, mask, 0, mask & 1, tr && nd > 1};
                        /* SUMS: a fixed tree instead of the CPU's loop */
                        check_case(WHAT("sum mask 0x%x %s shape %d%s%s", mask, sgt_dtype_name(dt), sh, tr ? " transposed" : "",
                                        inj ? " NaN/Inf" : ""), f_reduce, &r, 1, x, sums_tol(dt));
                    }
                for (int d = -1; d < nd; d++) {
                    int dim = d < 0 ? SGT_ALL_DIMS : d;
                    red_arg rm = {SGT_OP_MEAN, 0, dim, d == 0, nd > 1 && d == 1};
                    check_case(WHAT("mean dim %d %s shape %d", d, sgt_dtype_name(dt), sh), f_reduce, &rm, 1, x, sums_tol(dt));
                    red_arg rx = {SGT_OP_MAX, 0, dim, d == 1, nd > 1 && d == 0};
                    /* EXACT: the maximum is one of the inputs */
                    check_case(WHAT("max dim %d %s shape %d", d, sgt_dtype_name(dt), sh), f_reduce, &rx, 1, x, EXACT);
                    red_arg ra = {SGT_OP_ARGMAX, 0, dim, d == 0, nd > 1 && d == 1};
                    check_case(WHAT("argmax dim %d %s shape %d", d, sgt_dtype_name(dt), sh), f_reduce, &ra, 1, x, EXACT);
                }
                rewind_both(m);
            }
        /* ties: argmax must pick the first maximum; empty dims: sums of nothing are 0 */
        marks m = mark_both();
        sgt_tensor *t[1] = {levels(dt, SGT_SHAPE(3, 5, 7), 320, 4)};
        for (int d = -1; d < 3; d++) {
            red_arg ra = {SGT_OP_ARGMAX, 0, d < 0 ? SGT_ALL_DIMS : d, false, false};
            check_case(WHAT("argmax with ties dim %d %s", d, sgt_dtype_name(dt)), f_reduce, &ra, 1, t, EXACT);
        }
        sgt_tensor *e[1] = {rnd(dt, SGT_SHAPE(0, 5), 321, -1, 1)};
        red_arg r0 = {SGT_OP_SUM, 1, 0, false, false};
        check_case(WHAT("sum over an empty dim %s", sgt_dtype_name(dt)), f_reduce, &r0, 1, e, EXACT);
        red_arg r1 = {SGT_OP_SUM, 2, 0, true, false};
        check_case(WHAT("sum of an empty tensor %s", sgt_dtype_name(dt)), f_reduce, &r1, 1, e, EXACT);
        rewind_both(m);
    }
}

/* ======================================================================================= */
/* softmax family                                                                           */

typedef struct {
    int kind; /* 0 softmax, 1 log_softmax, 2 causal */
    bool transpose;
} sm_arg;

static int f_softmax(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const sm_arg *a = arg;
    sgt_tensor *x = a->transpose ? sgt_transpose(c, in[0], -1, -2) : in[0];
    out[0] = a->kind == 0 ? sgt_softmax(c, x) : a->kind == 1 ? sgt_log_softmax(c, x) : sgt_softmax_causal(c, x);
    return 1;
}

static int f_softmax_bwd(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    out[0] = sgt_softmax_bwd(c, in[0], in[1], *(const bool *)arg);
    return 1;
}

/* rows with -inf entries, an all -inf row, a NaN, a +inf */
static void inject_rows(sgt_tensor *x) {
    const int64_t n = x->shape[x->ndim - 1], rows = sgt_numel(x) / n;
    for (int64_t r = 0; r < rows && r < 4; r++)
        for (int64_t i = 0; i < n; i++) {
            int64_t idx[SGT_MAX_DIMS], q = r * n + i;
            for (int d = x->ndim - 1; d >= 0; d--) {
                idx[d] = q % x->shape[d];
                q /= x->shape[d];
            }
            if (r == 0 && i % 3 == 0) sgt_set(x, idx, -INFINITY);
            if (r == 1) sgt_set(x, idx, -INFINITY);
            if (r == 2 && i == n / 2) sgt_set(x, idx, NAN);
            if (r == 3 && i == 0) sgt_set(x, idx, INFINITY);
        }
}

static void t_softmax(void **s) {
    (void)s;
    NEED_GPU();
    const int64_t shapes[5][4] = {{3, 5, 7, 0}, {2, 3, 5, 9}, {70001, 3, 0, 0}, {4, 1000, 0, 0}, {6, 1, 0, 0}};
    const int nds[5] = {3, 4, 2, 2, 2};
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        for (int sh = 0; sh < 5; sh++)
            for (int inj = 0; inj < 2; inj++) {
                marks m = mark_both();
                sgt_tensor *x[1] = {rnd(dt, nds[sh], shapes[sh], 400 + (uint64_t)sh, -4, 4)};
                if (inj) inject_rows(x[0]);
                for (int kind = 0; kind < 3; kind++)
                    for (int tr = 0; tr < 2; tr++) {
                        if (kind == 2 && (nds[sh] < 2 || tr || shapes[sh][nds[sh] - 1] < shapes[sh][nds[sh] - 2])) continue;
                        if (tr && nds[sh] < 2) continue;
                        sm_arg a = {kind, tr};
                        /* TRANS: exp differs; the row sums add in another order */
                        check_case(WHAT("%s %s shape %d%s%s", kind == 0 ? "softmax" : kind == 1 ? "log_softmax" : "softmax_causal",
                                        sgt_dtype_name(dt), sh, tr ? " transposed" : "", inj ? " with -inf/NaN/inf rows" : ""),
                                   f_softmax, &a, 1, x, trans_tol(dt));
                    }
                /* backward with y from the CPU (softmax and log_softmax of x) */
                for (int lg = 0; lg < 2; lg++) {
                    bool blog = lg;
                    sgt_tensor *in[2] = {lg ? sgt_log_softmax(C, x[0]) : sgt_softmax(C, x[0]),
                                         rnd(dt, nds[sh], shapes[sh], 420 + (uint64_t)sh, -1, 1)};
                    /* TRANS (exp in the log branch) and SUMS (sum(dy*y) in another order, then a difference) */
                    tol t = dt == SGT_F32 ? (tol){1e-5, 1e-6, false} : (tol){1e-11, 1e-13, false};
                    check_case(WHAT("softmax_bwd log=%d %s shape %d%s", lg, sgt_dtype_name(dt), sh, inj ? " NaN/Inf" : ""),
                               f_softmax_bwd, &blog, 2, in, t);
                }
                rewind_both(m);
            }
    }
}

/* ======================================================================================= */
/* matmul                                                                                   */

static int f_matmul(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    out[0] = tu_mm_run(c, arg, in[0], in[1]); /* the cases' views: tests/common/test_util.h */
    return 1;
}

static sgt_tensor *abs_of(sgt_tensor *x) {
    int64_t n = sgt_numel(x);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    sgt_to_f64(x, v);
    for (int64_t i = 0; i < n; i++) v[i] = fabs(v[i]);
    sgt_tensor *y = sgt_from_f64(C, x->dtype, x->ndim, x->shape, v);
    free(v);
    return y;
}

static void t_matmul(void **s) {
    (void)s;
    NEED_GPU();
    const tu_mm_arg cases[] = {
        {2, 2, {33, 17}, {17, 29}, false, false, 0, 0},
        {2, 2, {17, 33}, {29, 17}, true, true, 0, 0},           /* both transposed in memory */
        {2, 2, {7, 5}, {7, 10}, false, false, 1, 2},            /* a a transposed view [5,7], b narrowed (ld > cols) */
        {4, 2, {2, 3, 5, 7}, {7, 4}, false, false, 0, 0},       /* batch folds into rows: one GEMM */
        {4, 3, {3, 1, 5, 7}, {4, 7, 6}, false, false, 0, 0},    /* both broadcast: loop of strided batches */
        {4, 2, {4, 3, 5, 7}, {7, 6}, false, false, 3, 0},       /* permuted batch dims: not one stride */
        {3, 3, {1, 5, 7}, {4, 7, 6}, false, false, 4, 0},       /* a expanded (batch stride 0) */
        {3, 3, {4, 5, 7}, {4, 6, 7}, false, true, 0, 0},        /* batched with b^T */
        {2, 2, {1, 7}, {7, 129}, false, false, 0, 0},           /* M = 1 */
        {2, 2, {33, 7}, {7, 1}, false, false, 0, 0},            /* N = 1 */
        {2, 2, {33, 1}, {1, 29}, false, false, 0, 0},           /* K = 1 */
        {2, 2, {5, 0}, {0, 4}, false, false, 0, 0},             /* K = 0: zeros */
        {2, 2, {1000, 33}, {33, 129}, false, false, 0, 0},
        {2, 2, {129, 257}, {257, 65}, false, false, 0, 0},
    };
    const int ncase = (int)(sizeof cases / sizeof cases[0]);
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        for (int i = 0; i < ncase; i++) {
            marks m = mark_both();
            const tu_mm_arg *a = &cases[i];
            sgt_tensor *in[2] = {rnd(dt, a->na, a->sa, 500 + (uint64_t)i, -1, 1), rnd(dt, a->nb, a->sb, 520 + (uint64_t)i, -1, 1)};
            sgt_tensor *g[1], *c[1];
            const char *what = WHAT("matmul case %d %s", i, sgt_dtype_name(dt));
            run_both(what, f_matmul, a, 2, in, g, c);
            /* Per-element bound from S = |a| @ |b| (the same product of absolute values, on the CPU):
             * TF32 rounds each input to 10 mantissa bits (relative error <= 2^-11, so <= ~2^-10 per
             * product) and accumulates in f32: |err| <= ~1e-3 S; we allow 4e-3 S. f64 (DGEMM, another
             * order and FMAs): |err| <= K eps S, K <= 257 here; we allow 1e-12 S. */
            sgt_tensor *ab[2] = {abs_of(in[0]), abs_of(in[1])}, *sabs[1];
            f_matmul(C, ab, sabs, a);
            int64_t n = sgt_numel(c[0]);
            double *tv = malloc(sizeof(double) * (size_t)(n ? n : 1));
            sgt_to_f64(sabs[0], tv);
            for (int64_t j = 0; j < n; j++) tv[j] = (dt == SGT_F32 ? 4e-3 : 1e-12) * tv[j] + 1e-30;
            compare_at(g[0], c[0], (tol){0, 0, false}, tv, what, __FILE__, __LINE__);
            free(tv);
            rewind_both(m);
        }
    }
}

/* ======================================================================================= */
/* index ops: embedding, index_add_rows, top-k, gather, scatter, concat                     */

static int f_embedding(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    bool tr = *(const bool *)arg;
    out[0] = sgt_embedding(c, tr ? sgt_transpose(c, in[0], 0, 1) : in[0], in[1]);
    return 1;
}

static int f_index_add(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    bool tr = *(const bool *)arg;
    sgt_tensor *rows = tr ? sgt_permute(c, in[2], (int[]){1, 0, 2}) : in[2];
    sgt_index_add_rows(c, in[0], in[1], rows);
    out[0] = in[0];
    return 1;
}

/* in[0] [V, W] buffer; rows go to its columns 2..2+C (strided dst rows) */
static int f_index_copy(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    sgt_index_copy_rows(c, sgt_narrow(c, in[0], 1, 2, in[2]->shape[1]), in[1], in[2]);
    out[0] = in[0];
    return 1;
}

static int f_topk(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    sgt_topk(c, in[0], *(const int *)arg, &out[0], &out[1]);
    return 2;
}

static int f_gather(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    out[0] = sgt_gather_last(c, in[0], in[1]);
    return 1;
}

static int f_scatter(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    out[0] = sgt_scatter_add_last(c, in[0], in[1], *(const int64_t *)arg);
    return 1;
}

static int f_concat(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const int dim = *(const int *)arg;
    /* in[0] [3,4,7]; in[1] [3,6,7] narrowed to 2 along the concat dim; in[2] permuted */
    sgt_tensor *xs[3];
    if (dim == 1) {
        xs[0] = in[0];
        xs[1] = sgt_narrow(c, in[1], 1, 3, 2);
        xs[2] = sgt_permute(c, in[2], (int[]){1, 0, 2}); /* [5,3,7] -> [3,5,7] */
    } else {
        xs[0] = in[0];
        xs[1] = sgt_transpose(c, in[1], 0, 0);
        xs[2] = in[0];
    }
    out[0] = sgt_concat(c, 3, xs, dim);
    return 1;
}

static void t_index_ops(void **s) {
    (void)s;
    NEED_GPU();
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        marks m = mark_both();
        const char *tn = sgt_dtype_name(dt);
        /* embedding (EXACT: row copies), from a contiguous table and a transposed view of one */
        for (int tr = 0; tr < 2; tr++) {
            bool btr = tr;
            sgt_tensor *in[2] = {tr ? rnd(dt, SGT_SHAPE(33, 50), 600, -1, 1) : rnd(dt, SGT_SHAPE(50, 33), 600, -1, 1),
                                 rand_idx(SGT_SHAPE(3, 43), 601, 50)};
            check_case(WHAT("embedding %s%s", tn, tr ? " of a transposed table" : ""), f_embedding, &btr, 2, in, EXACT);
        }
        /* index_add_rows (EXACT: each destination element adds its rows in the CPU's order) */
        for (int tr = 0; tr < 2; tr++) {
            bool btr = tr;
            sgt_tensor *in[3] = {rnd(dt, SGT_SHAPE(50, 33), 610, -1, 1), rand_idx(SGT_SHAPE(3, 43), 611, 50),
                                 tr ? rnd(dt, SGT_SHAPE(43, 3, 33), 612, -1, 1) : rnd(dt, SGT_SHAPE(3, 43, 33), 612, -1, 1)};
            check_case(WHAT("index_add_rows %s%s", tn, tr ? " of permuted rows" : ""), f_index_add, &btr, 3, in, EXACT);
        }
        /* index_copy_rows (EXACT: byte copies; repeated indices keep the last row, as the CPU) */
        {
            sgt_tensor *in[3] = {rnd(dt, SGT_SHAPE(50, 40), 615, -1, 1), rand_idx(SGT_SHAPE(37), 616, 50),
                                 rnd(dt, SGT_SHAPE(37, 33), 617, -1, 1)};
            check_case(WHAT("index_copy_rows %s", tn), f_index_copy, NULL, 3, in, EXACT);
        }
        /* top-k (EXACT: values are inputs, indices integers) with distinct values, ties and NaN */
        for (int v = 0; v < 3; v++) {
            sgt_tensor *x[1] = {v == 1 ? levels(dt, SGT_SHAPE(37, 129), 620, 6) : rnd(dt, SGT_SHAPE(37, 129), 621, -3, 3)};
            if (v == 2) inject(x[0]);
            const int ks[4] = {1, 5, 128, 129};
            for (int j = 0; j < 4; j++)
                check_case(WHAT("topk k=%d %s %s", ks[j], tn, v == 0 ? "distinct" : v == 1 ? "ties" : "NaN/Inf"), f_topk,
                           &ks[j], 1, x, EXACT);
        }
        sgt_tensor *x1[1] = {rnd(dt, SGT_SHAPE(70001, 3), 622, -3, 3)};
        const int k2 = 2;
        check_case(WHAT("topk over 70001 rows %s", tn), f_topk, &k2, 1, x1, EXACT);
        /* gather / scatter along the last dim (EXACT; scatter adds in the CPU's order) */
        sgt_tensor *gin[2] = {rnd(dt, SGT_SHAPE(5, 7, 33), 630, -1, 1), rand_idx(SGT_SHAPE(5, 7, 4), 631, 33)};
        check_case(WHAT("gather_last %s", tn), f_gather, NULL, 2, gin, EXACT);
        const int64_t ns[2] = {6, 33};
        for (int j = 0; j < 2; j++) {
            sgt_tensor *sin[2] = {rnd(dt, SGT_SHAPE(5, 7, 4), 632, -1, 1), rand_idx(SGT_SHAPE(5, 7, 4), 633, (int32_t)ns[j])};
            check_case(WHAT("scatter_add_last n=%lld %s", (long long)ns[j], tn), f_scatter, &ns[j], 2, sin, EXACT);
        }
        /* concat along each dim (EXACT: copies) */
        const int dims[3] = {0, 1, 2};
        for (int j = 0; j < 3; j++) {
            sgt_tensor *cin[3];
            if (dims[j] == 1) {
                cin[0] = rnd(dt, SGT_SHAPE(3, 4, 7), 640, -1, 1);
                cin[1] = rnd(dt, SGT_SHAPE(3, 6, 7), 641, -1, 1);
                cin[2] = rnd(dt, SGT_SHAPE(5, 3, 7), 642, -1, 1);
            } else {
                cin[0] = rnd(dt, SGT_SHAPE(3, 4, 7), 643, -1, 1);
                cin[1] = rnd(dt, SGT_SHAPE(3, 4, 7), 644, -1, 1);
                cin[2] = cin[0];
            }
            check_case(WHAT("concat dim %d %s", dims[j], tn), f_concat, &dims[j], 3, cin, EXACT);
        }
        rewind_both(m);
    }
    marks m = mark_both();
    const int d0 = 0;
    sgt_tensor *ci[3] = {rand_idx(SGT_SHAPE(3, 4, 7), 650, 100), rand_idx(SGT_SHAPE(3, 4, 7), 651, 100), NULL};
    ci[2] = ci[0];
    check_case("concat of i32", f_concat, &d0, 3, ci, EXACT);
    rewind_both(m);
}

/* ======================================================================================= */
/* comparison and selection                                                                 */

static int f_where(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    out[0] = sgt_where(c, in[0], sgt_transpose(c, in[1], 0, 1), in[2]);
    out[1] = sgt_masked_fill(c, in[3], in[4], -INFINITY);
    out[2] = sgt_masked_fill(c, sgt_transpose(c, in[1], 0, 1), in[0], 1e9);
    return 3;
}

static void t_cmp_where_masked_fill(void **s) {
    (void)s;
    NEED_GPU();
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        for (int sc = 0; sc < 5; sc++)
            for (int inj = 0; inj < 2; inj++) {
                marks m = mark_both();
                sgt_tensor *in[2];
                bin_inputs(dt, sc, true, 700 + (uint64_t)sc, in); /* few levels: many ties */
                if (inj) inject(in[0]), inject(in[1]);
                for (int kind = SGT_CMP_EQ; kind <= SGT_CMP_GE; kind++) {
                    bin_arg b = {SGT_OP_CMP, sc, kind};
                    check_case(WHAT("cmp kind %d %s shapes %d%s", kind, sgt_dtype_name(dt), sc, inj ? " NaN/Inf" : ""),
                               f_binary, &b, 2, in, EXACT);
                }
                rewind_both(m);
            }
        marks m = mark_both();
        sgt_tensor *in[5] = {levels(dt, SGT_SHAPE(5, 1), 710, 2), rnd(dt, SGT_SHAPE(7, 5), 711, -1, 1),
                             rnd(dt, SGT_SHAPE(7), 712, -1, 1), rnd(dt, SGT_SHAPE(3, 5, 7), 713, -1, 1),
                             levels(dt, SGT_SHAPE(5, 1), 714, 2)};
        inject(in[3]);
        check_case(WHAT("where and masked_fill %s", sgt_dtype_name(dt)), f_where, NULL, 5, in, EXACT);
        rewind_both(m);
    }
}

/* ======================================================================================= */
/* cross-entropy                                                                            */

typedef struct {
    int32_t ignore;
    bool transpose;
} ce_arg;

static int f_ce(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const ce_arg *a = arg;
    sgt_tensor *x = a->transpose ? sgt_transpose(c, in[0], 0, 1) : in[0];
    out[0] = sgt_cross_entropy(c, x, in[1], a->ignore, &out[1]);
    return 2;
}

static int f_ce_bwd(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    out[0] = sgt_cross_entropy_bwd(c, in[0], in[1], in[2], in[3], *(const int32_t *)arg, in[0]->shape[1]);
    return 1;
}

static void t_cross_entropy(void **s) {
    (void)s;
    NEED_GPU();
    const int64_t shapes[3][2] = {{37, 129}, {7, 50001}, {70001, 3}};
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        for (int sh = 0; sh < 3; sh++)
            for (int v = 0; v < 3; v++) {
                marks m = mark_both();
                const int64_t N = shapes[sh][0], V = shapes[sh][1];
                /* v 0: no ignore; 1: ignore -1 on some rows; 2: every row ignored (NaN loss) */
                int32_t *tg = malloc(sizeof(int32_t) * (size_t)N);
                for (int64_t i = 0; i < N; i++) {
                    tg[i] = (int32_t)(tu_urand((uint64_t)i, 800 + (uint64_t)sh) * (double)V);
                    if ((v == 1 && i % 5 == 2) || v == 2) tg[i] = -1;
                }
                sgt_tensor *in[2] = {sh == 0 ? rnd(dt, SGT_SHAPE(V, N), 810, -5, 5) : rnd(dt, SGT_SHAPE(N, V), 810, -5, 5),
                                     sgt_from_i32(C, SGT_SHAPE(N), tg)};
                free(tg);
                ce_arg a = {v == 0 ? SGT_NO_IGNORE : -1, sh == 0};
                /* TRANS (exp, log) and SUMS (row sums, and the mean over rows, in another order) */
                check_case(WHAT("cross_entropy [%lld,%lld] %s variant %d", (long long)N, (long long)V, sgt_dtype_name(dt), v),
                           f_ce, &a, 2, in, trans_tol(dt));
                sgt_tensor *lse;
                sgt_tensor *x = sh == 0 ? sgt_contiguous(C, sgt_transpose(C, in[0], 0, 1)) : in[0];
                sgt_cross_entropy(C, x, in[1], a.ignore, &lse);
                sgt_tensor *bin[4] = {x, in[1], lse, sgt_scalar(C, dt, 0.7)};
                check_case(WHAT("cross_entropy_bwd [%lld,%lld] %s variant %d", (long long)N, (long long)V, sgt_dtype_name(dt), v),
                           f_ce_bwd, &a.ignore, 4, bin, trans_tol(dt));
                rewind_both(m);
            }
    }
}

/* ======================================================================================= */
/* norms                                                                                    */

static int f_norm(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const bool layer = *(const bool *)arg;
    sgt_tensor *x = sgt_transpose(c, in[0], 0, 1); /* non-contiguous: ops.c copies it */
    if (layer) {
        out[0] = sgt_layernorm(c, x, in[1], in[2], 1e-5, &out[1], &out[2]);
        return 3;
    }
    out[0] = sgt_rmsnorm(c, x, in[1], 1e-5, &out[1]);
    return 2;
}

static int f_norm_bwd(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    const bool layer = *(const bool *)arg;
    if (layer) {
        sgt_layernorm_bwd(c, in[0], in[1], in[2], in[3], in[4], &out[0], &out[1], &out[2]);
        return 3;
    }
    sgt_rmsnorm_bwd(c, in[0], in[1], in[2], in[3], &out[0], &out[1]);
    return 2;
}

static void t_norms(void **s) {
    (void)s;
    NEED_GPU();
    const int64_t shapes[3][3] = {{5, 3, 129}, {3, 7, 5}, {3, 23001, 3}}; /* stored [T,B,C]; used as [B,T,C] */
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        /* SUMS: row statistics and column sums add in another order (then one rounding to f32) */
        tol t = dt == SGT_F32 ? (tol){1e-5, 1e-6, false} : (tol){1e-11, 1e-12, false};
        for (int sh = 0; sh < 3; sh++)
            for (int layer = 0; layer < 2; layer++) {
                marks m = mark_both();
                bool bl = layer;
                const int64_t Cn = shapes[sh][2];
                sgt_tensor *in[3] = {rnd(dt, 3, shapes[sh], 900 + (uint64_t)sh, -2, 2), rnd(dt, SGT_SHAPE(Cn), 901, 0.5, 1.5),
                                     rnd(dt, SGT_SHAPE(Cn), 902, -1, 1)};
                check_case(WHAT("%s fwd %s shape %d", layer ? "layernorm" : "rmsnorm", sgt_dtype_name(dt), sh), f_norm, &bl,
                           layer ? 3 : 2, in, t);
                /* backward from the CPU's statistics */
                sgt_tensor *fo[3];
                f_norm(C, in, fo, &bl);
                sgt_tensor *x = sgt_contiguous(C, sgt_transpose(C, in[0], 0, 1));
                sgt_tensor *dy = rnd(dt, x->ndim, x->shape, 903 + (uint64_t)sh, -1, 1);
                sgt_tensor *bin[5];
                int nb;
                if (layer) {
                    bin[0] = x, bin[1] = in[1], bin[2] = fo[1], bin[3] = fo[2], bin[4] = dy;
                    nb = 5;
                } else {
                    bin[0] = x, bin[1] = in[1], bin[2] = fo[1], bin[3] = dy;
                    nb = 4;
                }
                check_case(WHAT("%s bwd %s shape %d", layer ? "layernorm" : "rmsnorm", sgt_dtype_name(dt), sh), f_norm_bwd,
                           &bl, nb, bin, t);
                rewind_both(m);
            }
    }
}

/* ======================================================================================= */
/* AdamW                                                                                    */

static int f_adamw(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    for (int step = 1; step <= 2; step++)
        sgt_adamw_update(c, in[0], in[1], in[2], in[3], 3e-3, 0.9, 0.95, 1e-8, 0.1, 1 - pow(0.9, step),
                         1 - pow(0.95, step));
    out[0] = in[0], out[1] = in[2], out[2] = in[3];
    return 3;
}

static void t_adamw(void **s) {
    (void)s;
    NEED_GPU();
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        marks m = mark_both();
        sgt_tensor *in[4] = {rnd(dt, SGT_SHAPE(1000, 33), 950, -1, 1), rnd(dt, SGT_SHAPE(1000, 33), 951, -1, 1),
                             rnd(dt, SGT_SHAPE(1000, 33), 952, -0.1, 0.1), rnd(dt, SGT_SHAPE(1000, 33), 953, 0, 0.01)};
        /* EXACT: the same IEEE operations in the same order, and sqrt is correctly rounded */
        check_case(WHAT("adamw %s", sgt_dtype_name(dt)), f_adamw, NULL, 4, in, EXACT);
        rewind_both(m);
    }
}

/* ======================================================================================= */
/* block-sparse SwiGLU                                                                      */

#define BS_BLOCK 8
static int f_bsparse(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    out[0] = sgt_bsparse_swiglu(c, in[0], in[1], in[2], in[3], in[4], in[5], BS_BLOCK, &out[1], &out[2]);
    return 3; /* y, G, U (not the workspace, whose contents are each backend's own) */
}

static int f_bsparse_bwd(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    (void)arg;
    sgt_bsparse_swiglu_bwd(c, in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], BS_BLOCK, &out[0],
                           &out[1], &out[2], &out[3], &out[4]);
    return 5;
}

/* idx [N, k]: k distinct blocks of nb per token, as a router's top-k gives them (the CPU kernel's
 * workspace is sized for that) */
static sgt_tensor *distinct_blocks(int64_t N, int64_t k, int64_t nb, uint64_t stream) {
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(N * k)), perm[64];
    assert_true(nb <= 64 && k <= nb);
    for (int64_t t = 0; t < N; t++) {
        for (int32_t b = 0; b < nb; b++) perm[b] = b;
        for (int64_t j = 0; j < k; j++) { /* a partial Fisher-Yates shuffle */
            int64_t r = j + (int64_t)(tu_urand((uint64_t)(t * k + j), stream) * (double)(nb - j));
            int32_t tmp = perm[j];
            perm[j] = perm[r];
            perm[r] = tmp;
            v[t * k + j] = perm[j];
        }
    }
    sgt_tensor *x = sgt_from_i32(C, SGT_SHAPE(N, k), v);
    free(v);
    return x;
}

static void t_bsparse_swiglu(void **s) {
    (void)s;
    NEED_GPU();
    const int64_t Cn = 33, nb = 5, I = nb * BS_BLOCK, k = 3;
    const int64_t Ns[2] = {3, 37}; /* the CPU's decode path (few tokens) and its grouped-GEMM path */
    for (int kd = 0; kd < 2; kd++) {
        sgt_dtype dt = dtypes[kd];
        /* SUMS: dot products over C (and over the selected units) in another order than BLAS's, plus
         * exp in silu: a few f32 roundings of the sums' magnitude */
        tol t = dt == SGT_F32 ? (tol){1e-4, 1e-5, false} : (tol){1e-10, 1e-12, false};
        for (int ni = 0; ni < 2; ni++) {
            marks m = mark_both();
            const int64_t N = Ns[ni];
            sgt_tensor *in[9] = {rnd(dt, SGT_SHAPE(N, Cn), 980, -1, 1), rnd(dt, SGT_SHAPE(I, Cn), 981, -0.3, 0.3),
                                 rnd(dt, SGT_SHAPE(I, Cn), 982, -0.3, 0.3), rnd(dt, SGT_SHAPE(Cn, I), 983, -0.3, 0.3),
                                 distinct_blocks(N, k, nb, 984),
                                 rnd(dt, SGT_SHAPE(N, k), 985, 0.5, 1.5), NULL, NULL, NULL};
            check_case(WHAT("bsparse_swiglu N=%lld %s", (long long)N, sgt_dtype_name(dt)), f_bsparse, NULL, 6, in, t);
            /* backward from the CPU's G and U */
            sgt_tensor *fo[3];
            f_bsparse(C, in, fo, NULL);
            in[6] = fo[1], in[7] = fo[2], in[8] = rnd(dt, SGT_SHAPE(N, Cn), 986, -1, 1);
            check_case(WHAT("bsparse_swiglu_bwd N=%lld %s", (long long)N, sgt_dtype_name(dt)), f_bsparse_bwd, NULL, 9, in, t);
            rewind_both(m);
        }
    }
}

/* bf16: CUDA's tensor-core path (bsparse_tc.cuh: device grouping, grouped WMMA GEMMs) against
 * the CPU's f32 computation of the same bf16 inputs, rounded to bf16. Shapes with several 64-row
 * tiles per block, a partial reduction stage (C = 40) and two unit tiles (bs = 80).
 * Tolerance: the device rounds its hiddens (H, m h, dG, dU) to bf16 before the second GEMM and
 * sums in another order: a few bf16 roundings (2^-8) of the sums' magnitude (~1 here) */
static int f_bsparse_bs(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    out[0] = sgt_bsparse_swiglu(c, in[0], in[1], in[2], in[3], in[4], in[5], *(const int64_t *)arg, &out[1], &out[2]);
    return 3;
}

static int f_bsparse_bwd_bs(sgt_ctx *c, sgt_tensor **in, sgt_tensor **out, const void *arg) {
    sgt_bsparse_swiglu_bwd(c, in[0], in[1], in[2], in[3], in[4], in[5], in[6], in[7], in[8], *(const int64_t *)arg,
                           &out[0], &out[1], &out[2], &out[3], &out[4]);
    return 5;
}

static void t_bsparse_swiglu_bf16(void **s) {
    (void)s;
    NEED_GPU();
    const tol t = {2e-2, 2e-2, false};
    const int64_t cases[2][4] = {{40, 5, 16, 3}, {136, 4, 80, 2}}; /* C, nb, bs, k */
    for (int ci = 0; ci < 2; ci++) {
        const int64_t Cn = cases[ci][0], nb = cases[ci][1], bs = cases[ci][2], k = cases[ci][3], I = nb * bs, N = 150;
        marks m = mark_both();
        const sgt_dtype dt = SGT_BF16;
        sgt_tensor *in[9] = {rnd(dt, SGT_SHAPE(N, Cn), 990, -1, 1), rnd(dt, SGT_SHAPE(I, Cn), 991, -0.3, 0.3),
                             rnd(dt, SGT_SHAPE(I, Cn), 992, -0.3, 0.3), rnd(dt, SGT_SHAPE(Cn, I), 993, -0.3, 0.3),
                             distinct_blocks(N, k, nb, 994), rnd(dt, SGT_SHAPE(N, k), 995, 0.5, 1.5), NULL, NULL, NULL};
        check_case(WHAT("bsparse_swiglu bf16 C=%lld bs=%lld", (long long)Cn, (long long)bs), f_bsparse_bs, &bs, 6, in, t);
        sgt_tensor *fo[3];
        f_bsparse_bs(C, in, fo, &bs);
        in[6] = fo[1], in[7] = fo[2], in[8] = rnd(dt, SGT_SHAPE(N, Cn), 996, -1, 1);
        check_case(WHAT("bsparse_swiglu_bwd bf16 C=%lld bs=%lld", (long long)Cn, (long long)bs), f_bsparse_bwd_bs, &bs, 9,
                   in, t);
        rewind_both(m);
    }
}

/* ======================================================================================= */
/* gradients of a small graph through the tape, CPU vs CUDA                                 */

/* loss = CE(((softmax(h h^T) h + h) @ W), targets) with h = rmsnorm(embedding(E, idx), w) */
static sgt_tensor *small_graph(sgt_ctx *c, sgt_tensor *E, sgt_tensor *w, sgt_tensor *W, sgt_tensor *idx,
                               sgt_tensor *tg) {
    sgt_tensor *h = sgt_rmsnorm(c, sgt_embedding(c, E, idx), w, 1e-5, NULL);
    sgt_tensor *att = sgt_softmax(c, sgt_mul_scalar(c, sgt_matmul(c, h, h, false, true), 0.2));
    sgt_tensor *z = sgt_add(c, sgt_matmul(c, att, h, false, false), h);
    return sgt_cross_entropy(c, sgt_matmul(c, z, W, false, false), tg, -1, NULL);
}

static void grads_on(sgt_ctx *c, sgt_tensor **params, sgt_tensor *idx, sgt_tensor *tg, sgt_tensor **grads,
                     sgt_tensor **loss) {
    ag_tape tape;
    ag_tape_init(&tape, c);
    for (int i = 0; i < 3; i++) ag_set_requires_grad(c, params[i]);
    *loss = small_graph(c, params[0], params[1], params[2], idx, tg);
    ag_backward(&tape, *loss);
    for (int i = 0; i < 3; i++) grads[i] = ag_grad(params[i]);
    ag_tape_detach(&tape);
    for (int i = 0; i < 3; i++) params[i]->ext = NULL;
}

static void t_gradient_parity(void **s) {
    (void)s;
    NEED_GPU();
    for (int k = 0; k < 2; k++) {
        sgt_dtype dt = dtypes[k];
        marks m = mark_both();
        const int64_t V = 37, Cn = 33, N = 29;
        sgt_tensor *cp[3] = {rnd(dt, SGT_SHAPE(V, Cn), 960, -1, 1), rnd(dt, SGT_SHAPE(Cn), 961, 0.5, 1.5),
                             rnd(dt, SGT_SHAPE(Cn, V), 962, -0.3, 0.3)};
        sgt_tensor *idx = rand_idx(SGT_SHAPE(N), 963, (int32_t)V), *tg = rand_idx(SGT_SHAPE(N), 964, (int32_t)V);
        int32_t minus1 = -1;
        sgt_set(tg, (int64_t[]){3}, minus1); /* one ignored row */
        sgt_tensor *gp[3], *cg[3], *gg[3], *cl, *gl;
        for (int i = 0; i < 3; i++) gp[i] = sgt_to_device(G, cp[i], DEV);
        grads_on(G, gp, sgt_to_device(G, idx, DEV), sgt_to_device(G, tg, DEV), gg, &gl);
        grads_on(C, cp, idx, tg, cg, &cl);
        /* f64: no TF32, only summation order and libm: tight. f32: three TF32 matmuls on the way
         * (about 1e-3 relative each, see t_matmul), so a loose bound, absolute in the gradients'
         * scale as a gradient entry may be a near-cancellation of larger terms. */
        double gmax = 0;
        for (int i = 0; i < 3; i++) {
            double *v = tu_host(cg[i]);
            for (int64_t j = 0; j < sgt_numel(cg[i]); j++) gmax = fmax(gmax, fabs(v[j]));
            free(v);
        }
        tol t = dt == SGT_F64 ? (tol){1e-9, 1e-12, false} : (tol){2e-2, 2e-2 * gmax, false};
        const char *nm[3] = {"dE (embedding)", "dw (rmsnorm)", "dW (matmul)"};
        compare(gl, cl, t, WHAT("loss %s", sgt_dtype_name(dt)));
        for (int i = 0; i < 3; i++) {
            assert_non_null(gg[i]);
            assert_int_equal(gg[i]->device, DEV);
            compare(gg[i], cg[i], t, WHAT("gradient %s %s", nm[i], sgt_dtype_name(dt)));
        }
        rewind_both(m);
    }
}

/* ======================================================================================= */
/* host <-> device                                                                          */

static void t_round_trips(void **s) {
    (void)s;
    NEED_GPU();
    marks m = mark_both();
    /* from_f64 / to_f64 / from_i32 on the device */
    const int64_t n = 1000 * 33;
    double *v = malloc(sizeof(double) * n);
    void *zeros = calloc(1000 * 3, sizeof(double));
    for (int64_t i = 0; i < n; i++) v[i] = tu_urand((uint64_t)i, 970) * 200 - 100;
    for (int k = 0; k < 3; k++) {
        sgt_dtype dt = k == 0 ? SGT_F32 : k == 1 ? SGT_F64 : SGT_I32;
        sgt_tensor *g = sgt_from_f64(G, dt, SGT_SHAPE(1000, 33), v), *c = sgt_from_f64(C, dt, SGT_SHAPE(1000, 33), v);
        assert_int_equal(g->device, DEV);
        compare(g, c, EXACT, WHAT("from_f64/to_f64 %s", sgt_dtype_name(dt)));
        /* views of device tensors, read through copy_to_host */
        compare(sgt_transpose(G, g, 0, 1), sgt_transpose(C, c, 0, 1), EXACT, "transposed view to host");
        compare(sgt_narrow(G, g, 1, 3, 7), sgt_narrow(C, c, 1, 3, 7), EXACT, "narrowed view to host");
        compare(sgt_expand(G, sgt_narrow(G, g, 0, 5, 1), SGT_SHAPE(4, 33)),
                sgt_expand(C, sgt_narrow(C, c, 0, 5, 1), SGT_SHAPE(4, 33)), EXACT, "expanded view to host");
        /* copy_from_host into a strided view leaves the bytes around it alone */
        sgt_copy_from_host(sgt_narrow(G, sgt_transpose(G, g, 0, 1), 0, 2, 3), zeros);
        sgt_copy_from_host(sgt_narrow(C, sgt_transpose(C, c, 0, 1), 0, 2, 3), zeros);
        compare(g, c, EXACT, "copy_from_host into a view");
        /* get / set / item */
        sgt_set(g, (int64_t[]){999, 32}, 42);
        assert_true(sgt_get(g, (int64_t[]){999, 32}) == 42);
        assert_true(sgt_item(sgt_narrow(G, sgt_narrow(G, g, 0, 999, 1), 1, 32, 1)) == 42);
        /* to the CPU and back */
        sgt_tensor *h = sgt_to_device(C, g, SGT_CPU), *g2 = sgt_to_device(G, h, DEV);
        assert_int_equal(h->device, SGT_CPU);
        compare(g2, g, EXACT, "cuda -> cpu -> cuda");
    }
    free(v);
    free(zeros);
    if (self_check) { /* the rest is about the CUDA device itself */
        rewind_both(m);
        return;
    }
    /* errors name what went wrong */
    sgt_tensor *gx = sgt_zeros(G, SGT_F32, SGT_SHAPE(3)), *cx = sgt_zeros(C, SGT_F32, SGT_SHAPE(3));
    EXPECT_SGT_ERROR(sgt_add(G, gx, cx), "input 1 is on cpu but the output is on cuda");
    EXPECT_SGT_ERROR(sgt_to_device(G, gx, SGT_CPU), "is on cuda, not on cpu");
    sgt_tensor *tab = sgt_zeros(G, SGT_F32, SGT_SHAPE(5, 4)), *bad = sgt_to_device(G, rand_idx(SGT_SHAPE(3), 971, 5), DEV);
    sgt_set(bad, (int64_t[]){2}, 5);
    EXPECT_SGT_ERROR(sgt_embedding(G, tab, bad), "embedding: index 5 at position 2 is outside [0, 5)");
    EXPECT_SGT_ERROR(sgt_device_alloc(SGT_CUDA, (size_t)1 << 52), "CUDA out of memory: 4503599627370496 bytes requested");
    EXPECT_SGT_ERROR(sgt_device_alloc(SGT_CUDA, (size_t)1 << 52), "bytes free");
    rewind_both(m);
}

/* a device tensor prints the values the CPU copy prints (small: one bulk copy; summarised: the
 * shown elements one by one), under a header naming its device */
static void t_print(void **s) {
    (void)s;
    NEED_GPU();
    marks m = mark_both();
    const int64_t n = 40 * 30;
    double *v = malloc(sizeof(double) * n);
    for (int64_t i = 0; i < n; i++) v[i] = tu_urand((uint64_t)i, 972) * 20 - 10;
    for (int k = 0; k < 4; k++) {
        sgt_dtype dt = k == 0 ? SGT_F32 : k == 1 ? SGT_F64 : k == 2 ? SGT_BF16 : SGT_I32;
        sgt_tensor *g = sgt_from_f64(G, dt, SGT_SHAPE(40, 30), v), *c = sgt_from_f64(C, dt, SGT_SHAPE(40, 30), v);
        for (int small = 0; small < 2; small++) {
            sgt_tensor *gs = small ? sgt_narrow(G, sgt_transpose(G, g, 0, 1), 0, 2, 3) : g;
            sgt_tensor *cs = small ? sgt_narrow(C, sgt_transpose(C, c, 0, 1), 0, 2, 3) : c;
            char *tg = sgt_tensor_format(gs, "t"), *tc = sgt_tensor_format(cs, "t");
            char want[96];
            snprintf(want, sizeof want, ", %s\n", sgt_device_name(gs->device));
            assert_non_null(strstr(tg, want));
            assert_string_equal(strchr(tg, '\n'), strchr(tc, '\n'));
            free(tg);
            free(tc);
        }
    }
    free(v);
    rewind_both(m);
}

/* parameters made on the GPU equal those made on the CPU (same RNG streams); checkpoints move
 * both ways; steady steps on a device arena allocate nothing */
static void t_checkpoints_and_arenas(void **s) {
    (void)s;
    NEED_GPU();
    char dir[] = "/tmp/sgt_cuda_XXXXXX", path[64], err[512];
    assert_non_null(mkdtemp(dir));
    nn_params *pg = nn_params_create(7, SGT_F32, DEV), *pc = nn_params_create(7, SGT_F32, SGT_CPU);
    nn_params *pg2 = nn_params_create(7, SGT_F32, DEV), *pc2 = nn_params_create(7, SGT_F32, SGT_CPU);
    pg2->skip_init = pc2->skip_init = true;
    nn_params *all[4] = {pg, pc, pg2, pc2};
    for (int i = 0; i < 4; i++) {
        nn_param_new(all[i], "blk", "weight", SGT_SHAPE(33, 129), NN_INIT_NORMAL, 0.02, true);
        nn_param_new(all[i], "blk", "bias", SGT_SHAPE(129), NN_INIT_ONES, 0, false);
    }
    for (int i = 0; i < 2; i++) /* EXACT: the RNG streams agree bit for bit */
        compare(pg->items[i].t, pc->items[i].t, EXACT, WHAT("parameter %s made on cuda vs cpu", pg->items[i].name));
    snprintf(path, sizeof path, "%s/g.safetensors", dir);
    assert_int_equal(nn_save_params(pg, path, NULL, err, sizeof err), 0);
    assert_int_equal(nn_load_params(pc2, path, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    assert_int_equal(nn_save_params(pc, path, NULL, err, sizeof err), 0);
    assert_int_equal(nn_load_params(pg2, path, err, sizeof err), 0);
    for (int i = 0; i < 2; i++) {
        compare(pc2->items[i].t, pc->items[i].t, EXACT, "saved on cuda, loaded on cpu");
        compare(pg2->items[i].t, pc->items[i].t, EXACT, "saved on cpu, loaded on cuda");
    }
    /* the gradient norm reads its scalar back from the device */
    for (int i = 0; i < 2; i++) {
        sgt_fill(&pg->ctx, ag_grad(pg->items[i].t), 0.5);
        sgt_fill(&pc->ctx, ag_grad(pc->items[i].t), 0.5);
    }
    assert_true(fabs(nn_grad_norm(pg, G) - nn_grad_norm(pc, C)) <= 1e-12 * nn_grad_norm(pc, C));
    for (int i = 0; i < 4; i++) nn_params_destroy(all[i]);
    remove(path);
    snprintf(path, sizeof path, "%s/g.safetensors", dir);
    remove(path);
    rmdir(dir);

    /* a step loop on a device arena: after the first (measuring) step, no device allocation */
    sgt_arena *a = sgt_arena_create("cuda-steps", DEV, 0, 0);
    sgt_ctx c = {.arena = a, .device = DEV};
    uint64_t allocs = 0;
    for (int step = 0; step < 4; step++) {
        sgt_tensor *x = sgt_empty(&c, SGT_F32, SGT_SHAPE(300, 1000));
        sgt_rng_normal(&c, x, 1, (uint64_t)step, 0, 1);
        for (int i = 0; i < 6; i++) x = sgt_softmax(&c, sgt_add(&c, x, sgt_tanh(&c, x)));
        (void)sgt_item(sgt_sum(&c, x, SGT_ALL_DIMS, false));
        sgt_arena_reset(a);
        if (step == 1) allocs = a->n_system_allocs;
        if (step > 1) assert_int_equal(a->n_system_allocs, allocs);
    }
    assert_int_equal(a->nchunk, 1);
    sgt_arena_destroy(a);
}

/* ======================================================================================= */
/* checks that need no device                                                               */

static void t_op_table_complete(void **s) {
    (void)s;
#ifdef SGT_HAVE_CUDA
    sgt_cuda_register_kernels();
    for (int op = 0; op < SGT_NOPS; op++) {
        if (sgt_ops[op].is_view) {
            if (sgt_cuda_kernel_table[op]) fail_msg("view op '%s' has a CUDA kernel", sgt_ops[op].name);
        } else if (!sgt_cuda_kernel_table[op]) {
            fail_msg("op '%s' has no CUDA kernel: add one in tensor/cuda/ and bind it in backend.cu", sgt_ops[op].name);
        }
    }
#else
    skip(); /* a build without the CUDA backend has no table to check */
#endif
}

/* the host-copy API on CPU views: the same gather/scatter code the device paths stage through */
static void t_host_copies_cpu(void **s) {
    (void)s;
    marks m = mark_both();
    sgt_tensor *x = rnd(SGT_F64, SGT_SHAPE(4, 6, 5), 990, -1, 1);
    sgt_tensor *views[3] = {sgt_permute(C, x, (int[]){2, 0, 1}), sgt_narrow(C, sgt_transpose(C, x, 0, 2), 1, 2, 3),
                            sgt_expand(C, sgt_narrow(C, x, 0, 1, 1), SGT_SHAPE(3, 6, 5))};
    for (int k = 0; k < 3; k++) {
        const int64_t n = sgt_numel(views[k]);
        double *a = malloc(sizeof(double) * (size_t)n), *b = malloc(sizeof(double) * (size_t)n);
        sgt_copy_to_host(views[k], a);
        sgt_to_f64(views[k], b);
        assert_memory_equal(a, b, sizeof(double) * (size_t)n);
        sgt_tensor *y = sgt_to_device(C, views[k], SGT_CPU);
        assert_true(sgt_is_contiguous(y));
        sgt_to_f64(y, a);
        assert_memory_equal(a, b, sizeof(double) * (size_t)n);
        free(a);
        free(b);
    }
    /* writing into a view touches exactly its elements */
    double before[120], after[120], ones[15] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    sgt_to_f64(x, before);
    sgt_tensor *v = sgt_narrow(C, sgt_transpose(C, x, 0, 2), 1, 2, 3); /* [5,3,4] */
    sgt_copy_from_host(sgt_narrow(C, v, 2, 1, 1), ones);                /* [5,3,1]: x[1, 2..4, :] */
    sgt_to_f64(x, after);
    for (int i = 0; i < 120; i++) {
        const int a = i / 30, b = (i / 5) % 6;
        assert_true(after[i] == (a == 1 && b >= 2 && b < 5 ? 1.0 : before[i]));
    }
    rewind_both(m);
}

static void t_no_device_is_a_clear_error(void **s) {
    (void)s;
    if (have_gpu) skip();
    assert_false(sgt_device_available(SGT_CUDA));
#ifdef SGT_HAVE_CUDA
    EXPECT_SGT_ERROR(sgt_device_alloc(SGT_CUDA, 4096), "CUDA: no usable device");
#else
    EXPECT_SGT_ERROR(sgt_device_alloc(SGT_CUDA, 4096), "this build has no CUDA backend");
#endif
    /* a lazily growing device arena fails at its first allocation, the same way */
    sgt_arena *a = sgt_arena_create("lazy", SGT_CUDA, 0, 0);
    EXPECT_SGT_ERROR(sgt_arena_alloc(a, 16), "cuda");
    sgt_arena_destroy(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_op_table_complete),
        cmocka_unit_test(t_no_device_is_a_clear_error),
        cmocka_unit_test(t_host_copies_cpu),
        cmocka_unit_test(t_round_trips),
        cmocka_unit_test(t_print),
        cmocka_unit_test(t_copy_cast_fill),
        cmocka_unit_test(t_rng_bit_exact),
        cmocka_unit_test(t_dropout_bit_exact),
        cmocka_unit_test(t_binary),
        cmocka_unit_test(t_cmp_where_masked_fill),
        cmocka_unit_test(t_unary),
        cmocka_unit_test(t_reduce),
        cmocka_unit_test(t_softmax),
        cmocka_unit_test(t_matmul),
        cmocka_unit_test(t_index_ops),
        cmocka_unit_test(t_cross_entropy),
        cmocka_unit_test(t_norms),
        cmocka_unit_test(t_adamw),
        cmocka_unit_test(t_bsparse_swiglu),
        cmocka_unit_test(t_bsparse_swiglu_bf16),
        cmocka_unit_test(t_gradient_parity),
        cmocka_unit_test(t_checkpoints_and_arenas),
    };
    return cmocka_run_group_tests_name("cuda", tests, group_setup, group_teardown);
}
