/* test_bf16.c: bf16, the storage type of mixed precision.
 *
 * CPU (always runs):
 *   - the conversion (tensor/bf16.h) at its edges: ties to even both ways, rounding up into the
 *     next binade, the largest finite value rounding to inf, -0, inf, NaN staying a (quiet) NaN,
 *     subnormals; then a million f32 bit patterns against an independent reference (the nearest
 *     bf16 found by comparing distances in double, not bf16.h's carry trick), and every one of
 *     the 65536 bf16 patterns widening exactly;
 *   - casts: f32 -> bf16 -> f32 round trips (idempotent on bf16 values), i32 and f64 to bf16
 *     through f32 (the CPU's and the GPU's rule: a value can round differently when rounded
 *     straight to bf16, and a case here tells the two apart), bf16 to i32 truncating;
 *   - the dispatch point's promotion: every op without a bf16 kernel takes bf16 by running its f32
 *     kernel on upcast copies and rounding the results, so an op on bf16 inputs must equal, bit
 *     for bit, the f32 op on the upcast inputs with its outputs rounded to bf16 (the same f32
 *     kernel on the same values, in the same contiguous layout). Covered: add (broadcast and a
 *     transposed view), mul, silu, sum, softmax, matmul (also of a transposed view), rmsnorm,
 *     cross-entropy and an in-place add_into on a bf16 destination; statistics (the loss and lse
 *     of cross-entropy, rstd of rmsnorm) come back as f32.
 *
 * CUDA against the CPU (skips without a device; SGT_CUDA_TEST_ON_CPU=1 lets the CPU stand in for
 * the GPU, to check the harness itself):
 *   - casts between bf16 and f32/f64/i32 and bf16 fills: bit for bit (both sides do the same IEEE
 *     conversions, through f32, rounding to nearest even);
 *   - add, sub, mul, div, cmp, where, masked_fill, and the arithmetic unary ops and backwards: bit
 *     for bit (f32 math on the widened values, one rounding, as the CPU's promoted f32 kernel;
 *     --fmad=false keeps CUDA's + - * / sqrt IEEE-exact);
 *   - exp, log, tanh, pow and what is built on them (sigmoid, silu, gelu and their backwards):
 *     within 1 bf16 ulp (+ a small absolute slack, see UNARY_ATOL). CUDA's expf/tanhf/logf/powf
 *     and the CPU's (glibc, cpu/vmath.h) differ by a few f32 ulps (2^-23 relative each); an f32
 *     difference that small is far below a bf16 ulp (2^-8 relative), so the two f32 results round
 *     to the same bf16 value or to neighbours: at most 1 ulp apart;
 *   - the native kernels against the same device's promoted path (real GPU only): the op table's
 *     bf16 flag turned off for one op at a time must not change a single bit;
 *   - bf16 matmul (cuBLASLt) against the CPU's promoted result, with the bound derived at
 *     mm_check (about one bf16 ulp of sum |a||b|), over transposed operands and views, an unaligned view, batched, broadcast and
 *     folded batches, M = 1, and every (M, N, K) in {1, 7, 65, 130}^3; integer-valued inputs, whose
 *     f32 sums are exact in any order, must agree bit for bit; K = 0 gives zeros.
 * TEST_SEED is in every failure message. */
#define TD_ABSENT "absent: the parity tests skip" /* the setup line's words without a device */
#include "../common/test_device.h"

#include "../../tensor/bf16.h"
#ifdef SGT_HAVE_CUDA
#include "../../tensor/cuda/backend.h"
#endif

/* ---- bits ---- */

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static double bf16_val(uint16_t h) { return (double)bits_f32((uint32_t)h << 16); }

static bool bf16_is_nan(uint16_t h) { return (h & 0x7f80u) == 0x7f80u && (h & 0x007fu); }

/* The bf16 nearest to x, ties to the one with an even last bit, found by comparing the distances
 * to the two neighbours in double (exact for these values): independent of bf16.h's carry trick.
 * Overflow follows IEEE: a value at or past the midpoint between the largest finite bf16 and
 * 2^128 rounds to inf. NaN: bf16.h's rule (the top bits with the quiet bit set). */
static uint16_t ref_round(float x) {
    const uint32_t u = f32_bits(x);
    if (isnan(x)) return (uint16_t)((u >> 16) | 0x40u);
    const uint16_t lo = (uint16_t)(u >> 16); /* truncated: same sign, magnitude not larger */
    if ((u & 0xffffu) == 0) return lo;
    const uint16_t hi = (uint16_t)(lo + 1); /* the next bf16 away from zero */
    const double vh = (hi & 0x7fffu) == 0x7f80u ? copysign(ldexp(1.0, 128), (double)x) : bf16_val(hi);
    const double dl = fabs((double)x - bf16_val(lo)), dh = fabs(vh - (double)x);
    if (dl < dh) return lo;
    if (dh < dl) return hi;
    return (lo & 1u) ? hi : lo;
}

static uint32_t rand_u32(uint64_t i, uint64_t stream) {
    return (uint32_t)(sgt_rng_uniform_at(i, stream, TEST_SEED) * 4294967296.0);
}

/* ---- tensors from and to raw elements (host access does not cover bf16) ---- */

static sgt_tensor *from_raw(sgt_ctx *c, sgt_dtype t, int nd, const int64_t *shape, const void *raw) {
    sgt_tensor *x = sgt_empty(c, t, nd, shape);
    sgt_copy_from_host(x, raw);
    return x;
}

static void *to_raw(const sgt_tensor *x) {
    const int64_t n = sgt_numel(x);
    void *p = malloc((size_t)(n ? n : 1) * sgt_dtype_size(x->dtype));
    sgt_copy_to_host(x, p);
    return p;
}

static sgt_tensor *bf(sgt_ctx *c, sgt_tensor *x) { return sgt_cast(c, x, SGT_BF16); }
static sgt_tensor *up(sgt_ctx *c, sgt_tensor *x) { return sgt_cast(c, x, SGT_F32); }

/* bf16 values: uniform f32 draws rounded to bf16 */
static sgt_tensor *rand_bf16(sgt_ctx *c, int nd, const int64_t *shape, uint64_t stream, double lo, double hi) {
    return bf(c, tu_rand(c, SGT_F32, nd, shape, stream, lo, hi));
}

/* integers in [-lv/2, lv/2) as bf16 (exact) */
static sgt_tensor *int_bf16(sgt_ctx *c, int nd, const int64_t *shape, uint64_t stream, int lv) {
    int64_t n = 1;
    for (int d = 0; d < nd; d++) n *= shape[d];
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = floor(sgt_rng_uniform_at((uint64_t)i, stream, TEST_SEED) * lv) - lv / 2;
    sgt_tensor *x = bf(c, sgt_from_f64(c, SGT_F32, nd, shape, v));
    free(v);
    return x;
}

/* NaN, +inf, -inf, -0 and the largest finite value at a few positions of a contiguous bf16 tensor */
static void inject_bf16(sgt_tensor *x) {
    const int64_t n = sgt_numel(x);
    uint16_t *h = to_raw(x);
    const int64_t at[5] = {0, n / 2, n / 3 + 1, n - 1, n / 5};
    const uint16_t val[5] = {0x7fc0, 0x7f80, 0xff80, 0x8000, 0x7f7f};
    for (int k = 0; k < 5; k++)
        if (at[k] >= 0 && at[k] < n) h[at[k]] = val[k];
    sgt_copy_from_host(x, h);
    free(h);
}

/* ---- comparisons ---- */

static const char *shape_str(const sgt_tensor *x) {
    static char b[4][96];
    static int k;
    return sgt_shape_str(x, b[k++ & 3], 96);
}

static double elem(const void *raw, sgt_dtype t, int64_t i, uint64_t *bits) {
    switch (t) {
    case SGT_BF16: *bits = ((const uint16_t *)raw)[i]; return bf16_val((uint16_t)*bits);
    case SGT_F32: *bits = f32_bits(((const float *)raw)[i]); return ((const float *)raw)[i];
    case SGT_F64: memcpy(bits, (const double *)raw + i, 8); return ((const double *)raw)[i];
    default: *bits = (uint32_t)((const int32_t *)raw)[i]; return ((const int32_t *)raw)[i];
    }
}

/* got and want (any devices) hold the same dtype, shape and bits; a NaN only has to meet a NaN
 * (payloads and signs of NaNs differ between x86 and CUDA arithmetic) */
