/* gpt2.h: the classic GPT-2 (Radford et al. 2019, Hugging Face's GPT2LMHeadModel), a second
 * architecture beside models/gpt.h, built from the same nn/ modules: learned token and position
 * embeddings, pre-norm blocks of LayerNorm (with bias), causal attention with biases on the QKV
 * and output projections, a 4C GELU (tanh) MLP with biases, dropout on the embeddings and each
 * residual branch (not on the attention probabilities, Hugging Face's attn_pdrop: the fused
 * attention op has none), a final LayerNorm, and logits through the token embedding (tied). Initialisation as GPT-2's: N(0, 0.02), the residual output
 * projections N(0, 0.02 / sqrt(2 L)), biases 0, LayerNorm weights 1.
 *
 * Parameter names (the Hugging Face layout without its "transformer." prefix; its Conv1D weights
 * are the transposes of these [out, in] ones):
 *   wte.weight [V, C]  wpe.weight [ctx, C]  ln_f.{weight,bias}
 *   h.{i}.ln_1.*  h.{i}.attn.qkv.{weight,bias} [3C, C]  h.{i}.attn.proj.*  h.{i}.ln_2.*
 *   h.{i}.mlp.fc1.* [4C, C]  h.{i}.mlp.fc2.* [C, 4C]
 *
 * Legend: B batch, T time, C width, L layers, V vocabulary. */
#ifndef SGT_MODELS_GPT2_H
#define SGT_MODELS_GPT2_H

#include "../nn/modules.h"

typedef struct {
    const char *name;
    int64_t vocab, ctx_len, n_layers, n_heads, d_model;
    double dropout; /* embeddings and residual branches (GPT-2: 0.1) */
    double ln_eps;  /* 1e-5 */
} gpt2_config;

/* "gpt2" (124M: 12 layers, 768 wide, 12 heads, V 50257, ctx 1024), "gpt2-tiny" (4/256/4, ctx
 * 256), "gpt2-nano" (2/32/2, V 101, ctx 32: unit tests). -1 for an unknown name. */
int gpt2_preset(const char *name, gpt2_config *cfg);
int gpt2_config_validate(const gpt2_config *cfg, char *err, size_t errn);
/* the parameter count, from the config alone (tied: wte counted once) */
int64_t gpt2_param_count(const gpt2_config *cfg);

typedef struct {
    nn_layernorm ln1, ln2;
    nn_attention attn;
    nn_mlp mlp;
} gpt2_block;

typedef struct {
    gpt2_config cfg;
    nn_params *params;
    nn_embedding wte, wpe;
    gpt2_block *h;
    nn_layernorm ln_f;
    nn_dropout drop;
    nn_mode mode; /* train (dropout on) or eval; training starts in eval: set mode.train */
} gpt2_model;

/* Registers the parameters in p (initialised unless p->skip_init). */
gpt2_model *gpt2_build(const gpt2_config *cfg, nn_params *p);
void gpt2_free(gpt2_model *m);
/* idx i32 [B, T] -> logits [B, T, V]; with targets (i32 [B, T]) *loss gets their mean cross-
 * entropy. With kv (one nn_kv_cache per layer, [B, H, Tmax, D], inference without a tape) the T
 * positions follow the kv[0].len cached ones. T (plus the cache) must fit ctx_len. */
sgt_tensor *gpt2_forward(sgt_ctx *c, gpt2_model *m, sgt_tensor *idx, sgt_tensor *targets, sgt_tensor **loss,
                         nn_kv_cache *kv);

/* The Hugging Face checkpoint layout (GPT2LMHeadModel.save_pretrained's model.safetensors):
 * names with or without the "transformer." prefix, Conv1D weights [in, out] (the transposes of
 * ours), "lm_head.weight" ignored (tied to wte) as are the attention-mask buffers ("h.{i}.attn.bias",
 * "h.{i}.attn.masked_bias") of older files. The model's config must match the file's shapes.
 * gpt2_load_hf replaces every parameter (all or nothing); gpt2_save_hf writes the
 * "transformer."-prefixed layout with metadata {"format": "pt"}, which transformers loads. */
int gpt2_load_hf(gpt2_model *m, const char *path, char *err, size_t errn);
int gpt2_save_hf(gpt2_model *m, const char *path, char *err, size_t errn);

#endif
