/* model.c: the model interface (model.h): the registry of architectures, the generic calls, and
 * the two built-in architectures' tables: "sgt-gpt" (models/gpt.h) and "gpt2" (models/gpt2.h). */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- JSON fields ---- */

/* A config comes from a checkpoint's metadata, untrusted bytes: a size must be a whole number in
 * [0, 2^40] (so that the conversion is defined and the validators see its true value), a real a
 * finite one. */
static int num_field(const cJSON *j, const char *name, bool integer, double *v, char *err, size_t errn) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, name);
    const double d = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    const bool ok = integer ? d >= 0 && d <= 1099511627776.0 && d == floor(d) : isfinite(d);
    if (!ok) {
        snprintf(err, errn, "model config: field '%s' missing or not %s", name,
                 integer ? "a whole number in [0, 2^40]" : "a finite number");
        return -1;
    }
    *v = d;
    return 0;
}

#define NUM_AS(j, c, field, integer)                                              \
    do {                                                                          \
        double v_;                                                                \
        if (num_field(j, #field, integer, &v_, err, errn)) return -1;             \
        (c)->field = (__typeof__((c)->field))v_;                                  \
    } while (0)
#define INT(j, c, field) NUM_AS(j, c, field, true)
#define REAL(j, c, field) NUM_AS(j, c, field, false)

/* ---- sgt-gpt ---- */

cJSON *gpt_config_to_json(const gpt_config *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "arch", "sgt-gpt");
    cJSON_AddStringToObject(j, "preset", c->name);
    cJSON_AddNumberToObject(j, "n_layers", (double)c->n_layers);
    cJSON_AddNumberToObject(j, "d_model", (double)c->d_model);
    cJSON_AddNumberToObject(j, "n_heads", (double)c->n_heads);
    cJSON_AddNumberToObject(j, "d_ff", (double)c->d_ff);
    cJSON_AddNumberToObject(j, "vocab", (double)c->vocab);
    cJSON_AddNumberToObject(j, "ctx_len", (double)c->ctx_len);
    cJSON_AddBoolToObject(j, "sparse", c->sparse);
    cJSON_AddNumberToObject(j, "num_blocks", (double)c->num_blocks);
    cJSON_AddNumberToObject(j, "block_size", (double)c->block_size);
    cJSON_AddNumberToObject(j, "top_k", (double)c->top_k);
    if (c->sparse) cJSON_AddStringToObject(j, "router", nn_router_kind_name(c->router));
    cJSON_AddBoolToObject(j, "tie_head", c->tie_head);
    cJSON_AddNumberToObject(j, "init_std", c->init_std);
    cJSON_AddNumberToObject(j, "norm_eps", c->norm_eps);
    return j;
}

int gpt_config_from_json(const cJSON *j, gpt_config *c, char *err, size_t errn) {
    memset(c, 0, sizeof *c);
    INT(j, c, n_layers); INT(j, c, d_model); INT(j, c, n_heads); INT(j, c, d_ff); INT(j, c, vocab);
    INT(j, c, ctx_len); INT(j, c, num_blocks); INT(j, c, block_size); INT(j, c, top_k); REAL(j, c, init_std);
    REAL(j, c, norm_eps);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "sparse"), *t = cJSON_GetObjectItemCaseSensitive(j, "tie_head");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "preset");
    if (!cJSON_IsBool(s) || !cJSON_IsBool(t) || !cJSON_IsString(p)) {
        snprintf(err, errn, "model config: 'sparse', 'tie_head' or 'preset' missing");
        return -1;
    }
    c->sparse = cJSON_IsTrue(s);
    c->tie_head = cJSON_IsTrue(t);
    /* "router": absent in checkpoints older than the router variants, which are all the seed's */
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "router");
    if (r && (!cJSON_IsString(r) || nn_router_kind_parse(r->valuestring, &c->router))) {
        snprintf(err, errn, "model config: 'router' must be one of %s", NN_ROUTER_KIND_NAMES);
        return -1;
    }
    snprintf(c->name, sizeof c->name, "%s", p->valuestring);
    return gpt_config_validate(c, err, errn);
}

