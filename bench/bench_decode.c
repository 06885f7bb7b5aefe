/* bench_decode.c: batch-1 decode latency with the KV cache, for the dense model, the SGT model
 * with mask-and-multiply, and the SGT model skipping unselected blocks, beside the memory-bandwidth
 * floor (bytes of weights + KV cache read per token / measured memcpy bandwidth). Models are
 * randomly initialised (latency does not depend on training), f32 masters, on the CPU.
 *
 *   bench_decode [--config sgt-150m] [--prompt 32] [--tokens 64] [--reps 3] [--threads N] [--top_k_blocks K]
 *                [--weights bf16,f32]
 *
 * Variants: the dense model, the SGT model with mask-and-multiply and with block skipping, each
 * streaming bf16 copies of the weights and/or the f32 weights (--weights; gpt_prepare_decode);
 * the rounds alternate over every variant. Prints, per variant: median and p90 ms/token over
 * `tokens` generated tokens (the median of `reps` rounds), the floor (bytes read / bandwidth),
 * the ratio to it, and the sparse/dense ratios. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../models/gpt.h"
#include "bench_util.h"

/* ms per generated token: median and p90 over the tokens of one run */
static void decode(const gpt_model *m, int64_t np, int64_t ng, double *med, double *p90) {
    sgt_arena *kva = sgt_arena_create("kv", SGT_CPU, 0, 0), *step = sgt_arena_create("step", SGT_CPU, 0, 0);
    sgt_ctx kc = {.arena = kva, .device = SGT_CPU}, c = {.arena = step, .device = SGT_CPU};
    gpt_kv kv;
    gpt_kv_init(&kv, &kc, m, 1, np + ng);
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)np);
    for (int64_t i = 0; i < np; i++) prompt[i] = (int32_t)((i * 7919) % m->cfg.vocab);
    gpt_forward_opts o = {.kv = &kv, .last_only = true};
    gpt_forward(&c, m, sgt_from_i32(&c, SGT_SHAPE(1, np), prompt), &o);
    double *t = malloc(sizeof(double) * (size_t)ng);
    int32_t next = 1;
    for (int64_t i = 0; i < ng; i++) {
        sgt_arena_reset(step);
        double t0 = bench_now();
        sgt_tensor *lg = gpt_forward(&c, m, sgt_from_i32(&c, SGT_SHAPE(1, 1), &next), &o).logits;
        const float *l = sgt_ptr(lg);
        int32_t best = 0;
        for (int64_t v = 1; v < m->cfg.vocab; v++) best = l[v] > l[best] ? (int32_t)v : best;
        next = best;
        t[i] = 1e3 * (bench_now() - t0);
    }
    qsort(t, (size_t)ng, sizeof(double), bench_cmp_double);
    *med = t[ng / 2];
    *p90 = t[(int64_t)(0.9 * (double)(ng - 1))];
    free(t);
    free(prompt);
    sgt_arena_destroy(step);
    sgt_arena_destroy(kva);
}

/* the variants: (weights, model, FFN path) */
typedef struct {
    const char *name;
    sgt_dtype weights;
    bool sparse, skip;
} variant;