static void same_bits_at(const sgt_tensor *got, const sgt_tensor *want, const char *what, const char *file, int line) {
    if (got->dtype != want->dtype || !sgt_same_shape(got, want))
        fail_msg("%s:%d: %s: got %s, want %s (seed %u)", file, line, what, shape_str(got), shape_str(want), TEST_SEED);
    const int64_t n = sgt_numel(want);
    void *g = to_raw(got), *w = to_raw(want);
    for (int64_t i = 0; i < n; i++) {
        uint64_t gb, wb;
        const double a = elem(g, got->dtype, i, &gb), b = elem(w, want->dtype, i, &wb);
        if ((isnan(a) && isnan(b)) || gb == wb) continue;
        free(g), free(w);
        fail_msg("%s:%d: %s: element %lld of %s is %.9g (bits 0x%llx), want %.9g (bits 0x%llx): bit-exact expected "
                 "(seed %u)", file, line, what, (long long)i, shape_str(want), a, (unsigned long long)gb, b,
                 (unsigned long long)wb, TEST_SEED);
    }
    free(g), free(w);
}
#define same_bits(got, want, what) same_bits_at(got, want, what, __FILE__, __LINE__)

/* the spacing of bf16 values at magnitude v (8 significant bits; the subnormal spacing below) */
static double bf16_ulp(double v) {
    int e;
    v = fabs(v);
    if (v < ldexp(1.0, -126)) return ldexp(1.0, -133);
    frexp(v, &e); /* v = m 2^e, m in [0.5, 1) */
    return ldexp(1.0, e - 8);
}

/* bf16 tensors within `ulps` bf16 ulps (of the larger magnitude) plus atol; NaN meets NaN, inf the
 * same inf */
static void close_bf16_at(const sgt_tensor *got, const sgt_tensor *want, double ulps, double atol, const char *what,
                          const char *file, int line) {
    if (got->dtype != SGT_BF16 || want->dtype != SGT_BF16 || !sgt_same_shape(got, want))
        fail_msg("%s:%d: %s: got %s, want %s (seed %u)", file, line, what, shape_str(got), shape_str(want), TEST_SEED);
    const int64_t n = sgt_numel(want);
    uint16_t *g = to_raw(got), *w = to_raw(want);
    for (int64_t i = 0; i < n; i++) {
        const double a = bf16_val(g[i]), b = bf16_val(w[i]);
        bool ok;
        if (isnan(a) || isnan(b)) ok = isnan(a) && isnan(b);
        else if (isinf(a) || isinf(b)) ok = a == b;
        else ok = fabs(a - b) <= ulps * bf16_ulp(fmax(fabs(a), fabs(b))) + atol;
        if (!ok) {
            const unsigned gb = g[i], wb = w[i];
            free(g), free(w);
            fail_msg("%s:%d: %s: element %lld of %s is %.9g (0x%04x), want %.9g (0x%04x): more than %g bf16 ulp + %g "
                     "apart (seed %u)", file, line, what, (long long)i, shape_str(want), a, gb, b, wb, ulps, atol,
                     TEST_SEED);
        }
    }
    free(g), free(w);
}
#define close_bf16(got, want, ulps, atol, what) close_bf16_at(got, want, ulps, atol, what, __FILE__, __LINE__)

/* ---- the two devices ---- */

TD_GROUP("test_bf16", "bf16-cpu", 64u << 20, "bf16-dev", 64u << 20)


static sgt_tensor *to_dev(sgt_tensor *x) { return sgt_to_device(G, x, DEV); }

/* ======================================================================================= */
/* CPU: the conversion                                                                     */

typedef struct {
    uint32_t f;
    uint16_t h;
    const char *what;
} round_case;

static const round_case round_cases[] = {
    {0x3f800000u, 0x3f80, "1.0 exactly"},
    {0x3f808000u, 0x3f80, "1 + 2^-8: a tie, down to the even 0x3f80"},
    {0x3f818000u, 0x3f82, "a tie up to the even 0x3f82"},
    {0x3f808001u, 0x3f81, "just above a tie: up"},
    {0x3f807fffu, 0x3f80, "just below a tie: down"},
    {0xbf808000u, 0xbf80, "-(1 + 2^-8): a tie, to the even -1"},
    {0xbf818000u, 0xbf82, "a negative tie away from zero to the even"},
    {0xbf80ffffu, 0xbf81, "negative, above the tie in magnitude"},
    {0x3fffffffu, 0x4000, "1.99999988: rounds up into the next binade (2.0)"},
    {0x3fff8000u, 0x4000, "a tie with an odd 0x3fff: up into the next binade"},
    {0xbfff8000u, 0xc000, "negative tie into the next binade"},
    {0x7f7f0000u, 0x7f7f, "the largest finite bf16"},
    {0x7f7f7fffu, 0x7f7f, "just below the overflow midpoint: stays finite"},
    {0x7f7f8000u, 0x7f80, "the overflow midpoint: a tie with an odd 0x7f7f, to inf"},
    {0x7f7fffffu, 0x7f80, "FLT_MAX rounds to inf"},
    {0xff7fffffu, 0xff80, "-FLT_MAX rounds to -inf"},
    {0x00000000u, 0x0000, "+0"},
    {0x80000000u, 0x8000, "-0 keeps its sign"},
    {0x7f800000u, 0x7f80, "inf"},
    {0xff800000u, 0xff80, "-inf"},
    {0x7fc00000u, 0x7fc0, "the quiet NaN"},
    {0x7f800001u, 0x7fc0, "a NaN with only low payload bits (rounding would make it inf)"},
    {0x7fffffffu, 0x7fff, "a NaN with every payload bit (rounding would carry into -0)"},
    {0xffc00001u, 0xffc0, "a negative NaN keeps its sign"},
    {0x7f810000u, 0x7fc1, "a signalling NaN comes back quiet"},
    {0x00000001u, 0x0000, "the smallest f32 subnormal rounds to 0"},
    {0x80000001u, 0x8000, "... and its negative to -0"},
    {0x00008000u, 0x0000, "a subnormal tie down to the even 0"},
    {0x00018000u, 0x0002, "a subnormal tie up to the even 0x0002"},
    {0x00010000u, 0x0001, "the smallest bf16 subnormal exactly"},
    {0x007fffffu, 0x0080, "the largest f32 subnormal rounds up to the smallest normal"},
    {0x807fffffu, 0x8080, "... and its negative"},
    {0x00800000u, 0x0080, "FLT_MIN exactly"},
};
#define NROUND ((int)(sizeof round_cases / sizeof round_cases[0]))

static void t_round_edges(void **s) {
    (void)s;
    marks m = mark_both();
    uint32_t fb[NROUND];
    for (int i = 0; i < NROUND; i++) {
        const round_case *r = &round_cases[i];
        fb[i] = r->f;
        const uint16_t got = sgt_f32_to_bf16(bits_f32(r->f)), ref = ref_round(bits_f32(r->f));
        if (got != r->h || ref != r->h)
            fail_msg("f32 0x%08x (%s): bf16.h gives 0x%04x, the reference 0x%04x, expected 0x%04x (seed %u)", r->f,
                     r->what, got, ref, r->h, TEST_SEED);
    }
    /* the CPU's cast kernel rounds the same way */
    sgt_tensor *x = from_raw(C, SGT_F32, 1, (int64_t[]){NROUND}, fb);
    uint16_t *h = to_raw(sgt_cast(C, x, SGT_BF16));
    for (int i = 0; i < NROUND; i++)
        if (h[i] != round_cases[i].h)
            fail_msg("cast f32 -> bf16 of 0x%08x (%s): 0x%04x, expected 0x%04x (seed %u)", round_cases[i].f,
                     round_cases[i].what, h[i], round_cases[i].h, TEST_SEED);
    free(h);
    /* widening: a few fixed values, then every pattern is the top half of its f32 */
    const struct {
        uint16_t h;
        double v;
    } widen[] = {{0x3f80, 1.0}, {0xc020, -2.5}, {0x0001, ldexp(1.0, -133)}, {0x8000, -0.0}, {0x7f7f, 0x1.fep127},
                 {0x0080, ldexp(1.0, -126)}, {0x4b80, 16777216.0}};
    for (size_t i = 0; i < sizeof widen / sizeof widen[0]; i++) {
        const float f = sgt_bf16_to_f32(widen[i].h);
        if ((double)f != widen[i].v || !signbit(f) != !signbit(widen[i].v))
            fail_msg("bf16 0x%04x widens to %.9g, expected %.9g (seed %u)", widen[i].h, (double)f, widen[i].v, TEST_SEED);
    }
    for (uint32_t b = 0; b < 65536; b++)
        if (f32_bits(sgt_bf16_to_f32((uint16_t)b)) != b << 16)
            fail_msg("bf16 0x%04x widens to f32 0x%08x, not 0x%08x (seed %u)", b, f32_bits(sgt_bf16_to_f32((uint16_t)b)),
                     b << 16, TEST_SEED);
    rewind_both(m);
}

