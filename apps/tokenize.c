/* tokenize.c: the `tokenize` command: GPT-2 BPE encode (text -> ids), decode (ids -> text), and a
 * throughput benchmark, on stdin or a file. Run `tokenize --help` for usage. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonl.h"
#include "tokenizer.h"

static const char USAGE[] =
    "usage: tokenize [options]\n"
    "GPT-2 byte-level BPE. Reads stdin (or --file) and writes stdout.\n"
    "  (default)          encode: print the token ids, separated by spaces\n"
    "  --decode           decode: read whitespace-separated ids, print the text bytes\n"
    "  --file F           read F instead of stdin\n"
    "  --tokenizer DIR    directory with encoder.json and vocab.bpe (default: $SGT_TOKENIZER,\n"
    "                     else $SGT_SHARED/tokenizer/gpt2, else ../shared/tokenizer/gpt2)\n"
    "  --allowed_special  encode \"<|endoftext|>\" in the text as the special token 50256\n"
    "  --bench            time encoding of --file and print MB/s (a .jsonl file is read as\n"
    "                     documents, field --text_field; any other file as raw bytes)\n"
    "  --text_field NAME  JSONL field holding the text for --bench (default \"text\")\n"
    "  --naive_bpe        use the naive reference BPE loop (for checking and benchmarks)\n"
    "  --help             show this help\n";

typedef struct {
    const char *file, *tokenizer, *text_field;
    bool decode, allowed_special, bench, naive;
} options;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Returns 0, 1 for --help, or 2 after printing a usage error. */
static int parse_args(int argc, char **argv, options *o) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **value = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return 1;
        else if (!strcmp(a, "--decode")) o->decode = true;
        else if (!strcmp(a, "--allowed_special")) o->allowed_special = true;
        else if (!strcmp(a, "--bench")) o->bench = true;
        else if (!strcmp(a, "--naive_bpe")) o->naive = true;
        else if (!strcmp(a, "--file")) value = &o->file;
        else if (!strcmp(a, "--tokenizer")) value = &o->tokenizer;
        else if (!strcmp(a, "--text_field")) value = &o->text_field;
        else {
            fprintf(stderr, "tokenize: unknown argument '%s' (see --help)\n", a);
            return 2;
        }
        if (value) {
            if (i + 1 >= argc) {
                fprintf(stderr, "tokenize: %s needs a value (see --help)\n", a);
                return 2;
            }
            *value = argv[++i];
        }
    }
    if (o->decode && (o->bench || o->allowed_special)) {
        fprintf(stderr, "tokenize: --decode cannot be combined with --bench or --allowed_special\n");
        return 2;
    }
    if (o->bench && !o->file) {
        fprintf(stderr, "tokenize: --bench needs --file F\n");
        return 2;
    }
    return 0;
}

