/* bsparse_tc.cuh: the block-sparse SwiGLU on tensor cores, bf16 in and out, f32 accumulation
 * (the training and prefill fast path of bsparse.cu; the plain kernels there stay the oracle).
 *
 * Per call, on the device and without a host round trip (so a CUDA graph can capture it):
 *   1. grouping: the N k (token, block) slots sorted by block, stably (k_tc_count, k_tc_place:
 *      one CTA per block scans every slot in order with a block-wide prefix sum, so the order is
 *      the slots' own: deterministic, no atomics); off[b] .. off[b+1] are block b's sorted rows,
 *      order[p] the slot at sorted row p; tiles of TC_TM sorted rows never span two blocks
 *      (tile_off[b] is block b's first tile);
 *   2. row GEMMs (k_tc_rows): out[p, n] = sum_k A[p, k] B_b[k, n] over each block's sorted rows,
 *      A's rows gathered (x or dy of the slot's token, or the sorted hiddens), B the block's
 *      slice of a weight; one launch for all blocks (a CTA per tile, idle past the last tile);
 *        forward:  [G | U] = x Wg_b^T | x Wu_b^T, H = m silu(G) U           (epilogue EP_GU)
 *                  Ys = H Wd[:, b]^T into the slot's row                   (EP_SLOT)
 *        backward: dH = dy Wd[:, b], then Hm = m h, dG, dU, dm's partials  (EP_DH)
 *                  dXs = [dG | dU] [Wg_b; Wu_b]                            (EP_SLOT)
 *   3. weight GEMMs (k_tc_wgrad): out_b[m, n] = sum over block b's rows p of A[p, m] B[p, n]
 *      (dWd_b = dy^T Hm, dWg_b = dG^T x, dWu_b = dU^T x), rows in sorted order;
 *   4. a segmented reduction per token over its k slot rows, in slot order (y, dx, dm).
 * Every sum has a fixed order, so results are reproducible run to run.
 *
 * Shapes it takes: C % 8 == 0 and bs % 16 == 0 (16-byte vector loads, 16x16x16 fragments);
 * bsparse.cu checks them and says so otherwise.
 *
 * This file holds only device code plus the launch sequence, written against a small set of
 * CUDA features (no shuffles, no CUB), so that tests/tensor/test_bsparse_tc_emu.cpp can run the
 * same kernels on the CPU through a host emulation of CTAs, __syncthreads and WMMA: the test
 * suite checks their indexing and arithmetic on every machine. TC_LAUNCH is defined by the
 * includer (a <<<>>> launch with a check, or the emulator's). */
#ifndef SGT_BSPARSE_TC_CUH
#define SGT_BSPARSE_TC_CUH

#include <stdint.h>

#include "../bf16.h"

#define TC_THREADS 128 /* 4 warps per CTA */
#define TC_TM 64       /* sorted rows (or output rows) per tile */
#define TC_TK 32       /* reduction depth per stage */
#define TC_UNITS 64    /* hidden units per tile of the unit-wide GEMMs */
#define TC_PAD 8       /* smem row padding (elements): keeps fragments 32-byte aligned, spreads banks */

#ifndef TC_ASSERT_ALIGNED /* the emulator checks the alignment of every vector access */
#define TC_ASSERT_ALIGNED(p, n) ((void)0)
#endif

namespace tcw = nvcuda::wmma;

typedef uint16_t tc_bf16; /* bf16 as stored by the tensors (../bf16.h) */

__device__ inline float tc_ld(tc_bf16 v) { return sgt_bf16_to_f32(v); }
__device__ inline tc_bf16 tc_st(float v) { return sgt_f32_to_bf16(v); }
__device__ inline float tc_silu(float g) { return g / (1.0f + expf(-g)); }
__device__ inline float tc_dsilu(float g) {
    const float s = 1.0f / (1.0f + expf(-g));
    return s * (1.0f + g * (1.0f - s));
}