/* a million f32 patterns: uniform bits, and high bits with the low 16 bits at and around a tie */
#define NPAT (1 << 20)
static uint32_t *patterns(void) {
    static const uint32_t low[8] = {0x0000, 0x0001, 0x7fff, 0x8000, 0x8001, 0xffff, 0x4000, 0xc000};
    uint32_t *p = malloc(sizeof(uint32_t) * NPAT);
    for (int i = 0; i < NPAT; i++) {
        const uint32_t r = rand_u32((uint64_t)i, 11);
        p[i] = i % 2 ? r : (r & 0xffff0000u) | low[(i / 2) % 8];
    }
    return p;
}

static void t_round_reference(void **s) {
    (void)s;
    marks m = mark_both();
    uint32_t *p = patterns();
    for (int i = 0; i < NPAT; i++) {
        const float f = bits_f32(p[i]);
        const uint16_t got = sgt_f32_to_bf16(f), ref = ref_round(f);
        if (got != ref) {
            const uint32_t b = p[i];
            free(p);
            fail_msg("f32 0x%08x (%.9g): bf16.h gives 0x%04x, the nearest bf16 (ties to even) is 0x%04x (seed %u)", b,
                     (double)f, got, ref, TEST_SEED);
        }
    }
    /* and the CPU cast kernel, on a strided view of the same patterns */
    sgt_tensor *x = from_raw(C, SGT_F32, 2, (int64_t[]){1024, NPAT / 1024}, p);
    uint16_t *h = to_raw(sgt_cast(C, sgt_transpose(C, x, 0, 1), SGT_BF16));
    for (int64_t j = 0; j < NPAT / 1024; j++)
        for (int64_t i = 0; i < 1024; i++) {
            const uint32_t b = p[i * (NPAT / 1024) + j];
            const uint16_t got = h[j * 1024 + i];
            if (got != ref_round(bits_f32(b))) {
                free(p), free(h);
                fail_msg("cast f32 -> bf16 of 0x%08x: 0x%04x, expected 0x%04x (seed %u)", b, got, ref_round(bits_f32(b)),
                         TEST_SEED);
            }
        }
    free(p), free(h);
    rewind_both(m);
}

/* ======================================================================================= */
/* CPU: casts                                                                              */

static void t_cast_round_trips(void **s) {
    (void)s;
    marks m = mark_both();
    /* every bf16 through f32 and f64 and back: unchanged (a NaN comes back a quiet NaN) */
    uint16_t *all = malloc(sizeof(uint16_t) * 65536);
    for (uint32_t b = 0; b < 65536; b++) all[b] = (uint16_t)b;
    sgt_tensor *x = from_raw(C, SGT_BF16, 2, (int64_t[]){256, 256}, all);
    const sgt_dtype via[2] = {SGT_F32, SGT_F64};
    for (int k = 0; k < 2; k++) {
        sgt_tensor *w = sgt_cast(C, x, via[k]);
        uint16_t *back = to_raw(sgt_cast(C, w, SGT_BF16));
        for (uint32_t b = 0; b < 65536; b++) {
            const bool ok = bf16_is_nan((uint16_t)b) ? bf16_is_nan(back[b]) && (back[b] & 0x40) &&
                                                           (back[b] & 0x8000) == (b & 0x8000)
                                                     : back[b] == b;
            if (!ok)
                fail_msg("bf16 0x%04x -> %s -> bf16 gives 0x%04x (seed %u)", b, sgt_dtype_name(via[k]), back[b], TEST_SEED);
        }
        free(back);
        /* the widening is exact: the f64 values are the bf16 values */
        if (via[k] == SGT_F64) {
            double *v = tu_host(w);
            for (uint32_t b = 0; b < 65536; b++)
                if (!(v[b] == bf16_val((uint16_t)b) || (isnan(v[b]) && bf16_is_nan((uint16_t)b))))
                    fail_msg("bf16 0x%04x -> f64 gives %.17g (seed %u)", b, v[b], TEST_SEED);
            free(v);
        }
    }
    free(all);

    /* f32 -> bf16 -> f32 lands on a bf16 value (low half zero) and a second trip changes nothing */
    uint32_t *p = patterns();
    sgt_tensor *f = from_raw(C, SGT_F32, 1, (int64_t[]){NPAT}, p);
    sgt_tensor *once = sgt_cast(C, sgt_cast(C, f, SGT_BF16), SGT_F32);
    sgt_tensor *twice = sgt_cast(C, sgt_cast(C, once, SGT_BF16), SGT_F32);
    uint32_t *o1 = to_raw(once), *o2 = to_raw(twice);
    for (int i = 0; i < NPAT; i++) {
        const uint32_t want = (uint32_t)ref_round(bits_f32(p[i])) << 16;
        if (o1[i] != want || o2[i] != want) {
            const uint32_t b = p[i], a1 = o1[i], a2 = o2[i];
            free(p), free(o1), free(o2);
            fail_msg("f32 0x%08x -> bf16 -> f32 gives 0x%08x, again 0x%08x, expected 0x%08x (seed %u)", b, a1, a2, want,
                     TEST_SEED);
        }
    }
    free(p), free(o1), free(o2);

    /* i32 -> bf16, through f32 */
    const struct {
        int32_t v;
        uint16_t h;
        const char *what;
    } ic[] = {
        {0, 0x0000, "0"},
        {1, 0x3f80, "1"},
        {-1, 0xbf80, "-1"},
        {255, 0x437f, "255 (8 bits: exact)"},
        {257, 0x4380, "257: a tie, down to the even 256"},
        {259, 0x4382, "259: a tie, up to the even 260"},
        {-259, 0xc382, "-259"},
        {16842753, 0x4b80, "2^24 + 2^16 + 1: f32 rounds to 2^24 + 2^16, a tie that goes to 2^24 (straight to "
                           "bf16 it would round up to 2^24 + 2^17)"},
        {INT32_MAX, 0x4f00, "INT32_MAX: 2^31"},
        {INT32_MIN, 0xcf00, "INT32_MIN: -2^31"},
    };
    const int nic = (int)(sizeof ic / sizeof ic[0]);
    int32_t iv[16];
    for (int i = 0; i < nic; i++) iv[i] = ic[i].v;
    uint16_t *ih = to_raw(sgt_cast(C, sgt_from_i32(C, 1, (int64_t[]){nic}, iv), SGT_BF16));
    for (int i = 0; i < nic; i++)
        if (ih[i] != ic[i].h)
            fail_msg("cast i32 %d (%s) -> bf16: 0x%04x, expected 0x%04x (seed %u)", ic[i].v, ic[i].what, ih[i], ic[i].h,
                     TEST_SEED);
    free(ih);

    /* f64 -> bf16, through f32 */
    const struct {
        double v;
        uint16_t h;
        const char *what;
    } dc[] = {
        {1.0 + ldexp(1.0, -8) + ldexp(1.0, -30), 0x3f80,
         "1 + 2^-8 + 2^-30: f32 drops the 2^-30, leaving a tie that goes down (straight to bf16: up)"},
        {-(1.0 + ldexp(1.0, -8) + ldexp(1.0, -30)), 0xbf80, "its negative"},
        {1.0 + ldexp(1.0, -8) + ldexp(1.0, -20), 0x3f81, "1 + 2^-8 + 2^-20: above the tie in f32 too, up"},
        {1e300, 0x7f80, "1e300: inf in f32"},
        {-1e300, 0xff80, "-1e300: -inf"},
        {1e-300, 0x0000, "1e-300: 0 in f32"},
        {-1e-300, 0x8000, "-1e-300: -0"},
        {3.0, 0x4040, "3"},
        {0.1, 0x3dcd, "0.1"},
        {INFINITY, 0x7f80, "inf"},
    };
    const int ndc = (int)(sizeof dc / sizeof dc[0]);
    double dv[16];
    for (int i = 0; i < ndc; i++) dv[i] = dc[i].v;
    dv[ndc] = NAN;
    uint16_t *dh = to_raw(sgt_cast(C, sgt_from_f64(C, SGT_F64, 1, (int64_t[]){ndc + 1}, dv), SGT_BF16));
    for (int i = 0; i < ndc; i++)
        if (dh[i] != dc[i].h)
            fail_msg("cast f64 %.17g (%s) -> bf16: 0x%04x, expected 0x%04x (seed %u)", dc[i].v, dc[i].what, dh[i],
                     dc[i].h, TEST_SEED);
    if (!bf16_is_nan(dh[ndc])) fail_msg("cast f64 NaN -> bf16: 0x%04x is not a NaN (seed %u)", dh[ndc], TEST_SEED);
    free(dh);

    /* bf16 -> i32 truncates toward zero */
    const uint16_t tb[4] = {0xc020 /* -2.5 */, 0x4070 /* 3.75 */, 0x47c3 /* 99840 */, 0xbf40 /* -0.75 */};
    const int32_t tw[4] = {-2, 3, 99840, 0};
    int32_t *ti = to_raw(sgt_cast(C, from_raw(C, SGT_BF16, 1, (int64_t[]){4}, tb), SGT_I32));
    for (int i = 0; i < 4; i++)
        if (ti[i] != tw[i])
            fail_msg("cast bf16 0x%04x -> i32: %d, expected %d (seed %u)", tb[i], ti[i], tw[i], TEST_SEED);
    free(ti);
    rewind_both(m);
}

