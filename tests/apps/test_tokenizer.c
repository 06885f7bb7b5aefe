/* test_tokenizer.c: the GPT-2 tokenizer against reference ids ($SGT_SHARED/tokenizer/gpt2/
 * reference_encodings.json), decode round trips on arbitrary bytes (invalid UTF-8 included), the
 * heap BPE against the naive oracle, the UTF-8 validator, and load errors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tokenizer.h"

static char g_dir[4096];

static sgt_tokenizer *load_or_fail(void) {
    char err[512];
    sgt_tokenizer *t = NULL;
    int rc = sgt_tokenizer_load(g_dir, &t, err, sizeof err);
    if (rc) fail_msg("cannot load the tokenizer from %s: %s", g_dir, err);
    return t;
}

static int setup(void **state) {
    *state = load_or_fail();
    return 0;
}

static int teardown(void **state) {
    sgt_tokenizer_free(*state);
    return 0;
}

static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *d = malloc((size_t)n + 1);
    if (fread(d, 1, (size_t)n, f) != (size_t)n) n = 0;
    d[n] = 0;
    fclose(f);
    *len = (size_t)n;
    return d;
}

static void assert_ids_equal(const int32_t *got, size_t n_got, const int32_t *want, size_t n_want,
                             const char *what) {
    size_t i = 0;
    while (i < n_got && i < n_want && got[i] == want[i]) i++;
    if (i != n_got || i != n_want)
        fail_msg("%s: ids differ at position %zu (got %zu ids, want %zu; got %d, want %d)", what,
                 i, n_got, n_want, i < n_got ? (int)got[i] : -1, i < n_want ? (int)want[i] : -1);
}

static void assert_roundtrip(sgt_tokenizer *t, const void *text, size_t len, bool special,
                             const char *what) {
    sgt_tok_ids ids = {0};
    sgt_tok_bytes back = {0};
    char err[256];
    assert_int_equal(special ? sgt_tokenizer_encode_special(t, text, len, &ids)
                             : sgt_tokenizer_encode(t, text, len, &ids),
                     0);
    assert_int_equal(sgt_tokenizer_decode(t, ids.data, ids.len, &back, err, sizeof err), 0);
    if (back.len != len || (len && memcmp(back.data, text, len) != 0)) {
        size_t i = 0;
        while (i < len && i < back.len && back.data[i] == ((const char *)text)[i]) i++;
        fail_msg("%s: round trip of %zu bytes differs at byte %zu (decoded %zu bytes)", what, len,
                 i, back.len);
    }
    sgt_tok_ids_free(&ids);
    sgt_tok_bytes_free(&back);
}

/* Every entry of reference_encodings.json encodes to exactly its ids and decodes back. */
static void test_reference_encodings(void **state) {
    sgt_tokenizer *t = *state;
    char path[4200];
    snprintf(path, sizeof path, "%s/reference_encodings.json", g_dir);
    size_t len = 0;
    char *json = read_text(path, &len);
    if (!json) fail_msg("cannot read %s", path);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsArray(root)) fail_msg("%s is not a JSON array", path);
    int n_entries = 0, n_special = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        const cJSON *text = cJSON_GetObjectItem(e, "text"), *ids = cJSON_GetObjectItem(e, "ids");
        assert_true(cJSON_IsString(text) && cJSON_IsArray(ids));
        bool special = cJSON_IsTrue(cJSON_GetObjectItem(e, "allowed_special"));
        size_t n_want = (size_t)cJSON_GetArraySize(ids);
        int32_t *want = calloc(n_want + 1, sizeof *want);
        for (size_t i = 0; i < n_want; i++) want[i] = (int32_t)cJSON_GetArrayItem(ids, (int)i)->valueint;
        const char *s = text->valuestring;
        sgt_tok_ids got = {0};
        assert_int_equal(special ? sgt_tokenizer_encode_special(t, s, strlen(s), &got)
                                 : sgt_tokenizer_encode(t, s, strlen(s), &got),
                         0);
        char what[128];
        snprintf(what, sizeof what, "reference entry %d (\"%.40s\")", n_entries, s);
        assert_ids_equal(got.data, got.len, want, n_want, what);
        assert_roundtrip(t, s, strlen(s), special, what);
        if (special) {
            /* the plain encoding must treat "<|endoftext|>" as text */
            got.len = 0;
            assert_int_equal(sgt_tokenizer_encode(t, s, strlen(s), &got), 0);
            for (size_t i = 0; i < got.len; i++) assert_int_not_equal(got.data[i], SGT_TOKENIZER_EOT);
            assert_true(got.len > n_want);
            n_special++;
        }
        sgt_tok_ids_free(&got);
        free(want);
        n_entries++;
    }
    assert_int_equal(n_entries, 20);
    assert_int_equal(n_special, 1);
    cJSON_Delete(root);
    free(json);
}

