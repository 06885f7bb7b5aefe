/* gpt.c: presets, the builder and the forward pass of the dense and SGT GPT (see gpt.h). */
#include "gpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const gpt_config presets[] = {
    /* name       L   C    H   d_ff  V      ctx   sparse nb  bs  k  router         tie    std   eps   skip   compute  composed */
    {"sgt-150m", 12, 768, 12, 2048, 50257, 1024, false, 32, 64, 16, NN_ROUTER_STE, false, 0.02, 1e-5, false, SGT_F32, false},
    {"small",     6, 384,  6, 1024, 50257,  512, false, 16, 64,  8, NN_ROUTER_STE, false, 0.02, 1e-5, false, SGT_F32, false},
    {"tiny",      4, 256,  4,  512, 50257,  256, false,  8, 64,  4, NN_ROUTER_STE, false, 0.02, 1e-5, false, SGT_F32, false},
    {"nano",      2,  32,  2,   64,   101,   32, false,  4, 16,  2, NN_ROUTER_STE, false, 0.02, 1e-5, false, SGT_F32, false},
};

const char *gpt_preset_names(void) { return "sgt-150m, small, tiny, nano"; }

int gpt_preset(const char *name, gpt_config *cfg) {
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++)
        if (!strcmp(presets[i].name, name)) {
            *cfg = presets[i];
            return 0;
        }
    return -1;
}

int gpt_config_validate(const gpt_config *c, char *err, size_t errn) {
#define BAD(...) do { snprintf(err, errn, __VA_ARGS__); return -1; } while (0)
    if (c->n_layers < 1 || c->n_layers > GPT_MAX_LAYERS) BAD("n_layers %lld is outside 1..%d", (long long)c->n_layers, GPT_MAX_LAYERS);
    if (c->d_model < 1 || c->n_heads < 1 || c->d_model % c->n_heads) BAD("d_model %lld is not divisible by n_heads %lld", (long long)c->d_model, (long long)c->n_heads);
    if (c->vocab < 2 || c->ctx_len < 1) BAD("vocab %lld / ctx_len %lld must be positive", (long long)c->vocab, (long long)c->ctx_len);
    if (c->vocab > INT32_MAX) BAD("vocab %lld does not fit i32 ids", (long long)c->vocab);
    if (c->sparse) {
        if (c->num_blocks < 1 || c->block_size < 1) BAD("num_blocks %lld and block_size %lld must be positive", (long long)c->num_blocks, (long long)c->block_size);
        if ((unsigned)c->router > NN_ROUTER_BALANCED) BAD("router kind %d is unknown (%s)", (int)c->router, NN_ROUTER_KIND_NAMES);
        if (c->top_k < 1 || c->top_k > c->num_blocks) BAD("top_k_blocks %lld is outside 1..num_blocks (%lld)", (long long)c->top_k, (long long)c->num_blocks);
    } else if (c->d_ff < 1) {
        BAD("d_ff %lld must be positive", (long long)c->d_ff);
    }
    return 0;
#undef BAD
}

bool gpt_config_same(const gpt_config *a, const gpt_config *b) {
    return a->n_layers == b->n_layers && a->d_model == b->d_model && a->n_heads == b->n_heads && a->d_ff == b->d_ff &&
           a->vocab == b->vocab && a->ctx_len == b->ctx_len && a->sparse == b->sparse &&
           a->num_blocks == b->num_blocks && a->block_size == b->block_size && a->top_k == b->top_k &&
           (!a->sparse || a->router == b->router) && a->tie_head == b->tie_head && a->init_std == b->init_std && a->norm_eps == b->norm_eps;
}

