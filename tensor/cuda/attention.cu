/* attention.cu: CUDA kernels of fused causal attention (flash-style) and its backward, the
 * counterparts of cpu/attention.c (the oracle). Nothing of size Tq x Tk is ever in global memory.
 *
 * Operands (ops.c, sgt_attention): q [B,H,Tq,D], k, v [B,H,Tk,D], y and dy [B,H,Tq,D], dq, dk, dv:
 * unit stride along D, any strides on the other dims; lse [B,H,Tq] contiguous. Query i sees keys
 * j <= i + off, off = Tk - Tq (causal) or Tk (ip[0] = 1, not causal: every key, through the same
 * code; the loops over key tiles stop at Tk), Tk being the device-held key count when src[3] is
 * given (sgt_attention_len).
 * Storage f32, f64 or bf16 (as its 16 bits, sgt_bf16_* from ../bf16.h); the
 * math is f32 for f32 and bf16 (each bf16 result rounded once, on store), f64 for f64. lse (and Di)
 * are in the math type, which is also lse's dtype (f32 for bf16).
 *
 * Design: CUDA cores for all but bf16 with 16-byte aligned rows and D = 64 (forward and backward)
 * or D = 128 (forward), which run on tensor cores (k_attn_*_tc, see below). The CUDA-core kernels:
 * 4 warps per block, tiles staged in shared memory in the math type, zero-padded from D up to a
 * compile-time bucket DB in {32, 64, 128} (D > 128 is a clear error). Each lane owns the columns
 * d = lane + 32 c of the accumulators it keeps in registers. Dot products along D read 16-byte
 * vectors from shared memory: one operand broadcast (the same address in every lane), the other
 * lane-indexed with its rows padded by one vector (conflict-free).
 *   forward  (k_attn_fwd): a block per (b, h, tile of BQ = 4 RW queries; RW = 16 rows per warp,
 *     8 in f64). Per tile of 32 keys up to the diagonal: lane j scores key j against the warp's RW
 *     rows, the causal mask, an online softmax (running max m by a warp max, running sum l kept as
 *     per-lane partial sums), P to shared memory, O = alpha O + P V. y = O / l, lse = m + log l.
 *   backward: Di = dy . y (k_attn_di, a warp per row); then, recomputing P = exp(scale q.k - lse)
 *     and dS = P (dy.v - Di) from scratch, with no atomics (deterministic):
 *     k_attn_bwd_kv: a block per (b, h, tile of 4 RW keys; RW = 8, 4 in f64), looping over the
 *       32-query tiles that see it: lane i scores query i against the warp's keys, then
 *       dV += P^T dY and dK += dS^T Q (contracted over the 32 queries through shared memory);
 *     k_attn_bwd_q: a block per (b, h, tile of 4 RW queries), looping over the 32-key tiles up to
 *       the diagonal: lane j scores key j, then dQ += dS K.
 *   Key (query) tiles wholly masked for a block are never visited. Heaviest blocks (most tiles to
 *   visit) are numbered first.
 *   tensor-core forward (k_attn_fwd_tc: bf16, D = 64 or 128; q, k, v, y with 16-byte aligned
 *     rows, checked on the host, else k_attn_fwd): nvcuda::wmma, bf16 16x16x16 fragments with f32
 *     accumulators, written so that nothing depends on the opaque per-thread fragment layout: every
 *     fragment is loaded from and stored to shared memory, and all elementwise work is done there
 *     by ordinary threads in f32. A block per (b, h, tile of 64 queries, 16 per warp), key tiles of
 *     64: S = Q K^T by wmma, stored as f32; the mask and online softmax (a lane pair per row) on
 *     it; P = exp(s - m) written as two bf16 matrices, high and low (P = Ph + Pl to ~16 bits, so
 *     that rounding P to bf16 does not cost the output its accuracy: agreement with k_attn_fwd
 *     within a bf16 ulp or so); O kept in shared memory as f32, rescaled there by alpha, then
 *     O += Pl V + Ph V by wmma (load O as an accumulator, mma, store). l sums the f32 p. Key tiles
 *     past the diagonal of all of a warp's rows are skipped by that warp.
 *   tensor-core backward (bf16, D = 64, the same layout conditions, else the CUDA-core kernels):
 *     Di by k_attn_di, then k_attn_bwd_kv_tc (a block per 64 keys, 16 per warp, over the 64-query
 *     tiles that see them: S^T = K Q^T and dP^T = V dY^T by wmma to shared memory, P^T and dS^T
 *     there in f32, split into bf16 halves, dV += P^T dY and dK += dS^T Q by wmma) and
 *     k_attn_bwd_q_tc (a block per 64 queries, over the key tiles up to the diagonal: S, dP, dS,
 *     then dQ += dS K). The accumulators stay in fragments across tiles (nothing rescales them)
 *     and leave through shared memory, where lanes scale and round them.
 * Shared memory per block (dynamic, opted in above 48 KB and checked against the device's limit,
 * 227 KB on an H100, 163 KB on an A100): at DB = 128, f32/bf16 74 KB (forward), 75 KB (dK/dV),
 * 71 KB (dQ); f64 107, 108, 103 KB; on tensor cores 79 KB (forward, D = 64), 119 KB (forward,
 * D = 128), 107 KB (dK/dV), 88 KB (dQ).
 * Expected speed: bound by shared-memory loads (about one 16-byte load per 2-4 FMAs), so a
 * fraction of the FP32 peak: on an H100 of the order of 10 TFLOP/s for the f32 forward, about half
 * of that per useful FLOP for the backward (which recomputes the scores twice), below what
 * tensor-core FlashAttention reaches but with no Tq x Tk traffic at all. The tensor-core kernels
 * (an estimate only, NOT MEASURED: they were checked on a CPU emulator of the kernels, never run
 * or timed on a device): bound by the shared-memory round trips of S, dP, P, dS (and O) and by
 * the elementwise work on CUDA cores rather than by the tensor cores (which do 1.5x the useful
 * work: each product by a split P or dS runs twice), so a few times the CUDA-core kernels (very
 * roughly 30-60 TFLOP/s on an H100), well below FlashAttention 2/3.
 *
 * Sums inside a dot product run in order of d with fma (explicit fma is allowed under --fmad=false:
 * it only stops the compiler from contracting separate * and +), so results are deterministic. */
#include <math.h>
#include <stdint.h>

#include "../bf16.h"
#include "cuda.h"

#include <cuda_bf16.h>
#include <mma.h>

