/* test_dataset.c: the token cache (build, load, rebuild on changed data or field, truncated and
 * damaged caches, XXH64 vectors), the document split, the seeded batch sampler (determinism,
 * epoch coverage, exact resume) and the validation windows; one end-to-end run on the real
 * $SGT_SHARED/data/tinyshakespeare.jsonl. */
#include <omp.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset.h"
#include "token_cache.h"
#include "tokenizer.h"

static sgt_tokenizer *g_tok;
static char g_dir[64];
static char g_shared[4096];

static void path_in_dir(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", g_dir, name);
}

/* A small dataset: n_docs documents (with a "body" field too), plus one bad line. */
static void write_dataset(const char *path, int n_docs, const char *variant) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    for (int i = 0; i < n_docs; i++) {
        fprintf(f, "{\"text\": \"Document %d (%s): the cat sat on mat number %d.\\nIt's fine.\", "
                   "\"body\": \"body %d\"}\n",
                i, variant, i * 7, i);
        if (i == 3) fprintf(f, "{\"text\": oops}\n");
    }
    fclose(f);
}

static sgt_cache_origin build_or_load(const char *data, const char *field, const char *cache,
                                      sgt_token_cache *c) {
    char err[1024];
    int rc = sgt_token_cache_build_or_load(data, field, g_tok, cache, false, c, err, sizeof err);
    if (rc) fail_msg("token cache for %s failed (%d): %s", data, rc, err);
    return c->origin;
}

static bool dir_has_temp_files(void) {
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    bool found = false;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".tmp.")) found = true;
    closedir(d);
    return found;
}

/* ---- token cache ---- */

static void test_xxh64_vectors(void **state) {
    (void)state;
    struct {
        const char *s;
        size_t n;
        uint64_t seed, want;
    } v[] = {
        {"", 0, 0, 0xEF46DB3751D8E999ULL},
        {"a", 1, 0, 0xD24EC4F1A98C6E5BULL},
        {"abc", 3, 0, 0x44BC2CF5AD770999ULL},
        {"Hello, World!", 13, 0, 0xC49AACF8080FE47FULL},
        {"Hello, World!", 13, 42, 0xC2E0FE28B2512846ULL},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 32, 0, 0x856E843298F99AD7ULL},
        {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 33, 0, 0x18F3FF0C21E3B24BULL},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        sgt_xxh64 h;
        sgt_xxh64_init(&h, v[i].seed);
        sgt_xxh64_update(&h, v[i].s, v[i].n);
        if (sgt_xxh64_digest(&h) != v[i].want)
            fail_msg("XXH64 vector %zu: got %016llx, want %016llx", i,
                     (unsigned long long)sgt_xxh64_digest(&h), (unsigned long long)v[i].want);
    }
    /* streaming in uneven pieces equals one update */
    unsigned char buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 31 + 7);
    sgt_xxh64 one, parts;
    sgt_xxh64_init(&one, 5);
    sgt_xxh64_update(&one, buf, sizeof buf);
    sgt_xxh64_init(&parts, 5);
    for (size_t off = 0, step = 1; off < sizeof buf; off += step, step = step * 3 % 37 + 1)
        sgt_xxh64_update(&parts, buf + off, off + step > sizeof buf ? sizeof buf - off : step);
    assert_true(sgt_xxh64_digest(&one) == sgt_xxh64_digest(&parts));
}

