/* gpt2.c: the classic GPT-2 from the nn modules (see gpt2.h). */
#include "gpt2.h"

#include "../nn/checkpoint.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const gpt2_config presets[] = {
    {"gpt2", 50257, 1024, 12, 12, 768, 0.1, 1e-5},
    {"gpt2-tiny", 50257, 256, 4, 4, 256, 0.1, 1e-5},
    {"gpt2-nano", 101, 32, 2, 2, 32, 0.1, 1e-5},
};

int gpt2_preset(const char *name, gpt2_config *cfg) {
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++)
        if (!strcmp(presets[i].name, name)) {
            *cfg = presets[i];
            return 0;
        }
    return -1;
}

int gpt2_config_validate(const gpt2_config *c, char *err, size_t errn) {
    const char *why = c->vocab < 1 || c->vocab > INT32_MAX ? "vocab must be positive and fit i32 token ids"
                    : c->ctx_len < 1 ? "ctx_len must be positive"
                    : c->n_layers < 1 ? "n_layers must be positive"
                    : c->n_heads < 1 || c->d_model % c->n_heads ? "d_model must be a positive multiple of n_heads"
                    : !(c->dropout >= 0 && c->dropout < 1) ? "dropout must be in [0, 1)"
                    : !(c->ln_eps > 0) ? "ln_eps must be positive" : NULL;
    if (why) snprintf(err, errn, "gpt2 config %s: %s", c->name ? c->name : "(unnamed)", why);
    return why ? -1 : 0;
}

int64_t gpt2_param_count(const gpt2_config *c) {
    const int64_t C = c->d_model;
    const int64_t block = 2 * 2 * C               /* ln_1, ln_2 */
                        + 3 * C * C + 3 * C       /* qkv */
                        + C * C + C               /* proj */
                        + 4 * C * C + 4 * C       /* fc1 */
                        + 4 * C * C + C;          /* fc2 */
    return c->vocab * C + c->ctx_len * C + c->n_layers * block + 2 * C;
}

gpt2_model *gpt2_build(const gpt2_config *cfg, nn_params *p) {
    char err[256];
    SGT_CHECK(!gpt2_config_validate(cfg, err, sizeof err), "%s", err);
    gpt2_model *m = calloc(1, sizeof *m);
    SGT_CHECK(m != NULL, "gpt2: out of memory");
    m->cfg = *cfg;
    m->params = p;
    const int64_t C = cfg->d_model, L = cfg->n_layers;
    const double std = 0.02, proj_std = 0.02 / sqrt(2.0 * (double)L);
    nn_embedding_init(&m->wte, p, "wte", cfg->vocab, C, std);
    nn_embedding_init(&m->wpe, p, "wpe", cfg->ctx_len, C, std);
    m->h = calloc((size_t)L, sizeof *m->h);
    SGT_CHECK(m->h != NULL, "gpt2: out of memory");
    const nn_attention_opts ao = {.qkv_bias = true, .proj_bias = true};
    char pre[64];
    for (int64_t l = 0; l < L; l++) {
        gpt2_block *b = &m->h[l];
        snprintf(pre, sizeof pre, "h.%lld.ln_1", (long long)l);
        nn_layernorm_init(&b->ln1, p, pre, C, true, cfg->ln_eps);
        snprintf(pre, sizeof pre, "h.%lld.attn", (long long)l);
        nn_attention_init_opts(&b->attn, p, pre, C, cfg->n_heads, &ao, std, proj_std);
        snprintf(pre, sizeof pre, "h.%lld.ln_2", (long long)l);
        nn_layernorm_init(&b->ln2, p, pre, C, true, cfg->ln_eps);
        snprintf(pre, sizeof pre, "h.%lld.mlp", (long long)l);
        nn_mlp_init(&b->mlp, p, pre, C, 4 * C, C, true, NN_GELU_TANH, std, proj_std);
    }
    nn_layernorm_init(&m->ln_f, p, "ln_f", C, true, cfg->ln_eps);
    m->mode = (nn_mode){.train = false, .seed = p->seed};
    nn_dropout_init(&m->drop, &m->mode, cfg->dropout);
    return m;
}