namespace {

constexpr int NWARP = 4;          /* warps per block */
constexpr int NTHREADS = NWARP * 32;
constexpr int KT = 32;            /* keys (or queries) per inner tile: one per lane */

/* storage type -> math type, load and store */
template <typename T> struct io;
template <> struct io<float> {
    typedef float A;
    static __device__ __forceinline__ float ld(float x) { return x; }
    static __device__ __forceinline__ float st(float a) { return a; }
};
template <> struct io<double> {
    typedef double A;
    static __device__ __forceinline__ double ld(double x) { return x; }
    static __device__ __forceinline__ double st(double a) { return a; }
};
template <> struct io<uint16_t> {
    typedef float A;
    static __device__ __forceinline__ float ld(uint16_t x) { return sgt_bf16_to_f32(x); }
    static __device__ __forceinline__ uint16_t st(float a) { return sgt_f32_to_bf16(a); }
};

__device__ __forceinline__ float fma_(float a, float b, float c) { return fmaf(a, b, c); }
__device__ __forceinline__ double fma_(double a, double b, double c) { return fma(a, b, c); }

/* 16-byte vectors out of shared memory: VN elements of the math type */
template <typename A> struct vec;
template <> struct vec<float> {
    static constexpr int N = 4;
    static __device__ __forceinline__ void load(const float *p, float (&o)[4]) {
        const float4 v = *reinterpret_cast<const float4 *>(p);
        o[0] = v.x;
        o[1] = v.y;
        o[2] = v.z;
        o[3] = v.w;
    }
};
template <> struct vec<double> {
    static constexpr int N = 2;
    static __device__ __forceinline__ void load(const double *p, double (&o)[2]) {
        const double2 v = *reinterpret_cast<const double2 *>(p);
        o[0] = v.x;
        o[1] = v.y;
    }
};

/* butterfly reductions: every lane ends with the same value */
template <typename A> __device__ __forceinline__ A warp_max(A v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const A w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}
template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* element strides of dims 0..2 of a [B,H,T,D] operand (dim 3 has unit stride) */
struct st3 {
    int64_t b, h, t;
};
st3 strides_of(const sgt_tensor *x) { return st3{x->stride[0], x->stride[1], x->stride[2]}; }

/* x[b,h]: the [T,D] matrix of one head */
template <typename T> __device__ __forceinline__ T *head(T *x, st3 s, int64_t b, int64_t h) {
    return x + b * s.b + h * s.h;
}

/* Loads rows t0 .. t0+rows-1 of x[b,h] (rows < n valid, the rest and d >= D zero) into a shared
 * [rows][ld] tile of the math type; all threads of the block take part. */
template <typename T, int DB>
__device__ __forceinline__ void load_tile(typename io<T>::A *dst, int ld, int rows, const T *x, int64_t st, int64_t t0,
                                          int64_t n, int D) {
    typedef typename io<T>::A A;
    for (int e = threadIdx.x; e < rows * DB; e += NTHREADS) {
        const int r = e / DB, d = e % DB;
        dst[r * ld + d] = (t0 + r < n && d < D) ? io<T>::ld(x[(t0 + r) * st + d]) : (A)0;
    }
}

/* The block's tile of BQ queries in the forward and dQ kernels: the last query tiles see the most
 * keys, so they get the lowest block numbers. nq: the tile's valid rows. */
struct qtile {
    int64_t bh, b, h, i0, nq;
};
template <int BQ> __device__ __forceinline__ qtile qtile_of(int64_t BH, int64_t H, int64_t Tq, int64_t nqt) {
    const int64_t bh = blockIdx.x % BH, qt = nqt - 1 - (int64_t)blockIdx.x / BH;
    const int64_t b = bh / H, h = bh % H, i0 = qt * BQ;
    return qtile{bh, b, h, i0, Tq - i0 < BQ ? Tq - i0 : BQ};
}

/* The scores of a warp's RW rows against the lane's own row, NP operand pairs at once:
 * s[p][rr] = rows[p][rr] . own[p] over d < DB, in order of d with fma. rows[p]: the warp's first
 * row in a [.][DB] tile (its vectors are broadcast: the same address in every lane); own[p]: the
 * lane's row in a tile whose rows are padded by one vector (conflict-free). */
template <typename A, int DB, int RW, int NP>
__device__ __forceinline__ void row_dots(A (&s)[NP][RW], const A *const (&rows)[NP], const A *const (&own)[NP]) {
    constexpr int VN = vec<A>::N;
#pragma unroll
    for (int p = 0; p < NP; p++)
#pragma unroll
        for (int rr = 0; rr < RW; rr++) s[p][rr] = 0;
#pragma unroll 2
    for (int d = 0; d < DB; d += VN) {
        A ov[NP][VN];
#pragma unroll
        for (int p = 0; p < NP; p++) vec<A>::load(own[p] + d, ov[p]);
#pragma unroll
        for (int rr = 0; rr < RW; rr++) {
            A rv[NP][VN];
#pragma unroll
            for (int p = 0; p < NP; p++) vec<A>::load(rows[p] + rr * DB + d, rv[p]);
#pragma unroll
            for (int u = 0; u < VN; u++)
#pragma unroll
                for (int p = 0; p < NP; p++) s[p][rr] = fma_(rv[p][u], ov[p][u], s[p][rr]);
        }
    }
}

/* The register accumulation of a warp's RW rows, NP pairs at once:
 * acc[p][rr][c] += sum_jj w[p][rr][jj] m[p][jj][32 c + lane] over the KT rows jj of the shared
 * tile m[p] (row stride LD), in order of jj with fma. w[p]: the warp's first row in a [.][KT] tile
 * of weights (P or dS), its vectors broadcast. */
template <typename A, int DB, int RW, int NP, int LD>
__device__ __forceinline__ void rows_acc(A (&acc)[NP][RW][DB / 32], const A *const (&w)[NP], const A *const (&m)[NP],
                                         int lane) {
    constexpr int VN = vec<A>::N, NC = DB / 32;
#pragma unroll 1
    for (int jj = 0; jj < KT; jj += VN) {
        A mv[NP][VN][NC];
#pragma unroll
        for (int u = 0; u < VN; u++)
#pragma unroll
            for (int c = 0; c < NC; c++)
#pragma unroll
                for (int p = 0; p < NP; p++) mv[p][u][c] = m[p][(jj + u) * LD + c * 32 + lane];
#pragma unroll
        for (int rr = 0; rr < RW; rr++) {
            A wv[NP][VN];
#pragma unroll
            for (int p = 0; p < NP; p++) vec<A>::load(w[p] + rr * KT + jj, wv[p]);
#pragma unroll
            for (int u = 0; u < VN; u++)
#pragma unroll
                for (int c = 0; c < NC; c++)
#pragma unroll
                    for (int p = 0; p < NP; p++) acc[p][rr][c] = fma_(wv[p][u], mv[p][u][c], acc[p][rr][c]);
        }
    }
}

/* zeroes register accumulators */
template <typename A, int NP, int RW, int NC> __device__ __forceinline__ void zero(A (&acc)[NP][RW][NC]) {
#pragma unroll
    for (int p = 0; p < NP; p++)
#pragma unroll
        for (int rr = 0; rr < RW; rr++)
#pragma unroll
            for (int c = 0; c < NC; c++) acc[p][rr][c] = 0;
}

/* Stores the lane's columns d = 32 c + lane < D of a row of accumulators, times mul when SCALE. */
template <bool SCALE, typename T, int NC>
__device__ __forceinline__ void store_row(T *dst, const typename io<T>::A (&a)[NC], typename io<T>::A mul, int lane,
                                          int D) {
#pragma unroll
    for (int c = 0; c < NC; c++) {
        const int d = c * 32 + lane;
        if (d < D) dst[d] = io<T>::st(SCALE ? a[c] * mul : a[c]);
    }
}

/* ---- forward ---- */

template <typename A, int DB, int RW> constexpr size_t fwd_smem() {
    /* Q [BQ][DB], K [KT][DB + VN], V [KT][DB], P [BQ][KT] */
    return sizeof(A) * ((size_t)NWARP * RW * DB + (size_t)KT * (DB + vec<A>::N) + (size_t)KT * DB + (size_t)NWARP * RW * KT);
}

template <typename T, int DB, int RW>
__global__ void __launch_bounds__(NTHREADS)
    k_attn_fwd(const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v, T *__restrict__ y,
               typename io<T>::A *__restrict__ lse, st3 sq, st3 sk, st3 sv, st3 sy, int64_t BH, int64_t H, int64_t Tq,
               int64_t Tk, int D, typename io<T>::A scale, int64_t nqt, const int32_t *__restrict__ len,
               bool causal) {
    typedef typename io<T>::A A;
    /* sgt_attention_len: the key count comes from device memory (a replayed decode step), clamped
     * to the cache; the decoder checks it on the host before copying it in */
    if (len) Tk = *len < 0 ? 0 : *len < Tk ? *len : Tk;
    constexpr int BQ = NWARP * RW, NC = DB / 32, VN = vec<A>::N, KS = DB + VN;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    A *Qs = reinterpret_cast<A *>(smem_raw);
    A *Ks = Qs + BQ * DB;
    A *Vs = Ks + KT * KS;
    A *Ps = Vs + KT * DB;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const auto [bh, b, h, i0, nq] = qtile_of<BQ>(BH, H, Tq, nqt);
    const int64_t off = causal ? Tk - Tq : Tk;
    const T *kb = head(k, sk, b, h), *vb = head(v, sv, b, h);

    load_tile<T, DB>(Qs, DB, BQ, head(q, sq, b, h), sq.t, i0, Tq, D);

    A m[RW], l[RW], o[1][RW][NC]; /* o: one set of accumulators (rows_acc takes NP sets) */
    zero(o);
#pragma unroll
    for (int rr = 0; rr < RW; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0;
    }
    /* keys >= kend are masked for every row of the tile */
    const int64_t kend = i0 + nq + off < Tk ? i0 + nq + off : Tk;
    for (int64_t j0 = 0; j0 < kend; j0 += KT) {
        __syncthreads(); /* the previous K, V, P are consumed (and Q is loaded, the first time) */
        load_tile<T, DB>(Ks, KS, KT, kb, sk.t, j0, Tk, D);
        load_tile<T, DB>(Vs, DB, KT, vb, sv.t, j0, Tk, D);
        __syncthreads();

        /* s[0][rr] = q[row rr] . k[key lane] */
        A s[1][RW];
        row_dots<A, DB, RW, 1>(s, {Qs + warp * RW * DB}, {Ks + lane * KS});
        const int64_t j = j0 + lane;
#pragma unroll
        for (int rr = 0; rr < RW; rr++) {
            const int r = warp * RW + rr;
            const bool ok = j < Tk && j <= i0 + r + off;
            const A sc = ok ? s[0][rr] * scale : (A)-INFINITY;
            const A mx = warp_max(sc);
            const A mnew = mx > m[rr] ? mx : m[rr];
            /* mnew is finite once the row has seen a key (every row sees key 0 in the first tile);
             * alpha = 0 on that first tile (m = -inf), 1 on tiles the mask empties for this row */
            const A alpha = mnew == (A)-INFINITY ? (A)1 : sgt_exp(m[rr] - mnew);
            const A p = ok ? sgt_exp(sc - mnew) : (A)0;
            l[rr] = l[rr] * alpha + p; /* per-lane partial sums: alpha is the same in every lane */
            m[rr] = mnew;
            Ps[r * KT + lane] = p;
#pragma unroll
            for (int c = 0; c < NC; c++) o[0][rr][c] *= alpha;
        }
        __syncwarp();
        /* o[rr][c] += sum_jj P[rr][jj] V[jj][32 c + lane] */
        rows_acc<A, DB, RW, 1, DB>(o, {Ps + warp * RW * KT}, {Vs}, lane);
    }

    T *yb = head(y, sy, b, h);
#pragma unroll
    for (int rr = 0; rr < RW; rr++) {
        const int r = warp * RW + rr;
        const A lsum = warp_sum(l[rr]);
        if (r < nq) {
            store_row<true, T>(yb + (i0 + r) * sy.t, o[0][rr], (A)1 / lsum, lane, D);
            if (lane == 0) lse[bh * Tq + i0 + r] = m[rr] + sgt_log(lsum);
        }
    }
}

/* ---- backward ---- */

/* Di[row] = dy[row] . y[row], a warp per row of [B, H, Tq] */
template <typename T>
__global__ void k_attn_di(const T *__restrict__ y, const T *__restrict__ dy, typename io<T>::A *__restrict__ Di, st3 sy,
                          st3 sg, int64_t H, int64_t Tq, int D, int64_t rows) {
    typedef typename io<T>::A A;
    const int lane = threadIdx.x & 31;
    const int64_t wpb = blockDim.x >> 5;
    for (int64_t r = (int64_t)blockIdx.x * wpb + (threadIdx.x >> 5); r < rows; r += (int64_t)gridDim.x * wpb) {
        const int64_t b = r / (H * Tq), h = r / Tq % H, i = r % Tq;
        const T *yr = head(y, sy, b, h) + i * sy.t, *gr = head(dy, sg, b, h) + i * sg.t;
        A s = 0;
        for (int d = lane; d < D; d += 32) s = fma_(io<T>::ld(gr[d]), io<T>::ld(yr[d]), s);
        s = warp_sum(s);
        if (lane == 0) Di[r] = s;
    }
}

template <typename A, int DB, int RW> constexpr size_t bwd_kv_smem() {
    /* K, V [BKV][DB]; Q, dY [KT][DB + VN]; P, dS [BKV][KT]; lse, Di [KT] */
    return sizeof(A) * (2 * (size_t)NWARP * RW * DB + 2 * (size_t)KT * (DB + vec<A>::N) + 2 * (size_t)NWARP * RW * KT +
                        2 * (size_t)KT);
}

template <typename T, int DB, int RW>
__global__ void __launch_bounds__(NTHREADS)
    k_attn_bwd_kv(const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v, const T *__restrict__ dy,
                  const typename io<T>::A *__restrict__ lse, const typename io<T>::A *__restrict__ Di,
                  T *__restrict__ dk, T *__restrict__ dv, st3 sq, st3 sk, st3 sv, st3 sg, st3 sdk, st3 sdv, int64_t BH,
                  int64_t H, int64_t Tq, int64_t Tk, int D, typename io<T>::A scale, bool causal) {
    typedef typename io<T>::A A;
    constexpr int BKV = NWARP * RW, NC = DB / 32, VN = vec<A>::N, QS = DB + VN;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    A *Ks = reinterpret_cast<A *>(smem_raw);
    A *Vs = Ks + BKV * DB;
    A *Qs = Vs + BKV * DB;
    A *Gs = Qs + KT * QS;
    A *Ps = Gs + KT * QS;
    A *Ss = Ps + BKV * KT;
    A *Ls = Ss + BKV * KT;
    A *Ds = Ls + KT;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    /* the first key tiles are seen by the most queries: lowest block numbers */
    const int64_t bh = blockIdx.x % BH, kt = (int64_t)blockIdx.x / BH;
    const int64_t b = bh / H, h = bh % H, j0 = kt * BKV, off = causal ? Tk - Tq : Tk;
    const T *qb = head(q, sq, b, h), *gb = head(dy, sg, b, h);

    load_tile<T, DB>(Ks, DB, BKV, head(k, sk, b, h), sk.t, j0, Tk, D);
    load_tile<T, DB>(Vs, DB, BKV, head(v, sv, b, h), sv.t, j0, Tk, D);

    A acc[2][RW][NC]; /* dV, dK of the warp's keys */
    zero(acc);

    /* query i sees key j0 when i >= j0 - off */
    const int64_t first = (j0 - off > 0 ? j0 - off : 0) / KT * KT;
    for (int64_t i0 = first; i0 < Tq; i0 += KT) {
        __syncthreads(); /* the previous Q, dY, P, dS are consumed (K, V loaded, the first time) */
        load_tile<T, DB>(Qs, QS, KT, qb, sq.t, i0, Tq, D);
        load_tile<T, DB>(Gs, QS, KT, gb, sg.t, i0, Tq, D);
        if (threadIdx.x < KT) {
            const int64_t i = i0 + threadIdx.x;
            Ls[threadIdx.x] = i < Tq ? lse[bh * Tq + i] : (A)0;
            Ds[threadIdx.x] = i < Tq ? Di[bh * Tq + i] : (A)0;
        }
        __syncthreads();

        /* s[0][rk] = k[key rk] . q[query lane], s[1][rk] = v[key rk] . dy[query lane] (the same
         * bits as q . k and dy . v: fma's product does not depend on the order of its factors) */
        A s[2][RW];
        row_dots<A, DB, RW, 2>(s, {Ks + warp * RW * DB, Vs + warp * RW * DB}, {Qs + lane * QS, Gs + lane * QS});
        const int64_t i = i0 + lane;
        const A lse_i = Ls[lane], di = Ds[lane];
#pragma unroll
        for (int rk = 0; rk < RW; rk++) {
            const int64_t j = j0 + warp * RW + rk;
            const bool ok = i < Tq && j < Tk && j <= i + off;
            const A p = ok ? sgt_exp(s[0][rk] * scale - lse_i) : (A)0;
            Ps[(warp * RW + rk) * KT + lane] = p;
            Ss[(warp * RW + rk) * KT + lane] = ok ? p * (s[1][rk] - di) : (A)0;
        }
        __syncwarp();
        /* dv[rk] += sum_i P[rk][i] dy[i], dk[rk] += sum_i dS[rk][i] q[i] (columns 32 c + lane) */
        rows_acc<A, DB, RW, 2, QS>(acc, {Ps + warp * RW * KT, Ss + warp * RW * KT}, {Gs, Qs}, lane);
    }

    T *dkb = head(dk, sdk, b, h), *dvb = head(dv, sdv, b, h);
#pragma unroll
    for (int rk = 0; rk < RW; rk++) {
        const int64_t j = j0 + warp * RW + rk;
        if (j >= Tk) continue;
        store_row<true, T>(dkb + j * sdk.t, acc[1][rk], scale, lane, D);
        store_row<false, T>(dvb + j * sdv.t, acc[0][rk], scale, lane, D); /* dv unscaled */
    }
}

template <typename A, int DB, int RW> constexpr size_t bwd_q_smem() {
    /* Q, dY [BQ][DB]; K, V [KT][DB + VN]; dS [BQ][KT] */
    return sizeof(A) * (2 * (size_t)NWARP * RW * DB + 2 * (size_t)KT * (DB + vec<A>::N) + (size_t)NWARP * RW * KT);
}

template <typename T, int DB, int RW>
__global__ void __launch_bounds__(NTHREADS)
    k_attn_bwd_q(const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v, const T *__restrict__ dy,
                 const typename io<T>::A *__restrict__ lse, const typename io<T>::A *__restrict__ Di, T *__restrict__ dq,
                 st3 sq, st3 sk, st3 sv, st3 sg, st3 sdq, int64_t BH, int64_t H, int64_t Tq, int64_t Tk, int D,
                 typename io<T>::A scale, int64_t nqt, bool causal) {
    typedef typename io<T>::A A;
    constexpr int BQ = NWARP * RW, NC = DB / 32, VN = vec<A>::N, KS = DB + VN;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    A *Qs = reinterpret_cast<A *>(smem_raw);
    A *Gs = Qs + BQ * DB;
    A *Ks = Gs + BQ * DB;
    A *Vs = Ks + KT * KS;
    A *Ss = Vs + KT * KS;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const auto [bh, b, h, i0, nq] = qtile_of<BQ>(BH, H, Tq, nqt);
    const int64_t off = causal ? Tk - Tq : Tk;
    const T *kb = head(k, sk, b, h), *vb = head(v, sv, b, h);

    load_tile<T, DB>(Qs, DB, BQ, head(q, sq, b, h), sq.t, i0, Tq, D);
    load_tile<T, DB>(Gs, DB, BQ, head(dy, sg, b, h), sg.t, i0, Tq, D);
    A lse_r[RW], di_r[RW], dqa[1][RW][NC];
    zero(dqa);
#pragma unroll
    for (int rr = 0; rr < RW; rr++) {
        const int r = warp * RW + rr;
        lse_r[rr] = r < nq ? lse[bh * Tq + i0 + r] : (A)0;
        di_r[rr] = r < nq ? Di[bh * Tq + i0 + r] : (A)0;
    }

    const int64_t kend = i0 + nq + off < Tk ? i0 + nq + off : Tk;
    for (int64_t j0 = 0; j0 < kend; j0 += KT) {
        __syncthreads(); /* the previous K, V, dS are consumed (Q, dY loaded, the first time) */
        load_tile<T, DB>(Ks, KS, KT, kb, sk.t, j0, Tk, D);
        load_tile<T, DB>(Vs, KS, KT, vb, sv.t, j0, Tk, D);
        __syncthreads();

        /* s[0][rr] = q[row rr] . k[key lane], s[1][rr] = dy[row rr] . v[key lane] */
        A s[2][RW];
        row_dots<A, DB, RW, 2>(s, {Qs + warp * RW * DB, Gs + warp * RW * DB}, {Ks + lane * KS, Vs + lane * KS});
        const int64_t j = j0 + lane;
#pragma unroll
        for (int rr = 0; rr < RW; rr++) {
            const int r = warp * RW + rr;
            const bool ok = r < nq && j < Tk && j <= i0 + r + off;
            const A p = ok ? sgt_exp(s[0][rr] * scale - lse_r[rr]) : (A)0;
            Ss[r * KT + lane] = ok ? p * (s[1][rr] - di_r[rr]) : (A)0;
        }
        __syncwarp();
        /* dq[rr] += sum_jj dS[rr][jj] k[jj] (columns 32 c + lane) */
        rows_acc<A, DB, RW, 1, KS>(dqa, {Ss + warp * RW * KT}, {Ks}, lane);
    }

    T *dqb = head(dq, sdq, b, h);
#pragma unroll
    for (int rr = 0; rr < RW; rr++) {
        const int r = warp * RW + rr;
        if (r >= nq) continue;
        store_row<true, T>(dqb + (i0 + r) * sdq.t, dqa[0][rr], scale, lane, D);
    }
}

/* ---- forward on tensor cores (bf16, D = DB = 64 or 128) ---- */

/* The block: 4 warps, BQ = 64 queries, 16 per warp; key tiles of KN = 64. Every operand of a wmma
 * call lives in shared memory and all elementwise work (mask, online softmax, rescaling of O) is
 * done by ordinary threads on shared memory, so nothing depends on the per-thread layout of a
 * fragment. Row pitches are padded by 16 bytes (bank spread); every fragment pointer is 32-byte
 * aligned and every ldm a multiple of 16 bytes, as wmma requires. */
constexpr int TC_BQ = NWARP * 16, TC_KN = 64;

template <int DB> struct tc_lay {
    static constexpr int XLD = DB + 8;     /* bf16 Q, K, V tiles [.][XLD] */
    static constexpr int SLD = TC_KN + 4;  /* f32 scores, per warp [16][SLD] */
    static constexpr int PLD = TC_KN + 8;  /* bf16 P (high and low halves), per warp [16][PLD] */
    static constexpr int OLD = DB + 4;     /* f32 output accumulator, per warp [16][OLD] */
    static constexpr size_t Q = 0, K = Q + 2 * (size_t)TC_BQ * XLD, V = K + 2 * (size_t)TC_KN * XLD,
                            S = V + 2 * (size_t)TC_KN * XLD, PH = S + 4 * (size_t)TC_BQ * SLD,
                            PL = PH + 2 * (size_t)TC_BQ * PLD, O = PL + 2 * (size_t)TC_BQ * PLD,
                            bytes = O + 4 * (size_t)TC_BQ * OLD;
    static_assert(K % 32 == 0 && V % 32 == 0 && S % 32 == 0 && PH % 32 == 0 && PL % 32 == 0 && O % 32 == 0,
                  "wmma needs 32-byte aligned tiles");
    static_assert((16 * XLD * 2) % 32 == 0 && (16 * SLD * 4) % 32 == 0 && (16 * PLD * 2) % 32 == 0 &&
                      (16 * OLD * 4) % 32 == 0,
                  "wmma needs 32-byte aligned fragment rows");
};

/* Copies rows t0 .. t0+rows-1 of a bf16 [T][DB] head (rows >= n zero) into a shared [rows][DB + 8]
 * tile as raw bits, 16 bytes at a time (the host checked the alignment); all threads take part. */
template <int DB>
__device__ __forceinline__ void tc_load(uint16_t *dst, int rows, const uint16_t *x, int64_t st, int64_t t0,
                                        int64_t n) {
    constexpr int NV = DB / 8, LD = DB + 8;
    for (int e = threadIdx.x; e < rows * NV; e += NTHREADS) {
        const int r = e / NV, c = e % NV;
        uint4 w = make_uint4(0, 0, 0, 0);
        if (t0 + r < n) w = *reinterpret_cast<const uint4 *>(x + (t0 + r) * st + c * 8);
        *reinterpret_cast<uint4 *>(dst + r * LD + c * 8) = w;
    }
}

__device__ __forceinline__ const __nv_bfloat16 *as_bf(const uint16_t *p) {
    return reinterpret_cast<const __nv_bfloat16 *>(p);
}

template <int DB>
__global__ void __launch_bounds__(NTHREADS)
    k_attn_fwd_tc(const uint16_t *__restrict__ q, const uint16_t *__restrict__ k, const uint16_t *__restrict__ v,
                  uint16_t *__restrict__ y, float *__restrict__ lse, st3 sq, st3 sk, st3 sv, st3 sy, int64_t BH,
                  int64_t H, int64_t Tq, int64_t Tk, float scale, int64_t nqt, const int32_t *__restrict__ len,
                  bool causal) {
    using namespace nvcuda;
    typedef tc_lay<DB> L;
    constexpr int KN = TC_KN, XLD = L::XLD, SLD = L::SLD, PLD = L::PLD, OLD = L::OLD;
    if (len) Tk = *len < 0 ? 0 : *len < Tk ? *len : Tk; /* as k_attn_fwd */
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    uint16_t *Qs = reinterpret_cast<uint16_t *>(smem_raw + L::Q), *Ks = reinterpret_cast<uint16_t *>(smem_raw + L::K),
             *Vs = reinterpret_cast<uint16_t *>(smem_raw + L::V);
    /* the warp's own scores, P halves and output rows */
    float *Sw = reinterpret_cast<float *>(smem_raw + L::S) + warp * 16 * SLD;
    uint16_t *Phw = reinterpret_cast<uint16_t *>(smem_raw + L::PH) + warp * 16 * PLD;
    uint16_t *Plw = reinterpret_cast<uint16_t *>(smem_raw + L::PL) + warp * 16 * PLD;
    float *Ow = reinterpret_cast<float *>(smem_raw + L::O) + warp * 16 * OLD;

    const auto [bh, b, h, i0, nq] = qtile_of<TC_BQ>(BH, H, Tq, nqt);
    const int64_t off = causal ? Tk - Tq : Tk;
    const uint16_t *kb = head(k, sk, b, h), *vb = head(v, sv, b, h);
    tc_load<DB>(Qs, TC_BQ, head(q, sq, b, h), sq.t, i0, Tq);

    /* the elementwise work: lane pair (2r, 2r + 1) owns row r of the warp, each lane half of its
     * columns (scores: KN / 2, output: DB / 2); m, l are the row's running max and (per lane)
     * partial sum */
    const int r = lane >> 1, half = lane & 1;
    const int64_t i = i0 + warp * 16 + r; /* the lane's query */
    float *Sr = Sw + r * SLD + half * (KN / 2), *Or = Ow + r * OLD + half * (DB / 2);
    uint16_t *Phr = Phw + r * PLD + half * (KN / 2), *Plr = Plw + r * PLD + half * (KN / 2);
#pragma unroll
    for (int c = 0; c < DB / 2; c++) Or[c] = 0;
    float m = -INFINITY, l = 0;

    wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> qf[DB / 16];
    /* keys >= kend are masked for every row of the block, keys > wend for every row of the warp */
    const int64_t kend = i0 + nq + off < Tk ? i0 + nq + off : Tk, wend = i0 + warp * 16 + 15 + off;
    for (int64_t j0 = 0; j0 < kend; j0 += KN) {
        __syncthreads(); /* the previous K, V are consumed (and Q is loaded, the first time) */
        tc_load<DB>(Ks, KN, kb, sk.t, j0, Tk);
        tc_load<DB>(Vs, KN, vb, sv.t, j0, Tk);
        __syncthreads();
        if (j0 == 0) {
#pragma unroll
            for (int kk = 0; kk < DB / 16; kk++)
                wmma::load_matrix_sync(qf[kk], as_bf(Qs + warp * 16 * XLD + kk * 16), XLD);
        }
        if (j0 > wend) continue; /* warp-uniform: P = 0, alpha = 1 for all the warp's rows */

        /* S = Q K^T: the warp's 16 rows against the tile's KN keys (K row-major = K^T col-major) */
#pragma unroll
        for (int n = 0; n < KN / 16; n++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> sf;
            wmma::fill_fragment(sf, 0.0f);
#pragma unroll
            for (int kk = 0; kk < DB / 16; kk++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, as_bf(Ks + n * 16 * XLD + kk * 16), XLD);
                wmma::mma_sync(sf, qf[kk], kf, sf);
            }
            wmma::store_matrix_sync(Sw + n * 16, sf, SLD, wmma::mem_row_major);
        }
        __syncwarp();

        /* online softmax of the lane's half row, as k_attn_fwd: mask, running max (over the lane
         * pair), P = exp(s - m) split into bf16 high and low halves (so P V keeps ~16 bits of P),
         * l and the rows of O rescaled by alpha */
        float mx = -INFINITY;
#pragma unroll 8
        for (int c = 0; c < KN / 2; c++) {
            const int64_t j = j0 + half * (KN / 2) + c;
            const float sc = (j < Tk && j <= i + off) ? Sr[c] * scale : -INFINITY;
            mx = sc > mx ? sc : mx;
        }
        {
            const float w = __shfl_xor_sync(0xffffffffu, mx, 1);
            mx = w > mx ? w : mx;
        }
        const float mnew = mx > m ? mx : m;
        const float alpha = mnew == -INFINITY ? 1.0f : sgt_exp(m - mnew);
        float ps = 0;
#pragma unroll 8
        for (int c = 0; c < KN / 2; c++) {
            const int64_t j = j0 + half * (KN / 2) + c;
            const bool ok = j < Tk && j <= i + off;
            const float p = ok ? sgt_exp(Sr[c] * scale - mnew) : 0.0f;
            ps += p;
            const uint16_t hi = sgt_f32_to_bf16(p);
            Phr[c] = hi;
            Plr[c] = sgt_f32_to_bf16(p - sgt_bf16_to_f32(hi));
        }
        l = l * alpha + ps;
        m = mnew;
#pragma unroll 8
        for (int c = 0; c < DB / 2; c++) Or[c] *= alpha;
        __syncwarp();

        /* O += P V (P = high + low), a 16-column strip of O at a time through shared memory */
        wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> ph[KN / 16], pl[KN / 16];
#pragma unroll
        for (int kk = 0; kk < KN / 16; kk++) {
            wmma::load_matrix_sync(ph[kk], as_bf(Phw + kk * 16), PLD);
            wmma::load_matrix_sync(pl[kk], as_bf(Plw + kk * 16), PLD);
        }
#pragma unroll
        for (int dt = 0; dt < DB / 16; dt++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> of;
            wmma::load_matrix_sync(of, Ow + dt * 16, OLD, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < KN / 16; kk++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> vf;
                wmma::load_matrix_sync(vf, as_bf(Vs + kk * 16 * XLD + dt * 16), XLD);
                wmma::mma_sync(of, pl[kk], vf, of);
                wmma::mma_sync(of, ph[kk], vf, of);
            }
            wmma::store_matrix_sync(Ow + dt * 16, of, OLD, wmma::mem_row_major);
        }
        __syncwarp(); /* O is stored before the next rescale (or the final read); S, P are consumed */
    }