static void test_cache_build_then_load(void **state) {
    (void)state;
    char data[128], cache[128];
    path_in_dir(data, sizeof data, "build.jsonl");
    path_in_dir(cache, sizeof cache, "build.tok");
    write_dataset(data, 40, "v1");
    sgt_token_cache a, b;
    assert_int_equal(build_or_load(data, NULL, cache, &a), SGT_CACHE_BUILT);
    assert_int_equal(a.n_docs, 40);
    assert_int_equal(a.stats.bad_json, 1);
    assert_int_equal(a.eot, SGT_TOKENIZER_EOT);
    /* each document is its own encoding followed by EOT, in file order */
    sgt_tok_ids ids = {0};
    for (uint64_t d = 0; d < a.n_docs; d++) {
        char text[256];
        snprintf(text, sizeof text, "Document %d (v1): the cat sat on mat number %d.\nIt's fine.",
                 (int)d, (int)d * 7);
        ids.len = 0;
        assert_int_equal(sgt_tokenizer_encode(g_tok, text, strlen(text), &ids), 0);
        assert_int_equal(a.doc_offsets[d + 1] - a.doc_offsets[d], ids.len + 1);
        for (size_t i = 0; i < ids.len; i++)
            assert_int_equal(a.tokens[a.doc_offsets[d] + i], ids.data[i]);
        assert_int_equal(a.tokens[a.doc_offsets[d + 1] - 1], SGT_TOKENIZER_EOT);
    }
    sgt_tok_ids_free(&ids);

    assert_int_equal(build_or_load(data, NULL, cache, &b), SGT_CACHE_LOADED);
    assert_int_equal(b.n_tokens, a.n_tokens);
    assert_int_equal(b.n_docs, a.n_docs);
    assert_memory_equal(b.tokens, a.tokens, a.n_tokens * sizeof *a.tokens);
    assert_memory_equal(b.doc_offsets, a.doc_offsets, (a.n_docs + 1) * sizeof *a.doc_offsets);
    assert_int_equal(b.stats.bad_json, 1); /* skip counts survive in the header */
    assert_true(memcmp(&a.key, &b.key, sizeof a.key) == 0);
    sgt_token_cache_close(&a);
    sgt_token_cache_close(&b);
    assert_false(dir_has_temp_files());
    unlink(data);
    unlink(cache);
}

static void test_cache_rebuilds_when_data_changes(void **state) {
    (void)state;
    char data[128], cache[128];
    path_in_dir(data, sizeof data, "change.jsonl");
    path_in_dir(cache, sizeof cache, "change.tok");
    write_dataset(data, 20, "v1");
    sgt_token_cache c;
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_BUILT);
    uint64_t n1 = c.n_tokens;
    sgt_token_cache_close(&c);

    /* more documents */
    write_dataset(data, 21, "v1");
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_REBUILT_STALE);
    assert_int_equal(c.n_docs, 21);
    assert_true(c.n_tokens > n1);
    sgt_token_cache_close(&c);
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_LOADED);
    sgt_token_cache_close(&c);

    /* same size and the old mtime, different content: only the content hash can tell */
    struct stat st;
    assert_int_equal(stat(data, &st), 0);
    write_dataset(data, 21, "v2");
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, data, times, 0), 0);
    struct stat st2;
    assert_int_equal(stat(data, &st2), 0);
    assert_int_equal(st2.st_size, st.st_size);
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_REBUILT_STALE);
    sgt_token_cache_close(&c);

    /* another text field */
    assert_int_equal(build_or_load(data, "body", cache, &c), SGT_CACHE_REBUILT_STALE);
    assert_int_equal(c.n_docs, 21); /* the bad-JSON line has no "body" either */
    sgt_token_cache_close(&c);
    assert_false(dir_has_temp_files());
    unlink(data);
    unlink(cache);
}

static void flip_byte(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, offset, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, offset, SEEK_SET), 0);
    fputc(c ^ 0x01, f);
    fclose(f);
}