/* ======================================================================================= */
/* CPU: the promotion at the dispatch point                                                */

/* out = op(bf16 inputs) must be, bit for bit, ref = the f32 op on the upcast inputs with each
 * bf16 output rounded (f32 outputs as they are) */
static void expect_promoted(sgt_tensor *got, sgt_tensor *ref_f32, sgt_dtype want, const char *what) {
    if (got->dtype != want)
        fail_msg("%s: the output is %s, expected %s (seed %u)", what, sgt_dtype_name(got->dtype), sgt_dtype_name(want),
                 TEST_SEED);
    same_bits(got, want == SGT_BF16 ? bf(C, ref_f32) : ref_f32, what);
}

static void t_promotion_cpu(void **s) {
    (void)s;
    marks m = mark_both();
    sgt_tensor *a = rand_bf16(C, SGT_SHAPE(6, 33), 20, -3, 3), *b = rand_bf16(C, SGT_SHAPE(6, 33), 21, -3, 3);
    sgt_tensor *row = rand_bf16(C, SGT_SHAPE(33), 22, -3, 3);
    sgt_tensor *at = rand_bf16(C, SGT_SHAPE(33, 6), 23, -3, 3); /* at^T is a strided [6, 33] view */
    inject_bf16(b);
    sgt_tensor *at_t = sgt_transpose(C, at, 0, 1);

    expect_promoted(sgt_add(C, a, row), sgt_add(C, up(C, a), up(C, row)), SGT_BF16, "add, broadcast row");
    expect_promoted(sgt_add(C, at_t, b), sgt_add(C, up(C, at_t), up(C, b)), SGT_BF16, "add of a transposed view");
    expect_promoted(sgt_mul(C, a, b), sgt_mul(C, up(C, a), up(C, b)), SGT_BF16, "mul");
    expect_promoted(sgt_silu(C, a), sgt_silu(C, up(C, a)), SGT_BF16, "silu");
    expect_promoted(sgt_silu(C, at_t), sgt_silu(C, up(C, at_t)), SGT_BF16, "silu of a transposed view");
    expect_promoted(sgt_sum(C, a, 1, false), sgt_sum(C, up(C, a), 1, false), SGT_BF16, "sum over the last dim");
    expect_promoted(sgt_sum(C, at_t, SGT_ALL_DIMS, false), sgt_sum(C, up(C, at_t), SGT_ALL_DIMS, false), SGT_BF16,
                    "sum of everything, of a transposed view");
    expect_promoted(sgt_softmax(C, a), sgt_softmax(C, up(C, a)), SGT_BF16, "softmax");

    sgt_tensor *w = rand_bf16(C, SGT_SHAPE(33, 13), 24, -1, 1);
    expect_promoted(sgt_matmul(C, a, w, false, false), sgt_matmul(C, up(C, a), up(C, w), false, false), SGT_BF16,
                    "matmul [6,33] @ [33,13]");
    expect_promoted(sgt_matmul(C, at_t, w, false, false), sgt_matmul(C, up(C, at_t), up(C, w), false, false), SGT_BF16,
                    "matmul of a transposed view");
    expect_promoted(sgt_matmul(C, at, w, true, false), sgt_matmul(C, up(C, at), up(C, w), true, false), SGT_BF16,
                    "matmul with ta");

    /* rmsnorm: y in bf16, rstd in f32 */
    sgt_tensor *g = rand_bf16(C, SGT_SHAPE(33), 25, 0.5, 1.5), *rstd, *rstd_ref;
    sgt_tensor *y = sgt_rmsnorm(C, a, g, 1e-5, &rstd), *y_ref = sgt_rmsnorm(C, up(C, a), up(C, g), 1e-5, &rstd_ref);
    expect_promoted(y, y_ref, SGT_BF16, "rmsnorm y");
    expect_promoted(rstd, rstd_ref, SGT_F32, "rmsnorm rstd (f32 for bf16 x)");
    /* an f32 input normalised straight into a bf16 output (the residual stream into a bf16 activation) */
    sgt_tensor *af = up(C, a), *gf = up(C, g), *rstd_to;
    expect_promoted(sgt_rmsnorm_to(C, af, gf, 1e-5, SGT_BF16, &rstd_to), sgt_rmsnorm(C, af, gf, 1e-5, NULL), SGT_BF16,
                    "rmsnorm_to f32 -> bf16");
    expect_promoted(rstd_to, rstd_ref, SGT_F32, "rmsnorm_to rstd");

    /* cross-entropy: the loss and lse in f32 */
    int32_t tg[6] = {0, 32, 5, 17, 9, 1};
    sgt_tensor *t = sgt_from_i32(C, 1, (int64_t[]){6}, tg), *lse, *lse_ref;
    sgt_tensor *loss = sgt_cross_entropy(C, a, t, SGT_NO_IGNORE, &lse);
    sgt_tensor *loss_ref = sgt_cross_entropy(C, up(C, a), t, SGT_NO_IGNORE, &lse_ref);
    expect_promoted(loss, loss_ref, SGT_F32, "cross_entropy loss (f32 for bf16 logits)");
    expect_promoted(lse, lse_ref, SGT_F32, "cross_entropy lse (f32 for bf16 logits)");

    /* add_into accumulates into a bf16 destination in place (its current values are cast in, the
     * sum rounded back after each add) */
    sgt_tensor *acc = sgt_copy(C, a), *acc1 = sgt_copy(C, a);
    sgt_add_into(C, acc, row);
    sgt_add_into(C, acc, at_t);
    sgt_add_into(C, acc1, row);
    expect_promoted(acc1, sgt_add(C, up(C, a), up(C, row)), SGT_BF16, "add_into a bf16 destination");
    expect_promoted(acc, sgt_add(C, up(C, acc1), up(C, at_t)), SGT_BF16, "a second add_into (a transposed view)");
    rewind_both(m);
}

/* ======================================================================================= */
/* CUDA: casts and fills                                                                   */

static void t_cuda_casts(void **s) {
    (void)s;
    NEED_GPU();
    marks m = mark_both();
    /* f32 -> bf16: the edge table and a million patterns, through a transposed view */
    uint32_t *p = patterns();
    for (int i = 0; i < NROUND; i++) p[i * 7919] = round_cases[i].f;
    sgt_tensor *f = from_raw(C, SGT_F32, 2, (int64_t[]){1024, NPAT / 1024}, p);
    free(p);
    sgt_tensor *fg = to_dev(f);
    same_bits(sgt_cast(G, sgt_transpose(G, fg, 0, 1), SGT_BF16), sgt_cast(C, sgt_transpose(C, f, 0, 1), SGT_BF16),
              "cast f32 -> bf16 (a transposed view)");

    /* every bf16 pattern to f32, f64 and bf16; to i32 the finite ones within range */
    uint16_t *all = malloc(sizeof(uint16_t) * 65536), *fin = malloc(sizeof(uint16_t) * 65536);
    int nfin = 0;
    for (uint32_t b = 0; b < 65536; b++) {
        all[b] = (uint16_t)b;
        if (fabs(bf16_val((uint16_t)b)) < 2147483648.0) fin[nfin++] = (uint16_t)b;
    }
    sgt_tensor *x = from_raw(C, SGT_BF16, 2, (int64_t[]){256, 256}, all), *xg = to_dev(x);
    const sgt_dtype to[3] = {SGT_F32, SGT_F64, SGT_BF16};
    for (int k = 0; k < 3; k++) {
        same_bits(sgt_cast(G, xg, to[k]), sgt_cast(C, x, to[k]), WHAT("cast bf16 -> %s", sgt_dtype_name(to[k])));
        same_bits(sgt_cast(G, sgt_transpose(G, xg, 0, 1), to[k]), sgt_cast(C, sgt_transpose(C, x, 0, 1), to[k]),
                  WHAT("cast bf16 -> %s (a transposed view)", sgt_dtype_name(to[k])));
    }
    sgt_tensor *xf = from_raw(C, SGT_BF16, 1, (int64_t[]){nfin}, fin);
    same_bits(sgt_cast(G, to_dev(xf), SGT_I32), sgt_cast(C, xf, SGT_I32), "cast bf16 -> i32 (truncation)");
    free(all), free(fin);

    /* i32 -> bf16: the whole range, and the case that tells "through f32" apart */
    int32_t *iv = malloc(sizeof(int32_t) * 65536);
    for (int i = 0; i < 65536; i++) iv[i] = (int32_t)rand_u32((uint64_t)i, 12) >> (i % 31);
    iv[0] = 16842753, iv[1] = INT32_MAX, iv[2] = INT32_MIN, iv[3] = 257, iv[4] = 259;
    sgt_tensor *ii = sgt_from_i32(C, 1, (int64_t[]){65536}, iv);
    free(iv);
    same_bits(sgt_cast(G, to_dev(ii), SGT_BF16), sgt_cast(C, ii, SGT_BF16), "cast i32 -> bf16");

    /* f64 -> bf16: values across the whole range (many past f32's), and double-rounding cases */
    double *dv = malloc(sizeof(double) * 65536);
    for (int i = 0; i < 65536; i++) {
        const double u = sgt_rng_uniform_at((uint64_t)i, 13, TEST_SEED);
        dv[i] = i % 4 == 0 ? ldexp(1.0 + ldexp(1.0, -8) + ldexp(1.0, -30 - i % 20), (int)(u * 200) - 100)
                           : (u - 0.5) * ldexp(1.0, (int)(i % 700) - 350);
    }
    dv[1] = NAN, dv[2] = INFINITY, dv[3] = -0.0, dv[5] = 1e-300, dv[6] = -1e300;
    sgt_tensor *d = sgt_from_f64(C, SGT_F64, 1, (int64_t[]){65536}, dv);
    free(dv);
    same_bits(sgt_cast(G, to_dev(d), SGT_BF16), sgt_cast(C, d, SGT_BF16), "cast f64 -> bf16");
    rewind_both(m);
}

