/* test_gpt_cuda.c: the dense and SGT GPT on CUDA against the CPU: every parameter gradient of
 * one step, and the losses of ten AdamW training steps of the tiny models, agree within a
 * tolerance. Skips (cmocka skip) when no CUDA device is usable. Part of `meson test --suite cuda`.
 *
 * Tolerances: CUDA matmuls use TF32 tensor cores (10-bit mantissa inputs), so a gradient can differ
 * from the exact-f32 CPU result by ~1e-3 relative; we compare with rtol 2e-2 on the gradients'
 * cosine and norms, and 1e-2 absolute on the losses of training (the trajectories drift slowly). */
#include "../../models/gpt.h"
#include "../../nn/optim.h"
#include "../common/test_util.h"

static bool have_cuda(void) { return sgt_device_available(SGT_CUDA); }

typedef struct {
    nn_params *p;
    gpt_model *m;
    nn_adamw *opt;
    sgt_arena *arena;
    sgt_ctx ctx;
    ag_tape tape;
} rig;

static void rig_init_ex(rig *r, sgt_device dev, bool sparse, int64_t vocab, sgt_dtype compute) {
    gpt_config cfg;
    gpt_preset("tiny", &cfg);
    cfg.sparse = sparse;
    cfg.compute = compute;
    cfg.vocab = vocab;
    cfg.ctx_len = 64;
    r->p = nn_params_create(21, SGT_F32, dev); /* same seed: bit-identical init on both devices */
    r->m = gpt_build(&cfg, r->p);
    r->opt = nn_adamw_create(r->p, 0.9, 0.95, 1e-8, 0.1);
    r->arena = sgt_arena_create("step", dev, 0, 0);
    r->ctx = (sgt_ctx){.arena = r->arena, .device = dev};
    ag_tape_init(&r->tape, &r->ctx);
}

static void rig_init(rig *r, sgt_device dev, bool sparse, int64_t vocab) { rig_init_ex(r, dev, sparse, vocab, SGT_F32); }

static void rig_free(rig *r) {
    ag_tape_detach(&r->tape);
    sgt_arena_destroy(r->arena);
    nn_adamw_destroy(r->opt);
    gpt_free(r->m);
    nn_params_destroy(r->p);
}

static double step(rig *r, const int32_t *ids, int B, int T, bool update) {
    sgt_ctx *c = &r->ctx;
    sgt_tensor *all = sgt_from_i32(c, SGT_SHAPE(B, T + 1), ids);
    sgt_tensor *x = sgt_contiguous(c, sgt_narrow(c, all, 1, 0, T)), *y = sgt_contiguous(c, sgt_narrow(c, all, 1, 1, T));
    gpt_output o = gpt_forward(c, r->m, x, &(gpt_forward_opts){.targets = y, .aux_weight = 0.01});
    double loss = sgt_item(o.loss);
    ag_backward(&r->tape, o.loss);
    if (update) {
        nn_clip_grad_norm(r->p, c, 1.0);
        nn_adamw_step(r->opt, 1e-3);
        nn_params_zero_grad(r->p);
    }
    ag_step_end(&r->tape);
    return loss;
}

static void batch(int32_t *ids, int n, int64_t vocab, uint64_t stream) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)(sgt_rng_uniform_at((uint64_t)i, stream, TEST_SEED) * (double)vocab);
}

/* compute: the GPU model's precision. bf16 (the mixed-precision training path) is held to looser
 * bounds than TF32: each bf16 activation carries 2^-9 relative rounding, a step's gradient sums
 * many of them, so a per-tensor gradient keeps cosine >= 0.98 and its norm within 5%, the loss
 * within 1% (measured on the CPU's emulation, test_gpt's t_mixed_precision: ~0.3%). */
static void gradient_parity_ex(bool sparse, sgt_dtype compute) {
    if (!have_cuda()) skip();
    const int B = 2, T = 32;
    const int64_t V = 512;
    const bool bf16 = compute == SGT_BF16;
    int32_t ids[B * (T + 1)];
    batch(ids, B * (T + 1), V, 3);
    rig cpu, gpu;
    rig_init(&cpu, SGT_CPU, sparse, V);
    rig_init_ex(&gpu, SGT_CUDA, sparse, V, compute);
    double lc = step(&cpu, ids, B, T, false), lg = step(&gpu, ids, B, T, false);
    if (fabs(lc - lg) > (bf16 ? 1e-2 : 1e-3) * (1 + fabs(lc)))
        fail_msg("%s loss: cpu %.6f cuda %.6f", sparse ? "sgt" : "dense", lc, lg);
    for (int i = 0; i < cpu.p->n; i++) {
        sgt_tensor *a = ag_grad(cpu.p->items[i].t), *b = ag_grad(gpu.p->items[i].t);
        double *ha = tu_host(a), *hb = tu_host(b), dot = 0, na = 0, nb = 0;
        for (int64_t j = 0; j < sgt_numel(a); j++) dot += ha[j] * hb[j], na += ha[j] * ha[j], nb += hb[j] * hb[j];
        free(ha);
        free(hb);
        if (na == 0 && nb == 0) continue;
        double cosine = dot / sqrt(na * nb), ratio = sqrt(nb / na);
        if (cosine < 0.98 || fabs(ratio - 1) > (bf16 ? 5e-2 : 2e-2))
            fail_msg("%s gradient of %s: cosine %.5f, |cuda|/|cpu| %.5f (seed %u)", sparse ? "sgt" : "dense",
                     cpu.p->items[i].name, cosine, ratio, TEST_SEED);
    }
    rig_free(&cpu);
    rig_free(&gpu);
}

