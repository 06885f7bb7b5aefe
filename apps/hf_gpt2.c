/* hf_gpt2.c: apps/hf_gpt2, the classic GPT-2 (models/gpt2.h) to and from Hugging Face's layout.
 *
 *   hf_gpt2 --hf_dir D [--ids 1,2,3 --logits_out F] [--export E]
 *       loads D/config.json and D/model.safetensors (GPT2LMHeadModel.save_pretrained's output)
 *   hf_gpt2 --config gpt2-nano [--seed S] [--train_steps N] [--ids ... --logits_out F] [--export E]
 *       a model of a preset, initialised by sgt and trained N AdamW steps on a periodic sequence
 *   hf_gpt2 --checkpoint out/gpt2/checkpoint.safetensors [--ids ... --logits_out F] [--export E]
 *       a GPT-2 trained by apps/train (train --config gpt2-tiny), its config from the metadata
 *
 * --logits_out writes the logits of the token ids (one sequence) as JSON, {"logits": [[V floats]
 * per position]}; --export writes E/model.safetensors and E/config.json, which
 * GPT2LMHeadModel.from_pretrained(E) loads. tests/python/test_hf_gpt2.py checks both directions
 * against transformers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/checkpoint.h"
#include "../nn/optim.h"
#include "cli.h"
#include "experiment.h"
#include "../models/model.h"

#define FAIL(...) do { fprintf(stderr, "hf_gpt2: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static int64_t json_int(const cJSON *o, const char *k, const char *path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e9) FAIL("%s: \"%s\" is missing or not a positive integer", path, k);
    return (int64_t)v->valuedouble;
}

static void config_from_hf(const char *path, gpt2_config *cfg) {
    char err[512];
    cJSON *j = exp_read_json(path, err, sizeof err);
    if (!j) FAIL("%s", err);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(j, "activation_function"),
                *eps = cJSON_GetObjectItemCaseSensitive(j, "layer_norm_epsilon");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu_new") && strcmp(act->valuestring, "gelu_pytorch_tanh"))
        FAIL("%s: activation_function \"%s\": only GPT-2's tanh GELU (gelu_new) is supported", path, act->valuestring);
    *cfg = (gpt2_config){.name = "hf", .vocab = json_int(j, "vocab_size", path), .ctx_len = json_int(j, "n_positions", path),
                         .n_layers = json_int(j, "n_layer", path), .n_heads = json_int(j, "n_head", path),
                         .d_model = json_int(j, "n_embd", path), .dropout = 0.1,
                         .ln_eps = cJSON_IsNumber(eps) ? eps->valuedouble : 1e-5};
    cJSON_Delete(j);
    if (gpt2_config_validate(cfg, err, sizeof err)) FAIL("%s: %s", path, err);
}

static void config_to_hf(const char *path, const gpt2_config *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON *ar = cJSON_AddArrayToObject(j, "architectures");
    cJSON_AddItemToArray(ar, cJSON_CreateString("GPT2LMHeadModel"));
    cJSON_AddStringToObject(j, "model_type", "gpt2");
    cJSON_AddNumberToObject(j, "vocab_size", (double)c->vocab);
    cJSON_AddNumberToObject(j, "n_positions", (double)c->ctx_len);
    cJSON_AddNumberToObject(j, "n_ctx", (double)c->ctx_len);
    cJSON_AddNumberToObject(j, "n_layer", (double)c->n_layers);
    cJSON_AddNumberToObject(j, "n_head", (double)c->n_heads);
    cJSON_AddNumberToObject(j, "n_embd", (double)c->d_model);
    cJSON_AddNumberToObject(j, "layer_norm_epsilon", c->ln_eps);
    cJSON_AddStringToObject(j, "activation_function", "gelu_new");
    cJSON_AddNumberToObject(j, "resid_pdrop", c->dropout);
    cJSON_AddNumberToObject(j, "embd_pdrop", c->dropout);
    cJSON_AddNumberToObject(j, "attn_pdrop", 0.0);
    cJSON_AddBoolToObject(j, "tie_word_embeddings", true);
    char err[512];
    if (exp_write_json(path, j, err, sizeof err)) FAIL("%s", err);
    cJSON_Delete(j);
}

/* "1,2,3" -> ids in [0, V); the count */
static int64_t parse_ids(const char *s, int32_t *ids, int64_t max, int64_t V) {
    int64_t n = 0;
    for (const char *p = s; *p;) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= V || n == max) FAIL("--ids: '%s' is not a list of at most %lld ids in [0, %lld)", s, (long long)max, (long long)V);
        ids[n++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') FAIL("--ids: '%s' is not a comma-separated list", s);
    }
    return n;
}

