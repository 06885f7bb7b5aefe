/* tokenizer.h: GPT-2 byte-level BPE tokenizer (OpenAI's encoder.json + vocab.bpe), in C.
 *
 * Encoding gives exactly GPT-2's ids:
 *   1. Pre-tokenisation with GPT-2's regex
 *        's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      run by PCRE2 in UTF + UCP mode. \s is spelled out as the Unicode White_Space set (what
 *      Python's `regex` module, used by OpenAI's encoder.py, and tiktoken match), because PCRE2's
 *      own \s leaves out U+0085.
 *   2. Each piece's bytes map to GPT-2's byte-level symbols and are merged by BPE rank.
 *
 * Invalid UTF-8: GPT-2 never sees it (Python decodes first), so we define it. The input is cut
 * into maximal valid UTF-8 runs; the regex runs over each run on its own, and every byte that is
 * not part of a valid run is a piece of its own (its single-byte token). decode(encode(x)) == x
 * for every byte string x.
 *
 * Special tokens: sgt_tokenizer_encode() treats "<|endoftext|>" as ordinary text (like tiktoken's
 * encode_ordinary); sgt_tokenizer_encode_special() maps each occurrence to the id 50256.
 *
 * Errors: functions that can fail return 0 or a negative errno value (-ENOENT missing file,
 * -EINVAL malformed file or bad argument, -ENOMEM) and write a one-line message naming the file
 * into err[errsz] (err may be NULL). Nothing here prints or exits.
 *
 * Word cache: pieces of up to 256 bytes are cached (piece -> ids) in a hash map of at most
 * 32768 entries and about 8 MB, cleared whole when full.
 *
 * Threads: an sgt_tokenizer holds the word cache and PCRE2 match data, so encode calls on one
 * tokenizer must not run concurrently; give each thread its own, loaded or forked. */
#ifndef SGT_TOKENIZER_H
#define SGT_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SGT_TOKENIZER_EOT 50256 /* "<|endoftext|>" in GPT-2 */

typedef struct sgt_tokenizer sgt_tokenizer;

/* A growable array of token ids; encode/decode append to it. Zero-initialise before first use. */
typedef struct sgt_tok_ids {
    int32_t *data;
    size_t len, cap;
} sgt_tok_ids;

/* A growable byte buffer; decode appends to it. Zero-initialise before first use. */
typedef struct sgt_tok_bytes {
    char *data;
    size_t len, cap;
} sgt_tok_bytes;

void sgt_tok_ids_free(sgt_tok_ids *v);
int sgt_tok_ids_push(sgt_tok_ids *v, int32_t id); /* 0 or -ENOMEM */
void sgt_tok_bytes_free(sgt_tok_bytes *b);

/* Picks the tokenizer directory: flag_dir (from --tokenizer) if not NULL, else $SGT_TOKENIZER,
 * else $SGT_SHARED/tokenizer/gpt2, else ../shared/tokenizer/gpt2 (relative to the working
 * directory). Writes it to buf. Returns 0, or -ENAMETOOLONG if it does not fit. */
int sgt_tokenizer_resolve_dir(const char *flag_dir, char *buf, size_t bufsz);

/* Loads dir/encoder.json and dir/vocab.bpe. On success *out owns the tokenizer. */
int sgt_tokenizer_load(const char *dir, sgt_tokenizer **out, char *err, size_t errsz);
void sgt_tokenizer_free(sgt_tokenizer *t);
/* A tokenizer for another thread: it shares t's vocabulary, merges and compiled pattern (read
 * only) and has its own match data and word cache; it encodes exactly as t. Free it (with
 * sgt_tokenizer_free) before t. Not for sgt_tokenizer_set_naive_bpe after forking. */
int sgt_tokenizer_fork(const sgt_tokenizer *t, sgt_tokenizer **out, char *err, size_t errsz);

/* Appends the ids of text[0..len) to out; "<|endoftext|>" is ordinary text. 0 or -ENOMEM. */
int sgt_tokenizer_encode(sgt_tokenizer *t, const void *text, size_t len, sgt_tok_ids *out);

/* Same, but every "<|endoftext|>" in the text becomes the special id (allowed_special). */
int sgt_tokenizer_encode_special(sgt_tokenizer *t, const void *text, size_t len,
                                 sgt_tok_ids *out);

/* Appends the bytes of ids[0..n) to out. -EINVAL (message in err) on an id out of range. */
int sgt_tokenizer_decode(const sgt_tokenizer *t, const int32_t *ids, size_t n, sgt_tok_bytes *out,
                         char *err, size_t errsz);

/* The bytes of one token (not NUL-terminated), or NULL if id is out of range. */
const char *sgt_tokenizer_token(const sgt_tokenizer *t, int32_t id, size_t *len);

int32_t sgt_tokenizer_vocab_size(const sgt_tokenizer *t); /* 50257 for GPT-2 */
int32_t sgt_tokenizer_eot(const sgt_tokenizer *t);        /* id of "<|endoftext|>" */

/* Identity of the tokenizer: FNV-1a 64 over the bytes of encoder.json then vocab.bpe. */
uint64_t sgt_tokenizer_hash(const sgt_tokenizer *t);

/* Debug/oracle switch: true makes BPE use the naive GPT-2 reference loop (rescan all pairs,
 * merge every occurrence of the best one, O(n^2) per word) instead of the heap-based merge
 * (O(n log n)). Both give the same ids; the naive one is kept as the oracle for tests. A merges
 * file whose ranks the heap merge cannot follow (a merge ranked before a merge that makes one of
 * its parts; not the case for GPT-2) always uses the naive loop. Also clears the word cache. */
void sgt_tokenizer_set_naive_bpe(sgt_tokenizer *t, bool naive);

/* Word-cache counters, for benchmarks: lookups that hit and that missed. */
void sgt_tokenizer_cache_stats(const sgt_tokenizer *t, uint64_t *hits, uint64_t *misses);

/* Length of the longest prefix of s[0..n) that is valid UTF-8 (no overlongs, no surrogates,
 * nothing above U+10FFFF): the same rules as PCRE2's UTF check. */
size_t sgt_utf8_valid_prefix(const void *s, size_t n);

#endif