static void test_cache_detects_truncation_and_damage(void **state) {
    (void)state;
    char data[128], cache[128];
    path_in_dir(data, sizeof data, "damage.jsonl");
    path_in_dir(cache, sizeof cache, "damage.tok");
    write_dataset(data, 30, "v1");
    sgt_token_cache c;
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_BUILT);
    uint64_t n_tokens = c.n_tokens;
    uint16_t *copy = malloc(n_tokens * sizeof *copy);
    memcpy(copy, c.tokens, n_tokens * sizeof *copy);
    sgt_token_cache_close(&c);
    struct stat st;
    assert_int_equal(stat(cache, &st), 0);

    assert_int_equal(truncate(cache, st.st_size - 10), 0); /* truncated */
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_REBUILT_CORRUPT);
    assert_int_equal(c.n_tokens, n_tokens);
    assert_memory_equal(c.tokens, copy, n_tokens * sizeof *copy);
    sgt_token_cache_close(&c);

    flip_byte(cache, 256 + 20); /* one token changed: the payload hash catches it */
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_REBUILT_CORRUPT);
    assert_memory_equal(c.tokens, copy, n_tokens * sizeof *copy);
    sgt_token_cache_close(&c);

    assert_int_equal(truncate(cache, 100), 0); /* shorter than the header */
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_REBUILT_CORRUPT);
    sgt_token_cache_close(&c);

    FILE *f = fopen(cache, "wb"); /* not a cache at all */
    for (int i = 0; i < 1000; i++) fputs("garbage ", f);
    fclose(f);
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_REBUILT_CORRUPT);
    assert_memory_equal(c.tokens, copy, n_tokens * sizeof *copy);
    sgt_token_cache_close(&c);

    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_LOADED);
    sgt_token_cache_close(&c);
    free(copy);
    unlink(data);
    unlink(cache);
}

static void test_cache_errors(void **state) {
    (void)state;
    char data[128], cache[128], err[1024] = "";
    path_in_dir(data, sizeof data, "missing.jsonl");
    path_in_dir(cache, sizeof cache, "missing.tok");
    sgt_token_cache c;
    assert_int_equal(sgt_token_cache_build_or_load(data, NULL, g_tok, cache, false, &c, err,
                                                   sizeof err),
                     -ENOENT);
    assert_non_null(strstr(err, data));

    /* a dataset with no usable document: the JSONL error comes through, no cache is left */
    FILE *f = fopen(data, "wb");
    fputs("{\"title\": \"no text\"}\n", f);
    fclose(f);
    err[0] = 0;
    assert_int_equal(sgt_token_cache_build_or_load(data, NULL, g_tok, cache, false, &c, err,
                                                   sizeof err),
                     -ENODATA);
    assert_non_null(strstr(err, data));
    assert_int_equal(access(cache, F_OK), -1);

    /* cache in a directory that does not exist */
    write_dataset(data, 3, "v1");
    char bad_cache[160];
    snprintf(bad_cache, sizeof bad_cache, "%s/no/such/dir/x.tok", g_dir);
    err[0] = 0;
    assert_true(sgt_token_cache_build_or_load(data, NULL, g_tok, bad_cache, false, &c, err,
                                              sizeof err) < 0);
    assert_non_null(strstr(err, "no/such/dir"));
    assert_false(dir_has_temp_files());
    unlink(data);
}

/* ---- split ---- */

/* docs of the given lengths (EOT included); token i has value i % 50000 */
static uint16_t *make_docs(const uint64_t *lens, uint64_t n_docs, uint64_t *offs) {
    offs[0] = 0;
    for (uint64_t d = 0; d < n_docs; d++) offs[d + 1] = offs[d] + lens[d];
    uint16_t *t = malloc(offs[n_docs] * sizeof *t);
    for (uint64_t i = 0; i < offs[n_docs]; i++) t[i] = (uint16_t)(i % 50000);
    return t;
}

