/* eval.c: apps/eval, the SGT v2 evaluation. Loads outputs/{dense,sparse}/checkpoint.safetensors,
 * answers the seed's five questions, writes outputs/eval_results.json, outputs/report.html with
 * two SVG pictures (loss curves; layer x block selection heat map) and prints a table:
 *
 *   1. perplexity parity   validation NLL and PPL of each model, the relative gap, each with a 95%
 *                          interval from a paired cluster bootstrap over documents (both models
 *                          scored on the same tokens; apps/bootstrap.h), and the verdict at 2%:
 *                          PASS (the interval at or below), FAIL (above), INCONCLUSIVE (straddles);
 *                          the predicted tokens, windows and documents scored are printed
 *                          (PPL = exp(mean NLL over every predicted token of the windows
 *                          0, T, 2T, ...; the last incomplete window is dropped; see experiment.h)
 *   2. training throughput tokens/s of each model from training_summary.json, router overhead
 *   3. decode latency      batch 1 with the KV cache: median and p90 ms/token, prefill tokens/s
 *   4. block utilisation   per layer: selection frequency of every block, normalised entropy,
 *                          coefficient of variation, max-violation (max load / mean - 1), dead
 *   5. learned structure   per layer: router confidence (logit margin between the k-th and
 *                          (k+1)-th block), overlap of selected sets between random token pairs
 *                          (Jaccard), token dependence (same-token overlap beyond chance), and a
 *                          plain-words verdict on whether routing depends on the layer
 *
 * A model of another architecture (models/model.h) that train wrote to outputs/<arch>/ (train
 * --config gpt2-tiny: outputs/gpt2/) is scored beside them on the same windows: its perplexity
 * with a 95% interval, its gap to the dense model with a paired interval, its training
 * throughput, and --sample text (decoded by full forwards: the KV-cache decoder and the
 * latency figures are the SGT GPT's). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../models/decoder.h"
#include "../nn/checkpoint.h"
#include "../tensor/rng.h"
#include "bootstrap.h"
#include "cli.h"
#include "experiment.h"

#define BOOT_REPS 2000 /* bootstrap resamples of the perplexity comparison */
#define BOOT_LEVEL 0.95
#define BOOT_MIN_DOCS 30 /* fewer documents than this: units are runs of windows instead */

#define FAIL(...) do { fprintf(stderr, "eval: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

typedef struct {
    const char *dataset, *eval_dataset, *output_dir, *device, *text_field, *tokenizer, *sample, *precision, *attention, *decode_weights;
    int64_t eval_tokens, batch_size, seq_len, decode_tokens, prompt_tokens, sample_tokens, threads, seed;
    double val_fraction, temperature;
} eval_args;

typedef struct {
    const char *kind;
    bool present;
    sgt_model *sm;
    gpt_model *m;  /* the SGT experiment's models (dense, sparse, dense_flop): sm's GPT */
    nn_params *p;
    double nll, ppl;
    int64_t predicted;
    double *window_nll; /* [windows] each scored window's mean NLL (for the bootstrap) */
    int64_t windows;
    double decode_ms_median, decode_ms_p90, prefill_tps;
    double skip_ms_median, skip_ms_p90, skip_prefill_tps; /* sparse: the block-skipping path */
} loaded_model;

/* The paired bootstrap of two models' window NLLs (wa, wb [nwin], the same windows): units are
 * documents when there are at least BOOT_MIN_DOCS of them, else runs of round(cbrt(nwin))
 * consecutive windows within a document (a moving-block bootstrap); *block gets 0 or that run.
 * Returns false (and warns) when there are fewer than 2 units. */
static bool paired_bootstrap(const double *wa, const double *wb, const int64_t *win_doc, int64_t nwin, uint64_t seed,
                             exp_bootstrap *bs, int64_t *block) {
    char err[512];
    double *ua = calloc((size_t)nwin + 1, sizeof(double)), *ub = calloc((size_t)nwin + 1, sizeof(double));
    int64_t *uc = calloc((size_t)nwin + 1, sizeof(int64_t)), nu = 0;
    if (!ua || !ub || !uc) FAIL("out of host memory");
    int64_t ndoc = 0;
    for (int64_t w = 0; w < nwin; w++) ndoc += w == 0 || win_doc[w] != win_doc[w - 1];
    const int64_t L = ndoc >= BOOT_MIN_DOCS ? INT64_MAX : (int64_t)fmax(1.0, round(cbrt((double)nwin)));
    for (int64_t w = 0, run = 0; w < nwin; w++, run++) {
        if (w == 0 || win_doc[w] != win_doc[w - 1] || run == L) nu++, run = 0;
        ua[nu - 1] += wa[w], ub[nu - 1] += wb[w], uc[nu - 1]++;
    }
    *block = L == INT64_MAX ? 0 : L;
    bool ok = nu >= 2;
    if (ok) {
        if (exp_paired_bootstrap(ua, ub, uc, nu, BOOT_REPS, BOOT_LEVEL, seed, bs, err, (int)sizeof err)) FAIL("%s", err);
    } else {
        fprintf(stderr, "eval: warning: the scored windows start in %lld document(s): no interval (evaluate more tokens)\n",
                (long long)nu);
    }
    free(ua), free(ub), free(uc);
    return ok;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Loads <dir>/<kind>/checkpoint.safetensors when it exists, its model rebuilt from the config in
 * its metadata; the experiment's kinds must be sgt-gpt models. */
static bool load_model(loaded_model *lm, const char *dir, sgt_device dev, const eval_args *a, sgt_dtype decode_weights,
                       bool experiment) {
    char path[4200], err[1024];
    snprintf(path, sizeof path, "%s/%s/checkpoint.safetensors", dir, lm->kind);
    struct stat st;
    if (stat(path, &st)) return false;
    char *meta = NULL;
    if (nn_read_metadata(path, &meta, err, sizeof err)) FAIL("%s", err);
    cJSON *mj = cJSON_Parse(meta);
    free(meta);
    const cJSON *cs = mj ? cJSON_GetObjectItemCaseSensitive(mj, "config") : NULL;
    cJSON *cj = cJSON_IsString(cs) ? cJSON_Parse(cs->valuestring) : NULL;
    const sgt_model_arch *arch = cj ? sgt_model_arch_of(cj, err, sizeof err) : NULL;
    if (!arch) FAIL("%s: no usable model config in the metadata (%s)", path, cj ? err : "missing");
    const sgt_model_runtime rt = {
        .compute = exp_compute_dtype(a->precision, dev, arch),
        .composed_attention = !strcmp(a->attention, "composed")};
    lm->p = nn_params_create(1, SGT_F32, dev);
    lm->p->skip_init = true;
    lm->sm = sgt_model_build(cj, &rt, lm->p, err, sizeof err);
    if (!lm->sm) FAIL("%s: %s", path, err);
    cJSON_Delete(cj);
    cJSON_Delete(mj);
    lm->m = sgt_model_gpt(lm->sm);
    if (experiment && !lm->m)
        FAIL("%s: a %s model, where eval expects the SGT experiment's sgt-gpt %s model", path, arch->name, lm->kind);
    if (nn_load_params(lm->p, path, err, sizeof err)) FAIL("%s", err);
    /* inference copies for the decoder (perplexity uses the f32 weights) */
    if (lm->m) gpt_prepare_decode(lm->m, decode_weights);
    lm->present = true;
    return true;
}

static void free_model(loaded_model *lm) {
    if (!lm->present) return;
    sgt_model_free(lm->sm);
    nn_params_destroy(lm->p);
    free(lm->window_nll);
}

/* A model's training tokens/s from training_summary.json (NAN when absent), also put in jt. */
static double summary_tps(const cJSON *sum, const char *kind, cJSON *jt) {
    const cJSON *mo = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sum, "models"), kind);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(mo, "tokens_per_s");
    if (!cJSON_IsNumber(v)) return NAN;
    cJSON_AddNumberToObject(jt, kind, v->valuedouble);
    return v->valuedouble;
}

