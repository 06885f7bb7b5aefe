/* custom.c: ag_custom (custom.h): a custom op's forward, with its backward in the call for the
 * tape (rules.c's custom_bwd runs it). */
#include "custom.h"

sgt_tensor *ag_custom(sgt_ctx *c, const ag_custom_op *op, int nin, sgt_tensor *const *in, void *user,
                      sgt_tensor **out) {
    SGT_CHECK(op, "ag_custom: the op definition is NULL");
    return sgt_custom_ext(c, &op->fwd, nin, in, user, op, out);
}
