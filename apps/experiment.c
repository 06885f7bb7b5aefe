/* experiment.c: the shared pieces of apps/train and apps/eval (see experiment.h). */
#include "experiment.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../autograd/tape.h"

double exp_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int exp_mkdirs(const char *path, char *err, size_t errn) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST) {
            snprintf(err, errn, "cannot create directory %s: %s", buf, strerror(errno));
            return -1;
        }
        *p = '/';
    }
    if (mkdir(buf, 0755) && errno != EEXIST) {
        snprintf(err, errn, "cannot create directory %s: %s", buf, strerror(errno));
        return -1;
    }
    return 0;
}

int exp_data_open(exp_data *d, const char *dataset, const char *text_field, const char *tok_dir,
                  const char *output_dir, double val_fraction, uint64_t min_val_tokens, bool progress, char *err,
                  size_t errn) {
    memset(d, 0, sizeof *d);
    char dir[4096], e2[512];
    if (sgt_tokenizer_resolve_dir(tok_dir, dir, sizeof dir) < 0) {
        snprintf(err, errn, "cannot resolve the tokenizer directory");
        return -1;
    }
    if (sgt_tokenizer_load(dir, &d->tok, e2, sizeof e2) < 0) {
        snprintf(err, errn, "%s", e2);
        return -1;
    }
    char cdir[4096];
    if (snprintf(cdir, sizeof cdir, "%s/cache", output_dir) >= (int)sizeof cdir) {
        snprintf(err, errn, "--output_dir: path too long");
        return -1;
    }
    if (exp_mkdirs(cdir, err, errn)) return -1;
    const char *base = strrchr(dataset, '/');
    base = base ? base + 1 : dataset;
    if (snprintf(d->cache_path, sizeof d->cache_path, "%s/%s.tokens", cdir, base) >= (int)sizeof d->cache_path) {
        snprintf(err, errn, "--output_dir: path too long");
        return -1;
    }
    if (sgt_token_cache_build_or_load(dataset, text_field, d->tok, d->cache_path, progress, &d->cache, e2,
                                      sizeof e2) < 0) {
        snprintf(err, errn, "%s", e2);
        return -1;
    }
    if (sgt_split_by_doc(d->cache.tokens, d->cache.n_tokens, d->cache.doc_offsets, d->cache.n_docs, val_fraction,
                         min_val_tokens, &d->split, e2, sizeof e2) < 0) {
        snprintf(err, errn, "%s: %s", dataset, e2);
        return -1;
    }
    return 0;
}

void exp_data_close(exp_data *d) {
    sgt_token_cache_close(&d->cache);
    if (d->tok) sgt_tokenizer_free(d->tok);
    memset(d, 0, sizeof *d);
}

int exp_model_config(gpt_config *cfg, const char *preset, bool sparse, int64_t num_blocks, int64_t block_size,
                     int64_t top_k, int64_t seq_len, char *err, size_t errn) {
    if (gpt_preset(preset, cfg)) {
        snprintf(err, errn, "--config: unknown preset '%s' (known: %s)", preset, gpt_preset_names());
        return -1;
    }
    cfg->sparse = sparse;
    if (num_blocks > 0) cfg->num_blocks = num_blocks;
    if (block_size > 0) cfg->block_size = block_size;
    if (top_k > 0) cfg->top_k = top_k;
    if (seq_len > cfg->ctx_len) {
        snprintf(err, errn, "--seq_len %lld exceeds the context length %lld of preset '%s'", (long long)seq_len,
                 (long long)cfg->ctx_len, preset);
        return -1;
    }
    if (sparse && (num_blocks > 0 || block_size > 0)) cfg->d_ff = cfg->num_blocks * cfg->block_size;
    return gpt_config_validate(cfg, err, errn);
}

bool exp_quiet;

int exp_resolve_device(const char *flag, sgt_device *dev, char *err, size_t errn) {
    bool have_cuda = sgt_device_available(SGT_CUDA);
    if (!strcmp(flag, "cpu")) *dev = SGT_CPU;
    else if (!strcmp(flag, "cuda")) {
        if (!have_cuda) {
#ifdef SGT_HAVE_CUDA
            snprintf(err, errn, "--device cuda: no usable CUDA device (no GPU or no driver found); use --device cpu or auto");
#else
            snprintf(err, errn, "--device cuda: this build has no CUDA backend (nvcc was not found when it was configured)");
#endif
            return -1;
        }
        *dev = SGT_CUDA;
    } else {
        *dev = have_cuda ? SGT_CUDA : SGT_CPU;
        if (!have_cuda && !exp_quiet) fprintf(stderr, "device auto: no CUDA device available, running on the CPU\n");
    }
    const char *note = *dev == SGT_CPU ? sgt_cpu_blas_note() : NULL;
    if (note && !exp_quiet) fprintf(stderr, "note: %s\n", note);
    return 0;
}