/* Scores the windows (their NLLs kept for the bootstrap); T and the data as for every model. */
static void score(loaded_model *lm, sgt_ctx *ctx, const uint16_t *etok, uint64_t en, const eval_args *a, int64_t T) {
    lm->window_nll = malloc(sizeof(double) * (size_t)(en / (uint64_t)T + 1));
    if (!lm->window_nll) FAIL("out of host memory for %llu window losses", (unsigned long long)(en / (uint64_t)T));
    lm->nll = exp_val_nll(ctx, lm->sm, etok, en, a->batch_size, T, a->eval_tokens, &lm->predicted, lm->window_nll,
                          &lm->windows);
    lm->ppl = exp(lm->nll);
    sgt_arena_reset(ctx->arena);
}

/* greedy (temperature 0) or sampled next token from host logits l[V] */
static int32_t pick(const float *l, int64_t V, double temperature, uint64_t seed, uint64_t i) {
    int32_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (l[v] > l[best]) best = (int32_t)v;
    if (temperature <= 0) return best;
    double s = 0, u = sgt_rng_uniform_at(i, 77, seed);
    for (int64_t v = 0; v < V; v++) s += exp(((double)l[v] - l[best]) / temperature);
    double acc = 0;
    for (int64_t v = 0; v < V; v++) {
        acc += exp(((double)l[v] - l[best]) / temperature) / s;
        if (acc >= u) return (int32_t)v;
    }
    return best;
}

/* Prefills `prompt` then generates ngen tokens one at a time with the batch-1 decoder
 * (models/decoder.h: a device KV cache; on CUDA each step after the second is one replayed CUDA
 * graph). Per-token times in ms go to times[ngen]; returns the prefill time in seconds; generated
 * ids to out. The decoder computes in the weights' dtype (f32), whatever --precision says. */
static double decode_run(const gpt_model *m, const int32_t *prompt, int64_t np, int64_t ngen, double temperature,
                         uint64_t seed, double *times, int32_t *out) {
    gpt_decoder *d = gpt_decoder_create(m, np + ngen, true);
    const int64_t V = m->cfg.vocab;
    double t0 = exp_now();
    int32_t next = pick(gpt_decoder_prefill(d, prompt, np), V, temperature, seed, 0);
    double prefill = exp_now() - t0;
    for (int64_t i = 0; i < ngen; i++) {
        double t = exp_now();
        out[i] = next;
        next = pick(gpt_decoder_step(d, next), V, temperature, seed, (uint64_t)i + 1);
        times[i] = 1e3 * (exp_now() - t);
    }
    gpt_decoder_destroy(d);
    return prefill;
}

/* The same text for any model through the interface: each token from a full forward of the
 * sequence so far (no KV cache: quadratic, for a few dozen tokens of --sample). */
static void sample_full(const sgt_model *m, sgt_device dev, const int32_t *prompt, int64_t np, int64_t ngen,
                        double temperature, uint64_t seed, int32_t *out) {
    sgt_arena *a = sgt_arena_create("sample", dev, 0, 0);
    sgt_ctx c = {.arena = a, .device = dev};
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)(np + ngen));
    float *last = malloc(sizeof(float) * (size_t)m->vocab);
    if (!seq || !last) FAIL("out of host memory");
    memcpy(seq, prompt, sizeof(int32_t) * (size_t)np);
    for (int64_t i = 0; i < ngen; i++) {
        const int64_t n = np + i;
        sgt_tensor *lg = sgt_model_forward(&c, m, sgt_from_i32(&c, SGT_SHAPE(1, n), seq), NULL).logits;
        sgt_tensor *l = sgt_contiguous(&c, sgt_narrow(&c, sgt_reshape(&c, lg, SGT_SHAPE(n, m->vocab)), 0, n - 1, 1));
        sgt_copy_to_host(l->dtype == SGT_F32 ? l : sgt_cast(&c, l, SGT_F32), last);
        seq[n] = out[i] = pick(last, m->vocab, temperature, seed, (uint64_t)i);
        sgt_arena_reset(a);
    }
    free(seq);
    free(last);
    sgt_arena_destroy(a);
}

/* ---- routing statistics of the sparse model on evaluation windows ---- */

typedef struct {
    int64_t L, nb, k, ntok;
    double *count;      /* [L, nb] */
    double *margin;     /* [L] sum of k-th minus (k+1)-th logit */
    uint8_t *sel;       /* [L, ntok, nb] 0/1 */
    int32_t *tok;       /* [ntok] input token ids */
} route_stats;

static void collect_routes(route_stats *rs, const gpt_model *m, sgt_device dev, const uint16_t *tokens, uint64_t n,
                           int64_t B, int64_t T, int64_t max_tokens) {
    const gpt_config *cfg = &m->cfg;
    rs->L = cfg->n_layers;
    rs->nb = cfg->num_blocks;
    rs->k = cfg->top_k;
    int64_t cap = max_tokens > 0 ? max_tokens : (int64_t)n;
    if (cap > 16384) cap = 16384; /* enough for stable statistics */
    rs->count = calloc((size_t)(rs->L * rs->nb), sizeof(double));
    rs->margin = calloc((size_t)rs->L, sizeof(double));
    rs->sel = calloc((size_t)(rs->L * (cap + B * T) * rs->nb), 1);
    rs->tok = calloc((size_t)(cap + B * T), sizeof(int32_t));
    rs->ntok = 0;
    sgt_arena *a = sgt_arena_create("routes", dev, 0, 0);
    sgt_ctx c = {.arena = a, .device = dev};
    sgt_val_iter it;
    sgt_val_iter_init(&it, tokens, n, (int)T);
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)(B * (T + 1)));
    int rows;
    double *lg = malloc(sizeof(double) * (size_t)(B * T * rs->nb)), *hd = malloc(sizeof(double) * (size_t)(B * T * rs->nb));
    while (rs->ntok < cap && (rows = sgt_val_iter_next(&it, (int)B, buf)) > 0) {
        sgt_tensor *all = sgt_from_i32(&c, SGT_SHAPE(rows, T + 1), buf);
        sgt_tensor *x = sgt_contiguous(&c, sgt_narrow(&c, all, 1, 0, T));
        gpt_output out = gpt_forward(&c, m, x, NULL);
        const int64_t N = rows * T;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t t = 0; t < T; t++) rs->tok[rs->ntok + r * T + t] = buf[r * (T + 1) + t];
        for (int64_t l = 0; l < rs->L; l++) {
            sgt_to_f64(out.route[l].logits, lg);
            sgt_to_f64(out.route[l].hard, hd);
            for (int64_t i = 0; i < N; i++) {
                double *li = lg + i * rs->nb, kth = -INFINITY, next = -INFINITY;
                for (int64_t j = 0; j < rs->nb; j++) {
                    uint8_t on = hd[i * rs->nb + j] != 0;
                    rs->sel[(l * (cap + B * T) + rs->ntok + i) * rs->nb + j] = on;
                    rs->count[l * rs->nb + j] += on;
                    if (on) kth = kth == -INFINITY || li[j] < kth ? li[j] : kth; /* smallest selected */
                    else next = li[j] > next ? li[j] : next;                    /* largest unselected */
                }
                if (rs->k < rs->nb) rs->margin[l] += kth - next;
            }
        }
        rs->ntok += N;
        sgt_arena_reset(a);
    }
    /* compact sel rows to ntok per layer */
    for (int64_t l = 1; l < rs->L; l++)
        memmove(rs->sel + l * rs->ntok * rs->nb, rs->sel + l * (cap + B * T) * rs->nb, (size_t)(rs->ntok * rs->nb));
    free(buf);
    free(lg);
    free(hd);
    sgt_arena_destroy(a);
}

