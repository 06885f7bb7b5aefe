/* elementwise.c: CPU kernels for copies, casts, fills, the RNG, binary and unary math, their
 * backward, comparison and selection. All run on the strided iterator (iter.c), so views,
 * broadcasts and in-place destinations work without copies. f32 math is done in f32 with the
 * float libm functions; f64 in f64. */
#include <math.h>
#include <string.h>

#include "../bf16.h"
#include "../rng.h"
#include "cpu.h"
#include "vmath.h"

typedef struct {
    sgt_op op;
    double s;
} ew_args;

/* ---- copy and cast ---- */

static void row_copy(void *u, int64_t n, char **p, const int64_t *st) {
    size_t es = *(size_t *)u;
    if (st[0] == 1 && st[1] == 1) {
        memmove(p[0], p[1], (size_t)n * es);
        return;
    }
    for (int64_t i = 0; i < n; i++) memcpy(p[0] + i * st[0] * (int64_t)es, p[1] + i * st[1] * (int64_t)es, es);
}

void sgt_cpu_copy(const sgt_opcall *call) {
    sgt_iter it;
    sgt_tensor *ops[2] = {call->dst[0], call->src[0]};
    sgt_iter_init(&it, 2, ops);
    size_t es = sgt_dtype_size(call->dst[0]->dtype);
    sgt_iter_run(&it, row_copy, &es);
}

typedef struct { sgt_dtype to, from; } cast_args;

static double load_as_double(const char *p, sgt_dtype t) {
    switch (t) {
    case SGT_F32: return *(const float *)p;
    case SGT_F64: return *(const double *)p;
    case SGT_BF16: return sgt_bf16_to_f32(*(const uint16_t *)p);
    default: return *(const int32_t *)p;
    }
}

static void row_cast(void *u, int64_t n, char **p, const int64_t *st) {
    cast_args *a = u;
    size_t eo = sgt_dtype_size(a->to), ei = sgt_dtype_size(a->from);
    for (int64_t i = 0; i < n; i++) {
        double v = load_as_double(p[1] + i * st[1] * (int64_t)ei, a->from);
        char *o = p[0] + i * st[0] * (int64_t)eo;
        switch (a->to) {
        case SGT_F32: *(float *)o = (float)v; break;
        case SGT_F64: *(double *)o = v; break;
        case SGT_BF16: *(uint16_t *)o = sgt_f32_to_bf16((float)v); break; /* through f32, as the GPU */
        default: *(int32_t *)o = (int32_t)v; break;
        }
    }
}

void sgt_cpu_cast(const sgt_opcall *call) {
    cast_args a = {call->dst[0]->dtype, call->src[0]->dtype};
    sgt_iter it;
    sgt_tensor *ops[2] = {call->dst[0], call->src[0]};
    sgt_iter_init(&it, 2, ops);
    sgt_iter_run(&it, row_cast, &a);
}

/* ---- fill and RNG ---- */

static void row_fill(void *u, int64_t n, char **p, const int64_t *st) {
    const sgt_opcall *call = u;
    double v = call->fp[0];
    switch (call->dst[0]->dtype) {
    case SGT_F32: for (int64_t i = 0; i < n; i++) ((float *)p[0])[i * st[0]] = (float)v; break;
    case SGT_F64: for (int64_t i = 0; i < n; i++) ((double *)p[0])[i * st[0]] = v; break;
    default: for (int64_t i = 0; i < n; i++) ((int32_t *)p[0])[i * st[0]] = (int32_t)v; break;
    }
}

void sgt_cpu_fill(const sgt_opcall *call) {
    sgt_iter it;
    sgt_iter_init(&it, 1, call->dst);
    sgt_iter_run(&it, row_fill, (void *)call);
}

/* RNG fills index elements by their logical (row-major) position, so the stream does not depend
 * on the destination's strides. */
