/* elementwise.cu: CUDA kernels for copies, casts, fills, the RNG, binary and unary math, their
 * backward, comparison and selection: the counterparts of cpu/elementwise.c, with the same
 * formulas in the same order and the same precision (f32 math in f32, f64 in f64), over the
 * strided iterator (iter.cuh), so views, broadcasts and in-place destinations work without copies.
 *
 * With --fmad=false, + - * / and sqrt round exactly as on the CPU, so copies, fills, casts, the
 * RNG, arithmetic, comparisons and selection agree bit for bit; exp, log, tanh, pow, erfc, sin
 * and cos come from CUDA's libm, which differs from the CPU's (glibc, and cpu/vmath.h for f32 exp
 * and tanh) in the last bits.
 *
 * bf16 (the storage type of mixed precision) is native here, so that the dispatch point does not
 * promote it (tensor.c): copies move its 16 bits; casts go through bf16.h, to bf16 through f32
 * ((float)value, then round to nearest even), the CPU's rule, so casts agree bit for bit; fills
 * store the rounded value; and the binary, unary, unary-backward, comparison and selection
 * kernels load bf16 operands into f32, compute with the f32 formula and round once on store.
 * That is exactly what promotion computes (f32 kernel on the upcast operands, one rounding of the
 * result), minus the temporaries: arithmetic agrees with the CPU bit for bit, exp/log/tanh/pow to
 * one bf16 ulp. Those kernels take any mix of f32 and bf16 operands (mixed precision may meet an
 * f32 tensor with a bf16 one); bf16 with f64 is refused. The f32 and f64 paths are unchanged. */
#include <math.h>

#include "../bf16.h"
#include "../rng.h"
#include "iter.cuh"

/* ---- bf16 ---- */

/* bf16 as a distinct type for the cast templates (its 16 bits, see bf16.h) */
struct bf16_t {
    uint16_t bits;
};

/* The operands of the f32-math kernels: bit k of `bf` set when operand k is bf16, clear when f32.
 * The branch is the same for every thread, so it costs next to nothing in these memory-bound
 * kernels. */
template <int NOP> __device__ __forceinline__ float ld_f32(const sgt_cuda_iter<NOP> &it, unsigned bf, int k, int64_t off) {
    return (bf >> k) & 1u ? sgt_bf16_to_f32(sgt_cuda_at<uint16_t>(it, k, off)) : sgt_cuda_at<float>(it, k, off);
}

template <int NOP>
__device__ __forceinline__ void st_f32(const sgt_cuda_iter<NOP> &it, unsigned bf, int k, int64_t off, float v) {
    if ((bf >> k) & 1u) sgt_cuda_at<uint16_t>(it, k, off) = sgt_f32_to_bf16(v);
    else sgt_cuda_at<float>(it, k, off) = v;
}

/* host: the bf16 mask of ops[0..n) (ops[0] the output); 0 when none is bf16 (the f32/f64 kernels
 * take the call). With any bf16 operand, the others must be f32 or bf16. */
static unsigned bf16_mask(sgt_tensor *const *ops, int n, const char *op) {
    unsigned m = 0;
    for (int k = 0; k < n; k++)
        if (ops[k]->dtype == SGT_BF16) m |= 1u << k;
    if (!m) return 0;
    for (int k = 0; k < n; k++)
        SGT_CHECK(ops[k]->dtype == SGT_BF16 || ops[k]->dtype == SGT_F32,
                  "%s: operand %d is %s: the CUDA kernel takes bf16 only with f32 or bf16 operands", op, k,
                  sgt_dtype_name(ops[k]->dtype));
    return m;
}

/* ---- copy and cast ---- */

/* E: an unsigned integer as wide as the element, so any dtype copies as bits */
template <typename E> __global__ void k_copy(sgt_cuda_iter<2> it) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[2];
        sgt_cuda_iter_offsets(it, i, off);
        sgt_cuda_at<E>(it, 0, off[0]) = sgt_cuda_at<E>(it, 1, off[1]);
    }
}