static double jaccard(const uint8_t *a, const uint8_t *b, int64_t nb) {
    int64_t in = 0, un = 0;
    for (int64_t j = 0; j < nb; j++) {
        in += a[j] & b[j];
        un += a[j] | b[j];
    }
    return un ? (double)in / (double)un : 1.0;
}

/* ---- SVG pictures ---- */

static void svg_loss_curves(const char *path, const char *outdir) {
    exp_file o;
    char ferr[512];
    if (exp_file_open(&o, path, ferr, sizeof ferr)) FAIL("%s", ferr);
    FILE *f = o.f;
    const char *kinds[2] = {"dense", "sparse"}, *colors[2] = {"#1f77b4", "#d62728"};
    cJSON *logs[2] = {0};
    double xmax = 1, ymin = INFINITY, ymax = -INFINITY;
    char p[4200], err[512];
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s/train_log.json", outdir, kinds[k]);
        logs[k] = exp_read_json(p, err, sizeof err);
        const cJSON *e, *arr = logs[k] ? cJSON_GetObjectItemCaseSensitive(logs[k], "log") : NULL;
        cJSON_ArrayForEach(e, arr) {
            double x = cJSON_GetObjectItemCaseSensitive(e, "tokens")->valuedouble;
            double y = cJSON_GetObjectItemCaseSensitive(e, "loss")->valuedouble;
            xmax = x > xmax ? x : xmax;
            ymin = y < ymin ? y : ymin;
            ymax = y > ymax ? y : ymax;
        }
    }
    if (!isfinite(ymin)) ymin = 0, ymax = 1;
    if (ymax - ymin < 1e-6) ymax = ymin + 1;
    const double W = 640, H = 400, L0 = 60, R0 = 20, T0 = 30, B0 = 50;
#define PX(x) (L0 + (x) / xmax * (W - L0 - R0))
#define PY(y) (T0 + (ymax - (y)) / (ymax - ymin) * (H - T0 - B0))
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%g' height='%g' font-family='sans-serif' font-size='12'>\n", W, H);
    fprintf(f, "<rect width='100%%' height='100%%' fill='white'/>\n<text x='%g' y='18'>Training loss (lines) and validation loss (dots) vs tokens</text>\n", L0);
    fprintf(f, "<line x1='%g' y1='%g' x2='%g' y2='%g' stroke='black'/><line x1='%g' y1='%g' x2='%g' y2='%g' stroke='black'/>\n",
            L0, H - B0, W - R0, H - B0, L0, T0, L0, H - B0);
    for (int i = 0; i <= 4; i++) {
        double y = ymin + (ymax - ymin) * i / 4, x = xmax * i / 4;
        fprintf(f, "<text x='5' y='%g'>%.2f</text><text x='%g' y='%g'>%.3g</text>\n", PY(y) + 4, y, PX(x) - 10, H - B0 + 18, x);
    }
    for (int k = 0; k < 2; k++) {
        const cJSON *e, *arr = logs[k] ? cJSON_GetObjectItemCaseSensitive(logs[k], "log") : NULL;
        if (!arr) continue;
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", colors[k]);
        cJSON_ArrayForEach(e, arr) fprintf(f, "%.1f,%.1f ", PX(cJSON_GetObjectItemCaseSensitive(e, "tokens")->valuedouble),
                                           PY(cJSON_GetObjectItemCaseSensitive(e, "loss")->valuedouble));
        fprintf(f, "'/>\n");
        cJSON_ArrayForEach(e, arr) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "val_loss");
            if (cJSON_IsNumber(v) && v->valuedouble >= ymin && v->valuedouble <= ymax)
                fprintf(f, "<circle cx='%.1f' cy='%.1f' r='3' fill='%s'/>\n",
                        PX(cJSON_GetObjectItemCaseSensitive(e, "tokens")->valuedouble), PY(v->valuedouble), colors[k]);
        }
        fprintf(f, "<text x='%g' y='%g' fill='%s'>%s</text>\n", W - 120, T0 + 15 + 15 * k, colors[k], kinds[k]);
        cJSON_Delete(logs[k]);
    }
#undef PX
#undef PY
    fprintf(f, "</svg>\n");
    if (exp_file_commit(&o, ferr, sizeof ferr)) FAIL("%s", ferr);
}

static void svg_heatmap(const char *path, const route_stats *rs) {
    exp_file o;
    char ferr[512];
    if (exp_file_open(&o, path, ferr, sizeof ferr)) FAIL("%s", ferr);
    FILE *f = o.f;
    const double cell = rs->nb > 48 ? 8 : 16, L0 = 70, T0 = 40;
    const double W = L0 + cell * (double)rs->nb + 120, H = T0 + cell * (double)rs->L + 40;
    const double expect = (double)rs->k / (double)rs->nb;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='%g' height='%g' font-family='sans-serif' font-size='11'>\n", W, H);
    fprintf(f, "<rect width='100%%' height='100%%' fill='white'/>\n");
    fprintf(f, "<text x='%g' y='18'>Selection frequency per layer (rows) and block (columns); uniform = %.3f</text>\n", L0, expect);
    for (int64_t l = 0; l < rs->L; l++) {
        fprintf(f, "<text x='5' y='%g'>layer %lld</text>\n", T0 + cell * (double)l + cell * 0.8, (long long)l);
        for (int64_t j = 0; j < rs->nb; j++) {
            double fr = rs->ntok ? rs->count[l * rs->nb + j] / (double)rs->ntok : 0;
            double t = fr / (2 * expect); /* 0 .. 1 maps 0 .. twice uniform */
            t = t < 0 ? 0 : t > 1 ? 1 : t;
            int r = (int)(255 * t), b = (int)(255 * (1 - t)), g = (int)(255 * (1 - fabs(2 * t - 1)));
            fprintf(f, "<rect x='%g' y='%g' width='%g' height='%g' fill='rgb(%d,%d,%d)'><title>layer %lld block %lld: %.4f</title></rect>\n",
                    L0 + cell * (double)j, T0 + cell * (double)l, cell, cell, r, g, b, (long long)l, (long long)j, fr);
        }
    }
    fprintf(f, "<text x='%g' y='%g'>blue 0, green %.3f (uniform), red &gt;= %.3f</text>\n", L0, H - 12, expect, 2 * expect);
    fprintf(f, "</svg>\n");
    if (exp_file_commit(&o, ferr, sizeof ferr)) FAIL("%s", ferr);
}

