/* sgt_logits.c: the C side of test_safetensors_torch.py. Trains the `nano` GPT (dense or SGT) for
 * a few AdamW steps, writes its weights to DIR/checkpoint.safetensors with nn_save_params (the
 * writer of apps/train), then the logits of a fixed batch to DIR/logits.f32 (f32 [B, T, V],
 * little-endian, row-major; no targets, so no routing noise). The ids are those of
 * bench/bench_util.h (bench_make_ids, reproduced by bench/torch_gpt.py's make_batch).
 *
 *   sgt_logits DIR dense|sparse      prints "B T V" */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bench/bench_util.h"
#include "../../models/gpt.h"
#include "../../nn/checkpoint.h"
#include "../../nn/optim.h"

enum { B = 2, T = 16, STEPS = 3 };

int main(int argc, char **argv) {
    if (argc != 3 || (strcmp(argv[2], "dense") && strcmp(argv[2], "sparse"))) {
        fprintf(stderr, "usage: sgt_logits DIR dense|sparse\n");
        return 2;
    }
    gpt_config cfg;
    SGT_CHECK(gpt_preset("nano", &cfg) == 0, "no nano preset");
    cfg.sparse = !strcmp(argv[2], "sparse");
    nn_params *p = nn_params_create(1234, SGT_F32, SGT_CPU);
    gpt_model *m = gpt_build(&cfg, p);
    nn_adamw *opt = nn_adamw_create(p, 0.9, 0.95, 1e-8, 0.1);
    sgt_arena *arena = sgt_arena_create("sgt-logits", SGT_CPU, 0, 0);
    sgt_ctx c = {.arena = arena, .device = SGT_CPU};
    ag_tape tape;
    ag_tape_init(&tape, &c);
    int32_t *ids = bench_make_ids(B, T, cfg.vocab);
    for (int s = 0; s <= STEPS; s++) {
        sgt_tensor *all = sgt_from_i32(&c, SGT_SHAPE(B, T + 1), ids);
        sgt_tensor *x = sgt_contiguous(&c, sgt_narrow(&c, all, 1, 0, T));
        if (s == STEPS) { /* the logits of the trained weights */
            gpt_output out = gpt_forward(&c, m, x, &(gpt_forward_opts){0});
            sgt_tensor *lg = sgt_contiguous(&c, out.logits);
            size_t n = (size_t)(B * T * cfg.vocab);
            double *d = malloc(n * sizeof *d);
            float *f = malloc(n * sizeof *f);
            SGT_CHECK(d && f, "out of host memory for %zu logits", n);
            sgt_to_f64(lg, d);
            for (size_t i = 0; i < n; i++) f[i] = (float)d[i];
            char path[4200];
            snprintf(path, sizeof path, "%s/logits.f32", argv[1]);
            FILE *fo = fopen(path, "wb");
            SGT_CHECK(fo && fwrite(f, sizeof *f, n, fo) == n && !fclose(fo), "cannot write %s", path);
            free(d);
            free(f);
            break;
        }
        sgt_tensor *y = sgt_contiguous(&c, sgt_narrow(&c, all, 1, 1, T));
        gpt_output out = gpt_forward(&c, m, x, &(gpt_forward_opts){.targets = y, .aux_weight = 0.01});
        ag_backward(&tape, out.loss);
        nn_adamw_step(opt, 1e-2); /* large enough to move every weight off its initial value */
        nn_params_zero_grad(p);
        ag_step_end(&tape);
    }
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", argv[1]);
    SGT_CHECK(nn_save_params(p, path, "{\"preset\":\"nano\"}", err, sizeof err) == 0, "%s", err);
    printf("%d %d %lld\n", B, T, (long long)cfg.vocab);
    free(ids);
    ag_step_end(&tape);
    sgt_arena_destroy(arena);
    nn_adamw_destroy(opt);
    gpt_free(m);
    nn_params_destroy(p);
    return 0;
}
