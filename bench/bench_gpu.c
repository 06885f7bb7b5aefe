/* bench_gpu.c: the GPU benchmark of issue 6. For the dense and the SGT GPT (sgt-150m by default) on
 * one device (CUDA by default; the CPU with a small preset, to check the logic anywhere):
 *
 *   train    full training steps: tokens/s at the median step, and MFU against the assumed peak
 *   prefill  forward-only passes of B x T tokens (no gradient): tokens/s and MFU
 *   decode   batch 1: a prompt, then single-token steps with the KV cache: ms/token (median, p90)
 *            beside the memory-bandwidth floor
 *
 *   bench_gpu [--device cuda|cpu] [--config sgt-150m] [--model dense|sparse|sparse-skip|all]
 *             [--batch 16] [--seq 1024] [--precision bf16|f32] [--attention fused|composed]
 *             [--steps 10] [--warmup 3] [--decode-tokens 128] [--prompt 64] [--prefill-batch B]
 *             [--peak-tflops X] [--what train,decode,prefill] [--threads N] [--phases]
 *             [--decode graph|eager]
 *
 * --model and --what take comma-separated lists ("all" = every one). --seq defaults to the preset's
 * context length (1024 for sgt-150m), --prefill-batch to --batch. With --device cuda and no usable
 * CUDA device (no GPU, no driver, or a build without the CUDA backend) it prints one line saying so
 * and exits 77, meson's "skipped". Exit status 1 when a part failed (its JSON line has "error").
 *
 * Models: dense (SwiGLU FFNs), sparse (SGT, mask-and-multiply FFNs as in the seed), sparse-skip
 * (SGT with block skipping, cfg.ffn_skip: only the selected blocks are computed). Precision
 * (cfg.compute): bf16 = mixed precision (bf16 matmul operands and activations, f32 master weights,
 * f32 AdamW); f32 = everything f32 (TF32 tensor cores for CUDA matmuls). Attention
 * (cfg.composed_attention): fused = the fused attention kernel, composed = matmul + causal softmax
 * + matmul with the T x T scores in memory. Weights: random init, seed 1234 (speed does not depend
 * on training); every part builds its own model.
 *
 * A training step is what the trainer does (apps/train.c, bench_train_step.c): forward with targets
 * (cross-entropy + load-balancing loss weight 0.01 for SGT), ag_backward from the loss,
 * nn_adamw_step, nn_params_zero_grad, reading the loss (one 4-byte copy, which waits for the step's
 * kernels), ag_step_end. Each step is bracketed by sgt_device_synchronize; --warmup steps run first,
 * untimed (the first sizes the per-step arena, the second consolidates it), then --steps timed ones.
 * --phases also synchronises between forward, backward, optimizer and zero+reset to time each.
 * Inputs are the fixed pseudo-random ids of bench_train_step.c, reproduced by bench/torch_gpt.py:
 *   id[i] = ((i * 2654435761 + 12345) mod 2^32) mod V,  i over a [B, T+1] row-major buffer;
 *   x = columns 0..T-1, targets = columns 1..T.
 *
 * FLOPs (llm.c / PaLM appendix B style), per token, with N the matmul parameters and L, T, C the
 * layers, sequence length and width:
 *   N     = every 2-D weight but the embedding tables wte, wpe (qkv, proj, gate/up/down, the
 *           routers' fc1/fc2, the head; a tied head counts wte once), norms and biases left out.
 *           The head counts V x C even where its storage is padded to a multiple of rows (model
 *           FLOPs, as MFU is defined, not the hardware's). The FFN weights count in full for dense and mask-and-multiply SGT (every block is
 *           multiplied), times top_k/num_blocks for sparse-skip (only the selected blocks are).
 *   train   = 6 N + 6 * 2 * L * T * C / 2   (forward + backward of the matmuls; attention's QK^T
 *             and AV are 2 * 2 * T * C per token and layer forward, halved for the causal mask)
 *   prefill = 2 N + 2 * 2 * L * T * C / 2   (the forward third of that; full logits [B, T, V])
 *   MFU     = FLOPs per token * tokens/s / peak FLOP/s. The ideal tokens/s printed beside a figure
 *             is peak / FLOPs per token (MFU 100%).
 *   peak    : 989 TFLOP/s for bf16 and 494 TFLOP/s for f32 (TF32) on CUDA: an H100 SXM's dense
 *             tensor-core figures (an H200's are the same). The device's name is not printed (C has
 *             no CUDA headers here); pass --peak-tflops for another card (H100 PCIe: 756 / 378).
 *             The CPU has no default: MFU is printed only with --peak-tflops.
 *
 * Decode: the batch-1 decoder of models/decoder.h, which computes in f32 (the weights as stored,
 * whatever --precision says): a --prompt-token
 * prompt (64, at most half the context) is prefilled, then --decode-tokens single-token steps (128,
 * within the context), each: upload token/position/length (12 bytes), the step (from the third on,
 * one replay of a recorded CUDA graph; --decode eager runs every step op by op), the logits back
 * to the host, argmax there. A warm-up session of 8 tokens runs first, with its own decoder.
 * Floor = gpt_decode_bytes(cfg, skip, prompt + tokens/2) / sgt_device_bandwidth(device): the bytes
 * of weights and KV cache one token reads (at the sequence's midpoint) over the device's measured
 * copy bandwidth; ratio = measured / floor (target <= 2).
 *
 * If B x T does not fit (an out-of-memory failure from the library), the part is rebuilt and rerun
 * at half the batch, and the output says so. Failures are caught with sgt_set_error_handler and
 * longjmp, as the tests do (tests/common/test_util.h); a failed part prints its error and the
 * others still run.
 *
 * Output: a line per part as it finishes, a summary table at the end, and one JSON line per
 * (model, part) for bench/gpu_vs_torch.py, e.g.
 *   {"bench": "gpu", "impl": "sgt", "model": "dense", "what": "train", "device": "cuda", ...,
 *    "batch": 16, "seq": 1024, "tokens_per_s": ..., "flops_per_token": ..., "mfu": ..., ...}
 * (keys per part: see print_json), after one {"bench": "gpu", "impl": "sgt", "setup": {...}} line with
 * the settings in effect (the preset's T, the clamped prompt and token counts, peak, bandwidth). */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../models/decoder.h"