static void t_cuda_fill(void **s) {
    (void)s;
    NEED_GPU();
    const double vals[7] = {2.5, 1.00390625 /* 1 + 2^-8: a tie, to 1 */, -0.0, 3.39e38, 1e-40, NAN, -INFINITY};
    for (int k = 0; k < 7; k++) {
        marks m = mark_both();
        sgt_tensor *x = rand_bf16(C, SGT_SHAPE(7, 11), 30, -2, 2), *xg = to_dev(x);
        /* a strided view: the bytes around it must stay */
        sgt_fill(G, sgt_narrow(G, sgt_transpose(G, xg, 0, 1), 0, 3, 4), vals[k]);
        sgt_fill(C, sgt_narrow(C, sgt_transpose(C, x, 0, 1), 0, 3, 4), vals[k]);
        same_bits(xg, x, WHAT("fill of a strided bf16 view with %g", vals[k]));
        same_bits(sgt_full(G, SGT_BF16, 0, NULL, vals[k]), sgt_full(C, SGT_BF16, 0, NULL, vals[k]),
                  WHAT("full(%g)", vals[k]));
        same_bits(sgt_zeros(G, SGT_BF16, SGT_SHAPE(3, 0, 2)), sgt_zeros(C, SGT_BF16, SGT_SHAPE(3, 0, 2)), "empty fill");
        rewind_both(m);
    }
}

/* ======================================================================================= */
/* CUDA: binary ops, comparison and selection                                              */

typedef sgt_tensor *(*bin_fn)(sgt_ctx *c, sgt_tensor *a, sgt_tensor *b);

static void t_cuda_binary(void **s) {
    (void)s;
    NEED_GPU();
    const bin_fn fns[4] = {sgt_add, sgt_sub, sgt_mul, sgt_div};
    const char *names[4] = {"add", "sub", "mul", "div"};
    for (int k = 0; k < 4; k++) {
        marks m = mark_both();
        sgt_tensor *a = rand_bf16(C, SGT_SHAPE(33, 65), 40, -3, 3), *b = rand_bf16(C, SGT_SHAPE(33, 65), 41, -3, 3);
        sgt_tensor *row = rand_bf16(C, SGT_SHAPE(65), 42, 0.5, 2), *at = rand_bf16(C, SGT_SHAPE(65, 33), 43, -3, 3);
        inject_bf16(a);
        inject_bf16(at);
        sgt_tensor *ag = to_dev(a), *bg = to_dev(b), *rg = to_dev(row), *atg = to_dev(at);
        same_bits(fns[k](G, ag, bg), fns[k](C, a, b), WHAT("%s bf16", names[k]));
        same_bits(fns[k](G, ag, rg), fns[k](C, a, row), WHAT("%s bf16, a broadcast row", names[k]));
        same_bits(fns[k](G, sgt_transpose(G, atg, 0, 1), bg), fns[k](C, sgt_transpose(C, at, 0, 1), b),
                  WHAT("%s bf16, a transposed view", names[k]));
        same_bits(fns[k](G, sgt_full(G, SGT_BF16, 0, NULL, 1.5), ag), fns[k](C, sgt_full(C, SGT_BF16, 0, NULL, 1.5), a),
                  WHAT("%s bf16, a scalar", names[k]));
        rewind_both(m);
    }
    /* add_into accumulates in place into a bf16 destination, a broadcast and a strided source */
    marks m = mark_both();
    sgt_tensor *acc = rand_bf16(C, SGT_SHAPE(33, 65), 44, -3, 3), *row = rand_bf16(C, SGT_SHAPE(65), 45, -1, 1);
    sgt_tensor *at = rand_bf16(C, SGT_SHAPE(65, 33), 46, -1, 1);
    sgt_tensor *accg = to_dev(acc), *rg = to_dev(row), *atg = to_dev(at);
    for (int r = 0; r < 3; r++) {
        sgt_add_into(G, accg, rg);
        sgt_add_into(C, acc, row);
        sgt_add_into(G, accg, sgt_transpose(G, atg, 0, 1));
        sgt_add_into(C, acc, sgt_transpose(C, at, 0, 1));
    }
    same_bits(accg, acc, "add_into a bf16 destination, 3 rounds");
    /* into a strided view of a bf16 destination */
    sgt_add_into(G, sgt_narrow(G, accg, 1, 3, 33), sgt_narrow(G, sgt_transpose(G, atg, 0, 1), 1, 0, 33));
    sgt_add_into(C, sgt_narrow(C, acc, 1, 3, 33), sgt_narrow(C, sgt_transpose(C, at, 0, 1), 1, 0, 33));
    same_bits(accg, acc, "add_into a narrowed bf16 view");
    rewind_both(m);
}

static void t_cuda_cmp_where(void **s) {
    (void)s;
    NEED_GPU();
    marks m = mark_both();
    sgt_tensor *a = int_bf16(C, SGT_SHAPE(17, 33), 50, 5), *b = int_bf16(C, SGT_SHAPE(17, 33), 51, 5);
    sgt_tensor *row = int_bf16(C, SGT_SHAPE(33), 52, 5);
    inject_bf16(a);
    sgt_tensor *ag = to_dev(a), *bg = to_dev(b), *rg = to_dev(row);
    for (int k = SGT_CMP_EQ; k <= SGT_CMP_GE; k++) {
        same_bits(sgt_cmp(G, (sgt_cmp_kind)k, ag, bg), sgt_cmp(C, (sgt_cmp_kind)k, a, b), WHAT("cmp kind %d bf16", k));
        same_bits(sgt_cmp(G, (sgt_cmp_kind)k, ag, rg), sgt_cmp(C, (sgt_cmp_kind)k, a, row),
                  WHAT("cmp kind %d bf16, broadcast", k));
    }
    sgt_tensor *cg = sgt_cmp(G, SGT_CMP_GT, ag, bg), *cc = sgt_cmp(C, SGT_CMP_GT, a, b);
    sgt_tensor *mrow = sgt_cmp(C, SGT_CMP_GT, row, sgt_full(C, SGT_BF16, 0, NULL, 0.0)), *mrowg = to_dev(mrow);
    same_bits(sgt_where(G, cg, ag, rg), sgt_where(C, cc, a, row), "where bf16");
    same_bits(sgt_where(G, mrowg, bg, ag), sgt_where(C, mrow, b, a), "where bf16, a broadcast condition");
    same_bits(sgt_masked_fill(G, ag, mrowg, -1e30), sgt_masked_fill(C, a, mrow, -1e30),
              "masked_fill bf16 (a broadcast mask, a value that rounds)");
    same_bits(sgt_masked_fill(G, ag, cg, -INFINITY), sgt_masked_fill(C, a, cc, -INFINITY), "masked_fill bf16 with -inf");
    rewind_both(m);
}

/* ======================================================================================= */
/* CUDA: unary ops and their backward                                                      */