sgt_dtype exp_compute_dtype(const char *precision, sgt_device dev, const sgt_model_arch *arch) {
    return !strcmp(precision, "bf16") || (!strcmp(precision, "auto") && dev == SGT_CUDA && arch->mixed_precision)
               ? SGT_BF16 : SGT_F32;
}

double exp_val_nll(sgt_ctx *c, sgt_model *m, const uint16_t *tokens, uint64_t n, int64_t B, int64_t T,
                   int64_t max_tokens, int64_t *n_predicted, double *window_nll, int64_t *n_windows) {
    sgt_val_iter it;
    sgt_val_iter_init(&it, tokens, n, (int)T);
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)(B * (T + 1)));
    SGT_CHECK(buf, "out of host memory for validation batches");
    float *tok_nll = window_nll ? malloc(sizeof(float) * (size_t)(B * T)) : NULL;
    SGT_CHECK(!window_nll || tok_nll, "out of host memory for validation batches");
    double total = 0;
    int64_t count = 0, nw = 0;
    sgt_op_observer obs = c->observer;
    c->observer = NULL; /* no tape: evaluation only */
    const bool was_train = m->mode && m->mode->train;
    sgt_model_set_train(m, false);
    int rows;
    while ((rows = sgt_val_iter_next(&it, (int)B, buf)) > 0) {
        if (max_tokens > 0 && count >= max_tokens) break;
        sgt_arena_mark mark = sgt_arena_get_mark(c->arena);
        sgt_tensor *all = sgt_from_i32(c, SGT_SHAPE(rows, T + 1), buf);
        sgt_tensor *x = sgt_contiguous(c, sgt_narrow(c, all, 1, 0, T));
        sgt_tensor *y = sgt_contiguous(c, sgt_narrow(c, all, 1, 1, T));
        sgt_model_fwd o = {.targets = y, .token_nll = window_nll != NULL};
        sgt_model_out out = sgt_model_forward(c, m, x, &o);
        double nll = sgt_item(out.ce);
        if (window_nll) {
            sgt_copy_to_host(out.token_nll, tok_nll);
            for (int r = 0; r < rows; r++, nw++) {
                double s = 0;
                for (int64_t t = 0; t < T; t++) s += tok_nll[r * T + t];
                window_nll[nw] = s / (double)T;
            }
        }
        total += nll * (double)(rows * T);
        count += rows * T;
        sgt_arena_rewind(c->arena, mark);
    }
    c->observer = obs;
    sgt_model_set_train(m, was_train);
    free(buf);
    free(tok_nll);
    if (n_predicted) *n_predicted = count;
    if (n_windows) *n_windows = nw;
    return count ? total / (double)count : NAN;
}

int exp_file_open(exp_file *o, const char *path, char *err, size_t errn) {
    snprintf(o->path, sizeof o->path, "%s", path);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp.%d", path, (int)getpid());
    if (!(o->f = fopen(o->tmp, "w"))) {
        snprintf(err, errn, "%s: cannot write: %s", o->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

int exp_file_commit(exp_file *o, char *err, size_t errn) {
    errno = 0;
    bool ok = !ferror(o->f) && fflush(o->f) == 0 && fsync(fileno(o->f)) == 0;
    int e = errno;
    if (fclose(o->f) != 0 && ok) ok = false, e = errno;
    o->f = NULL;
    if (ok && rename(o->tmp, o->path)) ok = false, e = errno;
    if (!ok) {
        snprintf(err, errn, "%s: write failed: %s", o->path, e ? strerror(e) : "I/O error");
        unlink(o->tmp);
        return -1;
    }
    return 0;
}

int exp_write_json(const char *path, const cJSON *doc, char *err, size_t errn) {
    char *text = cJSON_Print(doc);
    if (!text) {
        snprintf(err, errn, "%s: out of memory rendering JSON", path);
        return -1;
    }
    exp_file o;
    if (exp_file_open(&o, path, err, errn)) {
        free(text);
        return -1;
    }
    fputs(text, o.f);
    fputc('\n', o.f);
    free(text);
    return exp_file_commit(&o, err, errn);
}

cJSON *exp_read_json(const char *path, char *err, size_t errn) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errn, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, errn, "%s: read failed", path);
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) snprintf(err, errn, "%s: not valid JSON", path);
    return j;
}
