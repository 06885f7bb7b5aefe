/* fuzz_jsonl.c: the JSONL reader (apps/data/jsonl.c), the UTF-8 check and the GPT-2 tokenizer
 * (apps/data/tokenizer.c). Each input is a whole JSONL file; every document it yields must be
 * valid UTF-8 of the stated length, and must come back unchanged from decode(encode(text)), with
 * and without special tokens. The raw input bytes (any bytes, invalid UTF-8 included) go through
 * encode/decode too. The tokenizer is GPT-2's, from $SGT_SHARED/tokenizer/gpt2 (or ../shared). */
#include "fuzz_common.h"
#include "fuzz_tokenizer.h"
#include "jsonl.h"
#include "tokenizer.h"

static sgt_tokenizer *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    g_tok = fz_tokenizer("fuzz_jsonl");
    return 0;
}

static void roundtrip(const void *text, size_t len, bool special) {
    sgt_tok_ids ids = {0};
    sgt_tok_bytes back = {0};
    char err[256];
    int rc = special ? sgt_tokenizer_encode_special(g_tok, text, len, &ids) : sgt_tokenizer_encode(g_tok, text, len, &ids);
    if (rc) abort();
    for (size_t i = 0; i < ids.len; i++)
        if (ids.data[i] < 0 || ids.data[i] >= sgt_tokenizer_vocab_size(g_tok)) abort();
    if (sgt_tokenizer_decode(g_tok, ids.data, ids.len, &back, err, sizeof err)) abort();
    if (back.len != len || (len && memcmp(back.data, text, len))) abort();
    sgt_tok_ids_free(&ids);
    sgt_tok_bytes_free(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 65536) return 0;
    /* the tokenizer on raw bytes */
    size_t v = sgt_utf8_valid_prefix(data, size);
    if (v > size) abort();
    roundtrip(data, size, false);
    roundtrip(data, size, true);

    char path[512], err[512];
    fz_write("in.jsonl", data, size, path, sizeof path);
    sgt_jsonl *r = NULL;
    if (sgt_jsonl_open(path, NULL, &r, err, sizeof err) != 0) {
        if (r || !strstr(err, path)) abort();
        return 0;
    }
    const char *text;
    size_t len;
    int rc;
    uint64_t docs = 0;
    while ((rc = sgt_jsonl_next(r, &text, &len, err, sizeof err)) == 1) {
        if (strlen(text) != len || sgt_utf8_valid_prefix(text, len) != len) abort();
        roundtrip(text, len, false);
        docs++;
    }
    if (rc != 0) abort(); /* a regular file must not fail mid-read */
    const sgt_jsonl_stats *s = sgt_jsonl_stats_of(r);
    if (s->docs != docs || docs == 0) abort();
    if (s->docs + s->empty_lines + s->bad_json + s->missing_field + s->bad_utf8 != s->lines) abort();
    sgt_jsonl_close(r);
    return 0;
}