#include "../models/gpt.h"
#include "../nn/optim.h"
#include "bench_util.h"

#define AUX_WEIGHT 0.01
#define LR 3e-4
#define SEED 1234
#define DECODE_WARMUP_TOKENS 8

enum { M_DENSE, M_SPARSE, M_SKIP, M_N };
static const char *const model_name[M_N] = {"dense", "sparse", "sparse-skip"};
enum { W_TRAIN, W_PREFILL, W_DECODE, W_N };
static const char *const what_name[W_N] = {"train", "prefill", "decode"};
enum { PH_FWD, PH_BWD, PH_OPT, PH_ZERO, PH_N };

typedef struct {
    sgt_device dev;
    const char *config;
    bool run_model[M_N], run_what[W_N];
    int64_t B, T, prefill_B, decode_tokens, prompt;
    sgt_dtype compute;
    sgt_dtype decode_weights; /* what the decoder streams: f32 (default) or bf16 copies (gpt_prepare_decode) */
    bool composed, phases, peak_given, decode_eager;
    int steps, warmup, threads;
    int64_t top_k;    /* the SGT models' k (0: the preset's) */
    double peak;      /* FLOP/s; 0: unknown */
    double bandwidth; /* bytes/s, measured when decode runs */
} bench_opts;

typedef struct {
    int model, what;
    bool ok;
    char error[700];
    int64_t B, B_requested, T;
    double median_s, min_s, p90_s;
    double flops_per_token, tokens_per_s;
    double first_loss, last_loss;
    double phase_ms[PH_N];
    double step_mib, param_mib;
    int64_t prompt, tokens;   /* decode */
    bool graph;               /* decode: the steps were replayed CUDA graphs */
    double decode_bytes, floor_ms;
} result;

static result results[M_N * W_N];
static int nresults;

/* ---- failures: SGT_FAIL longjmps back to the part that was running ---- */

enum { ARM_NONE, ARM_PART, ARM_CLEANUP };
static int g_armed;
static jmp_buf g_part_jmp, g_cleanup_jmp;
static bool g_device_broken; /* releasing a failed part's memory failed too: skip the rest */
static void (*g_body)(void *);
static void *g_body_arg;

static void on_error(const char *msg) {
    const int a = g_armed;
    g_armed = ARM_NONE;
    if (a == ARM_PART) longjmp(g_part_jmp, 1);
    if (a == ARM_CLEANUP) longjmp(g_cleanup_jmp, 1);
    fprintf(stderr, "%s\n", msg);
    exit(1);
}

/* Runs g_body(g_body_arg); 0, or -1 when it failed (the message: sgt_last_error()). No locals, so
 * nothing here can be clobbered by the longjmp. */
static int guarded(void) {
    if (setjmp(g_part_jmp)) return -1;
    g_armed = ARM_PART;
    g_body(g_body_arg);
    g_armed = ARM_NONE;
    return 0;
}

/* What a part holds, global so that it can be released after a failure. */
static struct {
    nn_params *p;
    gpt_model *m;
    nn_adamw *opt;
    sgt_arena *arena, *kva;
    sgt_ctx ctx, kctx;
    ag_tape tape;
    bool tape_on;
    gpt_kv kv;
    int32_t *ids;
    double *t[PH_N + 1];
} R;

static void release(void) {
    if (setjmp(g_cleanup_jmp)) {
        g_device_broken = true;
        printf("bench_gpu: releasing the failed part's memory failed too (%s); skipping the remaining parts\n",
               sgt_last_error());
        memset(&R, 0, sizeof R);
        return;
    }
    g_armed = ARM_CLEANUP;
    if (R.tape_on) {
        R.tape_on = false;
        ag_tape_detach(&R.tape);
    }
    for (int i = 0; i <= PH_N; i++) {
        free(R.t[i]);
        R.t[i] = NULL;
    }
    free(R.ids);
    R.ids = NULL;
    sgt_arena *a = R.arena, *k = R.kva;
    R.arena = R.kva = NULL;
    if (a) sgt_arena_destroy(a);
    if (k) sgt_arena_destroy(k);
    nn_adamw *o = R.opt;
    R.opt = NULL;
    if (o) nn_adamw_destroy(o);
    gpt_model *m = R.m;
    R.m = NULL;
    if (m) gpt_free(m);
    nn_params *p = R.p;
    R.p = NULL;
    if (p) nn_params_destroy(p);
    g_armed = ARM_NONE;
}

