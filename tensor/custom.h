/* custom.h: ops defined outside the library (as ggml_map_custom, or the forward half of PyTorch's
 * autograd.Function). A custom op is a static definition: a name, its kernels (CPU, and
 * optionally CUDA) and a shape rule. A call goes through the one dispatch point like any op
 * (SGT_OP_CUSTOM in op_list.h), so it runs on its inputs' device, is seen by the observer (the
 * tape) and can be recorded in a CUDA graph. Its backward, if any, is autograd's business:
 * autograd/custom.h (ag_custom_op) pairs a definition with one.
 *
 * What a kernel sees:
 *   - inputs made contiguous (a strided input is copied first, a recorded copy), outputs freshly
 *     allocated and contiguous, all on one device; sgt_ptr(t) is the first element's address;
 *   - f32 for every bf16 operand: the dispatch point casts bf16 to f32 temporaries around the
 *     kernel and rounds the results back, so a kernel handles f32 and f64 (and i32 if it takes
 *     indices);
 *   - user: the pointer given to the call (per call, not per definition), kept until the tape is
 *     reset so that the backward sees it too: it must live that long.
 * A CUDA kernel launches on the library's stream (sgt_custom_cuda_stream) and returns without
 * synchronising; it may not allocate device memory (ask for an extra output as scratch). */
#ifndef SGT_CUSTOM_H
#define SGT_CUSTOM_H

#include "tensor.h"

/* out[0..nout) <- f(in[0..nin)) */
typedef void (*sgt_custom_kernel)(int nin, sgt_tensor *const *in, int nout, sgt_tensor *const *out, void *user);

/* an output's dtype and shape */
typedef struct {
    sgt_dtype dtype;
    int ndim;
    int64_t shape[SGT_MAX_DIMS];
} sgt_tensor_spec;

/* The shape rule: fills out[0..nout), which arrive set to input 0's dtype and shape; it may
 * check its inputs and fail (SGT_FAIL, naming the op). NULL: every output like input 0. */
typedef void (*sgt_custom_shape_fn)(int nin, sgt_tensor *const *in, int nout, sgt_tensor_spec *out, void *user);

typedef struct sgt_custom_op {
    const char *name;          /* in every message about the op */
    int nout;                  /* outputs, 1..SGT_MAX_DST (0 means 1) */
    sgt_custom_shape_fn shape; /* NULL: outputs like input 0 */
    sgt_custom_kernel cpu;     /* NULL: a CPU call fails naming the op */
    sgt_custom_kernel cuda;    /* NULL: a CUDA call fails naming the op */
} sgt_custom_op;

/* Runs op on in[0..nin) (at most SGT_MAX_SRC, all on one device; nin may be 0 when the shape
 * rule says what to make) and returns output 0; out (may be NULL) receives all op->nout.
 * No backward: with a tape attached and an input that requires grad this is an error (use
 * ag_custom). ext is for the layer above (autograd passes its op); pass NULL. */
sgt_tensor *sgt_custom(sgt_ctx *c, const sgt_custom_op *op, int nin, sgt_tensor *const *in, void *user,
                       sgt_tensor **out);
sgt_tensor *sgt_custom_ext(sgt_ctx *c, const sgt_custom_op *op, int nin, sgt_tensor *const *in, void *user,
                           const void *ext, sgt_tensor **out);

/* The CUDA backend's stream (a cudaStream_t) for a custom op's CUDA kernel; NULL in a build
 * without the backend. */
void *sgt_custom_cuda_stream(void);

#endif
