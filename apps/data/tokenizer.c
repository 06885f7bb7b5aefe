/* tokenizer.c: GPT-2 byte-level BPE: loading encoder.json/vocab.bpe, PCRE2 pre-tokenisation,
 * BPE merging (heap-based, with the naive reference loop kept as an oracle), a bounded word
 * cache, and decoding. See tokenizer.h for the contract. */
#include "tokenizer.h"
#include "errors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- GPT-2's pre-tokenisation pattern ----
 * WS is the Unicode White_Space set, written out so that \s means the same here as in Python's
 * `regex` (OpenAI's encoder.py) and tiktoken; PCRE2's UCP \s lacks U+0085. */
#define WS "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}" \
           "\\x{202F}\\x{205F}\\x{3000}"
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS
    "])|[" WS "]+";

static const char EOT_TEXT[] = "<|endoftext|>";

/* Word cache bounds: slots (power of two, at most half full) and arena sizes. When any bound is
 * reached the whole cache is cleared; only pieces up to CACHE_MAX_KEY bytes are cached. */
#define CACHE_SLOTS (1u << 16)
#define CACHE_MAX_KEY 256
#define CACHE_KEY_ARENA (4u << 20)
#define CACHE_IDS_ARENA (1u << 20) /* in ids */

typedef struct {
    uint64_t key; /* (left << 32) | right; UINT64_MAX = empty */
    int32_t rank;
    int32_t merged;
} merge_slot;

typedef struct {
    uint64_t hash;
    uint32_t key_off, key_len; /* key_len == 0: empty slot */
    uint32_t ids_off, n_ids;
} cache_slot;

typedef struct {
    int32_t rank, pos, left, right;
} bpe_cand;

struct sgt_tokenizer {
    int32_t vocab_size;
    int32_t eot;
    uint64_t hash;
    char *tok_bytes;     /* [sum of token lengths] all token byte strings, concatenated */
    uint32_t *tok_off;   /* [vocab_size + 1] token i is tok_bytes[tok_off[i] .. tok_off[i+1]) */
    int32_t byte_tok[256];

    merge_slot *merges; /* open addressing, merge_mask + 1 slots */
    uint64_t merge_mask;
    bool naive;   /* use bpe_naive */
    bool heap_ok; /* the merge ranks allow bpe_heap (checked at load) */

    pcre2_code *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx; /* no match/depth limits: a piece may be megabytes long */

    /* word cache */
    cache_slot *cache;
    uint32_t cache_count;
    char *cache_keys;
    uint32_t cache_keys_len;
    int32_t *cache_ids;
    uint32_t cache_ids_len;
    uint64_t cache_hits, cache_misses;

    /* BPE scratch, grown on demand */
    int32_t *sym_id, *sym_prev, *sym_next;
    size_t sym_cap;
    bpe_cand *heap;
    size_t heap_cap;

    const sgt_tokenizer *parent; /* a fork: the vocabulary, merges and pattern are the parent's */
};


static uint64_t fnv1a(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
#define FNV_OFFSET 0xcbf29ce484222325ULL

static uint64_t mix64(uint64_t x) { /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* ---- growable buffers ---- */

void sgt_tok_ids_free(sgt_tok_ids *v) {
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

void sgt_tok_bytes_free(sgt_tok_bytes *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int ids_reserve(sgt_tok_ids *v, size_t extra) {
    if (v->len + extra <= v->cap) return 0;
    size_t cap = v->cap ? v->cap : 256;
    while (cap < v->len + extra) cap *= 2;
    int32_t *d = realloc(v->data, cap * sizeof *d);
    if (!d) return -ENOMEM;
    v->data = d;
    v->cap = cap;
    return 0;
}

static int ids_append(sgt_tok_ids *v, const int32_t *ids, size_t n) {
    if (ids_reserve(v, n)) return -ENOMEM;
    memcpy(v->data + v->len, ids, n * sizeof *ids);
    v->len += n;
    return 0;
}

int sgt_tok_ids_push(sgt_tok_ids *v, int32_t id) { return ids_append(v, &id, 1); }

static int bytes_append(sgt_tok_bytes *b, const char *p, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n) cap *= 2;
        char *d = realloc(b->data, cap);
        if (!d) return -ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

/* ---- UTF-8 ---- */

size_t sgt_utf8_valid_prefix(const void *s_, size_t n) {
    const unsigned char *s = s_;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;      /* overlong */
            else if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;      /* overlong */
            else if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
        } else {
            return i;
        }
        if (i + need >= n) return i; /* truncated */
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= need; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += need + 1;
    }
    return n;
}

/* Decodes one code point from a NUL-free UTF-8 string; returns bytes used, 0 on error. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    size_t len = sgt_utf8_valid_prefix(s, n < 4 ? n : 4);
    if (len == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t k = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    uint32_t v = c & (0x3F >> (k - 1));
    for (size_t j = 1; j < k; j++) v = (v << 6) | (s[j] & 0x3F);
    *cp = v;
    return k;
}

/* ---- GPT-2's bytes_to_unicode ---- */

static void byte_unicode_maps(uint32_t b2u[256], int16_t u2b[512]) {
    for (int i = 0; i < 512; i++) u2b[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
        b2u[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
    }
    for (int b = 0; b < 256; b++) u2b[b2u[b]] = (int16_t)b;
}

/* Converts a GPT-2 symbol string (byte-level unicode) to raw bytes in out (capacity >= strlen).
 * Returns the byte count, or -1 if a character is not one of the 256 byte symbols. */
static long symbol_to_bytes(const char *sym, size_t n, const int16_t u2b[512], char *out) {
    const unsigned char *s = (const unsigned char *)sym;
    size_t i = 0;
    long k = 0;
    while (i < n) {
        uint32_t cp;
        size_t used = utf8_decode(s + i, n - i, &cp);
        if (used == 0 || cp >= 512 || u2b[cp] < 0) return -1;
        out[k++] = (char)u2b[cp];
        i += used;
    }
    return k;
}

/* ---- files ---- */

static int read_file(const char *path, char **buf, size_t *len, char *err, size_t errsz) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        sgt_data_err(err, errsz, "tokenizer: cannot open %s: %s", path, strerror(e));
        return -e;
    }
    size_t cap = 1 << 20, n = 0;
    char *d = malloc(cap + 1);
    if (!d) {
        fclose(f);
        sgt_data_err(err, errsz, "tokenizer: out of memory reading %s", path);
        return -ENOMEM;
    }
    for (;;) {
        if (n == cap) {
            char *nd = realloc(d, cap * 2 + 1);
            if (!nd) {
                free(d);
                fclose(f);
                sgt_data_err(err, errsz, "tokenizer: out of memory reading %s", path);
                return -ENOMEM;
            }
            d = nd;
            cap *= 2;
        }
        size_t got = fread(d + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(d);
        sgt_data_err(err, errsz, "tokenizer: read error on %s", path);
        return -EIO;
    }
    d[n] = 0;
    *buf = d;
    *len = n;
    return 0;
}

/* ---- string -> id table, used only while loading ---- */

typedef struct {
    int32_t *slot; /* -1 empty, else id */
    uint64_t mask;
    const sgt_tokenizer *t;
} str_table;

static uint64_t str_hash(const char *p, size_t n) { return mix64(fnv1a(FNV_OFFSET, p, n)); }

static int32_t str_table_find(const str_table *st, const char *p, size_t n, uint64_t *pos_out) {
    uint64_t pos = str_hash(p, n) & st->mask;
    for (;;) {
        int32_t id = st->slot[pos];
        if (id < 0) break;
        size_t len = st->t->tok_off[id + 1] - st->t->tok_off[id];
        if (len == n && memcmp(st->t->tok_bytes + st->t->tok_off[id], p, n) == 0) break;
        pos = (pos + 1) & st->mask;
    }
    if (pos_out) *pos_out = pos;
    return st->slot[pos];
}

/* ---- merge table ---- */

static merge_slot *merge_find(const sgt_tokenizer *t, int32_t left, int32_t right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint64_t pos = mix64(key) & t->merge_mask;
    for (;;) {
        merge_slot *s = &t->merges[pos];
        if (s->key == key || s->key == UINT64_MAX) return s;
        pos = (pos + 1) & t->merge_mask;
    }
}

/* ---- loading ---- */

static int load_encoder(sgt_tokenizer *t, const char *path, const char *buf, size_t len,
                        const int16_t u2b[512], char *err, size_t errsz) {
    cJSON *root = cJSON_ParseWithLength(buf, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        long off = (at && at >= buf && at <= buf + len) ? (long)(at - buf) : -1;
        sgt_data_err(err, errsz, "tokenizer: malformed JSON in %s (near byte %ld)", path, off);
        return -EINVAL;
    }
    int rc = -EINVAL;
    if (!cJSON_IsObject(root)) {
        sgt_data_err(err, errsz, "tokenizer: %s is not a JSON object", path);
        goto done;
    }
    int n = cJSON_GetArraySize(root);
    if (n < 256) {
        sgt_data_err(err, errsz, "tokenizer: %s has %d entries, expected at least 256", path, n);
        goto done;
    }
    t->vocab_size = n;
    uint32_t *len_of = calloc((size_t)n, sizeof *len_of);
    t->tok_off = calloc((size_t)n + 1, sizeof *t->tok_off);
    size_t total = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) total += strlen(it->string);
    t->tok_bytes = malloc(total + 1);
    bool *seen = calloc((size_t)n, sizeof *seen);
    if (!len_of || !t->tok_off || !t->tok_bytes || !seen) {
        free(len_of);
        free(seen);
        sgt_data_err(err, errsz, "tokenizer: out of memory loading %s", path);
        rc = -ENOMEM;
        goto done;
    }
    /* pass 1: ids and byte lengths; pass 2: bytes laid out in id order */
    rc = -EINVAL;
    cJSON_ArrayForEach(it, root) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (v < 0 || v >= n || v != (double)(int32_t)v) {
            sgt_data_err(err, errsz, "tokenizer: %s: entry \"%.40s\" has id outside 0..%d", path,
                    it->string, n - 1);
            goto fail;
        }
        int32_t id = (int32_t)v;
        if (seen[id]) {
            sgt_data_err(err, errsz, "tokenizer: %s: id %d appears twice", path, (int)id);
            goto fail;
        }
        seen[id] = true;
        char sym[1024];
        size_t klen = strlen(it->string);
        long blen = klen < sizeof sym ? symbol_to_bytes(it->string, klen, u2b, sym) : -1;
        if (blen <= 0) {
            sgt_data_err(err, errsz, "tokenizer: %s: key \"%.40s\" is not a byte-level GPT-2 symbol",
                    path, it->string);
            goto fail;
        }
        len_of[id] = (uint32_t)blen;
    }
    t->tok_off[0] = 0;
    for (int i = 0; i < n; i++) t->tok_off[i + 1] = t->tok_off[i] + len_of[i];
    cJSON_ArrayForEach(it, root) {
        int32_t id = (int32_t)it->valuedouble;
        symbol_to_bytes(it->string, strlen(it->string), u2b, t->tok_bytes + t->tok_off[id]);
    }
    rc = 0;
fail:
    free(len_of);
    free(seen);
done:
    cJSON_Delete(root);
    return rc;
}

static int load_merges(sgt_tokenizer *t, const char *path, char *buf, size_t len,
                       const int16_t u2b[512], char *err, size_t errsz) {
    /* string table over the vocabulary */
    str_table st = {.t = t};
    uint64_t cap = 1;
    while (cap < (uint64_t)t->vocab_size * 2) cap <<= 1;
    st.mask = cap - 1;
    st.slot = malloc(cap * sizeof *st.slot);
    /* count lines to size the merge table */
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) lines += buf[i] == '\n';
    uint64_t mcap = 1;
    while (mcap < lines * 2) mcap <<= 1;
    t->merge_mask = mcap - 1;
    t->merges = malloc(mcap * sizeof *t->merges);
    int32_t *created = malloc((size_t)t->vocab_size * sizeof *created); /* max rank making id */
    int32_t *trip = malloc(lines * 3 * sizeof *trip);                  /* (left, right, merged) */
    char *sym = malloc(len + 1);
    int rc = -ENOMEM;
    if (!st.slot || !t->merges || !created || !trip || !sym) {
        sgt_data_err(err, errsz, "tokenizer: out of memory loading %s", path);
        goto done;
    }
    memset(st.slot, 0xff, cap * sizeof *st.slot);
    for (uint64_t i = 0; i < mcap; i++) t->merges[i].key = UINT64_MAX;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        uint64_t pos;
        const char *p = t->tok_bytes + t->tok_off[id];
        size_t n = t->tok_off[id + 1] - t->tok_off[id];
        if (str_table_find(&st, p, n, &pos) >= 0) {
            sgt_data_err(err, errsz, "tokenizer: encoder.json maps two keys to the same bytes (id %d)",
                    (int)id);
            rc = -EINVAL;
            goto done;
        }
        st.slot[pos] = id;
        created[id] = -1;
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        t->byte_tok[b] = str_table_find(&st, &c, 1, NULL);
    }
    int32_t n_merges = 0;
    rc = -EINVAL;
    size_t lineno = 0;
    for (char *p = buf, *end = buf + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        lineno++;
        size_t ll = (size_t)(le - p);
        if (ll && p[ll - 1] == '\r') ll--;
        bool skip = ll == 0 || (lineno == 1 && ll >= 8 && memcmp(p, "#version", 8) == 0);
        if (!skip) {
            char *sp = memchr(p, ' ', ll);
            if (!sp || sp == p || sp == p + ll - 1 || memchr(sp + 1, ' ', (size_t)(p + ll - sp - 1))) {
                sgt_data_err(err, errsz, "tokenizer: %s line %zu: expected two symbols \"A B\"", path,
                        lineno);
                goto done;
            }
            size_t la = (size_t)(sp - p), lb = ll - la - 1;
            long ba = symbol_to_bytes(p, la, u2b, sym);
            long bb = ba > 0 ? symbol_to_bytes(sp + 1, lb, u2b, sym + ba) : -1;
            if (ba <= 0 || bb <= 0) {
                sgt_data_err(err, errsz, "tokenizer: %s line %zu: not a byte-level GPT-2 symbol", path,
                        lineno);
                goto done;
            }
            int32_t a = str_table_find(&st, sym, (size_t)ba, NULL);
            int32_t b = str_table_find(&st, sym + ba, (size_t)bb, NULL);
            int32_t m = str_table_find(&st, sym, (size_t)(ba + bb), NULL);
            if (a < 0 || b < 0 || m < 0) {
                sgt_data_err(err, errsz, "tokenizer: %s line %zu: %s of the merge is not in encoder.json",
                        path, lineno, a < 0 ? "the first symbol" : b < 0 ? "the second symbol"
                                                                         : "the result");
                goto done;
            }
            /* like encoder.py's dict(zip(merges, range(...))): a repeated pair keeps its last rank */
            merge_slot *s = merge_find(t, a, b);
            s->key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
            s->rank = n_merges;
            s->merged = m;
            if (n_merges > created[m]) created[m] = n_merges;
            trip[3 * n_merges] = a;
            trip[3 * n_merges + 1] = b;
            trip[3 * n_merges + 2] = m;
            n_merges++;
        }
        p = nl ? nl + 1 : end;
    }
    if (n_merges == 0) {
        sgt_data_err(err, errsz, "tokenizer: %s has no merges", path);
        goto done;
    }
    /* The heap merge equals the reference loop when every merge ranks after all merges that
     * produce its two parts (then merging never creates a pair that outranks the current one).
     * GPT-2's file satisfies this; any file that does not gets the naive loop. */
    t->heap_ok = true;
    for (int32_t r = 0; r < n_merges; r++) {
        const merge_slot *s = merge_find(t, trip[3 * r], trip[3 * r + 1]);
        if (s->rank != r) continue; /* a repeated pair: the later rank is the one in effect */
        if (created[trip[3 * r]] >= r || created[trip[3 * r + 1]] >= r) {
            t->heap_ok = false;
            break;
        }
    }
    t->naive = !t->heap_ok;
    rc = 0;
