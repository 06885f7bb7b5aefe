/* model.h: the model interface: what a trainer and an evaluator need of an architecture, so that
 * apps/train and apps/eval (and a researcher's own loop) train, checkpoint, resume and score any
 * model, not only ours. An architecture is one table of functions (sgt_model_arch); a model is
 * built from a config, which is a JSON object
 *
 *   {"arch": "<the architecture's name>", "vocab": V, "ctx_len": T, ...its own fields}
 *
 * the same object that goes into the checkpoint's metadata ("config"), so a checkpoint rebuilds
 * its model without flags. Every config has the numeric fields "vocab" and "ctx_len" (a trainer
 * sets "vocab" to its tokenizer's). Built in:
 *   "sgt-gpt"  models/gpt.h: the GPT of the SGT v2 experiment, dense or block-sparse (presets
 *              sgt-150m, small, tiny, nano); a config without "arch" is one (older checkpoints)
 *   "gpt2"     models/gpt2.h: the classic GPT-2 (presets gpt2, gpt2-tiny, gpt2-nano)
 * A new architecture fills an sgt_model_arch and calls sgt_model_register; it is then found by its
 * name or its presets like the built-in ones (docs/LIBRARY.md, "Your own model through the
 * interface").
 *
 * Legend: B batch, T time, V vocabulary. */
#ifndef SGT_MODELS_MODEL_H
#define SGT_MODELS_MODEL_H

#include <cjson/cJSON.h>

#include "gpt.h"
#include "gpt2.h"

/* Runtime choices a trainer or evaluator makes; not part of the config, not saved. */
typedef struct {
    sgt_dtype compute;       /* SGT_F32, or SGT_BF16 mixed precision where the arch has it */
    bool composed_attention; /* the composed attention reference instead of the fused kernel */
    bool ffn_skip;           /* sgt-gpt, sparse: the block-skipping FFN path */
} sgt_model_runtime;

typedef struct {
    sgt_tensor *targets; /* i32 [B, T], or NULL: logits only */
    double aux_weight;   /* weight of an auxiliary (load-balancing) loss, where the arch has one */
    bool token_nll;      /* also out.token_nll */
} sgt_model_fwd;

typedef struct {
    sgt_tensor *logits;    /* [B, T, V] */
    sgt_tensor *ce;        /* mean cross-entropy (with targets) */
    sgt_tensor *aux;       /* the weighted auxiliary loss, or NULL */
    sgt_tensor *loss;      /* what backward starts from: ce (+ aux) */
    sgt_tensor *token_nll; /* f32 [B * T] each position's NLL (with targets and fwd.token_nll) */
    const nn_route *route; /* a routed model's (sgt_model.n_route) routings, in the step arena, else NULL */
} sgt_model_out;

typedef struct sgt_model_arch sgt_model_arch;

typedef struct {
    const sgt_model_arch *arch;
    void *impl;       /* the architecture's own model (gpt_model *, gpt2_model *, ...) */
    nn_params *params;
    cJSON *config;    /* the canonical config, as it is saved (with "arch"); owned by the model */
    int64_t vocab, ctx_len;
    nn_mode *mode;    /* its train/eval mode (dropout), or NULL when it has none */
    int64_t n_route, route_blocks; /* routed layers and blocks per routing (0, 0: none) */
    bool balances;    /* its routers balance from the observed load: a trainer calls sgt_model_balance */
} sgt_model;

struct sgt_model_arch {
    const char *name;     /* the config's and checkpoint's "arch" */
    const char *presets;  /* its preset names, comma-separated (messages, --help) */
    bool mixed_precision; /* accepts runtime compute SGT_BF16 */
    /* the config of a preset, or NULL when the name is not one of its presets */
    cJSON *(*preset)(const char *name);
    /* builds the model of cfg into m->params (initialised unless skip_init) and fills m's other
     * fields (impl, config, vocab, ctx_len, and mode, n_route, route_blocks, balances where it has
     * them);
     * -1 with err set, having built nothing, when it refuses the config or the runtime choices */
    int (*build)(sgt_model *m, const cJSON *cfg, const sgt_model_runtime *rt, char *err, size_t errn);
    sgt_model_out (*forward)(sgt_ctx *c, void *impl, sgt_tensor *idx, const sgt_model_fwd *o);
    int64_t (*param_count)(const void *impl);
    /* optional (NULL: none): the parameters of the routers alone; auxiliary-loss-free balancing
     * from one step's counts [n_route * route_blocks]; whether two configs are one architecture
     * (NULL: equal JSON, "preset" aside) */
    int64_t (*router_param_count)(const void *impl);
    void (*balance)(void *impl, const double *counts, double rate);
    bool (*same)(const cJSON *a, const cJSON *b);
    void (*free)(void *impl);
};

/* Adds an architecture (the table must outlive its use; at most 16 in all). -1 when its name is
 * taken. */
int sgt_model_register(const sgt_model_arch *arch);
const sgt_model_arch *sgt_model_arch_named(const char *name);
/* The i-th registered architecture (built-ins first), NULL past the last. */
const sgt_model_arch *sgt_model_arch_at(int i);
/* The config of a preset of any architecture, with "arch"; NULL and err (naming every preset)
 * for an unknown name. */
cJSON *sgt_model_preset(const char *name, char *err, size_t errn);
/* The architecture a config names ("sgt-gpt" when it has no "arch"); NULL and err otherwise. */
const sgt_model_arch *sgt_model_arch_of(const cJSON *cfg, char *err, size_t errn);

/* Builds the model of cfg on p's device (p is not taken over); NULL with err set. */
sgt_model *sgt_model_build(const cJSON *cfg, const sgt_model_runtime *rt, nn_params *p, char *err, size_t errn);
void sgt_model_free(sgt_model *m);
sgt_model_out sgt_model_forward(sgt_ctx *c, const sgt_model *m, sgt_tensor *idx, const sgt_model_fwd *o);
int64_t sgt_model_param_count(const sgt_model *m);
/* The config's "preset" (the name it started from), or the architecture's name. */
const char *sgt_model_name(const sgt_model *m);
int64_t sgt_model_router_param_count(const sgt_model *m); /* 0 without routers */
void sgt_model_balance(sgt_model *m, const double *counts, double rate); /* a no-op where there is none */
/* Train mode (dropout on) or eval; a no-op for a model without a mode. */
void sgt_model_set_train(sgt_model *m, bool train);
/* Whether the config cfg (a checkpoint's) is the architecture m was built with. */
bool sgt_model_same(const sgt_model *m, const cJSON *cfg);
/* The models behind the interface, for what only they have (the SGT decoder, the HF layout);
 * NULL when m is another architecture. */
gpt_model *sgt_model_gpt(const sgt_model *m);
gpt2_model *sgt_model_gpt2(const sgt_model *m);

/* The sgt-gpt config codec (the JSON "config" of its checkpoints; "arch" is written, and not
 * required on reading). */
cJSON *gpt_config_to_json(const gpt_config *cfg);
int gpt_config_from_json(const cJSON *j, gpt_config *cfg, char *err, size_t errn);
cJSON *gpt2_config_to_json(const gpt2_config *cfg);
int gpt2_config_from_json(const cJSON *j, gpt2_config *cfg, char *err, size_t errn);

#endif