/* ---- the model and its FLOPs ---- */

static gpt_config make_cfg(const bench_opts *o, int kind) {
    gpt_config cfg;
    SGT_CHECK(gpt_preset(o->config, &cfg) == 0, "unknown preset '%s'", o->config);
    cfg.sparse = kind != M_DENSE;
    cfg.ffn_skip = kind == M_SKIP;
    if (o->top_k) cfg.top_k = o->top_k;
    cfg.compute = o->compute;
    cfg.composed_attention = o->composed;
    return cfg;
}

static void build(const bench_opts *o, int kind) {
    const gpt_config cfg = make_cfg(o, kind);
    R.p = nn_params_create(SEED, SGT_F32, o->dev);
    R.m = gpt_build(&cfg, R.p);
}

/* N of the header comment, from the built model's parameters. */
static double matmul_params(const gpt_model *m, bool skip) {
    const nn_params *p = m->params;
    double n = 0;
    for (int i = 0; i < p->n; i++) {
        const sgt_tensor *t = p->items[i].t;
        const char *name = p->items[i].name;
        if (t->ndim != 2) continue;
        const double head = (double)m->cfg.vocab * (double)m->cfg.d_model; /* V rows: padding is storage */
        if (!strcmp(name, "wte.weight")) {
            if (m->cfg.tie_head) n += head; /* the head multiplies by it */
            continue;
        }
        if (!strcmp(name, "wpe.weight")) continue;
        if (!strcmp(name, "head.weight")) {
            n += head;
            continue;
        }
        double e = (double)sgt_numel(t);
        if (skip && strstr(name, ".ffn.") && !strstr(name, ".router."))
            e *= (double)m->cfg.top_k / (double)m->cfg.num_blocks;
        n += e;
    }
    return n;
}

static double attn_flops(const gpt_config *cfg, int64_t T) {
    return 2.0 * (double)cfg->n_layers * (double)T * (double)cfg->d_model; /* forward: 2*2*L*T*C/2 */
}

static double *timings(int i, int n) {
    R.t[i] = calloc((size_t)n, sizeof(double));
    SGT_CHECK(R.t[i], "out of host memory");
    return R.t[i];
}

static double mib(size_t b) { return (double)b / (1 << 20); }

/* ---- the parts ---- */

typedef struct {
    const bench_opts *o;
    int kind;
    int64_t B;
    result *r;
} part_arg;

static void train_body(void *argp) {
    const part_arg *a = argp;
    const bench_opts *o = a->o;
    result *r = a->r;
    const int64_t B = a->B, T = o->T;
    build(o, a->kind);
    R.opt = nn_adamw_create(R.p, 0.9, 0.95, 1e-8, 0.1);
    R.arena = sgt_arena_create("bench-train", o->dev, 0, 0);
    R.ctx = (sgt_ctx){.arena = R.arena, .device = o->dev};
    ag_tape_init(&R.tape, &R.ctx);
    R.tape_on = true;
    R.ids = bench_make_ids(B, T, R.m->cfg.vocab);
    r->flops_per_token = 6.0 * matmul_params(R.m, a->kind == M_SKIP) + 3.0 * attn_flops(&R.m->cfg, T);
    const int n = o->steps;
    double *tot = timings(PH_N, n), *ph[PH_N];
    for (int k = 0; k < PH_N; k++) ph[k] = timings(k, n);
    for (int s = 0; s < o->warmup + n; s++) {
        sgt_ctx *c = &R.ctx;
        sgt_device_synchronize(o->dev);
        double t[PH_N + 1];
        t[0] = bench_now();
        sgt_tensor *all = sgt_from_i32(c, SGT_SHAPE(B, T + 1), R.ids);
        sgt_tensor *x = sgt_contiguous(c, sgt_narrow(c, all, 1, 0, T));
        sgt_tensor *y = sgt_contiguous(c, sgt_narrow(c, all, 1, 1, T));
        gpt_output out = gpt_forward(c, R.m, x, &(gpt_forward_opts){.targets = y, .aux_weight = AUX_WEIGHT});
        if (o->phases) sgt_device_synchronize(o->dev);
        t[1] = bench_now();
        ag_backward(&R.tape, out.loss);
        if (o->phases) sgt_device_synchronize(o->dev);
        t[2] = bench_now();
        nn_adamw_step(R.opt, LR);
        if (o->phases) sgt_device_synchronize(o->dev);
        t[3] = bench_now();
        nn_params_zero_grad(R.p);
        const double loss = sgt_item(out.loss); /* waits for the step's kernels */
        if (s == 0) r->step_mib = mib(R.arena->high_water);
        ag_step_end(&R.tape);
        sgt_device_synchronize(o->dev);
        t[4] = bench_now();
        if (s == 0) r->first_loss = loss;
        r->last_loss = loss;
        if (s >= o->warmup) {
            for (int k = 0; k < PH_N; k++) ph[k][s - o->warmup] = t[k + 1] - t[k];
            tot[s - o->warmup] = t[PH_N] - t[0];
        }
    }
    r->step_mib = mib(R.arena->high_water);
    r->param_mib = mib(sgt_arena_capacity(R.p->arena));
    r->median_s = bench_median_sorted(tot, n);
    r->min_s = tot[0];
    for (int k = 0; k < PH_N; k++) r->phase_ms[k] = 1e3 * bench_median_sorted(ph[k], n);
    r->tokens_per_s = (double)(B * T) / r->median_s;
}

