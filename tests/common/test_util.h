/* test_util.h: shared helpers for the cmocka tests: a context over a fresh arena, an error
 * handler that turns SGT_FAIL into a catchable jump, tensors from seeded random values, and
 * naive comparisons that print the seed and the worst element on failure; host-side values
 * (tu_urand, tu_prod, tu_dbuf, tu_vals of any float tensor), a per-element-tolerance comparison
 * (tu_close_to, tu_same_as, tu_check_meta), a log-sum-exp reference in double, and the matmul
 * cases over views (tu_mm_arg, tu_mm_view, tu_mm_run) of the device parity tests. */
#ifndef SGT_TEST_UTIL_H
#define SGT_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../tensor/bf16.h"
#include "../../tensor/ops.h"
#include "../../tensor/rng.h"

#define TEST_SEED 20261127u

static jmp_buf tu_jmp __attribute__((unused));
static int tu_armed __attribute__((unused));

__attribute__((unused)) static void tu_handler(const char *msg) {
    (void)msg;
    if (tu_armed) longjmp(tu_jmp, 1);
    fprintf(stderr, "%s\n", msg);
    abort();
}

/* EXPECT_SGT_ERROR(stmt, "substring"): stmt must fail with a message containing substring. */
#define EXPECT_SGT_ERROR(stmt, substr)                                                        \
    do {                                                                                      \
        sgt_error_handler prev_ = sgt_set_error_handler(tu_handler);                          \
        tu_armed = 1;                                                                         \
        if (setjmp(tu_jmp) == 0) {                                                            \
            stmt;                                                                             \
            tu_armed = 0;                                                                     \
            sgt_set_error_handler(prev_);                                                     \
            fail_msg("expected an error containing '%s' from: %s", substr, #stmt);            \
        }                                                                                     \
        tu_armed = 0;                                                                         \
        sgt_set_error_handler(prev_);                                                         \
        if (!strstr(sgt_last_error(), substr))                                                \
            fail_msg("error '%s' does not contain '%s'", sgt_last_error(), substr);           \
    } while (0)

typedef struct {
    sgt_arena *arena;
    sgt_ctx ctx;
} tu_env;

static inline tu_env *tu_env_new(void) {
    tu_env *e = calloc(1, sizeof *e);
    e->arena = sgt_arena_create("test", SGT_CPU, 1 << 20, 0);
    e->ctx.arena = e->arena;
    e->ctx.device = SGT_CPU;
    return e;
}

static inline void tu_env_free(tu_env *e) {
    sgt_arena_destroy(e->arena);
    free(e);
}

/* One environment for a whole cmocka group: `env`, setup/teardown to pass to
 * cmocka_run_group_tests (files add #define C (&env->ctx)). */
#define TU_GROUP_ENV                                   \
    static tu_env *env;                                \
    static int setup(void **state) {                   \
        (void)state;                                   \
        env = tu_env_new();                            \
        return 0;                                      \
    }                                                  \
    static int teardown(void **state) {                \
        (void)state;                                   \
        tu_env_free(env);                              \
        return 0;                                      \
    }

/* uniform values in [lo, hi), seeded by (TEST_SEED, stream); element i is deterministic */
static inline sgt_tensor *tu_rand(sgt_ctx *c, sgt_dtype t, int nd, const int64_t *shape, uint64_t stream, double lo,
                                  double hi) {
    sgt_tensor *x = sgt_empty(c, t, nd, shape);
    sgt_rng_uniform(c, x, TEST_SEED, stream, lo, hi);
    return x;
}

/* random values kept at least `gap` away from each other's neighbours: distinct (no ties) */
static inline sgt_tensor *tu_distinct(sgt_ctx *c, sgt_dtype t, int nd, const int64_t *shape, uint64_t stream) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    /* a seeded permutation of 0..n-1, scaled */
    for (int64_t i = 0; i < n; i++) v[i] = (double)i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(sgt_rng_uniform_at((uint64_t)i, stream, TEST_SEED) * (double)(i + 1));
        double tmp = v[i];
        v[i] = v[j];
        v[j] = tmp;
    }
    for (int64_t i = 0; i < n; i++) v[i] = (v[i] - (double)n / 2) * (4.0 / (double)(n ? n : 1));
    sgt_tensor *y = sgt_from_f64(c, t, nd, shape, v);
    free(v);
    return y;
}

