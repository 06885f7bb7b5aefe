/* ce_targets.h: the cross-entropy's target check, shared by the CPU kernel and the CUDA kernel
 * (which runs it on targets copied to the host), so both fail with the same message. */
#ifndef SGT_CE_TARGETS_H
#define SGT_CE_TARGETS_H

#include <stdint.h>

#include "error.h"

/* Checks the targets that are not `ignore` against [0, valid) and counts them. */
static inline int64_t sgt_ce_count_targets(const int32_t *t, int64_t n, int64_t valid, int64_t V, int32_t ignore) {
    int64_t cnt = 0;
    for (int64_t i = 0; i < n; i++) {
        if (t[i] == ignore) continue;
        SGT_CHECK(t[i] >= 0 && t[i] < valid,
                  "cross_entropy: target %d at row %lld is outside [0, %lld) (%lld valid columns of %lld)", t[i],
                  (long long)i, (long long)valid, (long long)valid, (long long)V);
        cnt++;
    }
    return cnt;
}

#endif