void sgt_cuda_copy(const sgt_opcall *call) {
    sgt_tensor *ops[2] = {call->dst[0], call->src[0]};
    sgt_cuda_iter<2> it = sgt_cuda_iter_init<2>(ops);
    if (!it.n) return;
    const unsigned g = sgt_cuda_blocks(it.n);
    cudaStream_t s = sgt_cuda_stream();
    switch (sgt_dtype_size(call->dst[0]->dtype)) {
    case 2: k_copy<uint16_t><<<g, SGT_CUDA_THREADS, 0, s>>>(it); break;
    case 4: k_copy<uint32_t><<<g, SGT_CUDA_THREADS, 0, s>>>(it); break;
    case 8: k_copy<uint64_t><<<g, SGT_CUDA_THREADS, 0, s>>>(it); break;
    default: SGT_FAIL("copy: no CUDA kernel for %s", sgt_dtype_name(call->dst[0]->dtype));
    }
    CUDA_LAUNCH_CHECK("k_copy");
}

/* through double, as the CPU's load_as_double does; bf16 widens exactly to f32 (so to double), and
 * narrows from double through f32: (float)v, then round to nearest even, as the CPU's row_cast */
template <typename T> __device__ __forceinline__ double cast_in(T v) { return (double)v; }
__device__ __forceinline__ double cast_in(bf16_t v) { return (double)sgt_bf16_to_f32(v.bits); }
template <typename T> struct cast_out {
    __device__ static T from(double v) { return (T)v; }
};
template <> struct cast_out<bf16_t> {
    __device__ static bf16_t from(double v) { return bf16_t{sgt_f32_to_bf16((float)v)}; }
};

template <typename TO, typename FROM> __global__ void k_cast(sgt_cuda_iter<2> it) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[2];
        sgt_cuda_iter_offsets(it, i, off);
        sgt_cuda_at<TO>(it, 0, off[0]) = cast_out<TO>::from(cast_in(sgt_cuda_at<FROM>(it, 1, off[1])));
    }
}

template <typename TO> static void launch_cast(const sgt_cuda_iter<2> &it, sgt_dtype from) {
    const unsigned g = sgt_cuda_blocks(it.n);
    cudaStream_t s = sgt_cuda_stream();
    switch (from) {
    case SGT_F32: k_cast<TO, float><<<g, SGT_CUDA_THREADS, 0, s>>>(it); break;
    case SGT_F64: k_cast<TO, double><<<g, SGT_CUDA_THREADS, 0, s>>>(it); break;
    case SGT_BF16: k_cast<TO, bf16_t><<<g, SGT_CUDA_THREADS, 0, s>>>(it); break;
    default: k_cast<TO, int32_t><<<g, SGT_CUDA_THREADS, 0, s>>>(it); break;
    }
    CUDA_LAUNCH_CHECK("k_cast");
}

void sgt_cuda_cast(const sgt_opcall *call) {
    const sgt_dtype to = call->dst[0]->dtype, from = call->src[0]->dtype;
    sgt_tensor *ops[2] = {call->dst[0], call->src[0]};
    sgt_cuda_iter<2> it = sgt_cuda_iter_init<2>(ops);
    if (!it.n) return;
    switch (to) {
    case SGT_F32: launch_cast<float>(it, from); break;
    case SGT_F64: launch_cast<double>(it, from); break;
    case SGT_BF16: launch_cast<bf16_t>(it, from); break;
    default: launch_cast<int32_t>(it, from); break;
    }
}

/* ---- fill and RNG ---- */

template <typename T> __global__ void k_fill(sgt_cuda_iter<1> it, T v) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[1];
        sgt_cuda_iter_offsets(it, i, off);
        sgt_cuda_at<T>(it, 0, off[0]) = v;
    }
}