/* UNARY_ATOL: the f32 libm results differ by a few f32 ulps of the intermediate terms (which are
 * at most ~20 here: |x| <= 4, |dy| <= 2); where a formula cancels (gelu's 1 + tanh for x << 0, or
 * gelu's derivative near its zero) the result is far smaller than those terms and a few ulps of
 * theirs can exceed an ulp of the result. 1e-5 covers that (3 x 2^-24 x 20 is about 4e-6) and is
 * still far below the bf16 resolution of any O(1) value (2^-8). */
#define UNARY_ATOL 1e-5

typedef struct {
    sgt_op op;
    double s, lo, hi;
    bool exact_fwd, exact_bwd; /* pure IEEE arithmetic (+ - * / sqrt), so bit for bit */
} un_case;

static const un_case un_cases[] = {
    {SGT_OP_ADD_SCALAR, 0.3, -4, 4, true, true},
    {SGT_OP_MUL_SCALAR, -1.7, -4, 4, true, true},
    {SGT_OP_POW_SCALAR, 2.0, -4, 4, true, false}, /* x*x forward; the backward calls pow */
    {SGT_OP_POW_SCALAR, 1.5, 0.05, 8, false, false},
    {SGT_OP_NEG, 0, -4, 4, true, true},
    {SGT_OP_EXP, 0, -4, 4, false, true}, /* backward: dy * y */
    {SGT_OP_LOG, 0, 0.05, 8, false, true}, /* backward: dy / x */
    {SGT_OP_SQRT, 0, 0.05, 8, true, true},
    {SGT_OP_RSQRT, 0, 0.05, 8, true, true},
    {SGT_OP_TANH, 0, -4, 4, false, true},
    {SGT_OP_SIGMOID, 0, -4, 4, false, true},
    {SGT_OP_SILU, 0, -4, 4, false, false},
    {SGT_OP_GELU, 0, -4, 4, false, false},
    {SGT_OP_GELU_ERF, 0, -4, 4, false, false},
    {SGT_OP_SIN, 0, -4, 4, false, false},
    {SGT_OP_COS, 0, -4, 4, false, false},
    {SGT_OP_RELU, 0, -4, 4, true, true},
};
#define NUN ((int)(sizeof un_cases / sizeof un_cases[0]))

static void t_cuda_unary(void **s) {
    (void)s;
    NEED_GPU();
    for (int k = 0; k < NUN; k++) {
        const un_case *u = &un_cases[k];
        const char *nm = sgt_ops[u->op].name;
        marks m = mark_both();
        sgt_tensor *x = rand_bf16(C, SGT_SHAPE(33, 130), 60 + (uint64_t)k, u->lo, u->hi);
        sgt_tensor *xt = rand_bf16(C, SGT_SHAPE(130, 33), 80 + (uint64_t)k, u->lo, u->hi);
        inject_bf16(xt); /* NaN and inf through every formula */
        sgt_tensor *xg = to_dev(x), *xtg = to_dev(xt);
        sgt_tensor *yg = sgt_unary(G, u->op, xg, u->s), *yc = sgt_unary(C, u->op, x, u->s);
        sgt_tensor *ytg = sgt_unary(G, u->op, sgt_transpose(G, xtg, 0, 1), u->s);
        sgt_tensor *ytc = sgt_unary(C, u->op, sgt_transpose(C, xt, 0, 1), u->s);
        if (u->exact_fwd) {
            same_bits(yg, yc, WHAT("%s(s=%g) bf16", nm, u->s));
            same_bits(ytg, ytc, WHAT("%s(s=%g) bf16, a transposed view with NaN/inf", nm, u->s));
        } else {
            close_bf16(yg, yc, 1, UNARY_ATOL, WHAT("%s(s=%g) bf16", nm, u->s));
            close_bf16(ytg, ytc, 1, UNARY_ATOL, WHAT("%s(s=%g) bf16, a transposed view with NaN/inf", nm, u->s));
        }
        /* the backward, with y = f(x) from the CPU so both sides see the same inputs */
        sgt_tensor *dy = rand_bf16(C, SGT_SHAPE(33, 130), 100 + (uint64_t)k, -2, 2);
        sgt_tensor *dyg = to_dev(dy), *ycg = to_dev(yc);
        sgt_tensor *dxg = sgt_unary_bwd(G, u->op, u->s, xg, ycg, dyg), *dxc = sgt_unary_bwd(C, u->op, u->s, x, yc, dy);
        if (u->exact_bwd) same_bits(dxg, dxc, WHAT("unary_bwd of %s(s=%g) bf16", nm, u->s));
        else close_bf16(dxg, dxc, 1, UNARY_ATOL, WHAT("unary_bwd of %s(s=%g) bf16", nm, u->s));
        /* a mixed call: x and y bf16, dy (so dx) f32 */
        sgt_tensor *dyf = up(C, dy);
        sgt_tensor *dxfg = sgt_unary_bwd(G, u->op, u->s, xg, ycg, to_dev(dyf)), *dxfc = sgt_unary_bwd(C, u->op, u->s, x, yc, dyf);
        if (u->exact_bwd) {
            same_bits(dxfg, dxfc, WHAT("unary_bwd of %s(s=%g), bf16 x and y, f32 dy", nm, u->s));
        } else {
            /* f32 results: a few f32 ulps (the libm difference) plus the same absolute slack */
            double *gv = tu_host(dxfg);
            tu_assert_close(dxfc, gv, 1e-5, UNARY_ATOL, WHAT("unary_bwd of %s(s=%g), bf16 x and y, f32 dy", nm, u->s));
            free(gv);
        }
        rewind_both(m);
    }
}

/* ======================================================================================= */
/* The elementwise cases of the native-kernel check, on shared inputs (in[0], in[1]: [33, 65];
 * in[2]: [65, 33], used transposed; in[3]: a [65] row that broadcasts). They compile and run on
 * every build: t_ew_cases_cpu runs them on the CPU (shapes valid, values those of the same
 * composition in f64), so a case with inconsistent shapes fails in CI, not first on a GPU. */

typedef sgt_tensor *(*ew_case)(sgt_ctx *c, sgt_tensor **in);

static sgt_tensor *e_add(sgt_ctx *c, sgt_tensor **in) { return sgt_add(c, in[0], sgt_transpose(c, in[2], 0, 1)); }
static sgt_tensor *e_sub(sgt_ctx *c, sgt_tensor **in) { return sgt_sub(c, in[0], in[3]); }
static sgt_tensor *e_mul(sgt_ctx *c, sgt_tensor **in) { return sgt_mul(c, in[0], in[1]); }
static sgt_tensor *e_div(sgt_ctx *c, sgt_tensor **in) { return sgt_div(c, in[0], in[1]); }
static sgt_tensor *e_silu(sgt_ctx *c, sgt_tensor **in) { return sgt_silu(c, in[0]); }
static sgt_tensor *e_gelu(sgt_ctx *c, sgt_tensor **in) { return sgt_gelu(c, sgt_transpose(c, in[2], 0, 1)); }
static sgt_tensor *e_exp(sgt_ctx *c, sgt_tensor **in) { return sgt_exp(c, in[0]); }
static sgt_tensor *e_log(sgt_ctx *c, sgt_tensor **in) { return sgt_log(c, in[1]); }
static sgt_tensor *e_pow(sgt_ctx *c, sgt_tensor **in) { return sgt_pow_scalar(c, in[1], 1.5); }
static sgt_tensor *e_scale(sgt_ctx *c, sgt_tensor **in) { return sgt_mul_scalar(c, sgt_add_scalar(c, in[0], 0.1), 0.3); }
/* unary_bwd takes dy of x's shape (no broadcast): dy = in[2]^T, a strided [33, 65] view */
static sgt_tensor *e_silu_bwd(sgt_ctx *c, sgt_tensor **in) {
    return sgt_unary_bwd(c, SGT_OP_SILU, 0, in[0], in[1], sgt_transpose(c, in[2], 0, 1));
}
static sgt_tensor *e_gelu_bwd(sgt_ctx *c, sgt_tensor **in) {
    return sgt_unary_bwd(c, SGT_OP_GELU, 0, in[0], in[1], sgt_transpose(c, in[2], 0, 1));
}
static sgt_tensor *e_cmp(sgt_ctx *c, sgt_tensor **in) { return sgt_cmp(c, SGT_CMP_LT, in[0], in[3]); }
static sgt_tensor *e_where(sgt_ctx *c, sgt_tensor **in) {
    return sgt_where(c, sgt_cmp(c, SGT_CMP_LT, in[0], in[3]), in[1], in[0]);
}
static sgt_tensor *e_masked(sgt_ctx *c, sgt_tensor **in) {
    return sgt_masked_fill(c, in[0], sgt_cmp(c, SGT_CMP_GT, in[1], in[3]), -3e38);
}
static sgt_tensor *e_add_into(sgt_ctx *c, sgt_tensor **in) {
    sgt_tensor *acc = sgt_copy(c, in[0]);
    sgt_add_into(c, acc, in[3]);
    sgt_add_into(c, acc, sgt_transpose(c, in[2], 0, 1));
    return acc;
}
static sgt_tensor *e_fill(sgt_ctx *c, sgt_tensor **in) {
    sgt_tensor *x = sgt_copy(c, in[0]);
    sgt_fill(c, sgt_narrow(c, x, 1, 2, 5), 1.00390625);
    return x;
}