/* the arguments every kernel shares (device pointers; sizes in elements) */
struct tc_args {
    int64_t N, C, I, k, bs, nb, nslot;
    const tc_bf16 *x, *wg, *wu, *wd, *m, *G, *U, *dy; /* G, U, dy: backward only */
    const int32_t *idx;
    tc_bf16 *y, *Gout, *Uout;               /* forward outputs */
    tc_bf16 *dx, *dwg, *dwu, *dwd, *dm;     /* backward outputs */
    /* scratch */
    int32_t *cnt, *off, *tile_off, *order; /* [nb], [nb + 1], [nb + 1], [nslot] */
    tc_bf16 *H;                            /* [nslot, bs] sorted: m silu(G) U (forward), m h (backward) */
    tc_bf16 *dGU;                          /* [nslot, 2 bs] sorted: dG | dU (backward) */
    float *slot_out;                       /* [nslot, C] by slot: Ys (forward), dXs (backward) */
    float *dm_part;                        /* [nslot, units tiles] (backward) */
};

/* ---- 1. grouping ---- */

/* sum over the CTA of one value per thread (fixed tree); every thread gets the total */
__device__ inline int tc_block_sum(int v, int *sh) {
    const int t = threadIdx.x;
    sh[t] = v;
    __syncthreads();
    for (int w = TC_THREADS / 2; w > 0; w >>= 1) {
        if (t < w) sh[t] += sh[t + w];
        __syncthreads();
    }
    const int r = sh[0];
    __syncthreads();
    return r;
}

/* cnt[b] = how many slots chose block b (CTA b); CTA 0 also checks every index */
__global__ void k_tc_count(tc_args a) {
    __shared__ int sh[TC_THREADS];
    const int b = blockIdx.x;
    int c = 0;
    for (int64_t s = threadIdx.x; s < a.nslot; s += TC_THREADS) {
        const int32_t v = a.idx[s];
        if (b == 0 && (v < 0 || v >= a.nb)) __trap(); /* a bad block index: no kernel may read past the weights */
        c += v == b;
    }
    c = tc_block_sum(c, sh);
    if (threadIdx.x == 0) a.cnt[b] = c;
}

/* CTA b: its offsets from the counts before it, then its slots in ascending order into order[] */
__global__ void k_tc_place(tc_args a) {
    __shared__ int scan[2][TC_THREADS];
    __shared__ int base_sh[2];
    const int b = blockIdx.x, t = threadIdx.x;
    if (t == 0) {
        int base = 0, tiles = 0;
        for (int j = 0; j < b; j++) {
            base += a.cnt[j];
            tiles += (a.cnt[j] + TC_TM - 1) / TC_TM;
        }
        a.off[b] = base;
        a.tile_off[b] = tiles;
        if (b == a.nb - 1) {
            a.off[b + 1] = base + a.cnt[b];
            a.tile_off[b + 1] = tiles + (a.cnt[b] + TC_TM - 1) / TC_TM;
        }
        base_sh[0] = base;
    }
    __syncthreads();
    int run = base_sh[0];
    for (int64_t s0 = 0; s0 < a.nslot; s0 += TC_THREADS) {
        const int64_t s = s0 + t;
        const int f = s < a.nslot && a.idx[s] == b;
        /* inclusive Hillis-Steele scan of the flags over the CTA, double-buffered */
        int cur = 0;
        scan[0][t] = f;
        __syncthreads();
        for (int w = 1; w < TC_THREADS; w <<= 1) {
            const int v = scan[cur][t] + (t >= w ? scan[cur][t - w] : 0);
            scan[cur ^ 1][t] = v;
            cur ^= 1;
            __syncthreads();
        }
        const int incl = scan[cur][t], total = scan[cur][TC_THREADS - 1];
        if (f) a.order[run + incl - 1] = (int32_t)s;
        run += total;
        __syncthreads(); /* the scan buffer is reused */
    }
}

/* ---- shared tile machinery ---- */

/* 16-byte vector of 8 bf16 */
struct tc_vec {
    uint32_t w[4];
};

__device__ inline tc_vec tc_zero_vec() {
    tc_vec v;
    v.w[0] = v.w[1] = v.w[2] = v.w[3] = 0;
    return v;
}

__device__ inline tc_vec tc_load_vec(const tc_bf16 *p) {
    TC_ASSERT_ALIGNED(p, 16);
    return *reinterpret_cast<const tc_vec *>(p);
}