void sgt_cuda_fill(const sgt_opcall *call) {
    sgt_tensor *y = call->dst[0];
    sgt_cuda_iter<1> it = sgt_cuda_iter_init<1>(call->dst);
    if (!it.n) return;
    const double v = call->fp[0];
    const unsigned g = sgt_cuda_blocks(it.n);
    cudaStream_t s = sgt_cuda_stream();
    switch (y->dtype) {
    case SGT_F32: k_fill<float><<<g, SGT_CUDA_THREADS, 0, s>>>(it, (float)v); break;
    case SGT_F64: k_fill<double><<<g, SGT_CUDA_THREADS, 0, s>>>(it, v); break;
    case SGT_I32: k_fill<int32_t><<<g, SGT_CUDA_THREADS, 0, s>>>(it, (int32_t)v); break;
    /* the f32 fill's value, rounded once: what promotion would store */
    case SGT_BF16: k_fill<uint16_t><<<g, SGT_CUDA_THREADS, 0, s>>>(it, sgt_f32_to_bf16((float)v)); break;
    default: SGT_FAIL("fill: no CUDA kernel for %s", sgt_dtype_name(y->dtype));
    }
    CUDA_LAUNCH_CHECK("k_fill");
}

/* Element i of a fill is a function of (seed, stream, i) only (rng.h); the arithmetic below is
 * cpu/elementwise.c's rng_fill, operation for operation, so the streams agree bit for bit. */
template <typename T, bool NORMAL>
__global__ void k_rng(T *y, int64_t n, uint64_t seed, uint64_t stream, double a, double b) {
    SGT_CUDA_FOR_EACH(i, n) {
        double v;
        if (NORMAL) v = a + b * sgt_rng_normal_at((uint64_t)i, stream, seed);
        else if (sizeof(T) == 4) v = a + (b - a) * (double)sgt_rng_uniform_f32_at((uint64_t)i, stream, seed);
        else v = a + (b - a) * sgt_rng_uniform_at((uint64_t)i, stream, seed);
        if (sizeof(T) == 4) {
            float fv = (float)v;
            /* rounding to f32 may reach hi: uniform draws stay in [lo, hi) */
            if (!NORMAL && fv >= (float)b && b > a) fv = nextafterf((float)b, -INFINITY);
            y[i] = (T)fv;
        } else {
            if (!NORMAL && v >= b && b > a) v = nextafter(b, (double)-INFINITY);
            y[i] = (T)v;
        }
    }
}

template <bool NORMAL> static void rng_fill(const sgt_opcall *call) {
    sgt_tensor *y = call->dst[0];
    SGT_CHECK(sgt_is_contiguous(y), "rng: destination must be contiguous");
    const int64_t n = sgt_numel(y);
    if (!n) return;
    const uint64_t seed = (uint64_t)call->ip[0], stream = (uint64_t)call->ip[1];
    const unsigned g = sgt_cuda_blocks(n);
    cudaStream_t s = sgt_cuda_stream();
    if (y->dtype == SGT_F32)
        k_rng<float, NORMAL><<<g, SGT_CUDA_THREADS, 0, s>>>((float *)sgt_ptr(y), n, seed, stream, call->fp[0], call->fp[1]);
    else
        k_rng<double, NORMAL><<<g, SGT_CUDA_THREADS, 0, s>>>((double *)sgt_ptr(y), n, seed, stream, call->fp[0],
                                                              call->fp[1]);
    CUDA_LAUNCH_CHECK("k_rng");
}

void sgt_cuda_rng_uniform(const sgt_opcall *call) { rng_fill<false>(call); }
void sgt_cuda_rng_normal(const sgt_opcall *call) { rng_fill<true>(call); }

/* dropout: cpu/elementwise.c's rule (rng.h's integer decision, one multiply), so bit for bit */
template <typename T>
__global__ void k_dropout(T *y, const T *x, int64_t n, uint64_t seed, uint64_t stream, uint32_t thr, T scale) {
    SGT_CUDA_FOR_EACH(i, n) y[i] = sgt_rng_keep_at((uint64_t)i, stream, seed, thr) ? x[i] * scale : (T)0;
}