/* the config apps/train stored in a checkpoint's metadata, which must be a gpt2 one */
static void config_from_checkpoint(const char *path, gpt2_config *cfg) {
    char err[512], *meta = NULL;
    if (nn_read_metadata(path, &meta, err, sizeof err)) FAIL("%s", err);
    cJSON *mj = cJSON_Parse(meta);
    free(meta);
    const cJSON *cs = cJSON_GetObjectItemCaseSensitive(mj, "config");
    cJSON *cj = cJSON_IsString(cs) ? cJSON_Parse(cs->valuestring) : NULL;
    const sgt_model_arch *arch = cj ? sgt_model_arch_of(cj, err, sizeof err) : NULL;
    if (!arch) FAIL("%s: no model config in the metadata (%s): not a checkpoint of apps/train", path, cj ? err : "missing");
    if (arch != sgt_model_arch_named("gpt2")) FAIL("%s: a %s model, not a GPT-2", path, arch->name);
    if (gpt2_config_from_json(cj, cfg, err, sizeof err)) FAIL("%s: %s", path, err);
    cJSON_Delete(cj);
    cJSON_Delete(mj);
}

static void train_periodic(gpt2_model *m, sgt_ctx *c, int64_t steps) {
    nn_adamw *opt = nn_adamw_create(m->params, 0.9, 0.95, 1e-8, 0.1);
    ag_tape tape;
    ag_tape_init(&tape, c);
    const int64_t B = 2, T = m->cfg.ctx_len < 16 ? m->cfg.ctx_len : 16;
    int32_t *in = malloc(sizeof(int32_t) * (size_t)(2 * B * T)), *tg = in + B * T;
    m->mode.train = true;
    for (int64_t s = 0; s < steps; s++) {
        for (int64_t i = 0; i < B * T; i++) in[i] = (int32_t)((s + i) % 7 % m->cfg.vocab), tg[i] = (int32_t)((s + i + 1) % 7 % m->cfg.vocab);
        sgt_tensor *loss = NULL;
        gpt2_forward(c, m, sgt_from_i32(c, SGT_SHAPE(B, T), in), sgt_from_i32(c, SGT_SHAPE(B, T), tg), &loss, NULL);
        if (s == 0 || s + 1 == steps) fprintf(stderr, "hf_gpt2: step %lld loss %.4f\n", (long long)(s + 1), sgt_item(loss));
        ag_backward(&tape, loss);
        nn_adamw_step(opt, 3e-3);
        nn_params_zero_grad(m->params);
        ag_step_end(&tape);
    }
    m->mode.train = false;
    ag_tape_detach(&tape);
    nn_adamw_destroy(opt);
    free(in);
}