    l += __shfl_xor_sync(0xffffffffu, l, 1);
    if (warp * 16 + r < nq) {
        const float mul = 1.0f / l;
        uint16_t *yr = head(y, sy, b, h) + i * sy.t + half * (DB / 2);
#pragma unroll
        for (int c = 0; c < DB / 2; c += 8) {
            uint16_t o8[8];
#pragma unroll
            for (int u = 0; u < 8; u++) o8[u] = sgt_f32_to_bf16(Or[c + u] * mul);
            const uint4 w = make_uint4(o8[0] | (unsigned)o8[1] << 16, o8[2] | (unsigned)o8[3] << 16,
                                       o8[4] | (unsigned)o8[5] << 16, o8[6] | (unsigned)o8[7] << 16);
            *reinterpret_cast<uint4 *>(yr + c) = w;
        }
        if (half == 0) lse[bh * Tq + i] = m + sgt_log(l);
    }
}

/* ---- backward on tensor cores (bf16, D = 64) ----
 * As k_attn_bwd_kv / k_attn_bwd_q (P and dS recomputed from lse and Di, no atomics), with the
 * forward's rules: the products by wmma from and to shared memory, the elementwise work (mask,
 * P = exp(scale s - lse), dS = P (dP - Di), split into bf16 high and low halves) by ordinary
 * threads on shared memory, a lane pair per row. The accumulators (dK and dV, or dQ) stay in
 * wmma accumulator fragments across tiles (nothing rescales them) and go through shared memory
 * once at the end, where lanes scale, round and store them. */
