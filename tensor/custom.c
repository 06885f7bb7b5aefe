/* custom.c: custom ops (custom.h): the constructor, and the CPU backend's kernel of the custom
 * family, which hands the call to the op's own CPU kernel (the CUDA one is in cuda/backend.cu). */
#include "custom.h"

#include "cpu/cpu.h"
#include "ops.h"
#ifdef SGT_HAVE_CUDA
#include "cuda/backend.h"
#endif

sgt_tensor *sgt_custom_ext(sgt_ctx *c, const sgt_custom_op *op, int nin, sgt_tensor *const *in, void *user,
                           const void *ext, sgt_tensor **out) {
    SGT_CHECK(op && op->name, "custom op: the definition (or its name) is NULL");
    const char *name = op->name;
    const int nout = op->nout ? op->nout : 1;
    SGT_CHECK(nin >= 0 && nin <= SGT_MAX_SRC, "custom op '%s': %d inputs, at most %d", name, nin, SGT_MAX_SRC);
    SGT_CHECK(nout >= 1 && nout <= SGT_MAX_DST, "custom op '%s': %d outputs, 1 to %d", name, nout, SGT_MAX_DST);
    SGT_CHECK(op->cpu || op->cuda, "custom op '%s' has no kernel", name);
    SGT_CHECK(nin > 0 || op->shape, "custom op '%s': without inputs it needs a shape rule", name);
    sgt_opcall call = {.op = SGT_OP_CUSTOM, .nsrc = nin, .ndst = nout, .custom = op, .custom_user = user,
                       .custom_ext = ext};
    for (int i = 0; i < nin; i++) {
        SGT_CHECK(in[i], "custom op '%s': input %d is NULL", name, i);
        call.src[i] = sgt_contiguous(c, in[i]);
    }
    sgt_tensor_spec spec[SGT_MAX_DST] = {0};
    for (int j = 0; j < nout; j++)
        if (nin > 0) {
            spec[j].dtype = in[0]->dtype;
            spec[j].ndim = in[0]->ndim;
            for (int d = 0; d < in[0]->ndim; d++) spec[j].shape[d] = in[0]->shape[d];
        }
    if (op->shape) op->shape(nin, call.src, nout, spec, user);
    for (int j = 0; j < nout; j++) {
        SGT_CHECK(spec[j].ndim >= 0 && spec[j].ndim <= SGT_MAX_DIMS, "custom op '%s': output %d has rank %d (0..%d)",
                  name, j, spec[j].ndim, SGT_MAX_DIMS);
        SGT_CHECK((unsigned)spec[j].dtype < SGT_NDTYPE, "custom op '%s': output %d has no valid dtype",
                  name, j);
        for (int d = 0; d < spec[j].ndim; d++)
            SGT_CHECK(spec[j].shape[d] >= 0, "custom op '%s': output %d has size %lld in dim %d", name, j,
                      (long long)spec[j].shape[d], d);
        call.dst[j] = sgt_empty(c, spec[j].dtype, spec[j].ndim, spec[j].shape);
        if (out) out[j] = call.dst[j];
    }
    sgt_dispatch(c, &call);
    return call.dst[0];
}

sgt_tensor *sgt_custom(sgt_ctx *c, const sgt_custom_op *op, int nin, sgt_tensor *const *in, void *user,
                       sgt_tensor **out) {
    return sgt_custom_ext(c, op, nin, in, user, NULL, out);
}

void sgt_cpu_custom(const sgt_opcall *call) {
    const sgt_custom_op *op = call->custom;
    SGT_CHECK(op->cpu, "custom op '%s' has no CPU kernel", op->name);
    op->cpu(call->nsrc, call->src, call->ndst, call->dst, call->custom_user);
}

void *sgt_custom_cuda_stream(void) {
#ifdef SGT_HAVE_CUDA
    return sgt_cuda_stream_handle();
#else
    return NULL;
#endif
}