done:
    free(st.slot);
    free(created);
    free(trip);
    free(sym);
    return rc;
}

int sgt_tokenizer_resolve_dir(const char *flag_dir, char *buf, size_t bufsz) {
    int n;
    const char *env;
    if (flag_dir) {
        n = snprintf(buf, bufsz, "%s", flag_dir);
    } else if ((env = getenv("SGT_TOKENIZER")) && *env) {
        n = snprintf(buf, bufsz, "%s", env);
    } else if ((env = getenv("SGT_SHARED")) && *env) {
        n = snprintf(buf, bufsz, "%s/tokenizer/gpt2", env);
    } else {
        n = snprintf(buf, bufsz, "../shared/tokenizer/gpt2");
    }
    return (n < 0 || (size_t)n >= bufsz) ? -ENAMETOOLONG : 0;
}

/* what each thread needs of its own: PCRE2 match data and context, the word cache */
static int per_thread_state(sgt_tokenizer *t, char *err, size_t errsz) {
    t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
    t->mctx = pcre2_match_context_create(NULL);
    if (t->mctx) {
        pcre2_set_match_limit(t->mctx, UINT32_MAX);
        pcre2_set_depth_limit(t->mctx, UINT32_MAX);
    }
    t->cache = calloc(CACHE_SLOTS, sizeof *t->cache);
    t->cache_keys = malloc(CACHE_KEY_ARENA);
    t->cache_ids = malloc(CACHE_IDS_ARENA * sizeof *t->cache_ids);
    if (!t->md || !t->mctx || !t->cache || !t->cache_keys || !t->cache_ids) {
        sgt_data_err(err, errsz, "tokenizer: out of memory");
        return -ENOMEM;
    }
    return 0;
}

