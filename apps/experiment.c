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

cJSON *exp_config_to_json(const gpt_config *c) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "preset", c->name);
    cJSON_AddNumberToObject(j, "n_layers", (double)c->n_layers);
    cJSON_AddNumberToObject(j, "d_model", (double)c->d_model);
    cJSON_AddNumberToObject(j, "n_heads", (double)c->n_heads);
    cJSON_AddNumberToObject(j, "d_ff", (double)c->d_ff);
    cJSON_AddNumberToObject(j, "vocab", (double)c->vocab);
    cJSON_AddNumberToObject(j, "ctx_len", (double)c->ctx_len);
    cJSON_AddBoolToObject(j, "sparse", c->sparse);
    cJSON_AddNumberToObject(j, "num_blocks", (double)c->num_blocks);
    cJSON_AddNumberToObject(j, "block_size", (double)c->block_size);
    cJSON_AddNumberToObject(j, "top_k", (double)c->top_k);
    if (c->sparse) cJSON_AddStringToObject(j, "router", nn_router_kind_name(c->router));
    cJSON_AddBoolToObject(j, "tie_head", c->tie_head);
    cJSON_AddNumberToObject(j, "init_std", c->init_std);
    cJSON_AddNumberToObject(j, "norm_eps", c->norm_eps);
    return j;
}

int exp_config_from_json(const cJSON *j, gpt_config *c, char *err, size_t errn) {
    memset(c, 0, sizeof *c);
#define NUM(field)                                                                  \
    do {                                                                            \
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, #field);               \
        if (!cJSON_IsNumber(x)) {                                                   \
            snprintf(err, errn, "model config: field '%s' missing or not a number", #field); \
            return -1;                                                              \
        }                                                                           \
        c->field = (__typeof__(c->field))x->valuedouble;                            \
    } while (0)
    NUM(n_layers); NUM(d_model); NUM(n_heads); NUM(d_ff); NUM(vocab); NUM(ctx_len);
    NUM(num_blocks); NUM(block_size); NUM(top_k); NUM(init_std); NUM(norm_eps);
#undef NUM
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "sparse"), *t = cJSON_GetObjectItemCaseSensitive(j, "tie_head");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "preset");
    if (!cJSON_IsBool(s) || !cJSON_IsBool(t) || !cJSON_IsString(p)) {
        snprintf(err, errn, "model config: 'sparse', 'tie_head' or 'preset' missing");
        return -1;
    }
    c->sparse = cJSON_IsTrue(s);
    c->tie_head = cJSON_IsTrue(t);
    /* "router": absent in checkpoints older than the router variants, which are all the seed's */
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "router");
    if (r && (!cJSON_IsString(r) || nn_router_kind_parse(r->valuestring, &c->router))) {
        snprintf(err, errn, "model config: 'router' must be one of %s", NN_ROUTER_KIND_NAMES);
        return -1;
    }
    snprintf(c->name, sizeof c->name, "%s", p->valuestring);
    return gpt_config_validate(c, err, errn);
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

sgt_dtype exp_compute_dtype(const char *precision, sgt_device dev) {
    return !strcmp(precision, "bf16") || (!strcmp(precision, "auto") && dev == SGT_CUDA) ? SGT_BF16 : SGT_F32;
}

double exp_val_nll(sgt_ctx *c, const gpt_model *m, const uint16_t *tokens, uint64_t n, int64_t B, int64_t T,
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
    int rows;
    while ((rows = sgt_val_iter_next(&it, (int)B, buf)) > 0) {
        if (max_tokens > 0 && count >= max_tokens) break;
        sgt_arena_mark mark = sgt_arena_get_mark(c->arena);
        sgt_tensor *all = sgt_from_i32(c, SGT_SHAPE(rows, T + 1), buf);
        sgt_tensor *x = sgt_contiguous(c, sgt_narrow(c, all, 1, 0, T));
        sgt_tensor *y = sgt_contiguous(c, sgt_narrow(c, all, 1, 1, T));
        gpt_forward_opts o = {.targets = y, .token_nll = window_nll != NULL};
        gpt_output out = gpt_forward(c, m, x, &o);
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