static void prefill_body(void *argp) {
    const part_arg *a = argp;
    const bench_opts *o = a->o;
    result *r = a->r;
    const int64_t B = a->B, T = o->T;
    build(o, a->kind);
    R.arena = sgt_arena_create("bench-prefill", o->dev, 0, 0);
    R.ctx = (sgt_ctx){.arena = R.arena, .device = o->dev}; /* no tape: nothing is recorded (no grad) */
    R.ids = bench_make_ids(B, T, R.m->cfg.vocab);
    r->flops_per_token = 2.0 * matmul_params(R.m, a->kind == M_SKIP) + attn_flops(&R.m->cfg, T);
    const int n = o->steps;
    double *tot = timings(PH_N, n);
    for (int s = 0; s < o->warmup + n; s++) {
        sgt_ctx *c = &R.ctx;
        sgt_arena_reset(R.arena);
        sgt_device_synchronize(o->dev);
        const double t0 = bench_now();
        sgt_tensor *all = sgt_from_i32(c, SGT_SHAPE(B, T + 1), R.ids);
        sgt_tensor *x = sgt_contiguous(c, sgt_narrow(c, all, 1, 0, T));
        gpt_forward(c, R.m, x, NULL);
        sgt_device_synchronize(o->dev);
        if (s >= o->warmup) tot[s - o->warmup] = bench_now() - t0;
    }
    r->step_mib = mib(R.arena->high_water);
    r->param_mib = mib(sgt_arena_capacity(R.p->arena));
    r->median_s = bench_median_sorted(tot, n);
    r->min_s = tot[0];
    r->tokens_per_s = (double)(B * T) / r->median_s;
}

static int32_t argmax_host(const float *l, int64_t V) {
    int32_t best = 0;
    for (int64_t v = 1; v < V; v++) best = l[v] > l[best] ? (int32_t)v : best;
    return best;
}

static void decode_body(void *argp) {
    const part_arg *a = argp;
    const bench_opts *o = a->o;
    result *r = a->r;
    const int64_t np = o->prompt, ng = o->decode_tokens;
    build(o, a->kind);
    gpt_prepare_decode(R.m, o->decode_weights); /* the decoder's inference copies (--decode-weights) */
    R.arena = sgt_arena_create("bench-decode", o->dev, 0, 0); /* unused by the decoder: kept for the report */
    R.kva = sgt_arena_create("bench-kv", o->dev, 0, 0);
    R.ids = bench_make_ids(1, np, R.m->cfg.vocab);
    const int64_t V = R.m->cfg.vocab;
    double *t = timings(PH_N, (int)ng);
    for (int session = 0; session < 2; session++) {
        const int64_t n = session == 0 ? (ng < DECODE_WARMUP_TOKENS ? ng : DECODE_WARMUP_TOKENS) : ng;
        /* models/decoder.h: a device KV cache; with graphs, every step after the second is one replay */
        gpt_decoder *d = gpt_decoder_create(R.m, np + n, !o->decode_eager);
        int32_t next = argmax_host(gpt_decoder_prefill(d, R.ids, np), V);
        for (int64_t i = 0; i < n; i++) {
            const double t0 = bench_now();
            next = argmax_host(gpt_decoder_step(d, next), V); /* returns with the logits on the host */
            if (session == 1) t[i] = bench_now() - t0;
        }
        if (session == 1) r->graph = gpt_decoder_replaying(d);
        gpt_decoder_destroy(d);
    }
    r->step_mib = 0; /* the decoder's arenas are its own */
    r->param_mib = mib(sgt_arena_capacity(R.p->arena));
    r->prompt = np;
    r->tokens = ng;
    r->median_s = bench_median_sorted(t, (int)ng);
    r->min_s = t[0];
    r->p90_s = t[(int64_t)(0.9 * (double)(ng - 1))];
    r->tokens_per_s = 1.0 / r->median_s;
    r->decode_bytes = gpt_decode_bytes(&R.m->cfg, a->kind == M_SKIP, np + ng / 2, o->decode_weights);
    r->floor_ms = 1e3 * r->decode_bytes / o->bandwidth;
}

static void bandwidth_body(void *argp) {
    bench_opts *o = argp;
    o->bandwidth = sgt_device_bandwidth(o->dev);
}

/* ---- output ---- */

static const char *precision_name(const bench_opts *o) { return o->compute == SGT_BF16 ? "bf16" : "f32"; }