void sgt_cuda_dropout(const sgt_opcall *call) {
    sgt_tensor *y = call->dst[0], *x = call->src[0];
    SGT_CHECK(sgt_is_contiguous(y) && sgt_is_contiguous(x), "dropout: operands must be contiguous");
    const int64_t n = sgt_numel(y);
    if (!n) return;
    const uint64_t seed = (uint64_t)call->ip[0], stream = (uint64_t)call->ip[1];
    const uint32_t thr = (uint32_t)call->ip[2];
    const unsigned g = sgt_cuda_blocks(n);
    cudaStream_t s = sgt_cuda_stream();
    if (y->dtype == SGT_F32)
        k_dropout<float><<<g, SGT_CUDA_THREADS, 0, s>>>((float *)sgt_ptr(y), (const float *)sgt_ptr(x), n, seed, stream,
                                                        thr, (float)call->fp[0]);
    else
        k_dropout<double><<<g, SGT_CUDA_THREADS, 0, s>>>((double *)sgt_ptr(y), (const double *)sgt_ptr(x), n, seed,
                                                         stream, thr, call->fp[0]);
    CUDA_LAUNCH_CHECK("k_dropout");
}

/* ---- binary and comparison ---- */

enum { B_ADD, B_SUB, B_MUL, B_DIV, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE };

template <typename T, int OP> __device__ __forceinline__ T binary_op(T a, T b) {
    switch (OP) {
    case B_ADD: return a + b;
    case B_SUB: return a - b;
    case B_MUL: return a * b;
    case B_DIV: return a / b;
    case B_EQ: return (T)(a == b);
    case B_NE: return (T)(a != b);
    case B_LT: return (T)(a < b);
    case B_LE: return (T)(a <= b);
    case B_GT: return (T)(a > b);
    default: return (T)(a >= b);
    }
}

template <typename T, int OP> __global__ void k_binary(sgt_cuda_iter<3> it) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[3];
        sgt_cuda_iter_offsets(it, i, off);
        sgt_cuda_at<T>(it, 0, off[0]) = binary_op<T, OP>(sgt_cuda_at<T>(it, 1, off[1]), sgt_cuda_at<T>(it, 2, off[2]));
    }
}

/* bf16 operands: the f32 op on the widened values, one rounding on store (in place works too:
 * each thread reads its element before it writes it) */
template <int OP> __global__ void k_binary_bf16(sgt_cuda_iter<3> it, unsigned bf) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[3];
        sgt_cuda_iter_offsets(it, i, off);
        st_f32(it, bf, 0, off[0], binary_op<float, OP>(ld_f32(it, bf, 1, off[1]), ld_f32(it, bf, 2, off[2])));
    }
}

template <typename T, int OP> static void launch_binary(const sgt_cuda_iter<3> &it) {
    k_binary<T, OP><<<sgt_cuda_blocks(it.n), SGT_CUDA_THREADS, 0, sgt_cuda_stream()>>>(it);
    CUDA_LAUNCH_CHECK("k_binary");
}

template <int OP> static void run_binary(const sgt_opcall *call) {
    sgt_tensor *ops[3] = {call->dst[0], call->src[0], call->src[1]};
    const unsigned bf = bf16_mask(ops, 3, sgt_ops[call->op].name);
    sgt_cuda_iter<3> it = sgt_cuda_iter_init<3>(ops);
    if (!it.n) return;
    if (bf) {
        k_binary_bf16<OP><<<sgt_cuda_blocks(it.n), SGT_CUDA_THREADS, 0, sgt_cuda_stream()>>>(it, bf);
        CUDA_LAUNCH_CHECK("k_binary_bf16");
    } else if (call->dst[0]->dtype == SGT_F32) {
        launch_binary<float, OP>(it);
    } else {
        launch_binary<double, OP>(it);
    }
}

void sgt_cuda_binary(const sgt_opcall *call) {
    switch (call->op) {
    case SGT_OP_ADD: run_binary<B_ADD>(call); break;
    case SGT_OP_SUB: run_binary<B_SUB>(call); break;
    case SGT_OP_MUL: run_binary<B_MUL>(call); break;
    case SGT_OP_DIV: run_binary<B_DIV>(call); break;
    default: SGT_FAIL("binary kernel: unexpected op '%s'", sgt_ops[call->op].name);
    }
}