int main(int argc, char **argv) {
    const char *hf_dir = NULL, *config = NULL, *checkpoint = NULL, *ids_s = NULL, *logits_out = NULL, *export_dir = NULL;
    int64_t seed = 1, train_steps = 0;
    cli_flag flags[] = {
        {"hf_dir", CLI_STRING, &hf_dir, "a Hugging Face GPT-2 directory (config.json, model.safetensors) to load", 0, 0, 0, 0},
        {"config", CLI_STRING, &config, "instead: a new model of this preset (gpt2, gpt2-tiny, gpt2-nano)", 0, 0, 0, 0},
        {"checkpoint", CLI_STRING, &checkpoint, "instead: a GPT-2 checkpoint of apps/train (<output_dir>/gpt2/checkpoint.safetensors)", 0, 0, 0, 0},
        {"seed", CLI_INT, &seed, "initialisation seed of --config", 0, 0, 1e18, 0},
        {"train_steps", CLI_INT, &train_steps, "AdamW steps on a periodic sequence before the rest", 0, 0, 1e6, 0},
        {"ids", CLI_STRING, &ids_s, "token ids of one sequence, comma-separated, for --logits_out", 0, 0, 0, 0},
        {"logits_out", CLI_STRING, &logits_out, "write the logits of --ids here (JSON)", 0, 0, 0, 0},
        {"export", CLI_STRING, &export_dir, "write the model here in Hugging Face's layout", 0, 0, 0, 0},
    };
    int rc = cli_parse("hf_gpt2", "the classic GPT-2 to and from Hugging Face's layout", flags,
                       (int)(sizeof flags / sizeof *flags), argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if ((hf_dir != NULL) + (config != NULL) + (checkpoint != NULL) != 1) FAIL("give one of --hf_dir, --config and --checkpoint");
    if (!logits_out != !ids_s) FAIL("--ids and --logits_out go together");
    gpt2_config cfg;
    char path[4200], err[1024];
    if (hf_dir) {
        snprintf(path, sizeof path, "%s/config.json", hf_dir);
        config_from_hf(path, &cfg);
    } else if (checkpoint) {
        config_from_checkpoint(checkpoint, &cfg);
    } else if (gpt2_preset(config, &cfg)) {
        FAIL("--config: unknown preset '%s' (gpt2, gpt2-tiny, gpt2-nano)", config);
    }
    nn_params *p = nn_params_create((uint64_t)seed, SGT_F32, SGT_CPU);
    p->skip_init = !config;
    gpt2_model *m = gpt2_build(&cfg, p);
    if (hf_dir) {
        snprintf(path, sizeof path, "%s/model.safetensors", hf_dir);
        if (gpt2_load_hf(m, path, err, sizeof err)) FAIL("%s", err);
    }
    if (checkpoint && nn_load_params(p, checkpoint, err, sizeof err)) FAIL("%s", err);
    sgt_arena *arena = sgt_arena_create("step", SGT_CPU, 0, 0);
    sgt_ctx c = {.arena = arena, .device = SGT_CPU};
    if (train_steps) train_periodic(m, &c, train_steps);
    if (logits_out) {
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)cfg.ctx_len);
        int64_t T = parse_ids(ids_s, ids, cfg.ctx_len, cfg.vocab);
        if (!T) FAIL("--ids: empty");
        sgt_tensor *lg = gpt2_forward(&c, m, sgt_from_i32(&c, SGT_SHAPE(1, T), ids), NULL, NULL, NULL);
        const float *v = sgt_ptr(lg);
        exp_file o;
        if (exp_file_open(&o, logits_out, err, sizeof err)) FAIL("--logits_out: %s", err);
        fputs("{\"logits\": [", o.f);
        for (int64_t t = 0; t < T; t++) {
            fputs(t ? ",\n[" : "[", o.f);
            for (int64_t j = 0; j < cfg.vocab; j++) fprintf(o.f, j ? ",%.9g" : "%.9g", (double)v[t * cfg.vocab + j]);
            fputc(']', o.f);
        }
        fputs("]}\n", o.f);
        if (exp_file_commit(&o, err, sizeof err)) FAIL("--logits_out: %s", err);
        free(ids);
    }
    if (export_dir) {
        if (exp_mkdirs(export_dir, err, sizeof err)) FAIL("--export: %s", err);
        snprintf(path, sizeof path, "%s/model.safetensors", export_dir);
        if (gpt2_save_hf(m, path, err, sizeof err)) FAIL("%s", err);
        snprintf(path, sizeof path, "%s/config.json", export_dir);
        config_to_hf(path, &cfg);
    }
    sgt_arena_destroy(arena);
    gpt2_free(m);
    nn_params_destroy(p);
    return 0;
}
