/* tape.c: recording, scopes, gradient buffers and the backward walk (see tape.h). */
#include "tape.h"

#include "custom.h"

#include <string.h>

static ag_meta *meta_of(const sgt_tensor *x) { return (ag_meta *)x->ext; }

bool ag_requires_grad(const sgt_tensor *x) { return x->ext && meta_of(x)->requires_grad; }

sgt_tensor *ag_grad(const sgt_tensor *x) { return x->ext ? meta_of(x)->grad : NULL; }

static ag_meta *new_meta(sgt_arena *a) {
    ag_meta *m = sgt_arena_alloc_host(a, sizeof *m); /* host memory even for a device arena */
    memset(m, 0, sizeof *m);
    m->requires_grad = true;
    return m;
}

void ag_param(sgt_arena *persistent, sgt_tensor *x) {
    SGT_CHECK(sgt_dtype_is_float(x->dtype), "ag_param: parameter %s must be a float tensor", x->name ? x->name : "");
    SGT_CHECK(sgt_is_contiguous(x), "ag_param: parameter %s must be contiguous", x->name ? x->name : "");
    ag_meta *m = new_meta(persistent);
    sgt_ctx pc = {.arena = persistent, .device = persistent->device};
    m->grad = sgt_zeros(&pc, x->dtype, x->ndim, x->shape);
    x->ext = m;
}

void ag_set_requires_grad(sgt_ctx *c, sgt_tensor *x) {
    SGT_CHECK(sgt_dtype_is_float(x->dtype), "requires_grad on a %s tensor: only float tensors have gradients",
              sgt_dtype_name(x->dtype));
    x->ext = new_meta(c->arena);
}

void ag_zero_grad(sgt_ctx *c, sgt_tensor *x) {
    if (ag_grad(x)) sgt_fill(c, ag_grad(x), 0.0);
}

sgt_tensor *ag_detach(sgt_ctx *c, sgt_tensor *x) { return sgt_alias(c, x); }

/* ---- recording ---- */

static void observe(void *user, const sgt_opcall *call) {
    ag_tape *t = user;
    if (t->no_grad) return;
    bool any = false;
    for (int i = 0; i < call->nsrc; i++) any |= ag_requires_grad(call->src[i]);
    if (!any) return;
    const ag_rule *r = &ag_rules[call->op];
    const char *name = sgt_opcall_name(call);
    for (int i = 0; i < call->ndst; i++) {
        bool is_src = false;
        for (int j = 0; j < call->nsrc; j++) is_src |= call->src[j] == call->dst[i];
        SGT_CHECK(!ag_requires_grad(call->dst[i]) && !is_src,
                  "op '%s' writes in place into a tensor that autograd tracks; use a no-grad scope or a new tensor",
                  name);
    }
    if (r->kind == AG_NONDIFF) return;
    SGT_CHECK(r->kind != AG_MISSING, "op '%s' has no backward rule", name);
    SGT_CHECK(r->kind != AG_UNSUPPORTED,
              "op '%s' is a backward kernel; differentiating through it (second-order gradients) is not supported",
              name);
    if (call->op == SGT_OP_CUSTOM) {
        const ag_custom_op *op = call->custom_ext;
        SGT_CHECK(op && op->backward,
                  "custom op '%s' has no backward: define it with ag_custom_op.backward and call ag_custom, or run it "
                  "in a no-grad scope",
                  name);
    }
    SGT_CHECK(!t->backward_done, "op '%s' recorded after backward(): reset the tape first", name);
    ag_node *n = sgt_arena_alloc_host(t->ctx->arena, sizeof *n);
    n->call = *call;
    n->prev = t->last;
    t->last = n;
    t->nnodes++;
    uint8_t diff = r->diff_out ? r->diff_out : 1;
    for (int i = 0; i < call->ndst; i++)
        if ((diff & (1u << i)) && sgt_dtype_is_float(call->dst[i]->dtype)) call->dst[i]->ext = new_meta(t->ctx->arena);
}

void ag_tape_init(ag_tape *t, sgt_ctx *c) {
    memset(t, 0, sizeof *t);
    t->ctx = c;
    c->observer = observe;
    c->observer_user = t;
}

void ag_tape_detach(ag_tape *t) {
    if (t->ctx && t->ctx->observer_user == t) {
        t->ctx->observer = NULL;
        t->ctx->observer_user = NULL;
    }
}

void ag_tape_reset(ag_tape *t) {
    t->last = NULL;
    t->nnodes = 0;
    t->backward_done = false;
}

void ag_step_end(ag_tape *t) {
    ag_tape_reset(t);
    sgt_arena_reset(t->ctx->arena);
}

void ag_no_grad_begin(ag_tape *t) { t->no_grad++; }

void ag_no_grad_end(ag_tape *t) {
    SGT_CHECK(t->no_grad > 0, "ag_no_grad_end without a matching begin");
    t->no_grad--;
}

/* ---- gradients ---- */

sgt_tensor *ag_grad_buffer(sgt_ctx *c, sgt_tensor *x) {
    ag_meta *m = meta_of(x);
    if (!m->grad) m->grad = sgt_zeros(c, x->dtype, x->ndim, x->shape);
    return m->grad;
}

void ag_accum(sgt_ctx *c, sgt_tensor *x, sgt_tensor *g) {
    if (!ag_requires_grad(x)) return;
    char b0[96], b1[96];
    SGT_CHECK(sgt_same_shape(x, g), "gradient %s does not match its tensor %s", sgt_shape_str(g, b0, sizeof b0),
              sgt_shape_str(x, b1, sizeof b1));
    ag_meta *m = meta_of(x);
    if (!m->grad) m->grad = sgt_copy(c, g); /* a fresh buffer: never alias a gradient */
    else sgt_add_into(c, m->grad, g);
}

void ag_accum_owned(sgt_ctx *c, sgt_tensor *x, sgt_tensor *g) {
    if (!ag_requires_grad(x)) return;
    ag_meta *m = meta_of(x);
    if (!m->grad && sgt_same_shape(x, g) && sgt_is_contiguous(g) && g->dtype == x->dtype && g->device == x->device) {
        m->grad = g; /* no copy: the logits' gradient alone is 200 MB for the tiny preset */
        return;
    }
    ag_accum(c, x, g);
}

void ag_backward(ag_tape *t, sgt_tensor *loss) {
    char b[96];
    SGT_CHECK(sgt_numel(loss) == 1, "backward() needs a scalar loss, got %s", sgt_shape_str(loss, b, sizeof b));
    SGT_CHECK(ag_requires_grad(loss), "backward(): the loss does not depend on anything that requires grad");
    SGT_CHECK(!t->backward_done, "backward() called twice without resetting the tape (gradients would double)");
    t->backward_done = true;
    sgt_ctx *c = t->ctx;
    t->no_grad++;
    ag_accum(c, loss, sgt_full(c, loss->dtype, loss->ndim, loss->shape, 1.0));
    for (ag_node *n = t->last; n; n = n->prev) {
        sgt_tensor *dout[SGT_MAX_DST] = {0};
        bool any = false;
        for (int i = 0; i < n->call.ndst; i++) {
            dout[i] = ag_grad(n->call.dst[i]);
            any |= dout[i] != NULL;
        }
        if (any) ag_rules[n->call.op].fn(c, &n->call, dout);
    }
    t->no_grad--;
}
