/* test_tensor.c: the tensor layer's plumbing: the op table is complete, views share bytes,
 * arenas grow then settle, overflow names the arena and the sizes, and misuse gives errors that
 * name the op. */
#include "../common/test_util.h"

static void t_op_table_complete(void **s) {
    (void)s;
    for (int op = 0; op < SGT_NOPS; op++) {
        assert_non_null(sgt_ops[op].name);
        if (!sgt_ops[op].is_view && !sgt_cpu_kernels[op]) fail_msg("op '%s' has no CPU kernel", sgt_ops[op].name);
        if (sgt_ops[op].is_view && sgt_cpu_kernels[op]) fail_msg("view '%s' should have no kernel", sgt_ops[op].name);
    }
}

static void t_views_share_bytes(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    sgt_tensor *x = tu_rand(c, SGT_F32, SGT_SHAPE(2, 3, 4), 1, -1, 1);
    sgt_tensor *t = sgt_transpose(c, x, 0, 2), *n = sgt_narrow(c, x, 1, 1, 2), *r = sgt_reshape(c, x, SGT_SHAPE(6, 4));
    assert_ptr_equal(t->data, x->data);
    assert_ptr_equal(n->data, x->data);
    assert_ptr_equal(r->data, x->data);
    assert_false(sgt_is_contiguous(t));
    assert_false(sgt_is_contiguous(n));
    assert_true(sgt_is_contiguous(r));
    /* writing through a view is seen by the base */
    sgt_set(n, (int64_t[]){1, 0, 2}, 42.0);
    assert_true(sgt_get(x, (int64_t[]){1, 1, 2}) == 42.0);
    assert_true(sgt_get(t, (int64_t[]){2, 1, 1}) == 42.0);
    /* reshape of a non-contiguous view copies */
    sgt_tensor *rt = sgt_reshape(c, t, SGT_SHAPE(-1));
    assert_ptr_not_equal(rt->data, x->data);
    assert_true(sgt_get(rt, (int64_t[]){2 * 6 + 1 * 2 + 1}) == 42.0);
    sgt_tensor *ex = sgt_expand(c, sgt_reshape(c, x, SGT_SHAPE(1, 24)), SGT_SHAPE(5, 24));
    assert_int_equal(ex->stride[0], 0);
    tu_env_free(e);
}

static void t_arena_grows_then_settles(void **s) {
    (void)s;
    sgt_arena *a = sgt_arena_create("grow", SGT_CPU, 0, 0);
    for (int step = 0; step < 5; step++) {
        for (int i = 0; i < 100; i++) {
            char *p = sgt_arena_alloc(a, 100000);
            assert_int_equal((uintptr_t)p % SGT_ARENA_ALIGN, 0);
            p[0] = p[99999] = 1; /* ASan checks the bounds */
        }
        if (step == 0) assert_true(a->nchunk > 1);
        sgt_arena_reset(a);
        assert_int_equal(a->nchunk, 1);
        assert_true(sgt_arena_capacity(a) >= 100 * 100000);
    }
    uint64_t allocs = a->n_system_allocs;
    for (int i = 0; i < 100; i++) sgt_arena_alloc(a, 100000);
    sgt_arena_reset(a);
    assert_int_equal(a->n_system_allocs, allocs);
    /* mark and rewind */
    sgt_arena_mark m = sgt_arena_get_mark(a);
    void *p1 = sgt_arena_alloc(a, 1000);
    sgt_arena_rewind(a, m);
    assert_ptr_equal(sgt_arena_alloc(a, 1000), p1);
    sgt_arena_destroy(a);
}

static void t_arena_overflow_names_sizes(void **s) {
    (void)s;
    sgt_arena *a = sgt_arena_create("activations", SGT_CPU, 4096, 8192);
    sgt_arena_alloc(a, 4000);
    EXPECT_SGT_ERROR(sgt_arena_alloc(a, 10000), "arena 'activations' overflow: 10000 bytes requested");
    sgt_arena_destroy(a);
}

static void t_errors_name_the_op(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    sgt_tensor *a = sgt_zeros(c, SGT_F32, SGT_SHAPE(2, 3)), *b = sgt_zeros(c, SGT_F32, SGT_SHAPE(4, 3));
    EXPECT_SGT_ERROR(sgt_add(c, a, b), "op 'add': shapes [2,3] f32 and [4,3] f32 do not broadcast");
    EXPECT_SGT_ERROR(sgt_matmul(c, a, a, false, false), "matmul: inner sizes differ");
    sgt_tensor *d = sgt_zeros(c, SGT_F64, SGT_SHAPE(2, 3));
    /* no silent promotion: mixing f32 and f64 names the op and both dtypes (docs/LIBRARY.md) */
    EXPECT_SGT_ERROR(sgt_mul(c, a, d), "op 'mul': dtypes differ (f32 and f64)");
    EXPECT_SGT_ERROR(sgt_add(c, d, a), "op 'add': dtypes differ (f64 and f32)");
    EXPECT_SGT_ERROR(sgt_matmul(c, d, sgt_zeros(c, SGT_F32, SGT_SHAPE(3, 2)), false, false),
                     "op 'matmul': dtypes differ (f64 and f32)");
    EXPECT_SGT_ERROR(sgt_reshape(c, a, SGT_SHAPE(4, 2)), "reshape");
    tu_env_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_op_table_complete),
        cmocka_unit_test(t_views_share_bytes),
        cmocka_unit_test(t_arena_grows_then_settles),
        cmocka_unit_test(t_arena_overflow_names_sizes),
        cmocka_unit_test(t_errors_name_the_op),
    };
    return cmocka_run_group_tests_name("tensor", tests, NULL, NULL);
}
