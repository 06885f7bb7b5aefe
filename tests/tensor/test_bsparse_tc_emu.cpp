/* test_bsparse_tc_emu.cpp: the tensor-core kernels of the bf16 block-sparse SwiGLU
 * (tensor/cuda/bsparse_tc.cuh) run on the CPU through cuda_emu.h, against an f64 reference of the
 * op on the same bf16 inputs. It checks what a machine without a GPU can: the grouping (a stable
 * sort of the slots by block), every tile's indexing (partial tiles of rows, units, channels and
 * of the reduction depth, blocks of several tiles, a block nobody chose), the epilogues, the
 * per-token reductions, alignment of every vector and fragment access, barriers every thread
 * meets, and run-to-run determinism. Not its speed, nor the hardware's accumulation order (the
 * CUDA parity test in test_cuda.c does that on a device).
 *
 * Tolerance: the kernels round the hiddens (H, m h, dG, dU) and every output to bf16, so each
 * result is within a few bf16 roundings (2^-8 relative) of the sum of its terms' magnitudes:
 * |got - ref| <= 1e-2 (sum |terms|) + 1e-6. An index error moves a result by the size of a random
 * sum (sqrt(n) terms), above that bound for every case here. */
#include "cuda_emu.h"
#include "../../tensor/cuda/bsparse_tc.cuh"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <vector>

extern "C" {
#include <cmocka.h>
}