void sgt_cuda_cmp(const sgt_opcall *call) {
    switch ((int)call->ip[0]) {
    case SGT_CMP_EQ: run_binary<B_EQ>(call); break;
    case SGT_CMP_NE: run_binary<B_NE>(call); break;
    case SGT_CMP_LT: run_binary<B_LT>(call); break;
    case SGT_CMP_LE: run_binary<B_LE>(call); break;
    case SGT_CMP_GT: run_binary<B_GT>(call); break;
    case SGT_CMP_GE: run_binary<B_GE>(call); break;
    default: SGT_FAIL("cmp: bad kind %d", (int)call->ip[0]);
    }
}

/* ---- unary and its backward (the CPU's formulas, term for term) ---- */

#define GELU_K 0.7978845608028654 /* sqrt(2/pi) */
#define GELU_C 0.044715
#define SQRT1_2 0.70710678118654752440     /* 1/sqrt(2), exact GELU's erfc argument */
#define INV_SQRT_2PI 0.39894228040143267794 /* 1/sqrt(2 pi), the normal density's factor */

template <typename T> __device__ __forceinline__ T unary_op(int op, T x, T s) {
    switch (op) {
    case SGT_OP_ADD_SCALAR: return x + s;
    case SGT_OP_MUL_SCALAR: return x * s;
    case SGT_OP_POW_SCALAR: return s == (T)2 ? x * x : sgt_pow(x, s);
    case SGT_OP_NEG: return -x;
    case SGT_OP_EXP: return sgt_exp(x);
    case SGT_OP_LOG: return sgt_log(x);
    case SGT_OP_SQRT: return sgt_sqrt(x);
    case SGT_OP_RSQRT: return (T)1 / sgt_sqrt(x);
    case SGT_OP_TANH: return sgt_tanh(x);
    case SGT_OP_SIGMOID: return (T)1 / ((T)1 + sgt_exp(-x));
    case SGT_OP_SILU: return x / ((T)1 + sgt_exp(-x));
    case SGT_OP_GELU: return (T)0.5 * x * ((T)1 + sgt_tanh((T)GELU_K * (x + (T)GELU_C * x * x * x)));
    case SGT_OP_GELU_ERF: return (T)0.5 * x * sgt_erfc(-x * (T)SQRT1_2);
    case SGT_OP_SIN: return sgt_sin(x);
    case SGT_OP_COS: return sgt_cos(x);
    case SGT_OP_RELU: return x > 0 ? x : (T)0;
    default: return (T)NAN;
    }
}

/* dy * f'(x), with y = f(x) at hand */
template <typename T> __device__ __forceinline__ T unary_bwd_op(int op, T x, T y, T dy, T s) {
    switch (op) {
    case SGT_OP_ADD_SCALAR: return dy;
    case SGT_OP_MUL_SCALAR: return dy * s;
    case SGT_OP_POW_SCALAR: return dy * s * sgt_pow(x, s - (T)1);
    case SGT_OP_NEG: return -dy;
    case SGT_OP_EXP: return dy * y;
    case SGT_OP_LOG: return dy / x;
    case SGT_OP_SQRT: return dy * (T)0.5 / y;
    case SGT_OP_RSQRT: return dy * (T)-0.5 * y * y * y;
    case SGT_OP_TANH: return dy * ((T)1 - y * y);
    case SGT_OP_SIGMOID: return dy * y * ((T)1 - y);
    case SGT_OP_SILU: {
        T sg = (T)1 / ((T)1 + sgt_exp(-x));
        return dy * sg * ((T)1 + x * ((T)1 - sg));
    }
    case SGT_OP_GELU: {
        T t = sgt_tanh((T)GELU_K * (x + (T)GELU_C * x * x * x));
        T du = (T)GELU_K * ((T)1 + (T)(3 * GELU_C) * x * x);
        return dy * ((T)0.5 * ((T)1 + t) + (T)0.5 * x * ((T)1 - t * t) * du);
    }
    case SGT_OP_GELU_ERF: /* Phi(x) + x phi(x) */
        return dy * ((T)0.5 * sgt_erfc(-x * (T)SQRT1_2) + x * (T)INV_SQRT_2PI * sgt_exp((T)-0.5 * x * x));
    case SGT_OP_SIN: return dy * sgt_cos(x);
    case SGT_OP_COS: return -dy * sgt_sin(x);
    case SGT_OP_RELU: return x > 0 ? dy : (T)0;
    default: return (T)NAN;
    }
}