static void test_special_tokens(void **state) {
    sgt_tokenizer *t = *state;
    assert_int_equal(sgt_tokenizer_eot(t), SGT_TOKENIZER_EOT);
    assert_int_equal(sgt_tokenizer_vocab_size(t), 50257);
    const char s[] = "<|endoftext|>a<|endoftext|><|endoftext|>";
    sgt_tok_ids ids = {0};
    assert_int_equal(sgt_tokenizer_encode_special(t, s, sizeof s - 1, &ids), 0);
    assert_int_equal(ids.len, 4);
    assert_int_equal(ids.data[0], 50256);
    assert_int_equal(ids.data[1], 64); /* "a" */
    assert_int_equal(ids.data[2], 50256);
    assert_int_equal(ids.data[3], 50256);
    size_t n;
    const char *tok = sgt_tokenizer_token(t, 50256, &n);
    assert_non_null(tok);
    assert_int_equal(n, 13);
    assert_memory_equal(tok, "<|endoftext|>", 13);
    assert_null(sgt_tokenizer_token(t, 50257, &n));
    sgt_tok_ids_free(&ids);
}

/* Invalid bytes are pieces of their own; the valid runs around them encode as usual. */
static void test_invalid_utf8_pieces(void **state) {
    sgt_tokenizer *t = *state;
    sgt_tok_ids a = {0}, b = {0};
    const char bad[] = "Hello\xff world\xe2\x82";
    assert_int_equal(sgt_tokenizer_encode(t, bad, sizeof bad - 1, &a), 0);
    assert_int_equal(sgt_tokenizer_encode(t, "Hello", 5, &b), 0);
    size_t n1 = b.len;
    /* single-byte tokens: 0xff is symbol U+00FF, id 187; 0xe2 (U+00E2) is 158; 0x82 maps to
     * U+0124, id 224 (bytes_to_unicode order) */
    assert_int_equal(sgt_tok_ids_push(&b, 187), 0);
    assert_int_equal(sgt_tokenizer_encode(t, " world", 6, &b), 0);
    assert_int_equal(sgt_tok_ids_push(&b, 158), 0);
    assert_int_equal(sgt_tok_ids_push(&b, 224), 0);
    assert_true(n1 >= 1);
    assert_ids_equal(a.data, a.len, b.data, b.len, "Hello\\xff world\\xe2\\x82");
    sgt_tok_ids_free(&a);
    sgt_tok_ids_free(&b);
}