constexpr int TC_BD = 64; /* the head dim of the backward */

struct tc_bwd_lay {
    static constexpr int XLD = TC_BD + 8, SLD = TC_KN + 4, PLD = TC_KN + 8;
    /* kv: K, V [64][XLD] (the block's keys), Q, dY [64][XLD] (a query tile), per warp S^T, dP^T
     *     [16][SLD] f32, P^T and dS^T high and low [16][PLD] bf16, lse and Di [64] f32.
     * q:  Q, dY (the block's queries), K, V (a key tile), per warp S, dP, dS high and low. */
    static constexpr size_t X0 = 0, X1 = X0 + 2 * 64 * XLD, X2 = X1 + 2 * 64 * XLD, X3 = X2 + 2 * 64 * XLD,
                            S = X3 + 2 * 64 * XLD, DP = S + 4 * 64 * SLD, P0 = DP + 4 * 64 * SLD,
                            P1 = P0 + 2 * 64 * PLD, P2 = P1 + 2 * 64 * PLD, P3 = P2 + 2 * 64 * PLD,
                            LS = P3 + 2 * 64 * PLD, DI = LS + 4 * 64, kv_bytes = DI + 4 * 64, q_bytes = P2;
    static_assert(X1 % 32 == 0 && S % 32 == 0 && DP % 32 == 0 && P0 % 32 == 0 && P1 % 32 == 0 && LS % 32 == 0,
                  "wmma needs 32-byte aligned tiles");
};