static void json_string(const char *s) {
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') printf("\\%c", ch);
        else if (ch < 0x20) printf("\\u%04x", ch);
        else putchar(ch);
    }
    putchar('"');
}

static void print_json(const bench_opts *o, const result *r) {
    printf("{\"bench\": \"gpu\", \"impl\": \"sgt\", \"model\": \"%s\", \"what\": \"%s\", \"device\": \"%s\", "
           "\"config\": \"%s\", \"precision\": \"%s\", \"attention\": \"%s\"",
           model_name[r->model], what_name[r->what], sgt_device_name(o->dev), o->config, precision_name(o),
           o->composed ? "composed" : "fused");
    if (!r->ok) {
        printf(", \"batch\": %lld, \"batch_requested\": %lld, \"error\": ", (long long)r->B, (long long)r->B_requested);
        json_string(r->error);
        printf("}\n");
        return;
    }
    printf(", \"batch\": %lld, \"batch_requested\": %lld, \"median_ms\": %.4f, \"min_ms\": %.4f, \"peak_flops\": %.6g, "
           "\"step_arena_mib\": %.1f, \"param_arena_mib\": %.1f",
           (long long)r->B, (long long)r->B_requested, 1e3 * r->median_s, 1e3 * r->min_s, o->peak, r->step_mib,
           r->param_mib);
    if (r->what == W_DECODE) {
        printf(", \"prompt\": %lld, \"tokens\": %lld, \"graph\": %s, \"ms_per_token\": %.4f, \"p90_ms\": %.4f, \"tokens_per_s\": %.2f, "
               "\"decode_bytes\": %.6g, \"bandwidth_gbs\": %.2f, \"floor_ms\": %.4f, \"ratio_to_floor\": %.3f}\n",
               (long long)r->prompt, (long long)r->tokens, r->graph ? "true" : "false", 1e3 * r->median_s, 1e3 * r->p90_s, r->tokens_per_s,
               r->decode_bytes, o->bandwidth / 1e9, r->floor_ms, 1e3 * r->median_s / r->floor_ms);
        return;
    }
    printf(", \"seq\": %lld, \"steps\": %d, \"tokens_per_s\": %.1f, \"flops_per_token\": %.6g", (long long)r->T,
           o->steps, r->tokens_per_s, r->flops_per_token);
    if (o->peak > 0)
        printf(", \"mfu\": %.4f, \"ideal_tokens_per_s\": %.1f", r->flops_per_token * r->tokens_per_s / o->peak,
               o->peak / r->flops_per_token);
    else printf(", \"mfu\": null, \"ideal_tokens_per_s\": null");
    if (r->what == W_TRAIN) {
        printf(", \"forward_ms\": %.3f, \"backward_ms\": %.3f, \"optimizer_ms\": %.3f, \"zero_reset_ms\": %.3f, "
               "\"phases_synchronised\": %s, \"first_loss\": %.6f, \"last_loss\": %.6f, \"loss_finite\": %s",
               r->phase_ms[PH_FWD], r->phase_ms[PH_BWD], r->phase_ms[PH_OPT], r->phase_ms[PH_ZERO],
               o->phases ? "true" : "false", r->first_loss, r->last_loss,
               isfinite(r->first_loss) && isfinite(r->last_loss) ? "true" : "false");
    }
    printf("}\n");
}

/* "measured", "floor" and "ratio" cells of a result, for the per-part line and the summary */
static void cells(const bench_opts *o, const result *r, char *shape, char *meas, char *floor_, char *ratio, size_t n) {
    if (r->what == W_DECODE) snprintf(shape, n, "1 x (%lld+%lld)", (long long)r->prompt, (long long)r->tokens);
    else snprintf(shape, n, "%lld x %lld", (long long)r->B, (long long)r->T);
    if (!r->ok) {
        snprintf(meas, n, "FAILED");
        snprintf(floor_, n, "-");
        snprintf(ratio, n, "-");
        return;
    }
    if (r->what == W_DECODE) {
        snprintf(meas, n, "%.3f ms/token", 1e3 * r->median_s);
        snprintf(floor_, n, "%.3f ms/token", r->floor_ms);
        snprintf(ratio, n, "%.2fx floor", 1e3 * r->median_s / r->floor_ms);
        return;
    }
    snprintf(meas, n, "%.0f tokens/s", r->tokens_per_s);
    if (o->peak > 0) {
        snprintf(floor_, n, "%.0f tokens/s", o->peak / r->flops_per_token);
        snprintf(ratio, n, "MFU %.1f%%", 100.0 * r->flops_per_token * r->tokens_per_s / o->peak);
    } else {
        snprintf(floor_, n, "n/a (no peak)");
        snprintf(ratio, n, "MFU n/a");
    }
}

