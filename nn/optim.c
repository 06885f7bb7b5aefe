/* optim.c: AdamW over the parameter store, gradient-norm clipping and the LR schedule (see optim.h). */
#include "optim.h"

#include <math.h>
#include <stdlib.h>

nn_adamw *nn_adamw_create(nn_params *p, double beta1, double beta2, double eps, double weight_decay) {
    SGT_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "adamw: betas (%g, %g) must lie in [0, 1)", beta1,
              beta2);
    SGT_CHECK(eps > 0, "adamw: eps %g must be positive", eps);
    nn_adamw *o = calloc(1, sizeof *o);
    SGT_CHECK(o, "out of host memory creating the optimizer");
    o->params = p;
    o->n = p->n;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    size_t n = (size_t)(p->n ? p->n : 1);
    o->m = calloc(n, sizeof *o->m);
    o->v = calloc(n, sizeof *o->v);
    SGT_CHECK(o->m && o->v, "out of host memory creating the optimizer's moment lists");
    for (int i = 0; i < p->n; i++) {
        const sgt_tensor *t = p->items[i].t;
        o->m[i] = sgt_zeros(&p->ctx, t->dtype, t->ndim, t->shape);
        o->v[i] = sgt_zeros(&p->ctx, t->dtype, t->ndim, t->shape);
    }
    return o;
}

void nn_adamw_destroy(nn_adamw *o) {
    if (!o) return;
    /* the moments' bytes belong to the store's arena */
    free(o->m);
    free(o->v);
    free(o);
}

void nn_adamw_step(nn_adamw *o, double lr) {
    nn_params *p = o->params;
    SGT_CHECK(p->n == o->n, "adamw: the store has %d parameters but the optimizer was created for %d; "
              "register every parameter before nn_adamw_create", p->n, o->n);
    o->step++;
    const double bc1 = 1.0 - pow(o->beta1, (double)o->step);
    const double bc2 = 1.0 - pow(o->beta2, (double)o->step);
    for (int i = 0; i < p->n; i++) {
        nn_param *e = &p->items[i];
        sgt_tensor *g = ag_grad(e->t);
        SGT_CHECK(g, "adamw: parameter '%s' has no gradient buffer", e->name);
        double wd = e->decay ? o->weight_decay : 0.0;
        sgt_adamw_update(&p->ctx, e->t, g, o->m[i], o->v[i], lr, o->beta1, o->beta2, o->eps, wd, bc1, bc2);
    }
}

/* A copy of the caller's context that records nothing: gradients are not part of any graph, and
 * an observer must not see (or refuse) our in-place writes. */
static sgt_ctx quiet(const sgt_ctx *c) {
    sgt_ctx q = *c;
    q.observer = NULL;
    q.observer_user = NULL;
    return q;
}

double nn_grad_norm(nn_params *p, sgt_ctx *scratch) {
    sgt_ctx c = quiet(scratch);
    sgt_arena_mark start = sgt_arena_get_mark(c.arena);
    /* one f64 accumulator on the gradients' device; each tensor's sum of squares is added to it
     * and its temporaries released, so scratch holds at most one tensor's worth at a time */
    sgt_tensor *acc = sgt_scalar(&c, SGT_F64, 0.0);
    for (int i = 0; i < p->n; i++) {
        sgt_tensor *g = ag_grad(p->items[i].t);
        if (!g || sgt_numel(g) == 0) continue;
        sgt_arena_mark m = sgt_arena_get_mark(c.arena);
        sgt_tensor *g64 = g->dtype == SGT_F64 ? g : sgt_cast(&c, g, SGT_F64);
        sgt_add_into(&c, acc, sgt_sum(&c, sgt_mul(&c, g64, g64), SGT_ALL_DIMS, false));
        sgt_arena_rewind(c.arena, m);
    }
    double ss = sgt_item(acc); /* a host copy of the one value (waits for a device) */
    sgt_arena_rewind(c.arena, start);
    return sqrt(ss);
}

double nn_clip_grad_norm(nn_params *p, sgt_ctx *scratch, double max_norm) {
    double norm = nn_grad_norm(p, scratch);
    if (!isfinite(norm) || max_norm <= 0 || !(norm > max_norm)) return norm;
    const double s = max_norm / norm;
    sgt_ctx c = quiet(scratch);
    for (int i = 0; i < p->n; i++) {
        sgt_tensor *g = ag_grad(p->items[i].t);
        if (!g || sgt_numel(g) == 0) continue;
        sgt_arena_mark m = sgt_arena_get_mark(c.arena);
        sgt_copy_into(&c, g, sgt_mul_scalar(&c, g, s));
        sgt_arena_rewind(c.arena, m);
    }
    return norm;
}

double nn_lr_at(const nn_lr_schedule *s, int64_t step) {
    if (step < 0) step = 0;
    if (step < s->warmup) return s->max_lr * (double)(step + 1) / (double)s->warmup;
    if (step >= s->total) return s->min_lr;
    const double progress = (double)(step - s->warmup) / (double)(s->total - s->warmup);
    return s->min_lr + (s->max_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * progress));
}