typedef nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 16, float> tc_acc;
typedef nvcuda::wmma::fragment<nvcuda::wmma::matrix_a, 16, 16, 16, __nv_bfloat16, nvcuda::wmma::row_major> tc_fa;

/* D[16][KN] (f32, ld SLD) = A[16][64] B^T, B [KN][64] row-major in shared memory (both bf16) */
__device__ __forceinline__ void tc_abt(float *D, const tc_fa (&a)[TC_BD / 16], const uint16_t *B) {
    using namespace nvcuda;
    constexpr int XLD = tc_bwd_lay::XLD, SLD = tc_bwd_lay::SLD;
#pragma unroll
    for (int n = 0; n < TC_KN / 16; n++) {
        tc_acc f;
        wmma::fill_fragment(f, 0.0f);
#pragma unroll
        for (int kk = 0; kk < TC_BD / 16; kk++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b;
            wmma::load_matrix_sync(b, as_bf(B + n * 16 * XLD + kk * 16), XLD);
            wmma::mma_sync(f, a[kk], b, f);
        }
        wmma::store_matrix_sync(D + n * 16, f, SLD, wmma::mem_row_major);
    }
}

/* acc[dt] += (Wl + Wh) M: W [16][KN] bf16 halves (ld PLD), M [KN][64] row-major bf16 (ld XLD) */
__device__ __forceinline__ void tc_wm(tc_acc (&acc)[TC_BD / 16], const uint16_t *Wh, const uint16_t *Wl,
                                      const uint16_t *M) {
    using namespace nvcuda;
    constexpr int XLD = tc_bwd_lay::XLD, PLD = tc_bwd_lay::PLD;
#pragma unroll
    for (int kk = 0; kk < TC_KN / 16; kk++) {
        tc_fa wh, wl;
        wmma::load_matrix_sync(wh, as_bf(Wh + kk * 16), PLD);
        wmma::load_matrix_sync(wl, as_bf(Wl + kk * 16), PLD);
#pragma unroll
        for (int dt = 0; dt < TC_BD / 16; dt++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::row_major> m;
            wmma::load_matrix_sync(m, as_bf(M + kk * 16 * XLD + dt * 16), XLD);
            wmma::mma_sync(acc[dt], wl, m, acc[dt]);
            wmma::mma_sync(acc[dt], wh, m, acc[dt]);
        }
    }
}

__device__ __forceinline__ void tc_split(uint16_t *hi, uint16_t *lo, float x) {
    const uint16_t h = sgt_f32_to_bf16(x);
    *hi = h;
    *lo = sgt_f32_to_bf16(x - sgt_bf16_to_f32(h));
}

/* Stores the warp's 16 rows of acc (times mul) to rows t0 + r (r < nr) of a bf16 [T][64] head,
 * through the warp's f32 scratch [16][SLD]; a lane pair per row, 16-byte stores. */