int main(int argc, char **argv) {
    eval_args a = {.output_dir = "outputs", .device = "auto", .precision = "auto", .attention = "fused", .decode_weights = "f32", .text_field = "text", .eval_tokens = 0, .batch_size = 8,
                   .decode_tokens = 64, .prompt_tokens = 32, .sample_tokens = 48, .seed = 1337,
                   .val_fraction = SGT_VAL_FRACTION_DEFAULT, .temperature = 0.8};
    cli_flag flags[] = {
        {"dataset", CLI_STRING, &a.dataset, "the training JSONL; its validation split is evaluated (same --val_fraction as train)", 0, 0, 0, 0},
        {"eval_dataset", CLI_STRING, &a.eval_dataset, "evaluate on the whole of this JSONL file instead of the split", 0, 0, 0, 0},
        {"eval_tokens", CLI_INT, &a.eval_tokens, "cap on predicted tokens for perplexity (0: all)", 0, 0, 1e15, 0},
        {"batch_size", CLI_INT, &a.batch_size, "windows per batch", 0, 1, 1 << 20, 0},
        {"seq_len", CLI_INT, &a.seq_len, "window length T (0: the model's context length)", 0, 0, 1 << 20, 0},
        {"decode_tokens", CLI_INT, &a.decode_tokens, "tokens generated for the decode-latency measurement", 0, 1, 1 << 20, 0},
        {"prompt_tokens", CLI_INT, &a.prompt_tokens, "prompt length for decode latency and prefill (unset: half the context when 32 does not fit)", 0, 1, 1 << 20, 0},
        {"sample", CLI_STRING, &a.sample, "print text generated by each model from this prompt", 0, 0, 0, 0},
        {"sample_tokens", CLI_INT, &a.sample_tokens, "tokens to generate for --sample", 0, 1, 1 << 20, 0},
        {"temperature", CLI_DOUBLE, &a.temperature, "sampling temperature for --sample (0: greedy)", 0, 0, 100, 0},
        {"output_dir", CLI_STRING, &a.output_dir, "where train wrote its outputs (dense/, sparse/, dense_flop/, <arch>/ such as gpt2/)", 0, 0, 0, 0},
        {"device", CLI_CHOICE, &a.device, "where to evaluate", "auto|cpu|cuda", 0, 0, 0},
        {"precision", CLI_CHOICE, &a.precision, "f32, or bf16 mixed precision; auto: bf16 on cuda, f32 on cpu", "auto|f32|bf16", 0, 0, 0},
        {"attention", CLI_CHOICE, &a.attention, "fused attention kernel, or the composed reference", "fused|composed", 0, 0, 0},
        {"decode_weights", CLI_CHOICE, &a.decode_weights, "weights the decoder streams (decode latency, --sample): f32, or bf16 copies (f32 sums; perplexity always uses f32)", "f32|bf16", 0, 0, 0},
        {"val_fraction", CLI_DOUBLE, &a.val_fraction, "share of documents held out (as in train)", 0, 0, 0.9, 0},
        {"text_field", CLI_STRING, &a.text_field, "JSON key of the text", 0, 0, 0, 0},
        {"tokenizer", CLI_STRING, &a.tokenizer, "GPT-2 tokenizer directory", 0, 0, 0, 0},
        {"seed", CLI_INT, &a.seed, "seed for sampling and pair selection", 0, 0, 1e18, 0},
        {"threads", CLI_INT, &a.threads, "CPU threads (0: all)", 0, 0, 4096, 0},
    };
    int nf = (int)(sizeof flags / sizeof *flags);
    int rc = cli_parse("eval", "evaluate the dense and SGT models trained by apps/train (the seed's five questions), and beside them any other architecture's model train wrote to <output_dir>/<arch>", flags,
                       nf, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!a.dataset && !a.eval_dataset) {
        fprintf(stderr, "eval: --dataset (or --eval_dataset) is required (see --help)\n");
        return 2;
    }
    char err[1024];
    sgt_device dev;
    if (exp_resolve_device(a.device, &dev, err, sizeof err)) {
        fprintf(stderr, "eval: %s\n", err);
        return 2;
    }
    sgt_set_threads((int)a.threads);

    loaded_model lm[2] = {{.kind = "dense"}, {.kind = "sparse"}};
    const sgt_dtype dw = !strcmp(a.decode_weights, "bf16") ? SGT_BF16 : SGT_F32;
    for (int k = 0; k < 2; k++) load_model(&lm[k], a.output_dir, dev, &a, dw, true);
    /* the FLOP-matched dense baseline (train --model dense_flop|all), when there is one: scored for
     * perplexity on the same windows, its gap to the SGT model with its own paired interval */
    loaded_model fl = {.kind = "dense_flop"};
    load_model(&fl, a.output_dir, dev, &a, dw, true);
    /* the models of other architectures, in <output_dir>/<arch> */
    enum { MAX_OTHER = 15 };
    loaded_model ot[MAX_OTHER] = {{0}};
    int n_ot = 0;
    for (int i = 0; sgt_model_arch_at(i) && n_ot < MAX_OTHER; i++) {
        const sgt_model_arch *ar = sgt_model_arch_at(i);
        if (ar == sgt_model_arch_named("sgt-gpt")) continue;
        ot[n_ot].kind = ar->name;
        n_ot += load_model(&ot[n_ot], a.output_dir, dev, &a, dw, false);
    }
    if (!lm[0].present && !lm[1].present && !n_ot)
        FAIL("no checkpoint in %s/dense, %s/sparse or %s/<arch>: run apps/train first", a.output_dir, a.output_dir,
             a.output_dir);
    /* every model is scored on the same windows of T tokens: T fits the smallest context */
    int64_t ctx_len = INT64_MAX;
    for (int k = 0; k < 2; k++)
        if (lm[k].present && lm[k].sm->ctx_len < ctx_len) ctx_len = lm[k].sm->ctx_len;
    if (fl.present && fl.sm->ctx_len < ctx_len) ctx_len = fl.sm->ctx_len;
    for (int k = 0; k < n_ot; k++)
        if (ot[k].sm->ctx_len < ctx_len) ctx_len = ot[k].sm->ctx_len;
    const int64_t T = a.seq_len > 0 ? a.seq_len : ctx_len;
    if (T > ctx_len) FAIL("--seq_len %lld exceeds the models' context length %lld", (long long)T, (long long)ctx_len);
    const gpt_model *any = lm[0].present ? lm[0].m : lm[1].m; /* the SGT experiment's, or NULL */

    exp_data data;
    const char *src = a.eval_dataset ? a.eval_dataset : a.dataset;
    if (exp_data_open(&data, src, a.text_field, a.tokenizer, a.output_dir, a.eval_dataset ? 0.0 : a.val_fraction,
                      a.eval_dataset ? 0 : (uint64_t)(2 * T + 1), true, err, sizeof err))
        FAIL("%s", err);
    const uint16_t *etok = a.eval_dataset ? data.cache.tokens : data.split.val;
    const uint64_t en = a.eval_dataset ? data.cache.n_tokens : data.split.n_val;
    if (en < (uint64_t)T + 1)
        FAIL("%s: %llu evaluation tokens is less than one window of %lld", src, (unsigned long long)en, (long long)(T + 1));

    /* 1. perplexity and 3. decode latency */
    sgt_arena *arena = sgt_arena_create("eval", dev, 0, 0);
    sgt_ctx ctx = {.arena = arena, .device = dev};
    int64_t np = a.prompt_tokens, ng = a.decode_tokens;
    /* the default prompt (32) fills a short context (nano: 32): then half the context is prompt */
    if (!cli_was_set(flags, nf, "prompt_tokens") && np >= ctx_len) np = ctx_len / 2 > 0 ? ctx_len / 2 : 1;
    if (np + ng > ctx_len) ng = ctx_len - np;
    if (ng < 1 && any) FAIL("--prompt_tokens %lld leaves no room to decode within the context %lld", (long long)np, (long long)ctx_len);
    if (ng < 1) ng = 1;
    int32_t *prompt = malloc(sizeof(int32_t) * (size_t)np), *gen = malloc(sizeof(int32_t) * (size_t)ng);
    double *times = malloc(sizeof(double) * (size_t)ng);
    for (int64_t i = 0; i < np; i++) prompt[i] = etok[(uint64_t)i % en];
    for (int k = 0; k < 2; k++) {
        if (!lm[k].present) continue;
        score(&lm[k], &ctx, etok, en, &a, T);
        for (int skip = 0; skip <= (lm[k].m->cfg.sparse ? 1 : 0); skip++) {
            gpt_set_ffn_skip(lm[k].m, skip);
            decode_run(lm[k].m, prompt, np, ng, 0, 1, times, gen); /* warm-up */
            double pre = decode_run(lm[k].m, prompt, np, ng, 0, 1, times, gen);
            qsort(times, (size_t)ng, sizeof(double), cmp_double);
            double med = times[ng / 2], p90 = times[(int64_t)(0.9 * (double)(ng - 1))];
            if (skip) lm[k].skip_ms_median = med, lm[k].skip_ms_p90 = p90, lm[k].skip_prefill_tps = (double)np / pre;
            else lm[k].decode_ms_median = med, lm[k].decode_ms_p90 = p90, lm[k].prefill_tps = (double)np / pre;
        }
        gpt_set_ffn_skip(lm[k].m, false);
    }

    if (fl.present) score(&fl, &ctx, etok, en, &a, T);
    for (int k = 0; k < n_ot; k++) score(&ot[k], &ctx, etok, en, &a, T);

    /* what was scored: the windows cover tokens [0, windows T + 1) of the evaluated slice; a
     * window belongs to the document it starts in (the bootstrap's unit) */
    const int64_t nwin = lm[0].present ? lm[0].windows : lm[1].present ? lm[1].windows : ot[0].windows;
    const uint64_t base = (uint64_t)(etok - data.cache.tokens), d0 = a.eval_dataset ? 0 : data.split.n_train_docs;
    int64_t *win_doc = malloc(sizeof(int64_t) * (size_t)(nwin + 1));
    if (!win_doc) FAIL("out of host memory");
    uint64_t d = d0;
    for (int64_t w = 0; w < nwin; w++) {
        const uint64_t at = base + (uint64_t)w * (uint64_t)T;
        while (d + 1 < data.cache.n_docs && data.cache.doc_offsets[d + 1] <= at) d++;
        win_doc[w] = (int64_t)d;
    }
    uint64_t dlast = d;
    const uint64_t end = base + (uint64_t)nwin * (uint64_t)T + 1; /* one past the last predicted token */
    while (dlast + 1 < data.cache.n_docs && data.cache.doc_offsets[dlast + 1] < end) dlast++;
    const int64_t eval_docs = nwin ? (int64_t)(dlast - d0 + 1) : 0;
    exp_bootstrap bs = {0};
    bool have_bs = false;
    int64_t boot_block = 0; /* 0: documents are the units; else runs of this many windows */
    if (lm[0].present && lm[1].present && lm[0].windows == lm[1].windows)
        have_bs = paired_bootstrap(lm[0].window_nll, lm[1].window_nll, win_doc, nwin, (uint64_t)a.seed, &bs, &boot_block);
    /* the FLOP-matched dense baseline against the SGT model, on the same windows */
    exp_bootstrap bsf = {0};
    bool have_bsf = false;
    int64_t boot_block_f = 0;
    if (fl.present && lm[1].present && fl.windows == lm[1].windows)
        have_bsf = paired_bootstrap(fl.window_nll, lm[1].window_nll, win_doc, nwin, (uint64_t)a.seed, &bsf, &boot_block_f);
    /* another architecture: against the dense model on the same windows, or alone (its own interval) */
    exp_bootstrap bso[MAX_OTHER] = {{0}};
    bool have_bso[MAX_OTHER] = {0};
    for (int k = 0; k < n_ot; k++) {
        int64_t blk;
        const loaded_model *ref = lm[0].present && lm[0].windows == ot[k].windows ? &lm[0] : &ot[k];
        have_bso[k] = ot[k].windows == nwin &&
                      paired_bootstrap(ref->window_nll, ot[k].window_nll, win_doc, nwin, (uint64_t)a.seed, &bso[k], &blk);
    }
    free(win_doc);

    cJSON *res = cJSON_CreateObject();
    cJSON_AddStringToObject(res, "eval_data", src);
    cJSON_AddStringToObject(res, "eval_split", a.eval_dataset ? "whole file" : "validation split");
    cJSON *jp = cJSON_AddObjectToObject(res, "perplexity");
    cJSON_AddStringToObject(jp, "definition", "windows at 0, T, 2T, ...; each predicts its next T tokens; last incomplete window dropped; PPL = exp(mean NLL over predicted tokens)");
    cJSON_AddNumberToObject(jp, "T", (double)T);
    cJSON_AddNumberToObject(jp, "predicted_tokens", (double)(nwin * T));
    cJSON_AddNumberToObject(jp, "windows", (double)nwin);
    cJSON_AddNumberToObject(jp, "documents", (double)eval_docs);
    for (int k = 0; k < 2; k++)
        if (lm[k].present) {
            cJSON *o = cJSON_AddObjectToObject(jp, lm[k].kind);
            cJSON_AddNumberToObject(o, "val_loss", lm[k].nll);
            cJSON_AddNumberToObject(o, "ppl", lm[k].ppl);
            cJSON_AddNumberToObject(o, "predicted_tokens", (double)lm[k].predicted);
            if (have_bs) {
                const exp_interval *ci = k ? &bs.ppl_b_ci : &bs.ppl_a_ci;
                cJSON_AddItemToObject(o, "ppl_ci95", cJSON_CreateDoubleArray((const double[]){ci->lo, ci->hi}, 2));
            } else if (k == 0 && n_ot && have_bso[0]) { /* dense beside another architecture only */
                cJSON_AddItemToObject(o, "ppl_ci95", cJSON_CreateDoubleArray((const double[]){bso[0].ppl_a_ci.lo, bso[0].ppl_a_ci.hi}, 2));
            }
        }
    double gap = NAN;
    if (lm[0].present && lm[1].present) {
        gap = lm[1].ppl / lm[0].ppl - 1;
        cJSON_AddNumberToObject(jp, "relative_gap", gap);
        cJSON_AddNumberToObject(jp, "target", 0.02);
        if (have_bs) {
            cJSON_AddItemToObject(jp, "relative_gap_ci95", cJSON_CreateDoubleArray((const double[]){bs.gap_ci.lo, bs.gap_ci.hi}, 2));
            cJSON *jb = cJSON_AddObjectToObject(jp, "bootstrap");
            cJSON_AddStringToObject(jb, "method", "paired cluster bootstrap, percentile interval; the same resampled units score both models");
            if (boot_block) {
                cJSON_AddStringToObject(jb, "unit", "a run of consecutive windows within one document (few documents: a moving-block bootstrap)");
                cJSON_AddNumberToObject(jb, "windows_per_unit", (double)boot_block);
            } else {
                cJSON_AddStringToObject(jb, "unit", "document (the windows that start in it)");
            }
            cJSON_AddNumberToObject(jb, "units", (double)bs.units);
            cJSON_AddNumberToObject(jb, "resamples", bs.reps);
            cJSON_AddNumberToObject(jb, "level", bs.level);
            cJSON_AddNumberToObject(jb, "seed", (double)a.seed);
        }
        cJSON_AddStringToObject(jp, "verdict", have_bs ? exp_gap_verdict(&bs, 0.02) : gap <= 0.02 ? "PASS (no interval)" : "FAIL (no interval)");
    }
    double gap_f = NAN;
    if (fl.present) {
        cJSON *o = cJSON_AddObjectToObject(jp, "dense_flop");
        cJSON_AddNumberToObject(o, "d_ff", (double)fl.m->cfg.d_ff);
        cJSON_AddNumberToObject(o, "params", (double)gpt_param_count(fl.m));
        cJSON_AddNumberToObject(o, "val_loss", fl.nll);
        cJSON_AddNumberToObject(o, "ppl", fl.ppl);
        cJSON_AddNumberToObject(o, "predicted_tokens", (double)fl.predicted);
        if (have_bsf) cJSON_AddItemToObject(o, "ppl_ci95", cJSON_CreateDoubleArray((const double[]){bsf.ppl_a_ci.lo, bsf.ppl_a_ci.hi}, 2));
        if (lm[1].present) {
            /* < 0: the SGT model beats a dense model of its FFN compute */
            gap_f = lm[1].ppl / fl.ppl - 1;
            cJSON_AddNumberToObject(o, "sparse_relative_gap", gap_f);
            if (have_bsf)
                cJSON_AddItemToObject(o, "sparse_relative_gap_ci95",
                                      cJSON_CreateDoubleArray((const double[]){bsf.gap_ci.lo, bsf.gap_ci.hi}, 2));
            cJSON_AddStringToObject(o, "sparse_beats_it",
                                    !have_bsf ? "no interval" : bsf.gap_ci.hi < 0 ? "yes" : bsf.gap_ci.lo > 0 ? "no" : "inconclusive");
        }
    }

    for (int k = 0; k < n_ot; k++) {
        cJSON *o = cJSON_AddObjectToObject(jp, ot[k].kind);
        cJSON_AddStringToObject(o, "arch", ot[k].sm->arch->name);
        cJSON_AddItemToObject(o, "config", cJSON_Duplicate(ot[k].sm->config, 1));
        cJSON_AddNumberToObject(o, "params", (double)sgt_model_param_count(ot[k].sm));
        cJSON_AddNumberToObject(o, "val_loss", ot[k].nll);
        cJSON_AddNumberToObject(o, "ppl", ot[k].ppl);
        cJSON_AddNumberToObject(o, "predicted_tokens", (double)ot[k].predicted);
        if (have_bso[k]) cJSON_AddItemToObject(o, "ppl_ci95", cJSON_CreateDoubleArray((const double[]){bso[k].ppl_b_ci.lo, bso[k].ppl_b_ci.hi}, 2));
        if (lm[0].present) { /* > 0: worse than the dense SGT-experiment baseline */
            cJSON_AddNumberToObject(o, "relative_gap_to_dense", ot[k].ppl / lm[0].ppl - 1);
            if (have_bso[k])
                cJSON_AddItemToObject(o, "relative_gap_to_dense_ci95",
                                      cJSON_CreateDoubleArray((const double[]){bso[k].gap_ci.lo, bso[k].gap_ci.hi}, 2));
        }
    }

    /* 2. training throughput */
    char path[4200];
    snprintf(path, sizeof path, "%s/training_summary.json", a.output_dir);
    cJSON *sum = exp_read_json(path, err, sizeof err);
    cJSON *jt = cJSON_AddObjectToObject(res, "training_throughput");
    double tps[2], tps_ot[MAX_OTHER];
    for (int k = 0; k < 2; k++) tps[k] = summary_tps(sum, lm[k].kind, jt);
    for (int k = 0; k < n_ot; k++) tps_ot[k] = summary_tps(sum, ot[k].kind, jt);
    if (isfinite(tps[0]) && isfinite(tps[1])) {
        cJSON_AddNumberToObject(jt, "sparse_to_dense", tps[1] / tps[0]);
        cJSON_AddNumberToObject(jt, "router_overhead", 1 - tps[1] / tps[0]);
    }
    cJSON_Delete(sum);

    cJSON *jd = cJSON_AddObjectToObject(res, "decode_latency");
    cJSON_AddNumberToObject(jd, "batch", 1);
    cJSON_AddNumberToObject(jd, "prompt_tokens", (double)np);
    cJSON_AddNumberToObject(jd, "generated_tokens", (double)ng);
    const double bw = sgt_device_bandwidth(dev);
    const int64_t mid = np + ng / 2; /* the KV cache length at the median token */
    cJSON_AddNumberToObject(jd, "bandwidth_gb_s", bw / 1e9);
    cJSON_AddStringToObject(jd, "decode_weights", sgt_dtype_name(dw));
    cJSON_AddStringToObject(jd, "ideal", "bytes of weights and KV cache read per token / the device's measured copy bandwidth");
    double ideal[3] = {NAN, NAN, NAN};
    for (int k = 0; k < 2; k++)
        if (lm[k].present) {
            cJSON *o = cJSON_AddObjectToObject(jd, k ? "sparse_mask" : "dense");
            ideal[k] = 1e3 * gpt_decode_bytes(&lm[k].m->cfg, false, mid, dw) / bw;
            cJSON_AddNumberToObject(o, "ms_per_token_median", lm[k].decode_ms_median);
            cJSON_AddNumberToObject(o, "ms_per_token_p90", lm[k].decode_ms_p90);
            cJSON_AddNumberToObject(o, "prefill_tokens_per_s", lm[k].prefill_tps);
            cJSON_AddNumberToObject(o, "ideal_ms", ideal[k]);
            cJSON_AddNumberToObject(o, "ratio_to_ideal", lm[k].decode_ms_median / ideal[k]);
            if (k == 1) {
                cJSON *q = cJSON_AddObjectToObject(jd, "sparse_skip");
                ideal[2] = 1e3 * gpt_decode_bytes(&lm[k].m->cfg, true, mid, dw) / bw;
                cJSON_AddNumberToObject(q, "ms_per_token_median", lm[k].skip_ms_median);
                cJSON_AddNumberToObject(q, "ms_per_token_p90", lm[k].skip_ms_p90);
                cJSON_AddNumberToObject(q, "prefill_tokens_per_s", lm[k].skip_prefill_tps);
                cJSON_AddNumberToObject(q, "ideal_ms", ideal[2]);
                cJSON_AddNumberToObject(q, "ratio_to_ideal", lm[k].skip_ms_median / ideal[2]);
            }
        }
    if (lm[0].present && lm[1].present) {
        cJSON_AddNumberToObject(jd, "sparse_mask_to_dense_ms", lm[1].decode_ms_median / lm[0].decode_ms_median);
        cJSON_AddNumberToObject(jd, "sparse_skip_to_dense_ms", lm[1].skip_ms_median / lm[0].decode_ms_median);
    }

    /* 4. block utilisation and 5. learned structure */
    route_stats rs = {0};
    cJSON *ju = NULL, *js = NULL;
    char verdict[1024] = "no sparse model";
    if (lm[1].present) {
        collect_routes(&rs, lm[1].m, dev, etok, en, a.batch_size, T, a.eval_tokens);
        ju = cJSON_AddArrayToObject(res, "block_utilisation");
        js = cJSON_AddArrayToObject(res, "learned_structure");
        double *tdep = calloc((size_t)rs.L, sizeof(double)), *ent = calloc((size_t)rs.L, sizeof(double));
        const double kk = (double)rs.k, nbb = (double)rs.nb, e_in = kk * kk / nbb;
        const double j_chance = e_in / (2 * kk - e_in);
        /* same-token pairs: a bounded sample of positions with equal ids */
        for (int64_t l = 0; l < rs.L; l++) {
            const double *cnt = &rs.count[l * rs.nb];
            double tot = 0, mx = 0, h = 0, var = 0;
            int dead = 0;
            for (int64_t j = 0; j < rs.nb; j++) tot += cnt[j], mx = cnt[j] > mx ? cnt[j] : mx, dead += cnt[j] == 0;
            double mean = tot / nbb;
            for (int64_t j = 0; j < rs.nb; j++) {
                if (cnt[j] > 0) h -= cnt[j] / tot * log(cnt[j] / tot);
                var += (cnt[j] - mean) * (cnt[j] - mean) / nbb;
            }
            ent[l] = rs.nb > 1 ? h / log(nbb) : 1;
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "layer", (double)l);
            cJSON *fr = cJSON_AddArrayToObject(o, "selection_frequency");
            for (int64_t j = 0; j < rs.nb; j++) cJSON_AddItemToArray(fr, cJSON_CreateNumber(cnt[j] / (double)rs.ntok));
            cJSON_AddNumberToObject(o, "normalised_entropy", ent[l]);
            cJSON_AddNumberToObject(o, "cv", mean > 0 ? sqrt(var) / mean : 0);
            cJSON_AddNumberToObject(o, "max_violation", mean > 0 ? mx / mean - 1 : 0);
            cJSON_AddNumberToObject(o, "dead_blocks", dead);
            cJSON_AddItemToArray(ju, o);

            const uint8_t *sel = rs.sel + l * rs.ntok * rs.nb;
            double jr = 0, jsame = 0;
            int64_t nr = 0, ns = 0;
            for (int64_t q = 0; q < 4096 && rs.ntok > 1; q++) {
                int64_t i = (int64_t)(sgt_rng_uniform_at((uint64_t)q, 11, (uint64_t)a.seed) * (double)rs.ntok);
                int64_t j = (int64_t)(sgt_rng_uniform_at((uint64_t)q, 12, (uint64_t)a.seed) * (double)rs.ntok);
                if (i == j) continue;
                jr += jaccard(sel + i * rs.nb, sel + j * rs.nb, rs.nb);
                nr++;
            }
            for (int64_t i = 0; i < rs.ntok && ns < 4096; i++)
                for (int64_t j = i + 1; j < rs.ntok && j < i + 512 && ns < 4096; j++)
                    if (rs.tok[i] == rs.tok[j]) {
                        jsame += jaccard(sel + i * rs.nb, sel + j * rs.nb, rs.nb);
                        ns++;
                        break;
                    }
            jr = nr ? jr / (double)nr : NAN;
            jsame = ns ? jsame / (double)ns : NAN;
            tdep[l] = (isfinite(jsame) && jr < 1) ? (jsame - jr) / (1 - jr) : NAN;
            cJSON *s = cJSON_CreateObject();
            cJSON_AddNumberToObject(s, "layer", (double)l);
            cJSON_AddNumberToObject(s, "router_confidence", rs.k < rs.nb ? rs.margin[l] / (double)rs.ntok : 0);
            cJSON_AddNumberToObject(s, "overlap_random_pairs", jr);
            cJSON_AddNumberToObject(s, "overlap_chance", j_chance);
            cJSON_AddNumberToObject(s, "overlap_same_token", jsame);
            cJSON_AddNumberToObject(s, "token_dependence", tdep[l]);
            cJSON_AddItemToArray(js, s);
        }
        /* the verdict: does routing change with depth? */
        double dmin = INFINITY, dmax = -INFINITY, emin = INFINITY, emax = -INFINITY;
        int64_t ldmin = 0, ldmax = 0;
        for (int64_t l = 0; l < rs.L; l++) {
            if (isfinite(tdep[l]) && tdep[l] < dmin) dmin = tdep[l], ldmin = l;
            if (isfinite(tdep[l]) && tdep[l] > dmax) dmax = tdep[l], ldmax = l;
            emin = ent[l] < emin ? ent[l] : emin;
            emax = ent[l] > emax ? ent[l] : emax;
        }
        if (isfinite(dmin) && dmax - dmin >= 0.15)
            snprintf(verdict, sizeof verdict,
                     "Routing depends on the layer: token dependence ranges from %.2f (layer %lld) to %.2f (layer %lld); "
                     "%s layers route more by token identity, %s layers more by context.",
                     dmin, (long long)ldmin, dmax, (long long)ldmax, ldmax < ldmin ? "earlier" : "later",
                     ldmax < ldmin ? "later" : "earlier");
        else if (isfinite(dmin))
            snprintf(verdict, sizeof verdict,
                     "No clear layer dependence: token dependence stays within %.2f..%.2f and usage entropy within "
                     "%.2f..%.2f across layers.", dmin, dmax, emin, emax);
        else
            snprintf(verdict, sizeof verdict, "Too few evaluation tokens to judge the routing structure.");
        cJSON_AddStringToObject(res, "structure_verdict", verdict);
        free(tdep);
        free(ent);
    }

    /* pictures and report */
    char svg1[4200], svg2[4200];
    snprintf(svg1, sizeof svg1, "%s/loss_curves.svg", a.output_dir);
    svg_loss_curves(svg1, a.output_dir);
    if (lm[1].present) {
        snprintf(svg2, sizeof svg2, "%s/block_heatmap.svg", a.output_dir);
        svg_heatmap(svg2, &rs);
    }
    snprintf(path, sizeof path, "%s/eval_results.json", a.output_dir);
    if (exp_write_json(path, res, err, sizeof err)) FAIL("%s", err);

    /* the table */
    printf("\nSGT v2 evaluation (%s: %s)\n", a.eval_dataset ? "whole file" : "validation split", src);
    printf("%-28s %14s %14s\n", "", "dense", "sparse");
