/* optim.cu: the CUDA AdamW update (decoupled weight decay), in place over contiguous parameter,
 * gradient and moment tensors: cpu/optim.c's arithmetic, in the parameter's precision. */
#include "cuda.h"

/* c1 = 1 - b1 and c2 = 1 - b2, computed in double on the host as the CPU does (in f32 they cancel) */
template <typename T>
__global__ void k_adamw(T *p, const T *g, T *m, T *v, int64_t n, T lr, T b1, T b2, T eps, T wd, T bc1, T bc2, T c1,
                        T c2) {
    SGT_CUDA_FOR_EACH(i, n) {
        T mi = b1 * m[i] + c1 * g[i];
        T vi = b2 * v[i] + c2 * g[i] * g[i];
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * ((mi / bc1) / (sgt_sqrt(vi / bc2) + eps) + wd * p[i]);
    }
}

template <typename T> static void adamw_typed(const sgt_opcall *call) {
    const int64_t n = sgt_numel(call->src[0]);
    if (!n) return;
    const double *f = call->fp;
    k_adamw<T><<<sgt_cuda_blocks(n), SGT_CUDA_THREADS, 0, sgt_cuda_stream()>>>(
        (T *)sgt_ptr(call->src[0]), (const T *)sgt_ptr(call->src[1]), (T *)sgt_ptr(call->src[2]),
        (T *)sgt_ptr(call->src[3]), n, (T)f[0], (T)f[1], (T)f[2], (T)f[3], (T)f[4], (T)f[5], (T)f[6],
        (T)(1.0 - f[1]), (T)(1.0 - f[2]));
    CUDA_LAUNCH_CHECK("k_adamw");
}

void sgt_cuda_adamw(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) adamw_typed<float>(call);
    else adamw_typed<double>(call);
}