static void gradient_parity(bool sparse) { gradient_parity_ex(sparse, SGT_F32); }
static void t_gradients_dense(void **s) { (void)s; gradient_parity(false); }
static void t_gradients_sgt(void **s) { (void)s; gradient_parity(true); }
static void t_gradients_dense_bf16(void **s) { (void)s; gradient_parity_ex(false, SGT_BF16); }
static void t_gradients_sgt_bf16(void **s) { (void)s; gradient_parity_ex(true, SGT_BF16); }

static void training_parity(bool sparse) {
    if (!have_cuda()) skip();
    const int B = 4, T = 32;
    const int64_t V = 512;
    rig cpu, gpu;
    rig_init(&cpu, SGT_CPU, sparse, V);
    rig_init(&gpu, SGT_CUDA, sparse, V);
    int32_t ids[B * (T + 1)];
    for (int s = 0; s < 10; s++) {
        batch(ids, B * (T + 1), V, 100 + (uint64_t)s);
        double lc = step(&cpu, ids, B, T, true), lg = step(&gpu, ids, B, T, true);
        print_message("    %s step %d: cpu %.5f cuda %.5f\n", sparse ? "sgt" : "dense", s, lc, lg);
        if (fabs(lc - lg) > 1e-2) fail_msg("%s step %d: loss cpu %.6f vs cuda %.6f", sparse ? "sgt" : "dense", s, lc, lg);
    }
    rig_free(&cpu);
    rig_free(&gpu);
}

static void t_training_dense(void **s) { (void)s; training_parity(false); }
static void t_training_sgt(void **s) { (void)s; training_parity(true); }

/* ---- batch-1 decoding: the GPU decoder, replaying a recorded CUDA graph from its third token
 * on, against the CPU's eager decoder on the same weights, both fed the CPU's greedy choices.
 * TF32 matmuls: logits within 2e-2 of the CPU's (1e-3 relative per product, over 4 layers). A
 * replay that used stale positions or an unwritten cache slot would be off by far more. ---- */
#include "../../models/decoder.h"

static void decoder_parity(bool sparse, bool skip_path) {
    if (!have_cuda()) skip();
    const int64_t V = 512;
    rig cpu, gpu;
    rig_init(&cpu, SGT_CPU, sparse, V);
    rig_init(&gpu, SGT_CUDA, sparse, V);
    gpt_set_ffn_skip(cpu.m, skip_path);
    gpt_set_ffn_skip(gpu.m, skip_path);
    gpt_prepare_decode(cpu.m, SGT_F32);
    gpt_prepare_decode(gpu.m, SGT_F32);
    gpt_decoder *dc = gpt_decoder_create(cpu.m, 48, false), *dg = gpt_decoder_create(gpu.m, 48, true);
    int32_t prompt[5] = {3, 141, 59, 265, 35};
    const float *a = gpt_decoder_prefill(dc, prompt, 5);
    const float *b = gpt_decoder_prefill(dg, prompt, 5);
    float *ca = malloc(sizeof(float) * (size_t)V);
    for (int t = 0; t < 24; t++) {
        memcpy(ca, a, sizeof(float) * (size_t)V);
        int32_t next = 0;
        for (int64_t v = 0; v < V; v++) {
            if (fabs(ca[v] - b[v]) > 2e-2 * (1 + fabs(ca[v])))
                fail_msg("%s decode step %d (%s): logit %lld cuda %.6f cpu %.6f", sparse ? "sgt" : "dense", t,
                         gpt_decoder_replaying(dg) ? "replayed graph" : "eager", (long long)v, b[v], ca[v]);
            next = ca[v] > ca[next] ? (int32_t)v : next;
        }
        a = gpt_decoder_step(dc, next);
        b = gpt_decoder_step(dg, next);
    }
    assert_true(gpt_decoder_replaying(dg));
    free(ca);
    gpt_decoder_destroy(dc);
    gpt_decoder_destroy(dg);
    rig_free(&cpu);
    rig_free(&gpu);
}
static void t_decoder_dense(void **s) { (void)s; decoder_parity(false, false); }
static void t_decoder_sgt(void **s) { (void)s; decoder_parity(true, false); decoder_parity(true, true); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_gradients_dense), cmocka_unit_test(t_gradients_sgt),
        cmocka_unit_test(t_training_dense), cmocka_unit_test(t_training_sgt),
        cmocka_unit_test(t_gradients_dense_bf16), cmocka_unit_test(t_gradients_sgt_bf16),
        cmocka_unit_test(t_decoder_dense), cmocka_unit_test(t_decoder_sgt),
    };
    return cmocka_run_group_tests_name("gpt_cuda", tests, NULL, NULL);
}
