/* gpt2.c: a GPT-2-style model from the nn modules: learned token and position embeddings, pre-norm
 * blocks of LayerNorm, causal attention (with GPT-2's QKV bias) and a GELU MLP, dropout on the
 * embeddings and on each residual branch, a final LayerNorm and logits through the token
 * embedding (tied: no separate output matrix). It learns a periodic token sequence. Dropout runs
 * in training mode (nn_mode.train), then the model is evaluated in eval mode, where every dropout
 * is the identity.
 *   cc gpt2.c $(pkg-config --cflags --libs sgt) -o gpt2 && ./gpt2 [steps]
 * Exits 1 unless the eval-mode loss falls to under a quarter of the first training loss. */
#include <sgt/sgt.h>
#include <stdio.h>
#include <stdlib.h>

enum { V = 16, C = 32, H = 4, L = 2, T = 16, B = 4, PERIOD = 7 };

typedef struct {
    nn_layernorm ln1, ln2;
    nn_attention attn;
    nn_mlp mlp; /* C -> 4C -> C, tanh GELU as GPT-2 */
} block;

/* the batch of step s: token i+1 follows token i, modulo PERIOD, from a varying start */
static void batch(int s, int32_t *in, int32_t *tg) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            in[b * T + t] = (b * 3 + s + t) % PERIOD;
            tg[b * T + t] = (b * 3 + s + t + 1) % PERIOD;
        }
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 40;
    nn_params *P = nn_params_create(5, SGT_F32, SGT_CPU);
    nn_embedding wte, wpe;
    nn_embedding_init(&wte, P, "wte", V, C, 0.02);
    nn_embedding_init(&wpe, P, "wpe", T, C, 0.01);
    block blk[L];
    nn_mode mode = {.train = true, .seed = 11}; /* shared by every dropout of the model */
    nn_dropout drop;
    nn_dropout_init(&drop, &mode, 0.1);
    const nn_attention_opts aopts = {.qkv_bias = true};
    char pre[64];
    for (int l = 0; l < L; l++) {
        snprintf(pre, sizeof pre, "h.%d.ln_1", l);
        nn_layernorm_init(&blk[l].ln1, P, pre, C, true, 1e-5);
        snprintf(pre, sizeof pre, "h.%d.ln_2", l);
        nn_layernorm_init(&blk[l].ln2, P, pre, C, true, 1e-5);
        snprintf(pre, sizeof pre, "h.%d.attn", l);
        nn_attention_init_opts(&blk[l].attn, P, pre, C, H, &aopts, 0.02, 0.02 / 2);
        snprintf(pre, sizeof pre, "h.%d.mlp", l);
        nn_mlp_init(&blk[l].mlp, P, pre, C, 4 * C, C, true, NN_GELU_TANH, 0.02, 0.02 / 2);
    }
    nn_layernorm lnf;
    nn_layernorm_init(&lnf, P, "ln_f", C, true, 1e-5);
    nn_adamw *opt = nn_adamw_create(P, 0.9, 0.95, 1e-8, 0.1);
    printf("gpt2: %lld parameters\n", (long long)nn_params_count(P));

    sgt_arena *step = sgt_arena_create("step", SGT_CPU, 1 << 22, 0);
    sgt_ctx c = {.arena = step, .device = SGT_CPU};
    ag_tape tape;
    ag_tape_init(&tape, &c);
    int32_t pos[T];
    for (int t = 0; t < T; t++) pos[t] = t;
    double first = 0, last = 0;
    for (int s = 0; s <= steps; s++) {
        const bool eval = s == steps; /* one more batch after training, in eval mode */
        int32_t in[B * T], tg[B * T];
        batch(s, in, tg);
        mode.train = !eval;
        if (eval) ag_no_grad_begin(&tape);
        sgt_tensor *idx = sgt_from_i32(&c, SGT_SHAPE(B, T), in), *targets = sgt_from_i32(&c, SGT_SHAPE(B, T), tg);
        sgt_tensor *x = sgt_add(&c, nn_embedding_forward(&c, &wte, idx),
                                nn_embedding_forward(&c, &wpe, sgt_from_i32(&c, SGT_SHAPE(T), pos))); /* [B, T, C] */
        x = nn_dropout_forward(&c, &drop, x);
        for (int l = 0; l < L; l++) {
            sgt_tensor *a = nn_attention_forward(&c, &blk[l].attn, nn_layernorm_forward(&c, &blk[l].ln1, x), NULL);
            x = sgt_add(&c, x, nn_dropout_forward(&c, &drop, a));
            sgt_tensor *f = nn_mlp_forward(&c, &blk[l].mlp, nn_layernorm_forward(&c, &blk[l].ln2, x));
            x = sgt_add(&c, x, nn_dropout_forward(&c, &drop, f));
        }
        sgt_tensor *logits = sgt_matmul(&c, nn_layernorm_forward(&c, &lnf, x), wte.w, false, true); /* tied */
        sgt_tensor *loss = nn_cross_entropy(&c, logits, targets, SGT_NO_IGNORE);
        last = sgt_item(loss);
        if (s == 0) first = last;
        if (eval) {
            ag_no_grad_end(&tape);
            break;
        }
        ag_backward(&tape, loss);
        nn_clip_grad_norm(P, &c, 1.0);
        nn_adamw_step(opt, 3e-3);
        nn_params_zero_grad(P);
        ag_step_end(&tape);
    }
    printf("gpt2: loss %.4f -> %.4f (eval mode) over %d steps, %llu dropout masks drawn\n", first, last, steps,
           (unsigned long long)mode.offset);
    nn_adamw_destroy(opt);
    nn_params_destroy(P);
    sgt_arena_destroy(step);
    return last < 0.25 * first ? 0 : 1;
}
