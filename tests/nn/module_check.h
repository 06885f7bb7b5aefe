/* module_check.h: the harness of the nn modules' gradient checks (test_modules.c,
 * test_standard.c): one CPU environment for the group (`env`, C), f64 random inputs R(stream,
 * shape...), a fresh f64 parameter store per check, parameters overwritten with seeded uniform
 * values, and check(): ag_gradcheck over every element of the small inputs (max_elems 512) plus
 * the directional check, the report printed and the seed named on failure.
 *
 * Module parameters are passed to ag_gradcheck as its inputs: the module holds pointers to the
 * same tensors, so the forward function reaches them through the module (the `user` pointer).
 * gradcheck replaces their autograd meta, so each check builds a fresh parameter store. */
#ifndef SGT_TEST_MODULE_CHECK_H
#define SGT_TEST_MODULE_CHECK_H

#include "../../autograd/gradcheck.h"
#include "../../nn/params.h"
#include "../common/test_util.h"

TU_GROUP_ENV
#define C (&env->ctx)
#define R(stream, ...) tu_rand(C, SGT_F64, SGT_SHAPE(__VA_ARGS__), stream, -1.0, 1.0)
#define FN(name) static sgt_tensor *name(sgt_ctx *c, sgt_tensor **x, int n, void *u)

static nn_params *store(void) { return nn_params_create(TEST_SEED, SGT_F64, SGT_CPU); }

/* overwrites a parameter with seeded uniform values (zero- or one-initialised ones included) */
__attribute__((unused)) static void randomize(nn_params *p, sgt_tensor *t, uint64_t stream, double lo, double hi) {
    sgt_rng_uniform(&p->ctx, t, TEST_SEED, stream, lo, hi);
}

static void check(const char *what, ag_fn fn, void *user, sgt_tensor **in, int n, const bool *diff) {
    sgt_arena_mark m = sgt_arena_get_mark(env->arena);
    ag_gradcheck_opts o = {.max_elems = 512};
    ag_gradcheck_result r = ag_gradcheck(C, fn, user, in, n, diff, &o);
    print_message("    %s: %s\n", what, r.report);
    if (!r.pass) fail_msg("gradcheck of %s failed (seed %u): %s", what, TEST_SEED, r.report);
    assert_true(r.checked > 0);
    sgt_arena_rewind(env->arena, m);
}

#endif