static cJSON *gpt_arch_preset(const char *name) {
    gpt_config c;
    return gpt_preset(name, &c) ? NULL : gpt_config_to_json(&c);
}

static int gpt_arch_build(sgt_model *m, const cJSON *cfg, const sgt_model_runtime *rt, char *err, size_t errn) {
    gpt_config c;
    if (gpt_config_from_json(cfg, &c, err, errn)) return -1;
    c.compute = rt->compute;
    c.composed_attention = rt->composed_attention;
    c.ffn_skip = rt->ffn_skip;
    m->impl = gpt_build(&c, m->params);
    m->config = gpt_config_to_json(&c);
    m->vocab = c.vocab;
    m->ctx_len = c.ctx_len;
    m->n_route = c.sparse ? c.n_layers : 0; /* no dropout: no mode */
    m->route_blocks = c.sparse ? c.num_blocks : 0;
    m->balances = c.sparse && c.router == NN_ROUTER_BALANCED;
    return 0;
}

static sgt_model_out gpt_arch_forward(sgt_ctx *c, void *impl, sgt_tensor *idx, const sgt_model_fwd *o) {
    const gpt_model *m = impl;
    gpt_forward_opts go = {.targets = o->targets, .aux_weight = o->aux_weight, .token_nll = o->token_nll};
    gpt_output g = gpt_forward(c, m, idx, &go);
    /* the routings live in the step arena with the tensors; the array itself must outlive this
     * call: it is copied into the arena too */
    nn_route *route = NULL;
    if (m->cfg.sparse) {
        route = sgt_arena_alloc_host(c->arena, sizeof(nn_route) * (size_t)m->cfg.n_layers);
        memcpy(route, g.route, sizeof(nn_route) * (size_t)m->cfg.n_layers);
    }
    return (sgt_model_out){.logits = g.logits, .ce = g.ce, .aux = g.aux, .loss = g.loss, .token_nll = g.token_nll,
                           .route = route};
}

static int64_t gpt_arch_params(const void *impl) { return gpt_param_count(impl); }
static int64_t gpt_arch_router_params(const void *impl) { return gpt_router_param_count(impl); }
static void gpt_arch_balance(void *impl, const double *counts, double rate) { gpt_router_balance(impl, counts, rate); }
static void gpt_arch_free(void *impl) { gpt_free(impl); }

static bool gpt_arch_same(const cJSON *a, const cJSON *b) {
    gpt_config x, y;
    char err[256];
    return !gpt_config_from_json(a, &x, err, sizeof err) && !gpt_config_from_json(b, &y, err, sizeof err) &&
           gpt_config_same(&x, &y);
}

static const sgt_model_arch gpt_arch = {
    .name = "sgt-gpt", .presets = "sgt-150m, small, tiny, nano", .mixed_precision = true,
    .preset = gpt_arch_preset, .build = gpt_arch_build, .forward = gpt_arch_forward,
    .param_count = gpt_arch_params, .router_param_count = gpt_arch_router_params, .balance = gpt_arch_balance,
    .same = gpt_arch_same, .free = gpt_arch_free,
};

/* ---- gpt2 ---- */

cJSON *gpt2_config_to_json(const gpt2_config *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "arch", "gpt2");
    cJSON_AddStringToObject(j, "preset", c->name ? c->name : "custom");
    cJSON_AddNumberToObject(j, "vocab", (double)c->vocab);
    cJSON_AddNumberToObject(j, "ctx_len", (double)c->ctx_len);
    cJSON_AddNumberToObject(j, "n_layers", (double)c->n_layers);
    cJSON_AddNumberToObject(j, "n_heads", (double)c->n_heads);
    cJSON_AddNumberToObject(j, "d_model", (double)c->d_model);
    cJSON_AddNumberToObject(j, "dropout", c->dropout);
    cJSON_AddNumberToObject(j, "ln_eps", c->ln_eps);
    return j;
}

