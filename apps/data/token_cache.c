/* token_cache.c: building, validating and mmap-loading the uint16 token cache, plus the
 * streaming XXH64 used for its keys. See token_cache.h for the file layout. */
#include "token_cache.h"
#include "errors.h"

#include <errno.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char MAGIC[8] = "SGTTOKC";

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t token_bytes; /* 2 */
    uint64_t n_tokens;
    uint64_t n_docs;
    sgt_token_cache_key key;
    int32_t eot;
    int32_t vocab_size;
    uint64_t payload_hash; /* XXH64 of the tokens bytes, then the offsets bytes */
    /* skip counters of the build */
    uint64_t lines, empty_lines, bad_json, missing_field, bad_utf8, first_bad_line;
    uint64_t reserved[15];
} file_header;
_Static_assert(sizeof(file_header) == 256, "token cache header must stay 256 bytes");


/* ---- XXH64 ---- */

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t rd64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}
static inline uint32_t rd32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint64_t xround(uint64_t acc, uint64_t in) {
    acc += in * P2;
    return rotl64(acc, 31) * P1;
}
static inline uint64_t xmerge(uint64_t acc, uint64_t v) {
    acc ^= xround(0, v);
    return acc * P1 + P4;
}

void sgt_xxh64_init(sgt_xxh64 *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->v[0] = seed + P1 + P2;
    s->v[1] = seed + P2;
    s->v[2] = seed;
    s->v[3] = seed - P1;
}

void sgt_xxh64_update(sgt_xxh64 *s, const void *data, size_t n) {
    const unsigned char *p = data, *end = p + n;
    s->total += n;
    if (s->memsize + n < 32) {
        memcpy(s->mem + s->memsize, p, n);
        s->memsize += (uint32_t)n;
        return;
    }
    if (s->memsize) {
        size_t fill = 32 - s->memsize;
        memcpy(s->mem + s->memsize, p, fill);
        for (int i = 0; i < 4; i++) s->v[i] = xround(s->v[i], rd64(s->mem + 8 * i));
        p += fill;
        s->memsize = 0;
    }
    uint64_t v0 = s->v[0], v1 = s->v[1], v2 = s->v[2], v3 = s->v[3];
    while (p + 32 <= end) {
        v0 = xround(v0, rd64(p));
        v1 = xround(v1, rd64(p + 8));
        v2 = xround(v2, rd64(p + 16));
        v3 = xround(v3, rd64(p + 24));
        p += 32;
    }
    s->v[0] = v0, s->v[1] = v1, s->v[2] = v2, s->v[3] = v3;
    if (p < end) {
        memcpy(s->mem, p, (size_t)(end - p));
        s->memsize = (uint32_t)(end - p);
    }
}