gpt_model *gpt_build(const gpt_config *cfg, nn_params *p) {
    char err[256], pre[NN_NAME_MAX], buf[NN_NAME_MAX];
    SGT_CHECK(gpt_config_validate(cfg, err, sizeof err) == 0, "model config '%s': %s", cfg->name, err);
    gpt_model *m = calloc(1, sizeof *m);
    SGT_CHECK(m, "out of host memory building the model");
    m->cfg = *cfg;
    m->params = p;
    const int64_t C = cfg->d_model, L = cfg->n_layers;
    const double std = cfg->init_std, res_std = cfg->init_std / sqrt(2.0 * (double)L);
    const int64_t hidden = cfg->sparse ? cfg->num_blocks * cfg->block_size : cfg->d_ff;
    nn_embedding_init(&m->wte, p, "wte", cfg->tie_head ? gpt_vocab_padded(cfg) : cfg->vocab, C, std);
    nn_embedding_init(&m->wpe, p, "wpe", cfg->ctx_len, C, std);
    for (int64_t i = 0; i < L; i++) {
        gpt_layer *l = &m->layers[i];
        snprintf(pre, sizeof pre, "layers.%lld", (long long)i);
        nn_rmsnorm_init(&l->ln1, p, nn_join(buf, sizeof buf, pre, "ln1"), C, cfg->norm_eps);
        nn_attention_init(&l->attn, p, nn_join(buf, sizeof buf, pre, "attn"), C, cfg->n_heads, std, res_std);
        nn_rmsnorm_init(&l->ln2, p, nn_join(buf, sizeof buf, pre, "ln2"), C, cfg->norm_eps);
        if (cfg->sparse)
            nn_bs_swiglu_init_kind(&l->sffn, p, nn_join(buf, sizeof buf, pre, "ffn"), C, cfg->num_blocks,
                                   cfg->block_size, cfg->top_k, std, res_std, cfg->router);
        else
            nn_swiglu_init(&l->ffn, p, nn_join(buf, sizeof buf, pre, "ffn"), C, hidden, std, res_std);
    }
    gpt_set_ffn_skip(m, cfg->ffn_skip);
    nn_rmsnorm_init(&m->ln_f, p, "ln_f", C, cfg->norm_eps);
    const int64_t Vp = gpt_vocab_padded(cfg);
    sgt_tensor *out_w;
    if (!cfg->tie_head) {
        nn_linear_init(&m->head, p, "head", C, Vp, false, std);
        out_w = m->head.w;
    } else { /* the head is wte: an nn_linear over it (not a parameter of its own) for decode copies */
        out_w = m->wte.w;
        m->head = (nn_linear){.w = out_w, .in = C, .out = Vp};
    }
    /* the padding rows of the output projection are zero (and stay so: their logits are outside
     * the softmax, so their gradient is exactly 0, and weight decay keeps 0 at 0) */
    if (Vp > cfg->vocab) sgt_fill(&p->ctx, sgt_narrow(&p->ctx, out_w, 0, cfg->vocab, Vp - cfg->vocab), 0.0);
    gpt_set_attention(m, cfg->composed_attention);
    return m;
}

int64_t gpt_vocab_padded(const gpt_config *cfg) { return (cfg->vocab + GPT_VOCAB_ALIGN - 1) / GPT_VOCAB_ALIGN * GPT_VOCAB_ALIGN; }

void gpt_set_attention(gpt_model *m, bool composed) {
    m->cfg.composed_attention = composed;
    for (int64_t i = 0; i < m->cfg.n_layers; i++) m->layers[i].attn.composed = composed;
}

void gpt_free(gpt_model *m) { free(m); }

void gpt_set_ffn_skip(gpt_model *m, bool skip) {
    m->cfg.ffn_skip = skip;
    for (int64_t i = 0; i < m->cfg.n_layers; i++) m->layers[i].sffn.path = skip ? NN_BS_SKIP : NN_BS_MASK;
}

void gpt_prepare_decode(gpt_model *m, sgt_dtype weights) {
    SGT_CHECK(weights == SGT_F32 || weights == SGT_BF16, "gpt_prepare_decode: decode weights must be f32 or bf16, not %s",
              sgt_dtype_name(weights));
    SGT_CHECK(weights == SGT_F32 || m->params->dtype == SGT_F32,
              "gpt_prepare_decode: bf16 decode weights need an f32 model (parameters %s)", sgt_dtype_name(m->params->dtype));
    for (int64_t i = 0; i < m->cfg.n_layers; i++) {
        gpt_layer *l = &m->layers[i];
        if (m->cfg.sparse) nn_bs_swiglu_prepare_decode(&l->sffn, m->params);
        if (weights != SGT_BF16) continue;
        nn_attention_prepare_bf16(&l->attn, m->params);
        if (m->cfg.sparse) nn_bs_swiglu_prepare_bf16(&l->sffn, m->params);
        else nn_swiglu_prepare_bf16(&l->ffn, m->params);
    }
    if (weights == SGT_BF16) nn_linear_prepare_bf16(&m->head, m->params); /* the tied head is wte (gpt_build) */
}