static inline double *tu_host(const sgt_tensor *x) {
    int64_t n = sgt_numel(x);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    sgt_to_f64(x, v);
    return v;
}

/* asserts |got - want| <= atol + rtol |want| elementwise; NaN must match NaN, Inf must match Inf */
static inline void tu_assert_close_at(const sgt_tensor *got, const double *want, double rtol, double atol,
                                      const char *what, const char *file, int line) {
    int64_t n = sgt_numel(got);
    double *g = tu_host(got);
    for (int64_t i = 0; i < n; i++) {
        double a = g[i], b = want[i];
        bool ok;
        if (isnan(b) || isnan(a)) ok = isnan(a) && isnan(b);
        else if (isinf(b) || isinf(a)) ok = a == b;
        else ok = fabs(a - b) <= atol + rtol * fabs(b);
        if (!ok) {
            free(g);
            fail_msg("%s:%d: %s: element %lld is %.9g, expected %.9g (rtol %g, atol %g, seed %u)", file, line, what,
                     (long long)i, a, b, rtol, atol, TEST_SEED);
        }
    }
    free(g);
}
#define tu_assert_close(got, want, rtol, atol, what) tu_assert_close_at(got, want, rtol, atol, what, __FILE__, __LINE__)

/* ---- host values ---- */

/* element i of stream `stream`, uniform in [0, 1), seeded by TEST_SEED (the host side of tu_rand) */
static inline double tu_urand(uint64_t i, uint64_t stream) { return sgt_rng_uniform_at(i, stream, TEST_SEED); }

/* the number of elements of shape s[0..nd) */
static inline int64_t tu_prod(int nd, const int64_t *s) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= s[d];
    return n;
}

/* n zeroed doubles (at least one), to free */
static inline double *tu_dbuf(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(double)); }

/* the values of any float tensor on any device, in logical order (bf16 through its bits), to free */
static inline double *tu_vals(const sgt_tensor *x) {
    const int64_t n = sgt_numel(x);
    double *v = tu_dbuf(n);
    if (x->dtype == SGT_BF16) {
        uint16_t *h = malloc(sizeof(uint16_t) * (size_t)(n ? n : 1));
        sgt_copy_to_host(x, h);
        for (int64_t i = 0; i < n; i++) v[i] = sgt_bf16_to_f32(h[i]);
        free(h);
    } else {
        sgt_to_f64(x, v);
    }
    return v;
}

/* log(sum_j exp(x[j])) over x[0..n), shifted by the max, in double: the naive reference */
static inline double tu_logsumexp(const double *x, int64_t n) {
    double mx = -INFINITY, sum = 0;
    for (int64_t j = 0; j < n; j++) mx = fmax(mx, x[j]);
    for (int64_t j = 0; j < n; j++) sum += exp(x[j] - mx);
    return mx + log(sum);
}

/* ---- comparisons with a tolerance per element ---- */

/* got has dtype dt and shape s[0..nd) (nd 0: a scalar) */
static inline void tu_check_meta(const sgt_tensor *got, sgt_dtype dt, int nd, const int64_t *s, const char *what) {
    bool ok = got->dtype == dt && got->ndim == nd;
    for (int d = 0; ok && d < nd; d++) ok = got->shape[d] == s[d];
    if (ok) return;
    char b0[96], b1[96];
    int k = snprintf(b1, sizeof b1, "[");
    for (int d = 0; d < nd && k < (int)sizeof b1; d++)
        k += snprintf(b1 + k, sizeof b1 - (size_t)k, "%s%lld", d ? "," : "", (long long)s[d]);
    if (k < (int)sizeof b1) snprintf(b1 + k, sizeof b1 - (size_t)k, "] %s", sgt_dtype_name(dt));
    fail_msg("%s: result %s, expected %s", what, sgt_shape_str(got, b0, sizeof b0), b1);
}

