/* fuzz_token_cache.c: the token cache reader (apps/data/token_cache.c). Each input is a cache
 * file put beside a small fixed dataset. So that the fuzzer reaches the checks behind the key
 * and the payload hash, the harness stamps the dataset's real key and (when the sizes agree)
 * the true payload hash into the input's header when its first byte is odd; an even first byte
 * leaves the input as it is. Then sgt_token_cache_build_or_load must either load a cache whose
 * every offset and id is in range, or rebuild one, and never read outside the file.
 * The header layout below is token_cache.c's file_header (version 1), which it must match. */
#include <fcntl.h>
#include <unistd.h>
#include "fuzz_common.h"
#include "fuzz_tokenizer.h"
#include "token_cache.h"

enum { H_SIZE = 256, H_NTOK = 16, H_NDOCS = 24, H_KEY = 32, H_HASH = 80 };

static sgt_tokenizer *g_tok;
static char g_data[512];
static sgt_token_cache_key g_key;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_tok = fz_tokenizer("fuzz_token_cache");
    char err[512];
    static const char jsonl[] = "{\"text\": \"Hello world\"}\n{\"text\": \"a b\"}\n";
    fz_write("data.jsonl", jsonl, sizeof jsonl - 1, g_data, sizeof g_data);
    if (sgt_token_cache_key_of(g_data, NULL, g_tok, &g_key, err, sizeof err)) {
        fprintf(stderr, "fuzz_token_cache: %s\n", err);
        exit(1);
    }
    return 0;
}

static uint64_t rd64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 1 << 20) return 0;
    uint8_t *b = malloc(size ? size : 1);
    memcpy(b, data, size);
    if (size >= H_SIZE && (b[0] & 1)) {
        b[0] = 'S';
        memcpy(b + H_KEY, &g_key, sizeof g_key);
        uint64_t nt = rd64(b + H_NTOK), nd = rd64(b + H_NDOCS);
        uint64_t treg = (nt * 2 + 7) & ~(uint64_t)7;
        if (nt < size && nd < size && H_SIZE + treg + (nd + 1) * 8 == size) {
            sgt_xxh64 h;
            sgt_xxh64_init(&h, 0);
            sgt_xxh64_update(&h, b + H_SIZE, nt * 2);
            sgt_xxh64_update(&h, b + H_SIZE + treg, (nd + 1) * 8);
            uint64_t d = sgt_xxh64_digest(&h);
            memcpy(b + H_HASH, &d, 8);
        }
    }
    char path[512], err[512];
    fz_write("data.tokcache", b, size, path, sizeof path);
    free(b);
    /* the warnings of a rebuild go to stderr: silence them while fuzzing, by pointing file
     * descriptor 2 at /dev/null (not the stderr pointer: the OpenMP runtime, started by the build's
     * first parallel region, keeps the FILE it finds there, and a closed one crashed it at exit) */
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    if (saved >= 0 && null >= 0) dup2(null, 2);
    sgt_token_cache c;
    int rc = sgt_token_cache_build_or_load(g_data, NULL, g_tok, path, false, &c, err, sizeof err);
    fflush(stderr);
    if (saved >= 0 && null >= 0) dup2(saved, 2);
    if (saved >= 0) close(saved);
    if (null >= 0) close(null);
    if (rc) {
        fprintf(stderr, "fuzz_token_cache: %s\n", err);
        abort(); /* the dataset is fine: a bad cache is rebuilt, never an error */
    }
    if (c.n_docs != 2 || c.doc_offsets[0] != 0 || c.doc_offsets[c.n_docs] != c.n_tokens) abort();
    uint64_t sum = 0;
    for (uint64_t i = 0; i < c.n_tokens; i++) sum += c.tokens[i];
    for (uint64_t d = 0; d < c.n_docs; d++)
        if (c.doc_offsets[d + 1] <= c.doc_offsets[d] || c.tokens[c.doc_offsets[d + 1] - 1] != c.eot) abort();
    (void)sum;
    sgt_token_cache_close(&c);
    return 0;
}