void gpt_kv_init(gpt_kv *kv, sgt_ctx *c, const gpt_model *m, int64_t B, int64_t max_len) {
    SGT_CHECK(max_len <= m->cfg.ctx_len, "KV cache of %lld positions exceeds the context length %lld",
              (long long)max_len, (long long)m->cfg.ctx_len);
    const sgt_dtype t = m->cfg.compute == SGT_BF16 ? SGT_BF16 : m->params->dtype; /* the activations' dtype */
    for (int64_t i = 0; i < m->cfg.n_layers; i++)
        nn_kv_cache_init(&kv->layer[i], c, t, B, m->cfg.n_heads, max_len, m->cfg.d_model / m->cfg.n_heads);
    kv->len = 0;
    kv->pos_dev = NULL;
}

/* x += branch, the branch's output brought to the residual stream's dtype */
static sgt_tensor *residual_add(sgt_ctx *c, sgt_tensor *x, sgt_tensor *branch) {
    return sgt_add(c, x, branch->dtype == x->dtype ? branch : sgt_cast(c, branch, x->dtype));
}

void gpt_kv_set_static(gpt_kv *kv, const gpt_model *m, sgt_tensor *pos, sgt_tensor *len) {
    for (int64_t i = 0; i < m->cfg.n_layers; i++) {
        kv->layer[i].pos_dev = pos;
        kv->layer[i].len_dev = len;
    }
    kv->pos_dev = pos;
}

gpt_output gpt_forward(sgt_ctx *c, const gpt_model *m, sgt_tensor *idx, const gpt_forward_opts *o) {
    static const gpt_forward_opts none = {0};
    if (!o) o = &none;
    const gpt_config *cfg = &m->cfg;
    char b[96];
    SGT_CHECK(idx->ndim == 2 && idx->dtype == SGT_I32, "gpt_forward: idx must be i32 [B, T], got %s",
              sgt_shape_str(idx, b, sizeof b));
    const int64_t T = idx->shape[1], pos0 = o->kv ? o->kv->len : 0;
    SGT_CHECK(pos0 + T <= cfg->ctx_len, "gpt_forward: positions %lld..%lld exceed the context length %lld",
              (long long)pos0, (long long)(pos0 + T - 1), (long long)cfg->ctx_len);
    gpt_output out;
    memset(&out, 0, sizeof out);

    sgt_tensor *pos_t;
    const bool static_kv = o->kv && o->kv->pos_dev;
    if (static_kv) { /* positions held on the device (gpt_kv_set_static) */
        SGT_CHECK(sgt_numel(o->kv->pos_dev) == T, "gpt_forward: %lld device positions for %lld tokens",
                  (long long)sgt_numel(o->kv->pos_dev), (long long)T);
        pos_t = o->kv->pos_dev;
    } else {
        int32_t *pos = sgt_arena_alloc_host(c->arena, sizeof(int32_t) * (size_t)T);
        for (int64_t t = 0; t < T; t++) pos[t] = (int32_t)(pos0 + t);
        pos_t = sgt_from_i32(c, SGT_SHAPE(T), pos);
    }
    sgt_tensor *x = sgt_add(c, nn_embedding_forward(c, &m->wte, idx), nn_embedding_forward(c, &m->wpe, pos_t));

    /* Mixed precision (cfg->compute = bf16): the residual stream x stays in the parameters' dtype
     * (f32); each norm writes its output straight in bf16, the Linears multiply bf16 casts of the
     * f32 weights, attention and SwiGLU run on bf16, and each branch's bf16 output is added back
     * into the f32 stream. Statistics (rstd, lse, the loss) are f32. */
    const sgt_dtype act = cfg->compute == SGT_BF16 ? SGT_BF16 : x->dtype;
    sgt_tensor *aux = NULL;
    for (int64_t i = 0; i < cfg->n_layers; i++) {
        const gpt_layer *l = &m->layers[i];
        sgt_tensor *h = sgt_rmsnorm_to(c, x, l->ln1.w, l->ln1.eps, act, NULL);
        x = residual_add(c, x, nn_attention_forward(c, &l->attn, h, o->kv ? &o->kv->layer[i] : NULL));
        h = sgt_rmsnorm_to(c, x, l->ln2.w, l->ln2.eps, act, NULL);
        if (o->kv) { /* inference: the FFN may take the decode copies (gpt_prepare_decode) */
            x = residual_add(c, x, cfg->sparse ? nn_bs_swiglu_infer(c, &l->sffn, h, &out.route[i])
                                               : nn_swiglu_infer(c, &l->ffn, h));
        } else if (cfg->sparse) {
            x = residual_add(c, x, nn_bs_swiglu_forward(c, &l->sffn, h, &out.route[i]));
            if (o->targets && o->aux_weight > 0) {
                sgt_tensor *a = nn_load_balance_loss(c, &out.route[i], cfg->top_k, o->aux_weight);
                aux = aux ? sgt_add(c, aux, a) : a;
            }
        } else {
            x = residual_add(c, x, nn_swiglu_forward(c, &l->ffn, h));
        }
    }
    if (o->kv && !static_kv) o->kv->len += T;
    if (o->last_only && T > 1) x = sgt_narrow(c, x, 1, T - 1, 1);
    x = sgt_rmsnorm_to(c, x, m->ln_f.w, m->ln_f.eps, act, NULL);
    /* logits over the padded vocabulary [B, T, Vp]; callers see the first V columns (a view) */
    const int64_t V = cfg->vocab, Vp = gpt_vocab_padded(cfg);
    sgt_tensor *lp;
    if (o->kv && m->head.w_bf16) {
        lp = nn_linear_infer(c, &m->head, x);
    } else if (cfg->tie_head) {
        sgt_tensor *w = m->wte.w->dtype == act ? m->wte.w : sgt_cast(c, m->wte.w, act);
        lp = sgt_matmul(c, x, w, false, true);
    } else {
        lp = nn_linear_forward(c, &m->head, x);
    }
    out.logits = Vp > V ? sgt_narrow(c, lp, -1, 0, V) : lp;
    if (o->targets) {
        out.ce = nn_cross_entropy_nll(c, lp, o->targets, V, o->token_nll ? &out.token_nll : NULL);
        out.loss = out.ce;
        if (aux) {
            out.aux = sgt_mul_scalar(c, aux, 1.0 / (double)cfg->n_layers);
            out.loss = sgt_add(c, out.ce, out.aux);
        }
    }
    return out;
}

