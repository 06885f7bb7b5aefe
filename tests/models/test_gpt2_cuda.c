/* test_gpt2_cuda.c: the classic GPT-2 (models/gpt2.h) on CUDA against the CPU: the loss and every
 * parameter gradient of one step in eval mode, and in train mode with dropout (the Philox masks
 * depend on seed and call count only, so both devices drop the same elements). Skips without a
 * CUDA device; SGT_CUDA_TEST_ON_CPU=1 lets the CPU stand in for it (a check of this file's own
 * logic). Part of `meson test --suite cuda`.
 * Tolerances as test_gpt_cuda.c: TF32 matmuls, so gradients agree in cosine >= 0.98 and norm within
 * 2%, the loss within 1e-3 relative. */
#include "../../models/gpt2.h"
#include "../common/test_util.h"

static sgt_device dev_under_test(void) {
    if (sgt_device_available(SGT_CUDA)) return SGT_CUDA;
    const char *self = getenv("SGT_CUDA_TEST_ON_CPU");
    return self && *self && strcmp(self, "0") ? SGT_CPU : (sgt_device)-1;
}

typedef struct {
    nn_params *p;
    gpt2_model *m;
    sgt_arena *arena;
    sgt_ctx ctx;
    ag_tape tape;
} rig;

static void rig_init(rig *r, sgt_device dev, double dropout) {
    gpt2_config cfg;
    gpt2_preset("gpt2-tiny", &cfg);
    cfg.vocab = 512;
    cfg.ctx_len = 64;
    cfg.dropout = dropout;
    r->p = nn_params_create(21, SGT_F32, dev); /* same seed: the same initial weights on both devices */
    r->m = gpt2_build(&cfg, r->p);
    r->m->mode.train = dropout > 0;
    r->arena = sgt_arena_create("step", dev, 0, 0);
    r->ctx = (sgt_ctx){.arena = r->arena, .device = dev};
    ag_tape_init(&r->tape, &r->ctx);
}

static void rig_free(rig *r) {
    ag_tape_detach(&r->tape);
    sgt_arena_destroy(r->arena);
    gpt2_free(r->m);
    nn_params_destroy(r->p);
}

static double step(rig *r, const int32_t *ids, int B, int T) {
    sgt_ctx *c = &r->ctx;
    sgt_tensor *all = sgt_from_i32(c, SGT_SHAPE(B, T + 1), ids), *loss = NULL;
    gpt2_forward(c, r->m, sgt_contiguous(c, sgt_narrow(c, all, 1, 0, T)), sgt_contiguous(c, sgt_narrow(c, all, 1, 1, T)),
                 &loss, NULL);
    double l = sgt_item(loss);
    ag_backward(&r->tape, loss);
    ag_step_end(&r->tape);
    return l;
}

static void parity(double dropout) {
    sgt_device dev = dev_under_test();
    if ((int)dev < 0) skip();
    enum { B = 2, T = 32 };
    int32_t ids[B * (T + 1)];
    for (int i = 0; i < B * (T + 1); i++) ids[i] = (int32_t)(sgt_rng_uniform_at((uint64_t)i, 3, TEST_SEED) * 512);
    rig cpu, gpu;
    rig_init(&cpu, SGT_CPU, dropout);
    rig_init(&gpu, dev, dropout);
    double lc = step(&cpu, ids, B, T), lg = step(&gpu, ids, B, T);
    print_message("    dropout %.1f: loss cpu %.6f, %s %.6f\n", dropout, lc, dev == SGT_CUDA ? "cuda" : "cpu (standing in)", lg);
    if (fabs(lc - lg) > 1e-3 * (1 + fabs(lc))) fail_msg("dropout %.1f loss: cpu %.6f device %.6f", dropout, lc, lg);
    for (int i = 0; i < cpu.p->n; i++) {
        double *ha = tu_host(ag_grad(cpu.p->items[i].t)), *hb = tu_host(ag_grad(gpu.p->items[i].t)), dot = 0, na = 0, nb = 0;
        for (int64_t j = 0; j < sgt_numel(cpu.p->items[i].t); j++) dot += ha[j] * hb[j], na += ha[j] * ha[j], nb += hb[j] * hb[j];
        free(ha);
        free(hb);
        if (na == 0 && nb == 0) continue;
        double cosine = dot / sqrt(na * nb), ratio = sqrt(nb / na);
        if (cosine < 0.98 || fabs(ratio - 1) > 2e-2)
            fail_msg("dropout %.1f, gradient of %s: cosine %.5f, |device|/|cpu| %.5f (seed %u)", dropout,
                     cpu.p->items[i].name, cosine, ratio, TEST_SEED);
    }
    rig_free(&cpu);
    rig_free(&gpu);
}

static void t_eval_mode(void **s) { (void)s; parity(0.0); }
static void t_train_mode_dropout(void **s) { (void)s; parity(0.1); }

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(t_eval_mode), cmocka_unit_test(t_train_mode_dropout)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
