/* params.c: the parameter store (see params.h). */
#include "params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

nn_params *nn_params_create(uint64_t seed, sgt_dtype dtype, sgt_device dev) {
    nn_params *p = calloc(1, sizeof *p);
    SGT_CHECK(p, "out of host memory creating the parameter store");
    p->arena = sgt_arena_create("parameters", dev, 0, 0);
    p->arena->min_chunk = 64u << 20;
    p->ctx.arena = p->arena;
    p->ctx.device = dev;
    p->seed = seed;
    p->dtype = dtype;
    return p;
}

void nn_params_destroy(nn_params *p) {
    if (!p) return;
    sgt_arena_destroy(p->arena);
    free(p->items);
    free(p);
}

const char *nn_join(char *buf, size_t n, const char *prefix, const char *name) {
    if (prefix && *prefix) snprintf(buf, n, "%s.%s", prefix, name);
    else snprintf(buf, n, "%s", name);
    return buf;
}

/* FNV-1a of the name: the parameter's RNG stream */
static uint64_t name_stream(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

sgt_tensor *nn_param_new(nn_params *p, const char *prefix, const char *name, int ndim, const int64_t *shape,
                         nn_init_kind init, double std, bool decay) {
    char full[NN_NAME_MAX];
    nn_join(full, sizeof full, prefix, name);
    SGT_CHECK(strlen(full) + 1 < NN_NAME_MAX, "parameter name '%s' is too long", full);
    SGT_CHECK(!nn_params_find(p, full), "parameter '%s' registered twice", full);
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->items = realloc(p->items, sizeof *p->items * (size_t)p->cap);
        SGT_CHECK(p->items, "out of host memory growing the parameter list");
    }
    sgt_tensor *t = sgt_empty(&p->ctx, p->dtype, ndim, shape);
    if (p->skip_init) init = NN_INIT_ZEROS;
    switch (init) {
    case NN_INIT_NORMAL: sgt_rng_normal(&p->ctx, t, p->seed, name_stream(full), 0.0, std); break;
    case NN_INIT_ZEROS: sgt_fill(&p->ctx, t, 0.0); break;
    case NN_INIT_ONES: sgt_fill(&p->ctx, t, 1.0); break;
    }
    nn_param *e = &p->items[p->n++];
    snprintf(e->name, sizeof e->name, "%s", full);
    e->t = t;
    e->decay = decay;
    char *stable = sgt_arena_alloc_host(p->arena, strlen(full) + 1); /* items[] may move; the arena does not */
    memcpy(stable, full, strlen(full) + 1);
    t->name = stable;
    ag_param(p->arena, t);
    return t;
}

nn_param *nn_params_find(nn_params *p, const char *name) {
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->items[i].name, name)) return &p->items[i];
    return NULL;
}

int64_t nn_params_count(const nn_params *p) { return nn_params_count_matching(p, ""); }

int64_t nn_params_count_matching(const nn_params *p, const char *substr) {
    int64_t n = 0;
    for (int i = 0; i < p->n; i++)
        if (strstr(p->items[i].name, substr)) n += sgt_numel(p->items[i].t);
    return n;
}

void nn_params_zero_grad(nn_params *p) {
    for (int i = 0; i < p->n; i++) ag_zero_grad(&p->ctx, p->items[i].t);
}