int sgt_tokenizer_load(const char *dir, sgt_tokenizer **out, char *err, size_t errsz) {
    *out = NULL;
    char enc_path[4096], bpe_path[4096];
    if ((size_t)snprintf(enc_path, sizeof enc_path, "%s/encoder.json", dir) >= sizeof enc_path ||
        (size_t)snprintf(bpe_path, sizeof bpe_path, "%s/vocab.bpe", dir) >= sizeof bpe_path) {
        sgt_data_err(err, errsz, "tokenizer: directory name too long: %.100s...", dir);
        return -ENAMETOOLONG;
    }
    char *enc = NULL, *bpe = NULL;
    size_t enc_len = 0, bpe_len = 0;
    int rc = read_file(enc_path, &enc, &enc_len, err, errsz);
    if (rc) return rc;
    rc = read_file(bpe_path, &bpe, &bpe_len, err, errsz);
    if (rc) {
        free(enc);
        return rc;
    }
    sgt_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        free(enc);
        free(bpe);
        sgt_data_err(err, errsz, "tokenizer: out of memory");
        return -ENOMEM;
    }
    t->hash = fnv1a(fnv1a(FNV_OFFSET, enc, enc_len), bpe, bpe_len);
    uint32_t b2u[256];
    int16_t u2b[512];
    byte_unicode_maps(b2u, u2b);
    rc = load_encoder(t, enc_path, enc, enc_len, u2b, err, errsz);
    if (!rc) rc = load_merges(t, bpe_path, bpe, bpe_len, u2b, err, errsz);
    free(enc);
    free(bpe);
    if (rc) goto fail;

    t->eot = -1;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        size_t n = t->tok_off[id + 1] - t->tok_off[id];
        if (n == sizeof EOT_TEXT - 1 && !memcmp(t->tok_bytes + t->tok_off[id], EOT_TEXT, n)) {
            t->eot = id;
            break;
        }
    }
    if (t->eot < 0) {
        sgt_data_err(err, errsz, "tokenizer: %s has no \"%s\" entry", enc_path, EOT_TEXT);
        rc = -EINVAL;
        goto fail;
    }

    int errcode;
    PCRE2_SIZE erroff;
    t->re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                          &errcode, &erroff, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        sgt_data_err(err, errsz, "tokenizer: PCRE2 cannot compile the GPT-2 pattern at %zu: %s",
                (size_t)erroff, (const char *)msg);
        rc = -EINVAL;
        goto fail;
    }
    (void)pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    if ((rc = per_thread_state(t, err, errsz))) goto fail;
    *out = t;
    return 0;