static void test_split_by_doc(void **state) {
    (void)state;
    const uint64_t lens[10] = {10, 20, 5, 7, 3, 50, 4, 6, 8, 2};
    uint64_t offs[11];
    uint16_t *t = make_docs(lens, 10, offs);
    sgt_data_split s, s2;
    char err[256];

    assert_int_equal(sgt_split_by_doc(t, offs[10], offs, 10, 0.1, 0, &s, err, sizeof err), 0);
    assert_int_equal(s.n_val_docs, 1); /* ceil(0.1 * 10) */
    assert_int_equal(s.n_val, 2);
    assert_int_equal(s.n_train, offs[9]);
    assert_ptr_equal(s.train, t);
    assert_ptr_equal(s.val, t + offs[9]);
    assert_int_equal(s.n_train_docs, 9);

    assert_int_equal(sgt_split_by_doc(t, offs[10], offs, 10, 0.15, 0, &s, err, sizeof err), 0);
    assert_int_equal(s.n_val_docs, 2); /* ceil(1.5) */

    /* min_val_tokens grows the validation set one (whole) document at a time */
    assert_int_equal(sgt_split_by_doc(t, offs[10], offs, 10, 0.1, 11, &s, err, sizeof err), 0);
    assert_int_equal(s.n_val_docs, 3); /* 2, then 2+8, then 2+8+6 = 16 >= 11 */
    assert_int_equal(s.n_val, 16);
    assert_int_equal(s.n_train + s.n_val, offs[10]);

    /* deterministic: the same call gives the same split */
    assert_int_equal(sgt_split_by_doc(t, offs[10], offs, 10, 0.1, 11, &s2, err, sizeof err), 0);
    assert_memory_equal(&s, &s2, sizeof s);

    /* the default fraction keeps at least one document */
    assert_int_equal(sgt_split_by_doc(t, offs[10], offs, 10, SGT_VAL_FRACTION_DEFAULT, 0, &s, err,
                                      sizeof err),
                     0);
    assert_int_equal(s.n_val_docs, 1);

    assert_int_equal(sgt_split_by_doc(t, offs[10], offs, 10, 0.0, 0, &s, err, sizeof err), 0);
    assert_int_equal(s.n_val_docs, 0);
    assert_int_equal(s.n_val, 0);

    /* impossible: more validation tokens than all but the first document */
    err[0] = 0;
    assert_int_equal(sgt_split_by_doc(t, offs[10], offs, 10, 0.1, 110, &s, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "110"));
    assert_int_equal(sgt_split_by_doc(t, offs[10], offs, 10, 1.5, 0, &s, err, sizeof err), -EINVAL);
    free(t);
}

/* ---- sampler ---- */

enum { SB = 4, ST = 16, SN = 5000 }; /* 312 windows, 78 batches per epoch */

static uint16_t *iota_tokens(uint64_t n) {
    uint16_t *t = malloc(n * sizeof *t);
    for (uint64_t i = 0; i < n; i++) t[i] = (uint16_t)i;
    return t;
}

static void init_sampler(sgt_batch_sampler *s, const uint16_t *t, uint64_t n, int B, int T,
                         uint64_t seed) {
    char err[256];
    if (sgt_batch_sampler_init(s, t, n, B, T, seed, err, sizeof err)) fail_msg("%s", err);
}

static void test_sampler_determinism(void **state) {
    (void)state;
    uint16_t *t = iota_tokens(SN);
    sgt_batch_sampler a, b, c;
    init_sampler(&a, t, SN, SB, ST, 7);
    init_sampler(&b, t, SN, SB, ST, 7);
    init_sampler(&c, t, SN, SB, ST, 8);
    assert_int_equal(a.n_windows, (SN - 1) / ST);
    int32_t ba[SB * (ST + 1)], bb[SB * (ST + 1)], bc[SB * (ST + 1)];
    int differ = 0;
    for (int i = 0; i < 200; i++) { /* crosses two epoch boundaries */
        sgt_batch_sampler_next(&a, ba);
        sgt_batch_sampler_next(&b, bb);
        sgt_batch_sampler_next(&c, bc);
        assert_memory_equal(ba, bb, sizeof ba);
        differ += memcmp(ba, bc, sizeof ba) != 0;
    }
    assert_true(differ > 190); /* another seed, another order */
    sgt_batch_sampler_free(&a);
    sgt_batch_sampler_free(&b);
    sgt_batch_sampler_free(&c);
    free(t);
}