__device__ inline void tc_store_vec(tc_bf16 *p, tc_vec v) {
    TC_ASSERT_ALIGNED(p, 16);
    *reinterpret_cast<tc_vec *>(p) = v;
}

/* the block (group) of tile `tile` by binary search over tile_off, or -1 past the last tile */
__device__ inline int tc_tile_block(const tc_args &a, int tile) {
    if (tile >= a.tile_off[a.nb]) return -1;
    int lo = 0, hi = (int)a.nb - 1; /* the last b with tile_off[b] <= tile */
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (a.tile_off[mid] <= tile) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* ---- 2. row GEMMs ---- */

enum { TC_GU = 0, TC_DOWN = 1, TC_DH = 2, TC_DX = 3 };

/* The operands of each row GEMM, per 8-element vector. Sorted row p of block b (slot s =
 * order[p], token t = s / k), reduction index kk (a multiple of 8), output column n:
 *   A(p, kk..kk+7):  TC_GU: x[t, kk]        TC_DOWN: H[p, kk]       TC_DH: dy[t, kk]
 *                    TC_DX: dGU[p, kk]
 *   B: TC_GU and TC_DOWN store B as rows of n along k (k-major: "B^T row n"); TC_DH and TC_DX as
 *   rows of k along n (n-major). */
template <int P> struct tc_rows {
    static constexpr bool kmajor = P == TC_GU || P == TC_DOWN;
    static constexpr int TN = P == TC_DH ? TC_UNITS : 2 * TC_UNITS; /* output columns per tile */
    __device__ static int64_t K(const tc_args &a) {
        return P == TC_GU || P == TC_DH ? a.C : P == TC_DOWN ? a.bs : 2 * a.bs;
    }
    /* the GEMM's output width (for the column tiles): units for GU/DH, C for DOWN/DX */
    __device__ static int64_t Nout(const tc_args &a) { return P == TC_GU || P == TC_DH ? a.bs : a.C; }
    __device__ static const tc_bf16 *arow(const tc_args &a, int64_t p, int64_t s) {
        const int64_t t = s / a.k;
        switch (P) {
        case TC_GU: return a.x + t * a.C;
        case TC_DOWN: return a.H + p * a.bs;
        case TC_DH: return a.dy + t * a.C;
        default: return a.dGU + p * 2 * a.bs;
        }
    }
    /* k-major B: the vector of B(kk..kk+7, n) of tile column n (n0 = the tile's first unit or
     * channel), or NULL when column n is outside the output */
    __device__ static const tc_bf16 *bk(const tc_args &a, int64_t b, int64_t n0, int n, int64_t kk) {
        if (P == TC_GU) { /* columns 0..63: gate units n0 + n; 64..127: up units n0 + n - 64 */
            const bool up = n >= TC_UNITS;
            const int64_t r = n0 + (up ? n - TC_UNITS : n);
            if (r >= a.bs) return nullptr;
            return (up ? a.wu : a.wg) + (b * a.bs + r) * a.C + kk;
        }
        const int64_t c = n0 + n; /* TC_DOWN: B(r, c) = wd[c, b bs + r] */
        if (c >= a.C) return nullptr;
        return a.wd + c * a.I + b * a.bs + kk;
    }
    /* n-major B: the vector of B(kk, n..n+7) */
    __device__ static const tc_bf16 *bn(const tc_args &a, int64_t b, int64_t n0, int n, int64_t kk) {
        if (P == TC_DH) { /* B(c, r) = wd[c, b bs + r] */
            const int64_t r = n0 + n;
            if (r >= a.bs) return nullptr;
            return a.wd + kk * a.I + b * a.bs + r;
        }
        const int64_t c = n0 + n; /* TC_DX: B(kk, c) = wg or wu [b bs + kk mod bs, c] */
        if (c >= a.C) return nullptr;
        const bool up = kk >= a.bs;
        return (up ? a.wu : a.wg) + (b * a.bs + (up ? kk - a.bs : kk)) * a.C + c;
    }
};

/* the bytes of a row GEMM CTA's shared memory: the A and B stages, reused for the f32 tile */
template <int P> struct tc_rows_smem {
    static constexpr int TN = tc_rows<P>::TN;
    static constexpr int LDA = TC_TK + TC_PAD;
    static constexpr int LDB = tc_rows<P>::kmajor ? TC_TK + TC_PAD : TN + TC_PAD;
    static constexpr int B_ELEMS = tc_rows<P>::kmajor ? TN * LDB : TC_TK * LDB;
    static constexpr int LDO = TN + 4;
    static constexpr int STAGE = (TC_TM * LDA + B_ELEMS) * 2;
    static constexpr int OUT = TC_TM * LDO * 4 + (P == TC_DH ? 2 * TC_TM * 4 : 0); /* + dm's partials */
    static constexpr int BYTES = STAGE > OUT ? STAGE : OUT;
};

/* grid: x = tiles (an upper bound; CTAs past the last tile return), y = column tiles */
template <int P> __global__ void __launch_bounds__(TC_THREADS) k_tc_rows(tc_args a) {
    typedef tc_rows<P> R;
    typedef tc_rows_smem<P> S;
    constexpr int TN = R::TN, WN = TN / 2, FN = WN / 16; /* 2 x 2 warps: each 32 rows x TN/2 columns */
    static_assert(S::BYTES + TC_TM * 8 + 16 <= 48 * 1024, "static shared memory over 48 KB");
    __shared__ __align__(128) unsigned char smem[S::BYTES];
    __shared__ int64_t slot_of[TC_TM];
    __shared__ int blk_sh, rows_sh;
    __shared__ int64_t p0_sh;
    tc_bf16 *As = reinterpret_cast<tc_bf16 *>(smem);
    tc_bf16 *Bs = As + TC_TM * S::LDA;
    float *Os = reinterpret_cast<float *>(smem);
    const int t = threadIdx.x, warp = t / 32, wr = warp / 2, wc = warp % 2;
    if (t == 0) {
        const int b = tc_tile_block(a, blockIdx.x);
        blk_sh = b;
        if (b >= 0) {
            const int64_t p0 = a.off[b] + (int64_t)(blockIdx.x - a.tile_off[b]) * TC_TM, end = a.off[b + 1];
            p0_sh = p0;
            rows_sh = (int)(end - p0 < TC_TM ? end - p0 : TC_TM);
        }
    }
    __syncthreads();
    const int b = blk_sh;
    if (b < 0) return; /* CTA-uniform */
    const int rows = rows_sh;
    const int64_t p0 = p0_sh, n0 = (int64_t)blockIdx.y * (P == TC_GU || P == TC_DH ? TC_UNITS : TN);
    if (n0 >= R::Nout(a)) return;
    for (int i = t; i < TC_TM; i += TC_THREADS) slot_of[i] = i < rows ? a.order[p0 + i] : -1;
    __syncthreads();

    tcw::fragment<tcw::accumulator, 16, 16, 16, float> acc[2][FN];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < FN; j++) tcw::fill_fragment(acc[i][j], 0.0f);
    const int64_t K = R::K(a);
    for (int64_t k0 = 0; k0 < K; k0 += TC_TK) {
        /* A: TC_TM rows x TC_TK, 4 vectors per row */
        for (int v = t; v < TC_TM * (TC_TK / 8); v += TC_THREADS) {
            const int i = v / (TC_TK / 8), kk = (v % (TC_TK / 8)) * 8;
            const int64_t s = slot_of[i];
            tc_vec val = tc_zero_vec();
            if (s >= 0 && k0 + kk < K) val = tc_load_vec(R::arow(a, p0 + i, s) + k0 + kk);
            tc_store_vec(As + i * S::LDA + kk, val);
        }
        if (R::kmajor) { /* Bs[n][kk] */
            for (int v = t; v < TN * (TC_TK / 8); v += TC_THREADS) {
                const int n = v / (TC_TK / 8), kk = (v % (TC_TK / 8)) * 8;
                tc_vec val = tc_zero_vec();
                if (k0 + kk < K) {
                    const tc_bf16 *p = R::bk(a, b, n0, n, k0 + kk);
                    if (p) val = tc_load_vec(p);
                }
                tc_store_vec(Bs + n * S::LDB + kk, val);
            }
        } else { /* Bs[kk][n] */
            for (int v = t; v < TC_TK * (TN / 8); v += TC_THREADS) {
                const int kk = v / (TN / 8), n = (v % (TN / 8)) * 8;
                tc_vec val = tc_zero_vec();
                if (k0 + kk < K) {
                    const tc_bf16 *p = R::bn(a, b, n0, n, k0 + kk);
                    if (p) val = tc_load_vec(p);
                }
                tc_store_vec(Bs + kk * S::LDB + n, val);
            }
        }
        __syncthreads();
        for (int ks = 0; ks < TC_TK; ks += 16) {
            tcw::fragment<tcw::matrix_a, 16, 16, 16, __nv_bfloat16, tcw::row_major> fa[2];
            for (int i = 0; i < 2; i++)
                tcw::load_matrix_sync(fa[i], reinterpret_cast<const __nv_bfloat16 *>(As + (wr * 32 + i * 16) * S::LDA + ks),
                                      S::LDA);
            for (int j = 0; j < FN; j++) {
                const int n = wc * WN + j * 16;
                if (R::kmajor) {
                    tcw::fragment<tcw::matrix_b, 16, 16, 16, __nv_bfloat16, tcw::col_major> fb;
                    tcw::load_matrix_sync(fb, reinterpret_cast<const __nv_bfloat16 *>(Bs + n * S::LDB + ks), S::LDB);
                    for (int i = 0; i < 2; i++) tcw::mma_sync(acc[i][j], fa[i], fb, acc[i][j]);
                } else {
                    tcw::fragment<tcw::matrix_b, 16, 16, 16, __nv_bfloat16, tcw::row_major> fb;
                    tcw::load_matrix_sync(fb, reinterpret_cast<const __nv_bfloat16 *>(Bs + ks * S::LDB + n), S::LDB);
                    for (int i = 0; i < 2; i++) tcw::mma_sync(acc[i][j], fa[i], fb, acc[i][j]);
                }
            }
        }
        __syncthreads();
    }
    /* the f32 tile into shared memory (over the stages, no longer needed) */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < FN; j++)
            tcw::store_matrix_sync(Os + (wr * 32 + i * 16) * S::LDO + wc * WN + j * 16, acc[i][j], S::LDO,
                                   tcw::mem_row_major);
    __syncthreads();

    if (P == TC_GU) { /* columns j (gate unit n0 + j) and 64 + j (up) */
        for (int e = t; e < rows * TC_UNITS; e += TC_THREADS) {
            const int i = e / TC_UNITS, j = e % TC_UNITS;
            const int64_t r = n0 + j;
            if (r >= a.bs) continue;
            const int64_t s = slot_of[i], p = p0 + i;
            const float g = Os[i * S::LDO + j], u = Os[i * S::LDO + TC_UNITS + j];
            a.Gout[s * a.bs + r] = tc_st(g);
            a.Uout[s * a.bs + r] = tc_st(u);
            a.H[p * a.bs + r] = tc_st(tc_ld(a.m[s]) * tc_silu(g) * u);
        }
    } else if (P == TC_DH) {
        /* per row: Hm, dG, dU for the tile's units, and the partial sum of dm = sum dH h over them
         * (two threads per row, each over half the units, then added in a fixed order) */
        float *part = reinterpret_cast<float *>(smem) + TC_TM * S::LDO; /* after the tile */
        for (int e = t; e < 2 * TC_TM; e += TC_THREADS) {
            const int i = e / 2, half = e % 2;
            float acc_dm = 0.0f;
            if (i < rows) {
                const int64_t s = slot_of[i], p = p0 + i;
                const float mi = tc_ld(a.m[s]);
                for (int j = half * (TC_UNITS / 2); j < (half + 1) * (TC_UNITS / 2); j++) {
                    const int64_t r = n0 + j;
                    if (r >= a.bs) break;
                    const float dh = Os[i * S::LDO + j], g = tc_ld(a.G[s * a.bs + r]), u = tc_ld(a.U[s * a.bs + r]);
                    const float sg = tc_silu(g), h = sg * u, dhm = dh * mi;
                    acc_dm += dh * h;
                    a.H[p * a.bs + r] = tc_st(mi * h);
                    a.dGU[p * 2 * a.bs + r] = tc_st(dhm * u * tc_dsilu(g));
                    a.dGU[p * 2 * a.bs + a.bs + r] = tc_st(dhm * sg);
                }
            }
            part[e] = acc_dm;
        }
        __syncthreads();
        const int64_t ny = (a.bs + TC_UNITS - 1) / TC_UNITS;
        for (int i = t; i < rows; i += TC_THREADS)
            a.dm_part[slot_of[i] * ny + blockIdx.y] = part[2 * i] + part[2 * i + 1];
    } else { /* TC_DOWN, TC_DX: the slot's row of slot_out */
        for (int e = t; e < rows * TN; e += TC_THREADS) {
            const int i = e / TN, j = e % TN;
            const int64_t c = n0 + j;
            if (c < a.C) a.slot_out[slot_of[i] * a.C + c] = Os[i * S::LDO + j];
        }
    }
}