fail:
    sgt_tokenizer_free(t);
    return rc;
}

int sgt_tokenizer_fork(const sgt_tokenizer *t, sgt_tokenizer **out, char *err, size_t errsz) {
    *out = NULL;
    sgt_tokenizer *f = calloc(1, sizeof *f);
    if (!f) {
        sgt_data_err(err, errsz, "tokenizer: out of memory");
        return -ENOMEM;
    }
    *f = (sgt_tokenizer){.vocab_size = t->vocab_size, .eot = t->eot, .hash = t->hash, .tok_bytes = t->tok_bytes,
                         .tok_off = t->tok_off, .merges = t->merges, .merge_mask = t->merge_mask, .naive = t->naive,
                         .heap_ok = t->heap_ok, .re = t->re, .parent = t};
    memcpy(f->byte_tok, t->byte_tok, sizeof f->byte_tok);
    int rc = per_thread_state(f, err, errsz);
    if (rc) {
        sgt_tokenizer_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

void sgt_tokenizer_free(sgt_tokenizer *t) {
    if (!t) return;
    if (!t->parent) {
        free(t->tok_bytes);
        free(t->tok_off);
        free(t->merges);
        pcre2_code_free(t->re);
    }
    pcre2_match_data_free(t->md);
    pcre2_match_context_free(t->mctx);
    free(t->cache);
    free(t->cache_keys);
    free(t->cache_ids);
    free(t->sym_id);
    free(t->sym_prev);
    free(t->sym_next);
    free(t->heap);
    free(t);
}

/* ---- word cache ---- */

static void cache_clear(sgt_tokenizer *t) {
    memset(t->cache, 0, CACHE_SLOTS * sizeof *t->cache);
    t->cache_count = 0;
    t->cache_keys_len = 0;
    t->cache_ids_len = 0;
}

static cache_slot *cache_find(sgt_tokenizer *t, const char *p, size_t n, uint64_t h) {
    uint32_t pos = (uint32_t)h & (CACHE_SLOTS - 1);
    for (;;) {
        cache_slot *s = &t->cache[pos];
        if (s->key_len == 0) return s;
        if (s->hash == h && s->key_len == n && !memcmp(t->cache_keys + s->key_off, p, n)) return s;
        pos = (pos + 1) & (CACHE_SLOTS - 1);
    }
}

static void cache_insert(sgt_tokenizer *t, const char *p, size_t n, uint64_t h,
                         const int32_t *ids, size_t n_ids) {
    if (t->cache_count >= CACHE_SLOTS / 2 || t->cache_keys_len + n > CACHE_KEY_ARENA ||
        t->cache_ids_len + n_ids > CACHE_IDS_ARENA)
        cache_clear(t);
    cache_slot *s = cache_find(t, p, n, h);
    if (s->key_len) return;
    memcpy(t->cache_keys + t->cache_keys_len, p, n);
    memcpy(t->cache_ids + t->cache_ids_len, ids, n_ids * sizeof *ids);
    *s = (cache_slot){.hash = h, .key_off = t->cache_keys_len, .key_len = (uint32_t)n,
                      .ids_off = t->cache_ids_len, .n_ids = (uint32_t)n_ids};
    t->cache_keys_len += (uint32_t)n;
    t->cache_ids_len += (uint32_t)n_ids;
    t->cache_count++;
}

void sgt_tokenizer_set_naive_bpe(sgt_tokenizer *t, bool naive) {
    t->naive = naive || !t->heap_ok;
    cache_clear(t);
}

void sgt_tokenizer_cache_stats(const sgt_tokenizer *t, uint64_t *hits, uint64_t *misses) {
    *hits = t->cache_hits;
    *misses = t->cache_misses;
}

/* ---- BPE ---- */

static int scratch_reserve(sgt_tokenizer *t, size_t n) {
    if (n > t->sym_cap) {
        size_t cap = t->sym_cap ? t->sym_cap : 64;
        while (cap < n) cap *= 2;
        int32_t *a = realloc(t->sym_id, cap * sizeof *a);
        if (!a) return -ENOMEM;
        t->sym_id = a;
        a = realloc(t->sym_prev, cap * sizeof *a);
        if (!a) return -ENOMEM;
        t->sym_prev = a;
        a = realloc(t->sym_next, cap * sizeof *a);
        if (!a) return -ENOMEM;
        t->sym_next = a;
        t->sym_cap = cap;
    }
    /* each merge pushes at most two candidates: n - 1 initial + 2 (n - 1) */
    if (3 * n > t->heap_cap) {
        size_t cap = t->heap_cap ? t->heap_cap : 192;
        while (cap < 3 * n) cap *= 2;
        bpe_cand *h = realloc(t->heap, cap * sizeof *h);
        if (!h) return -ENOMEM;
        t->heap = h;
        t->heap_cap = cap;
    }
    return 0;
}

static inline bool cand_less(const bpe_cand *a, const bpe_cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(bpe_cand *h, size_t *n, bpe_cand c) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = c;
}

static bpe_cand heap_pop(bpe_cand *h, size_t *n) {
    bpe_cand top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(&h[c + 1], &h[c])) c++;
        if (!cand_less(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

static void push_pair(sgt_tokenizer *t, size_t *hn, int32_t pos) {
    if (pos < 0) return;
    int32_t nx = t->sym_next[pos];
    if (nx < 0) return;
    const merge_slot *s = merge_find(t, t->sym_id[pos], t->sym_id[nx]);
    if (s->key == UINT64_MAX) return;
    heap_push(t->heap, hn, (bpe_cand){s->rank, pos, t->sym_id[pos], t->sym_id[nx]});
}

/* Heap merge: always apply the lowest-ranked pair, leftmost first. Writes the ids to t->sym_id
 * compacted at the front and returns their count. */
static size_t bpe_heap(sgt_tokenizer *t, const unsigned char *p, size_t n) {
    int32_t *id = t->sym_id, *prev = t->sym_prev, *next = t->sym_next;
    for (size_t i = 0; i < n; i++) {
        id[i] = t->byte_tok[p[i]];
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, &hn, (int32_t)i);
    while (hn) {
        bpe_cand c = heap_pop(t->heap, &hn);
        int32_t r = next[c.pos];
        if (id[c.pos] != c.left || r < 0 || id[r] != c.right) continue; /* stale */
        id[c.pos] = merge_find(t, c.left, c.right)->merged;
        id[r] = -1;
        next[c.pos] = next[r];
        if (next[r] >= 0) prev[next[r]] = c.pos;
        push_pair(t, &hn, prev[c.pos]);
        push_pair(t, &hn, c.pos);
    }
    size_t k = 0;
    for (int32_t i = 0; i >= 0; i = next[i]) id[k++] = id[i];
    return k;
}

/* OpenAI encoder.py's bpe(), on ids: find the best-ranked adjacent pair, merge all its
 * non-overlapping occurrences left to right, repeat. O(n^2); the oracle for bpe_heap. */
static size_t bpe_naive(sgt_tokenizer *t, const unsigned char *p, size_t n) {
    int32_t *w = t->sym_id;
    for (size_t i = 0; i < n; i++) w[i] = t->byte_tok[p[i]];
    size_t m = n;
    while (m > 1) {
        int32_t best = INT32_MAX, a = -1, b = -1, merged = -1;
        for (size_t i = 0; i + 1 < m; i++) {
            const merge_slot *s = merge_find(t, w[i], w[i + 1]);
            if (s->key != UINT64_MAX && s->rank < best) {
                best = s->rank;
                a = w[i];
                b = w[i + 1];
                merged = s->merged;
            }
        }
        if (best == INT32_MAX) break;
        size_t k = 0;
        for (size_t i = 0; i < m;) {
            if (i + 1 < m && w[i] == a && w[i + 1] == b) {
                w[k++] = merged;
                i += 2;
            } else {
                w[k++] = w[i++];
            }
        }
        m = k;
    }
    return m;
}

static int encode_piece(sgt_tokenizer *t, const unsigned char *p, size_t n, sgt_tok_ids *out) {
    if (n == 1) return ids_append(out, &t->byte_tok[p[0]], 1);
    uint64_t h = 0;
    bool cacheable = n <= CACHE_MAX_KEY;
    if (cacheable) {
        h = fnv1a(FNV_OFFSET, p, n);
        const cache_slot *s = cache_find(t, (const char *)p, n, h);
        if (s->key_len) {
            t->cache_hits++;
            return ids_append(out, t->cache_ids + s->ids_off, s->n_ids);
        }
        t->cache_misses++;
    }
    if (scratch_reserve(t, n)) return -ENOMEM;
    size_t k = t->naive ? bpe_naive(t, p, n) : bpe_heap(t, p, n);
    if (cacheable) cache_insert(t, (const char *)p, n, h, t->sym_id, k);
    return ids_append(out, t->sym_id, k);
}

/* Pre-tokenises one valid UTF-8 run with the GPT-2 pattern and encodes every piece. */
static int encode_valid_run(sgt_tokenizer *t, const unsigned char *s, size_t n, sgt_tok_ids *out) {
    PCRE2_SIZE off = 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
    while (off < n) {
        int rc = pcre2_match(t->re, s, n, off, PCRE2_NO_UTF_CHECK, t->md, t->mctx);
        size_t start, end;
        /* The pattern matches any character and there are no match limits, so rc < 0 means a
         * resource failure in PCRE2: the rest of the run becomes one piece (bytes are kept). */
        if (rc < 0) {
            start = end = n;
        } else {
            start = ov[0];
            end = ov[1];
        }
        if (start > off) { /* skipped text (again impossible): keep it as one piece */
            int e = encode_piece(t, s + off, start - off, out);
            if (e) return e;
        }
        if (end > start) {
            int e = encode_piece(t, s + start, end - start, out);
            if (e) return e;
            off = end;
        } else if (start < n) { /* empty match: take one character as a piece */
            size_t cl = 1;
            while (start + cl < n && (s[start + cl] & 0xC0) == 0x80) cl++;
            int e = encode_piece(t, s + start, cl, out);
            if (e) return e;
            off = start + cl;
        } else {
            off = n;
        }
    }
    return 0;
}

int sgt_tokenizer_encode(sgt_tokenizer *t, const void *text, size_t len, sgt_tok_ids *out) {
    const unsigned char *s = text;
    while (len) {
        size_t v = sgt_utf8_valid_prefix(s, len);
        if (v) {
            int e = encode_valid_run(t, s, v, out);
            if (e) return e;
            s += v;
            len -= v;
        }
        if (len) { /* one invalid byte: a piece of its own */
            if (ids_append(out, &t->byte_tok[s[0]], 1)) return -ENOMEM;
            s++;
            len--;
        }
    }
    return 0;
}

int sgt_tokenizer_encode_special(sgt_tokenizer *t, const void *text, size_t len,
                                 sgt_tok_ids *out) {
    const char *s = text, *end = s + len;
    for (;;) {
        const char *hit = memmem(s, (size_t)(end - s), EOT_TEXT, sizeof EOT_TEXT - 1);
        const char *seg_end = hit ? hit : end;
        int e = sgt_tokenizer_encode(t, s, (size_t)(seg_end - s), out);
        if (e) return e;
        if (!hit) return 0;
        if (ids_append(out, &t->eot, 1)) return -ENOMEM;
        s = hit + sizeof EOT_TEXT - 1;
    }
}

int sgt_tokenizer_decode(const sgt_tokenizer *t, const int32_t *ids, size_t n, sgt_tok_bytes *out,
                         char *err, size_t errsz) {
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size) {
            sgt_data_err(err, errsz, "tokenizer: cannot decode id %ld (position %zu): vocabulary is 0..%d",
                    (long)ids[i], i, (int)t->vocab_size - 1);
            return -EINVAL;
        }
        uint32_t a = t->tok_off[ids[i]], b = t->tok_off[ids[i] + 1];
        if (bytes_append(out, t->tok_bytes + a, b - a)) {
            sgt_data_err(err, errsz, "tokenizer: out of memory decoding");
            return -ENOMEM;
        }
    }
    return 0;
}

const char *sgt_tokenizer_token(const sgt_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->vocab_size) return NULL;
    *len = t->tok_off[id + 1] - t->tok_off[id];
    return t->tok_bytes + t->tok_off[id];
}

int32_t sgt_tokenizer_vocab_size(const sgt_tokenizer *t) { return t->vocab_size; }
int32_t sgt_tokenizer_eot(const sgt_tokenizer *t) { return t->eot; }
uint64_t sgt_tokenizer_hash(const sgt_tokenizer *t) { return t->hash; }