namespace {

struct lcg {
    uint64_t s;
    double next() { /* in [0, 1) */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        return (double)(s >> 11) / 9007199254740992.0;
    }
};

std::vector<uint16_t> rnd_bf16(size_t n, uint64_t seed, double lo, double hi) {
    lcg g{seed * 0x9e3779b97f4a7c15ull + 1};
    std::vector<uint16_t> v(n);
    for (auto &e : v) e = sgt_f32_to_bf16((float)(lo + (hi - lo) * g.next()));
    return v;
}

double f(uint16_t h) { return (double)sgt_bf16_to_f32(h); }
double silu(double g) { return g / (1 + exp(-g)); }
double dsilu(double g) {
    const double s = 1 / (1 + exp(-g));
    return s * (1 + g * (1 - s));
}

struct tc_case {
    int64_t N, k, nb, bs, C;
    int64_t skip_block; /* a block no token chooses (-1: none) */
};

struct problem {
    tc_case c;
    int64_t I, nslot;
    std::vector<uint16_t> x, wg, wu, wd, m, dy;
    std::vector<int32_t> idx;
    problem(const tc_case &cs, uint64_t seed) : c(cs) {
        I = c.nb * c.bs, nslot = c.N * c.k;
        x = rnd_bf16((size_t)(c.N * c.C), seed + 1, -1, 1);
        wg = rnd_bf16((size_t)(I * c.C), seed + 2, -0.3, 0.3);
        wu = rnd_bf16((size_t)(I * c.C), seed + 3, -0.3, 0.3);
        wd = rnd_bf16((size_t)(c.C * I), seed + 4, -0.3, 0.3);
        m = rnd_bf16((size_t)nslot, seed + 5, 0.5, 1.5);
        dy = rnd_bf16((size_t)(c.N * c.C), seed + 6, -1, 1);
        /* k distinct blocks per token among the allowed ones (a partial shuffle) */
        lcg g{seed * 31 + 7};
        std::vector<int32_t> allowed;
        for (int32_t b = 0; b < c.nb; b++)
            if (b != c.skip_block) allowed.push_back(b);
        idx.resize((size_t)nslot);
        for (int64_t t = 0; t < c.N; t++) {
            std::vector<int32_t> p = allowed;
            for (int64_t j = 0; j < c.k; j++) {
                const size_t r = (size_t)j + (size_t)(g.next() * (double)(p.size() - (size_t)j));
                std::swap(p[(size_t)j], p[r]);
                idx[(size_t)(t * c.k + j)] = p[(size_t)j];
            }
        }
    }
};

void *alloc256(size_t n) { return aligned_alloc(256, (n + 255) & ~(size_t)255); }

/* a 256-byte-aligned copy of a host array (the kernels read 16-byte vectors) */
template <typename T> T *aligned_copy(const std::vector<T> &v) {
    T *p = (T *)aligned_alloc(256, ((v.size() * sizeof(T)) + 255) & ~(size_t)255);
    memcpy(p, v.data(), v.size() * sizeof(T));
    return p;
}
template <typename T> T *aligned_zeros(size_t n) {
    T *p = (T *)aligned_alloc(256, ((n * sizeof(T)) + 255) & ~(size_t)255);
    memset(p, 0xff, n * sizeof(T)); /* NaN-ish garbage: every element must be written */
    return p;
}

void check_close(const char *what, const uint16_t *got, const std::vector<double> &ref, const std::vector<double> &scale) {
    for (size_t i = 0; i < ref.size(); i++) {
        const double g = f(got[i]), tol = 4e-3 * (scale[i] + fabs(ref[i])) + 1e-6;
        if (!(fabs(g - ref[i]) <= tol))
            fail_msg("%s[%zu]: got %.6g, reference %.6g (tolerance %.3g)", what, i, g, ref[i], tol);
    }
}

struct outputs {
    std::vector<uint16_t> y, G, U, dx, dwg, dwu, dwd, dm;
    std::vector<int32_t> order, off;
};

outputs run(const problem &P) {
    const tc_case &c = P.c;
    tc_args a = {};
    a.N = c.N, a.C = c.C, a.I = P.I, a.k = c.k, a.bs = c.bs, a.nb = c.nb, a.nslot = P.nslot;
    uint16_t *x = aligned_copy(P.x), *wg = aligned_copy(P.wg), *wu = aligned_copy(P.wu), *wd = aligned_copy(P.wd),
             *m = aligned_copy(P.m), *dy = aligned_copy(P.dy);
    int32_t *idx = aligned_copy(P.idx);
    a.x = x, a.wg = wg, a.wu = wu, a.wd = wd, a.m = m, a.idx = idx;
    const size_t NC = (size_t)(c.N * c.C), SB = (size_t)(P.nslot * c.bs), IC = (size_t)(P.I * c.C);
    outputs o;
    /* forward */
    void *scr = alloc256(tc_scratch_bytes(c.nb, P.nslot, c.bs, c.C, false));
    tc_scratch_layout(&a, scr, false);
    a.y = aligned_zeros<uint16_t>(NC), a.Gout = aligned_zeros<uint16_t>(SB), a.Uout = aligned_zeros<uint16_t>(SB);
    tc_forward(a);
    o.y.assign(a.y, a.y + NC), o.G.assign(a.Gout, a.Gout + SB), o.U.assign(a.Uout, a.Uout + SB);
    o.order.assign(a.order, a.order + P.nslot), o.off.assign(a.off, a.off + c.nb + 1);
    free(scr);
    /* backward from the forward's G and U */
    tc_args b = a;
    scr = alloc256(tc_scratch_bytes(c.nb, P.nslot, c.bs, c.C, true));
    tc_scratch_layout(&b, scr, true);
    b.G = a.Gout, b.U = a.Uout, b.dy = dy;
    b.dx = aligned_zeros<uint16_t>(NC), b.dwg = aligned_zeros<uint16_t>(IC), b.dwu = aligned_zeros<uint16_t>(IC);
    b.dwd = aligned_zeros<uint16_t>(IC), b.dm = aligned_zeros<uint16_t>((size_t)P.nslot);
    tc_backward(b);
    o.dx.assign(b.dx, b.dx + NC), o.dwg.assign(b.dwg, b.dwg + IC), o.dwu.assign(b.dwu, b.dwu + IC);
    o.dwd.assign(b.dwd, b.dwd + IC), o.dm.assign(b.dm, b.dm + P.nslot);
    free(scr);
    void *fr[] = {x, wg, wu, wd, m, dy, idx, a.y, a.Gout, a.Uout, b.dx, b.dwg, b.dwu, b.dwd, b.dm};
    for (void *p : fr) free(p);
    return o;
}

void check_case(const tc_case &c, uint64_t seed) {
    const problem P(c, seed);
    const outputs o = run(P);
    const int64_t N = c.N, k = c.k, bs = c.bs, C = c.C, I = P.I, nb = c.nb;

    /* the grouping: block b's slots in ascending order at off[b] .. off[b + 1] */
    std::vector<int32_t> want, woff;
    want.reserve((size_t)P.nslot), woff.reserve((size_t)nb + 1);
    woff.push_back(0);
    for (int32_t b = 0; b < nb; b++) {
        for (int64_t s = 0; s < P.nslot; s++)
            if (P.idx[(size_t)s] == b) want.push_back((int32_t)s);
        woff.push_back((int32_t)want.size());
    }
    assert_true(o.order == want);
    assert_true(o.off == woff);

    /* forward reference */
    std::vector<double> G((size_t)(P.nslot * bs)), U(G.size()), sG(G.size()), sU(G.size());
    std::vector<double> y((size_t)(N * C), 0.0), sy(y.size(), 0.0);
    for (int64_t s = 0; s < P.nslot; s++) {
        const int64_t t = s / k, b = P.idx[(size_t)s];
        for (int64_t r = 0; r < bs; r++) {
            double g = 0, u = 0, ag = 0, au = 0;
            for (int64_t cc = 0; cc < C; cc++) {
                const double xv = f(P.x[(size_t)(t * C + cc)]);
                g += xv * f(P.wg[(size_t)((b * bs + r) * C + cc)]);
                u += xv * f(P.wu[(size_t)((b * bs + r) * C + cc)]);
                ag += fabs(xv * f(P.wg[(size_t)((b * bs + r) * C + cc)]));
                au += fabs(xv * f(P.wu[(size_t)((b * bs + r) * C + cc)]));
            }
            G[(size_t)(s * bs + r)] = g, U[(size_t)(s * bs + r)] = u, sG[(size_t)(s * bs + r)] = ag,
                               sU[(size_t)(s * bs + r)] = au;
            const double h = f(P.m[(size_t)s]) * silu(g) * u;
            for (int64_t cc = 0; cc < C; cc++) {
                const double w = f(P.wd[(size_t)(cc * I + b * bs + r)]);
                y[(size_t)(t * C + cc)] += w * h;
                sy[(size_t)(t * C + cc)] += fabs(w * h);
            }
        }
    }
    check_close("G", o.G.data(), G, sG);
    check_close("U", o.U.data(), U, sU);
    check_close("y", o.y.data(), y, sy);

    /* backward reference, from the kernels' own (bf16) G and U as the op is used */
    std::vector<double> dx((size_t)(N * C), 0.0), sdx(dx.size(), 0.0), dwg((size_t)(I * C), 0.0), sdwg(dwg.size(), 0.0),
        dwu(dwg.size(), 0.0), sdwu(dwg.size(), 0.0), dwd(dwg.size(), 0.0), sdwd(dwg.size(), 0.0),
        dm((size_t)P.nslot, 0.0), sdm(dm.size(), 0.0);
    for (int64_t s = 0; s < P.nslot; s++) {
        const int64_t t = s / k, b = P.idx[(size_t)s];
        const double mi = f(P.m[(size_t)s]);
        for (int64_t r = 0; r < bs; r++) {
            const int64_t row = b * bs + r;
            double dh = 0, sdh = 0;
            for (int64_t cc = 0; cc < C; cc++) {
                const double v = f(P.dy[(size_t)(t * C + cc)]) * f(P.wd[(size_t)(cc * I + row)]);
                dh += v, sdh += fabs(v);
            }
            const double g = f(o.G[(size_t)(s * bs + r)]), u = f(o.U[(size_t)(s * bs + r)]), sg = silu(g), h = sg * u;
            dm[(size_t)s] += dh * h, sdm[(size_t)s] += sdh * fabs(h);
            const double dG = dh * mi * u * dsilu(g), dU = dh * mi * sg;
            const double sdG = sdh * fabs(mi * u * dsilu(g)), sdU = sdh * fabs(mi * sg);
            for (int64_t cc = 0; cc < C; cc++) {
                const double xv = f(P.x[(size_t)(t * C + cc)]), wgv = f(P.wg[(size_t)(row * C + cc)]),
                             wuv = f(P.wu[(size_t)(row * C + cc)]), dyv = f(P.dy[(size_t)(t * C + cc)]);
                dx[(size_t)(t * C + cc)] += dG * wgv + dU * wuv;
                sdx[(size_t)(t * C + cc)] += sdG * fabs(wgv) + sdU * fabs(wuv);
                dwg[(size_t)(row * C + cc)] += dG * xv, sdwg[(size_t)(row * C + cc)] += sdG * fabs(xv);
                dwu[(size_t)(row * C + cc)] += dU * xv, sdwu[(size_t)(row * C + cc)] += sdU * fabs(xv);
                dwd[(size_t)(cc * I + row)] += dyv * mi * h, sdwd[(size_t)(cc * I + row)] += fabs(dyv * mi * h);
            }
        }
    }
    check_close("dx", o.dx.data(), dx, sdx);
    check_close("dwg", o.dwg.data(), dwg, sdwg);
    check_close("dwu", o.dwu.data(), dwu, sdwu);
    check_close("dwd", o.dwd.data(), dwd, sdwd);
    check_close("dm", o.dm.data(), dm, sdm);
    if (c.skip_block >= 0) /* nobody chose it: its weight gradients are exactly zero */
        for (int64_t r = 0; r < bs; r++)
            for (int64_t cc = 0; cc < C; cc++) {
                const int64_t row = c.skip_block * bs + r;
                assert_int_equal(o.dwg[(size_t)(row * C + cc)], 0);
                assert_int_equal(o.dwu[(size_t)(row * C + cc)], 0);
                assert_int_equal(o.dwd[(size_t)(cc * I + row)], 0);
            }

    /* the same inputs give the same bits */
    const outputs o2 = run(P);
    assert_true(o2.y == o.y && o2.G == o.G && o2.dx == o.dx && o2.dwg == o.dwg && o2.dwu == o.dwu &&
                o2.dwd == o.dwd && o2.dm == o.dm);
}

/* blocks of more than one 64-row tile (100 tokens x 2 slots over 3 chosen blocks), an unchosen
 * block, a width of 40 (a partial reduction stage of 32 and a partial column tile), bs 16 (a
 * quarter of a unit tile) */
void t_multi_tile_rows(void **s) {
    (void)s;
    check_case({100, 2, 4, 16, 40, 2}, 11);
}

/* bs 80: two unit tiles (the second partial), the dm partials of two tiles; C 136: two column
 * tiles of the down and dx GEMMs and of the weight GEMMs, 3 m tiles of dWd */
void t_wide_blocks(void **s) {
    (void)s;
    check_case({70, 3, 5, 80, 136, -1}, 12);
}

/* few tokens: every tile partial, one slot per token */
void t_few_tokens(void **s) {
    (void)s;
    check_case({5, 1, 2, 32, 64, -1}, 13);
}

} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_multi_tile_rows),
        cmocka_unit_test(t_wide_blocks),
        cmocka_unit_test(t_few_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