static const struct {
    const char *name;
    ew_case fn;
    sgt_op ops[3]; /* the native flags to clear for the promoted run (SGT_OP_RESHAPE ends) */
} ew_cases[] = {
        {"add (a transposed view)", e_add, {SGT_OP_ADD, SGT_OP_RESHAPE}},
        {"sub (broadcast)", e_sub, {SGT_OP_SUB, SGT_OP_RESHAPE}},
        {"mul", e_mul, {SGT_OP_MUL, SGT_OP_RESHAPE}},
        {"div", e_div, {SGT_OP_DIV, SGT_OP_RESHAPE}},
        {"silu", e_silu, {SGT_OP_SILU, SGT_OP_RESHAPE}},
        {"gelu (a transposed view)", e_gelu, {SGT_OP_GELU, SGT_OP_RESHAPE}},
        {"exp", e_exp, {SGT_OP_EXP, SGT_OP_RESHAPE}},
        {"log", e_log, {SGT_OP_LOG, SGT_OP_RESHAPE}},
        {"pow 1.5", e_pow, {SGT_OP_POW_SCALAR, SGT_OP_RESHAPE}},
        {"add_scalar, mul_scalar", e_scale, {SGT_OP_ADD_SCALAR, SGT_OP_MUL_SCALAR, SGT_OP_RESHAPE}},
        {"unary_bwd silu", e_silu_bwd, {SGT_OP_UNARY_BWD, SGT_OP_RESHAPE}},
        {"unary_bwd gelu", e_gelu_bwd, {SGT_OP_UNARY_BWD, SGT_OP_RESHAPE}},
        {"cmp", e_cmp, {SGT_OP_CMP, SGT_OP_RESHAPE}},
        {"where", e_where, {SGT_OP_WHERE, SGT_OP_CMP, SGT_OP_RESHAPE}},
        {"masked_fill", e_masked, {SGT_OP_MASKED_FILL, SGT_OP_CMP, SGT_OP_RESHAPE}},
        {"add_into (in place)", e_add_into, {SGT_OP_ADD, SGT_OP_RESHAPE}},
        {"fill of a view", e_fill, {SGT_OP_FILL, SGT_OP_RESHAPE}},
};
#define N_EW_CASES (sizeof ew_cases / sizeof ew_cases[0])

/* the cases' bf16 inputs on the CPU */
static void ew_inputs(sgt_tensor **in) {
    in[0] = rand_bf16(C, SGT_SHAPE(33, 65), 120, -4, 4);
    in[1] = rand_bf16(C, SGT_SHAPE(33, 65), 121, 0.05, 4);
    in[2] = rand_bf16(C, SGT_SHAPE(65, 33), 122, -4, 4);
    in[3] = rand_bf16(C, SGT_SHAPE(65), 123, -4, 4);
}

/* Every case on the CPU: bf16 inputs give a bf16 result of the shape the same case gives in
 * f64 on the same (widened) values, within a few bf16 roundings of it: each case rounds at most
 * three times, at most 2^-8 of a magnitude <= |result| + 12 (inputs within [-4, 4]) each, so
 * 2^-6 (|f64 result| + 12) holds with room; a layout or broadcast mistake is off by O(1). The
 * comparisons (cmp, where, masked_fill's condition) see the same values in both dtypes. */
static void t_ew_cases_cpu(void **s) {
    (void)s;
    marks m = mark_both();
    sgt_tensor *in[4], *in64[4];
    ew_inputs(in);
    for (int i = 0; i < 4; i++) in64[i] = sgt_cast(C, in[i], SGT_F64);
    for (size_t k = 0; k < N_EW_CASES; k++) {
        sgt_tensor *got = ew_cases[k].fn(C, in), *ref = ew_cases[k].fn(C, in64);
        if (got->ndim != ref->ndim || memcmp(got->shape, ref->shape, sizeof(int64_t) * (size_t)got->ndim))
            fail_msg("%s on the CPU: bf16 gives %s, f64 %s (seed %u)", ew_cases[k].name, shape_str(got),
                     shape_str(ref), TEST_SEED);
        const sgt_dtype want = ref->dtype == SGT_F64 ? SGT_BF16 : ref->dtype;
        if (got->dtype != want)
            fail_msg("%s on the CPU: a %s result from bf16 inputs, expected %s (seed %u)", ew_cases[k].name,
                     sgt_dtype_name(got->dtype), sgt_dtype_name(want), TEST_SEED);
        double *r = tu_host(ref);
        const int64_t n = sgt_numel(ref);
        double *tol = malloc(sizeof(double) * (size_t)n);
        for (int64_t i = 0; i < n; i++) tol[i] = ldexp(1.0, -6) * (fabs(r[i]) + 12.0);
        double *g = tu_host(got);
        for (int64_t i = 0; i < n; i++)
            if (!(fabs(g[i] - r[i]) <= tol[i])) {
                const double gi = g[i], ri = r[i];
                free(g), free(r), free(tol);
                fail_msg("%s on the CPU: element %lld: bf16 %.9g, f64 %.9g (seed %u)", ew_cases[k].name,
                         (long long)i, gi, ri, TEST_SEED);
            }
        free(g), free(r), free(tol);
    }
    rewind_both(m);
}

/* ======================================================================================= */
/* CUDA: the native kernels against the same device's promotion                            */

#ifdef SGT_HAVE_CUDA
static void t_cuda_native_vs_promoted(void **s) {
    (void)s;
    if (!have_gpu || self_check) skip(); /* the CUDA backend's own table */
    marks m = mark_both();
    sgt_tensor *in[4];
    ew_inputs(in);
    inject_bf16(in[0]);
    sgt_tensor *gin[4];
    for (int i = 0; i < 4; i++) gin[i] = to_dev(in[i]);
    for (size_t k = 0; k < N_EW_CASES; k++) {
        sgt_tensor *native = ew_cases[k].fn(G, gin);
        int n = 0;
        for (; ew_cases[k].ops[n] != SGT_OP_RESHAPE; n++) {
            if (!sgt_cuda_bf16_table[ew_cases[k].ops[n]])
                fail_msg("%s: '%s' is not flagged bf16-native on CUDA (seed %u)", ew_cases[k].name,
                         sgt_ops[ew_cases[k].ops[n]].name, TEST_SEED);
            sgt_cuda_bf16_table[ew_cases[k].ops[n]] = false;
        }
        sgt_tensor *promoted = ew_cases[k].fn(G, gin);
        for (int i = 0; i < n; i++) sgt_cuda_bf16_table[ew_cases[k].ops[i]] = true;
        same_bits(native, promoted, WHAT("native %s against the promoted f32 kernel on the same device", ew_cases[k].name));
        same_bits(native, ew_cases[k].fn(C, in), WHAT("native %s against the CPU", ew_cases[k].name));
    }
    rewind_both(m);
}
#else
static void t_cuda_native_vs_promoted(void **s) {
    (void)s;
    skip();
}
#endif

/* ======================================================================================= */
/* CUDA: bf16 matmul                                                                        */

/* the cases: tu_mm_arg, run through their views by tu_mm_run (tests/common/test_util.h); view 2
 * narrows to a 2-byte aligned view with ld > cols */

/* The bound on |gpu - cpu| per element, with S = (|A| @ |B|) (in f64 from the same bf16 values):
 *   - the CPU sums the exact bf16 products (8 + 8 significant bits fit f32's 24) in f32 in its
 *     order: off the exact sum by at most K 2^-24 S; the GPU sums them in f32 in another order, on
 *     tensor cores that may truncate rather than round each addition: at most K 2^-23 S;
 *     together 3 K 2^-24 S;
 *   - each side then rounds its f32 sum to bf16 once, moving it by at most half a bf16 ulp: 2^-8
 *     of its magnitude (bf16 keeps 8 significant bits), and the magnitude is <= S (to within the
 *     K 2^-23 above): 2 x 2^-8 S = 2^-7 S. (Two f32 sums a hair apart can round to neighbouring
 *     bf16 values, a whole ulp apart, which is up to 2^-7 of the value: a 2^-8 S bound would not
 *     do.)
 * So tol = (3 K 2^-24 + 2^-7) S, with 1% to spare for S itself being a sum. With inputs of one
 * sign S is |result| and the bound is about one bf16 ulp of the result; with mixed signs it is
 * looser relative to the result but still catches any layout or batch-stride mistake, which is
 * off by O(S). (Split-K algorithms that add partial sums in bf16 would break the bound: matmul.cu
 * excludes them.) */
