/* test_util.h: shared helpers for the cmocka tests: a context over a fresh arena, an error
 * handler that turns SGT_FAIL into a catchable jump, tensors from seeded random values, and
 * naive comparisons that print the seed and the worst element on failure. */
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

#endif
