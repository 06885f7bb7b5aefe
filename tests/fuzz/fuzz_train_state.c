/* fuzz_train_state.c: the training-state reader (nn_load_train_state in nn/checkpoint.c): the
 * safetensors layer plus the "sgt-adamw" metadata (format, version, step, state) and the
 * adam.m.* / adam.v.* moments of a small fixed store. A failed load must leave the optimizer's
 * step unchanged and name the file. */
#include "checkpoint.h"
#include "fuzz_common.h"

static nn_params *g_store;
static nn_adamw *g_opt;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_store = nn_params_create(1, SGT_F32, SGT_CPU);
    nn_param_new(g_store, "embed", "weight", SGT_SHAPE(3, 2), NN_INIT_NORMAL, 1.0, false);
    nn_param_new(g_store, "ln_f", "bias", SGT_SHAPE(2), NN_INIT_NORMAL, 1.0, false);
    g_opt = nn_adamw_create(g_store, 0.9, 0.95, 1e-8, 0.1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512], err[512];
    fz_write("state.safetensors", data, size, path, sizeof path);
    char *state = NULL;
    g_opt->step = 7;
    if (nn_load_train_state(g_opt, path, &state, err, sizeof err) == 0) {
        if (!state || g_opt->step < 0) abort();
        free(state);
    } else {
        if (state || g_opt->step != 7 || !strstr(err, path)) abort();
    }
    return 0;
}
