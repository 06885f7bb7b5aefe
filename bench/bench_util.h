/* bench_util.h: what the benchmark programs share: clocks in seconds (bench_clock_s for any clock,
 * bench_now for CLOCK_MONOTONIC wall time), the qsort comparator of doubles, the median of a set of
 * timings (sorting it in place), and the fixed pseudo-random token ids of a training step,
 * reproduced by bench/torch_gpt.py:
 *   id[i] = ((i * 2654435761 + 12345) mod 2^32) mod V,  i over a [B, T+1] row-major buffer;
 *   x = columns 0..T-1, targets = columns 1..T.
 * Header-only (static inline): each program takes what it uses. */
#ifndef SGT_BENCH_UTIL_H
#define SGT_BENCH_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "../tensor/error.h"

/* clock `id` in seconds */
static inline double bench_clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* wall time in seconds (CLOCK_MONOTONIC) */
static inline double bench_now(void) { return bench_clock_s(CLOCK_MONOTONIC); }

/* ascending doubles, for qsort */
static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* sorts v[0..n) in place (n >= 1); the median (the mean of the middle two for even n) */
static inline double bench_median_sorted(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The ids of the header comment, [B, T+1], to free */
static inline int32_t *bench_make_ids(int64_t B, int64_t T, int64_t V) {
    int32_t *ids = malloc(sizeof *ids * (size_t)(B * (T + 1)));
    SGT_CHECK(ids, "out of host memory for %lld ids", (long long)(B * (T + 1)));
    for (int64_t i = 0; i < B * (T + 1); i++)
        ids[i] = (int32_t)((((uint64_t)i * 2654435761u + 12345u) & 0xffffffffu) % (uint64_t)V);
    return ids;
}

#endif