static void rng_fill(const sgt_opcall *call, bool normal) {
    sgt_tensor *y = call->dst[0];
    uint64_t seed = (uint64_t)call->ip[0], stream = (uint64_t)call->ip[1];
    double a = call->fp[0], b = call->fp[1];
    int64_t n = sgt_numel(y);
    bool f32 = y->dtype == SGT_F32;
    SGT_CHECK(sgt_is_contiguous(y), "rng: destination must be contiguous");
    char *base = sgt_ptr(y);
#pragma omp parallel for schedule(static) if (n >= SGT_OMP_MIN / 8)
    for (int64_t i = 0; i < n; i++) {
        double v;
        if (normal) v = a + b * sgt_rng_normal_at((uint64_t)i, stream, seed);
        else if (f32) v = a + (b - a) * (double)sgt_rng_uniform_f32_at((uint64_t)i, stream, seed);
        else v = a + (b - a) * sgt_rng_uniform_at((uint64_t)i, stream, seed);
        if (f32) {
            float fv = (float)v;
            /* rounding to f32 may reach hi: uniform draws stay in [lo, hi) */
            if (!normal && fv >= (float)b && b > a) fv = nextafterf((float)b, -INFINITY);
            ((float *)base)[i] = fv;
        } else {
            if (!normal && v >= b && b > a) v = nextafter(b, -INFINITY);
            ((double *)base)[i] = v;
        }
    }
}

void sgt_cpu_rng_uniform(const sgt_opcall *call) { rng_fill(call, false); }
void sgt_cpu_rng_normal(const sgt_opcall *call) { rng_fill(call, true); }

/* ---- dropout: element i (logical position, both operands contiguous) kept by rng.h's rule ---- */

#define DROPOUT_LOOP(T)                                                                           \
    do {                                                                                          \
        T *y = (T *)sgt_ptr(call->dst[0]);                                                        \
        const T *x = (const T *)sgt_ptr(call->src[0]);                                            \
        const T s = (T)call->fp[0];                                                               \
        _Pragma("omp parallel for schedule(static) if (n >= SGT_OMP_MIN / 8)")                    \
        for (int64_t i = 0; i < n; i++) y[i] = sgt_rng_keep_at((uint64_t)i, stream, seed, thr) ? x[i] * s : (T)0; \
    } while (0)

void sgt_cpu_dropout(const sgt_opcall *call) {
    const uint64_t seed = (uint64_t)call->ip[0], stream = (uint64_t)call->ip[1];
    const uint32_t thr = (uint32_t)call->ip[2];
    const int64_t n = sgt_numel(call->dst[0]);
    SGT_CHECK(sgt_is_contiguous(call->dst[0]) && sgt_is_contiguous(call->src[0]), "dropout: operands must be contiguous");
    if (call->dst[0]->dtype == SGT_F32) DROPOUT_LOOP(float);
    else DROPOUT_LOOP(double);
}

/* ---- binary ---- */

#define BINARY_ROW(T, NAME, EXPR)                                                                \
    static void NAME(void *u, int64_t n, char **p, const int64_t *st) {                         \
        (void)u;                                                                                 \
        T *y = (T *)p[0];                                                                        \
        const T *A = (const T *)p[1], *B = (const T *)p[2];                                      \
        if (st[0] == 1 && st[1] == 1 && st[2] == 1) {                                            \
            for (int64_t i = 0; i < n; i++) { T a = A[i], b = B[i]; y[i] = (EXPR); }             \
        } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {                                     \
            const T b = B[0];                                                                    \
            for (int64_t i = 0; i < n; i++) { T a = A[i]; y[i] = (EXPR); }                       \
        } else {                                                                                 \
            for (int64_t i = 0; i < n; i++) {                                                    \
                T a = A[i * st[1]], b = B[i * st[2]];                                            \
                y[i * st[0]] = (EXPR);                                                           \
            }                                                                                    \
        }                                                                                        \
    }