int gpt2_config_from_json(const cJSON *j, gpt2_config *c, char *err, size_t errn) {
    memset(c, 0, sizeof *c);
    INT(j, c, vocab); INT(j, c, ctx_len); INT(j, c, n_layers); INT(j, c, n_heads); INT(j, c, d_model);
    REAL(j, c, dropout); REAL(j, c, ln_eps);
    /* the name is a preset's (static) string, or "custom" */
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "preset");
    gpt2_config pc;
    c->name = cJSON_IsString(p) && !gpt2_preset(p->valuestring, &pc) ? pc.name : "custom";
    return gpt2_config_validate(c, err, errn);
}

static cJSON *gpt2_arch_preset(const char *name) {
    gpt2_config c;
    return gpt2_preset(name, &c) ? NULL : gpt2_config_to_json(&c);
}

static int gpt2_arch_build(sgt_model *m, const cJSON *cfg, const sgt_model_runtime *rt, char *err, size_t errn) {
    gpt2_config c;
    if (gpt2_config_from_json(cfg, &c, err, errn)) return -1;
    if (rt->ffn_skip) {
        snprintf(err, errn, "gpt2: the block-skipping FFN path is for the SGT model only (it has no sparse FFN)");
        return -1;
    }
    gpt2_model *g = gpt2_build(&c, m->params);
    for (int64_t l = 0; l < c.n_layers; l++) g->h[l].attn.composed = rt->composed_attention;
    m->impl = g;
    m->config = gpt2_config_to_json(&c);
    m->vocab = c.vocab;
    m->ctx_len = c.ctx_len;
    m->mode = &g->mode;
    return 0;
}

static sgt_model_out gpt2_arch_forward(sgt_ctx *c, void *impl, sgt_tensor *idx, const sgt_model_fwd *o) {
    sgt_model_out out = {0};
    out.logits = gpt2_forward(c, impl, idx, NULL, NULL, NULL);
    if (o->targets) out.loss = out.ce = nn_cross_entropy_nll(c, out.logits, o->targets, 0, o->token_nll ? &out.token_nll : NULL);
    return out;
}

static int64_t gpt2_arch_params(const void *impl) { return gpt2_param_count(&((const gpt2_model *)impl)->cfg); }
static void gpt2_arch_free(void *impl) { gpt2_free(impl); }

static const sgt_model_arch gpt2_arch = {
    .name = "gpt2", .presets = "gpt2, gpt2-tiny, gpt2-nano", .mixed_precision = false,
    .preset = gpt2_arch_preset, .build = gpt2_arch_build, .forward = gpt2_arch_forward,
    .param_count = gpt2_arch_params, .free = gpt2_arch_free,
};

/* ---- the registry ---- */

#define MAX_ARCHS 16
static const sgt_model_arch *archs[MAX_ARCHS] = {&gpt_arch, &gpt2_arch};
static int n_archs = 2;

int sgt_model_register(const sgt_model_arch *arch) {
    SGT_CHECK(arch && arch->name && arch->preset && arch->build && arch->forward && arch->param_count && arch->free,
              "sgt_model_register: the table needs a name, preset, build, forward, param_count and free");
    if (sgt_model_arch_named(arch->name) || n_archs == MAX_ARCHS) return -1;
    archs[n_archs++] = arch;
    return 0;
}

const sgt_model_arch *sgt_model_arch_named(const char *name) {
    for (int i = 0; i < n_archs; i++)
        if (!strcmp(archs[i]->name, name)) return archs[i];
    return NULL;
}

const sgt_model_arch *sgt_model_arch_at(int i) { return i >= 0 && i < n_archs ? archs[i] : NULL; }

cJSON *sgt_model_preset(const char *name, char *err, size_t errn) {
    for (int i = 0; i < n_archs; i++) {
        cJSON *c = archs[i]->preset(name);
        if (c) {
            if (!cJSON_GetObjectItemCaseSensitive(c, "arch")) cJSON_AddStringToObject(c, "arch", archs[i]->name);
            return c;
        }
    }
    int n = snprintf(err, errn, "unknown preset '%s' (presets:", name);
    for (int i = 0; i < n_archs && n >= 0 && (size_t)n < errn; i++)
        n += snprintf(err + n, errn - (size_t)n, "%s %s (%s)", i ? ";" : "", archs[i]->presets, archs[i]->name);
    if (n >= 0 && (size_t)n < errn) snprintf(err + n, errn - (size_t)n, ")");
    return NULL;
}

