/* modules.c: Linear, Embedding, RMSNorm, LayerNorm, dropout, RoPE, attention with KV cache, SwiGLU, the
 * GELU MLP, cross-entropy. */
#include "modules.h"

#include <math.h>
#include <stdlib.h>

/* ---- Linear ---- */

void nn_linear_init(nn_linear *m, nn_params *p, const char *prefix, int64_t in, int64_t out, bool bias, double std) {
    m->in = in;
    m->out = out;
    m->w = nn_param_new(p, prefix, "weight", SGT_SHAPE(out, in), NN_INIT_NORMAL, std, true);
    m->b = bias ? nn_param_new(p, prefix, "bias", SGT_SHAPE(out), NN_INIT_ZEROS, 0, false) : NULL;
    m->w_bf16 = NULL;
}

/* f32 and bf16 mix (mixed precision: the weights are cast to the input's dtype, their gradients
 * come back in theirs); f64 meets only f64: an f64 input would otherwise silently make the whole
 * layer (and what follows) compute in f64, or an f32 one silently drop an f64 model to f32 */
void nn_check_input_dtype(const char *module, const sgt_tensor *w, const sgt_tensor *x) {
    SGT_CHECK(sgt_dtype_is_float(x->dtype) && (x->dtype == SGT_F64) == (w->dtype == SGT_F64),
              "%s %s: the input is %s but the weights are %s: cast the input (sgt_cast) or create the parameters "
              "in that dtype",
              module, w->name ? w->name : "", sgt_dtype_name(x->dtype), sgt_dtype_name(w->dtype));
}

sgt_tensor *nn_linear_forward(sgt_ctx *c, const nn_linear *m, sgt_tensor *x) {
    char b[96];
    SGT_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] == m->in, "linear %s: input %s, expected last dim %lld",
              m->w->name ? m->w->name : "", sgt_shape_str(x, b, sizeof b), (long long)m->in);
    nn_check_input_dtype("linear", m->w, x);
    sgt_tensor *x2 = x->ndim == 1 ? sgt_reshape(c, x, SGT_SHAPE(1, m->in)) : x;
    /* mixed precision: the layer computes in its input's dtype; a cast of the (f32 master) weight
     * is recorded, so its gradient comes back to the master in f32 */
    sgt_tensor *w = m->w->dtype == x->dtype ? m->w : sgt_cast(c, m->w, x->dtype);
    sgt_tensor *y = sgt_matmul(c, x2, w, false, true); /* [..., in] @ [out, in]^T */
    if (x->ndim == 1) y = sgt_reshape(c, y, SGT_SHAPE(m->out));
    if (!m->b) return y;
    return sgt_add(c, y, m->b->dtype == y->dtype ? m->b : sgt_cast(c, m->b, y->dtype));
}

/* ---- Linear over a bf16 inference copy ---- */

void nn_linear_prepare_bf16(nn_linear *m, nn_params *p) {
    if (!m->w_bf16) m->w_bf16 = sgt_empty(&p->ctx, SGT_BF16, 2, m->w->shape);
    /* the cast's f32 -> bf16 result lands in a scratch arena, then in the persistent copy */
    sgt_arena *tmp = sgt_arena_create("bf16 copy", p->ctx.device, 0, 0);
    sgt_ctx tc = {.arena = tmp, .device = p->ctx.device};
    sgt_copy_into(&tc, m->w_bf16, m->w->dtype == SGT_BF16 ? m->w : sgt_cast(&tc, m->w, SGT_BF16));
    sgt_arena_destroy(tmp);
}

bool nn_infer_bf16_applies(const sgt_tensor *x) {
    const int64_t rows = x->ndim ? sgt_numel(x) / (x->shape[x->ndim - 1] ? x->shape[x->ndim - 1] : 1) : 1;
    return x->dtype == SGT_F32 && rows <= NN_INFER_ROWS;
}

sgt_tensor *nn_linear_infer(sgt_ctx *c, const nn_linear *m, sgt_tensor *x) {
    if (!m->w_bf16 || !nn_infer_bf16_applies(x)) return nn_linear_forward(c, m, x);
    char b[96];
    SGT_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] == m->in, "linear %s: input %s, expected last dim %lld",
              m->w->name ? m->w->name : "", sgt_shape_str(x, b, sizeof b), (long long)m->in);
    sgt_tensor *y = sgt_linear_bf16(c, x, m->w_bf16);
    if (!m->b) return y;
    return sgt_add(c, y, m->b->dtype == y->dtype ? m->b : sgt_cast(c, m->b, y->dtype));
}

