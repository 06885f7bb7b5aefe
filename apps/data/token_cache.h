/* token_cache.h: a dataset tokenised once into a uint16 token file, rebuilt only when the data
 * or the tokenizer change.
 *
 * Token stream: the documents of the JSONL file in file order, each followed by EOT (50256).
 * Documents are encoded with sgt_tokenizer_encode (a literal "<|endoftext|>" in a text stays
 * ordinary text, as in GPT-2 data preparation).
 *
 * File layout (little-endian, native structs; version 1):
 *   [header, 256 bytes]  magic "SGTTOKC\0", version, counts, key, payload hash, skip counters
 *   [uint16 tokens[n_tokens]]
 *   [zero padding to a multiple of 8 bytes]
 *   [uint64 doc_offsets[n_docs + 1]]  doc d is tokens[doc_offsets[d] .. doc_offsets[d + 1]),
 *                                     its last token is EOT; doc_offsets[n_docs] == n_tokens
 *
 * The key is the dataset identity (size, mtime in ns, XXH64 of the file bytes, read streaming),
 * the tokenizer identity (sgt_tokenizer_hash), and a hash of the text field name. A cache whose
 * key matches is loaded (mmap, read-only); otherwise it is rebuilt. A cache that is corrupt (wrong
 * magic, size that disagrees with its header, payload hash mismatch, bad offsets, ids out of the
 * vocabulary) is rebuilt with a warning on stderr. Writing goes to "<cache_path>.tmp.<pid>" and is
 * renamed over cache_path, so a crash never leaves a half-written cache under the real name.
 *
 * Errors: 0 or a negative errno value, with a one-line message naming the file in err[errsz]. */
#ifndef SGT_TOKEN_CACHE_H
#define SGT_TOKEN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "jsonl.h"
#include "tokenizer.h"

#define SGT_TOKEN_CACHE_VERSION 1

typedef struct sgt_token_cache_key {
    uint64_t data_size;
    int64_t data_mtime_ns;
    uint64_t data_hash; /* XXH64 (seed 0) of the dataset file's bytes */
    uint64_t tokenizer_hash;
    uint64_t field_hash; /* FNV-1a 64 of the text field name */
} sgt_token_cache_key;

typedef enum {
    SGT_CACHE_LOADED,          /* an existing cache matched the key */
    SGT_CACHE_BUILT,           /* there was no cache file */
    SGT_CACHE_REBUILT_STALE,   /* the cache was for other data, tokenizer, field or version */
    SGT_CACHE_REBUILT_CORRUPT, /* the cache was truncated or damaged (a warning was printed) */
} sgt_cache_origin;

typedef struct sgt_token_cache {
    const uint16_t *tokens;      /* [n_tokens] */
    uint64_t n_tokens;
    const uint64_t *doc_offsets; /* [n_docs + 1] */
    uint64_t n_docs;
    int32_t eot;
    sgt_token_cache_key key;
    sgt_cache_origin origin;
    sgt_jsonl_stats stats; /* lines skipped while building (kept in the header, so also on load) */
    void *map_;            /* private: the mapping */
    size_t map_size_;
} sgt_token_cache;

/* Loads cache_path if its key matches dataset_path/text_field/tok, else tokenises dataset_path
 * and writes cache_path. text_field NULL means "text". progress: show a progress bar on stderr
 * when it is a terminal, plain periodic lines otherwise. On success out must be closed. */
int sgt_token_cache_build_or_load(const char *dataset_path, const char *text_field,
                                  sgt_tokenizer *tok, const char *cache_path, bool progress,
                                  sgt_token_cache *out, char *err, size_t errsz);
void sgt_token_cache_close(sgt_token_cache *c);

/* The key of a dataset as it is now (hashes the whole file). */
int sgt_token_cache_key_of(const char *dataset_path, const char *text_field,
                           const sgt_tokenizer *tok, sgt_token_cache_key *key, char *err,
                           size_t errsz);

/* Streaming XXH64 (the xxHash 64-bit algorithm), exposed for tests. */
typedef struct sgt_xxh64 {
    uint64_t v[4];
    uint64_t total;
    unsigned char mem[32];
    uint32_t memsize;
    uint64_t seed;
} sgt_xxh64;
void sgt_xxh64_init(sgt_xxh64 *s, uint64_t seed);
void sgt_xxh64_update(sgt_xxh64 *s, const void *p, size_t n);
uint64_t sgt_xxh64_digest(const sgt_xxh64 *s);

#endif