__device__ __forceinline__ void tc_store_rows(uint16_t *dst, int64_t st, int64_t t0, int64_t nr, float *scr,
                                              const tc_acc (&acc)[TC_BD / 16], float mul, int lane) {
    using namespace nvcuda;
    constexpr int SLD = tc_bwd_lay::SLD;
    static_assert(TC_BD <= TC_KN, "the scratch holds a row of the output");
    __syncwarp(); /* the scratch is consumed */
#pragma unroll
    for (int dt = 0; dt < TC_BD / 16; dt++) wmma::store_matrix_sync(scr + dt * 16, acc[dt], SLD, wmma::mem_row_major);
    __syncwarp();
    const int r = lane >> 1, half = lane & 1;
    if (r < nr) {
        const float *sr = scr + r * SLD + half * (TC_BD / 2);
        uint16_t *dr = dst + (t0 + r) * st + half * (TC_BD / 2);
#pragma unroll
        for (int c = 0; c < TC_BD / 2; c += 8) {
            uint16_t o8[8];
#pragma unroll
            for (int u = 0; u < 8; u++) o8[u] = sgt_f32_to_bf16(sr[c + u] * mul);
            *reinterpret_cast<uint4 *>(dr + c) =
                make_uint4(o8[0] | (unsigned)o8[1] << 16, o8[2] | (unsigned)o8[3] << 16, o8[4] | (unsigned)o8[5] << 16,
                           o8[6] | (unsigned)o8[7] << 16);
        }
    }
}

__global__ void __launch_bounds__(NTHREADS)
    k_attn_bwd_kv_tc(const uint16_t *__restrict__ q, const uint16_t *__restrict__ k, const uint16_t *__restrict__ v,
                     const uint16_t *__restrict__ dy, const float *__restrict__ lse, const float *__restrict__ Di,
                     uint16_t *__restrict__ dk, uint16_t *__restrict__ dv, st3 sq, st3 sk, st3 sv, st3 sg, st3 sdk,
                     st3 sdv, int64_t BH, int64_t H, int64_t Tq, int64_t Tk, float scale, bool causal) {
    using namespace nvcuda;
    typedef tc_bwd_lay L;
    constexpr int KN = TC_KN, XLD = L::XLD, SLD = L::SLD, PLD = L::PLD;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    uint16_t *Ks = reinterpret_cast<uint16_t *>(smem_raw + L::X0), *Vs = reinterpret_cast<uint16_t *>(smem_raw + L::X1),
             *Qs = reinterpret_cast<uint16_t *>(smem_raw + L::X2), *Gs = reinterpret_cast<uint16_t *>(smem_raw + L::X3);
    float *Sw = reinterpret_cast<float *>(smem_raw + L::S) + warp * 16 * SLD;
    float *Dw = reinterpret_cast<float *>(smem_raw + L::DP) + warp * 16 * SLD;
    uint16_t *Phw = reinterpret_cast<uint16_t *>(smem_raw + L::P0) + warp * 16 * PLD;
    uint16_t *Plw = reinterpret_cast<uint16_t *>(smem_raw + L::P1) + warp * 16 * PLD;
    uint16_t *Shw = reinterpret_cast<uint16_t *>(smem_raw + L::P2) + warp * 16 * PLD;
    uint16_t *Slw = reinterpret_cast<uint16_t *>(smem_raw + L::P3) + warp * 16 * PLD;
    float *Ls = reinterpret_cast<float *>(smem_raw + L::LS), *Ds = reinterpret_cast<float *>(smem_raw + L::DI);

    /* the first key tiles are seen by the most queries: lowest block numbers */
    const int64_t bh = blockIdx.x % BH, kt = (int64_t)blockIdx.x / BH;
    const int64_t b = bh / H, h = bh % H, j0 = kt * 64, off = causal ? Tk - Tq : Tk;
    const uint16_t *qb = head(q, sq, b, h), *gb = head(dy, sg, b, h);
    tc_load<TC_BD>(Ks, 64, head(k, sk, b, h), sk.t, j0, Tk);
    tc_load<TC_BD>(Vs, 64, head(v, sv, b, h), sv.t, j0, Tk);

    const int r = lane >> 1, half = lane & 1;
    const int64_t j = j0 + warp * 16 + r; /* the lane's key */
    const float *Sr = Sw + r * SLD + half * (KN / 2), *Dr = Dw + r * SLD + half * (KN / 2);
    const int po = r * PLD + half * (KN / 2);

    tc_fa kf[TC_BD / 16], vf[TC_BD / 16];
    tc_acc dva[TC_BD / 16], dka[TC_BD / 16];
#pragma unroll
    for (int dt = 0; dt < TC_BD / 16; dt++) {
        wmma::fill_fragment(dva[dt], 0.0f);
        wmma::fill_fragment(dka[dt], 0.0f);
    }
    /* query i sees key j0 when i >= j0 - off */
    const int64_t first = (j0 - off > 0 ? j0 - off : 0) / KN * KN;
    for (int64_t i0 = first; i0 < Tq; i0 += KN) {
        __syncthreads(); /* the previous Q, dY, lse, Di are consumed (K, V loaded, the first time) */
        tc_load<TC_BD>(Qs, KN, qb, sq.t, i0, Tq);
        tc_load<TC_BD>(Gs, KN, gb, sg.t, i0, Tq);
        if (threadIdx.x < KN) {
            const int64_t i = i0 + threadIdx.x;
            Ls[threadIdx.x] = i < Tq ? lse[bh * Tq + i] : 0.0f;
            Ds[threadIdx.x] = i < Tq ? Di[bh * Tq + i] : 0.0f;
        }
        __syncthreads();
        if (i0 == first) {
#pragma unroll
            for (int kk = 0; kk < TC_BD / 16; kk++) {
                wmma::load_matrix_sync(kf[kk], as_bf(Ks + warp * 16 * XLD + kk * 16), XLD);
                wmma::load_matrix_sync(vf[kk], as_bf(Vs + warp * 16 * XLD + kk * 16), XLD);
            }
        }
        /* warp-uniform: no query of the tile sees any of the warp's keys */
        if (i0 + KN - 1 + off < j0 + warp * 16) continue;

        tc_abt(Sw, kf, Qs); /* S^T = K Q^T: the warp's 16 keys against the tile's queries */
        tc_abt(Dw, vf, Gs); /* dP^T = V dY^T */
        __syncwarp();
#pragma unroll 8
        for (int c = 0; c < KN / 2; c++) {
            const int ic = half * (KN / 2) + c;
            const int64_t i = i0 + ic;
            const bool ok = i < Tq && j < Tk && j <= i + off;
            const float p = ok ? sgt_exp(Sr[c] * scale - Ls[ic]) : 0.0f;
            const float ds = ok ? p * (Dr[c] - Ds[ic]) : 0.0f;
            tc_split(Phw + po + c, Plw + po + c, p);
            tc_split(Shw + po + c, Slw + po + c, ds);
        }
        __syncwarp();
        tc_wm(dva, Phw, Plw, Gs); /* dV += P^T dY */
        tc_wm(dka, Shw, Slw, Qs); /* dK += dS^T Q */
    }

    /* every key of the tile gets its dk, dv (zeros when no query sees it) */
    const int64_t nr = Tk - (j0 + warp * 16);
    tc_store_rows(head(dk, sdk, b, h), sdk.t, j0 + warp * 16, nr, Sw, dka, scale, lane);
    tc_store_rows(head(dv, sdv, b, h), sdv.t, j0 + warp * 16, nr, Sw, dva, 1.0f, lane);
}

