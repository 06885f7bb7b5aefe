/* mlp.c: a 2-layer MLP classifier on three Gaussian blobs in 2-D, the training-loop template of
 * docs/LIBRARY.md: parameters in a persistent store, a per-step arena and tape, backward, AdamW,
 * zeroed gradients, the step's memory dropped. Built against the installed library:
 *   cc mlp.c $(pkg-config --cflags --libs sgt) -o mlp && ./mlp [steps]
 * Exits 1 unless the loss falls to under half its first value. */
#include <sgt/sgt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define N 96 /* points per step */

/* a tiny LCG: the example's data only */
static double urand(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0;
}

int main(int argc, char **argv) {
    int steps = argc > 1 ? atoi(argv[1]) : 60;
    nn_params *P = nn_params_create(7, SGT_F32, SGT_CPU);
    nn_linear fc1, fc2;
    nn_linear_init(&fc1, P, "fc1", 2, 32, true, 0.5);
    nn_linear_init(&fc2, P, "fc2", 32, 3, true, 0.2);
    nn_adamw *opt = nn_adamw_create(P, 0.9, 0.999, 1e-8, 0.0);

    sgt_arena *step = sgt_arena_create("step", SGT_CPU, 1 << 20, 0);
    sgt_ctx c = {.arena = step, .device = SGT_CPU};
    ag_tape tape;
    ag_tape_init(&tape, &c);

    uint64_t rng = 1;
    double first = 0, last = 0;
    for (int s = 0; s < steps; s++) {
        double xs[N * 2];
        int32_t ys[N];
        for (int i = 0; i < N; i++) {
            ys[i] = i % 3;
            double ang = 2.0944 * ys[i];
            xs[2 * i] = 2 * cos(ang) + 0.5 * (urand(&rng) - 0.5);
            xs[2 * i + 1] = 2 * sin(ang) + 0.5 * (urand(&rng) - 0.5);
        }
        sgt_tensor *x = sgt_from_f64(&c, SGT_F32, SGT_SHAPE(N, 2), xs);
        sgt_tensor *y = sgt_from_i32(&c, SGT_SHAPE(N), ys);
        sgt_tensor *h = sgt_relu(&c, nn_linear_forward(&c, &fc1, x));        /* [N, 32] */
        sgt_tensor *loss = nn_cross_entropy(&c, nn_linear_forward(&c, &fc2, h), y, SGT_NO_IGNORE);
        ag_backward(&tape, loss);
        last = sgt_item(loss);
        if (s == 0) first = last;
        nn_adamw_step(opt, 0.03);
        nn_params_zero_grad(P);
        ag_step_end(&tape); /* forget the tape, reset the step arena */
    }
    printf("mlp: loss %.4f -> %.4f over %d steps\n", first, last, steps);
    nn_adamw_destroy(opt);
    nn_params_destroy(P);
    sgt_arena_destroy(step);
    return last < 0.5 * first ? 0 : 1;
}
