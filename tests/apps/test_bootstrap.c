/* test_bootstrap.c: the paired cluster bootstrap of eval's perplexity comparison (apps/bootstrap.h):
 * point estimates exact on a hand example; coverage of the 95% percentile intervals near 95% on
 * a known distribution (the true PPLs and gap are known, units of 1-3 windows, correlated A and
 * B); the same seed giving the same interval; the PASS / FAIL / INCONCLUSIVE verdicts; bad input. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../apps/bootstrap.h"
#include "../../tensor/rng.h"

static double normal(uint64_t i, uint64_t stream) { /* Box-Muller from two uniforms */
    const double u1 = sgt_rng_uniform_at(2 * i, stream, 99), u2 = sgt_rng_uniform_at(2 * i + 1, stream, 99);
    return sqrt(-2 * log(1 - u1)) * cos(6.283185307179586 * u2);
}

static void t_point_estimates(void **s) {
    (void)s;
    /* 3 units: windows' mean NLLs summed per unit */
    const double a[3] = {1.0 + 2.0, 3.0, 2.0}, b[3] = {1.5 + 2.5, 3.5, 2.5};
    const int64_t cnt[3] = {2, 1, 1};
    exp_bootstrap bs;
    char err[256];
    assert_int_equal(exp_paired_bootstrap(a, b, cnt, 3, 100, 0.95, 1, &bs, err, sizeof err), 0);
    assert_int_equal(bs.windows, 4);
    assert_true(fabs(bs.ppl_a - exp(8.0 / 4)) < 1e-12);
    assert_true(fabs(bs.ppl_b - exp(10.0 / 4)) < 1e-12);
    assert_true(fabs(bs.gap - (exp(0.5) - 1)) < 1e-12);
    /* every window's B - A is 0.5: every resample gives the same gap */
    assert_true(fabs(bs.gap_ci.lo - bs.gap) < 1e-12 && fabs(bs.gap_ci.hi - bs.gap) < 1e-12);
    assert_true(bs.ppl_a_ci.lo <= bs.ppl_a && bs.ppl_a <= bs.ppl_a_ci.hi);
}

/* 400 data sets of 80 units (1-3 windows each): window NLL under A ~ mu_a + e, under B ~ mu_b + e
 * + e' (correlated, as two models on the same text); the intervals must cover exp(mu_a), exp(mu_b)
 * and exp(mu_b - mu_a) - 1 about 95% of the time (binomial sd ~1.1%: the bounds are ~3.5 sd) */
static void t_coverage(void **s) {
    (void)s;
    const int sets = 400, n = 80, reps = 400;
    const double mu_a = 3.0, mu_b = 3.05;
    int cover_a = 0, cover_b = 0, cover_g = 0;
    uint64_t draw = 0;
    for (int k = 0; k < sets; k++) {
        double a[80], b[80];
        int64_t cnt[80];
        for (int u = 0; u < n; u++) {
            cnt[u] = 1 + (int64_t)(sgt_rng_uniform_at((uint64_t)(k * n + u), 7, 99) * 3);
            a[u] = b[u] = 0;
            for (int64_t w = 0; w < cnt[u]; w++) {
                const double e = 0.4 * normal(draw++, 1), e2 = 0.1 * normal(draw++, 2);
                a[u] += mu_a + e;
                b[u] += mu_b + e + e2;
            }
        }
        exp_bootstrap bs;
        char err[256];
        assert_int_equal(exp_paired_bootstrap(a, b, cnt, n, reps, 0.95, (uint64_t)k + 1, &bs, err, sizeof err), 0);
        cover_a += bs.ppl_a_ci.lo <= exp(mu_a) && exp(mu_a) <= bs.ppl_a_ci.hi;
        cover_b += bs.ppl_b_ci.lo <= exp(mu_b) && exp(mu_b) <= bs.ppl_b_ci.hi;
        const double g = exp(mu_b - mu_a) - 1;
        cover_g += bs.gap_ci.lo <= g && g <= bs.gap_ci.hi;
    }
    const double ca = (double)cover_a / sets, cb = (double)cover_b / sets, cg = (double)cover_g / sets;
    print_message("    coverage of the 95%% intervals over %d data sets: ppl A %.3f, ppl B %.3f, gap %.3f\n", sets, ca,
                  cb, cg);
    if (ca < 0.91 || ca > 0.985 || cb < 0.91 || cb > 0.985 || cg < 0.91 || cg > 0.985)
        fail_msg("coverage outside [0.91, 0.985]: ppl A %.3f, ppl B %.3f, gap %.3f", ca, cb, cg);
}

static void t_reproducible_and_verdicts(void **s) {
    (void)s;
    double a[50], b[50];
    int64_t cnt[50];
    for (int u = 0; u < 50; u++) {
        cnt[u] = 1;
        a[u] = 3 + 0.3 * normal((uint64_t)u, 3);
        b[u] = a[u] + 0.01 + 0.02 * normal((uint64_t)u, 4);
    }
    exp_bootstrap x, y;
    char err[256];
    assert_int_equal(exp_paired_bootstrap(a, b, cnt, 50, 300, 0.95, 5, &x, err, sizeof err), 0);
    assert_int_equal(exp_paired_bootstrap(a, b, cnt, 50, 300, 0.95, 5, &y, err, sizeof err), 0);
    assert_true(x.gap_ci.lo == y.gap_ci.lo && x.gap_ci.hi == y.gap_ci.hi);
    assert_true(x.gap_ci.lo < x.gap && x.gap < x.gap_ci.hi);
    /* verdicts against a target placed below, inside and above the interval */
    assert_string_equal(exp_gap_verdict(&x, x.gap_ci.hi + 1e-9), "PASS");
    assert_string_equal(exp_gap_verdict(&x, x.gap_ci.lo - 1e-9), "FAIL");
    assert_string_equal(exp_gap_verdict(&x, x.gap), "INCONCLUSIVE");
    /* a wider level gives a wider interval */
    exp_bootstrap w;
    assert_int_equal(exp_paired_bootstrap(a, b, cnt, 50, 300, 0.99, 5, &w, err, sizeof err), 0);
    assert_true(w.gap_ci.lo <= x.gap_ci.lo && w.gap_ci.hi >= x.gap_ci.hi);
}

static void t_bad_input(void **s) {
    (void)s;
    const double a[2] = {1, 2}, b[2] = {1, 2};
    const int64_t cnt[2] = {1, 1};
    exp_bootstrap bs;
    char err[256];
    assert_int_equal(exp_paired_bootstrap(a, b, cnt, 1, 100, 0.95, 1, &bs, err, sizeof err), -1);
    assert_non_null(strstr(err, "bootstrap"));
    assert_int_equal(exp_paired_bootstrap(a, b, cnt, 2, 5, 0.95, 1, &bs, err, sizeof err), -1);
    assert_int_equal(exp_paired_bootstrap(a, b, cnt, 2, 100, 1.0, 1, &bs, err, sizeof err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_point_estimates),
        cmocka_unit_test(t_coverage),
        cmocka_unit_test(t_reproducible_and_verdicts),
        cmocka_unit_test(t_bad_input),
    };
    return cmocka_run_group_tests_name("bootstrap", tests, NULL, NULL);
}