static int read_all(const char *path, char **buf, size_t *len) {
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "tokenize: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    char *d = malloc(cap);
    for (;;) {
        if (!d) break;
        if (n == cap) {
            char *nd = realloc(d, cap * 2);
            if (!nd) {
                free(d);
                d = NULL;
                break;
            }
            d = nd;
            cap *= 2;
        }
        size_t got = fread(d + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    if (path) fclose(f);
    if (!d || bad) {
        fprintf(stderr, "tokenize: %s reading %s\n", d ? "read error" : "out of memory",
                path ? path : "stdin");
        free(d);
        return 1;
    }
    *buf = d;
    *len = n;
    return 0;
}

static int run_encode(sgt_tokenizer *t, const options *o) {
    char *text;
    size_t len;
    if (read_all(o->file, &text, &len)) return 1;
    sgt_tok_ids ids = {0};
    int rc = o->allowed_special ? sgt_tokenizer_encode_special(t, text, len, &ids)
                                : sgt_tokenizer_encode(t, text, len, &ids);
    free(text);
    if (rc) {
        fprintf(stderr, "tokenize: out of memory encoding\n");
        return 1;
    }
    for (size_t i = 0; i < ids.len; i++) printf(i ? " %d" : "%d", (int)ids.data[i]);
    printf("\n");
    sgt_tok_ids_free(&ids);
    return fflush(stdout) ? 1 : 0;
}

static int run_decode(sgt_tokenizer *t, const options *o) {
    char *text;
    size_t len;
    if (read_all(o->file, &text, &len)) return 1;
    sgt_tok_ids ids = {0};
    int rc = 0;
    for (size_t i = 0; i < len && !rc;) {
        while (i < len && strchr(" \t\r\n\v\f", text[i]) && text[i]) i++;
        if (i == len) break;
        size_t j = i;
        while (j < len && text[j] >= '0' && text[j] <= '9' && j - i < 10) j++;
        bool end_ok = j == len || (text[j] && strchr(" \t\r\n\v\f", text[j]));
        long v = j > i ? strtol(text + i, NULL, 10) : -1;
        if (!end_ok || j == i || v > INT32_MAX) {
            size_t k = i;
            while (k < len && k - i < 20 && !strchr(" \t\r\n\v\f", text[k])) k++;
            fprintf(stderr, "tokenize: --decode: '%.*s' at byte %zu is not a token id\n",
                    (int)(k - i), text + i, i);
            rc = 1;
            break;
        }
        if (sgt_tok_ids_push(&ids, (int32_t)v)) rc = 1;
        i = j;
    }
    free(text);
    sgt_tok_bytes out = {0};
    char err[512];
    if (!rc && sgt_tokenizer_decode(t, ids.data, ids.len, &out, err, sizeof err)) {
        fprintf(stderr, "tokenize: %s\n", err);
        rc = 1;
    }
    if (!rc && out.len && fwrite(out.data, 1, out.len, stdout) != out.len) rc = 1;
    sgt_tok_ids_free(&ids);
    sgt_tok_bytes_free(&out);
    return rc || fflush(stdout) ? 1 : 0;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static int run_bench(sgt_tokenizer *t, const options *o, double load_s) {
    /* gather the documents first so the timing covers encoding only */
    char **docs = NULL;
    size_t *lens = NULL, n_docs = 0, cap = 0, bytes = 0;
    if (ends_with(o->file, ".jsonl")) {
        sgt_jsonl *r;
        char err[512];
        if (sgt_jsonl_open(o->file, o->text_field, &r, err, sizeof err)) {
            fprintf(stderr, "tokenize: %s\n", err);
            return 1;
        }
        const char *text;
        size_t len;
        int rc;
        while ((rc = sgt_jsonl_next(r, &text, &len, err, sizeof err)) == 1) {
            if (n_docs == cap) {
                cap = cap ? cap * 2 : 1024;
                docs = realloc(docs, cap * sizeof *docs);
                lens = realloc(lens, cap * sizeof *lens);
                if (!docs || !lens) {
                    fprintf(stderr, "tokenize: out of memory\n");
                    return 1;
                }
            }
            docs[n_docs] = malloc(len + 1);
            if (!docs[n_docs]) {
                fprintf(stderr, "tokenize: out of memory\n");
                return 1;
            }
            memcpy(docs[n_docs], text, len);
            lens[n_docs++] = len;
            bytes += len;
        }
        sgt_jsonl_close(r);
        if (rc < 0) {
            fprintf(stderr, "tokenize: %s\n", err);
            return 1;
        }
    } else {
        docs = malloc(sizeof *docs);
        lens = malloc(sizeof *lens);
        if (!docs || !lens || read_all(o->file, &docs[0], &lens[0])) return 1;
        n_docs = 1;
        bytes = lens[0];
    }
    sgt_tok_ids ids = {0};
    printf("bench: %s: %zu documents, %.3f MB of text; tokenizer load %.3f s%s\n", o->file, n_docs,
           (double)bytes / 1e6, load_s, o->naive ? " (naive BPE)" : "");
    for (int pass = 0; pass < 2; pass++) {
        uint64_t n_tokens = 0, h0, m0, h1, m1;
        sgt_tokenizer_cache_stats(t, &h0, &m0);
        double t0 = now_s();
        for (size_t d = 0; d < n_docs; d++) {
            ids.len = 0;
            int rc = o->allowed_special ? sgt_tokenizer_encode_special(t, docs[d], lens[d], &ids)
                                        : sgt_tokenizer_encode(t, docs[d], lens[d], &ids);
            if (rc) {
                fprintf(stderr, "tokenize: out of memory encoding\n");
                return 1;
            }
            n_tokens += ids.len;
        }
        double dt = now_s() - t0;
        sgt_tokenizer_cache_stats(t, &h1, &m1);
        double hit = (h1 - h0) + (m1 - m0) ? 100.0 * (double)(h1 - h0) / (double)(h1 - h0 + m1 - m0)
                                           : 0.0;
        printf("bench: pass %d (%s word cache): %llu tokens in %.3f s: %.2f MB/s, %.0f tokens/s, "
               "%.2f bytes/token, cache hits %.1f%%\n",
               pass + 1, pass ? "warm" : "cold", (unsigned long long)n_tokens, dt,
               (double)bytes / 1e6 / dt, (double)n_tokens / dt,
               n_tokens ? (double)bytes / (double)n_tokens : 0.0, hit);
    }
    sgt_tok_ids_free(&ids);
    for (size_t d = 0; d < n_docs; d++) free(docs[d]);
    free(docs);
    free(lens);
    return 0;
}

int main(int argc, char **argv) {
    options o = {0};
    int pr = parse_args(argc, argv, &o);
    if (pr == 1) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (pr) return pr;
    char dir[4096], err[1024];
    if (sgt_tokenizer_resolve_dir(o.tokenizer, dir, sizeof dir)) {
        fprintf(stderr, "tokenize: tokenizer directory name too long\n");
        return 2;
    }
    sgt_tokenizer *t;
    double t0 = now_s();
    if (sgt_tokenizer_load(dir, &t, err, sizeof err)) {
        fprintf(stderr, "tokenize: %s\n", err);
        return 1;
    }
    double load_s = now_s() - t0;
    if (o.naive) sgt_tokenizer_set_naive_bpe(t, true);
    int rc = o.bench ? run_bench(t, &o, load_s) : o.decode ? run_decode(t, &o) : run_encode(t, &o);
    sgt_tokenizer_free(t);
    return rc;
}