/* ---- 3. weight GEMMs ---- */

enum { TC_DWD = 0, TC_DWG = 1, TC_DWU = 2 };

/* out_b[m, n] = sum over block b's sorted rows p of A(p, m) B(p, n):
 *   TC_DWD: m = channel c, n = unit r: A = dy[t_p, c], B = Hm[p, r], out dwd[c, b bs + r]
 *   TC_DWG/DWU: m = unit r, n = channel c: A = dG/dU[p, r], B = x[t_p, c], out dwg/dwu[b bs + r, c] */
template <int P> struct tc_wgrad {
    static constexpr int TN = P == TC_DWD ? TC_UNITS : 2 * TC_UNITS;
    static constexpr int LDA = TC_TM + TC_PAD; /* As[p][m]: matrix_a col-major */
    static constexpr int LDB = TN + TC_PAD;    /* Bs[p][n]: matrix_b row-major */
    static constexpr int LDO = TN + 4;
    static constexpr int STAGE = (TC_TK * LDA + TC_TK * LDB) * 2;
    static constexpr int OUT = TC_TM * LDO * 4;
    static constexpr int BYTES = STAGE > OUT ? STAGE : OUT;
    __device__ static int64_t M(const tc_args &a) { return P == TC_DWD ? a.C : a.bs; }
    __device__ static int64_t Nn(const tc_args &a) { return P == TC_DWD ? a.bs : a.C; }
    __device__ static const tc_bf16 *arow(const tc_args &a, int64_t p, int64_t s) {
        if (P == TC_DWD) return a.dy + (s / a.k) * a.C;
        return a.dGU + p * 2 * a.bs + (P == TC_DWU ? a.bs : 0);
    }
    __device__ static const tc_bf16 *brow(const tc_args &a, int64_t p, int64_t s) {
        if (P == TC_DWD) return a.H + p * a.bs;
        return a.x + (s / a.k) * a.C;
    }
};

