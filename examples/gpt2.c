/* gpt2.c: a GPT-2-style model from the nn modules: learned token and position embeddings, pre-norm
 * blocks of LayerNorm, causal attention and a GELU MLP, a final LayerNorm and logits through the
 * token embedding (tied: no separate output matrix). It learns a periodic token sequence.
 * No dropout: the library has none yet (issue 16).
 *   cc gpt2.c $(pkg-config --cflags --libs sgt) -o gpt2 && ./gpt2 [steps]
 * Exits 1 unless the loss falls to under a quarter of its first value. */
#include <sgt/sgt.h>
#include <stdio.h>
#include <stdlib.h>

enum { V = 16, C = 32, H = 4, L = 2, T = 16, B = 4, PERIOD = 7 };

typedef struct { sgt_tensor *w, *b; } layernorm;
typedef struct {
    layernorm ln1, ln2;
    nn_attention attn;
    nn_linear fc, proj; /* C -> 4C -> C */
} block;

static layernorm ln_init(nn_params *P, const char *prefix) {
    layernorm m = {nn_param_new(P, prefix, "weight", SGT_SHAPE(C), NN_INIT_ONES, 0, false),
                   nn_param_new(P, prefix, "bias", SGT_SHAPE(C), NN_INIT_ZEROS, 0, false)};
    return m;
}
static sgt_tensor *ln(sgt_ctx *c, const layernorm *m, sgt_tensor *x) {
    return sgt_layernorm(c, x, m->w, m->b, 1e-5, NULL, NULL);
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 40;
    nn_params *P = nn_params_create(5, SGT_F32, SGT_CPU);
    nn_embedding wte, wpe;
    nn_embedding_init(&wte, P, "wte", V, C, 0.02);
    nn_embedding_init(&wpe, P, "wpe", T, C, 0.01);
    block blk[L];
    char pre[64];
    for (int l = 0; l < L; l++) {
        snprintf(pre, sizeof pre, "h.%d.ln_1", l);
        blk[l].ln1 = ln_init(P, pre);
        snprintf(pre, sizeof pre, "h.%d.ln_2", l);
        blk[l].ln2 = ln_init(P, pre);
        snprintf(pre, sizeof pre, "h.%d.attn", l);
        nn_attention_init(&blk[l].attn, P, pre, C, H, 0.02, 0.02 / 2);
        snprintf(pre, sizeof pre, "h.%d.mlp.c_fc", l);
        nn_linear_init(&blk[l].fc, P, pre, C, 4 * C, true, 0.02);
        snprintf(pre, sizeof pre, "h.%d.mlp.c_proj", l);
        nn_linear_init(&blk[l].proj, P, pre, 4 * C, C, true, 0.02 / 2);
    }
    layernorm lnf = ln_init(P, "ln_f");
    nn_adamw *opt = nn_adamw_create(P, 0.9, 0.95, 1e-8, 0.1);
    printf("gpt2: %lld parameters\n", (long long)nn_params_count(P));

    sgt_arena *step = sgt_arena_create("step", SGT_CPU, 1 << 22, 0);
    sgt_ctx c = {.arena = step, .device = SGT_CPU};
    ag_tape tape;
    ag_tape_init(&tape, &c);
    int32_t pos[T];
    for (int t = 0; t < T; t++) pos[t] = t;
    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        int32_t in[B * T], tg[B * T];
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) { /* token i+1 follows token i, modulo PERIOD, from a varying start */
                in[b * T + t] = (b * 3 + s + t) % PERIOD;
                tg[b * T + t] = (b * 3 + s + t + 1) % PERIOD;
            }
        sgt_tensor *idx = sgt_from_i32(&c, SGT_SHAPE(B, T), in), *targets = sgt_from_i32(&c, SGT_SHAPE(B, T), tg);
        sgt_tensor *x = sgt_add(&c, nn_embedding_forward(&c, &wte, idx),
                                nn_embedding_forward(&c, &wpe, sgt_from_i32(&c, SGT_SHAPE(T), pos))); /* [B, T, C] */
        for (int l = 0; l < L; l++) {
            x = sgt_add(&c, x, nn_attention_forward(&c, &blk[l].attn, ln(&c, &blk[l].ln1, x), NULL));
            sgt_tensor *hdn = sgt_gelu(&c, nn_linear_forward(&c, &blk[l].fc, ln(&c, &blk[l].ln2, x)));
            x = sgt_add(&c, x, nn_linear_forward(&c, &blk[l].proj, hdn));
        }
        sgt_tensor *logits = sgt_matmul(&c, ln(&c, &lnf, x), wte.w, false, true); /* tied: [B, T, C] @ [V, C]^T */
        sgt_tensor *loss = nn_cross_entropy(&c, logits, targets, SGT_NO_IGNORE);
        ag_backward(&tape, loss);
        last = sgt_item(loss);
        if (s == 0) first = last;
        nn_clip_grad_norm(P, &c, 1.0);
        nn_adamw_step(opt, 3e-3);
        nn_params_zero_grad(P);
        ag_step_end(&tape);
    }
    printf("gpt2: loss %.4f -> %.4f over %d steps\n", first, last, steps);
    nn_adamw_destroy(opt);
    nn_params_destroy(P);
    sgt_arena_destroy(step);
    return last < 0.25 * first ? 0 : 1;
}