/* got has dtype dt and the shape of `like` */
static inline void tu_check_like(const sgt_tensor *got, sgt_dtype dt, const sgt_tensor *like, const char *what) {
    tu_check_meta(got, dt, like->ndim, like->shape, what);
}

/* |got - want| <= tol[i] (tol NULL: the same value); NaN must meet NaN, an infinity the same one */
static inline void tu_close_at(const sgt_tensor *got, const double *want, const double *tol, const char *what,
                               const char *file, int line) {
    const int64_t n = sgt_numel(got);
    double *g = tu_vals(got);
    for (int64_t i = 0; i < n; i++) {
        const double a = g[i], b = want[i], t = tol ? tol[i] : 0.0;
        bool ok;
        if (isnan(a) || isnan(b)) ok = isnan(a) && isnan(b);
        else if (isinf(a) || isinf(b)) ok = a == b;
        else ok = tol ? fabs(a - b) <= t : a == b;
        if (!ok) {
            free(g);
            fail_msg("%s:%d: %s: element %lld is %.17g, expected %.17g, |diff| %.3g > tol %.3g (seed %u)", file, line,
                     what, (long long)i, a, b, fabs(a - b), t, TEST_SEED);
        }
    }
    free(g);
}
#define tu_close_to(got, want, tol, what) tu_close_at(got, want, tol, what, __FILE__, __LINE__)

/* the dtype, shape and values of another tensor, bit for bit (but NaN payloads and the sign of zero) */
static inline void tu_same_at(const sgt_tensor *got, const sgt_tensor *want, const char *what, const char *file,
                              int line) {
    tu_check_like(got, want->dtype, want, what);
    double *w = tu_vals(want);
    tu_close_at(got, w, NULL, what, file, line);
    free(w);
}
#define tu_same_as(got, want, what) tu_same_at(got, want, what, __FILE__, __LINE__)

/* ---- matmul cases over views ---- */

/* a matmul case: operands stored with shapes sa[0..na), sb[0..nb), transposed flags ta, tb, each
 * seen through a view (tu_mm_view) */
typedef struct {
    int na, nb;
    int64_t sa[4], sb[4]; /* stored shapes */
    bool ta, tb;
    int va, vb; /* views: 0 none, 1 transpose, 2 narrow the last dim by one on each side, 3 permute batch, 4 expand */
} tu_mm_arg;

/* view v of x: 1 the last two dims swapped, 2 the last dim narrowed by one on each side (ld > cols),
 * 3 the first two (batch) dims swapped, 4 dim 0 expanded to 4 (batch stride 0); else x itself */
static inline sgt_tensor *tu_mm_view(sgt_ctx *c, sgt_tensor *x, int v) {
    switch (v) {
    case 1: return sgt_transpose(c, x, -1, -2);
    case 2: return sgt_narrow(c, x, -1, 1, x->shape[x->ndim - 1] - 2);
    case 3: return sgt_transpose(c, x, 0, 1);
    case 4: {
        int64_t sh[SGT_MAX_DIMS];
        memcpy(sh, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        sh[0] = 4;
        return sgt_expand(c, x, x->ndim, sh);
    }
    default: return x;
    }
}

/* case a's matmul of x and y, each through its view */
static inline sgt_tensor *tu_mm_run(sgt_ctx *c, const tu_mm_arg *a, sgt_tensor *x, sgt_tensor *y) {
    sgt_tensor *xv = tu_mm_view(c, x, a->va), *yv = tu_mm_view(c, y, a->vb);
    return sgt_matmul(c, xv, yv, a->ta, a->tb);
}

#endif