static void print_result(const bench_opts *o, const result *r) {
    char shape[64], meas[64], fl[64], ratio[64];
    cells(o, r, shape, meas, fl, ratio, sizeof shape);
    printf("\n== %s %s, %s", model_name[r->model], what_name[r->what], shape);
    if (r->B != r->B_requested) printf(" (asked for batch %lld: it did not fit)", (long long)r->B_requested);
    printf("\n");
    if (!r->ok) {
        printf("FAILED: %s\n", r->error);
    } else if (r->what == W_DECODE) {
        printf("decode (%s): median %.3f ms/token, p90 %.3f, best %.3f over %lld tokens after a %lld-token prompt; "
               "floor %.3f ms/token (%.1f MB per token at %.1f GB/s) -> %.2fx the floor\n",
               r->graph ? "CUDA graph replays" : "eager steps", 1e3 * r->median_s, 1e3 * r->p90_s, 1e3 * r->min_s,
               (long long)r->tokens, (long long)r->prompt, r->floor_ms,
               r->decode_bytes / 1e6, o->bandwidth / 1e9, 1e3 * r->median_s / r->floor_ms);
    } else {
        printf("%s: median %.2f ms, best %.2f ms over %d steps after %d warm-up -> %s (%.3g GFLOP/token); "
               "ideal at peak %s; %s\n",
               what_name[r->what], 1e3 * r->median_s, 1e3 * r->min_s, o->steps, o->warmup, meas,
               r->flops_per_token / 1e9, fl, ratio);
        if (r->what == W_TRAIN)
            printf("phases (median ms%s): forward %.2f, backward %.2f, optimizer %.2f, zero+reset %.2f; loss %.4f -> %.4f%s\n",
                   o->phases ? ", synchronised" : "; without --phases only the total is synchronised",
                   r->phase_ms[PH_FWD], r->phase_ms[PH_BWD], r->phase_ms[PH_OPT], r->phase_ms[PH_ZERO], r->first_loss,
                   r->last_loss, isfinite(r->last_loss) ? "" : "  NOT FINITE");
    }
    if (r->ok) printf("memory: per-step arena %.1f MiB, parameters (+ grads, AdamW) %.1f MiB\n", r->step_mib, r->param_mib);
    print_json(o, r);
    fflush(stdout);
}

static const result *find(int model, int what) {
    for (int i = 0; i < nresults; i++)
        if (results[i].model == model && results[i].what == what && results[i].ok) return &results[i];
    return NULL;
}

static void print_summary(const bench_opts *o) {
    printf("\nsummary: device %s, %s, precision %s, %s attention", sgt_device_name(o->dev), o->config,
           precision_name(o), o->composed ? "composed" : "fused");
    if (o->peak > 0) printf(", peak %.4g TFLOP/s (%s)", o->peak / 1e12, o->peak_given ? "--peak-tflops" : "assumed: H100 SXM");
    if (o->bandwidth > 0) printf(", bandwidth %.1f GB/s (measured copy)", o->bandwidth / 1e9);
    printf("\n%-12s %-8s %-14s %-20s %-20s %s\n", "model", "part", "B x T", "measured", "floor (ideal)", "ratio");
    for (int i = 0; i < nresults; i++) {
        const result *r = &results[i];
        char shape[64], meas[64], fl[64], ratio[64];
        cells(o, r, shape, meas, fl, ratio, sizeof shape);
        printf("%-12s %-8s %-14s %-20s %-20s %s\n", model_name[r->model], what_name[r->what], shape, meas, fl, ratio);
    }
    printf("targets:\n");
    const result *d = find(M_DENSE, W_TRAIN), *s = find(M_SPARSE, W_TRAIN);
    if (d && o->peak > 0) {
        const double mfu = d->flops_per_token * d->tokens_per_s / o->peak;
        printf("  dense training MFU >= 45%% (at T = 1024 on an H100): %.1f%% %s%s\n", 100 * mfu, mfu >= 0.45 ? "PASS" : "FAIL",
               o->dev == SGT_CUDA && o->T == 1024 ? "" : " (not the target's setting)");
    }
    if (d && s)
        printf("  sparse (mask-and-multiply) training tokens/s >= 90%% of dense: %.1f%% %s\n",
               100 * s->tokens_per_s / d->tokens_per_s, s->tokens_per_s >= 0.9 * d->tokens_per_s ? "PASS" : "FAIL");
    for (int k = 0; k < M_N; k++) {
        const result *r = find(k, W_DECODE);
        if (r)
            printf("  %s batch-1 decode within 2x of the bandwidth floor: %.2fx %s\n", model_name[k],
                   1e3 * r->median_s / r->floor_ms, 1e3 * r->median_s <= 2 * r->floor_ms ? "PASS" : "FAIL");
    }
    printf("  training tokens/s >= PyTorch's: see bench/gpu_vs_torch.py\n");
}

/* The library's out-of-memory failures: "CUDA out of memory: ..." and "out of host memory: ..." */
static bool is_oom(const char *err) { return strstr(err, "out of memory") || strstr(err, "out of host memory"); }