void gpt2_free(gpt2_model *m) {
    if (!m) return;
    free(m->h);
    free(m);
}

sgt_tensor *gpt2_forward(sgt_ctx *c, gpt2_model *m, sgt_tensor *idx, sgt_tensor *targets, sgt_tensor **loss,
                         nn_kv_cache *kv) {
    SGT_CHECK(idx->ndim == 2 && idx->dtype == SGT_I32, "gpt2_forward: idx must be i32 [B, T]");
    const int64_t T = idx->shape[1], start = kv ? kv[0].len : 0;
    SGT_CHECK(start + T <= m->cfg.ctx_len, "gpt2_forward: %lld positions exceed the context length %lld",
              (long long)(start + T), (long long)m->cfg.ctx_len);
    int32_t *pos = sgt_arena_alloc_host(c->arena, sizeof(int32_t) * (size_t)T); /* the step's lifetime, as gpt.c */
    for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(start + t);
    sgt_tensor *pt = sgt_from_i32(c, SGT_SHAPE(T), pos);
    sgt_tensor *x = sgt_add(c, nn_embedding_forward(c, &m->wte, idx), nn_embedding_forward(c, &m->wpe, pt)); /* [B, T, C] */
    x = nn_dropout_forward(c, &m->drop, x);
    for (int64_t l = 0; l < m->cfg.n_layers; l++) {
        gpt2_block *b = &m->h[l];
        sgt_tensor *a = nn_attention_forward(c, &b->attn, nn_layernorm_forward(c, &b->ln1, x), kv ? &kv[l] : NULL);
        x = sgt_add(c, x, nn_dropout_forward(c, &m->drop, a));
        sgt_tensor *f = nn_mlp_forward(c, &b->mlp, nn_layernorm_forward(c, &b->ln2, x));
        x = sgt_add(c, x, nn_dropout_forward(c, &m->drop, f));
    }
    sgt_tensor *logits = sgt_matmul(c, nn_layernorm_forward(c, &m->ln_f, x), m->wte.w, false, true); /* [B, T, V] */
    if (targets && loss) *loss = nn_cross_entropy(c, logits, targets, SGT_NO_IGNORE);
    return logits;
}

/* ---- the Hugging Face layout ---- */

enum { HF_PER_LAYER = 12 };

/* the k-th tensor of the Hugging Face layout: its name (without "transformer."), our tensor, and
 * whether the file holds its transpose (Conv1D) */
