/* test_rng.c: the counter-based RNG (tensor/rng.h) and the fills built on it.
 *
 * Philox4x32-10 against Random123's known-answer vectors; fills that are reproducible and whose
 * element i equals the per-element function (the contract a CUDA kernel must reproduce bit for
 * bit); uniform ranges; moments and a tail check of the normals; our own log and cos
 * polynomials against libm on grids that include the edge values; and dropout, whose mask is the
 * per-element rule of rng.h at the element's logical position, reproducible from (seed, stream). */
#include <float.h>

#include "../common/test_util.h"

/* ---- Philox4x32-10 known answers (Random123 kat_vectors) ---- */

typedef struct {
    uint32_t ctr[4], key[2], out[4];
} philox_kat;

static const philox_kat kats[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
    {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
     {0xffffffffu, 0xffffffffu},
     {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
    {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
     {0xa4093822u, 0x299f31d0u},
     {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
};

static void t_philox_known_answers(void **s) {
    (void)s;
    for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
        const philox_kat *k = &kats[i];
        uint64_t counter = k->ctr[0] | (uint64_t)k->ctr[1] << 32, stream = k->ctr[2] | (uint64_t)k->ctr[3] << 32,
                 seed = k->key[0] | (uint64_t)k->key[1] << 32;
        sgt_philox_out o = sgt_philox(counter, stream, seed);
        for (int w = 0; w < 4; w++)
            if (o.v[w] != k->out[w])
                fail_msg("philox kat %zu word %d: got %08x, expected %08x", i, w, o.v[w], k->out[w]);
    }
}

/* ---- fills: reproducible, and element i is the per-element function ---- */

static sgt_tensor *fill_new(sgt_ctx *c, sgt_dtype t, int64_t n, bool normal, uint64_t seed, uint64_t stream, double a,
                            double b) {
    sgt_tensor *x = sgt_empty(c, t, 1, (int64_t[]){n});
    if (normal) sgt_rng_normal(c, x, seed, stream, a, b);
    else sgt_rng_uniform(c, x, seed, stream, a, b);
    return x;
}

static void t_fills_reproducible(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    const int64_t n = 40009; /* over the OpenMP threshold, not a multiple of 8 */
    for (int t = 0; t < 2; t++) {
        sgt_dtype dt = t ? SGT_F64 : SGT_F32;
        size_t bytes = (size_t)n * sgt_dtype_size(dt);
        for (int normal = 0; normal < 2; normal++) {
            sgt_tensor *x1 = fill_new(c, dt, n, normal, 7, 3, -1, 2);
            sgt_tensor *x2 = fill_new(c, dt, n, normal, 7, 3, -1, 2);
            sgt_tensor *y = fill_new(c, dt, n, normal, 7, 4, -1, 2);  /* another stream */
            sgt_tensor *z = fill_new(c, dt, n, normal, 8, 3, -1, 2);  /* another seed */
            if (memcmp(x1->data, x2->data, bytes))
                fail_msg("%s %s fill: same seed and stream gave different bytes", sgt_dtype_name(dt),
                         normal ? "normal" : "uniform");
            double *hx = tu_host(x1), *hy = tu_host(y), *hz = tu_host(z);
            int64_t same_y = 0, same_z = 0;
            for (int64_t i = 0; i < n; i++) {
                same_y += hx[i] == hy[i];
                same_z += hx[i] == hz[i];
            }
            free(hx);
            free(hy);
            free(hz);
            /* independent streams agree on an element only by chance (f32 uniform: 2^-24) */
            if (same_y > 2 || same_z > 2)
                fail_msg("%s %s fill: %lld / %lld elements equal across streams, %lld across seeds",
                         sgt_dtype_name(dt), normal ? "normal" : "uniform", (long long)same_y, (long long)n,
                         (long long)same_z);
        }
    }
    tu_env_free(e);
}

static void t_fill_element_is_per_element_function(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    const int64_t n = 100003; /* over the fill's OpenMP threshold */
    const uint64_t seed = 0x123456789abcdefull, stream = 0xfedcba9876543210ull; /* both 64-bit halves used */
    sgt_tensor *n64 = fill_new(c, SGT_F64, n, true, seed, stream, 0, 1);
    sgt_tensor *n32 = fill_new(c, SGT_F32, n, true, seed, stream, 0, 1);
    sgt_tensor *u64 = fill_new(c, SGT_F64, n, false, seed, stream, 0, 1);
    sgt_tensor *u32 = fill_new(c, SGT_F32, n, false, seed, stream, 0, 1);
    sgt_tensor *ms = fill_new(c, SGT_F64, n, true, seed, stream, 2.5, 0.75);
    const double *p64 = n64->data, *q64 = u64->data, *pms = ms->data;
    const float *p32 = n32->data, *q32 = u32->data;
    for (int64_t i = 0; i < n; i++) {
        double z = sgt_rng_normal_at((uint64_t)i, stream, seed);
        /* exact: this is what a CUDA kernel must reproduce bit for bit */
        if (p64[i] != z) fail_msg("normal f64 element %lld: %.17g, normal_at gives %.17g", (long long)i, p64[i], z);
        if (p32[i] != (float)z) fail_msg("normal f32 element %lld: %.9g, normal_at gives %.9g", (long long)i, p32[i], z);
        double u = sgt_rng_uniform_at((uint64_t)i, stream, seed);
        if (q64[i] != u) fail_msg("uniform f64 element %lld: %.17g, uniform_at gives %.17g", (long long)i, q64[i], u);
        float uf = sgt_rng_uniform_f32_at((uint64_t)i, stream, seed);
        if (q32[i] != uf) fail_msg("uniform f32 element %lld: %.9g, uniform_f32_at gives %.9g", (long long)i, q32[i], uf);
        double want = 2.5 + 0.75 * z;
        if (fabs(pms[i] - want) > 4 * DBL_EPSILON * fabs(want))
            fail_msg("N(2.5, 0.75^2) element %lld: %.17g, expected %.17g", (long long)i, pms[i], want);
    }
    /* a fill through a contiguous view with an offset indexes by the view's logical position and
     * leaves the rest of the storage alone */
    sgt_tensor *big = sgt_full(c, SGT_F64, SGT_SHAPE(9, 7), -99.0);
    sgt_tensor *view = sgt_narrow(c, big, 0, 3, 4);
    sgt_rng_normal(c, view, seed, stream, 0, 1);
    double hb[63];
    sgt_to_f64(big, hb);
    for (int64_t i = 0; i < 63; i++) {
        bool inside = i >= 21 && i < 49;
        double want = inside ? sgt_rng_normal_at((uint64_t)(i - 21), stream, seed) : -99.0;
        if (hb[i] != want)
            fail_msg("normal fill through a narrowed view: storage element %lld is %.17g, expected %.17g",
                     (long long)i, hb[i], want);
    }
    tu_env_free(e);
}

/* ---- uniform ranges ---- */

static void check_range(const sgt_tensor *x, double lo, double hi, const char *what) {
    int64_t n = sgt_numel(x);
    double *h = tu_host(x), mn = INFINITY, mx = -INFINITY, sum = 0, bad_v = 0;
    int64_t bad = -1;
    for (int64_t i = 0; i < n; i++) {
        if (bad < 0 && !(h[i] >= lo && h[i] < hi)) bad = i, bad_v = h[i];
        mn = fmin(mn, h[i]);
        mx = fmax(mx, h[i]);
        sum += h[i];
    }
    free(h);
    if (bad >= 0) fail_msg("%s: element %lld is %.17g, outside [%g, %g)", what, (long long)bad, bad_v, lo, hi);
    /* and it actually spans the range (n is large enough that the extremes come within 1e-3) */
    double w = hi - lo, mean = sum / (double)n;
    if (mn > lo + 1e-3 * w || mx < hi - 1e-3 * w || fabs(mean - (lo + hi) / 2) > 0.01 * w)
        fail_msg("%s: min %g, max %g, mean %g do not look like U[%g, %g)", what, mn, mx, mean, lo, hi);
}

static void t_uniform_in_range(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    const int64_t n = 200001;
    check_range(fill_new(c, SGT_F32, n, false, 11, 0, -3, 5), -3, 5, "uniform f32 [-3, 5)");
    check_range(fill_new(c, SGT_F32, n, false, 11, 1, 0, 1), 0, 1, "uniform f32 [0, 1)");
    check_range(fill_new(c, SGT_F64, n, false, 11, 0, -3, 5), -3, 5, "uniform f64 [-3, 5)");
    check_range(fill_new(c, SGT_F64, n, false, 11, 1, 0, 1), 0, 1, "uniform f64 [0, 1)");
    check_range(fill_new(c, SGT_F64, n, false, 11, 2, 1e-3, 2e-3), 1e-3, 2e-3, "uniform f64 [1e-3, 2e-3)");
    tu_env_free(e);
}

/* The largest f32 draw is 1 - 2^-24. This (seed, stream) gives it at element 0 (found offline by
 * searching streams; asserted below so the test cannot silently stop covering the edge). */
static void t_uniform_f32_top_draw_stays_below_hi(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    const uint64_t stream = 30056466;
    assert_true(sgt_rng_uniform_f32_at(0, stream, TEST_SEED) == 1.0f - 0x1p-24f);
    sgt_tensor *x = fill_new(c, SGT_F32, 1, false, TEST_SEED, stream, 1.0, 2.0);
    double v = sgt_item(x);
    /* lo + (hi - lo) u = 2 - 2^-24 is a tie between 2 - 2^-23 and 2.0 that rounds to 2.0 = hi: the
     * fill must keep it below hi */
    if (!(v >= 1.0 && v < 2.0)) fail_msg("uniform f32 [1, 2): top draw 1 - 2^-24 gave %.9g, outside [1, 2)", v);
    tu_env_free(e);
}

/* A range one ulp wide: about half of lo + (hi - lo) u rounds up to hi, in f64 and in f32, so
 * every value must come out as lo. */
static void t_uniform_one_ulp_range_stays_below_hi(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    const double hi64 = nextafter(1.0, 2.0), hi32 = nextafterf(1.0f, 2.0f);
    sgt_tensor *x64 = fill_new(c, SGT_F64, 1001, false, 3, 4, 1.0, hi64);
    sgt_tensor *x32 = fill_new(c, SGT_F32, 1001, false, 3, 4, 1.0, hi32);
    const double *p64 = x64->data;
    const float *p32 = x32->data;
    for (int i = 0; i < 1001; i++) {
        if (p64[i] != 1.0) fail_msg("uniform f64 [1, 1 + 2^-52): element %d is %.17g", i, p64[i]);
        if (p32[i] != 1.0f) fail_msg("uniform f32 [1, 1 + 2^-23): element %d is %.9g", i, p32[i]);
    }
    tu_env_free(e);
}

/* ---- normals ---- */

static void t_normal_moments_and_tails(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    const int64_t n = 1000000;
    sgt_tensor *x = fill_new(c, SGT_F64, n, true, TEST_SEED, 5, 0, 1);
    const double *z = x->data;
    double sum = 0, ss = 0;
    int64_t tail = 0;
    for (int64_t i = 0; i < n; i++) {
        sum += z[i];
        ss += z[i] * z[i];
        tail += fabs(z[i]) > 3;
    }
    double mean = sum / (double)n, sd = sqrt(ss / (double)n - mean * mean), frac = (double)tail / (double)n;
    /* sampling std of the mean and of the std are 0.001 and 0.0007: 0.005 is 5 sigma or more */
    if (fabs(mean) > 0.005 || fabs(sd - 1) > 0.005) fail_msg("1e6 normals: mean %g, std %g", mean, sd);
    /* P(|z| > 3) = 0.0026998; its sampling std at n = 1e6 is 5.2e-5 */
    if (fabs(frac - 0.0027) > 0.0004) fail_msg("1e6 normals: fraction with |z| > 3 is %g, expected 0.0027", frac);

    /* mean and std parameters, f32 */
    sgt_tensor *y = fill_new(c, SGT_F32, 200000, true, TEST_SEED, 6, 2.0, 3.0);
    double *h = tu_host(y);
    sum = ss = 0;
    for (int64_t i = 0; i < 200000; i++) {
        sum += h[i];
        ss += h[i] * h[i];
    }
    free(h);
    mean = sum / 200000;
    sd = sqrt(ss / 200000 - mean * mean);
    if (fabs(mean - 2.0) > 0.04 || fabs(sd - 3.0) > 0.03) fail_msg("N(2, 3^2) f32: mean %g, std %g", mean, sd);
    tu_env_free(e);
}

/* ---- our log and cos against libm ---- */

static void t_rng_log_matches_libm(void **s) {
    (void)s;
    /* the edges of sgt_u32_to_open01 first */
    assert_true(sgt_u32_to_open01(0) == 0x1p-32);
    assert_true(sgt_u32_to_open01(0xffffffffu) == 1.0);
    double grid[] = {0x1p-32, 0x1p-31, 3 * 0x1p-32, 1e-9, 0.001, 0.25, 0.5, 0.70710678118654746, 0.70710678118654757,
                     0.7071067811865476, 0.75, 0.9, 0.999, 1 - 0x1p-32, 1 - 0x1p-53, 1.0};
    double worst = 0, at = 0;
    for (size_t i = 0; i < sizeof grid / sizeof grid[0]; i++) {
        double err = fabs(sgt_rng_log(grid[i]) - log(grid[i]));
        if (err > worst) worst = err, at = grid[i];
    }
    /* and the values Box-Muller actually feeds it: (u32 + 1) / 2^32 over a sweep and random words */
    for (uint64_t i = 0; i < 20000; i++) {
        uint32_t w = (uint32_t)(i * 214748u) ^ sgt_philox(i, 9, 1).v[0];
        double x = sgt_u32_to_open01(i < 10000 ? (uint32_t)(i * 429496u) : w);
        double err = fabs(sgt_rng_log(x) - log(x));
        if (err > worst) worst = err, at = x;
    }
    if (worst > 1e-14) fail_msg("sgt_rng_log: error %.3g at x = %.17g (limit 1e-14)", worst, at);
}

static void t_rng_cos2pi_matches_libm(void **s) {
    (void)s;
    double grid[] = {0, 0x1p-32, 0.0625, 0.125, 0.125 + 0x1p-40, 0.25, 0.3, 0.375, 0.5, 0.5 - 0x1p-33, 0.625, 0.75,
                     0.875, 0.9, 1 - 0x1p-32};
    double worst = 0, at = 0;
    for (size_t i = 0; i < sizeof grid / sizeof grid[0]; i++) {
        double err = fabs(sgt_rng_cos2pi(grid[i]) - cos(2 * M_PI * grid[i]));
        if (err > worst) worst = err, at = grid[i];
    }
    for (uint64_t i = 0; i < 20000; i++) {
        /* a sweep of k / 2^14 (hits every octant edge), then the u2 values Box-Muller uses */
        double u = i < 16384 ? (double)i / 16384 : (double)sgt_philox(i, 10, 1).v[1] * 0x1p-32;
        double err = fabs(sgt_rng_cos2pi(u) - cos(2 * M_PI * u));
        if (err > worst) worst = err, at = u;
    }
    if (worst > 1e-14) fail_msg("sgt_rng_cos2pi: error %.3g at u = %.17g (limit 1e-14)", worst, at);
    /* exact at the quarter turns, where symmetry is used */
    assert_true(sgt_rng_cos2pi(0) == 1.0);
    assert_true(sgt_rng_cos2pi(0.5) == -1.0);
}

/* an optional argument selects tests by name (cmocka's filter, '*' wildcards) */
/* ---- dropout ---- */

/* y = x / (1 - p) where sgt_rng_uniform_f32_at(i) >= p (i the logical position), exactly 0
 * elsewhere; the same (seed, stream) gives the same mask, another stream another one; the kept
 * fraction is 1 - p within 5 standard deviations */
static void t_dropout_mask(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    sgt_ctx *c = &e->ctx;
    const double ps[] = {0.1, 0.5, 1.0 / 3.0, 0.0};
    for (int t = 0; t < 2; t++) {
        sgt_dtype dt = t ? SGT_F64 : SGT_F32;
        for (int k = 0; k < 4; k++) {
            const double p = ps[k];
            sgt_tensor *x = tu_rand(c, dt, SGT_SHAPE(37, 1091), 40, 0.5, 2); /* 40367: over the OpenMP threshold */
            sgt_tensor *xt = sgt_contiguous(c, sgt_transpose(c, x, 0, 1));  /* [1091, 37] */
            sgt_tensor *y = sgt_dropout(c, x, p, 99, 5), *y2 = sgt_dropout(c, x, p, 99, 5);
            sgt_tensor *yo = sgt_dropout(c, x, p, 99, 6);
            sgt_tensor *yv = sgt_dropout(c, sgt_transpose(c, xt, 0, 1), p, 99, 5); /* a strided view of x's values */
            double *hx = tu_host(x), *hy = tu_host(y), *hy2 = tu_host(y2), *ho = tu_host(yo), *hv = tu_host(yv);
            const int64_t n = sgt_numel(x);
            int64_t kept = 0, differ = 0;
            const double sc = dt == SGT_F32 ? (double)(float)(1.0 / (1.0 - p)) : 1.0 / (1.0 - p);
            for (int64_t i = 0; i < n; i++) {
                const bool keep = sgt_rng_uniform_f32_at((uint64_t)i, 5, 99) >= p;
                const double want = keep ? (dt == SGT_F32 ? (double)((float)hx[i] * (float)sc) : hx[i] * sc) : 0.0;
                if (hy[i] != want)
                    fail_msg("dropout %s p=%g element %lld: %.9g, expected %.9g (kept %d)", sgt_dtype_name(dt), p,
                             (long long)i, hy[i], want, keep);
                if (hy2[i] != hy[i] || hv[i] != hy[i])
                    fail_msg("dropout %s p=%g element %lld: not reproducible (%.9g, %.9g, view %.9g)", sgt_dtype_name(dt),
                             p, (long long)i, hy[i], hy2[i], hv[i]);
                kept += keep;
                differ += (ho[i] != 0) != keep;
            }
            const double sd = sqrt((double)n * p * (1 - p));
            if (fabs((double)kept - (double)n * (1 - p)) > 5 * sd + 0.5)
                fail_msg("dropout p=%g kept %lld of %lld", p, (long long)kept, (long long)n);
            if (p > 0 && differ < n * p / 2) fail_msg("dropout p=%g: stream 6's mask is too close to stream 5's", p);
            free(hx), free(hy), free(hy2), free(ho), free(hv);
        }
    }
    /* the threshold is ceil(p 2^24): a draw exactly at p is kept */
    assert_int_equal(sgt_dropout_threshold(0.5), 1u << 23);
    assert_int_equal(sgt_dropout_threshold(0.5 + 0x1p-30), (1u << 23) + 1);
    assert_int_equal(sgt_dropout_threshold(0), 0);
    EXPECT_SGT_ERROR(sgt_dropout(c, tu_rand(c, SGT_F32, SGT_SHAPE(3), 1, 0, 1), 1.0, 1, 1), "dropout: probability 1");
    tu_env_free(e);
}

int main(int argc, char **argv) {
    if (argc > 1) cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_philox_known_answers),
        cmocka_unit_test(t_fills_reproducible),
        cmocka_unit_test(t_fill_element_is_per_element_function),
        cmocka_unit_test(t_uniform_in_range),
        cmocka_unit_test(t_uniform_f32_top_draw_stays_below_hi),
        cmocka_unit_test(t_uniform_one_ulp_range_stays_below_hi),
        cmocka_unit_test(t_normal_moments_and_tails),
        cmocka_unit_test(t_rng_log_matches_libm),
        cmocka_unit_test(t_rng_cos2pi_matches_libm),
        cmocka_unit_test(t_dropout_mask),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