/* grid: x = m tiles x n tiles, y = block b */
template <int P> __global__ void __launch_bounds__(TC_THREADS) k_tc_wgrad(tc_args a) {
    typedef tc_wgrad<P> W;
    constexpr int TN = W::TN, WN = TN / 2, FN = WN / 16;
    static_assert(W::BYTES + TC_TK * 8 <= 48 * 1024, "static shared memory over 48 KB");
    __shared__ __align__(128) unsigned char smem[W::BYTES];
    __shared__ int64_t slot_of[TC_TK];
    tc_bf16 *As = reinterpret_cast<tc_bf16 *>(smem);
    tc_bf16 *Bs = As + TC_TK * W::LDA;
    float *Os = reinterpret_cast<float *>(smem);
    const int t = threadIdx.x, warp = t / 32, wr = warp / 2, wc = warp % 2;
    const int64_t b = blockIdx.y, M = W::M(a), Nn = W::Nn(a);
    const int64_t ntn = (Nn + TN - 1) / TN, m0 = (int64_t)(blockIdx.x / ntn) * TC_TM, n0 = (int64_t)(blockIdx.x % ntn) * TN;
    if (m0 >= M) return;
    const int64_t beg = a.off[b], end = a.off[b + 1];

    tcw::fragment<tcw::accumulator, 16, 16, 16, float> acc[2][FN];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < FN; j++) tcw::fill_fragment(acc[i][j], 0.0f);
    for (int64_t q0 = beg; q0 < end; q0 += TC_TK) {
        for (int i = t; i < TC_TK; i += TC_THREADS) slot_of[i] = q0 + i < end ? a.order[q0 + i] : -1;
        __syncthreads();
        for (int v = t; v < TC_TK * (TC_TM / 8); v += TC_THREADS) {
            const int q = v / (TC_TM / 8), mm = (v % (TC_TM / 8)) * 8;
            const int64_t s = slot_of[q];
            tc_vec val = tc_zero_vec();
            if (s >= 0 && m0 + mm < M) val = tc_load_vec(W::arow(a, q0 + q, s) + m0 + mm);
            tc_store_vec(As + q * W::LDA + mm, val);
        }
        for (int v = t; v < TC_TK * (TN / 8); v += TC_THREADS) {
            const int q = v / (TN / 8), nn = (v % (TN / 8)) * 8;
            const int64_t s = slot_of[q];
            tc_vec val = tc_zero_vec();
            if (s >= 0 && n0 + nn < Nn) val = tc_load_vec(W::brow(a, q0 + q, s) + n0 + nn);
            tc_store_vec(Bs + q * W::LDB + nn, val);
        }
        __syncthreads();
        for (int ks = 0; ks < TC_TK; ks += 16) {
            tcw::fragment<tcw::matrix_a, 16, 16, 16, __nv_bfloat16, tcw::col_major> fa[2];
            for (int i = 0; i < 2; i++)
                tcw::load_matrix_sync(fa[i], reinterpret_cast<const __nv_bfloat16 *>(As + ks * W::LDA + wr * 32 + i * 16),
                                      W::LDA);
            for (int j = 0; j < FN; j++) {
                tcw::fragment<tcw::matrix_b, 16, 16, 16, __nv_bfloat16, tcw::row_major> fb;
                tcw::load_matrix_sync(fb, reinterpret_cast<const __nv_bfloat16 *>(Bs + ks * W::LDB + wc * WN + j * 16),
                                      W::LDB);
                for (int i = 0; i < 2; i++) tcw::mma_sync(acc[i][j], fa[i], fb, acc[i][j]);
            }
        }
        __syncthreads();
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < FN; j++)
            tcw::store_matrix_sync(Os + (wr * 32 + i * 16) * W::LDO + wc * WN + j * 16, acc[i][j], W::LDO,
                                   tcw::mem_row_major);
    __syncthreads();
    for (int e = t; e < TC_TM * TN; e += TC_THREADS) {
        const int i = e / TN, j = e % TN;
        const int64_t mi = m0 + i, nj = n0 + j;
        if (mi >= M || nj >= Nn) continue;
        const tc_bf16 v = tc_st(Os[i * W::LDO + j]);
        if (P == TC_DWD) a.dwd[mi * a.I + b * a.bs + nj] = v;
        else (P == TC_DWG ? a.dwg : a.dwu)[(b * a.bs + mi) * a.C + nj] = v;
    }
}