/* Each epoch visits each window once; rows are contiguous windows starting at w*T; epochs differ. */
static void test_sampler_epochs_cover_all_windows(void **state) {
    (void)state;
    uint16_t *t = iota_tokens(SN);
    sgt_batch_sampler s;
    init_sampler(&s, t, SN, SB, ST, 3);
    uint64_t nw = s.n_windows;
    assert_int_equal(nw % SB, 0); /* 312 = 78 * 4: epochs align with batches here */
    int *seen = calloc(nw, sizeof *seen);
    uint64_t *order0 = malloc(nw * sizeof *order0);
    int32_t batch[SB * (ST + 1)];
    int same_position = 0;
    for (int epoch = 0; epoch < 2; epoch++) {
        memset(seen, 0, nw * sizeof *seen);
        for (uint64_t k = 0; k < nw / SB; k++) {
            sgt_batch_sampler_next(&s, batch);
            for (int r = 0; r < SB; r++) {
                const int32_t *row = batch + r * (ST + 1);
                assert_int_equal(row[0] % ST, 0);
                for (int i = 1; i <= ST; i++) assert_int_equal(row[i], row[0] + i);
                uint64_t w = (uint64_t)row[0] / ST;
                assert_true(w < nw);
                seen[w]++;
                if (epoch == 0) order0[k * SB + r] = w;
                else same_position += order0[k * SB + r] == w;
            }
        }
        for (uint64_t w = 0; w < nw; w++)
            if (seen[w] != 1) fail_msg("epoch %d: window %llu seen %d times", epoch,
                                       (unsigned long long)w, seen[w]);
    }
    assert_true(same_position < (int)nw / 10);
    free(seen);
    free(order0);
    sgt_batch_sampler_free(&s);
    free(t);
}

/* Saving the state and restoring it into a fresh sampler gives the exact next batches, also when
 * the saved position sits inside another epoch than the fresh sampler's. */
static void test_sampler_resume(void **state) {
    (void)state;
    uint16_t *t = iota_tokens(SN);
    sgt_batch_sampler a, b;
    init_sampler(&a, t, SN, SB, ST, 11);
    int32_t x[3][SB * (ST + 1)], y[SB * (ST + 1)];
    for (int i = 0; i < 101; i++) sgt_batch_sampler_next(&a, y); /* into epoch 1 */
    sgt_sampler_state st = sgt_batch_sampler_state(&a);
    assert_int_equal(st.epoch, 1);
    for (int k = 0; k < 3; k++) sgt_batch_sampler_next(&a, x[k]);

    init_sampler(&b, t, SN, SB, ST, 11);
    char err[256];
    assert_int_equal(sgt_batch_sampler_restore(&b, &st, err, sizeof err), 0);
    for (int k = 0; k < 3; k++) {
        sgt_batch_sampler_next(&b, y);
        assert_memory_equal(x[k], y, sizeof y);
    }
    /* rewinding the same sampler works too */
    assert_int_equal(sgt_batch_sampler_restore(&a, &st, err, sizeof err), 0);
    sgt_batch_sampler_next(&a, y);
    assert_memory_equal(x[0], y, sizeof y);

    /* a state from another seed or T is refused */
    sgt_sampler_state bad = st;
    bad.seed = 12;
    assert_int_equal(sgt_batch_sampler_restore(&b, &bad, err, sizeof err), -EINVAL);
    bad = st;
    bad.T = ST + 1;
    assert_int_equal(sgt_batch_sampler_restore(&b, &bad, err, sizeof err), -EINVAL);
    sgt_batch_sampler_free(&a);
    sgt_batch_sampler_free(&b);
    free(t);
}