#define ROW(label, fmt, field)                                                                   \
    do {                                                                                         \
        printf("%-28s", label);                                                                  \
        for (int k = 0; k < 2; k++) {                                                            \
            if (lm[k].present) printf(" %14" fmt, lm[k].field);                                  \
            else printf(" %14s", "-");                                                           \
        }                                                                                        \
        printf("\n");                                                                            \
    } while (0)
    ROW("1. validation loss", ".4f", nll);
    ROW("   perplexity", ".2f", ppl);
    if (have_bs)
        printf("%-28s %6.2f-%-7.2f %6.2f-%-7.2f\n", "   95% interval", bs.ppl_a_ci.lo, bs.ppl_a_ci.hi, bs.ppl_b_ci.lo,
               bs.ppl_b_ci.hi);
    printf("   scored: %lld predicted tokens in %lld windows of %lld, %lld documents\n", (long long)(nwin * T),
           (long long)nwin, (long long)T, (long long)eval_docs);
    if (isfinite(gap) && have_bs)
        printf("   relative gap %+.2f%%, 95%% interval [%+.2f%%, %+.2f%%] (paired bootstrap over %lld %s, %d "
               "resamples; target <= 2%%): %s\n",
               100 * gap, 100 * bs.gap_ci.lo, 100 * bs.gap_ci.hi, (long long)bs.units,
               boot_block ? "runs of windows" : "documents", bs.reps, exp_gap_verdict(&bs, 0.02));
    else if (isfinite(gap))
        printf("   relative gap %+.2f%% (target <= 2%%, no interval): %s\n", 100 * gap, gap <= 0.02 ? "PASS" : "FAIL");
    if (fl.present) {
        printf("   FLOP-matched dense (d_ff %lld): loss %.4f, perplexity %.2f", (long long)fl.m->cfg.d_ff, fl.nll, fl.ppl);
        if (have_bsf) printf(" [%.2f, %.2f]", bsf.ppl_a_ci.lo, bsf.ppl_a_ci.hi);
        if (isfinite(gap_f) && have_bsf)
            printf("; sparse vs it %+.2f%%, 95%% interval [%+.2f%%, %+.2f%%]", 100 * gap_f, 100 * bsf.gap_ci.lo,
                   100 * bsf.gap_ci.hi);
        else if (isfinite(gap_f))
            printf("; sparse vs it %+.2f%% (no interval)", 100 * gap_f);
        printf("\n");
    }
    for (int k = 0; k < n_ot; k++) {
        printf("   %s (%s, %lld params): loss %.4f, perplexity %.2f", ot[k].kind,
               sgt_model_name(ot[k].sm),
               (long long)sgt_model_param_count(ot[k].sm), ot[k].nll, ot[k].ppl);
        if (have_bso[k]) printf(" [%.2f, %.2f]", bso[k].ppl_b_ci.lo, bso[k].ppl_b_ci.hi);
        if (lm[0].present && have_bso[k])
            printf("; vs dense %+.2f%%, 95%% interval [%+.2f%%, %+.2f%%]", 100 * (ot[k].ppl / lm[0].ppl - 1),
                   100 * bso[k].gap_ci.lo, 100 * bso[k].gap_ci.hi);
        if (isfinite(tps_ot[k])) printf("; trained at %.0f tokens/s", tps_ot[k]);
        printf("\n");
    }
    if (have_bs && boot_block)
        printf("   (only %lld documents: the bootstrap resampled runs of %lld windows instead; evaluate more documents "
               "for a document-level interval)\n", (long long)eval_docs, (long long)boot_block);
    printf("%-28s", "2. training tokens/s");
    for (int k = 0; k < 2; k++) isfinite(tps[k]) ? printf(" %14.0f", tps[k]) : printf(" %14s", "-");
    printf("\n");
    if (isfinite(tps[0]) && isfinite(tps[1])) printf("   router overhead %.1f%%\n", 100 * (1 - tps[1] / tps[0]));
    ROW("3. decode ms/token (median)", ".3f", decode_ms_median);
    ROW("   decode ms/token (p90)", ".3f", decode_ms_p90);
    ROW("   prefill tokens/s", ".0f", prefill_tps);
    if (lm[1].present) {
        printf("   %-25s %14s %14.3f  (p90 %.3f, prefill %.0f tokens/s)\n", "sparse, skipping blocks", "", lm[1].skip_ms_median,
               lm[1].skip_ms_p90, lm[1].skip_prefill_tps);
        printf("   ideal ms/token at %.1f GB/s: dense %.3f, sparse-mask %.3f, sparse-skip %.3f\n", bw / 1e9, ideal[0],
               ideal[1], ideal[2]);
        if (lm[0].present)
            printf("   sparse/dense decode: mask-and-multiply %.2f, skipping %.2f (target <= 0.85)\n",
                   lm[1].decode_ms_median / lm[0].decode_ms_median, lm[1].skip_ms_median / lm[0].decode_ms_median);
    }
