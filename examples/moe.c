/* moe.c: a top-2 mixture-of-experts block: a linear router scores E experts per token, the top 2
 * are kept and softmax-normalised (nn_topk_gate), as a dense [N, E] gate matrix (zeros for the
 * unselected: their experts get no gradient from that token), and the block's output is
 * the gate-weighted sum of the expert MLPs (each computed densely here: a clear, not a fast,
 * MoE). It learns a target whose form differs by region of the input.
 *   cc moe.c $(pkg-config --cflags --libs sgt) -lm -o moe && ./moe [steps]
 * Exits 1 unless the loss falls to under a third of its first value. */
#include <sgt/sgt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { N = 128, DIN = 2, E = 4, K = 2, HID = 16 };

typedef struct { nn_linear fc1, fc2; } expert;

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 200;
    nn_params *P = nn_params_create(3, SGT_F32, SGT_CPU);
    nn_linear router;
    nn_linear_init(&router, P, "router", DIN, E, false, 0.5);
    expert ex[E];
    char pre[64];
    for (int e = 0; e < E; e++) {
        snprintf(pre, sizeof pre, "experts.%d.fc1", e);
        nn_linear_init(&ex[e].fc1, P, pre, DIN, HID, true, 0.7);
        snprintf(pre, sizeof pre, "experts.%d.fc2", e);
        nn_linear_init(&ex[e].fc2, P, pre, HID, 1, true, 0.3);
    }
    nn_adamw *opt = nn_adamw_create(P, 0.9, 0.999, 1e-8, 0.0);
    sgt_arena *step = sgt_arena_create("step", SGT_CPU, 1 << 21, 0);
    sgt_ctx c = {.arena = step, .device = SGT_CPU};
    ag_tape tape;
    ag_tape_init(&tape, &c);
    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        double xs[N * DIN], ys[N];
        for (int i = 0; i < N; i++) {
            double a = -1 + 2.0 * ((i * 53 + s * 17) % N) / (N - 1), b = -1 + 2.0 * ((i * 29 + s * 7) % N) / (N - 1);
            xs[2 * i] = a;
            xs[2 * i + 1] = b;
            ys[i] = a > 0 ? sin(3 * b) : (b > 0 ? a * b : 0.5 - a * a); /* three regimes */
        }
        sgt_tensor *x = sgt_from_f64(&c, SGT_F32, SGT_SHAPE(N, DIN), xs);
        sgt_tensor *y = sgt_from_f64(&c, SGT_F32, SGT_SHAPE(N, 1), ys);
        /* the top-K experts of each token, softmax over their K scores (Mixtral's gate) */
        nn_gate g = nn_topk_gate(&c, nn_linear_forward(&c, &router, x), K, NN_GATE_SOFTMAX_TOPK, false);
        sgt_tensor *gates = g.dense; /* [N, E]: the gates at the selected experts, 0 elsewhere */
        sgt_tensor *pred = NULL;
        for (int e = 0; e < E; e++) {
            sgt_tensor *h = sgt_relu(&c, nn_linear_forward(&c, &ex[e].fc1, x));
            sgt_tensor *ye = sgt_mul(&c, sgt_narrow(&c, gates, 1, e, 1), nn_linear_forward(&c, &ex[e].fc2, h));
            pred = pred ? sgt_add(&c, pred, ye) : ye; /* [N, 1] */
        }
        sgt_tensor *d = sgt_sub(&c, pred, y);
        sgt_tensor *loss = sgt_mean(&c, sgt_mul(&c, d, d), SGT_ALL_DIMS, false);
        ag_backward(&tape, loss);
        last = sgt_item(loss);
        if (s == 0) first = last;
        nn_adamw_step(opt, 0.01);
        nn_params_zero_grad(P);
        ag_step_end(&tape);
    }
    printf("moe: mse %.4f -> %.4f over %d steps (top-%d of %d experts)\n", first, last, steps, K, E);
    nn_adamw_destroy(opt);
    nn_params_destroy(P);
    sgt_arena_destroy(step);
    return last < first / 3 ? 0 : 1;
}