/* ---- 4. per-token reductions in slot order ---- */

/* out[t, c] = sum_j slot_out[t k + j, c]; with dm: dm[s] = sum of its partials */
__global__ void k_tc_reduce(tc_args a, tc_bf16 *out, bool with_dm) {
    const int64_t total = a.N * a.C;
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < total; e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t t = e / a.C, c = e - t * a.C;
        float acc = 0.0f;
        for (int64_t j = 0; j < a.k; j++) acc += a.slot_out[(t * a.k + j) * a.C + c];
        out[e] = tc_st(acc);
    }
    if (!with_dm) return;
    const int64_t ny = (a.bs + TC_UNITS - 1) / TC_UNITS;
    for (int64_t s = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; s < a.nslot; s += (int64_t)gridDim.x * blockDim.x) {
        float acc = 0.0f;
        for (int64_t y = 0; y < ny; y++) acc += a.dm_part[s * ny + y];
        a.dm[s] = tc_st(acc);
    }
}

/* ---- the launch sequences ---- */

/* bytes of scratch a call needs, and its layout (int tables, then the bf16 and f32 buffers) */
static inline size_t tc_scratch_bytes(int64_t nb, int64_t nslot, int64_t bs, int64_t C, bool backward) {
    size_t n = sizeof(int32_t) * (size_t)(3 * nb + 2 + nslot);
    n = (n + 255) & ~(size_t)255;
    n += 2 * (size_t)(nslot * bs) + (backward ? 2 * (size_t)(nslot * 2 * bs) : 0);
    n = (n + 255) & ~(size_t)255;
    n += 4 * (size_t)(nslot * C);
    if (backward) n += 4 * (size_t)(nslot * ((bs + TC_UNITS - 1) / TC_UNITS));
    return n;
}