int main(int argc, char **argv) {
    const char *preset = "sgt-150m", *weights = "bf16,f32";
    int64_t np = 32, ng = 64, reps = 3, threads = 0, top_k = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) np = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) ng = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--top_k_blocks") && i + 1 < argc) top_k = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--weights") && i + 1 < argc) weights = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--config NAME] [--prompt N] [--tokens N] [--reps N] [--threads N] [--top_k_blocks K]\n"
                    "          [--weights bf16,f32 | bf16 | f32]\n",
                    argv[0]);
            return 2;
        }
    }
    const bool w16 = strstr(weights, "bf16") != NULL, w32 = strstr(weights, "f32") != NULL;
    if (!w16 && !w32) {
        fprintf(stderr, "bench_decode: --weights '%s' names neither bf16 nor f32\n", weights);
        return 2;
    }
    sgt_set_threads((int)threads);
    gpt_config cfg;
    if (gpt_preset(preset, &cfg)) {
        fprintf(stderr, "bench_decode: unknown preset '%s' (%s)\n", preset, gpt_preset_names());
        return 2;
    }
    if (top_k < 0 || top_k > cfg.num_blocks) {
        fprintf(stderr, "bench_decode: --top_k_blocks %lld is not in 1..%lld\n", (long long)top_k, (long long)cfg.num_blocks);
        return 2;
    }
    if (top_k) cfg.top_k = top_k;
    if (reps < 1) reps = 1;
    if (reps > 16) reps = 16;
    if (np + ng > cfg.ctx_len) ng = cfg.ctx_len - np;
    const double bw = sgt_device_bandwidth(SGT_CPU);
    printf("batch-1 decode, %s (SGT: top %lld of %lld blocks), prompt %lld, %lld tokens, %d threads, memcpy bandwidth "
           "%.1f GB/s (read+write), %lld alternating rounds\n", preset, (long long)cfg.top_k, (long long)cfg.num_blocks,
           (long long)np, (long long)ng, sgt_get_threads(), bw / 1e9, (long long)reps);
    /* one dense and one SGT model per weight dtype (the SGT model switches between its two paths) */
    variant vs[6];
    int nv = 0;
    for (int w = 0; w < 2; w++) {
        const sgt_dtype wt = w == 0 ? SGT_BF16 : SGT_F32;
        if (wt == SGT_BF16 ? !w16 : !w32) continue;
        const char *wn = sgt_dtype_name(wt);
        static char names[6][48];
        const char *kinds[3] = {"dense", "sparse mask-multiply", "sparse skip-blocks"};
        for (int k = 0; k < 3; k++) {
            snprintf(names[nv], sizeof names[nv], "%s %s", wn, kinds[k]);
            vs[nv] = (variant){names[nv], wt, k > 0, k == 2};
            nv++;
        }
    }
    gpt_model *models[6] = {0};
    nn_params *params[6] = {0};
    for (int v = 0; v < nv; v++) {
        if (vs[v].skip) continue; /* the mask variant's model, switched */
        gpt_config c = cfg;
        c.sparse = vs[v].sparse;
        params[v] = nn_params_create(1, SGT_F32, SGT_CPU);
        models[v] = gpt_build(&c, params[v]);
        gpt_prepare_decode(models[v], vs[v].weights);
        decode(models[v], np, ng < 8 ? ng : 8, &(double){0}, &(double){0}); /* warm-up */
    }
    double runs[6][16], p90s[6][16];
    for (int64_t r = 0; r < reps; r++) /* alternating: every variant once per round */
        for (int v = 0; v < nv; v++) {
            gpt_model *m = vs[v].skip ? models[v - 1] : models[v];
            if (vs[v].sparse) gpt_set_ffn_skip(m, vs[v].skip);
            decode(m, np, ng, &runs[v][r], &p90s[v][r]);
        }
    printf("%-26s %10s %10s %10s %9s\n", "variant", "ms/token", "p90", "floor", "x floor");
    double med[6];
    for (int v = 0; v < nv; v++) {
        qsort(runs[v], (size_t)reps, sizeof(double), bench_cmp_double);
        qsort(p90s[v], (size_t)reps, sizeof(double), bench_cmp_double);
        med[v] = runs[v][reps / 2];
        gpt_config c = cfg;
        c.sparse = vs[v].sparse;
        const double floor = 1e3 * gpt_decode_bytes(&c, vs[v].skip, np + ng / 2, vs[v].weights) / bw;
        printf("%-26s %10.3f %10.3f %10.3f %9.2f\n", vs[v].name, med[v], p90s[v][reps / 2], floor, med[v] / floor);
    }
    gpt_config sp = cfg;
    sp.sparse = true;
    for (int v = 0; v + 2 < nv; v += 3) {
        const sgt_dtype wt = vs[v].weights;
        printf("%s weights, sparse/dense ms per token: mask-multiply %.3f, skip-blocks %.3f (target <= 0.80; floor ratio %.3f)\n",
               sgt_dtype_name(wt), med[v + 1] / med[v], med[v + 2] / med[v],
               gpt_decode_bytes(&sp, true, np + ng / 2, wt) / gpt_decode_bytes(&cfg, false, np + ng / 2, wt));
    }
    if (w16 && w32)
        printf("bf16/f32 ms per token: dense %.3f, skip-blocks %.3f\n", med[0] / med[3], med[2] / med[5]);
    for (int v = 0; v < nv; v++)
        if (models[v]) {
            gpt_free(models[v]);
            nn_params_destroy(params[v]);
        }
    return 0;
}
