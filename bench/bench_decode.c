/* bench_decode.c: batch-1 decode latency with the KV cache, for the dense model, the SGT model
 * with mask-and-multiply, and the SGT model skipping unselected blocks, beside the memory-bandwidth
 * floor (bytes of weights + KV cache read per token / measured memcpy bandwidth). Models are
 * randomly initialised (latency does not depend on training), f32, on the CPU.
 *
 *   bench_decode [--config sgt-150m] [--prompt 32] [--tokens 64] [--reps 3] [--threads N] [--top_k_blocks K]
 *
 * Prints, per variant: median and p90 ms/token over `tokens` generated tokens (the median of
 * `reps` runs), the ideal ms/token, the ratio to it, and sparse/dense ratios. */
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

int main(int argc, char **argv) {
    const char *preset = "sgt-150m";
    int64_t np = 32, ng = 64, reps = 3, threads = 0, top_k = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--config") && i + 1 < argc) preset = argv[++i];
        else if (!strcmp(argv[i], "--prompt") && i + 1 < argc) np = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc) ng = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--top_k_blocks") && i + 1 < argc) top_k = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--config NAME] [--prompt N] [--tokens N] [--reps N] [--threads N] [--top_k_blocks K]\n",
                    argv[0]);
            return 2;
        }
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
    if (np + ng > cfg.ctx_len) ng = cfg.ctx_len - np;
    const double bw = sgt_device_bandwidth(SGT_CPU);
    printf("batch-1 decode, %s (SGT: top %lld of %lld blocks), prompt %lld, %lld tokens, %d threads, memcpy bandwidth "
           "%.1f GB/s (read+write)\n", preset, (long long)cfg.top_k, (long long)cfg.num_blocks,
           (long long)np, (long long)ng, sgt_get_threads(), bw / 1e9);
    printf("%-22s %10s %10s %10s %9s\n", "variant", "ms/token", "p90", "ideal", "x ideal");
    const char *names[3] = {"dense", "sparse mask-multiply", "sparse skip-blocks"};
    double med[3];
    for (int v = 0; v < 3; v++) {
        gpt_config c = cfg;
        c.sparse = v > 0;
        c.ffn_skip = v == 2;
        nn_params *p = nn_params_create(1, SGT_F32, SGT_CPU);
        gpt_model *m = gpt_build(&c, p);
        gpt_prepare_decode(m);
        double runs[16], p90s[16];
        if (reps > 16) reps = 16;
        decode(m, np, ng < 8 ? ng : 8, &runs[0], &p90s[0]); /* warm-up */
        for (int64_t r = 0; r < reps; r++) decode(m, np, ng, &runs[r], &p90s[r]);
        qsort(runs, (size_t)reps, sizeof(double), bench_cmp_double);
        qsort(p90s, (size_t)reps, sizeof(double), bench_cmp_double);
        med[v] = runs[reps / 2];
        double ideal = 1e3 * gpt_decode_bytes(&c, v == 2, np + ng / 2) / bw;
        printf("%-22s %10.3f %10.3f %10.3f %9.2f\n", names[v], med[v], p90s[reps / 2], ideal, med[v] / ideal);
        gpt_free(m);
        nn_params_destroy(p);
    }
    gpt_config sp = cfg;
    sp.sparse = true;
    printf("sparse/dense ms per token: mask-multiply %.3f, skip-blocks %.3f (target <= 0.85; ideal %.3f)\n",
           med[1] / med[0], med[2] / med[0], gpt_decode_bytes(&sp, true, np + ng / 2) / gpt_decode_bytes(&cfg, false, np + ng / 2));
    return 0;
}