#undef ROW
    if (lm[1].present) {
        printf("4. block utilisation (sparse, %lld tokens)\n   %-6s %9s %7s %9s %5s\n", (long long)rs.ntok, "layer",
               "entropy", "cv", "max-viol", "dead");
        const cJSON *o;
        cJSON_ArrayForEach(o, ju) printf("   %-6d %9.3f %7.3f %9.3f %5d\n",
                                         cJSON_GetObjectItemCaseSensitive(o, "layer")->valueint,
                                         cJSON_GetObjectItemCaseSensitive(o, "normalised_entropy")->valuedouble,
                                         cJSON_GetObjectItemCaseSensitive(o, "cv")->valuedouble,
                                         cJSON_GetObjectItemCaseSensitive(o, "max_violation")->valuedouble,
                                         cJSON_GetObjectItemCaseSensitive(o, "dead_blocks")->valueint);
        printf("5. learned structure\n   %-6s %11s %15s %12s %10s\n", "layer", "confidence", "overlap(rand)",
               "overlap(tok)", "token-dep");
        cJSON_ArrayForEach(o, js) printf("   %-6d %11.3f %15.3f %12.3f %10.3f\n",
                                         cJSON_GetObjectItemCaseSensitive(o, "layer")->valueint,
                                         cJSON_GetObjectItemCaseSensitive(o, "router_confidence")->valuedouble,
                                         cJSON_GetObjectItemCaseSensitive(o, "overlap_random_pairs")->valuedouble,
                                         cJSON_GetObjectItemCaseSensitive(o, "overlap_same_token")->valuedouble,
                                         cJSON_GetObjectItemCaseSensitive(o, "token_dependence")->valuedouble);
        printf("   %s\n", verdict);
    }

    /* report.html */
    snprintf(path, sizeof path, "%s/report.html", a.output_dir);
    exp_file ho;
    if (exp_file_open(&ho, path, err, sizeof err)) FAIL("%s", err);
    FILE *hf = ho.f;
    char *rtxt = cJSON_Print(res);
    fprintf(hf, "<!doctype html><html><head><meta charset='utf-8'><title>SGT v2 evaluation</title></head><body>\n"
                "<h1>SGT v2 evaluation</h1><p>Data: %s (%s)</p>\n"
                "<h2>Loss curves</h2><img src='loss_curves.svg' alt='loss curves'>\n", src,
            a.eval_dataset ? "whole file" : "validation split");
    if (lm[1].present) fprintf(hf, "<h2>Block selection frequency</h2><img src='block_heatmap.svg' alt='heat map'>\n<p>%s</p>\n", verdict);
    fprintf(hf, "<h2>All results (eval_results.json)</h2><pre>%s</pre></body></html>\n", rtxt);
    free(rtxt);
    if (exp_file_commit(&ho, err, sizeof err)) FAIL("%s", err);
    printf("wrote %s/eval_results.json, %s/report.html, %s/loss_curves.svg%s\n", a.output_dir, a.output_dir, a.output_dir,
           lm[1].present ? " and block_heatmap.svg" : "");

    /* samples */
    if (a.sample) {
        sgt_tok_ids ids = {0};
        if (sgt_tokenizer_encode(data.tok, a.sample, strlen(a.sample), &ids) < 0 || ids.len == 0)
            FAIL("--sample: could not encode the prompt");
        int64_t sn = a.sample_tokens;
        if ((int64_t)ids.len + sn > ctx_len) sn = ctx_len - (int64_t)ids.len;
        if (sn < 1) FAIL("--sample: the prompt fills the context (%lld tokens)", (long long)ctx_len);
        int32_t *out = malloc(sizeof(int32_t) * (size_t)sn);
        double *tt = malloc(sizeof(double) * (size_t)sn);
        for (int k = 0; k < 2; k++) {
            if (!lm[k].present) continue;
            decode_run(lm[k].m, ids.data, (int64_t)ids.len, sn, a.temperature, (uint64_t)a.seed, tt, out);
            sgt_tok_bytes txt = {0};
            sgt_tokenizer_decode(data.tok, out, (size_t)sn, &txt, err, sizeof err);
            printf("\n[%s] %s%.*s\n", lm[k].kind, a.sample, (int)txt.len, txt.data ? txt.data : "");
            sgt_tok_bytes_free(&txt);
        }
        for (int k = 0; k < n_ot; k++) {
            sample_full(ot[k].sm, dev, ids.data, (int64_t)ids.len, sn, a.temperature, (uint64_t)a.seed, out);
            sgt_tok_bytes txt = {0};
            sgt_tokenizer_decode(data.tok, out, (size_t)sn, &txt, err, sizeof err);
            printf("\n[%s] %s%.*s\n", ot[k].kind, a.sample, (int)txt.len, txt.data ? txt.data : "");
            sgt_tok_bytes_free(&txt);
        }
        free(out);
        free(tt);
        sgt_tok_ids_free(&ids);
    }

    cJSON_Delete(res);
    free(prompt);
    free(gen);
    free(times);
    free(rs.count);
    free(rs.margin);
    free(rs.sel);
    free(rs.tok);
    sgt_arena_destroy(arena);
    for (int k = 0; k < 2; k++) free_model(&lm[k]);
    free_model(&fl);
    for (int k = 0; k < n_ot; k++) free_model(&ot[k]);
    exp_data_close(&data);
    return 0;
}
