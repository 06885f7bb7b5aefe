/* fuzz_model_config.c: the model configs of checkpoint metadata (models/model.c): the input is
 * parsed as JSON and read as a config of each built-in architecture. A config must be refused
 * with a message, or accepted only when its architecture's validator passes, with every size a
 * whole number (no undefined conversion of an out-of-range double), and written back to JSON that
 * reads to the same architecture. Nothing is built (a valid config can be a model of any size). */
#include "../../models/model.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 16) return 0;
    char *buf = malloc(size + 1), err[512];
    memcpy(buf, data, size);
    buf[size] = 0;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) return 0;
    err[0] = 0;
    if (!sgt_model_arch_of(j, err, sizeof err) && !err[0]) abort();
    gpt_config g;
    err[0] = 0;
    if (gpt_config_from_json(j, &g, err, sizeof err)) {
        if (!err[0]) abort();
    } else {
        gpt_config back;
        cJSON *k = gpt_config_to_json(&g);
        if (gpt_config_validate(&g, err, sizeof err) || gpt_config_from_json(k, &back, err, sizeof err) ||
            !gpt_config_same(&g, &back))
            abort();
        cJSON_Delete(k);
    }
    gpt2_config h;
    err[0] = 0;
    if (gpt2_config_from_json(j, &h, err, sizeof err)) {
        if (!err[0]) abort();
    } else {
        gpt2_config back;
        cJSON *k = gpt2_config_to_json(&h);
        if (gpt2_config_validate(&h, err, sizeof err) || gpt2_config_from_json(k, &back, err, sizeof err) ||
            back.vocab != h.vocab || back.n_layers != h.n_layers || back.d_model != h.d_model || back.dropout != h.dropout)
            abort();
        cJSON_Delete(k);
    }
    cJSON_Delete(j);
    return 0;
}