static bool run_part(const bench_opts *o, int kind, int what) {
    result *r = &results[nresults++];
    memset(r, 0, sizeof *r);
    r->model = kind;
    r->what = what;
    r->T = o->T;
    int64_t B = what == W_TRAIN ? o->B : what == W_PREFILL ? o->prefill_B : 1;
    r->B_requested = B;
    if (g_device_broken) {
        r->B = B;
        snprintf(r->error, sizeof r->error, "skipped: the device failed in an earlier part");
        print_result(o, r);
        return false;
    }
    void (*const body[W_N])(void *) = {train_body, prefill_body, decode_body};
    for (;;) {
        part_arg a = {o, kind, B, r};
        r->B = B;
        g_body = body[what];
        g_body_arg = &a;
        const int rc = guarded();
        char err[sizeof r->error];
        snprintf(err, sizeof err, "%s", rc ? sgt_last_error() : "");
        release();
        if (rc == 0) {
            r->ok = true;
            break;
        }
        if (what != W_DECODE && B > 1 && !g_device_broken && is_oom(err)) {
            printf("\nnote: %s %s at B x T = %lld x %lld does not fit (%s); retrying at batch %lld\n", model_name[kind],
                   what_name[what], (long long)B, (long long)o->T, err, (long long)(B / 2));
            B /= 2;
            continue;
        }
        snprintf(r->error, sizeof r->error, "%s", err);
        break;
    }
    print_result(o, r);
    return r->ok;
}

/* ---- command line ---- */

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--device cuda|cpu] [--config NAME] [--model dense|sparse|sparse-skip|all[,...]]\n"
            "          [--batch 16] [--seq T] [--precision bf16|f32] [--attention fused|composed] [--steps 10]\n"
            "          [--warmup 3] [--decode-tokens 128] [--prompt 64] [--prefill-batch B] [--peak-tflops X]\n"
            "          [--what train,decode,prefill] [--threads N] [--phases] [--decode graph|eager] [--top_k_blocks K]\n"
            "          [--decode-weights f32|bf16]\n"
            "  presets: %s (default sgt-150m); --seq defaults to the preset's context length;\n"
            "  --prefill-batch to --batch; peak: 989 (bf16) / 494 (f32, TF32) TFLOP/s on cuda, none on cpu\n",
            argv0, gpt_preset_names());
    exit(2);
}

/* Sets flags[i] for each comma-separated name of names[n] in list ("all": every one); false on an unknown name. */
static bool parse_list(const char *list, const char *const *names, int n, bool *flags) {
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    for (int i = 0; i < n; i++) flags[i] = false;
    bool any = false;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int hit = -1;
        if (!strcmp(tok, "all")) {
            for (int i = 0; i < n; i++) flags[i] = true;
            hit = n;
        }
        for (int i = 0; i < n && hit < 0; i++)
            if (!strcmp(tok, names[i])) hit = i;
        if (hit < 0) return false;
        if (hit < n) flags[hit] = true;
        any = true;
    }
    return any;
}