uint64_t sgt_xxh64_digest(const sgt_xxh64 *s) {
    uint64_t h;
    if (s->total >= 32) {
        h = rotl64(s->v[0], 1) + rotl64(s->v[1], 7) + rotl64(s->v[2], 12) + rotl64(s->v[3], 18);
        for (int i = 0; i < 4; i++) h = xmerge(h, s->v[i]);
    } else {
        h = s->seed + P5;
    }
    h += s->total;
    const unsigned char *p = s->mem, *end = p + s->memsize;
    while (p + 8 <= end) {
        h ^= xround(0, rd64(p));
        h = rotl64(h, 27) * P1 + P4;
        p += 8;
    }
    if (p + 4 <= end) {
        h ^= (uint64_t)rd32(p) * P1;
        h = rotl64(h, 23) * P2 + P3;
        p += 4;
    }
    while (p < end) {
        h ^= (*p++) * P5;
        h = rotl64(h, 11) * P1;
    }
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

/* ---- key ---- */

static uint64_t fnv1a_str(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

static int stat_key(const char *path, sgt_token_cache_key *key, char *err, size_t errsz) {
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        sgt_data_err(err, errsz, "token_cache: cannot stat dataset %s: %s", path, strerror(e));
        return -e;
    }
    key->data_size = (uint64_t)st.st_size;
    key->data_mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    return 0;
}

int sgt_token_cache_key_of(const char *dataset_path, const char *text_field,
                           const sgt_tokenizer *tok, sgt_token_cache_key *key, char *err,
                           size_t errsz) {
    memset(key, 0, sizeof *key);
    int rc = stat_key(dataset_path, key, err, errsz);
    if (rc) return rc;
    FILE *f = fopen(dataset_path, "rb");
    if (!f) {
        int e = errno;
        sgt_data_err(err, errsz, "token_cache: cannot open dataset %s: %s", dataset_path, strerror(e));
        return -e;
    }
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = malloc(CHUNK);
    if (!buf) {
        fclose(f);
        sgt_data_err(err, errsz, "token_cache: out of memory hashing %s", dataset_path);
        return -ENOMEM;
    }
    sgt_xxh64 h;
    sgt_xxh64_init(&h, 0);
    size_t got;
    while ((got = fread(buf, 1, CHUNK, f)) > 0) sgt_xxh64_update(&h, buf, got);
    bool bad = ferror(f);
    fclose(f);
    free(buf);
    if (bad) {
        sgt_data_err(err, errsz, "token_cache: read error hashing dataset %s", dataset_path);
        return -EIO;
    }
    key->data_hash = sgt_xxh64_digest(&h);
    key->tokenizer_hash = sgt_tokenizer_hash(tok);
    key->field_hash = fnv1a_str(text_field ? text_field : "text");
    return 0;
}

static bool key_equal(const sgt_token_cache_key *a, const sgt_token_cache_key *b) {
    return a->data_size == b->data_size && a->data_mtime_ns == b->data_mtime_ns &&
           a->data_hash == b->data_hash && a->tokenizer_hash == b->tokenizer_hash &&
           a->field_hash == b->field_hash;
}

/* ---- loading ---- */

static uint64_t tokens_region(uint64_t n_tokens) { return (n_tokens * 2 + 7) & ~(uint64_t)7; }

typedef enum { LOAD_OK, LOAD_MISSING, LOAD_STALE, LOAD_CORRUPT, LOAD_ERROR } load_result;

/* Maps and validates cache_path against key. why[] says what was wrong for STALE/CORRUPT. */
static load_result try_load(const char *cache_path, const sgt_token_cache_key *key,
                            const sgt_tokenizer *tok, sgt_token_cache *out, char *why,
                            size_t whysz) {
    FILE *f = fopen(cache_path, "rb");
    if (!f) {
        if (errno == ENOENT) return LOAD_MISSING;
        sgt_data_err(why, whysz, "cannot open %s: %s", cache_path, strerror(errno));
        return LOAD_ERROR;
    }
    struct stat st;
    file_header h;
    if (fstat(fileno(f), &st) != 0) {
        sgt_data_err(why, whysz, "cannot stat %s: %s", cache_path, strerror(errno));
        fclose(f);
        return LOAD_ERROR;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (size < sizeof h || fread(&h, sizeof h, 1, f) != 1) {
        fclose(f);
        sgt_data_err(why, whysz, "%s is %llu bytes, shorter than its %zu-byte header", cache_path,
                (unsigned long long)size, sizeof h);
        return LOAD_CORRUPT;
    }
    fclose(f);
    if (memcmp(h.magic, MAGIC, sizeof MAGIC) != 0) {
        sgt_data_err(why, whysz, "%s is not an sgt token cache (bad magic)", cache_path);
        return LOAD_CORRUPT;
    }
    if (h.version != SGT_TOKEN_CACHE_VERSION) {
        sgt_data_err(why, whysz, "%s has format version %u, this build writes %d", cache_path,
                h.version, SGT_TOKEN_CACHE_VERSION);
        return LOAD_STALE;
    }
    if (h.token_bytes != 2 || h.n_tokens > (UINT64_MAX - 4096) / 4 ||
        h.n_docs > (UINT64_MAX - 4096) / 16) {
        sgt_data_err(why, whysz, "%s has an impossible header", cache_path);
        return LOAD_CORRUPT;
    }
    uint64_t expect = sizeof h + tokens_region(h.n_tokens) + (h.n_docs + 1) * 8;
    if (size != expect) {
        sgt_data_err(why, whysz, "%s is %llu bytes but its header describes %llu (truncated?)",
                cache_path, (unsigned long long)size, (unsigned long long)expect);
        return LOAD_CORRUPT;
    }
    if (!key_equal(&h.key, key)) {
        sgt_data_err(why, whysz, "%s was built from other data, tokenizer or text field", cache_path);
        return LOAD_STALE;
    }
    if (h.eot != sgt_tokenizer_eot(tok) || h.vocab_size != sgt_tokenizer_vocab_size(tok)) {
        sgt_data_err(why, whysz, "%s was built with another vocabulary", cache_path);
        return LOAD_STALE;
    }
    int fd = open(cache_path, O_RDONLY);
    void *map = fd >= 0 ? mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (fd >= 0) close(fd);
    if (map == MAP_FAILED) {
        sgt_data_err(why, whysz, "cannot map %s: %s", cache_path, strerror(errno));
        return LOAD_ERROR;
    }
    const unsigned char *base = map;
    const uint16_t *tokens = (const uint16_t *)(base + sizeof h);
    const uint64_t *offs = (const uint64_t *)(base + sizeof h + tokens_region(h.n_tokens));
    sgt_xxh64 xh;
    sgt_xxh64_init(&xh, 0);
    sgt_xxh64_update(&xh, tokens, h.n_tokens * 2);
    sgt_xxh64_update(&xh, offs, (h.n_docs + 1) * 8);
    const char *bad = NULL;
    if (sgt_xxh64_digest(&xh) != h.payload_hash) bad = "payload hash mismatch";
    if (!bad && (offs[0] != 0 || offs[h.n_docs] != h.n_tokens)) bad = "bad document offsets";
    for (uint64_t d = 0; !bad && d < h.n_docs; d++)
        if (offs[d + 1] <= offs[d] || offs[d + 1] > h.n_tokens || tokens[offs[d + 1] - 1] != (uint16_t)h.eot)
            bad = "bad document offsets";
    for (uint64_t i = 0; !bad && i < h.n_tokens; i++)
        if (tokens[i] >= h.vocab_size) bad = "token id outside the vocabulary";
    if (bad) {
        munmap(map, size);
        sgt_data_err(why, whysz, "%s: %s", cache_path, bad);
        return LOAD_CORRUPT;
    }
    memset(out, 0, sizeof *out);
    out->tokens = tokens;
    out->n_tokens = h.n_tokens;
    out->doc_offsets = offs;
    out->n_docs = h.n_docs;
    out->eot = h.eot;
    out->key = h.key;
    out->stats = (sgt_jsonl_stats){.lines = h.lines, .docs = h.n_docs,
                                   .empty_lines = h.empty_lines, .bad_json = h.bad_json,
                                   .missing_field = h.missing_field, .bad_utf8 = h.bad_utf8,
                                   .first_bad_line = h.first_bad_line, .bytes = h.key.data_size,
                                   .file_size = h.key.data_size};
    out->map_ = map;
    out->map_size_ = size;
    return LOAD_OK;
}

void sgt_token_cache_close(sgt_token_cache *c) {
    if (c->map_) munmap(c->map_, c->map_size_);
    memset(c, 0, sizeof *c);
}

/* ---- progress ---- */

typedef struct {
    bool on, tty;
    double t0, last;
    int last_decile;
    const char *name;
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_show(progress *p, const sgt_jsonl_stats *s, uint64_t tokens, bool final) {
    if (!p->on) return;
    double t = now_s();
    double frac = s->file_size ? (double)s->bytes / (double)s->file_size : 1.0;
    if (frac > 1) frac = 1;
    double mbs = (double)s->bytes / 1e6 / (t - p->t0 > 1e-9 ? t - p->t0 : 1e-9);
    if (p->tty) {
        if (!final && t - p->last < 0.1) return;
        p->last = t;
        char bar[31];
        int fill = (int)(frac * 30);
        for (int i = 0; i < 30; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
        bar[30] = 0;
        fprintf(stderr, "\rtokenizing %s [%s] %5.1f%% %6.1f MB/s %llu docs %llu tokens%s", p->name,
                bar, 100 * frac, mbs, (unsigned long long)s->docs, (unsigned long long)tokens,
                final ? "\n" : "");
    } else {
        int decile = (int)(frac * 10);
        if (!final && (decile >= 10 || (decile <= p->last_decile && t - p->last < 30))) return;
        p->last_decile = decile;
        p->last = t;
        fprintf(stderr, "token_cache: tokenizing %s: %.0f%% (%llu docs, %llu tokens, %.1f MB/s)%s\n",
                p->name, 100 * frac, (unsigned long long)s->docs, (unsigned long long)tokens, mbs,
                final ? ", done" : "");
    }
    fflush(stderr);
}

/* ---- building ---- */

enum { MAX_THREADS = 64, BATCH_DOCS = 256, BATCH_BYTES = 8 << 20 };

static int write_all(FILE *f, const void *p, size_t n, sgt_xxh64 *h) {
    if (h) sgt_xxh64_update(h, p, n);
    return fwrite(p, 1, n, f) == n ? 0 : -EIO;
}

static int build(const char *dataset_path, const char *text_field, sgt_tokenizer *tok,
                 const char *cache_path, bool show, const sgt_token_cache_key *key, char *err,
                 size_t errsz) {
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%ld", cache_path, (long)getpid()) >= sizeof tmp) {
        sgt_data_err(err, errsz, "token_cache: path too long: %.100s...", cache_path);
        return -ENAMETOOLONG;
    }
    if (sgt_tokenizer_vocab_size(tok) > 65536) {
        sgt_data_err(err, errsz, "token_cache: vocabulary of %d does not fit uint16 tokens",
                (int)sgt_tokenizer_vocab_size(tok));
        return -ERANGE;
    }
    sgt_jsonl *r;
    int rc = sgt_jsonl_open(dataset_path, text_field, &r, err, errsz);
    if (rc) return rc;
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        sgt_data_err(err, errsz, "token_cache: cannot create %s: %s", tmp, strerror(e));
        sgt_jsonl_close(r);
        return -e;
    }
    file_header h = {0};
    uint16_t *u16 = NULL;
    size_t u16_cap = 0;
    uint64_t *offs = NULL;
    size_t offs_cap = 0, n_docs = 0;
    uint64_t n_tokens = 0;
    sgt_xxh64 xh;
    sgt_xxh64_init(&xh, 0);
    progress pr = {.on = show, .tty = show && isatty(STDERR_FILENO), .t0 = now_s(),
                   .last_decile = 0, .name = dataset_path};
    pr.last = pr.t0;
    int32_t eot = sgt_tokenizer_eot(tok);
    /* Documents are read in batches, encoded in parallel (one tokenizer per thread: tok and its
     * forks) and written in order, so the cache is the same on any number of threads. */
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads() < MAX_THREADS ? omp_get_max_threads() : MAX_THREADS;
#endif
    sgt_tokenizer *toks[MAX_THREADS] = {tok};
    for (int i = 1; i < nt && !rc; i++) rc = sgt_tokenizer_fork(tok, &toks[i], err, errsz);
    sgt_tok_ids ids[BATCH_DOCS] = {{0}};
    size_t doc_off[BATCH_DOCS + 1], text_cap = 0;
    char *texts = NULL;

    /* the header is a placeholder until the end, when the counts and payload hash are known */
    if (!rc) {
        rc = write_all(f, &h, sizeof h, NULL);
        if (rc) sgt_data_err(err, errsz, "token_cache: write error on %s: %s", tmp, strerror(errno));
    }
    bool more = !rc;
    while (!rc && more) {
        int nb = 0;
        doc_off[0] = 0;
        const char *text;
        size_t len;
        while (nb < BATCH_DOCS && doc_off[nb] < BATCH_BYTES) { /* a batch of copied texts */
            int got = sgt_jsonl_next(r, &text, &len, err, errsz);
            if (got != 1) {
                rc = got < 0 ? got : 0;
                more = false;
                break;
            }
            if (doc_off[nb] + len > text_cap) {
                size_t cap = (doc_off[nb] + len) * 2;
                char *nt_ = realloc(texts, cap);
                if (!nt_) {
                    sgt_data_err(err, errsz, "token_cache: out of memory tokenizing %s", dataset_path);
                    rc = -ENOMEM;
                    break;
                }
                texts = nt_;
                text_cap = cap;
            }
            memcpy(texts + doc_off[nb], text, len);
            doc_off[nb + 1] = doc_off[nb] + len;
            nb++;
        }
        if (rc) break;
        int oom = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4) reduction(| : oom) if (nt > 1 && nb > 1)
#endif
        for (int d = 0; d < nb; d++) {
            int me = 0;
#ifdef _OPENMP
            me = omp_get_thread_num();
#endif
            ids[d].len = 0;
            oom |= sgt_tokenizer_encode(toks[me], texts + doc_off[d], doc_off[d + 1] - doc_off[d], &ids[d]) ||
                   sgt_tok_ids_push(&ids[d], eot);
        }
        for (int d = 0; d < nb && !rc; d++) {
            if (!oom && ids[d].len > u16_cap) {
                free(u16);
                u16_cap = ids[d].cap;
                u16 = malloc(u16_cap * sizeof *u16);
                oom = !u16;
            }
            if (!oom && n_docs + 2 > offs_cap) {
                size_t cap = offs_cap ? offs_cap * 2 : 4096;
                uint64_t *no = realloc(offs, cap * sizeof *no);
                if (no) {
                    offs = no;
                    offs_cap = cap;
                }
                oom = !no;
            }
            if (oom) {
                sgt_data_err(err, errsz, "token_cache: out of memory tokenizing %s", dataset_path);
                rc = -ENOMEM;
                break;
            }
            for (size_t i = 0; i < ids[d].len; i++) u16[i] = (uint16_t)ids[d].data[i];
            offs[n_docs++] = n_tokens;
            n_tokens += ids[d].len;
            rc = write_all(f, u16, ids[d].len * sizeof *u16, &xh);
            if (rc) sgt_data_err(err, errsz, "token_cache: write error on %s: %s", tmp, strerror(errno));
        }
        if (!rc) progress_show(&pr, sgt_jsonl_stats_of(r), n_tokens, false);
    }
    for (int i = 1; i < nt; i++) sgt_tokenizer_free(toks[i]);
    for (int d = 0; d < BATCH_DOCS; d++) sgt_tok_ids_free(&ids[d]);
    free(texts);
    if (!rc) {
        progress_show(&pr, sgt_jsonl_stats_of(r), n_tokens, true);
        offs[n_docs] = n_tokens;
        static const char zeros[8] = {0};
        size_t pad = (size_t)(tokens_region(n_tokens) - n_tokens * 2);
        const sgt_jsonl_stats *s = sgt_jsonl_stats_of(r);
        memcpy(h.magic, MAGIC, sizeof MAGIC);
        h.version = SGT_TOKEN_CACHE_VERSION;
        h.token_bytes = 2;
        h.n_tokens = n_tokens;
        h.n_docs = n_docs;
        h.key = *key;
        h.eot = eot;
        h.vocab_size = sgt_tokenizer_vocab_size(tok);
        h.lines = s->lines;
        h.empty_lines = s->empty_lines;
        h.bad_json = s->bad_json;
        h.missing_field = s->missing_field;
        h.bad_utf8 = s->bad_utf8;
        h.first_bad_line = s->first_bad_line;
        rc = write_all(f, zeros, pad, NULL);
        if (!rc) rc = write_all(f, offs, (n_docs + 1) * sizeof *offs, &xh);
        h.payload_hash = sgt_xxh64_digest(&xh);
        if (!rc && (fflush(f) != 0 || fseek(f, 0, SEEK_SET) != 0)) rc = -EIO;
        if (!rc) rc = write_all(f, &h, sizeof h, NULL);
        if (!rc && (fflush(f) != 0 || fsync(fileno(f)) != 0)) rc = -EIO;
        if (rc) sgt_data_err(err, errsz, "token_cache: write error on %s: %s", tmp, strerror(errno));
    }
    if (fclose(f) != 0 && !rc) {
        rc = -EIO;
        sgt_data_err(err, errsz, "token_cache: write error closing %s", tmp);
    }
    sgt_jsonl_close(r);
    free(u16);
    free(offs);
    if (!rc) {
        /* the key was computed before reading: the data must not have changed since */
        sgt_token_cache_key now = *key;
        rc = stat_key(dataset_path, &now, err, errsz);
        if (!rc && (now.data_size != key->data_size || now.data_mtime_ns != key->data_mtime_ns)) {
            sgt_data_err(err, errsz, "token_cache: dataset %s changed while it was tokenized",
                    dataset_path);
            rc = -EAGAIN;
        }
    }
    if (!rc && rename(tmp, cache_path) != 0) {
        int e = errno;
        sgt_data_err(err, errsz, "token_cache: cannot rename %s to %s: %s", tmp, cache_path,
                strerror(e));
        rc = -e;
    }
    if (rc) unlink(tmp);
    return rc;
}

int sgt_token_cache_build_or_load(const char *dataset_path, const char *text_field,
                                  sgt_tokenizer *tok, const char *cache_path, bool progress,
                                  sgt_token_cache *out, char *err, size_t errsz) {
    memset(out, 0, sizeof *out);
    sgt_token_cache_key key;
    int rc = sgt_token_cache_key_of(dataset_path, text_field, tok, &key, err, errsz);
    if (rc) return rc;
    char why[1024] = "";
    load_result lr = try_load(cache_path, &key, tok, out, why, sizeof why);
    if (lr == LOAD_OK) {
        out->origin = SGT_CACHE_LOADED;
        return 0;
    }
    if (lr == LOAD_ERROR) {
        sgt_data_err(err, errsz, "token_cache: %s", why);
        return -EIO;
    }
    sgt_cache_origin origin = lr == LOAD_MISSING ? SGT_CACHE_BUILT
                              : lr == LOAD_STALE ? SGT_CACHE_REBUILT_STALE
                                                 : SGT_CACHE_REBUILT_CORRUPT;
    if (origin == SGT_CACHE_REBUILT_CORRUPT)
        fprintf(stderr, "token_cache: warning: %s; rebuilding\n", why);
    else if (origin == SGT_CACHE_REBUILT_STALE && progress)
        fprintf(stderr, "token_cache: %s; rebuilding\n", why);
    rc = build(dataset_path, text_field, tok, cache_path, progress, &key, err, errsz);
    if (rc) return rc;
    lr = try_load(cache_path, &key, tok, out, why, sizeof why);
    if (lr != LOAD_OK) {
        sgt_data_err(err, errsz, "token_cache: the cache just written does not load back: %s", why);
        return -EIO;
    }
    out->origin = origin;
    return 0;
}
