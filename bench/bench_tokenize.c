/* bench_tokenize.c: GPT-2 encode throughput of apps/data/tokenizer.c on JSONL documents, on one
 * or several threads (one tokenizer per thread, documents handed out dynamically), and a dump of
 * the ids for an identity check. Driver: bench/tokenizer_vs_tiktoken.py, against tiktoken.
 *
 *   bench_tokenize --tokenizer DIR [--threads N] [--rounds R] [--dump OUT] FILE.jsonl...
 *
 * --dump OUT writes one line per document, its ids (encode_ordinary: "<|endoftext|>" is text)
 * separated by spaces, and exits. Otherwise one untimed pass warms the word caches, then R timed
 * passes print "round i: BYTES bytes TOKENS tokens S s", then "median: MB/s tokens/s". */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../apps/data/jsonl.h"
#include "../apps/data/tokenizer.h"
#include "bench_util.h"

typedef struct {
    char **text;
    size_t *len, n, cap, bytes;
} doc_set;

static void die(const char *msg, const char *what) {
    fprintf(stderr, "bench_tokenize: %s%s\n", msg, what ? what : "");
    exit(1);
}

static void read_docs(const char *path, doc_set *d) {
    sgt_jsonl *r;
    char err[512];
    if (sgt_jsonl_open(path, "text", &r, err, sizeof err)) die(err, NULL);
    const char *text;
    size_t len;
    int rc;
    while ((rc = sgt_jsonl_next(r, &text, &len, err, sizeof err)) == 1) {
        if (d->n == d->cap) {
            d->cap = d->cap ? d->cap * 2 : 1024;
            d->text = realloc(d->text, d->cap * sizeof *d->text);
            d->len = realloc(d->len, d->cap * sizeof *d->len);
            if (!d->text || !d->len) die("out of memory reading ", path);
        }
        d->text[d->n] = malloc(len ? len : 1);
        if (!d->text[d->n]) die("out of memory reading ", path);
        memcpy(d->text[d->n], text, len);
        d->len[d->n++] = len;
        d->bytes += len;
    }
    sgt_jsonl_close(r);
    if (rc < 0) die(err, NULL);
}

/* one pass over all documents on `nt` threads; returns the token count */
static uint64_t encode_all(sgt_tokenizer **tok, sgt_tok_ids *ids, int nt, const doc_set *d) {
    uint64_t n_tokens = 0;
    int oom = 0;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 16) reduction(+ : n_tokens, oom)
    for (size_t i = 0; i < d->n; i++) {
        int me = omp_get_thread_num();
        ids[me].len = 0;
        oom += sgt_tokenizer_encode(tok[me], d->text[i], d->len[i], &ids[me]) != 0;
        n_tokens += ids[me].len;
    }
    if (oom) die("out of memory encoding", NULL);
    return n_tokens;
}

int main(int argc, char **argv) {
    const char *dir_flag = NULL, *dump = NULL;
    int nt = 1, rounds = 5;
    doc_set d = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_value = i + 1 < argc;
        if (!strcmp(a, "--tokenizer") && has_value) dir_flag = argv[++i];
        else if (!strcmp(a, "--dump") && has_value) dump = argv[++i];
        else if (!strcmp(a, "--threads") && has_value) nt = atoi(argv[++i]);
        else if (!strcmp(a, "--rounds") && has_value) rounds = atoi(argv[++i]);
        else if (a[0] == '-') die("unknown argument or missing value: ", a);
        else read_docs(a, &d);
    }
    if (nt < 1 || rounds < 1) die("--threads and --rounds must be >= 1", NULL);
    if (!d.n) die("no documents (give one or more FILE.jsonl)", NULL);
    char dir[4096], err[1024];
    if (sgt_tokenizer_resolve_dir(dir_flag, dir, sizeof dir)) die("--tokenizer too long", NULL);
    sgt_tokenizer **tok = calloc((size_t)nt, sizeof *tok);
    sgt_tok_ids *ids = calloc((size_t)nt, sizeof *ids);
    if (!tok || !ids) die("out of memory", NULL);
    for (int k = 0; k < nt; k++)
        if (sgt_tokenizer_load(dir, &tok[k], err, sizeof err)) die(err, NULL);

    if (dump) {
        FILE *f = fopen(dump, "w");
        if (!f) die("cannot create --dump file ", dump);
        for (size_t i = 0; i < d.n; i++) {
            ids[0].len = 0;
            if (sgt_tokenizer_encode(tok[0], d.text[i], d.len[i], &ids[0])) die("out of memory", NULL);
            for (size_t j = 0; j < ids[0].len; j++) fprintf(f, j ? " %d" : "%d", (int)ids[0].data[j]);
            fputc('\n', f);
        }
        if (fclose(f)) die("write error on ", dump);
    } else {
        double *secs = malloc((size_t)rounds * sizeof *secs);
        if (!secs) die("out of memory", NULL);
        uint64_t n_tokens = encode_all(tok, ids, nt, &d); /* warm-up: fills the word caches */
        for (int r = 0; r < rounds; r++) {
            double t0 = bench_now();
            n_tokens = encode_all(tok, ids, nt, &d);
            secs[r] = bench_now() - t0;
            printf("round %d: %zu bytes %llu tokens %.6f s\n", r + 1, d.bytes,
                   (unsigned long long)n_tokens, secs[r]);
        }
        double med = bench_median_sorted(secs, rounds);
        printf("median: %.3f MB/s %.0f tokens/s (threads %d, %zu documents)\n",
               (double)d.bytes / 1e6 / med, (double)n_tokens / med, nt, d.n);
        free(secs);
    }
    for (int k = 0; k < nt; k++) {
        sgt_tokenizer_free(tok[k]);
        sgt_tok_ids_free(&ids[k]);
    }
    for (size_t i = 0; i < d.n; i++) free(d.text[i]);
    free(d.text);
    free(d.len);
    free(tok);
    free(ids);
    return 0;
}