int main(int argc, char **argv) {
    bench_opts o = {.dev = SGT_CUDA, .config = "sgt-150m", .B = 16, .T = 0, .prefill_B = 0, .decode_tokens = 128,
                    .prompt = 64, .compute = SGT_BF16, .steps = 10, .warmup = 3};
    const char *model = "all", *what = "train,prefill,decode";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--phases")) {
            o.phases = true;
            continue;
        }
        if (!v) usage(argv[0]);
        if (!strcmp(a, "--device")) {
            if (!strcmp(v, "cuda")) o.dev = SGT_CUDA;
            else if (!strcmp(v, "cpu")) o.dev = SGT_CPU;
            else usage(argv[0]);
        } else if (!strcmp(a, "--config")) o.config = v;
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--what")) what = v;
        else if (!strcmp(a, "--batch")) o.B = atoll(v);
        else if (!strcmp(a, "--seq")) o.T = atoll(v);
        else if (!strcmp(a, "--prefill-batch")) o.prefill_B = atoll(v);
        else if (!strcmp(a, "--decode-tokens")) o.decode_tokens = atoll(v);
        else if (!strcmp(a, "--prompt")) o.prompt = atoll(v);
        else if (!strcmp(a, "--steps")) o.steps = atoi(v);
        else if (!strcmp(a, "--warmup")) o.warmup = atoi(v);
        else if (!strcmp(a, "--threads")) o.threads = atoi(v);
        else if (!strcmp(a, "--top_k_blocks")) o.top_k = atoll(v);
        else if (!strcmp(a, "--peak-tflops")) {
            o.peak = atof(v) * 1e12;
            o.peak_given = true;
        } else if (!strcmp(a, "--precision")) {
            if (!strcmp(v, "bf16")) o.compute = SGT_BF16;
            else if (!strcmp(v, "f32")) o.compute = SGT_F32;
            else usage(argv[0]);
        } else if (!strcmp(a, "--decode-weights")) {
            if (!strcmp(v, "bf16")) o.decode_weights = SGT_BF16;
            else if (!strcmp(v, "f32")) o.decode_weights = SGT_F32;
            else usage(argv[0]);
        } else if (!strcmp(a, "--decode")) {
            if (!strcmp(v, "graph")) o.decode_eager = false;
            else if (!strcmp(v, "eager")) o.decode_eager = true;
            else usage(argv[0]);
        } else if (!strcmp(a, "--attention")) {
            if (!strcmp(v, "fused")) o.composed = false;
            else if (!strcmp(v, "composed")) o.composed = true;
            else usage(argv[0]);
        } else usage(argv[0]);
        i++;
    }
    if (!parse_list(model, model_name, M_N, o.run_model) || !parse_list(what, what_name, W_N, o.run_what) || o.B < 1 ||
        o.T < 0 || o.prefill_B < 0 || o.steps < 1 || o.warmup < 0 || o.threads < 0 || o.prompt < 1 ||
        o.decode_tokens < 1 || (o.peak_given && o.peak <= 0) || o.top_k < 0)
        usage(argv[0]);

    if (o.dev == SGT_CUDA && !sgt_device_available(SGT_CUDA)) {
        printf("bench_gpu: skipped: no usable CUDA device (no GPU or driver on this machine, or a build without the "
               "CUDA backend); --device cpu with --config nano or tiny checks the benchmark on the CPU\n");
        return 77;
    }
    gpt_config cfg;
    if (gpt_preset(o.config, &cfg)) {
        fprintf(stderr, "bench_gpu: unknown --config '%s' (presets: %s)\n", o.config, gpt_preset_names());
        return 2;
    }
    if (o.top_k > cfg.num_blocks) {
        fprintf(stderr, "bench_gpu: --top_k_blocks %lld exceeds the %lld blocks of preset '%s'\n", (long long)o.top_k,
                (long long)cfg.num_blocks, o.config);
        return 2;
    }
    if (o.T == 0) o.T = cfg.ctx_len;
    if (o.T > cfg.ctx_len) {
        fprintf(stderr, "bench_gpu: --seq %lld exceeds the context length %lld of preset '%s'\n", (long long)o.T,
                (long long)cfg.ctx_len, o.config);
        return 2;
    }
    if (o.prefill_B == 0) o.prefill_B = o.B;
    if (o.prompt > cfg.ctx_len / 2) o.prompt = cfg.ctx_len / 2 > 0 ? cfg.ctx_len / 2 : 1;
    if (o.prompt + o.decode_tokens > cfg.ctx_len) o.decode_tokens = cfg.ctx_len - o.prompt;
    if (o.decode_tokens < 1) o.run_what[W_DECODE] = false;
    if (!o.peak_given && o.dev == SGT_CUDA) o.peak = o.compute == SGT_BF16 ? 989e12 : 494e12;
    if (o.dev == SGT_CPU) sgt_set_threads(o.threads);

    sgt_set_error_handler(on_error);
    printf("bench_gpu: device %s, config %s, precision %s, %s attention, B %lld x T %lld (prefill batch %lld), "
           "%d steps after %d warm-up, decode %lld tokens after a %lld-token prompt, AdamW lr %g, aux weight %g\n",
           sgt_device_name(o.dev), o.config, precision_name(&o), o.composed ? "composed" : "fused", (long long)o.B,
           (long long)o.T, (long long)o.prefill_B, o.steps, o.warmup, (long long)o.decode_tokens, (long long)o.prompt,
           LR, AUX_WEIGHT);
    if (o.peak > 0)
        printf("peak: %.4g TFLOP/s %s\n", o.peak / 1e12,
               o.peak_given ? "(--peak-tflops)"
                            : o.compute == SGT_BF16 ? "(assumed: bf16 dense tensor cores of an H100 SXM; --peak-tflops to change)"
                                                    : "(assumed: TF32 dense tensor cores of an H100 SXM; --peak-tflops to change)");
    else printf("peak: unknown on the CPU (--peak-tflops X for MFU)\n");
    if (o.dev == SGT_CPU) printf("threads: %d\n", sgt_get_threads());

    bool ok = true;
    if (o.run_what[W_DECODE]) {
        g_body = bandwidth_body;
        g_body_arg = &o;
        if (guarded()) {
            printf("bench_gpu: measuring the device bandwidth failed (%s); decode skipped\n", sgt_last_error());
            o.run_what[W_DECODE] = false;
            ok = false;
        } else {
            printf("bandwidth: %.1f GB/s (read + write, best of a few 256 MiB device copies)\n", o.bandwidth / 1e9);
        }
    }
    printf("{\"bench\": \"gpu\", \"impl\": \"sgt\", \"setup\": {\"device\": \"%s\", \"config\": \"%s\", "
           "\"precision\": \"%s\", \"attention\": \"%s\", \"batch\": %lld, \"seq\": %lld, \"prefill_batch\": %lld, "
           "\"prompt\": %lld, \"decode_tokens\": %lld, \"steps\": %d, \"warmup\": %d, \"peak_flops\": %.6g, "
           "\"peak_assumed\": %s, \"bandwidth_gbs\": %.2f}}\n",
           sgt_device_name(o.dev), o.config, precision_name(&o), o.composed ? "composed" : "fused", (long long)o.B,
           (long long)o.T, (long long)o.prefill_B, (long long)o.prompt, (long long)o.decode_tokens, o.steps, o.warmup,
           o.peak, o.peak > 0 && !o.peak_given ? "true" : "false", o.bandwidth / 1e9);
    fflush(stdout);
    for (int k = 0; k < M_N; k++)
        for (int w = 0; w < W_N; w++)
            if (o.run_model[k] && o.run_what[w]) ok &= run_part(&o, k, w);
    print_summary(&o);
    return ok ? 0 : 1;
}
