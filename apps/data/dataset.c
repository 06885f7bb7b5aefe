/* dataset.c: document split, seeded epoch-permutation batch sampler, validation windows.
 * See dataset.h for the exact rules. */
#include "dataset.h"
#include "errors.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int sgt_split_by_doc(const uint16_t *tokens, uint64_t n_tokens, const uint64_t *doc_offsets,
                     uint64_t n_docs, double val_fraction, uint64_t min_val_tokens,
                     sgt_data_split *out, char *err, size_t errsz) {
    memset(out, 0, sizeof *out);
    if (!(val_fraction >= 0 && val_fraction < 1)) {
        sgt_data_err(err, errsz, "dataset: val_fraction must be in [0, 1), got %g", val_fraction);
        return -EINVAL;
    }
    if (n_docs < 1 || doc_offsets[0] != 0 || doc_offsets[n_docs] != n_tokens) {
        sgt_data_err(err, errsz, "dataset: %llu documents with offsets that do not cover %llu tokens",
                (unsigned long long)n_docs, (unsigned long long)n_tokens);
        return -EINVAL;
    }
    /* ceil, with slack so that e.g. 0.005 * 1000 (not exactly 5 in binary) gives 5 */
    uint64_t n_val_docs = (uint64_t)ceil(val_fraction * (double)n_docs * (1 - 1e-12));
    if (n_val_docs > n_docs - 1) n_val_docs = n_docs - 1;
    while (n_val_docs < n_docs - 1 && n_tokens - doc_offsets[n_docs - n_val_docs] < min_val_tokens)
        n_val_docs++;
    uint64_t cut = doc_offsets[n_docs - n_val_docs];
    if (n_tokens - cut < min_val_tokens) {
        sgt_data_err(err, errsz,
                "dataset: too small for a validation split of %llu tokens: %llu documents, %llu "
                "tokens, and one document must stay in train",
                (unsigned long long)min_val_tokens, (unsigned long long)n_docs,
                (unsigned long long)n_tokens);
        return -EINVAL;
    }
    out->train = tokens;
    out->n_train = cut;
    out->val = tokens + cut;
    out->n_val = n_tokens - cut;
    out->n_train_docs = n_docs - n_val_docs;
    out->n_val_docs = n_val_docs;
    return 0;
}

/* ---- sampler ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound) without modulo bias. */
static uint64_t uniform(uint64_t *rng, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    for (;;) {
        uint64_t r = splitmix64(rng);
        if (r >= threshold) return r % bound;
    }
}

static void make_perm(sgt_batch_sampler *s) {
    uint64_t rng = s->seed;
    uint64_t mix = splitmix64(&rng) ^ (s->epoch * 0xD1B54A32D192ED03ULL);
    rng = mix;
    for (uint64_t i = 0; i < s->n_windows; i++) s->perm[i] = i;
    for (uint64_t i = s->n_windows; i > 1; i--) {
        uint64_t j = uniform(&rng, i);
        uint64_t t = s->perm[i - 1];
        s->perm[i - 1] = s->perm[j];
        s->perm[j] = t;
    }
}

int sgt_batch_sampler_init(sgt_batch_sampler *s, const uint16_t *tokens, uint64_t n_tokens, int B,
                           int T, uint64_t seed, char *err, size_t errsz) {
    memset(s, 0, sizeof *s);
    if (B < 1 || T < 1) {
        sgt_data_err(err, errsz, "dataset: batch needs B >= 1 and T >= 1, got B=%d T=%d", B, T);
        return -EINVAL;
    }
    if (n_tokens < (uint64_t)T + 1) {
        sgt_data_err(err, errsz, "dataset: train split has %llu tokens, fewer than T+1 = %d",
                (unsigned long long)n_tokens, T + 1);
        return -EINVAL;
    }
    s->tokens = tokens;
    s->n_tokens = n_tokens;
    s->B = B;
    s->T = T;
    s->seed = seed;
    s->n_windows = (n_tokens - 1) / (uint64_t)T;
    s->perm = malloc(s->n_windows * sizeof *s->perm);
    if (!s->perm) {
        sgt_data_err(err, errsz, "dataset: out of memory for %llu window indices",
                (unsigned long long)s->n_windows);
        return -ENOMEM;
    }
    make_perm(s);
    return 0;
}

void sgt_batch_sampler_next(sgt_batch_sampler *s, int32_t *out) {
    size_t row = (size_t)s->T + 1;
    for (int b = 0; b < s->B; b++) {
        if (s->index == s->n_windows) {
            s->epoch++;
            s->index = 0;
            make_perm(s);
        }
        const uint16_t *src = s->tokens + s->perm[s->index++] * (uint64_t)s->T;
        int32_t *dst = out + (size_t)b * row;
        for (size_t i = 0; i < row; i++) dst[i] = src[i];
    }
}

sgt_sampler_state sgt_batch_sampler_state(const sgt_batch_sampler *s) {
    return (sgt_sampler_state){.seed = s->seed, .B = (uint64_t)s->B, .T = (uint64_t)s->T,
                               .n_windows = s->n_windows, .epoch = s->epoch, .index = s->index};
}

int sgt_batch_sampler_restore(sgt_batch_sampler *s, const sgt_sampler_state *st, char *err,
                              size_t errsz) {
    if (st->seed != s->seed || st->T != (uint64_t)s->T || st->n_windows != s->n_windows ||
        st->index > s->n_windows) {
        sgt_data_err(err, errsz,
                "dataset: saved sampler state (seed %llu, T %llu, %llu windows, index %llu) does "
                "not match this run (seed %llu, T %d, %llu windows)",
                (unsigned long long)st->seed, (unsigned long long)st->T,
                (unsigned long long)st->n_windows, (unsigned long long)st->index,
                (unsigned long long)s->seed, s->T, (unsigned long long)s->n_windows);
        return -EINVAL;
    }
    if (st->epoch != s->epoch) {
        s->epoch = st->epoch;
        make_perm(s);
    }
    s->index = st->index;
    return 0;
}

void sgt_batch_sampler_free(sgt_batch_sampler *s) {
    free(s->perm);
    memset(s, 0, sizeof *s);
}

/* ---- validation ---- */

void sgt_val_iter_init(sgt_val_iter *it, const uint16_t *tokens, uint64_t n_tokens, int T) {
    it->tokens = tokens;
    it->n_tokens = n_tokens;
    it->T = T;
    it->n_windows = (T >= 1 && n_tokens >= 1) ? (n_tokens - 1) / (uint64_t)T : 0;
    it->next = 0;
}

int sgt_val_iter_next(sgt_val_iter *it, int B, int32_t *out) {
    size_t row = (size_t)it->T + 1;
    int b = 0;
    for (; b < B && it->next < it->n_windows; b++, it->next++) {
        const uint16_t *src = it->tokens + it->next * (uint64_t)it->T;
        int32_t *dst = out + (size_t)b * row;
        for (size_t i = 0; i < row; i++) dst[i] = src[i];
    }
    return b;
}

void sgt_val_iter_reset(sgt_val_iter *it) { it->next = 0; }