__global__ void __launch_bounds__(NTHREADS)
    k_attn_bwd_q_tc(const uint16_t *__restrict__ q, const uint16_t *__restrict__ k, const uint16_t *__restrict__ v,
                    const uint16_t *__restrict__ dy, const float *__restrict__ lse, const float *__restrict__ Di,
                    uint16_t *__restrict__ dq, st3 sq, st3 sk, st3 sv, st3 sg, st3 sdq, int64_t BH, int64_t H,
                    int64_t Tq, int64_t Tk, float scale, int64_t nqt, bool causal) {
    using namespace nvcuda;
    typedef tc_bwd_lay L;
    constexpr int KN = TC_KN, XLD = L::XLD, SLD = L::SLD, PLD = L::PLD;
    extern __shared__ __align__(16) unsigned char smem_raw[];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    uint16_t *Qs = reinterpret_cast<uint16_t *>(smem_raw + L::X0), *Gs = reinterpret_cast<uint16_t *>(smem_raw + L::X1),
             *Ks = reinterpret_cast<uint16_t *>(smem_raw + L::X2), *Vs = reinterpret_cast<uint16_t *>(smem_raw + L::X3);
    float *Sw = reinterpret_cast<float *>(smem_raw + L::S) + warp * 16 * SLD;
    float *Dw = reinterpret_cast<float *>(smem_raw + L::DP) + warp * 16 * SLD;
    uint16_t *Shw = reinterpret_cast<uint16_t *>(smem_raw + L::P0) + warp * 16 * PLD;
    uint16_t *Slw = reinterpret_cast<uint16_t *>(smem_raw + L::P1) + warp * 16 * PLD;

    const auto [bh, b, h, i0, nq] = qtile_of<TC_BQ>(BH, H, Tq, nqt);
    const int64_t off = causal ? Tk - Tq : Tk;
    const uint16_t *kb = head(k, sk, b, h), *vb = head(v, sv, b, h);
    tc_load<TC_BD>(Qs, TC_BQ, head(q, sq, b, h), sq.t, i0, Tq);
    tc_load<TC_BD>(Gs, TC_BQ, head(dy, sg, b, h), sg.t, i0, Tq);

    const int r = lane >> 1, half = lane & 1;
    const int64_t i = i0 + warp * 16 + r; /* the lane's query */
    const bool row_ok = warp * 16 + r < nq;
    const float lse_i = row_ok ? lse[bh * Tq + i] : 0.0f, di = row_ok ? Di[bh * Tq + i] : 0.0f;
    const float *Sr = Sw + r * SLD + half * (KN / 2), *Dr = Dw + r * SLD + half * (KN / 2);
    const int po = r * PLD + half * (KN / 2);

    tc_fa qf[TC_BD / 16], gf[TC_BD / 16];
    tc_acc dqa[TC_BD / 16];
#pragma unroll
    for (int dt = 0; dt < TC_BD / 16; dt++) wmma::fill_fragment(dqa[dt], 0.0f);
    const int64_t kend = i0 + nq + off < Tk ? i0 + nq + off : Tk, wend = i0 + warp * 16 + 15 + off;
    for (int64_t j0 = 0; j0 < kend; j0 += KN) {
        __syncthreads(); /* the previous K, V are consumed (Q, dY loaded, the first time) */
        tc_load<TC_BD>(Ks, KN, kb, sk.t, j0, Tk);
        tc_load<TC_BD>(Vs, KN, vb, sv.t, j0, Tk);
        __syncthreads();
        if (j0 == 0) {
#pragma unroll
            for (int kk = 0; kk < TC_BD / 16; kk++) {
                wmma::load_matrix_sync(qf[kk], as_bf(Qs + warp * 16 * XLD + kk * 16), XLD);
                wmma::load_matrix_sync(gf[kk], as_bf(Gs + warp * 16 * XLD + kk * 16), XLD);
            }
        }
        if (j0 > wend) continue; /* warp-uniform: every key of the tile masked for the warp */

        tc_abt(Sw, qf, Ks); /* S = Q K^T */
        tc_abt(Dw, gf, Vs); /* dP = dY V^T */
        __syncwarp();
#pragma unroll 8
        for (int c = 0; c < KN / 2; c++) {
            const int64_t j = j0 + half * (KN / 2) + c;
            const bool ok = row_ok && j < Tk && j <= i + off;
            const float p = ok ? sgt_exp(Sr[c] * scale - lse_i) : 0.0f;
            tc_split(Shw + po + c, Slw + po + c, ok ? p * (Dr[c] - di) : 0.0f);
        }
        __syncwarp();
        tc_wm(dqa, Shw, Slw, Ks); /* dQ += dS K */
    }
    tc_store_rows(head(dq, sdq, b, h), sdq.t, i0 + warp * 16, nq - warp * 16, Sw, dqa, scale, lane);
}

/* ---- host side ---- */

/* rows per warp: fewer in f64, whose registers are twice the size */
template <typename A> constexpr int fwd_rw() { return sizeof(A) == 8 ? 8 : 16; }
template <typename A> constexpr int bwd_rw() { return sizeof(A) == 8 ? 4 : 8; }

/* Opts a kernel in to `bytes` of dynamic shared memory (once per instantiation), failing clearly
 * when the device has less. */