static inline void tc_scratch_layout(tc_args *a, void *scratch, bool backward) {
    char *p = (char *)scratch;
    a->cnt = (int32_t *)p;
    a->off = a->cnt + a->nb;
    a->tile_off = a->off + a->nb + 1;
    a->order = a->tile_off + a->nb + 1;
    size_t o = sizeof(int32_t) * (size_t)(3 * a->nb + 2 + a->nslot);
    o = (o + 255) & ~(size_t)255;
    a->H = (tc_bf16 *)(p + o);
    o += 2 * (size_t)(a->nslot * a->bs);
    a->dGU = backward ? (tc_bf16 *)(p + o) : nullptr;
    if (backward) o += 2 * (size_t)(a->nslot * 2 * a->bs);
    o = (o + 255) & ~(size_t)255;
    a->slot_out = (float *)(p + o);
    o += 4 * (size_t)(a->nslot * a->C);
    a->dm_part = backward ? (float *)(p + o) : nullptr;
}

static inline unsigned tc_row_tiles(const tc_args &a) { return (unsigned)((a.nslot + TC_TM - 1) / TC_TM + a.nb); }
static inline unsigned tc_cdiv(int64_t n, int64_t d) { return (unsigned)((n + d - 1) / d); }
static inline unsigned tc_reduce_blocks(int64_t n) {
    int64_t b = (n + 255) / 256;
    return (unsigned)(b < 1 ? 1 : b > 65536 ? 65536 : b);
}

