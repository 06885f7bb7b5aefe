/* test_tape.c: the tape's rules: every op has a backward entry, a double backward is an error, the
 * no-grad scope records nothing, detach stops gradients, gradients accumulate until zeroed,
 * in-place writes into tracked tensors are refused, and 1000 identical training steps run in a
 * per-step arena that stops growing after the first. */
#include "../../autograd/tape.h"
#include "../common/test_util.h"

static void t_rule_table_complete(void **s) {
    (void)s;
    for (int op = 0; op < SGT_NOPS; op++) {
        const ag_rule *r = &ag_rules[op];
        if (r->kind == AG_MISSING) fail_msg("op '%s' has no entry in the rule table", sgt_ops[op].name);
        if (r->kind == AG_DIFF && !r->fn) fail_msg("op '%s' is differentiable but has no rule", sgt_ops[op].name);
    }
}

typedef struct {
    tu_env *e;
    ag_tape tape;
    sgt_arena *persist;
    sgt_tensor *w;
} fixture;

static fixture *fx_new(void) {
    fixture *f = calloc(1, sizeof *f);
    f->e = tu_env_new();
    f->persist = sgt_arena_create("params", SGT_CPU, 0, 0);
    sgt_ctx pc = {.arena = f->persist, .device = SGT_CPU};
    f->w = tu_rand(&pc, SGT_F32, SGT_SHAPE(3, 4), 1, -1, 1);
    f->w->name = "w";
    ag_param(f->persist, f->w);
    ag_tape_init(&f->tape, &f->e->ctx);
    return f;
}

static void fx_free(fixture *f) {
    sgt_arena_destroy(f->persist);
    tu_env_free(f->e);
    free(f);
}

/* loss = sum(tanh(x @ w)) for a fixed x */
static sgt_tensor *loss_of(fixture *f) {
    sgt_ctx *c = &f->e->ctx;
    sgt_tensor *x = tu_rand(c, SGT_F32, SGT_SHAPE(2, 3), 2, -1, 1);
    return sgt_sum(c, sgt_tanh(c, sgt_matmul(c, x, f->w, false, false)), SGT_ALL_DIMS, false);
}

static void t_double_backward_is_error(void **s) {
    (void)s;
    fixture *f = fx_new();
    sgt_tensor *l = loss_of(f);
    ag_backward(&f->tape, l);
    EXPECT_SGT_ERROR(ag_backward(&f->tape, l), "twice");
    /* after a reset it works again */
    ag_step_end(&f->tape);
    ag_backward(&f->tape, loss_of(f));
    fx_free(f);
}

static void t_backward_needs_scalar(void **s) {
    (void)s;
    fixture *f = fx_new();
    sgt_ctx *c = &f->e->ctx;
    sgt_tensor *y = sgt_mul(c, f->w, f->w);
    EXPECT_SGT_ERROR(ag_backward(&f->tape, y), "scalar");
    fx_free(f);
}

static void t_accumulate_then_zero(void **s) {
    (void)s;
    fixture *f = fx_new();
    ag_backward(&f->tape, loss_of(f));
    double g1[12], g2[12];
    sgt_to_f64(ag_grad(f->w), g1);
    ag_step_end(&f->tape);
    ag_backward(&f->tape, loss_of(f));
    sgt_to_f64(ag_grad(f->w), g2);
    for (int i = 0; i < 12; i++) assert_true(fabs(g2[i] - 2 * g1[i]) <= 1e-6 * fabs(g1[i]) + 1e-7);
    bool nonzero = false;
    for (int i = 0; i < 12; i++) nonzero |= g1[i] != 0;
    assert_true(nonzero);
    ag_zero_grad(&f->e->ctx, f->w);
    sgt_to_f64(ag_grad(f->w), g2);
    for (int i = 0; i < 12; i++) assert_true(g2[i] == 0.0);
    fx_free(f);
}