template <typename K> void use_smem(K kernel, size_t bytes, const char *name, bool *done) {
    if (*done) return;
    int dev = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    SGT_CHECK(bytes <= (size_t)optin, "attention: %s needs %zu bytes of shared memory per block, the device allows %d",
              name, bytes, optin);
    if (bytes > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    *done = true;
}

unsigned grid_of(int64_t blocks, const char *op) {
    SGT_CHECK(blocks <= 0x7fffffff, "%s: %lld blocks exceed CUDA's grid", op, (long long)blocks);
    return (unsigned)blocks;
}

template <typename T, int DB> void fwd_run(const sgt_opcall *call) {
    typedef typename io<T>::A A;
    constexpr int RW = fwd_rw<A>(), BQ = NWARP * RW;
    constexpr size_t smem = fwd_smem<A, DB, RW>();
    static bool done = false;
    use_smem(k_attn_fwd<T, DB, RW>, smem, "k_attn_fwd", &done);
    const sgt_tensor *q = call->src[0], *k = call->src[1], *v = call->src[2];
    sgt_tensor *y = call->dst[0], *lse = call->dst[1];
    const int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Tk = k->shape[2];
    const int64_t BH = B * H, nqt = (Tq + BQ - 1) / BQ;
    k_attn_fwd<T, DB, RW><<<grid_of(BH * nqt, "attention"), NTHREADS, smem, sgt_cuda_stream()>>>(
        (const T *)sgt_ptr(q), (const T *)sgt_ptr(k), (const T *)sgt_ptr(v), (T *)sgt_ptr(y), (A *)sgt_ptr(lse),
        strides_of(q), strides_of(k), strides_of(v), strides_of(y), BH, H, Tq, Tk, (int)q->shape[3], (A)call->fp[0], nqt,
        call->nsrc > 3 ? (const int32_t *)sgt_ptr(call->src[3]) : (const int32_t *)NULL, call->ip[0] == 0);
    CUDA_LAUNCH_CHECK("k_attn_fwd");
}

/* Di = dy . y for every query row (k_attn_di), into the scratch buffer; NULL without rows. Both
 * backward paths start with it. */
template <typename T> typename io<T>::A *run_di(const sgt_opcall *call) {
    typedef typename io<T>::A A;
    const sgt_tensor *q = call->src[0], *y = call->src[3], *dy = call->src[5];
    const int64_t H = q->shape[1], Tq = q->shape[2], rows = q->shape[0] * H * Tq;
    if (rows <= 0) return NULL;
    A *Di = (A *)sgt_cuda_scratch(sizeof(A) * (size_t)rows);
    const int warps = NTHREADS / 32;
    const int64_t blocks = (rows + warps - 1) / warps;
    k_attn_di<T><<<blocks > 65536 ? 65536u : (unsigned)blocks, NTHREADS, 0, sgt_cuda_stream()>>>(
        (const T *)sgt_ptr(y), (const T *)sgt_ptr(dy), Di, strides_of(y), strides_of(dy), H, Tq, (int)q->shape[3], rows);
    CUDA_LAUNCH_CHECK("k_attn_di");
    return Di;
}

template <typename T, int DB> void bwd_run(const sgt_opcall *call) {
    typedef typename io<T>::A A;
    constexpr int RW = bwd_rw<A>(), BT = NWARP * RW;
    constexpr size_t smem_kv = bwd_kv_smem<A, DB, RW>(), smem_q = bwd_q_smem<A, DB, RW>();
    static bool done_kv = false, done_q = false;
    use_smem(k_attn_bwd_kv<T, DB, RW>, smem_kv, "k_attn_bwd_kv", &done_kv);
    use_smem(k_attn_bwd_q<T, DB, RW>, smem_q, "k_attn_bwd_q", &done_q);
    const sgt_tensor *q = call->src[0], *k = call->src[1], *v = call->src[2], *lse = call->src[4];
    const sgt_tensor *dy = call->src[5];
    sgt_tensor *dq = call->dst[0], *dk = call->dst[1], *dv = call->dst[2];
    const int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Tk = k->shape[2];
    const int D = (int)q->shape[3];
    const int64_t BH = B * H, rows = BH * Tq;
    const A scale = (A)call->fp[0];
    cudaStream_t s = sgt_cuda_stream();
    A *Di = run_di<T>(call);
    /* every key gets its dk, dv written (zeros when no query sees it, e.g. Tq = 0) */
    const int64_t nkt = (Tk + BT - 1) / BT, nqt = (Tq + BT - 1) / BT;
    k_attn_bwd_kv<T, DB, RW><<<grid_of(BH * nkt, "attention_bwd"), NTHREADS, smem_kv, s>>>(
        (const T *)sgt_ptr(q), (const T *)sgt_ptr(k), (const T *)sgt_ptr(v), (const T *)sgt_ptr(dy),
        (const A *)sgt_ptr(lse), Di, (T *)sgt_ptr(dk), (T *)sgt_ptr(dv), strides_of(q), strides_of(k), strides_of(v),
        strides_of(dy), strides_of(dk), strides_of(dv), BH, H, Tq, Tk, D, scale, call->ip[0] == 0);
    CUDA_LAUNCH_CHECK("k_attn_bwd_kv");
    if (rows > 0) {
        k_attn_bwd_q<T, DB, RW><<<grid_of(BH * nqt, "attention_bwd"), NTHREADS, smem_q, s>>>(
            (const T *)sgt_ptr(q), (const T *)sgt_ptr(k), (const T *)sgt_ptr(v), (const T *)sgt_ptr(dy),
            (const A *)sgt_ptr(lse), Di, (T *)sgt_ptr(dq), strides_of(q), strides_of(k), strides_of(v), strides_of(dy),
            strides_of(dq), BH, H, Tq, Tk, D, scale, nqt, call->ip[0] == 0);
        CUDA_LAUNCH_CHECK("k_attn_bwd_q");
    }
}

/* the layout the kernels assume (ops.c makes it so) and the head-dim limit */
void check_call(const char *op, const sgt_opcall *call) {
    const int64_t D = call->src[0]->shape[3];
    SGT_CHECK(D <= 128, "%s: the CUDA kernels support head dims D <= 128, got D = %lld", op, (long long)D);
    for (int i = 0; i < call->nsrc + call->ndst; i++) {
        const sgt_tensor *x = i < call->nsrc ? call->src[i] : call->dst[i - call->nsrc];
        if (x->ndim != 4) continue; /* lse */
        SGT_CHECK(D <= 1 || x->stride[3] == 1, "%s: operand %d needs a unit stride along D (got %lld)", op, i,
                  (long long)x->stride[3]);
    }
}

/* Whether the tensor-core forward takes the call: bf16 with D = 64 or 128, and q, k, v, y with
 * 16-byte aligned rows (base 16-byte aligned, strides whole 8-element vectors where the dim has
 * more than one index), since it moves rows 16 bytes at a time. Anything else: k_attn_fwd. */
bool tc_fwd_ok(const sgt_opcall *call) {
    const int64_t D = call->src[0]->shape[3];
    if (call->src[0]->dtype != SGT_BF16 || (D != 64 && D != 128)) return false;
    const sgt_tensor *x4[4] = {call->src[0], call->src[1], call->src[2], call->dst[0]};
    for (const sgt_tensor *x : x4) {
        if ((uintptr_t)sgt_ptr(x) % 16 != 0) return false;
        for (int d = 0; d < 3; d++)
            if (x->shape[d] > 1 && x->stride[d] % 8 != 0) return false;
    }
    return true;
}

template <int DB> void fwd_tc_run(const sgt_opcall *call) {
    constexpr size_t smem = tc_lay<DB>::bytes;
    static bool done = false;
    use_smem(k_attn_fwd_tc<DB>, smem, "k_attn_fwd_tc", &done);
    const sgt_tensor *q = call->src[0], *k = call->src[1], *v = call->src[2];
    sgt_tensor *y = call->dst[0], *lse = call->dst[1];
    const int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Tk = k->shape[2];
    const int64_t BH = B * H, nqt = (Tq + TC_BQ - 1) / TC_BQ;
    k_attn_fwd_tc<DB><<<grid_of(BH * nqt, "attention"), NTHREADS, smem, sgt_cuda_stream()>>>(
        (const uint16_t *)sgt_ptr(q), (const uint16_t *)sgt_ptr(k), (const uint16_t *)sgt_ptr(v),
        (uint16_t *)sgt_ptr(y), (float *)sgt_ptr(lse), strides_of(q), strides_of(k), strides_of(v), strides_of(y), BH,
        H, Tq, Tk, (float)call->fp[0], nqt,
        call->nsrc > 3 ? (const int32_t *)sgt_ptr(call->src[3]) : (const int32_t *)NULL, call->ip[0] == 0);
    CUDA_LAUNCH_CHECK("k_attn_fwd_tc");
}

template <typename T> void fwd_dispatch(const sgt_opcall *call) {
    const int64_t D = call->src[0]->shape[3];
    if (tc_fwd_ok(call)) {
        if (D == 64) fwd_tc_run<64>(call);
        else fwd_tc_run<128>(call);
        return;
    }
    if (D <= 32) fwd_run<T, 32>(call);
    else if (D <= 64) fwd_run<T, 64>(call);
    else fwd_run<T, 128>(call);
}

/* Whether the tensor-core backward takes the call: bf16 with D = 64, and q, k, v, dy, dq, dk, dv
 * with 16-byte aligned rows (as tc_fwd_ok). Anything else: the CUDA-core kernels. */
bool tc_bwd_ok(const sgt_opcall *call) {
    if (call->src[0]->dtype != SGT_BF16 || call->src[0]->shape[3] != TC_BD) return false;
    const sgt_tensor *x7[7] = {call->src[0], call->src[1], call->src[2], call->src[5],
                               call->dst[0], call->dst[1], call->dst[2]};
    for (const sgt_tensor *x : x7) {
        if ((uintptr_t)sgt_ptr(x) % 16 != 0) return false;
        for (int d = 0; d < 3; d++)
            if (x->shape[d] > 1 && x->stride[d] % 8 != 0) return false;
    }
    return true;
}

void bwd_tc_run(const sgt_opcall *call) {
    typedef uint16_t T;
    static bool done_kv = false, done_q = false;
    use_smem(k_attn_bwd_kv_tc, tc_bwd_lay::kv_bytes, "k_attn_bwd_kv_tc", &done_kv);
    use_smem(k_attn_bwd_q_tc, tc_bwd_lay::q_bytes, "k_attn_bwd_q_tc", &done_q);
    const sgt_tensor *q = call->src[0], *k = call->src[1], *v = call->src[2], *lse = call->src[4];
    const sgt_tensor *dy = call->src[5];
    sgt_tensor *dq = call->dst[0], *dk = call->dst[1], *dv = call->dst[2];
    const int64_t B = q->shape[0], H = q->shape[1], Tq = q->shape[2], Tk = k->shape[2];
    const int64_t BH = B * H, rows = BH * Tq;
    const float scale = (float)call->fp[0];
    cudaStream_t s = sgt_cuda_stream();
    float *Di = run_di<T>(call);
    /* every key gets its dk, dv written (zeros when no query sees it, e.g. Tq = 0) */
    const int64_t nkt = (Tk + 63) / 64, nqt = (Tq + TC_BQ - 1) / TC_BQ;
    k_attn_bwd_kv_tc<<<grid_of(BH * nkt, "attention_bwd"), NTHREADS, tc_bwd_lay::kv_bytes, s>>>(
        (const T *)sgt_ptr(q), (const T *)sgt_ptr(k), (const T *)sgt_ptr(v), (const T *)sgt_ptr(dy),
        (const float *)sgt_ptr(lse), Di, (T *)sgt_ptr(dk), (T *)sgt_ptr(dv), strides_of(q), strides_of(k),
        strides_of(v), strides_of(dy), strides_of(dk), strides_of(dv), BH, H, Tq, Tk, scale, call->ip[0] == 0);
    CUDA_LAUNCH_CHECK("k_attn_bwd_kv_tc");
    if (rows > 0) {
        k_attn_bwd_q_tc<<<grid_of(BH * nqt, "attention_bwd"), NTHREADS, tc_bwd_lay::q_bytes, s>>>(
            (const T *)sgt_ptr(q), (const T *)sgt_ptr(k), (const T *)sgt_ptr(v), (const T *)sgt_ptr(dy),
            (const float *)sgt_ptr(lse), Di, (T *)sgt_ptr(dq), strides_of(q), strides_of(k), strides_of(v),
            strides_of(dy), strides_of(dq), BH, H, Tq, Tk, scale, nqt, call->ip[0] == 0);
        CUDA_LAUNCH_CHECK("k_attn_bwd_q_tc");
    }
}

template <typename T> void bwd_dispatch(const sgt_opcall *call) {
    const int64_t D = call->src[0]->shape[3];
    if (tc_bwd_ok(call)) {
        bwd_tc_run(call);
        return;
    }
    if (D <= 32) bwd_run<T, 32>(call);
    else if (D <= 64) bwd_run<T, 64>(call);
    else bwd_run<T, 128>(call);
}

} // namespace

void sgt_cuda_attention(const sgt_opcall *call) {
    check_call("attention", call);
    const sgt_tensor *q = call->src[0];
    if (q->shape[0] * q->shape[1] * q->shape[2] == 0) return;
    switch (q->dtype) {
    case SGT_F32: fwd_dispatch<float>(call); break;
    case SGT_F64: fwd_dispatch<double>(call); break;
    case SGT_BF16: fwd_dispatch<uint16_t>(call); break;
    default: SGT_FAIL("attention: no CUDA kernel for %s", sgt_dtype_name(q->dtype));
    }
}

void sgt_cuda_attention_bwd(const sgt_opcall *call) {
    check_call("attention_bwd", call);
    const sgt_tensor *q = call->src[0], *k = call->src[1];
    if (q->shape[0] * q->shape[1] * k->shape[2] == 0) return;
    switch (q->dtype) {
    case SGT_F32: bwd_dispatch<float>(call); break;
    case SGT_F64: bwd_dispatch<double>(call); break;
    case SGT_BF16: bwd_dispatch<uint16_t>(call); break;
    default: SGT_FAIL("attention_bwd: no CUDA kernel for %s", sgt_dtype_name(q->dtype));
    }
}
