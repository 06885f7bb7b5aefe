/* tape.h: tape-based reverse-mode autograd over the tensor ops.
 *
 * The tape observes every op dispatched on its context (sgt_ctx.observer). An op with an input
 * that requires grad is recorded, in execution order, with its whole sgt_opcall (inputs, outputs,
 * params), which doubles as the saved tensors: they live in the per-step arena until the reset.
 * backward(loss) walks the tape in reverse and calls each op's rule (rules.c), which accumulates
 * (+=) into the gradients of the op's inputs.
 *
 * Lifetimes: parameters get their gradient buffer in persistent memory (ag_param); everything else
 * (tape nodes, intermediate gradients) comes from the context's arena and is dropped by
 * ag_tape_reset + sgt_arena_reset. Gradients accumulate across backward calls of different steps
 * (micro-batches); zeroing is explicit (ag_zero_grad). */
#ifndef SGT_TAPE_H
#define SGT_TAPE_H

#include "../tensor/ops.h"

typedef struct ag_meta {
    sgt_tensor *grad;      /* same shape and dtype as the tensor, contiguous; NULL until needed */
    bool requires_grad;
} ag_meta;

typedef struct ag_node {
    sgt_opcall call;
    struct ag_node *prev;
} ag_node;

typedef struct ag_tape {
    sgt_ctx *ctx;
    ag_node *last;
    int64_t nnodes;
    int no_grad;           /* depth of no-grad scopes; >0 records nothing */
    bool backward_done;    /* a second backward before reset is an error */
} ag_tape;

/* Attaches a tape to a context: from now on its ops are recorded. */
void ag_tape_init(ag_tape *t, sgt_ctx *c);
void ag_tape_detach(ag_tape *t);
/* Forgets the recorded ops. Call it together with sgt_arena_reset of the context's arena. */
void ag_tape_reset(ag_tape *t);
/* Both at once: the end of a training step. */
void ag_step_end(ag_tape *t);

/* No-grad scopes nest. */
void ag_no_grad_begin(ag_tape *t);
void ag_no_grad_end(ag_tape *t);

/* A persistent parameter: requires grad, gradient buffer (zeroed) in `persistent`. */
void ag_param(sgt_arena *persistent, sgt_tensor *x);
/* Marks any tensor (e.g. a gradcheck input) as requiring grad; meta in ctx's arena. */
void ag_set_requires_grad(sgt_ctx *c, sgt_tensor *x);
bool ag_requires_grad(const sgt_tensor *x);
sgt_tensor *ag_grad(const sgt_tensor *x);
void ag_zero_grad(sgt_ctx *c, sgt_tensor *x);
/* The same bytes, cut off from the graph (stop-gradient). */
sgt_tensor *ag_detach(sgt_ctx *c, sgt_tensor *x);

/* Backpropagates from a scalar (1-element) loss. */
void ag_backward(ag_tape *t, sgt_tensor *loss);

/* For backward rules: grad += g (g has x's shape), and the zero-initialised buffer itself.
 * ag_accum copies g when it starts x's gradient. ag_accum_owned may adopt g instead (when it is
 * contiguous): use it only when g belongs to x alone, i.e. a fresh result of the rule, or (a view
 * of) the gradient of the op's output, which no rule reads after this one. */
void ag_accum(sgt_ctx *c, sgt_tensor *x, sgt_tensor *g);
void ag_accum_owned(sgt_ctx *c, sgt_tensor *x, sgt_tensor *g);
sgt_tensor *ag_grad_buffer(sgt_ctx *c, sgt_tensor *x);

/* ---- the rule table (rules.c), indexed by sgt_op ---- */
typedef void (*ag_rule_fn)(sgt_ctx *c, const sgt_opcall *call, sgt_tensor *const *dout);
typedef enum {
    AG_MISSING = 0,     /* no entry: recording it fails (a table hole is a bug) */
    AG_DIFF,            /* rule propagates to inputs */
    AG_NONDIFF,         /* outputs never require grad (comparisons, argmax, fills) */
    AG_UNSUPPORTED,     /* backward-only kernels: using them on grad-requiring inputs is an error */
} ag_rule_kind;
typedef struct {
    ag_rule_kind kind;
    ag_rule_fn fn;
    uint8_t diff_out;  /* bitmask of outputs that carry gradient (default: output 0) */
} ag_rule;
extern const ag_rule ag_rules[SGT_NOPS];

#endif
