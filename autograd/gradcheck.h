/* gradcheck.h: compares the tape's gradients with central finite differences, in float64.
 *
 * fn builds an output from the inputs (all f64, contiguous, on the CPU). A non-scalar output is
 * reduced to the scalar L = sum(out * R) with a fixed random R, so every output element matters.
 * Per element: pass if |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|).
 * Also a whole-graph check along one random direction v: (L(x+hv) - L(x-hv)) / 2h vs <grad, v>.
 * Inputs should be drawn away from kinks (relu at 0, top-k ties); see the tests. */
#ifndef SGT_GRADCHECK_H
#define SGT_GRADCHECK_H

#include "tape.h"

typedef sgt_tensor *(*ag_fn)(sgt_ctx *c, sgt_tensor **inputs, int n, void *user);

typedef struct {
    double eps;        /* finite-difference step (default 1e-6) */
    double rtol, atol; /* defaults 1e-5, 1e-7 */
    int max_elems;     /* per input; a seeded sample beyond it (default 64) */
    uint64_t seed;
} ag_gradcheck_opts;

typedef struct {
    bool pass;
    int checked;                  /* elements compared */
    double max_rel_err;           /* max |a-n| / max(|a|, |n|, atol) */
    int worst_input;
    int64_t worst_index;
    double worst_analytic, worst_numeric;
    double dir_analytic, dir_numeric, dir_rel_err; /* the directional check */
    char report[256];             /* one line, for failure messages */
} ag_gradcheck_result;

/* diff[i] false: input i is not differentiated (e.g. indices); NULL: every float input is. */
ag_gradcheck_result ag_gradcheck(sgt_ctx *c, ag_fn fn, void *user, sgt_tensor **inputs, int n, const bool *diff,
                                 const ag_gradcheck_opts *opts);

#endif
