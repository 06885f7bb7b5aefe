/* test_sgd_cuda.c: SGD (momentum, Nesterov, L2 decay, a parameter group) and AdamW with groups on
 * CUDA against the same steps on the CPU, from identical parameters and gradients, f32. Both run
 * the same elementwise ops (no matmul, no TF32), so they agree to a few f32 ulps. Skips (cmocka
 * skip) when no CUDA device is usable. Part of `meson test --suite cuda`. */
#include "../../nn/optim.h"
#include "../common/test_util.h"

enum { NSTEP = 5 };

typedef struct {
    nn_params *p;
    sgt_tensor *w, *b;
    sgt_arena *arena;
    sgt_ctx ctx;
} rig;

static void rig_init(rig *r, sgt_device dev) {
    r->p = nn_params_create(13, SGT_F32, dev); /* same seed: identical init on both devices */
    r->w = nn_param_new(r->p, "enc", "weight", SGT_SHAPE(37, 19), NN_INIT_NORMAL, 0.5, true);
    r->b = nn_param_new(r->p, "head", "bias", SGT_SHAPE(19), NN_INIT_NORMAL, 0.5, false);
    r->arena = sgt_arena_create("step", dev, 0, 0);
    r->ctx = (sgt_ctx){.arena = r->arena, .device = dev};
}

static void rig_free(rig *r) {
    sgt_arena_destroy(r->arena);
    nn_params_destroy(r->p);
}

/* step k's gradients: host values (the same on both devices) copied into the gradient buffers */
static void set_grads(rig *r, int k) {
    sgt_tensor *ts[2] = {r->w, r->b};
    for (int j = 0; j < 2; j++) {
        int64_t n = sgt_numel(ts[j]);
        double *v = malloc(sizeof(double) * (size_t)n);
        for (int64_t i = 0; i < n; i++) v[i] = 2 * tu_urand((uint64_t)i, 100 + 10 * (uint64_t)k + (uint64_t)j) - 1;
        sgt_copy_into(&r->ctx, ag_grad(ts[j]), sgt_from_f64(&r->ctx, SGT_F32, ts[j]->ndim, ts[j]->shape, v));
        sgt_arena_reset(r->arena);
        free(v);
    }
}

static void compare(rig *cpu, rig *gpu, const char *what) {
    double *w = tu_host(cpu->w), *b = tu_host(cpu->b);
    tu_assert_close(gpu->w, w, 1e-5, 1e-6, what);
    tu_assert_close(gpu->b, b, 1e-5, 1e-6, what);
    free(w);
    free(b);
}

static const nn_param_group GROUPS[1] = {{"head.", 0.5, 0.0}};

static void t_sgd_parity(void **s) {
    (void)s;
    if (!sgt_device_available(SGT_CUDA)) skip();
    for (int nest = 0; nest < 2; nest++) {
        rig cpu, gpu;
        rig_init(&cpu, SGT_CPU);
        rig_init(&gpu, SGT_CUDA);
        nn_sgd *oc = nn_sgd_create(cpu.p, 0.9, nest, 0.01, GROUPS, 1);
        nn_sgd *og = nn_sgd_create(gpu.p, 0.9, nest, 0.01, GROUPS, 1);
        for (int k = 0; k < NSTEP; k++) {
            set_grads(&cpu, k);
            set_grads(&gpu, k);
            nn_sgd_step(oc, 0.05);
            nn_sgd_step(og, 0.05);
        }
        compare(&cpu, &gpu, nest ? "nesterov SGD, CUDA vs CPU" : "momentum SGD, CUDA vs CPU");
        nn_sgd_destroy(oc);
        nn_sgd_destroy(og);
        rig_free(&cpu);
        rig_free(&gpu);
    }
}

static void t_adamw_groups_parity(void **s) {
    (void)s;
    if (!sgt_device_available(SGT_CUDA)) skip();
    rig cpu, gpu;
    rig_init(&cpu, SGT_CPU);
    rig_init(&gpu, SGT_CUDA);
    nn_adamw *oc = nn_adamw_create_groups(cpu.p, 0.9, 0.95, 1e-8, 0.1, GROUPS, 1);
    nn_adamw *og = nn_adamw_create_groups(gpu.p, 0.9, 0.95, 1e-8, 0.1, GROUPS, 1);
    for (int k = 0; k < NSTEP; k++) {
        set_grads(&cpu, k);
        set_grads(&gpu, k);
        nn_adamw_step(oc, 1e-2);
        nn_adamw_step(og, 1e-2);
    }
    compare(&cpu, &gpu, "AdamW with groups, CUDA vs CPU");
    nn_adamw_destroy(oc);
    nn_adamw_destroy(og);
    rig_free(&cpu);
    rig_free(&gpu);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_sgd_parity),
        cmocka_unit_test(t_adamw_groups_parity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
