/* bootstrap.h: the paired bootstrap behind eval's perplexity comparison.
 *
 * Two models A (dense) and B (SGT) are scored on the same tokens. The scored tokens are grouped
 * into units (clusters): a unit u holds count[u] windows and the sums a[u], b[u] of those windows'
 * mean NLL under A and B (every window predicts T tokens, so windows weigh the same). Units are
 * what the bootstrap resamples; windows of one document are correlated, so eval makes a unit of
 * the windows that start in one document (a cluster bootstrap), which keeps the interval honest
 * where a per-window resampling would make it too narrow.
 *
 * Statistics (NLL = sum of window means / number of windows):
 *   ppl_a = exp(NLL_A), ppl_b = exp(NLL_B), gap = ppl_b / ppl_a - 1 = exp(NLL_B - NLL_A) - 1
 * Each of `reps` resamples draws n units with replacement (the same draw for A and B: paired),
 * recomputes the three statistics, and the interval at `level` (e.g. 0.95) is the percentile
 * interval of the resampled values (linear interpolation between order statistics). Draws come
 * from the Philox generator (tensor/rng.h) at (seed, stream 0x5eed), so a run is reproducible. */
#ifndef SGT_APPS_BOOTSTRAP_H
#define SGT_APPS_BOOTSTRAP_H

#include <stdint.h>

typedef struct {
    double lo, hi;
} exp_interval;

typedef struct {
    double ppl_a, ppl_b, gap;                /* the point estimates on all units */
    exp_interval ppl_a_ci, ppl_b_ci, gap_ci; /* percentile intervals */
    int64_t units, windows;
    int reps;
    double level;
} exp_bootstrap;

/* 0 on success; -1 (with err) for n < 2 units, reps < 10 or a level outside (0, 1). */
int exp_paired_bootstrap(const double *a, const double *b, const int64_t *count, int64_t n, int reps, double level,
                         uint64_t seed, exp_bootstrap *out, char *err, int errn);

/* The verdict of "B within `target` of A" (gap <= target): "PASS" when the whole interval is at or
 * below target, "FAIL" when it is entirely above, "INCONCLUSIVE" when it straddles target. */
const char *exp_gap_verdict(const exp_bootstrap *bs, double target);

#endif