/* B only groups the window sequence into rows. */
static void test_sampler_batch_size_groups_same_sequence(void **state) {
    (void)state;
    uint16_t *t = iota_tokens(SN);
    sgt_batch_sampler a, b;
    init_sampler(&a, t, SN, 4, ST, 5);
    init_sampler(&b, t, SN, 2, ST, 5);
    int32_t four[4 * (ST + 1)], two[2][2 * (ST + 1)];
    for (int i = 0; i < 100; i++) {
        sgt_batch_sampler_next(&a, four);
        sgt_batch_sampler_next(&b, two[0]);
        sgt_batch_sampler_next(&b, two[1]);
        assert_memory_equal(four, two, sizeof four);
    }
    sgt_batch_sampler_free(&a);
    sgt_batch_sampler_free(&b);
    char err[256];
    assert_int_equal(sgt_batch_sampler_init(&a, t, ST, 1, ST, 1, err, sizeof err), -EINVAL);
    free(t);
}

/* ---- validation windows ---- */

static void test_val_windows(void **state) {
    (void)state;
    enum { T = 5 };
    uint16_t *t = iota_tokens(26);
    int32_t out[3 * (T + 1)];
    sgt_val_iter it;
    /* n = 21: windows at 0, 5, 10, 15; the last one ends exactly on token 20 */
    sgt_val_iter_init(&it, t, 21, T);
    assert_int_equal(it.n_windows, 4);
    assert_int_equal(sgt_val_iter_next(&it, 3, out), 3);
    for (int r = 0; r < 3; r++)
        for (int i = 0; i <= T; i++) assert_int_equal(out[r * (T + 1) + i], r * T + i);
    assert_int_equal(sgt_val_iter_next(&it, 3, out), 1);
    for (int i = 0; i <= T; i++) assert_int_equal(out[i], 15 + i);
    assert_int_equal(sgt_val_iter_next(&it, 3, out), 0);
    /* n = 25: the window at 20 would need token 25, so it is dropped */
    sgt_val_iter_init(&it, t, 25, T);
    assert_int_equal(it.n_windows, 4);
    /* n = 26: now it fits */
    sgt_val_iter_init(&it, t, 26, T);
    assert_int_equal(it.n_windows, 5);
    int total = 0, got;
    while ((got = sgt_val_iter_next(&it, 2, out)) > 0) total += got;
    assert_int_equal(total, 5);
    sgt_val_iter_reset(&it);
    assert_int_equal(sgt_val_iter_next(&it, 1, out), 1);
    assert_int_equal(out[0], 0);
    sgt_val_iter_init(&it, t, 5, T); /* shorter than one window */
    assert_int_equal(sgt_val_iter_next(&it, 3, out), 0);
    sgt_val_iter_init(&it, t, 0, T);
    assert_int_equal(it.n_windows, 0);
    free(t);
}

/* ---- real data, end to end ---- */

/* the whole file's bytes (malloc'd), for comparing caches */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    rewind(f);
    char *b = malloc(*n ? *n : 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

/* Encoding runs on all threads (tokenizer forks, batches written in order): the cache built on
 * 1, 2 and 3 threads is the same file, byte for byte. */
static void test_cache_same_on_any_thread_count(void **state) {
    (void)state;
    char data[4200], cache[3][128];
    snprintf(data, sizeof data, "%s/data/tinyshakespeare.jsonl", g_shared);
    char *bytes[3];
    size_t n[3];
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "threads%d.tok", k + 1);
        path_in_dir(cache[k], sizeof cache[k], name);
        omp_set_num_threads(k + 1);
        sgt_token_cache c;
        assert_int_equal(build_or_load(data, NULL, cache[k], &c), SGT_CACHE_BUILT);
        assert_int_equal(c.n_tokens, 337030 + 498);
        sgt_token_cache_close(&c);
        bytes[k] = slurp(cache[k], &n[k]);
    }
    omp_set_num_threads(1);
    for (int k = 1; k < 3; k++) {
        assert_int_equal(n[k], n[0]);
        if (memcmp(bytes[k], bytes[0], n[0])) fail_msg("the cache built on %d threads differs from 1 thread's", k + 1);
    }
    for (int k = 0; k < 3; k++) {
        free(bytes[k]);
        unlink(cache[k]);
    }
}