#define BINARY_ROWS(T, S)                          \
    BINARY_ROW(T, add_##S, a + b)                  \
    BINARY_ROW(T, sub_##S, a - b)                  \
    BINARY_ROW(T, mul_##S, a * b)                  \
    BINARY_ROW(T, div_##S, a / b)                  \
    BINARY_ROW(T, eq_##S, (T)(a == b))             \
    BINARY_ROW(T, ne_##S, (T)(a != b))             \
    BINARY_ROW(T, lt_##S, (T)(a < b))              \
    BINARY_ROW(T, le_##S, (T)(a <= b))             \
    BINARY_ROW(T, gt_##S, (T)(a > b))              \
    BINARY_ROW(T, ge_##S, (T)(a >= b))
BINARY_ROWS(float, f32)
BINARY_ROWS(double, f64)

static void run_binary(const sgt_opcall *call, sgt_row_fn f32, sgt_row_fn f64) {
    sgt_iter it;
    sgt_tensor *ops[3] = {call->dst[0], call->src[0], call->src[1]};
    sgt_iter_init(&it, 3, ops);
    sgt_iter_run(&it, call->dst[0]->dtype == SGT_F32 ? f32 : f64, NULL);
}

void sgt_cpu_binary(const sgt_opcall *call) {
    switch (call->op) {
    case SGT_OP_ADD: run_binary(call, add_f32, add_f64); break;
    case SGT_OP_SUB: run_binary(call, sub_f32, sub_f64); break;
    case SGT_OP_MUL: run_binary(call, mul_f32, mul_f64); break;
    case SGT_OP_DIV: run_binary(call, div_f32, div_f64); break;
    default: SGT_FAIL("binary kernel: unexpected op '%s'", sgt_ops[call->op].name);
    }
}

void sgt_cpu_cmp(const sgt_opcall *call) {
    static const sgt_row_fn f32[] = {eq_f32, ne_f32, lt_f32, le_f32, gt_f32, ge_f32};
    static const sgt_row_fn f64[] = {eq_f64, ne_f64, lt_f64, le_f64, gt_f64, ge_f64};
    int k = (int)call->ip[0];
    SGT_CHECK(k >= 0 && k < 6, "cmp: bad kind %d", k);
    run_binary(call, f32[k], f64[k]);
}

/* ---- unary ---- */

#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_C 0.044715
#define SQRT1_2 0.70710678118654752440     /* 1/sqrt(2), exact GELU's erfc argument */
#define INV_SQRT_2PI 0.39894228040143267794 /* 1/sqrt(2 pi), the normal density's factor */

/* EXP and TANH are the f32 vectorisable versions (vmath.h) or libm's for f64 */
#define UNARY_ROWS(T, F, EXP, TANH)                                                                  \
    static inline T unary_##T(sgt_op op, T x, T s) {                                                 \
        switch (op) {                                                                                \
        case SGT_OP_ADD_SCALAR: return x + s;                                                        \
        case SGT_OP_MUL_SCALAR: return x * s;                                                        \
        case SGT_OP_POW_SCALAR: return s == (T)2 ? x * x : pow##F(x, s);                             \
        case SGT_OP_NEG: return -x;                                                                  \
        case SGT_OP_EXP: return EXP(x);                                                              \
        case SGT_OP_LOG: return log##F(x);                                                           \
        case SGT_OP_SQRT: return sqrt##F(x);                                                         \
        case SGT_OP_RSQRT: return (T)1 / sqrt##F(x);                                                 \
        case SGT_OP_TANH: return TANH(x);                                                            \
        case SGT_OP_SIGMOID: return (T)1 / ((T)1 + EXP(-x));                                         \
        case SGT_OP_SILU: return x / ((T)1 + EXP(-x));                                               \
        case SGT_OP_GELU: return (T)0.5 * x * ((T)1 + TANH((T)GELU_K * (x + (T)GELU_C * x * x * x))); \
        case SGT_OP_GELU_ERF: return (T)0.5 * x * erfc##F(-x * (T)SQRT1_2);                          \
        case SGT_OP_SIN: return sin##F(x);                                                           \
        case SGT_OP_COS: return cos##F(x);                                                           \
        case SGT_OP_RELU: return x > 0 ? x : (T)0;                                                   \
        default: return (T)NAN;                                                                      \
        }                                                                                            \
    }                                                                                                \
    /* dy * f'(x), with y = f(x) at hand */                                                          \
    static inline T unary_bwd_##T(sgt_op op, T x, T y, T dy, T s) {                                  \
        switch (op) {                                                                                \
        case SGT_OP_ADD_SCALAR: return dy;                                                           \
        case SGT_OP_MUL_SCALAR: return dy * s;                                                       \
        case SGT_OP_POW_SCALAR: return dy * s * pow##F(x, s - (T)1);                                 \
        case SGT_OP_NEG: return -dy;                                                                 \
        case SGT_OP_EXP: return dy * y;                                                              \
        case SGT_OP_LOG: return dy / x;                                                              \
        case SGT_OP_SQRT: return dy * (T)0.5 / y;                                                    \
        case SGT_OP_RSQRT: return dy * (T)-0.5 * y * y * y;                                          \
        case SGT_OP_TANH: return dy * ((T)1 - y * y);                                                \
        case SGT_OP_SIGMOID: return dy * y * ((T)1 - y);                                             \
        case SGT_OP_SILU: {                                                                          \
            T sg = (T)1 / ((T)1 + EXP(-x));                                                          \
            return dy * sg * ((T)1 + x * ((T)1 - sg));                                               \
        }                                                                                            \
        case SGT_OP_GELU: {                                                                          \
            T t = TANH((T)GELU_K * (x + (T)GELU_C * x * x * x));                                     \
            T du = (T)GELU_K * ((T)1 + (T)(3 * GELU_C) * x * x);                                     \
            return dy * ((T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * du);                    \
        }                                                                                            \
        case SGT_OP_GELU_ERF: /* Phi(x) + x phi(x) */                                                \
            return dy * ((T)0.5 * erfc##F(-x * (T)SQRT1_2) + x * (T)INV_SQRT_2PI * EXP((T)-0.5 * x * x)); \
        case SGT_OP_SIN: return dy * cos##F(x);                                                      \
        case SGT_OP_COS: return -dy * sin##F(x);                                                     \
        case SGT_OP_RELU: return x > 0 ? dy : (T)0;                                                  \
        default: return (T)NAN;                                                                      \
        }                                                                                            \
    }                                                                                                \
    /* contiguous rows: one loop per op, so each one vectorises */                                    \
    static void row_unary_##T(void *u, int64_t n, char **p, const int64_t *st) {                     \
        const ew_args *a = u;                                                                        \
        T *y = (T *)p[0];                                                                            \
        const T *x = (const T *)p[1];                                                                \
        const T s = (T)a->s;                                                                         \
        const sgt_op op = a->op;                                                                     \
        if (st[0] == 1 && st[1] == 1) {                                                              \
            switch (op) {                                                                            \
            case SGT_OP_EXP: for (int64_t i = 0; i < n; i++) y[i] = unary_##T(SGT_OP_EXP, x[i], s); return; \
            case SGT_OP_TANH: for (int64_t i = 0; i < n; i++) y[i] = unary_##T(SGT_OP_TANH, x[i], s); return; \
            case SGT_OP_SIGMOID: for (int64_t i = 0; i < n; i++) y[i] = unary_##T(SGT_OP_SIGMOID, x[i], s); return; \
            case SGT_OP_SILU: for (int64_t i = 0; i < n; i++) y[i] = unary_##T(SGT_OP_SILU, x[i], s); return; \
            case SGT_OP_GELU: for (int64_t i = 0; i < n; i++) y[i] = unary_##T(SGT_OP_GELU, x[i], s); return; \
            case SGT_OP_MUL_SCALAR: for (int64_t i = 0; i < n; i++) y[i] = x[i] * s; return;        \
            case SGT_OP_ADD_SCALAR: for (int64_t i = 0; i < n; i++) y[i] = x[i] + s; return;        \
            default: for (int64_t i = 0; i < n; i++) y[i] = unary_##T(op, x[i], s); return;          \
            }                                                                                        \
        }                                                                                            \
        for (int64_t i = 0; i < n; i++) y[i * st[0]] = unary_##T(op, x[i * st[1]], s);               \
    }                                                                                                \
    static void row_unary_bwd_##T(void *u, int64_t n, char **p, const int64_t *st) {                 \
        const ew_args *a = u;                                                                        \
        T *dx = (T *)p[0];                                                                           \
        const T *x = (const T *)p[1], *y = (const T *)p[2], *dy = (const T *)p[3];                   \
        const T s = (T)a->s;                                                                         \
        if (st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1) {                                  \
            switch (a->op) {                                                                         \
            case SGT_OP_SILU: for (int64_t i = 0; i < n; i++) dx[i] = unary_bwd_##T(SGT_OP_SILU, x[i], y[i], dy[i], s); return; \
            case SGT_OP_GELU: for (int64_t i = 0; i < n; i++) dx[i] = unary_bwd_##T(SGT_OP_GELU, x[i], y[i], dy[i], s); return; \
            case SGT_OP_SIGMOID: for (int64_t i = 0; i < n; i++) dx[i] = unary_bwd_##T(SGT_OP_SIGMOID, x[i], y[i], dy[i], s); return; \
            default: break;                                                                          \
            }                                                                                        \
        }                                                                                            \
        for (int64_t i = 0; i < n; i++)                                                              \
            dx[i * st[0]] = unary_bwd_##T(a->op, x[i * st[1]], y[i * st[2]], dy[i * st[3]], s);      \
    }
UNARY_ROWS(float, f, sgt_expf, sgt_tanhf)
UNARY_ROWS(double, , exp, tanh)

void sgt_cpu_unary(const sgt_opcall *call) {
    ew_args a = {call->op, call->fp[0]};
    sgt_iter it;
    sgt_tensor *ops[2] = {call->dst[0], call->src[0]};
    sgt_iter_init(&it, 2, ops);
    sgt_iter_run(&it, call->dst[0]->dtype == SGT_F32 ? row_unary_float : row_unary_double, &a);
}

void sgt_cpu_unary_bwd(const sgt_opcall *call) {
    ew_args a = {(sgt_op)call->ip[0], call->fp[0]};
    sgt_iter it;
    sgt_tensor *ops[4] = {call->dst[0], call->src[0], call->src[1], call->src[2]};
    sgt_iter_init(&it, 4, ops);
    sgt_iter_run(&it, call->dst[0]->dtype == SGT_F32 ? row_unary_bwd_float : row_unary_bwd_double, &a);
}

/* ---- where and masked_fill ---- */

#define SELECT_ROWS(T)                                                                                \
    static void row_where_##T(void *u, int64_t n, char **p, const int64_t *st) {                     \
        (void)u;                                                                                      \
        T *y = (T *)p[0];                                                                             \
        const T *c = (const T *)p[1], *a = (const T *)p[2], *b = (const T *)p[3];                     \
        for (int64_t i = 0; i < n; i++) y[i * st[0]] = c[i * st[1]] != 0 ? a[i * st[2]] : b[i * st[3]]; \
    }                                                                                                 \
    static void row_masked_fill_##T(void *u, int64_t n, char **p, const int64_t *st) {               \
        const T v = (T)((const sgt_opcall *)u)->fp[0];                                                \
        T *y = (T *)p[0];                                                                             \
        const T *x = (const T *)p[1], *m = (const T *)p[2];                                           \
        for (int64_t i = 0; i < n; i++) y[i * st[0]] = m[i * st[2]] != 0 ? v : x[i * st[1]];          \
    }
SELECT_ROWS(float)
SELECT_ROWS(double)

void sgt_cpu_where(const sgt_opcall *call) {
    sgt_iter it;
    sgt_tensor *ops[4] = {call->dst[0], call->src[0], call->src[1], call->src[2]};
    sgt_iter_init(&it, 4, ops);
    sgt_iter_run(&it, call->dst[0]->dtype == SGT_F32 ? row_where_float : row_where_double, NULL);
}

void sgt_cpu_masked_fill(const sgt_opcall *call) {
    sgt_iter it;
    sgt_tensor *ops[3] = {call->dst[0], call->src[0], call->src[1]};
    sgt_iter_init(&it, 3, ops);
    sgt_iter_run(&it, call->dst[0]->dtype == SGT_F32 ? row_masked_fill_float : row_masked_fill_double,
                 (void *)call);
}