/* the forward: a's inputs, outputs and scratch set (tc_scratch_layout) */
static inline void tc_forward(tc_args a) {
    if (a.nslot == 0 || a.nb == 0) return;
    TC_LAUNCH(k_tc_count, dim3((unsigned)a.nb), dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_place, dim3((unsigned)a.nb), dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_rows<TC_GU>, dim3(tc_row_tiles(a), tc_cdiv(a.bs, TC_UNITS)), dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_rows<TC_DOWN>, dim3(tc_row_tiles(a), tc_cdiv(a.C, 2 * TC_UNITS)), dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_reduce, dim3(tc_reduce_blocks(a.N * a.C)), dim3(256), a, a.y, false);
}

static inline void tc_backward(tc_args a) {
    if (a.nslot == 0 || a.nb == 0) return;
    TC_LAUNCH(k_tc_count, dim3((unsigned)a.nb), dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_place, dim3((unsigned)a.nb), dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_rows<TC_DH>, dim3(tc_row_tiles(a), tc_cdiv(a.bs, TC_UNITS)), dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_wgrad<TC_DWD>, dim3(tc_cdiv(a.C, TC_TM) * tc_cdiv(a.bs, TC_UNITS), (unsigned)a.nb), dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_wgrad<TC_DWG>, dim3(tc_cdiv(a.bs, TC_TM) * tc_cdiv(a.C, 2 * TC_UNITS), (unsigned)a.nb),
              dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_wgrad<TC_DWU>, dim3(tc_cdiv(a.bs, TC_TM) * tc_cdiv(a.C, 2 * TC_UNITS), (unsigned)a.nb),
              dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_rows<TC_DX>, dim3(tc_row_tiles(a), tc_cdiv(a.C, 2 * TC_UNITS)), dim3(TC_THREADS), a);
    TC_LAUNCH(k_tc_reduce, dim3(tc_reduce_blocks(a.N * a.C > a.nslot ? a.N * a.C : a.nslot)), dim3(256), a, a.dx, true);
}

#endif