static void t_no_grad_records_nothing(void **s) {
    (void)s;
    fixture *f = fx_new();
    ag_no_grad_begin(&f->tape);
    sgt_tensor *l = loss_of(f);
    ag_no_grad_end(&f->tape);
    assert_int_equal(f->tape.nnodes, 0);
    assert_false(ag_requires_grad(l));
    EXPECT_SGT_ERROR(ag_backward(&f->tape, l), "does not depend");
    /* outside the scope the same computation is recorded */
    l = loss_of(f);
    assert_true(f->tape.nnodes > 0);
    assert_true(ag_requires_grad(l));
    fx_free(f);
}

static void t_detach_stops_gradient(void **s) {
    (void)s;
    fixture *f = fx_new();
    sgt_ctx *c = &f->e->ctx;
    /* loss = sum(w * detach(w)): d/dw = detach(w) = w, not 2w */
    sgt_tensor *l = sgt_sum(c, sgt_mul(c, f->w, ag_detach(c, f->w)), SGT_ALL_DIMS, false);
    ag_backward(&f->tape, l);
    double g[12], w[12];
    sgt_to_f64(ag_grad(f->w), g);
    sgt_to_f64(f->w, w);
    for (int i = 0; i < 12; i++) assert_true(fabs(g[i] - w[i]) < 1e-6);
    fx_free(f);
}

static void t_inplace_on_tracked_is_error(void **s) {
    (void)s;
    fixture *f = fx_new();
    sgt_ctx *c = &f->e->ctx;
    sgt_tensor *y = sgt_mul(c, f->w, f->w);
    EXPECT_SGT_ERROR(sgt_add_into(c, y, f->w), "in place");
    /* inside a no-grad scope (the optimizer's case) it is allowed */
    ag_no_grad_begin(&f->tape);
    sgt_add_into(c, f->w, y);
    ag_no_grad_end(&f->tape);
    fx_free(f);
}

static void t_nondiff_outputs(void **s) {
    (void)s;
    fixture *f = fx_new();
    sgt_ctx *c = &f->e->ctx;
    sgt_tensor *v, *i;
    sgt_topk(c, f->w, 2, &v, &i);
    assert_true(ag_requires_grad(v));
    assert_false(ag_requires_grad(i));
    assert_false(ag_requires_grad(sgt_argmax(c, f->w, -1, false)));
    assert_false(ag_requires_grad(sgt_cmp(c, SGT_CMP_GT, f->w, f->w)));
    fx_free(f);
}

/* 1000 identical steps: forward, backward, SGD update, reset. After the first step (the
 * measuring pass) the step arena makes no system allocation and its capacity stays put. */
static void t_arena_steady_over_1000_steps(void **s) {
    (void)s;
    fixture *f = fx_new();
    sgt_ctx *c = &f->e->ctx;
    uint64_t allocs_after_first = 0;
    size_t cap_after_first = 0;
    for (int step = 0; step < 1000; step++) {
        sgt_tensor *l = loss_of(f);
        ag_backward(&f->tape, l);
        ag_no_grad_begin(&f->tape);
        sgt_add_into(c, f->w, sgt_mul_scalar(c, ag_grad(f->w), -1e-3));
        ag_zero_grad(c, f->w);
        ag_no_grad_end(&f->tape);
        ag_step_end(&f->tape);
        if (step == 1) {
            allocs_after_first = f->e->arena->n_system_allocs;
            cap_after_first = sgt_arena_capacity(f->e->arena);
        }
    }
    assert_int_equal(f->e->arena->n_system_allocs, allocs_after_first);
    assert_int_equal(sgt_arena_capacity(f->e->arena), cap_after_first);
    assert_int_equal(f->e->arena->nchunk, 1);
    fx_free(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_rule_table_complete),     cmocka_unit_test(t_double_backward_is_error),
        cmocka_unit_test(t_backward_needs_scalar),   cmocka_unit_test(t_accumulate_then_zero),
        cmocka_unit_test(t_no_grad_records_nothing), cmocka_unit_test(t_detach_stops_gradient),
        cmocka_unit_test(t_inplace_on_tracked_is_error), cmocka_unit_test(t_nondiff_outputs),
        cmocka_unit_test(t_arena_steady_over_1000_steps),
    };
    return cmocka_run_group_tests_name("tape", tests, NULL, NULL);
}
