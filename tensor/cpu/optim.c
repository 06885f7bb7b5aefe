/* optim.c: the CPU AdamW update kernel (decoupled weight decay), in place over contiguous
 * parameter, gradient and moment tensors. */
#include <math.h>

#include "cpu.h"

#define ADAMW(T, F)                                                                               \
    static void adamw_##T(const sgt_opcall *call) {                                               \
        T *p = sgt_ptr(call->src[0]), *m = sgt_ptr(call->src[2]), *v = sgt_ptr(call->src[3]);     \
        const T *g = sgt_ptr(call->src[1]);                                                       \
        const T lr = (T)call->fp[0], b1 = (T)call->fp[1], b2 = (T)call->fp[2], eps = (T)call->fp[3];    \
        /* 1 - b in double: in f32 it would cancel (1 - 0.999f is off by 1e-5 relative) */           \
        const T c1 = (T)(1.0 - call->fp[1]), c2 = (T)(1.0 - call->fp[2]);                            \
        const T wd = (T)call->fp[4], bc1 = (T)call->fp[5], bc2 = (T)call->fp[6];                  \
        const int64_t n = sgt_numel(call->src[0]);                                                \
        _Pragma("omp parallel for schedule(static) if (n >= SGT_OMP_MIN)")                       \
        for (int64_t i = 0; i < n; i++) {                                                         \
            T mi = b1 * m[i] + c1 * g[i];                                                               \
            T vi = b2 * v[i] + c2 * g[i] * g[i];                                                        \
            m[i] = mi;                                                                            \
            v[i] = vi;                                                                            \
            p[i] -= lr * ((mi / bc1) / (sqrt##F(vi / bc2) + eps) + wd * p[i]);                    \
        }                                                                                         \
    }
ADAMW(float, f)
ADAMW(double, )

void sgt_cpu_adamw(const sgt_opcall *call) {
    if (call->src[0]->dtype == SGT_F32) adamw_float(call);
    else adamw_double(call);
}
