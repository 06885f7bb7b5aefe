/* bootstrap.c: the paired cluster bootstrap of eval's perplexity comparison (see bootstrap.h). */
#include "bootstrap.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "../tensor/rng.h"

static int cmp_double(const void *x, const void *y) {
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* the q-quantile of sorted v[0..n), interpolating linearly between order statistics */
static double quantile(const double *v, int n, double q) {
    const double h = q * (double)(n - 1);
    const int i = (int)floor(h);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (h - (double)i) * (v[i + 1] - v[i]);
}

static exp_interval interval(double *v, int n, double level) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    const double t = (1 - level) / 2;
    return (exp_interval){quantile(v, n, t), quantile(v, n, 1 - t)};
}

int exp_paired_bootstrap(const double *a, const double *b, const int64_t *count, int64_t n, int reps, double level,
                         uint64_t seed, exp_bootstrap *out, char *err, int errn) {
    if (n < 2 || reps < 10 || !(level > 0 && level < 1)) {
        snprintf(err, (size_t)errn, "bootstrap: needs >= 2 units, >= 10 resamples and a level in (0, 1) (got %lld, %d, %g)",
                 (long long)n, reps, level);
        return -1;
    }
    double sa = 0, sb = 0;
    int64_t w = 0;
    for (int64_t u = 0; u < n; u++) sa += a[u], sb += b[u], w += count[u];
    *out = (exp_bootstrap){.units = n, .windows = w, .reps = reps, .level = level};
    out->ppl_a = exp(sa / (double)w);
    out->ppl_b = exp(sb / (double)w);
    out->gap = exp((sb - sa) / (double)w) - 1;
    double *v = malloc(sizeof(double) * 3 * (size_t)reps);
    if (!v) {
        snprintf(err, (size_t)errn, "bootstrap: out of host memory for %d resamples", reps);
        return -1;
    }
    double *va = v, *vb = v + reps, *vg = v + 2 * reps;
    uint64_t draw = 0;
    for (int r = 0; r < reps; r++) {
        double ra = 0, rb = 0;
        int64_t rw = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t u = (int64_t)(sgt_rng_uniform_at(draw++, 0x5eed, seed) * (double)n);
            if (u >= n) u = n - 1;
            ra += a[u], rb += b[u], rw += count[u];
        }
        va[r] = exp(ra / (double)rw);
        vb[r] = exp(rb / (double)rw);
        vg[r] = exp((rb - ra) / (double)rw) - 1;
    }
    out->ppl_a_ci = interval(va, reps, level);
    out->ppl_b_ci = interval(vb, reps, level);
    out->gap_ci = interval(vg, reps, level);
    free(v);
    return 0;
}

const char *exp_gap_verdict(const exp_bootstrap *bs, double target) {
    if (bs->gap_ci.hi <= target) return "PASS";
    if (bs->gap_ci.lo > target) return "FAIL";
    return "INCONCLUSIVE";
}
