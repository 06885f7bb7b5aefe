/* any_model.c: one training loop for any architecture, through the model interface
 * (models/model.h): a preset's config (JSON), the model built from it, its loss, a checkpoint
 * whose metadata carries the config, and the model rebuilt from that file alone. Trains on a
 * periodic token sequence. Built against the installed library:
 *   cc any_model.c $(pkg-config --cflags --libs sgt) -o any_model && ./any_model [preset] [steps]
 * (presets: gpt2-nano, the default; nano, the SGT experiment's GPT; any registered architecture's).
 * Exits 1 unless the loss falls to under half its first value and the reloaded model gives the
 * same loss. */
#define _POSIX_C_SOURCE 200809L /* getpid */
#include <sgt/sgt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

enum { B = 4, T = 16 };

/* the loss of the fixed batch (inputs and next tokens of a period-7 sequence) */
static sgt_tensor *batch_loss(sgt_ctx *c, const sgt_model *m, int32_t *ids, int32_t *tgt) {
    for (int i = 0; i < B * T; i++) ids[i] = (i % 7) % (int32_t)m->vocab, tgt[i] = ((i + 1) % 7) % (int32_t)m->vocab;
    sgt_model_fwd o = {.targets = sgt_from_i32(c, SGT_SHAPE(B, T), tgt), .aux_weight = 0.01};
    return sgt_model_forward(c, m, sgt_from_i32(c, SGT_SHAPE(B, T), ids), &o).loss;
}

int main(int argc, char **argv) {
    const char *preset = argc > 1 ? argv[1] : "gpt2-nano";
    const int steps = argc > 2 ? atoi(argv[2]) : 80;
    char err[512];
    cJSON *cfg = sgt_model_preset(preset, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "any_model: %s\n", err);
        return 2;
    }
    nn_params *P = nn_params_create(3, SGT_F32, SGT_CPU);
    sgt_model *m = sgt_model_build(cfg, NULL, P, err, sizeof err);
    if (!m) {
        fprintf(stderr, "any_model: %s\n", err);
        return 2;
    }
    nn_adamw *opt = nn_adamw_create(P, 0.9, 0.95, 1e-8, 0.0);
    sgt_arena *step = sgt_arena_create("step", SGT_CPU, 0, 0);
    sgt_ctx c = {.arena = step, .device = SGT_CPU};
    ag_tape tape;
    ag_tape_init(&tape, &c);
    int32_t ids[B * T], tgt[B * T];
    double first = 0, last = 0;
    sgt_model_set_train(m, true);
    for (int s = 0; s < steps; s++) {
        sgt_tensor *loss = batch_loss(&c, m, ids, tgt);
        last = sgt_item(loss);
        if (s == 0) first = last;
        ag_backward(&tape, loss);
        ag_step_end(&tape);
        nn_adamw_step(opt, 1e-2);
        nn_params_zero_grad(P);
        sgt_arena_reset(step);
    }
    ag_tape_detach(&tape);
    sgt_model_set_train(m, false);
    const double trained = sgt_item(batch_loss(&c, m, ids, tgt));
    sgt_arena_reset(step);

    /* a checkpoint that rebuilds its own model: the config goes into the metadata */
    char path[512];
    snprintf(path, sizeof path, "%s/any_model.%d.safetensors", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
    char *text = cJSON_PrintUnformatted(m->config);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "config", text);
    char *mt = cJSON_PrintUnformatted(meta);
    if (nn_save_params(P, path, mt, err, sizeof err)) {
        fprintf(stderr, "any_model: %s\n", err);
        return 1;
    }
    char *back = NULL;
    if (nn_read_metadata(path, &back, err, sizeof err)) {
        fprintf(stderr, "any_model: %s\n", err);
        return 1;
    }
    cJSON *bm = cJSON_Parse(back);
    cJSON *bc = cJSON_Parse(cJSON_GetObjectItemCaseSensitive(bm, "config")->valuestring);
    nn_params *P2 = nn_params_create(99, SGT_F32, SGT_CPU);
    P2->skip_init = true;
    sgt_model *m2 = sgt_model_build(bc, NULL, P2, err, sizeof err);
    if (!m2 || nn_load_params(P2, path, err, sizeof err)) {
        fprintf(stderr, "any_model: %s\n", err);
        return 1;
    }
    const double reloaded = sgt_item(batch_loss(&c, m2, ids, tgt));
    remove(path);
    printf("any_model: %s (%s), %lld params: loss %.4f -> %.4f over %d steps; eval %.6f, reloaded from the "
           "checkpoint alone %.6f\n", sgt_model_name(m), m->arch->name, (long long)sgt_model_param_count(m), first, last,
           steps, trained, reloaded);
    const int ok = last < 0.5 * first && reloaded == trained;
    free(text), free(mt), free(back);
    cJSON_Delete(meta), cJSON_Delete(bm), cJSON_Delete(bc), cJSON_Delete(cfg);
    sgt_model_free(m2), sgt_model_free(m);
    nn_params_destroy(P2), nn_params_destroy(P);
    nn_adamw_destroy(opt);
    sgt_arena_destroy(step);
    return ok ? 0 : 1;
}
