/* custom.h (autograd): the backward of ops defined outside the library (tensor/custom.h), as
 * PyTorch's autograd.Function. An ag_custom_op is a forward definition plus a backward; ag_custom
 * runs it through the dispatch point, the tape records it like any op, and backward() calls the
 * user's backward, whose results are accumulated (+=) into the inputs' gradients. So a custom op
 * composes with every other op and passes ag_gradcheck like them.
 *
 * The backward receives the op's inputs, outputs and output gradients (dout[j] is zeros where no
 * gradient reached output j; outputs that are not float carry none) and the call's user pointer,
 * and sets din[i] to the gradient of input i (input i's shape and dtype) or leaves it NULL (no
 * gradient, e.g. for indices). It runs without recording (inside backward), building its results
 * from the library's ops or from another custom op (a backward kernel: see
 * tests/autograd/test_custom_op.c and examples/custom_op.c), in the context's per-step arena. */
#ifndef SGT_AUTOGRAD_CUSTOM_H
#define SGT_AUTOGRAD_CUSTOM_H

#include "../tensor/custom.h"
#include "tape.h"

typedef void (*ag_custom_backward)(sgt_ctx *c, int nin, sgt_tensor *const *in, int nout, sgt_tensor *const *out,
                                   sgt_tensor *const *dout, void *user, sgt_tensor **din);

typedef struct ag_custom_op {
    sgt_custom_op fwd;             /* name, kernels, shape rule (tensor/custom.h) */
    ag_custom_backward backward;   /* NULL: not differentiable (recording it fails, naming the op) */
} ag_custom_op;

/* Runs op on in[0..nin), records it on the context's tape when an input requires grad, returns
 * output 0; out (may be NULL) receives all op->fwd.nout outputs. user: see tensor/custom.h. */
sgt_tensor *ag_custom(sgt_ctx *c, const ag_custom_op *op, int nin, sgt_tensor *const *in, void *user,
                      sgt_tensor **out);

#endif