template <typename T> __global__ void k_unary(sgt_cuda_iter<2> it, int op, T s) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[2];
        sgt_cuda_iter_offsets(it, i, off);
        sgt_cuda_at<T>(it, 0, off[0]) = unary_op<T>(op, sgt_cuda_at<T>(it, 1, off[1]), s);
    }
}

template <typename T> __global__ void k_unary_bwd(sgt_cuda_iter<4> it, int op, T s) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[4];
        sgt_cuda_iter_offsets(it, i, off);
        sgt_cuda_at<T>(it, 0, off[0]) = unary_bwd_op<T>(op, sgt_cuda_at<T>(it, 1, off[1]), sgt_cuda_at<T>(it, 2, off[2]),
                                                        sgt_cuda_at<T>(it, 3, off[3]), s);
    }
}

/* bf16 operands: the f32 formulas (unary_op<float>, unary_bwd_op<float>), one rounding on store */
__global__ void k_unary_bf16(sgt_cuda_iter<2> it, unsigned bf, int op, float s) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[2];
        sgt_cuda_iter_offsets(it, i, off);
        st_f32(it, bf, 0, off[0], unary_op<float>(op, ld_f32(it, bf, 1, off[1]), s));
    }
}

__global__ void k_unary_bwd_bf16(sgt_cuda_iter<4> it, unsigned bf, int op, float s) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[4];
        sgt_cuda_iter_offsets(it, i, off);
        st_f32(it, bf, 0, off[0],
               unary_bwd_op<float>(op, ld_f32(it, bf, 1, off[1]), ld_f32(it, bf, 2, off[2]), ld_f32(it, bf, 3, off[3]), s));
    }
}

void sgt_cuda_unary(const sgt_opcall *call) {
    sgt_tensor *ops[2] = {call->dst[0], call->src[0]};
    const unsigned bf = bf16_mask(ops, 2, sgt_ops[call->op].name);
    sgt_cuda_iter<2> it = sgt_cuda_iter_init<2>(ops);
    if (!it.n) return;
    const unsigned g = sgt_cuda_blocks(it.n);
    cudaStream_t s = sgt_cuda_stream();
    if (bf) {
        k_unary_bf16<<<g, SGT_CUDA_THREADS, 0, s>>>(it, bf, (int)call->op, (float)call->fp[0]);
        CUDA_LAUNCH_CHECK("k_unary_bf16");
        return;
    }
    if (call->dst[0]->dtype == SGT_F32) k_unary<float><<<g, SGT_CUDA_THREADS, 0, s>>>(it, (int)call->op, (float)call->fp[0]);
    else k_unary<double><<<g, SGT_CUDA_THREADS, 0, s>>>(it, (int)call->op, call->fp[0]);
    CUDA_LAUNCH_CHECK("k_unary");
}

void sgt_cuda_unary_bwd(const sgt_opcall *call) {
    sgt_tensor *ops[4] = {call->dst[0], call->src[0], call->src[1], call->src[2]};
    const unsigned bf = bf16_mask(ops, 4, "unary_bwd");
    sgt_cuda_iter<4> it = sgt_cuda_iter_init<4>(ops);
    if (!it.n) return;
    const unsigned g = sgt_cuda_blocks(it.n);
    cudaStream_t s = sgt_cuda_stream();
    const int op = (int)call->ip[0];
    if (bf) {
        k_unary_bwd_bf16<<<g, SGT_CUDA_THREADS, 0, s>>>(it, bf, op, (float)call->fp[0]);
        CUDA_LAUNCH_CHECK("k_unary_bwd_bf16");
        return;
    }
    if (call->dst[0]->dtype == SGT_F32) k_unary_bwd<float><<<g, SGT_CUDA_THREADS, 0, s>>>(it, op, (float)call->fp[0]);
    else k_unary_bwd<double><<<g, SGT_CUDA_THREADS, 0, s>>>(it, op, call->fp[0]);
    CUDA_LAUNCH_CHECK("k_unary_bwd");
}