const sgt_model_arch *sgt_model_arch_of(const cJSON *cfg, char *err, size_t errn) {
    if (!cJSON_IsObject(cfg)) {
        snprintf(err, errn, "model config: not a JSON object");
        return NULL;
    }
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(cfg, "arch");
    if (!a) return &gpt_arch; /* checkpoints from before the interface */
    const sgt_model_arch *r = cJSON_IsString(a) ? sgt_model_arch_named(a->valuestring) : NULL;
    if (!r) snprintf(err, errn, "model config: unknown architecture %s%s%s (known: sgt-gpt, gpt2 and registered ones)",
                     cJSON_IsString(a) ? "'" : "", cJSON_IsString(a) ? a->valuestring : "(not a string)",
                     cJSON_IsString(a) ? "'" : "");
    return r;
}

sgt_model *sgt_model_build(const cJSON *cfg, const sgt_model_runtime *rt, nn_params *p, char *err, size_t errn) {
    const sgt_model_arch *arch = sgt_model_arch_of(cfg, err, errn);
    if (!arch) return NULL;
    const sgt_model_runtime none = {.compute = SGT_F32};
    if (!rt) rt = &none;
    if (rt->compute == SGT_BF16 && !arch->mixed_precision) {
        snprintf(err, errn, "%s: bf16 mixed precision is not implemented for this architecture (use f32)", arch->name);
        return NULL;
    }
    sgt_model *m = calloc(1, sizeof *m);
    SGT_CHECK(m != NULL, "sgt_model_build: out of memory");
    m->arch = arch;
    m->params = p;
    if (arch->build(m, cfg, rt, err, errn)) {
        free(m);
        return NULL;
    }
    if (!cJSON_GetObjectItemCaseSensitive(m->config, "arch")) cJSON_AddStringToObject(m->config, "arch", arch->name);
    return m;
}

void sgt_model_free(sgt_model *m) {
    if (!m) return;
    m->arch->free(m->impl);
    cJSON_Delete(m->config);
    free(m);
}

sgt_model_out sgt_model_forward(sgt_ctx *c, const sgt_model *m, sgt_tensor *idx, const sgt_model_fwd *o) {
    const sgt_model_fwd none = {0};
    return m->arch->forward(c, m->impl, idx, o ? o : &none);
}

int64_t sgt_model_param_count(const sgt_model *m) { return m->arch->param_count(m->impl); }
const char *sgt_model_name(const sgt_model *m) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(m->config, "preset");
    return cJSON_IsString(p) ? p->valuestring : m->arch->name;
}
int64_t sgt_model_router_param_count(const sgt_model *m) {
    return m->arch->router_param_count ? m->arch->router_param_count(m->impl) : 0;
}
void sgt_model_balance(sgt_model *m, const double *counts, double rate) {
    if (m->arch->balance) m->arch->balance(m->impl, counts, rate);
}
void sgt_model_set_train(sgt_model *m, bool train) {
    if (m->mode) m->mode->train = train;
}

bool sgt_model_same(const sgt_model *m, const cJSON *cfg) {
    char err[256];
    if (sgt_model_arch_of(cfg, err, sizeof err) != m->arch) return false;
    if (m->arch->same) return m->arch->same(m->config, cfg);
    /* equal JSON, "arch" and "preset" aside (a preset is only the name the config started from) */
    cJSON *a = cJSON_Duplicate(m->config, 1), *b = cJSON_Duplicate(cfg, 1);
    const char *skip[] = {"arch", "preset"};
    for (int i = 0; i < 2; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(a, skip[i]);
        cJSON_DeleteItemFromObjectCaseSensitive(b, skip[i]);
    }
    bool r = cJSON_Compare(a, b, true);
    cJSON_Delete(a);
    cJSON_Delete(b);
    return r;
}

gpt_model *sgt_model_gpt(const sgt_model *m) { return m && m->arch == &gpt_arch ? m->impl : NULL; }
gpt2_model *sgt_model_gpt2(const sgt_model *m) { return m && m->arch == &gpt2_arch ? m->impl : NULL; }
