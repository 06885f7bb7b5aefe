/* dataset.h: train/validation split by document, the seeded training batch sampler, and the
 * validation window iterator, all over a uint16 token stream (e.g. a token cache).
 *
 * Dimension legend: B batch rows, T context length (a row holds T+1 tokens: inputs are its first
 * T, targets its last T, so token i predicts token i+1).
 *
 * Split: the validation set is the LAST documents of the stream, so both splits are contiguous
 * slices of the cache (no copy) and a document never straddles them. The count is
 * ceil(val_fraction * n_docs) documents, grown one document at a time (still from the end) until
 * the validation slice holds at least min_val_tokens tokens; at least one document stays in train.
 *
 * Sampler: the train slice is cut into windows w = 0 .. n_windows-1 starting at w*T, each of T+1
 * tokens (neighbours share one token), n_windows = (n_train - 1) / T. Each epoch visits every
 * window once, in a Fisher-Yates permutation drawn from splitmix64 seeded by (seed, epoch). A batch
 * takes the next B windows of that sequence and runs on into the next epoch when one ends. The
 * order depends only on (seed, T, n_windows), and B only groups it into rows; the position is
 * (epoch, index), so a saved sgt_sampler_state resumes exactly.
 *
 * Validation: non-overlapping windows starting at 0, T, 2T, ..., each of T+1 tokens; a last window
 * without T+1 tokens is dropped: n_windows = (n_val - 1) / T.
 *
 * Errors: 0 or a negative errno value, with a one-line message in err[errsz]. */
#ifndef SGT_DATASET_H
#define SGT_DATASET_H

#include <stddef.h>
#include <stdint.h>

#define SGT_VAL_FRACTION_DEFAULT 0.005

typedef struct sgt_data_split {
    const uint16_t *train; /* [n_train] the first documents */
    uint64_t n_train;
    const uint16_t *val;   /* [n_val] the last documents, right after train */
    uint64_t n_val;
    uint64_t n_train_docs, n_val_docs;
} sgt_data_split;

/* tokens[n_tokens] with doc_offsets[n_docs + 1] (doc d is tokens[doc_offsets[d] ..
 * doc_offsets[d + 1]), doc_offsets[n_docs] == n_tokens). Fails (-EINVAL) if the data cannot give
 * min_val_tokens validation tokens while keeping one training document. */
int sgt_split_by_doc(const uint16_t *tokens, uint64_t n_tokens, const uint64_t *doc_offsets,
                     uint64_t n_docs, double val_fraction, uint64_t min_val_tokens,
                     sgt_data_split *out, char *err, size_t errsz);

/* Where a sampler stands; save it with a checkpoint. seed, T and n_windows identify the
 * sequence (restore refuses another); B is kept for information only. */
typedef struct sgt_sampler_state {
    uint64_t seed;
    uint64_t B, T;
    uint64_t n_windows;
    uint64_t epoch; /* epochs completed */
    uint64_t index; /* windows of the current epoch already handed out */
} sgt_sampler_state;

typedef struct sgt_batch_sampler {
    const uint16_t *tokens; /* [n_tokens] the train slice (not owned) */
    uint64_t n_tokens;
    int B, T;
    uint64_t seed;
    uint64_t n_windows;
    uint64_t epoch, index;
    uint64_t *perm; /* [n_windows] the window order of `epoch` */
} sgt_batch_sampler;

int sgt_batch_sampler_init(sgt_batch_sampler *s, const uint16_t *tokens, uint64_t n_tokens, int B,
                           int T, uint64_t seed, char *err, size_t errsz);
/* Fills out[B][T+1] with the next B windows. */
void sgt_batch_sampler_next(sgt_batch_sampler *s, int32_t *out);
sgt_sampler_state sgt_batch_sampler_state(const sgt_batch_sampler *s);
/* Moves to a saved position. -EINVAL if st came from another seed, T or train slice. */
int sgt_batch_sampler_restore(sgt_batch_sampler *s, const sgt_sampler_state *st, char *err,
                              size_t errsz);
void sgt_batch_sampler_free(sgt_batch_sampler *s);

typedef struct sgt_val_iter {
    const uint16_t *tokens; /* [n_tokens] the validation slice (not owned) */
    uint64_t n_tokens;
    int T;
    uint64_t n_windows;
    uint64_t next; /* next window index */
} sgt_val_iter;

void sgt_val_iter_init(sgt_val_iter *it, const uint16_t *tokens, uint64_t n_tokens, int T);
/* Fills up to B rows of out[B][T+1] with the next windows; returns the number filled (0 at the
 * end). */
int sgt_val_iter_next(sgt_val_iter *it, int B, int32_t *out);
void sgt_val_iter_reset(sgt_val_iter *it);

#endif
