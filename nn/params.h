/* params.h: the parameter store. Every module registers its parameters here under a
 * hierarchical name ("layers.3.ffn.router.fc1.weight"); the optimizer, gradient clipping and
 * checkpoints iterate over this one list. Parameters, their gradients and optimizer state live in
 * the store's persistent arena.
 *
 * Initialisation is GPT-2 style and order-independent: a parameter's values come from the seeded
 * counter-based RNG with a stream derived from its name, so adding a module does not shift the
 * initial values of the others. */
#ifndef SGT_NN_PARAMS_H
#define SGT_NN_PARAMS_H

#include "../autograd/tape.h"

#define NN_NAME_MAX 96

typedef enum { NN_INIT_NORMAL, NN_INIT_ZEROS, NN_INIT_ONES } nn_init_kind;

typedef struct {
    char name[NN_NAME_MAX];
    sgt_tensor *t;       /* the value; ag_grad(t) is its gradient */
    bool decay;          /* AdamW applies weight decay (off for norms, biases, embeddings) */
} nn_param;

typedef struct nn_params {
    sgt_arena *arena;    /* persistent: values, gradients, optimizer state */
    sgt_ctx ctx;         /* allocates in `arena` */
    nn_param *items;
    int n, cap;
    uint64_t seed;
    sgt_dtype dtype;
    bool skip_init;      /* leave values zero (they are about to be loaded, or only counted) */
} nn_params;

nn_params *nn_params_create(uint64_t seed, sgt_dtype dtype, sgt_device dev);
void nn_params_destroy(nn_params *p);

/* Creates, initialises and registers a parameter "prefix.name" (prefix may be "" or NULL). */
sgt_tensor *nn_param_new(nn_params *p, const char *prefix, const char *name, int ndim, const int64_t *shape,
                         nn_init_kind init, double std, bool decay);
/* Looks a parameter up by full name; NULL if absent. */
nn_param *nn_params_find(nn_params *p, const char *name);
int64_t nn_params_count(const nn_params *p);                   /* total elements */
int64_t nn_params_count_matching(const nn_params *p, const char *substr);
void nn_params_zero_grad(nn_params *p);

/* "prefix.name" into buf (no leading dot when prefix is empty) */
const char *nn_join(char *buf, size_t n, const char *prefix, const char *name);

#endif