/* ---- where and masked_fill ---- */

template <typename T> __global__ void k_where(sgt_cuda_iter<4> it) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[4];
        sgt_cuda_iter_offsets(it, i, off);
        sgt_cuda_at<T>(it, 0, off[0]) =
            sgt_cuda_at<T>(it, 1, off[1]) != 0 ? sgt_cuda_at<T>(it, 2, off[2]) : sgt_cuda_at<T>(it, 3, off[3]);
    }
}

template <typename T> __global__ void k_masked_fill(sgt_cuda_iter<3> it, T v) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[3];
        sgt_cuda_iter_offsets(it, i, off);
        sgt_cuda_at<T>(it, 0, off[0]) = sgt_cuda_at<T>(it, 2, off[2]) != 0 ? v : sgt_cuda_at<T>(it, 1, off[1]);
    }
}

/* bf16: through f32 like the others (a selected bf16 value comes back unchanged, a NaN quiet) */
__global__ void k_where_bf16(sgt_cuda_iter<4> it, unsigned bf) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[4];
        sgt_cuda_iter_offsets(it, i, off);
        st_f32(it, bf, 0, off[0], ld_f32(it, bf, 1, off[1]) != 0 ? ld_f32(it, bf, 2, off[2]) : ld_f32(it, bf, 3, off[3]));
    }
}

__global__ void k_masked_fill_bf16(sgt_cuda_iter<3> it, unsigned bf, float v) {
    SGT_CUDA_FOR_EACH(i, it.n) {
        int64_t off[3];
        sgt_cuda_iter_offsets(it, i, off);
        st_f32(it, bf, 0, off[0], ld_f32(it, bf, 2, off[2]) != 0 ? v : ld_f32(it, bf, 1, off[1]));
    }
}

void sgt_cuda_where(const sgt_opcall *call) {
    sgt_tensor *ops[4] = {call->dst[0], call->src[0], call->src[1], call->src[2]};
    const unsigned bf = bf16_mask(ops, 4, "where");
    sgt_cuda_iter<4> it = sgt_cuda_iter_init<4>(ops);
    if (!it.n) return;
    const unsigned g = sgt_cuda_blocks(it.n);
    cudaStream_t s = sgt_cuda_stream();
    if (bf) {
        k_where_bf16<<<g, SGT_CUDA_THREADS, 0, s>>>(it, bf);
        CUDA_LAUNCH_CHECK("k_where_bf16");
        return;
    }
    if (call->dst[0]->dtype == SGT_F32) k_where<float><<<g, SGT_CUDA_THREADS, 0, s>>>(it);
    else k_where<double><<<g, SGT_CUDA_THREADS, 0, s>>>(it);
    CUDA_LAUNCH_CHECK("k_where");
}

void sgt_cuda_masked_fill(const sgt_opcall *call) {
    sgt_tensor *ops[3] = {call->dst[0], call->src[0], call->src[1]};
    const unsigned bf = bf16_mask(ops, 3, "masked_fill");
    sgt_cuda_iter<3> it = sgt_cuda_iter_init<3>(ops);
    if (!it.n) return;
    const unsigned g = sgt_cuda_blocks(it.n);
    cudaStream_t s = sgt_cuda_stream();
    if (bf) {
        k_masked_fill_bf16<<<g, SGT_CUDA_THREADS, 0, s>>>(it, bf, (float)call->fp[0]);
        CUDA_LAUNCH_CHECK("k_masked_fill_bf16");
        return;
    }
    if (call->dst[0]->dtype == SGT_F32) k_masked_fill<float><<<g, SGT_CUDA_THREADS, 0, s>>>(it, (float)call->fp[0]);
    else k_masked_fill<double><<<g, SGT_CUDA_THREADS, 0, s>>>(it, call->fp[0]);
    CUDA_LAUNCH_CHECK("k_masked_fill");
}
