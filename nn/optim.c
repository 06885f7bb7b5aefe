/* optim.c: AdamW over the parameter store, parameter groups and gradient-norm clipping (see optim.h). */
#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* the first group whose prefix starts name, or -1 */
static int first_match(const nn_param_group *groups, int n, const char *name) {
    for (int g = 0; g < n; g++)
        if (strncmp(name, groups[g].prefix, strlen(groups[g].prefix)) == 0) return g;
    return -1;
}

void nn_group_table_init(nn_group_table *t, const nn_params *p, const nn_param_group *groups, int n, const char *who) {
    /* every check before any allocation: a caught error leaks nothing */
    SGT_CHECK(n >= 0 && (n == 0 || groups), "%s: %d parameter groups but no array", who, n);
    for (int g = 0; g < n; g++)
        SGT_CHECK(groups[g].prefix, "%s: parameter group %d has no prefix (use \"\" for every parameter)", who, g);
    for (int g = 0; g < n; g++) {
        bool used = false;
        for (int i = 0; i < p->n && !used; i++) used = first_match(groups, n, p->items[i].name) == g;
        SGT_CHECK(used, "%s: parameter group %d (prefix '%s') matches no parameter (none left by the earlier groups)",
                  who, g, groups[g].prefix);
    }
    memset(t, 0, sizeof *t);
    t->n = n;
    t->groups = calloc((size_t)(n ? n : 1), sizeof *t->groups);
    t->of = calloc((size_t)(p->n ? p->n : 1), sizeof *t->of);
    SGT_CHECK(t->groups && t->of, "out of host memory for the %s parameter groups", who);
    for (int g = 0; g < n; g++) {
        t->groups[g] = groups[g];
        t->groups[g].prefix = strdup(groups[g].prefix);
        SGT_CHECK(t->groups[g].prefix, "out of host memory for the %s parameter groups", who);
    }
    for (int i = 0; i < p->n; i++) t->of[i] = first_match(groups, n, p->items[i].name);
}

sgt_tensor **nn_state_like_params(nn_params *p, bool alloc, const char *what) {
    sgt_tensor **s = calloc((size_t)(p->n ? p->n : 1), sizeof *s);
    SGT_CHECK(s, "out of host memory creating the optimizer's %s", what);
    for (int i = 0; alloc && i < p->n; i++) {
        const sgt_tensor *t = p->items[i].t;
        s[i] = sgt_zeros(&p->ctx, t->dtype, t->ndim, t->shape);
    }
    return s;
}

void nn_group_table_free(nn_group_table *t) {
    for (int g = 0; g < t->n; g++) free((char *)t->groups[g].prefix);
    free(t->groups);
    free(t->of);
    memset(t, 0, sizeof *t);
}

double nn_group_lr_scale(const nn_group_table *t, int i) {
    return t->of[i] >= 0 ? t->groups[t->of[i]].lr_scale : 1.0;
}

double nn_group_weight_decay(const nn_group_table *t, const nn_params *p, int i, double default_wd) {
    if (!p->items[i].decay) return 0.0;
    return t->of[i] >= 0 ? t->groups[t->of[i]].weight_decay : default_wd;
}

nn_adamw *nn_adamw_create(nn_params *p, double beta1, double beta2, double eps, double weight_decay) {
    return nn_adamw_create_groups(p, beta1, beta2, eps, weight_decay, NULL, 0);
}

nn_adamw *nn_adamw_create_groups(nn_params *p, double beta1, double beta2, double eps, double weight_decay,
                                 const nn_param_group *groups, int ngroups) {
    SGT_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "adamw: betas (%g, %g) must lie in [0, 1)", beta1,
              beta2);
    SGT_CHECK(eps > 0, "adamw: eps %g must be positive", eps);
    nn_group_table gt;
    nn_group_table_init(&gt, p, groups, ngroups, "adamw");
    nn_adamw *o = calloc(1, sizeof *o);
    SGT_CHECK(o, "out of host memory creating the optimizer");
    o->groups = gt;
    o->params = p;
    o->n = p->n;
    o->beta1 = beta1;
    o->beta2 = beta2;
    o->eps = eps;
    o->weight_decay = weight_decay;
    o->m = nn_state_like_params(p, true, "first moments");
    o->v = nn_state_like_params(p, true, "second moments");
    return o;
}

void nn_adamw_destroy(nn_adamw *o) {
    if (!o) return;
    /* the moments' bytes belong to the store's arena */
    free(o->m);
    free(o->v);
    nn_group_table_free(&o->groups);
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
        double wd = nn_group_weight_decay(&o->groups, p, i, o->weight_decay);
        double lri = lr * nn_group_lr_scale(&o->groups, i);
        sgt_adamw_update(&p->ctx, e->t, g, o->m[i], o->v[i], lri, o->beta1, o->beta2, o->eps, wd, bc1, bc2);
    }
}

/* A copy of the caller's context that records nothing: gradients are not part of any graph, and
 * an observer must not see (or refuse) our in-place writes. */
sgt_ctx nn_quiet_ctx(const sgt_ctx *c) {
    sgt_ctx q = *c;
    q.observer = NULL;
    q.observer_user = NULL;
    return q;
}

double nn_grad_norm(nn_params *p, sgt_ctx *scratch) {
    sgt_ctx c = nn_quiet_ctx(scratch);
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
    sgt_ctx c = nn_quiet_ctx(scratch);
    for (int i = 0; i < p->n; i++) {
        sgt_tensor *g = ag_grad(p->items[i].t);
        if (!g || sgt_numel(g) == 0) continue;
        sgt_arena_mark m = sgt_arena_get_mark(c.arena);
        sgt_copy_into(&c, g, sgt_mul_scalar(&c, g, s));
        sgt_arena_rewind(c.arena, m);
    }
    return norm;
}