static int hf_entry(const gpt2_model *m, int k, char *name, size_t n, sgt_tensor **ours) {
    if (k == 0) return snprintf(name, n, "wte.weight"), *ours = m->wte.w, 0;
    if (k == 1) return snprintf(name, n, "wpe.weight"), *ours = m->wpe.w, 0;
    k -= 2;
    const int64_t L = m->cfg.n_layers;
    if (k >= L * HF_PER_LAYER)
        return snprintf(name, n, k == L * HF_PER_LAYER ? "ln_f.weight" : "ln_f.bias"),
               *ours = k == L * HF_PER_LAYER ? m->ln_f.w : m->ln_f.b, 0;
    const gpt2_block *b = &m->h[k / HF_PER_LAYER];
    static const char *const suffix[HF_PER_LAYER] = {
        "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias",
        "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};
    sgt_tensor *const t[HF_PER_LAYER] = {b->ln1.w, b->ln1.b, b->attn.qkv.w, b->attn.qkv.b, b->attn.proj.w,
                                         b->attn.proj.b, b->ln2.w, b->ln2.b, b->mlp.fc1.w, b->mlp.fc1.b,
                                         b->mlp.fc2.w, b->mlp.fc2.b};
    const int j = k % HF_PER_LAYER;
    snprintf(name, n, "h.%d.%s", k / HF_PER_LAYER, suffix[j]);
    *ours = t[j];
    return j == 2 || j == 4 || j == 8 || j == 10; /* Conv1D weights */
}

static int hf_count(const gpt2_model *m) { return 2 + (int)m->cfg.n_layers * HF_PER_LAYER + 2; }

int gpt2_load_hf(gpt2_model *m, const char *path, char *err, size_t errn) {
    /* a staging store of the file's names and shapes, loaded whole, then copied (transposed) in */
    nn_params *hf = nn_params_create(0, m->params->dtype, m->params->ctx.device);
    hf->skip_init = true;
    const int n = hf_count(m);
    sgt_tensor **staged = malloc(sizeof(sgt_tensor *) * (size_t)n);
    SGT_CHECK(staged != NULL, "gpt2_load_hf: out of memory");
    char name[64];
    for (int k = 0; k < n; k++) {
        sgt_tensor *ours;
        int tr = hf_entry(m, k, name, sizeof name, &ours);
        int64_t shape[2] = {ours->shape[tr ? 1 : 0], ours->ndim > 1 ? ours->shape[tr ? 0 : 1] : 0};
        staged[k] = nn_param_new(hf, NULL, name, ours->ndim, shape, NN_INIT_ZEROS, 0, false);
    }
    const nn_prefix_map map[] = {{"transformer.", ""}, {"lm_head.", NULL}};
    const nn_load_opts o = {.strict = false, .n_prefix = 2, .prefix = map};
    nn_load_report rep;
    int rc = nn_load_params_opts(hf, path, &o, &rep, err, errn);
    if (!rc && rep.n_missing)
        rc = -1, snprintf(err, errn, "%s: no tensor %s (nor transformer.%s): not a GPT-2 of this config (%lld layers)",
                          path, rep.missing[0], rep.missing[0], (long long)m->cfg.n_layers);
    for (int i = 0; !rc && i < rep.n_unexpected; i++) {
        const char *u = rep.unexpected[i], *dot = strrchr(u, '.');
        bool buffer = dot && (!strcmp(dot, ".bias") || !strcmp(dot, ".masked_bias")) && strstr(u, ".attn.") &&
                      dot - strstr(u, ".attn.") == 5; /* h.{i}.attn.bias: the causal mask */
        if (!buffer)
            rc = -1, snprintf(err, errn, "%s: unexpected tensor %s: not a GPT-2 of this config (%lld layers)", path, u,
                              (long long)m->cfg.n_layers);
    }
    nn_load_report_free(&rep);
    if (!rc) {
        sgt_ctx *c = &hf->ctx; /* views in the staging store's arena, freed with it */
        for (int k = 0; k < n; k++) {
            sgt_tensor *ours;
            int tr = hf_entry(m, k, name, sizeof name, &ours);
            sgt_copy_into(c, ours, tr ? sgt_transpose(c, staged[k], 0, 1) : staged[k]);
        }
    }
    free(staged);
    nn_params_destroy(hf);
    return rc;
}

int gpt2_save_hf(gpt2_model *m, const char *path, char *err, size_t errn) {
    const int n = hf_count(m);
    char (*names)[80] = malloc(sizeof *names * (size_t)n);
    const char **np = malloc(sizeof(char *) * (size_t)n);
    sgt_tensor **ts = malloc(sizeof(sgt_tensor *) * (size_t)n);
    SGT_CHECK(names && np && ts, "gpt2_save_hf: out of memory");
    sgt_arena *a = sgt_arena_create("gpt2_save_hf", m->params->ctx.device, 0, 0);
    sgt_ctx c = {.arena = a, .device = m->params->ctx.device};
    for (int k = 0; k < n; k++) {
        char name[64];
        sgt_tensor *ours;
        int tr = hf_entry(m, k, name, sizeof name, &ours);
        snprintf(names[k], sizeof names[k], "transformer.%s", name);
        np[k] = names[k];
        ts[k] = tr ? sgt_transpose(&c, ours, 0, 1) : ours;
    }
    int rc = nn_save_safetensors(path, n, np, ts, "{\"format\":\"pt\"}", err, errn);
    sgt_arena_destroy(a);
    free(ts);
    free(np);
    free(names);
    return rc;
}
