/* cuda_emu.h: a host emulation of the CUDA features tensor/cuda/bsparse_tc.cuh uses, so its
 * kernels run on the CPU in the test suite (test_bsparse_tc_emu.cpp).
 *
 *   - a launch runs the grid's CTAs one after another; a CTA's threads are fibers (ucontext) run
 *     round-robin by a scheduler, each until it reaches __syncthreads or returns, so a barrier
 *     holds exactly as on the device: every thread is at it before any passes. A CTA whose threads
 *     do not all meet the same barriers (some returned while others wait) is reported;
 *   - __shared__ is `static`: one copy, shared by the fibers of the one CTA that runs at a time;
 *   - WMMA: a fragment is the whole 16x16 tile in every thread (the layout of a fragment's
 *     elements across lanes is opaque to the kernels, so this is an exact model of what they can
 *     observe); loads check the pointer (32-byte) and ldm alignment rules of the hardware;
 *     mma multiplies bf16 exactly and accumulates in f32 in k order (the device's order within a
 *     16-deep step is unspecified: the test's tolerance allows for it).
 * Not modelled: timing, occupancy, shared-memory limits beyond the 48 KB static check, warps. */
#ifndef SGT_CUDA_EMU_H
#define SGT_CUDA_EMU_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <functional>

#define __global__
#define __device__
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(n)

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};

namespace emu {
struct state {
    dim3 tid, bid, bdim, gdim;
    ucontext_t sched, *ctx;
    bool *done;
    char *stacks;
    int nthreads, cur;
    const std::function<void()> *body;
    long barriers; /* barriers passed (for the report) */
};
inline state &S() {
    static state s;
    return s;
}
[[noreturn]] inline void fail(const char *what) {
    fprintf(stderr, "cuda_emu: %s (block %u,%u thread %u)\n", what, S().bid.x, S().bid.y, S().tid.x);
    abort();
}
} // namespace emu

#define threadIdx (emu::S().tid)
#define blockIdx (emu::S().bid)
#define blockDim (emu::S().bdim)
#define gridDim (emu::S().gdim)

inline void __syncthreads() {
    emu::state &s = emu::S();
    swapcontext(&s.ctx[s.cur], &s.sched);
}

inline void __trap() { emu::fail("__trap()"); }

#define TC_ASSERT_ALIGNED(p, n) \
    do {                         \
        if ((uintptr_t)(p) % (n)) emu::fail("misaligned vector access"); \
    } while (0)

namespace emu {
constexpr size_t STACK = 256 << 10;

inline void entry() {
    state &s = S();
    (*s.body)();
    s.done[s.cur] = true;
    /* returns to uc_link: the scheduler */
}

/* runs body over the grid: CTAs in order, each CTA's threads as fibers */
inline void launch(dim3 grid, dim3 block, const std::function<void()> &body) {
    state &s = S();
    const int nt = (int)(block.x * block.y * block.z);
    if (block.y != 1 || block.z != 1) fail("only 1-D blocks are modelled");
    if (nt > s.nthreads) {
        free(s.ctx), free(s.done), free(s.stacks);
        s.ctx = (ucontext_t *)calloc((size_t)nt, sizeof(ucontext_t));
        s.done = (bool *)calloc((size_t)nt, sizeof(bool));
        s.stacks = (char *)malloc(STACK * (size_t)nt);
        s.nthreads = nt;
    }
    s.body = &body;
    s.gdim = grid;
    s.bdim = block;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                s.bid = dim3(bx, by, bz);
                for (int t = 0; t < nt; t++) {
                    getcontext(&s.ctx[t]);
                    s.ctx[t].uc_stack.ss_sp = s.stacks + STACK * (size_t)t;
                    s.ctx[t].uc_stack.ss_size = STACK;
                    s.ctx[t].uc_link = &s.sched;
                    makecontext(&s.ctx[t], entry, 0);
                    s.done[t] = false;
                }
                for (;;) { /* one round: every live thread to its next barrier or its end */
                    int ndone = 0, nwait = 0;
                    for (int t = 0; t < nt; t++) {
                        if (s.done[t]) {
                            ndone++;
                            continue;
                        }
                        s.cur = t;
                        s.tid = dim3((unsigned)t);
                        swapcontext(&s.sched, &s.ctx[t]);
                        if (s.done[t]) ndone++;
                        else nwait++;
                    }
                    if (nwait == 0) break;
                    if (ndone) fail("divergent barrier: some threads returned while others wait at __syncthreads");
                    s.barriers++;
                }
            }
}
} // namespace emu

/* ---- WMMA ---- */
struct __nv_bfloat16 {
    uint16_t x;
};

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {
    static constexpr bool is_row = true;
};
struct col_major {
    static constexpr bool is_row = false;
};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment {
    float v[16][16]; /* [row][col] of the tile the fragment holds */
};

inline float bf(const __nv_bfloat16 &h) {
    union { uint32_t u; float f; } c;
    c.u = (uint32_t)h.x << 16;
    return c.f;
}

template <typename L> inline void load_matrix_sync(fragment<matrix_a, 16, 16, 16, __nv_bfloat16, L> &f,
                                                   const __nv_bfloat16 *p, unsigned ldm) {
    if ((uintptr_t)p % 32 || ldm % 8) emu::fail("wmma load: pointer not 32-byte aligned or ldm not a multiple of 8");
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.v[r][c] = bf(L::is_row ? p[r * ldm + c] : p[r + c * ldm]);
}
template <typename L> inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, __nv_bfloat16, L> &f,
                                                   const __nv_bfloat16 *p, unsigned ldm) {
    if ((uintptr_t)p % 32 || ldm % 8) emu::fail("wmma load: pointer not 32-byte aligned or ldm not a multiple of 8");
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.v[r][c] = bf(L::is_row ? p[r * ldm + c] : p[r + c * ldm]);
}
inline void fill_fragment(fragment<accumulator, 16, 16, 16, float> &f, float x) {
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) f.v[r][c] = x;
}
template <typename La, typename Lb>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float> &d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, La> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, Lb> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c) {
    fragment<accumulator, 16, 16, 16, float> o;
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 16; n++) {
            float s = c.v[r][n];
            for (int k = 0; k < 16; k++) s += a.v[r][k] * b.v[k][n];
            o.v[r][n] = s;
        }
    d = o;
}
inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ldm, layout_t l) {
    if ((uintptr_t)p % 32 || ldm % 4) emu::fail("wmma store: pointer not 32-byte aligned or ldm not a multiple of 4");
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 16; c++) (l == mem_row_major ? p[r * ldm + c] : p[r + c * ldm]) = f.v[r][c];
}
} // namespace wmma
} // namespace nvcuda

#define TC_LAUNCH(kern, grid, block, ...) emu::launch(grid, block, [&] { kern(__VA_ARGS__); })

#endif