static void mm_check(const tu_mm_arg *a, sgt_tensor *x, sgt_tensor *y, const char *what, bool exact) {
    sgt_tensor *g = tu_mm_run(G, a, to_dev(x), to_dev(y)), *c = tu_mm_run(C, a, x, y);
    if (g->dtype != SGT_BF16) fail_msg("%s: the bf16 matmul gave %s (seed %u)", what, sgt_dtype_name(g->dtype), TEST_SEED);
    if (exact) {
        same_bits(g, c, what);
        return;
    }
    /* S: the same matmul of |x|, |y| in f64 */
    sgt_tensor *ab[2] = {sgt_cast(C, x, SGT_F64), sgt_cast(C, y, SGT_F64)};
    for (int i = 0; i < 2; i++) {
        double *v = tu_host(ab[i]);
        for (int64_t j = 0; j < sgt_numel(ab[i]); j++) v[j] = fabs(v[j]);
        ab[i] = sgt_from_f64(C, SGT_F64, ab[i]->ndim, ab[i]->shape, v);
        free(v);
    }
    double *S = tu_host(tu_mm_run(C, a, ab[0], ab[1]));
    const sgt_tensor *xv = tu_mm_view(C, x, a->va);
    const int64_t K = xv->shape[xv->ndim - (a->ta ? 2 : 1)];
    const int64_t n = sgt_numel(c);
    uint16_t *gv = to_raw(g), *cv = to_raw(c);
    for (int64_t i = 0; i < n; i++) {
        const double gd = bf16_val(gv[i]), cd = bf16_val(cv[i]);
        const double tol = (3.0 * (double)K * ldexp(1.0, -24) + ldexp(1.0, -7)) * S[i] * 1.01 + 1e-38;
        if (!(fabs(gd - cd) <= tol)) {
            const double si = S[i];
            free(gv), free(cv), free(S);
            fail_msg("%s: element %lld of %s: cuda %.9g, cpu %.9g, |diff| %.3g > tol %.3g (K %lld, S %.6g, seed %u)",
                     what, (long long)i, shape_str(c), gd, cd, fabs(gd - cd), tol, (long long)K, si, TEST_SEED);
        }
    }
    free(gv), free(cv), free(S);
}

static const tu_mm_arg mm_cases[] = {
    {2, 2, {7, 65}, {65, 130}, false, false, 0, 0},
    {2, 2, {65, 7}, {130, 65}, true, true, 0, 0},              /* both transposed in memory */
    {2, 2, {65, 7}, {65, 130}, false, false, 1, 0},            /* a a transposed view [7, 65] */
    {2, 2, {7, 67}, {65, 132}, false, false, 2, 2},            /* narrowed views: 2-byte aligned, ld > cols */
    {4, 2, {2, 3, 7, 65}, {65, 13}, false, false, 0, 0},       /* [2,3,M,K] @ [K,N]: folds into one GEMM */
    {4, 4, {2, 3, 7, 65}, {2, 3, 65, 13}, false, false, 0, 0}, /* one strided-batched call of 6 */
    {4, 3, {2, 1, 7, 65}, {3, 65, 13}, false, false, 0, 0},    /* broadcast batch: a loop of strided batches */
    {4, 2, {4, 3, 7, 65}, {65, 13}, false, false, 3, 0},       /* permuted batch dims */
    {3, 3, {1, 7, 65}, {4, 65, 13}, false, false, 4, 0},       /* a expanded (batch stride 0) */
    {3, 3, {4, 7, 65}, {4, 13, 65}, false, true, 0, 0},        /* batched with b^T */
    {2, 2, {1, 130}, {130, 65}, false, false, 0, 0},           /* M = 1 (GEMV-like) */
    {3, 2, {5, 1, 130}, {65, 130}, false, true, 0, 0},         /* M = 1 per batch, b^T (decoding) */
    {2, 2, {257, 1000}, {1000, 129}, false, false, 0, 0},      /* a larger K */
};
#define NMM ((int)(sizeof mm_cases / sizeof mm_cases[0]))

static void t_cuda_matmul(void **s) {
    (void)s;
    NEED_GPU();
    for (int i = 0; i < NMM; i++) {
        marks m = mark_both();
        const tu_mm_arg *a = &mm_cases[i];
        sgt_tensor *x = rand_bf16(C, a->na, a->sa, 200 + (uint64_t)i, -1, 1);
        sgt_tensor *y = rand_bf16(C, a->nb, a->sb, 220 + (uint64_t)i, -1, 1);
        mm_check(a, x, y, WHAT("bf16 matmul case %d", i), false);
        /* nonnegative values: S is the result itself, so the bound is about one bf16 ulp of it */
        sgt_tensor *xp = rand_bf16(C, a->na, a->sa, 280 + (uint64_t)i, 0, 1);
        sgt_tensor *yp = rand_bf16(C, a->nb, a->sb, 290 + (uint64_t)i, 0, 1);
        mm_check(a, xp, yp, WHAT("bf16 matmul case %d, nonnegative values", i), false);
        /* integer values: every f32 partial sum is exact (|sum| <= K 16 < 2^24), so the order cannot
         * matter and both sides round the same f32 value to bf16 (nearest even): bit for bit */
        sgt_tensor *xi = int_bf16(C, a->na, a->sa, 240 + (uint64_t)i, 8), *yi = int_bf16(C, a->nb, a->sb, 260 + (uint64_t)i, 8);
        mm_check(a, xi, yi, WHAT("bf16 matmul case %d, integer values", i), true);
        rewind_both(m);
    }
    /* every (M, N, K) in {1, 7, 65, 130}^3, the transposes taking turns */
    const int64_t sz[4] = {1, 7, 65, 130};
    int idx = 0;
    for (int im = 0; im < 4; im++)
        for (int in = 0; in < 4; in++)
            for (int ik = 0; ik < 4; ik++, idx++) {
                marks m = mark_both();
                const int64_t M = sz[im], N = sz[in], K = sz[ik];
                const bool ta = idx & 1, tb = (idx >> 1) & 1;
                tu_mm_arg a = {2, 2, {ta ? K : M, ta ? M : K}, {tb ? N : K, tb ? K : N}, ta, tb, 0, 0};
                sgt_tensor *x = rand_bf16(C, 2, a.sa, 300 + (uint64_t)idx, -1, 1);
                sgt_tensor *y = rand_bf16(C, 2, a.sb, 400 + (uint64_t)idx, -1, 1);
                mm_check(&a, x, y, WHAT("bf16 matmul M=%lld N=%lld K=%lld ta=%d tb=%d", (long long)M, (long long)N,
                                        (long long)K, ta, tb), false);
                rewind_both(m);
            }
    /* K = 0: zeros */
    marks m = mark_both();
    const tu_mm_arg k0 = {2, 2, {5, 0}, {0, 4}, false, false, 0, 0};
    const tu_mm_arg k0b = {3, 2, {2, 5, 0}, {0, 4}, false, false, 0, 0};
    sgt_tensor *x0 = sgt_empty(C, SGT_BF16, SGT_SHAPE(5, 0)), *y0 = sgt_empty(C, SGT_BF16, SGT_SHAPE(0, 4));
    mm_check(&k0, x0, y0, "bf16 matmul K = 0", true);
    sgt_tensor *zg = tu_mm_run(G, &k0, to_dev(x0), to_dev(y0));
    uint16_t *z = to_raw(zg);
    for (int i = 0; i < 20; i++)
        if (z[i] != 0) fail_msg("bf16 matmul K = 0: element %d is 0x%04x, not +0 (seed %u)", i, z[i], TEST_SEED);
    free(z);
    mm_check(&k0b, sgt_empty(C, SGT_BF16, SGT_SHAPE(2, 5, 0)), y0, "bf16 matmul K = 0, batched", true);
    rewind_both(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_round_edges),
        cmocka_unit_test(t_round_reference),
        cmocka_unit_test(t_cast_round_trips),
        cmocka_unit_test(t_promotion_cpu),
        cmocka_unit_test(t_ew_cases_cpu),
        cmocka_unit_test(t_cuda_casts),
        cmocka_unit_test(t_cuda_fill),
        cmocka_unit_test(t_cuda_binary),
        cmocka_unit_test(t_cuda_cmp_where),
        cmocka_unit_test(t_cuda_unary),
        cmocka_unit_test(t_cuda_native_vs_promoted),
        cmocka_unit_test(t_cuda_matmul),
    };
    return cmocka_run_group_tests_name("bf16", tests, group_setup, group_teardown);
}
