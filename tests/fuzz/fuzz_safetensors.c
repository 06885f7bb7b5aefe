/* fuzz_safetensors.c: the safetensors reader (nn/checkpoint.c): header length, header JSON,
 * dtypes, shapes, offsets, metadata. Each input is a whole file; it is read as metadata
 * (nn_read_metadata) and loaded into a small fixed store (nn_load_params). A failed load must
 * leave the store's weights untouched (the all-or-nothing promise of checkpoint.h). */
#include <math.h>

#include "checkpoint.h"
#include "fuzz_common.h"

static nn_params *g_store;
static float g_before[5 * 4 + 4 * 12 + 12 + 4];

static nn_params *make_store(void) {
    nn_params *p = nn_params_create(1, SGT_F32, SGT_CPU);
    nn_param_new(p, "embed", "weight", SGT_SHAPE(5, 4), NN_INIT_NORMAL, 1.0, false);
    nn_param_new(p, "layers.0.attn.qkv", "weight", SGT_SHAPE(4, 12), NN_INIT_NORMAL, 1.0, true);
    nn_param_new(p, "layers.0.attn.qkv", "bias", SGT_SHAPE(12), NN_INIT_NORMAL, 1.0, false);
    nn_param_new(p, "ln_f", "weight", SGT_SHAPE(4), NN_INIT_NORMAL, 1.0, false);
    return p;
}

static void snapshot(float *out) {
    for (int i = 0; i < g_store->n; i++) {
        size_t k = (size_t)sgt_numel(g_store->items[i].t);
        memcpy(out, sgt_ptr(g_store->items[i].t), k * sizeof(float));
        out += k;
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_store = make_store();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char path[512], err[512];
    fz_write("in.safetensors", data, size, path, sizeof path);
    char *meta = NULL;
    if (nn_read_metadata(path, &meta, err, sizeof err) == 0) {
        if (!meta) abort();
        free(meta);
    } else if (!err[0]) {
        abort(); /* every failure says why */
    }
    float after[sizeof g_before / sizeof(float)];
    snapshot(g_before);
    if (nn_load_params(g_store, path, err, sizeof err) != 0) {
        if (!err[0] || !strstr(err, path)) abort(); /* the message names the file */
        snapshot(after);
        if (memcmp(after, g_before, sizeof after) != 0) abort(); /* a failed load changed the store */
    }
    return 0;
}