static uint64_t rng_next(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Fills buf with a mix designed to hit the edges: random bytes, ASCII words, valid multi-byte
 * characters, and broken sequences (truncated, overlong, surrogates, > U+10FFFF). */
static size_t random_text(uint64_t *rng, unsigned char *buf, size_t max) {
    static const char *frags[] = {"\xc3\xa9", "\xe4\xbd\xa0", "\xf0\x9f\x98\x81", "\xe2\x80\x8d",
                                  "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82",
                                  "\xf0\x9f", "\x80", "\xff", " ", "  ", "\n", "\r\n", "'s",
                                  "'ll", "<|endoftext|>", "\xc2\x85", "\xe3\x80\x80", "0123",
                                  "Hello", " world", "\t", "\x00"};
    size_t n = 0, target = rng_next(rng) % max;
    while (n < target) {
        uint64_t r = rng_next(rng);
        switch (r % 4) {
        case 0:
            buf[n++] = (unsigned char)(r >> 8);
            break;
        case 1:
            buf[n++] = (unsigned char)('a' + (r >> 8) % 26);
            break;
        default: {
            const char *f = frags[(r >> 8) % (sizeof frags / sizeof *frags)];
            size_t fl = f[0] ? strlen(f) : 1;
            for (size_t i = 0; i < fl && n < max; i++) buf[n++] = (unsigned char)f[i];
        }
        }
    }
    return n;
}

static void test_random_bytes_roundtrip(void **state) {
    sgt_tokenizer *t = *state;
    uint64_t seed = 1234, rng = seed;
    unsigned char buf[3000];
    for (int i = 0; i < 400; i++) {
        size_t n = random_text(&rng, buf, sizeof buf);
        char what[96];
        snprintf(what, sizeof what, "random text %d (seed %llu)", i, (unsigned long long)seed);
        assert_roundtrip(t, buf, n, i % 2, what);
    }
    for (int i = 0; i < 100; i++) { /* uniformly random bytes */
        size_t n = rng_next(&rng) % 2000;
        for (size_t k = 0; k < n; k++) buf[k] = (unsigned char)rng_next(&rng);
        assert_roundtrip(t, buf, n, false, "uniform random bytes");
    }
    assert_roundtrip(t, "", 0, false, "empty");
}

/* The heap merge must give what OpenAI's loop gives, on long words too. */
static void test_heap_bpe_matches_naive(void **state) {
    (void)state;
    sgt_tokenizer *fast = load_or_fail(), *naive = load_or_fail();
    sgt_tokenizer_set_naive_bpe(naive, true);
    uint64_t seed = 99, rng = seed;
    unsigned char buf[3000];
    sgt_tok_ids a = {0}, b = {0};
    for (int i = 0; i < 300; i++) {
        size_t n = random_text(&rng, buf, sizeof buf);
        if (i % 3 == 0) /* one long word from a small alphabet: many competing merges */
            for (size_t k = 0; k < n; k++) buf[k] = "aaabstnre"[rng_next(&rng) % 9];
        a.len = b.len = 0;
        assert_int_equal(sgt_tokenizer_encode(fast, buf, n, &a), 0);
        assert_int_equal(sgt_tokenizer_encode(naive, buf, n, &b), 0);
        char what[96];
        snprintf(what, sizeof what, "heap vs naive, text %d (seed %llu)", i, (unsigned long long)seed);
        assert_ids_equal(a.data, a.len, b.data, b.len, what);
    }
    sgt_tok_ids_free(&a);
    sgt_tok_ids_free(&b);
    sgt_tokenizer_free(fast);
    sgt_tokenizer_free(naive);
}

/* Encoding twice (second time from the word cache) gives the same ids. */
static void test_word_cache_consistent(void **state) {
    sgt_tokenizer *t = *state;
    const char s[] = "The quick brown fox jumps over the lazy dog. The quick brown fox!";
    sgt_tok_ids a = {0}, b = {0};
    assert_int_equal(sgt_tokenizer_encode(t, s, sizeof s - 1, &a), 0);
    uint64_t h0, m0, h1, m1;
    sgt_tokenizer_cache_stats(t, &h0, &m0);
    assert_int_equal(sgt_tokenizer_encode(t, s, sizeof s - 1, &b), 0);
    sgt_tokenizer_cache_stats(t, &h1, &m1);
    assert_int_equal(m1, m0); /* every multi-byte piece came from the cache */
    assert_true(h1 > h0);
    assert_ids_equal(a.data, a.len, b.data, b.len, "cached re-encode");
    sgt_tok_ids_free(&a);
    sgt_tok_ids_free(&b);
}

static void test_decode_bad_id(void **state) {
    sgt_tokenizer *t = *state;
    int32_t ids[] = {31373, 50257};
    sgt_tok_bytes out = {0};
    char err[256] = "";
    assert_int_equal(sgt_tokenizer_decode(t, ids, 2, &out, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "50257"));
    ids[1] = -1;
    assert_int_equal(sgt_tokenizer_decode(t, ids, 2, &out, err, sizeof err), -EINVAL);
    sgt_tok_bytes_free(&out);
}

static void test_utf8_validator(void **state) {
    (void)state;
    struct {
        const char *s;
        size_t valid;
    } cases[] = {
        {"abc", 3},
        {"caf\xc3\xa9", 5},
        {"\xf0\x9f\x98\x81!", 5},
        {"\xef\xbf\xbf", 3},             /* U+FFFF */
        {"\xf4\x8f\xbf\xbf", 4},         /* U+10FFFF */
        {"ab\xc0\x80", 2},               /* overlong NUL */
        {"\xe0\x9f\xbf", 0},             /* overlong 3-byte */
        {"\xf0\x8f\xbf\xbf", 0},         /* overlong 4-byte */
        {"x\xed\xa0\x80", 1},            /* surrogate U+D800 */
        {"\xed\x9f\xbf", 3},             /* U+D7FF */
        {"\xf4\x90\x80\x80", 0},         /* > U+10FFFF */
        {"0123456789\xe2\x82", 10},      /* truncated after the ASCII fast path */
        {"\xc3", 0},
        {"\x80", 0},
        {"\xf5\x80\x80\x80", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t got = sgt_utf8_valid_prefix(cases[i].s, strlen(cases[i].s));
        if (got != cases[i].valid)
            fail_msg("utf8 case %zu: valid prefix %zu, want %zu", i, got, cases[i].valid);
    }
}

static void test_missing_dir_is_an_error(void **state) {
    (void)state;
    char err[512] = "";
    sgt_tokenizer *t = (sgt_tokenizer *)1;
    int rc = sgt_tokenizer_load("/nonexistent/sgt-tokenizer-dir", &t, err, sizeof err);
    assert_int_equal(rc, -ENOENT);
    assert_null(t);
    assert_non_null(strstr(err, "/nonexistent/sgt-tokenizer-dir/encoder.json"));
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_malformed_files_are_errors(void **state) {
    (void)state;
    char dir[] = "/tmp/sgt_tok_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char enc[256], bpe[256], real_enc[4200], err[512];
    snprintf(enc, sizeof enc, "%s/encoder.json", dir);
    snprintf(bpe, sizeof bpe, "%s/vocab.bpe", dir);
    snprintf(real_enc, sizeof real_enc, "%s/encoder.json", g_dir);
    char *abs_enc = realpath(real_enc, NULL); /* the link must not depend on the working dir */
    assert_non_null(abs_enc);
    sgt_tokenizer *t = NULL;

    write_file(enc, "{\"a\": 0, ");
    write_file(bpe, "#version: 0.2\n");
    assert_int_equal(sgt_tokenizer_load(dir, &t, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, enc));

    /* the real encoder.json with a broken merges file */
    unlink(enc);
    assert_int_equal(symlink(abs_enc, enc), 0);
    free(abs_enc);
    write_file(bpe, "#version: 0.2\n\xc4\xa0 t\nnot-a-pair-line\n");
    err[0] = 0;
    assert_int_equal(sgt_tokenizer_load(dir, &t, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, bpe));
    assert_non_null(strstr(err, "line 3"));
    assert_null(t);

    /* a merge whose parts are not in the vocabulary */
    write_file(bpe, "#version: 0.2\nzzzzqq xx\n");
    assert_int_equal(sgt_tokenizer_load(dir, &t, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "line 2"));

    unlink(enc);
    unlink(bpe);
    rmdir(dir);
}

static void test_resolve_dir(void **state) {
    (void)state;
    char buf[512];
    const char *old_tok = getenv("SGT_TOKENIZER");
    const char *old_shared = getenv("SGT_SHARED");
    char *saved_tok = old_tok ? strdup(old_tok) : NULL, *saved_shared = old_shared ? strdup(old_shared) : NULL;
    setenv("SGT_TOKENIZER", "/env/tok", 1);
    setenv("SGT_SHARED", "/env/shared", 1);
    assert_int_equal(sgt_tokenizer_resolve_dir("/flag/dir", buf, sizeof buf), 0);
    assert_string_equal(buf, "/flag/dir");
    assert_int_equal(sgt_tokenizer_resolve_dir(NULL, buf, sizeof buf), 0);
    assert_string_equal(buf, "/env/tok");
    unsetenv("SGT_TOKENIZER");
    assert_int_equal(sgt_tokenizer_resolve_dir(NULL, buf, sizeof buf), 0);
    assert_string_equal(buf, "/env/shared/tokenizer/gpt2");
    unsetenv("SGT_SHARED");
    assert_int_equal(sgt_tokenizer_resolve_dir(NULL, buf, sizeof buf), 0);
    assert_string_equal(buf, "../shared/tokenizer/gpt2");
    assert_int_equal(sgt_tokenizer_resolve_dir("/a/long/name", buf, 5), -ENAMETOOLONG);
    if (saved_tok) setenv("SGT_TOKENIZER", saved_tok, 1);
    if (saved_shared) setenv("SGT_SHARED", saved_shared, 1);
    free(saved_tok);
    free(saved_shared);
}

int main(void) {
    if (sgt_tokenizer_resolve_dir(NULL, g_dir, sizeof g_dir)) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_encodings),
        cmocka_unit_test(test_special_tokens),
        cmocka_unit_test(test_invalid_utf8_pieces),
        cmocka_unit_test(test_random_bytes_roundtrip),
        cmocka_unit_test(test_word_cache_consistent),
        cmocka_unit_test(test_decode_bad_id),
    };
    const struct CMUnitTest standalone[] = {
        cmocka_unit_test(test_heap_bpe_matches_naive),
        cmocka_unit_test(test_utf8_validator),
        cmocka_unit_test(test_missing_dir_is_an_error),
        cmocka_unit_test(test_malformed_files_are_errors),
        cmocka_unit_test(test_resolve_dir),
    };
    int failed = cmocka_run_group_tests_name("tokenizer", tests, setup, teardown);
    failed += cmocka_run_group_tests_name("tokenizer_standalone", standalone, NULL, NULL);
    return failed ? 1 : 0;
}