/* ---- Embedding ---- */

void nn_embedding_init(nn_embedding *m, nn_params *p, const char *prefix, int64_t n, int64_t dim, double std) {
    m->w = nn_param_new(p, prefix, "weight", SGT_SHAPE(n, dim), NN_INIT_NORMAL, std, false);
}

sgt_tensor *nn_embedding_forward(sgt_ctx *c, const nn_embedding *m, sgt_tensor *idx) {
    return sgt_embedding(c, m->w, idx);
}

/* ---- RMSNorm ---- */

void nn_rmsnorm_init(nn_rmsnorm *m, nn_params *p, const char *prefix, int64_t dim, double eps) {
    m->w = nn_param_new(p, prefix, "weight", SGT_SHAPE(dim), NN_INIT_ONES, 0, false);
    m->eps = eps;
}

sgt_tensor *nn_rmsnorm_forward(sgt_ctx *c, const nn_rmsnorm *m, sgt_tensor *x) {
    return sgt_rmsnorm(c, x, m->w, m->eps, NULL);
}

/* ---- LayerNorm ---- */

void nn_layernorm_init(nn_layernorm *m, nn_params *p, const char *prefix, int64_t dim, bool bias, double eps) {
    m->w = nn_param_new(p, prefix, "weight", SGT_SHAPE(dim), NN_INIT_ONES, 0, false);
    m->b = bias ? nn_param_new(p, prefix, "bias", SGT_SHAPE(dim), NN_INIT_ZEROS, 0, false) : NULL;
    m->eps = eps;
}

sgt_tensor *nn_layernorm_forward(sgt_ctx *c, const nn_layernorm *m, sgt_tensor *x) {
    char b0[96];
    const int64_t C = m->w->shape[0];
    SGT_CHECK(x->ndim >= 1 && x->shape[x->ndim - 1] == C, "layernorm %s: input %s, expected last dim %lld",
              m->w->name ? m->w->name : "", sgt_shape_str(x, b0, sizeof b0), (long long)C);
    /* the op takes one dtype: a bf16 x normalises with casts of the f32 weights, whose gradients
     * return to them in their own dtype (f64 meets only f64) */
    nn_check_input_dtype("layernorm", m->w, x);
    sgt_tensor *w = m->w->dtype == x->dtype ? m->w : sgt_cast(c, m->w, x->dtype);
    sgt_tensor *b = !m->b ? sgt_zeros(c, x->dtype, 1, &C) : m->b->dtype == x->dtype ? m->b : sgt_cast(c, m->b, x->dtype);
    return sgt_layernorm(c, x, w, b, m->eps, NULL, NULL);
}

/* ---- dropout ---- */

void nn_dropout_init(nn_dropout *m, nn_mode *mode, double p) {
    SGT_CHECK(mode, "dropout: no mode (an nn_mode shared by the model's dropouts)");
    SGT_CHECK(p >= 0 && p < 1, "dropout: probability %g is outside [0, 1)", p);
    m->p = p;
    m->mode = mode;
}

sgt_tensor *nn_dropout_forward(sgt_ctx *c, const nn_dropout *m, sgt_tensor *x) {
    if (!m->mode->train || m->p == 0) return x;
    return sgt_dropout(c, x, m->p, m->mode->seed, m->mode->offset++);
}

/* ---- rotary position embedding ---- */

void nn_rope_init(nn_rope *r, nn_params *p, int64_t D, double base) {
    SGT_CHECK(D > 0 && D % 2 == 0, "rope: the head width %lld must be even", (long long)D);
    SGT_CHECK(base > 1, "rope: base %g must be > 1", base);
    const int64_t half = D / 2;
    double *f = malloc(sizeof(double) * (size_t)half);
    SGT_CHECK(f, "rope: out of host memory");
    for (int64_t i = 0; i < half; i++) f[i] = pow(base, -2.0 * (double)i / (double)D);
    r->inv_freq = sgt_from_f64(&p->ctx, p->dtype == SGT_BF16 ? SGT_F32 : p->dtype, 1, &half, f);
    free(f);
    r->D = D;
    r->base = base;
}