/* the padding rows of the output projection are storage, not parameters */
int64_t gpt_param_count(const gpt_model *m) {
    return nn_params_count(m->params) - (gpt_vocab_padded(&m->cfg) - m->cfg.vocab) * m->cfg.d_model;
}

void gpt_router_balance(gpt_model *m, const double *counts, double rate) {
    if (!m->cfg.sparse) return;
    for (int64_t i = 0; i < m->cfg.n_layers; i++)
        nn_router_balance(&m->layers[i].sffn.router, counts + i * m->cfg.num_blocks, rate);
}

int64_t gpt_router_param_count(const gpt_model *m) { return nn_params_count_matching(m->params, ".router."); }

int64_t gpt_config_param_count(const gpt_config *c) {
    const int64_t C = c->d_model, L = c->n_layers, V = c->vocab;
    const int64_t hidden = c->sparse ? c->num_blocks * c->block_size : c->d_ff;
    int64_t per_layer = 2 * C            /* ln1, ln2 */
                        + 3 * C * C      /* qkv */
                        + C * C          /* proj */
                        + 3 * C * hidden; /* gate, up, down */
    if (c->sparse) per_layer += (C * NN_ROUTER_HIDDEN + NN_ROUTER_HIDDEN) + (NN_ROUTER_HIDDEN * c->num_blocks + c->num_blocks);
    return V * C + c->ctx_len * C + L * per_layer + C + (c->tie_head ? 0 : V * C);
}

double gpt_decode_bytes(const gpt_config *c, bool skip, int64_t pos, sgt_dtype weights) {
    const double C = (double)c->d_model, L = (double)c->n_layers, es = (double)sizeof(float),
                 ws = (double)sgt_dtype_size(weights) / es; /* the matrices' bytes per f32 byte */
    const double hidden = c->sparse ? (double)(c->num_blocks * c->block_size) : (double)c->d_ff;
    const double ffn = 3 * C * hidden * (skip ? (double)c->top_k / (double)c->num_blocks : 1.0);
    const double router = c->sparse ? ws * (C * NN_ROUTER_HIDDEN + NN_ROUTER_HIDDEN * (double)c->num_blocks) +
                                          NN_ROUTER_HIDDEN + (double)c->num_blocks /* + biases */
                                    : 0;
    const double per_layer = 2 * C + ws * (4 * C * C + ffn) + router; /* norms, qkv + proj, FFN, router */
    /* the head (tied: wte as the head; its one embedding row is counted below): padding rows are read too */
    const double head = ws * (double)gpt_vocab_padded(c) * C;
    const double kv = 2 * L * (double)pos * C;                  /* keys and values of past positions */
    return es * (L * per_layer + head + 3 * C + kv);            /* + ln_f and one row of wte, wpe */
}