static void test_tinyshakespeare_end_to_end(void **state) {
    (void)state;
    char data[4200], cache[128];
    snprintf(data, sizeof data, "%s/data/tinyshakespeare.jsonl", g_shared);
    path_in_dir(cache, sizeof cache, "shakespeare.tok");
    sgt_token_cache c;
    assert_int_equal(build_or_load(data, NULL, cache, &c), SGT_CACHE_BUILT);
    assert_int_equal(c.n_docs, 498);
    /* 337030 text tokens (counted with OpenAI's encoder.py on the same file) + 498 EOT */
    assert_int_equal(c.n_tokens, 337030 + 498);
    assert_int_equal(c.stats.bad_json + c.stats.missing_field + c.stats.bad_utf8, 0);

    enum { T = 256, B = 8 };
    sgt_data_split s;
    char err[256];
    assert_int_equal(sgt_split_by_doc(c.tokens, c.n_tokens, c.doc_offsets, c.n_docs,
                                      SGT_VAL_FRACTION_DEFAULT, 2 * (T + 1), &s, err, sizeof err),
                     0);
    assert_int_equal(s.n_val_docs, 3); /* ceil(0.005 * 498) */
    assert_int_equal(s.val[-1], SGT_TOKENIZER_EOT); /* the split falls on a document boundary */
    assert_int_equal(s.val[s.n_val - 1], SGT_TOKENIZER_EOT);

    sgt_batch_sampler bs;
    init_sampler(&bs, s.train, s.n_train, B, T, 1337);
    int32_t *batch = malloc(sizeof(int32_t) * B * (T + 1));
    sgt_batch_sampler_next(&bs, batch);
    for (int i = 0; i < B * (T + 1); i++) assert_true(batch[i] >= 0 && batch[i] <= 50256);
    sgt_val_iter vi;
    sgt_val_iter_init(&vi, s.val, s.n_val, T);
    assert_int_equal(vi.n_windows, (s.n_val - 1) / T);
    assert_true(vi.n_windows >= 2);
    free(batch);
    sgt_batch_sampler_free(&bs);
    sgt_token_cache_close(&c);
    unlink(cache);
}

static int setup(void **state) {
    (void)state;
    const char *shared = getenv("SGT_SHARED");
    snprintf(g_shared, sizeof g_shared, "%s", shared && *shared ? shared : "../shared");
    char dir[4200], err[512];
    if (sgt_tokenizer_resolve_dir(NULL, dir, sizeof dir)) return -1;
    if (sgt_tokenizer_load(dir, &g_tok, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    strcpy(g_dir, "/tmp/sgt_dataset_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    sgt_tokenizer_free(g_tok);
    return rmdir(g_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xxh64_vectors),
        cmocka_unit_test(test_cache_build_then_load),
        cmocka_unit_test(test_cache_rebuilds_when_data_changes),
        cmocka_unit_test(test_cache_detects_truncation_and_damage),
        cmocka_unit_test(test_cache_errors),
        cmocka_unit_test(test_split_by_doc),
        cmocka_unit_test(test_sampler_determinism),
        cmocka_unit_test(test_sampler_epochs_cover_all_windows),
        cmocka_unit_test(test_sampler_resume),
        cmocka_unit_test(test_sampler_batch_size_groups_same_sequence),
        cmocka_unit_test(test_val_windows),
        cmocka_unit_test(test_tinyshakespeare_end_to_end),
        cmocka_unit_test(test_cache_same_on_any_thread_count),
    };
    return cmocka_run_group_tests_name("dataset", tests, setup, teardown) ? 1 : 0;
}