sgt_tensor *nn_rope_forward_at(sgt_ctx *c, const nn_rope *r, sgt_tensor *x, int time_dim, sgt_tensor *pos) {
    char b0[96], b1[96];
    const int64_t D = r->D, half = D / 2;
    SGT_CHECK(sgt_dtype_is_float(x->dtype) && x->ndim >= 2 && x->shape[x->ndim - 1] == D,
              "rope: input %s, expected a float tensor with last dim %lld", sgt_shape_str(x, b0, sizeof b0),
              (long long)D);
    const int td = sgt_dim(x, time_dim, "rope");
    SGT_CHECK(td != x->ndim - 1, "rope: the time axis cannot be the head dim");
    const int64_t T = x->shape[td];
    SGT_CHECK(pos->ndim == 1 && pos->shape[0] == T, "rope: positions %s for %lld time steps of %s",
              sgt_shape_str(pos, b0, sizeof b0), (long long)T, sgt_shape_str(x, b1, sizeof b1));
    const sgt_dtype at = r->inv_freq->dtype;
    sgt_tensor *p = pos->dtype == at ? pos : sgt_cast(c, pos, at);
    /* angles [T, D/2] = pos [T, 1] * inv_freq [1, D/2], shaped to broadcast against x */
    sgt_tensor *ang = sgt_mul(c, sgt_reshape(c, p, SGT_SHAPE(T, 1)), sgt_reshape(c, r->inv_freq, SGT_SHAPE(1, half)));
    int64_t shape[SGT_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = d == td ? T : 1;
    shape[x->ndim - 1] = half;
    ang = sgt_reshape(c, ang, x->ndim, shape);
    sgt_tensor *cs = sgt_cos(c, ang), *sn = sgt_sin(c, ang);
    if (at != x->dtype) {
        cs = sgt_cast(c, cs, x->dtype);
        sn = sgt_cast(c, sn, x->dtype);
    }
    sgt_tensor *x1 = sgt_narrow(c, x, -1, 0, half), *x2 = sgt_narrow(c, x, -1, half, half);
    sgt_tensor *y1 = sgt_sub(c, sgt_mul(c, x1, cs), sgt_mul(c, x2, sn));
    sgt_tensor *y2 = sgt_add(c, sgt_mul(c, x2, cs), sgt_mul(c, x1, sn));
    return sgt_concat(c, 2, (sgt_tensor *[]){y1, y2}, -1);
}

sgt_tensor *nn_rope_forward(sgt_ctx *c, const nn_rope *r, sgt_tensor *x, int time_dim, int64_t start) {
    const int td = sgt_dim(x, time_dim, "rope");
    const int64_t T = x->shape[td];
    double *v = malloc(sizeof(double) * (size_t)(T ? T : 1));
    SGT_CHECK(v, "rope: out of host memory");
    for (int64_t t = 0; t < T; t++) v[t] = (double)(start + t);
    sgt_tensor *pos = sgt_from_f64(c, r->inv_freq->dtype, 1, &T, v);
    free(v);
    return nn_rope_forward_at(c, r, x, time_dim, pos);
}

/* ---- attention ---- */

void nn_kv_cache_init(nn_kv_cache *kv, sgt_ctx *c, sgt_dtype t, int64_t B, int64_t H, int64_t max_len, int64_t D) {
    sgt_tensor *ks = sgt_zeros(c, t, SGT_SHAPE(B, max_len, H, D)), *vs = sgt_zeros(c, t, SGT_SHAPE(B, max_len, H, D));
    kv->k = sgt_permute(c, ks, (int[]){0, 2, 1, 3}); /* [B, H, Tmax, D] */
    kv->v = sgt_permute(c, vs, (int[]){0, 2, 1, 3});
    kv->k_rows = sgt_reshape(c, ks, SGT_SHAPE(B * max_len, H * D));
    kv->v_rows = sgt_reshape(c, vs, SGT_SHAPE(B * max_len, H * D));
    kv->len = 0;
    kv->max_len = max_len;
    kv->pos_dev = kv->len_dev = NULL;
}

void nn_attention_init(nn_attention *m, nn_params *p, const char *prefix, int64_t C, int64_t H, double std,
                       double proj_std) {
    nn_attention_init_opts(m, p, prefix, C, H, NULL, std, proj_std);
}

void nn_attention_init_opts(nn_attention *m, nn_params *p, const char *prefix, int64_t C, int64_t H,
                            const nn_attention_opts *o, double std, double proj_std) {
    static const nn_attention_opts defaults = {0};
    if (!o) o = &defaults;
    SGT_CHECK(H > 0 && C % H == 0, "attention %s: width %lld is not divisible by %lld heads", prefix, (long long)C,
              (long long)H);
    const int64_t Hk = o->n_kv_heads ? o->n_kv_heads : H, D = C / H;
    SGT_CHECK(Hk > 0 && H % Hk == 0, "attention %s: %lld query heads are not a multiple of %lld key/value heads",
              prefix, (long long)H, (long long)Hk);
    SGT_CHECK(!o->rope || o->rope->D == D, "attention %s: a rotary embedding of width %lld for heads of width %lld",
              prefix, (long long)(o->rope ? o->rope->D : 0), (long long)D);
    char buf[NN_NAME_MAX];
    *m = (nn_attention){.C = C, .H = H, .D = D, .Hk = Hk, .causal = !o->not_causal, .rope = o->rope};
    nn_linear_init(&m->qkv, p, nn_join(buf, sizeof buf, prefix, "qkv"), C, (H + 2 * Hk) * D, o->qkv_bias, std);
    nn_linear_init(&m->proj, p, nn_join(buf, sizeof buf, prefix, "proj"), C, C, o->proj_bias, proj_std);
}

/* n heads of width D from columns start .. start + n D of qkv [B, T, *]: a strided [B, n, T, D]
 * view, no copy */
static sgt_tensor *heads_of(sgt_ctx *c, sgt_tensor *qkv, int64_t start, int64_t n, int64_t D) {
    const int64_t B = qkv->shape[0], T = qkv->shape[1];
    sgt_tensor *cols = sgt_reshape(c, sgt_narrow(c, qkv, 2, start, n * D), SGT_SHAPE(B, T, n, D));
    return sgt_permute(c, cols, (int[]){0, 2, 1, 3});
}

/* k or v [B, Hk, T, D] -> [B, Hk g, T, D], each key/value head repeated for the g query heads it
 * serves (a copy; the gradient sums back over the g) */
static sgt_tensor *repeat_kv(sgt_ctx *c, sgt_tensor *x, int64_t g) {
    if (g == 1) return x;
    const int64_t B = x->shape[0], Hk = x->shape[1], T = x->shape[2], D = x->shape[3];
    sgt_tensor *e = sgt_expand(c, sgt_reshape(c, x, SGT_SHAPE(B, Hk, 1, T, D)), SGT_SHAPE(B, Hk, g, T, D));
    return sgt_reshape(c, e, SGT_SHAPE(B, Hk * g, T, D));
}

sgt_tensor *nn_attention_forward(sgt_ctx *c, const nn_attention *m, sgt_tensor *x, nn_kv_cache *kv) {
    const int64_t B = x->shape[0], T = x->shape[1], C = m->C, H = m->H, Hk = m->Hk, D = m->D, g = H / Hk;
    /* with a KV cache this is inference: the projections may take their bf16 copies */
    sgt_tensor *(*lin)(sgt_ctx *, const nn_linear *, sgt_tensor *) = kv ? nn_linear_infer : nn_linear_forward;
    sgt_tensor *qkv = lin(c, &m->qkv, x); /* [B, T, (H + 2 Hk) D] */
    sgt_tensor *q = heads_of(c, qkv, 0, H, D), *k = heads_of(c, qkv, C, Hk, D), *v = heads_of(c, qkv, C + Hk * D, Hk, D);
    const double scale = 1.0 / sqrt((double)D);
    if (kv) {
        SGT_CHECK(kv->k->dtype == x->dtype, "attention: KV cache is %s, activations %s",
                  sgt_dtype_name(kv->k->dtype), sgt_dtype_name(x->dtype));
        SGT_CHECK(kv->k->shape[1] == Hk && kv->k->shape[3] == D,
                  "attention: the KV cache has %lld heads of %lld, the layer %lld key/value heads of %lld",
                  (long long)kv->k->shape[1], (long long)kv->k->shape[3], (long long)Hk, (long long)D);
    }
    if (m->rope) { /* q and k rotated at their positions: 0.., the cache's next ones, or device-held ones */
        if (kv && kv->pos_dev) {
            q = nn_rope_forward_at(c, m->rope, q, 2, kv->pos_dev);
            k = nn_rope_forward_at(c, m->rope, k, 2, kv->pos_dev);
        } else {
            q = nn_rope_forward(c, m->rope, q, 2, kv ? kv->len : 0);
            k = nn_rope_forward(c, m->rope, k, 2, kv ? kv->len : 0);
        }
    }
    if (kv && kv->pos_dev) { /* static shapes: write at the device-held positions, read len keys */
        SGT_CHECK(B == 1 && !m->composed, "attention: the static-shape KV cache needs batch 1 and the fused kernel");
        const int64_t Ck = Hk * D;
        sgt_index_copy_rows(c, kv->k_rows, kv->pos_dev, sgt_reshape(c, sgt_permute(c, k, (int[]){0, 2, 1, 3}), SGT_SHAPE(T, Ck)));
        sgt_index_copy_rows(c, kv->v_rows, kv->pos_dev, sgt_reshape(c, sgt_permute(c, v, (int[]){0, 2, 1, 3}), SGT_SHAPE(T, Ck)));
        sgt_tensor *y = sgt_attention_ex(c, q, repeat_kv(c, kv->k, g), repeat_kv(c, kv->v, g), kv->len_dev, scale,
                                         m->causal, NULL);
        y = sgt_reshape(c, sgt_permute(c, y, (int[]){0, 2, 1, 3}), SGT_SHAPE(B, T, C));
        return lin(c, &m->proj, y);
    }
    if (kv) {
        SGT_CHECK(kv->len + T <= kv->max_len, "attention: KV cache full (%lld + %lld > %lld positions)",
                  (long long)kv->len, (long long)T, (long long)kv->max_len);
        sgt_tensor *kd = sgt_narrow(c, kv->k, 2, kv->len, T), *vd = sgt_narrow(c, kv->v, 2, kv->len, T);
        sgt_copy_into(c, kd, k);
        sgt_copy_into(c, vd, v);
        kv->len += T;
        k = sgt_narrow(c, kv->k, 2, 0, kv->len); /* [B, Hk, Tk, D] */
        v = sgt_narrow(c, kv->v, 2, 0, kv->len);
    }
    k = repeat_kv(c, k, g); /* [B, H, Tk, D] */
    v = repeat_kv(c, v, g);
    sgt_tensor *y;
    if (m->composed) { /* the reference: the [T, Tk] scores in memory */
        sgt_tensor *att = sgt_mul_scalar(c, sgt_matmul(c, q, k, false, true), scale); /* [B, H, T, Tk] */
        att = m->causal ? sgt_softmax_causal(c, att) : sgt_softmax(c, att);
        y = sgt_matmul(c, att, v, false, false);                                      /* [B, H, T, D] */
    } else {
        y = sgt_attention_ex(c, q, k, v, NULL, scale, m->causal, NULL); /* [B, H, T, D] over [B, T, H, D] */
    }
    y = sgt_reshape(c, sgt_permute(c, y, (int[]){0, 2, 1, 3}), SGT_SHAPE(B, T, C));
    return lin(c, &m->proj, y);
}

void nn_attention_prepare_bf16(nn_attention *m, nn_params *p) {
    nn_linear_prepare_bf16(&m->qkv, p);
    nn_linear_prepare_bf16(&m->proj, p);
}

/* ---- SwiGLU ---- */

void nn_swiglu_init(nn_swiglu *m, nn_params *p, const char *prefix, int64_t C, int64_t hidden, double std,
                    double down_std) {
    char buf[NN_NAME_MAX];
    m->C = C;
    m->hidden = hidden;
    nn_linear_init(&m->gate, p, nn_join(buf, sizeof buf, prefix, "gate"), C, hidden, false, std);
    nn_linear_init(&m->up, p, nn_join(buf, sizeof buf, prefix, "up"), C, hidden, false, std);
    nn_linear_init(&m->down, p, nn_join(buf, sizeof buf, prefix, "down"), hidden, C, false, down_std);
}

sgt_tensor *nn_swiglu_hidden_masked(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x, sgt_tensor *mask,
                                    int64_t block_size) {
    sgt_tensor *g = nn_linear_forward(c, &m->gate, x), *u = nn_linear_forward(c, &m->up, x);
    if (mask && mask->dtype != g->dtype) mask = sgt_cast(c, mask, g->dtype);
    return sgt_swiglu(c, g, u, mask, block_size);
}

sgt_tensor *nn_swiglu_hidden(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x) {
    return nn_swiglu_hidden_masked(c, m, x, NULL, 0);
}

sgt_tensor *nn_swiglu_forward(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x) {
    return nn_linear_forward(c, &m->down, nn_swiglu_hidden(c, m, x));
}

sgt_tensor *nn_swiglu_infer(sgt_ctx *c, const nn_swiglu *m, sgt_tensor *x) {
    sgt_tensor *g = nn_linear_infer(c, &m->gate, x), *u = nn_linear_infer(c, &m->up, x);
    return nn_linear_infer(c, &m->down, sgt_swiglu(c, g, u, NULL, 0));
}

void nn_swiglu_prepare_bf16(nn_swiglu *m, nn_params *p) {
    nn_linear_prepare_bf16(&m->gate, p);
    nn_linear_prepare_bf16(&m->up, p);
    nn_linear_prepare_bf16(&m->down, p);
}

/* ---- the GELU MLP ---- */

void nn_mlp_init(nn_mlp *m, nn_params *p, const char *prefix, int64_t in, int64_t hidden, int64_t out, bool bias,
                 nn_gelu_kind gelu, double std, double proj_std) {
    SGT_CHECK(gelu == NN_GELU_TANH || gelu == NN_GELU_EXACT, "mlp %s: unknown GELU kind %d", prefix, (int)gelu);
    char buf[NN_NAME_MAX];
    *m = (nn_mlp){.gelu = gelu, .in = in, .hidden = hidden, .out = out};
    nn_linear_init(&m->fc1, p, nn_join(buf, sizeof buf, prefix, "fc1"), in, hidden, bias, std);
    nn_linear_init(&m->fc2, p, nn_join(buf, sizeof buf, prefix, "fc2"), hidden, out, bias, proj_std);
}

sgt_tensor *nn_gelu(sgt_ctx *c, nn_gelu_kind kind, sgt_tensor *x) {
    return kind == NN_GELU_EXACT ? sgt_gelu_erf(c, x) : sgt_gelu(c, x);
}

sgt_tensor *nn_mlp_forward(sgt_ctx *c, const nn_mlp *m, sgt_tensor *x) {
    return nn_linear_forward(c, &m->fc2, nn_gelu(c, m->gelu, nn_linear_forward(c, &m->fc1, x)));
}

/* ---- losses ---- */

sgt_tensor *nn_cross_entropy(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, int32_t ignore_index) {
    const int64_t V = logits->shape[logits->ndim - 1];
    sgt_tensor *l2 = sgt_reshape(c, logits, SGT_SHAPE(-1, V));
    sgt_tensor *t1 = sgt_reshape(c, targets, SGT_SHAPE(-1));
    return sgt_cross_entropy(c, l2, t1, ignore_index, NULL);
}

sgt_tensor *nn_cross_entropy_nll(sgt_ctx *c, sgt_tensor *logits, sgt_tensor *targets, int64_t valid,
                                 sgt_tensor **token_nll) {
    const int64_t Vp = logits->shape[logits->ndim - 1];
    sgt_tensor *l2 = sgt_reshape(c, logits, SGT_SHAPE(-1, Vp)), *t1 = sgt_reshape(c, targets, SGT_SHAPE(-1)), *lse;
    sgt_tensor *ce = sgt_cross_entropy_padded(c, l2, t1, SGT_NO_IGNORE, valid > 0 ? valid : Vp, token_nll ? &lse : NULL);
    if (token_nll) { /* nll_i = lse_i - logit_i[target_i] */
        sgt_tensor *at = sgt_gather_last(c, l2, sgt_reshape(c, t1, SGT_SHAPE(-1, 1)));
        at = sgt_reshape(c, at->dtype == SGT_F32 ? at : sgt_cast(c, at, SGT_F32), SGT_SHAPE(-1));
        *token_nll = sgt_sub(c, lse->dtype == SGT_F32 ? lse : sgt_cast(c, lse, SGT_F32), at);
    }
    return ce;
}
