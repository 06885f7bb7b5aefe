/* sgd.c: SGD with momentum (optionally Nesterov) and coupled L2 weight decay, as torch.optim.SGD
 * with dampening 0, over the parameter store, from the existing elementwise ops (see optim.h). */
#include "optim.h"

#include <stdlib.h>

nn_sgd *nn_sgd_create(nn_params *p, double momentum, bool nesterov, double weight_decay,
                      const nn_param_group *groups, int ngroups) {
    SGT_CHECK(momentum >= 0, "sgd: momentum %g must not be negative", momentum);
    SGT_CHECK(!nesterov || momentum > 0, "sgd: nesterov needs a positive momentum");
    nn_group_table gt;
    nn_group_table_init(&gt, p, groups, ngroups, "sgd");
    nn_sgd *o = calloc(1, sizeof *o);
    SGT_CHECK(o, "out of host memory creating the optimizer");
    o->groups = gt;
    o->params = p;
    o->n = p->n;
    o->momentum = momentum;
    o->nesterov = nesterov;
    o->weight_decay = weight_decay;
    o->buf = nn_state_like_params(p, momentum > 0, "momentum buffers");
    return o;
}

void nn_sgd_destroy(nn_sgd *o) {
    if (!o) return;
    /* the buffers' bytes belong to the store's arena */
    nn_group_table_free(&o->groups);
    free(o->buf);
    free(o);
}

void nn_sgd_step(nn_sgd *o, double lr) {
    nn_params *p = o->params;
    SGT_CHECK(p->n == o->n, "sgd: the store has %d parameters but the optimizer was created for %d; "
              "register every parameter before nn_sgd_create", p->n, o->n);
    o->step++;
    sgt_ctx c = nn_quiet_ctx(&p->ctx);
    const double mu = o->momentum;
    for (int i = 0; i < p->n; i++) {
        nn_param *e = &p->items[i];
        sgt_tensor *g = ag_grad(e->t);
        SGT_CHECK(g, "sgd: parameter '%s' has no gradient buffer", e->name);
        const double wd = nn_group_weight_decay(&o->groups, p, i, o->weight_decay);
        const double lri = lr * nn_group_lr_scale(&o->groups, i);
        /* temporaries: at most a few tensors of this parameter's size, rewound at once */
        sgt_arena_mark m = sgt_arena_get_mark(c.arena);
        sgt_tensor *d = wd != 0 ? sgt_add(&c, g, sgt_mul_scalar(&c, e->t, wd)) : g; /* g + wd p */
        if (mu > 0) {
            sgt_tensor *b = o->buf[i];
            sgt_copy_into(&c, b, sgt_add(&c, sgt_mul_scalar(&c, b, mu), d)); /* buf = mu buf + g */
            d = o->nesterov ? sgt_add(&c, d, sgt_mul_scalar(&c, b, mu)) : b;
        }
        sgt_add_into(&c, e->t, sgt_mul_scalar(&c, d, -lri)); /* p -= lr d */
        sgt_arena_rewind(c.arena, m);
    }
}
