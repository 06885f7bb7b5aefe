/* train.c: apps/train, the SGT v2 trainer. Trains the dense baseline and the block-sparse (SGT)
 * model side by side on the same data, in the same batch order, with the seed's flags:
 *
 *   train --dataset data.jsonl [--model dense|sparse|both|dense_flop|all] [--max_tokens 500M] [--top_k_blocks 16] ...
 *
 * Models go through the model interface (models/model.h): --config names a preset of any
 * architecture. An sgt-gpt preset (sgt-150m, small, tiny, nano) trains the experiment's models
 * below; another architecture's (gpt2, gpt2-tiny, gpt2-nano) trains that one model, with the same
 * logs, checkpoints and exact resume, into <output_dir>/<arch>/ (gpt2/).
 *
 * Outputs (--output_dir, default outputs/):
 * The models: dense (the same parameters), sparse (SGT) and dense_flop, the FLOP-matched dense
 * baseline (FFN width top_k_blocks x block_size: the compute of the SGT FFN's selected blocks),
 * all three on the same batches (the batch order depends on --seed and the data only).
 *   {dense,sparse}/checkpoint.safetensors   weights, named as the parameters (see models/gpt.h)
 *   {dense,sparse}/train_state.safetensors  AdamW moments + step, sampler position, config
 *   {dense,sparse}/train_state.prev.safetensors  the one before (see save_all: the resume picks
 *                                           the state whose step the weights have)
 *   {dense,sparse}/train_log.json           per logged step: step, tokens, loss, aux_loss, lr,
 *                                           grad_norm, tokens_per_s, elapsed (+ val_loss, and the
 *                                           block-usage summary for sparse)
 *   training_summary.json                   per model: params, tokens, final losses, throughput,
 *                                           wall time; the sparse/dense throughput ratio
 *   cache/<dataset>.tokens                  the tokenised dataset (reused while it is unchanged)
 *
 * A NaN/Inf loss or gradient stops the run with an error before anything is saved, so the last
 * good checkpoint is never overwritten. --resume continues from the checkpoints exactly: the
 * resumed loss curve and weights equal an uninterrupted run's, bit for bit, whether it stopped by
 * --stop_at_step, SIGINT/SIGTERM (the step finishes and is checkpointed; exit 130), SIGKILL or a
 * failed write (tests/apps/test_faults.sh). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../nn/checkpoint.h"
#include "../nn/optim.h"
#include "cli.h"
#include "dist.h"
#include "dp.h"
#include "experiment.h"
#include "lock.h"

typedef struct {
    const char *dataset, *model, *config, *output_dir, *device, *text_field, *tokenizer, *ffn_path, *precision,
        *attention, *router, *schedule;
    int64_t max_tokens, top_k, num_blocks, block_size, batch_size, seq_len, tokens_per_step, warmup, seed;
    int64_t eval_every, log_every, eval_tokens, ckpt_every, stop_at_step, threads, zero;
    const char *data_parallel;
    double lr, min_lr, weight_decay, aux_w, val_fraction, grad_clip, balance_rate, decay_frac;
    bool resume, progress;
} train_args;

typedef struct {
    const char *kind, *precision, *attention;
    int64_t params, router_params, tokens, steps;
    double final_loss, final_val, tokens_per_s, wall;
    bool done;
} model_result;

#define FAIL(...) do { fprintf(stderr, "train: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

/* Data parallelism (dist.h): every rank runs this program on its share of each global batch; rank 0
 * alone prints, writes logs, checkpoints and the summary. FAIL above is for what one rank meets
 * alone (its exit stops the others: mpirun ends the job); FAIL_ALL for what every rank sees at
 * once (a non-finite loss or norm, after the reduction): one message, from rank 0. */
static dist_ctx g_dist = {.world = 1, .local_world = 1};
#define RANK0 (g_dist.rank == 0)
#define SAY(...) do { if (RANK0) fprintf(stderr, __VA_ARGS__); } while (0)
#define FAIL_ALL(...) do { if (RANK0) { fprintf(stderr, "train: " __VA_ARGS__); fputc('\n', stderr); } exit(1); } while (0)

static bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) s = 0;
    if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

/* normalised entropy, dead blocks and max load / mean - 1 of one layer's counts */
static void usage_stats(const double *cnt, int64_t nb, double *entropy, int *dead, double *maxviol) {
    double tot = 0, mx = 0, h = 0;
    *dead = 0;
    for (int64_t j = 0; j < nb; j++) {
        tot += cnt[j];
        mx = cnt[j] > mx ? cnt[j] : mx;
        *dead += cnt[j] == 0;
    }
    for (int64_t j = 0; j < nb && tot > 0; j++)
        if (cnt[j] > 0) h -= cnt[j] / tot * log(cnt[j] / tot);
    *entropy = nb > 1 ? h / log((double)nb) : 1.0;
    *maxviol = tot > 0 ? mx / (tot / (double)nb) - 1 : 0;
}

static cJSON *state_json(const train_args *a, const sgt_model *m, int64_t step, int64_t tokens, double elapsed,
                         const sgt_sampler_state *ss) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "step", (double)step);
    cJSON_AddNumberToObject(j, "tokens", (double)tokens);
    cJSON_AddNumberToObject(j, "elapsed", elapsed);
    cJSON_AddItemToObject(j, "config", cJSON_Duplicate(m->config, 1));
    char buf[32];
    cJSON *s = j;
#define U64(name, v) snprintf(buf, sizeof buf, "%llu", (unsigned long long)(v)), cJSON_AddStringToObject(s, name, buf)
    if (m->mode) U64("dropout_offset", m->mode->offset); /* the dropout masks go on where they stopped */
    s = cJSON_AddObjectToObject(j, "sampler");
    U64("seed", ss->seed);
    U64("B", ss->B);
    U64("T", ss->T);
    U64("n_windows", ss->n_windows);
    U64("epoch", ss->epoch);
    U64("index", ss->index);
#undef U64
    cJSON *h = cJSON_AddObjectToObject(j, "hyper");
    cJSON_AddNumberToObject(h, "lr", a->lr);
    cJSON_AddNumberToObject(h, "min_lr", a->min_lr);
    cJSON_AddStringToObject(h, "schedule", a->schedule);
    cJSON_AddNumberToObject(h, "decay_frac", a->decay_frac);
    cJSON_AddNumberToObject(h, "warmup", (double)a->warmup);
    cJSON_AddNumberToObject(h, "weight_decay", a->weight_decay);
    cJSON_AddNumberToObject(h, "aux_loss_weight", a->aux_w);
    cJSON_AddNumberToObject(h, "balance_rate", a->balance_rate);
    cJSON_AddNumberToObject(h, "tokens_per_step", (double)a->tokens_per_step);
    cJSON_AddNumberToObject(h, "max_tokens", (double)a->max_tokens);
    cJSON_AddNumberToObject(h, "seed", (double)a->seed);
    return j;
}

static uint64_t json_u64(const cJSON *o, const char *name) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(x) ? strtoull(x->valuestring, NULL, 10) : 0;
}

/* The files of one checkpoint, and the order they are written in (every one by a complete,
 * fsynced temporary renamed over it), chosen so that a process killed anywhere in between, or a
 * write failing half way (a full disk), leaves a set --resume continues from exactly:
 *   1. train_log.json: a resume keeps its entries up to the step it resumes at, so a newer log is
 *      harmless;
 *   2. train_state.safetensors (AdamW moments, sampler, step) after the one it replaces was
 *      renamed to train_state.prev.safetensors;
 *   3. checkpoint.safetensors, the weights, tagged with their step in the metadata.
 * The resume loads the weights and whichever train state, current or previous, has their step. */
typedef struct {
    char ckpt[4200], state[4200], prev[4200], log[4200];
} ckpt_paths;

static void ckpt_paths_init(ckpt_paths *c, const char *dir) {
    snprintf(c->ckpt, sizeof c->ckpt, "%s/checkpoint.safetensors", dir);
    snprintf(c->state, sizeof c->state, "%s/train_state.safetensors", dir);
    snprintf(c->prev, sizeof c->prev, "%s/train_state.prev.safetensors", dir);
    snprintf(c->log, sizeof c->log, "%s/train_log.json", dir);
}

/* Every rank calls it (ZeRO-1 gathers the moment shards); rank 0 writes. */
static void save_all(const ckpt_paths *c, int64_t step, nn_params *p, nn_adamw *opt, cJSON *state, cJSON *log,
                     dp_sync *dp, sgt_ctx *scratch) {
    char err[512], stepbuf[32];
    char *st = cJSON_PrintUnformatted(state);
    cJSON *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "sgt");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(state, "config"), "arch");
    cJSON_AddStringToObject(meta, "arch", cJSON_IsString(arch) ? arch->valuestring : "sgt-gpt");
    char *cfg_text = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(state, "config"));
    cJSON_AddStringToObject(meta, "config", cfg_text); /* safetensors metadata values are strings */
    free(cfg_text);
    snprintf(stepbuf, sizeof stepbuf, "%lld", (long long)step);
    cJSON_AddStringToObject(meta, "step", stepbuf);
    char *mt = cJSON_PrintUnformatted(meta);
    if (RANK0 && exp_write_json(c->log, log, err, sizeof err)) FAIL("%s", err);
    if (RANK0 && file_exists(c->state) && rename(c->state, c->prev))
        FAIL("%s: cannot rename it to %s: %s", c->state, c->prev, strerror(errno));
    if (dp ? dp_save_train_state(dp, opt, scratch, c->state, st, err, sizeof err)
           : nn_save_train_state(opt, c->state, st, err, sizeof err))
        FAIL("%s", err);
    if (RANK0 && nn_save_params(p, c->ckpt, mt, err, sizeof err)) FAIL("%s", err);
    free(st);
    free(mt);
    cJSON_Delete(meta);
}

/* The step a checkpoint's weights or a train state were saved at (-1: unreadable or untagged). */
static int64_t saved_step(const char *path, bool is_state) {
    char *mj = NULL, err[512];
    if (!file_exists(path) || nn_read_metadata(path, &mj, err, sizeof err)) return -1;
    cJSON *meta = cJSON_Parse(mj), *inner = NULL;
    free(mj);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(meta, "step");
    if (is_state) { /* the trainer's own JSON, stored as a string */
        const cJSON *sj = cJSON_GetObjectItemCaseSensitive(meta, "state");
        inner = cJSON_IsString(sj) ? cJSON_Parse(sj->valuestring) : NULL;
        s = cJSON_GetObjectItemCaseSensitive(inner, "step");
    }
    int64_t r = cJSON_IsNumber(s) ? (int64_t)s->valuedouble
              : cJSON_IsString(s) ? strtoll(s->valuestring, NULL, 10) : -1;
    cJSON_Delete(inner);
    cJSON_Delete(meta);
    return r;
}

/* The train state that belongs to the checkpoint's weights: the current one, or the previous one
 * when train stopped between writing the state and the weights. */
static const char *matching_state(const ckpt_paths *c) {
    int64_t w = saved_step(c->ckpt, false), s = saved_step(c->state, true), pv = saved_step(c->prev, true);
    if (w < 0) return file_exists(c->state) ? c->state : NULL; /* an untagged checkpoint of an older train */
    if (s == w) return c->state;
    if (pv == w) return c->prev;
    FAIL("--resume: %s holds step %lld but neither %s (step %lld) nor %s (step %lld) is its training state; "
         "resume is impossible, train afresh without --resume", c->ckpt, (long long)w, c->state, (long long)s,
         c->prev, (long long)pv);
}

/* SIGINT (Ctrl-C) or SIGTERM (a scheduler's notice): the step in flight finishes and is
 * checkpointed, then train exits 130; --resume continues exactly. A second signal ends it at once. */
static volatile sig_atomic_t g_interrupt;
static void on_interrupt(int sig) {
    if (g_interrupt) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    g_interrupt = sig;
}

/* whether any rank was interrupted (every rank must stop at the same step) */
static bool interrupted(void) {
    double f = g_interrupt ? 1 : 0;
    if (g_dist.world > 1) dist_sum_f64(&g_dist, &f, 1);
    return f > 0;
}

/* The SGT experiment's three models (sgt-gpt presets), or the one model of another architecture's
 * preset (--config gpt2-tiny ...: MODEL_OTHER, in <output_dir>/<arch>). */
enum { MODEL_DENSE, MODEL_SPARSE, MODEL_DENSE_FLOP, MODEL_OTHER, N_MODELS };
static const char *const model_kinds[N_MODELS] = {"dense", "sparse", "dense_flop", NULL};

/* The config of model `kind`: the sgt-gpt preset with the seed's overrides, or another
 * architecture's preset as it is; its vocabulary the tokenizer's (the presets' serve unit tests). */
static cJSON *model_config(const train_args *a, int kind, int64_t vocab) {
    char err[512];
    cJSON *j;
    if (kind == MODEL_OTHER) {
        j = sgt_model_preset(a->config, err, sizeof err);
        if (!j) FAIL("--config: %s", err);
    } else {
        gpt_config cfg;
        if (exp_model_config(&cfg, a->config, kind == MODEL_SPARSE, a->num_blocks, a->block_size, a->top_k, a->seq_len,
                             err, sizeof err))
            FAIL("%s", err);
        if (kind == MODEL_DENSE_FLOP) { /* the FFN compute of the SGT model's k selected blocks */
            gpt_config sp;
            if (exp_model_config(&sp, a->config, true, a->num_blocks, a->block_size, a->top_k, a->seq_len, err, sizeof err))
                FAIL("%s", err);
            cfg.d_ff = sp.top_k * sp.block_size;
            if (gpt_config_validate(&cfg, err, sizeof err)) FAIL("dense_flop: %s", err);
        }
        if (kind == MODEL_SPARSE && nn_router_kind_parse(a->router, &cfg.router)) FAIL("--router: unknown '%s'", a->router);
        j = gpt_config_to_json(&cfg);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(j, "vocab", cJSON_CreateNumber((double)vocab));
    return j;
}

static model_result train_model(const train_args *a, exp_data *data, sgt_device dev, int kind,
                                const sgt_model_arch *arch) {
    model_result res = {.kind = kind == MODEL_OTHER ? arch->name : model_kinds[kind]};
    char err[512], dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", a->output_dir, res.kind);
    if (exp_mkdirs(dir, err, sizeof err)) FAIL("%s", err);
    cJSON *cfg = model_config(a, kind, sgt_tokenizer_vocab_size(data->tok));
    const sgt_model_runtime rt = {
        .compute = exp_compute_dtype(a->precision, dev, arch),
        .composed_attention = !strcmp(a->attention, "composed"),
        .ffn_skip = !strcmp(a->ffn_path, "skip")};
    res.precision = rt.compute == SGT_BF16 ? "bf16" : "f32";
    res.attention = a->attention;
    const int64_t ctx_len = (int64_t)cJSON_GetObjectItemCaseSensitive(cfg, "ctx_len")->valuedouble;
    const int64_t B = a->batch_size, T = a->seq_len > 0 ? a->seq_len : ctx_len;
    if (a->tokens_per_step % (B * T))
        FAIL("--tokens_per_step %lld is not a multiple of --batch_size x --seq_len = %lld", (long long)a->tokens_per_step,
             (long long)(B * T));
    const int64_t accum = a->tokens_per_step / (B * T);
    /* B is the global micro-batch: rank r trains on its rows [r*lB, (r+1)*lB) of every one */
    const int W = g_dist.world;
    if (B % W)
        FAIL("--batch_size %lld (the global micro-batch) does not split evenly across %d ranks", (long long)B, W);
    const int64_t lB = B / W;
    const int64_t total_steps = a->max_tokens / a->tokens_per_step > 0 ? a->max_tokens / a->tokens_per_step : 1;

    nn_params *p = nn_params_create((uint64_t)a->seed, SGT_F32, dev);
    ckpt_paths cp;
    ckpt_paths_init(&cp, dir);
    const bool resuming = a->resume && file_exists(cp.ckpt);
    const char *stpath = resuming ? matching_state(&cp) : NULL;
    if (resuming && !stpath) FAIL("--resume: %s has no training state beside it (%s)", cp.ckpt, cp.state);
    p->skip_init = resuming;
    sgt_model *m = sgt_model_build(cfg, &rt, p, err, sizeof err);
    if (!m) FAIL("%s: %s", res.kind, err);
    cJSON_Delete(cfg);
    sgt_model_set_train(m, true); /* dropout on (evaluation switches it off for its scoring) */
    /* under mpirun every rank draws its own dropout masks (rank 0 those of one process): one seed
     * on every rank would give each rank's share of a batch the same mask pattern. So a data-
     * parallel run of a model with dropout is not one process's bit for bit (the SGT GPT has none) */
    if (m->mode) m->mode->seed += (uint64_t)g_dist.rank * 0x9E3779B97F4A7C15ull;
    res.params = sgt_model_param_count(m);
    res.router_params = sgt_model_router_param_count(m);
    const bool use_dp = W > 1 || !strcmp(a->data_parallel, "on");
    dp_sync dps, *dp = NULL;
    if (use_dp) {
        bool nccl = dev == SGT_CUDA && dist_have_nccl();
        if (nccl && !g_dist.nccl && dist_nccl_init(&g_dist, err, sizeof err)) FAIL("%s", err);
        if (dp_init(&dps, &g_dist, p, (int)a->zero, nccl, err, sizeof err)) FAIL("%s", err);
        dp = &dps;
        SAY("%s: data parallel over %d rank%s (%s), %s, %lld floats per shard\n", res.kind, W, W > 1 ? "s" : "",
            nccl ? "NCCL" : "MPI", a->zero ? "ZeRO-1: optimizer state sharded" : "ZeRO-0", (long long)dps.chunk);
    }
    /* ZeRO-1: the moments of this rank's parameters only */
    nn_adamw *opt = nn_adamw_create(dp && a->zero ? &dp->owned : p, 0.9, 0.95, 1e-8, a->weight_decay);
    sgt_arena *arena = sgt_arena_create("step", dev, 0, 0);
    sgt_ctx ctx = {.arena = arena, .device = dev};
    ag_tape tape;
    ag_tape_init(&tape, &ctx);
    sgt_batch_sampler sampler;
    if (sgt_batch_sampler_init(&sampler, data->split.train, data->split.n_train, (int)B, (int)T, (uint64_t)a->seed,
                               err, sizeof err) < 0)
        FAIL("%s: %s", a->dataset, err);

    cJSON *log = cJSON_CreateObject();
    cJSON_AddStringToObject(log, "model", res.kind);
    cJSON_AddItemToObject(log, "config", cJSON_Duplicate(m->config, 1));
    cJSON_AddNumberToObject(log, "params", (double)res.params);
    cJSON_AddNumberToObject(log, "router_params", (double)res.router_params);
    cJSON *entries = cJSON_AddArrayToObject(log, "log");
    int64_t start_step = 0, tokens = 0;
    double elapsed0 = 0;

    if (resuming) {
        char *stj = NULL;
        if (nn_load_params(p, cp.ckpt, err, sizeof err)) FAIL("--resume: %s", err);
        if (dp ? dp_load_train_state(dp, opt, &ctx, stpath, &stj, err, sizeof err)
               : nn_load_train_state(opt, stpath, &stj, err, sizeof err))
            FAIL("--resume: %s", err);
        sgt_arena_reset(arena);
        cJSON *st = cJSON_Parse(stj);
        free(stj);
        if (!st) FAIL("--resume: %s: the training state is not valid JSON", stpath);
        const cJSON *saved = cJSON_GetObjectItemCaseSensitive(st, "config");
        if (!sgt_model_arch_of(saved, err, sizeof err)) FAIL("--resume: %s: %s", stpath, err);
        if (!sgt_model_same(m, saved))
            FAIL("--resume: %s was trained with another model config than the flags give", stpath);
        if (m->mode) m->mode->offset = json_u64(st, "dropout_offset");
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(st, "sampler");
        sgt_sampler_state ss = {json_u64(s, "seed"), json_u64(s, "B"), json_u64(s, "T"),
                                json_u64(s, "n_windows"), json_u64(s, "epoch"), json_u64(s, "index")};
        if (sgt_batch_sampler_restore(&sampler, &ss, err, sizeof err) < 0) FAIL("--resume: %s: %s", stpath, err);
        start_step = (int64_t)cJSON_GetObjectItemCaseSensitive(st, "step")->valuedouble;
        tokens = (int64_t)cJSON_GetObjectItemCaseSensitive(st, "tokens")->valuedouble;
        elapsed0 = cJSON_GetObjectItemCaseSensitive(st, "elapsed")->valuedouble;
        cJSON_Delete(st);
        dist_barrier(&g_dist); /* every rank has read it */
        /* the previous state matched: it becomes the current one again, so that the next save's
         * rotation keeps a state that matches the weights on disk */
        if (RANK0 && stpath == cp.prev && rename(cp.prev, cp.state))
            FAIL("--resume: cannot rename %s to %s: %s", cp.prev, cp.state, strerror(errno));
        /* keep the log up to the checkpoint */
        cJSON *old = exp_read_json(cp.log, err, sizeof err);
        const cJSON *oe = old ? cJSON_GetObjectItemCaseSensitive(old, "log") : NULL;
        const cJSON *e;
        cJSON_ArrayForEach(e, oe) {
            if (cJSON_GetObjectItemCaseSensitive(e, "step")->valuedouble <= (double)start_step)
                cJSON_AddItemToArray(entries, cJSON_Duplicate(e, 1));
        }
        cJSON_Delete(old);
        SAY("%s: resuming at step %lld of %lld (%lld tokens)\n", res.kind, (long long)start_step,
                (long long)total_steps, (long long)tokens);
    }

    SAY("%s: %s, %lld params (router %lld), %lld steps of %lld tokens (B %lld x T %lld x %lld micro)\n", res.kind,
        sgt_model_name(m), (long long)res.params,
        (long long)res.router_params, (long long)total_steps, (long long)a->tokens_per_step, (long long)B, (long long)T,
        (long long)accum);
    nn_lr_plan sched = {.max_lr = a->lr, .min_lr = a->min_lr, .warmup = a->warmup, .total = total_steps,
                        .decay_frac = a->decay_frac};
    if (nn_lr_kind_parse(a->schedule, &sched.kind, err, sizeof err)) FAIL("--schedule: %s", err);
    int32_t *buf = malloc(sizeof(int32_t) * (size_t)(B * (T + 1)));
    const bool routed = m->n_route > 0; /* block-usage statistics and balancing: the SGT model */
    const int64_t nb = routed ? m->route_blocks : 1, L = routed ? m->n_route : 1;
    double *usage = calloc((size_t)(L * nb), sizeof(double)), *cnt = malloc(sizeof(double) * (size_t)nb),
           *step_load = calloc((size_t)(L * nb), sizeof(double)),
           *prob = malloc(sizeof(double) * (size_t)nb);
    const bool tty = a->progress && isatty(2);
    double t_start = exp_now(), win_loss = 0, win_aux = 0, win_time = 0, last_val = NAN;
    int64_t win_steps = 0, win_tokens = 0;
    double throughput_sum = 0;
    int64_t throughput_n = 0;

    for (int64_t step = start_step; step < total_steps; step++) {
        double t0 = exp_now(), loss_sum = 0, aux_sum = 0;
        for (int64_t mi = 0; mi < accum; mi++) {
            sgt_batch_sampler_next(&sampler, buf);
            sgt_tensor *all = sgt_from_i32(&ctx, SGT_SHAPE(lB, T + 1), buf + g_dist.rank * lB * (T + 1));
            sgt_tensor *x = sgt_contiguous(&ctx, sgt_narrow(&ctx, all, 1, 0, T));
            sgt_tensor *y = sgt_contiguous(&ctx, sgt_narrow(&ctx, all, 1, 1, T));
            sgt_model_fwd o = {.targets = y, .aux_weight = a->aux_w};
            sgt_model_out out = sgt_model_forward(&ctx, m, x, &o);
            double l = sgt_item(out.ce), ax = out.aux ? sgt_item(out.aux) : 0;
            loss_sum += l;
            aux_sum += ax;
            if (routed)
                for (int64_t li = 0; li < L; li++) {
                    nn_route_stats(&out.route[li], cnt, prob);
                    for (int64_t j = 0; j < nb; j++) usage[li * nb + j] += cnt[j];
                    if (m->balances) /* this step's load, for the balancing bias */
                        for (int64_t j = 0; j < nb; j++) step_load[li * nb + j] += cnt[j];
                }
            ag_backward(&tape, accum > 1 ? sgt_mul_scalar(&ctx, out.loss, 1.0 / (double)accum) : out.loss);
            ag_step_end(&tape);
        }
        if (W > 1) { /* the global batch's mean loss: every rank's share weighs the same */
            double la[2] = {loss_sum, aux_sum};
            dist_sum_f64(&g_dist, la, 2);
            loss_sum = la[0] / W;
            aux_sum = la[1] / W;
        }
        if (!isfinite(loss_sum) || !isfinite(aux_sum))
            FAIL_ALL("%s: the loss is %g at step %lld; stopping without saving (the last good checkpoint in %s is kept)",
                     res.kind, !isfinite(loss_sum) ? loss_sum / (double)accum : aux_sum, (long long)step, dir);
        double gn = dp ? dp_reduce_clip(dp, a->grad_clip, &ctx) : nn_clip_grad_norm(p, &ctx, a->grad_clip);
        if (!isfinite(gn))
            FAIL_ALL("%s: the gradient norm is %g at step %lld; stopping without saving (the last good checkpoint in %s is kept)",
                 res.kind, gn, (long long)step, dir);
        double lr = nn_lr_plan_at(&sched, step);
        nn_adamw_step(opt, lr);
        if (dp && a->zero) dp_gather_params(dp);
        if (m->balances) { /* after the step, as DeepSeek-V3 does */
            dist_sum_f64(&g_dist, step_load, L * nb); /* the global batch's load */
            sgt_model_balance(m, step_load, a->balance_rate);
            memset(step_load, 0, sizeof(double) * (size_t)(L * nb));
        }
        nn_params_zero_grad(p);
        sgt_arena_reset(arena);
        double dt = exp_now() - t0;
        tokens += a->tokens_per_step;
        win_loss += loss_sum / (double)accum;
        win_aux += aux_sum / (double)accum;
        win_time += dt;
        win_steps++;
        win_tokens += a->tokens_per_step;
        if (step > start_step || total_steps - start_step == 1) {
            throughput_sum += (double)a->tokens_per_step / dt;
            throughput_n++;
        }
        const bool intr = interrupted();
        bool last = step + 1 == total_steps, stop = (a->stop_at_step > 0 && step + 1 == a->stop_at_step) || intr;
        bool do_log = (step + 1) % a->log_every == 0 || last || stop;
        bool do_eval = (a->eval_every > 0 && (step + 1) % a->eval_every == 0) || last || stop;
        if (do_eval && RANK0) { /* evaluation stays on rank 0 */
            ag_no_grad_begin(&tape);
            last_val = exp_val_nll(&ctx, m, data->split.val, data->split.n_val, B, T, a->eval_tokens, NULL, NULL, NULL);
            ag_no_grad_end(&tape);
            sgt_arena_reset(arena);
        }
        if (do_log) {
            double elapsed = elapsed0 + exp_now() - t_start;
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "step", (double)(step + 1));
            cJSON_AddNumberToObject(e, "tokens", (double)tokens);
            cJSON_AddNumberToObject(e, "loss", win_loss / (double)win_steps);
            cJSON_AddNumberToObject(e, "aux_loss", win_aux / (double)win_steps);
            cJSON_AddNumberToObject(e, "lr", lr);
            cJSON_AddNumberToObject(e, "grad_norm", gn);
            cJSON_AddNumberToObject(e, "tokens_per_s", (double)win_tokens / win_time);
            cJSON_AddNumberToObject(e, "elapsed", elapsed);
            if (do_eval) cJSON_AddNumberToObject(e, "val_loss", last_val);
            if (routed) {
                dist_sum_f64(&g_dist, usage, L * nb); /* every rank's tokens */
                cJSON *bu = cJSON_AddObjectToObject(e, "block_usage");
                cJSON *je = cJSON_AddArrayToObject(bu, "entropy"), *jd = cJSON_AddArrayToObject(bu, "dead"),
                      *jm = cJSON_AddArrayToObject(bu, "max_violation");
                for (int64_t li = 0; li < L; li++) {
                    double h, mv;
                    int dead;
                    usage_stats(&usage[li * nb], nb, &h, &dead, &mv);
                    cJSON_AddItemToArray(je, cJSON_CreateNumber(h));
                    cJSON_AddItemToArray(jd, cJSON_CreateNumber(dead));
                    cJSON_AddItemToArray(jm, cJSON_CreateNumber(mv));
                }
                memset(usage, 0, sizeof(double) * (size_t)(L * nb));
            }
            cJSON_AddItemToArray(entries, e);
            res.final_loss = win_loss / (double)win_steps;
            double tps = (double)win_tokens / win_time;
            char eta[32], vbuf[48] = "";
            fmt_eta(eta, sizeof eta, (double)(total_steps - step - 1) * win_time / (double)win_steps);
            if (do_eval) snprintf(vbuf, sizeof vbuf, " val %.4f", last_val);
            if (!RANK0) {
            } else if (tty) {
                int w = 30, fill = (int)((double)w * (double)(step + 1) / (double)total_steps);
                fprintf(stderr, "\r%s [%.*s%*s] %lld/%lld loss %.4f%s %.0f tok/s ETA %s   ", res.kind, fill,
                        "==============================", w - fill, "", (long long)(step + 1), (long long)total_steps,
                        res.final_loss, vbuf, tps, eta);
                if (last || stop) fputc('\n', stderr);
            } else {
                fprintf(stderr, "%s step %lld/%lld tokens %lld loss %.4f aux %.4f%s lr %.2e gnorm %.3f %.0f tok/s ETA %s\n",
                        res.kind, (long long)(step + 1), (long long)total_steps, (long long)tokens, res.final_loss,
                        win_aux / (double)win_steps, vbuf, lr, gn, tps, eta);
            }
            win_loss = win_aux = win_time = 0;
            win_steps = win_tokens = 0;
        }
        if ((a->ckpt_every > 0 && (step + 1) % a->ckpt_every == 0) || last || stop) {
            sgt_sampler_state ss = sgt_batch_sampler_state(&sampler);
            cJSON *st = state_json(a, m, step + 1, tokens, elapsed0 + exp_now() - t_start, &ss);
            save_all(&cp, step + 1, p, opt, st, log, dp, &ctx);
            sgt_arena_reset(arena);
            cJSON_Delete(st);
        }
        res.steps = step + 1;
        if (stop) {
            if (intr)
                SAY("%s: interrupted (%s) after step %lld, checkpoint saved; continue with --resume\n", res.kind,
                    g_interrupt == SIGTERM ? "SIGTERM" : g_interrupt == SIGINT ? "SIGINT" : "another rank",
                    (long long)(step + 1));
            else
                SAY("%s: stopped at step %lld (--stop_at_step); continue with --resume\n", res.kind,
                    (long long)(step + 1));
            break;
        }
    }
    res.tokens = tokens;
    res.final_val = last_val;
    res.tokens_per_s = throughput_n ? throughput_sum / (double)throughput_n : 0;
    res.wall = elapsed0 + exp_now() - t_start;
    res.done = res.steps == total_steps;
    free(buf);
    free(usage);
    free(step_load);
    free(cnt);
    free(prob);
    cJSON_Delete(log);
    sgt_batch_sampler_free(&sampler);
    ag_tape_detach(&tape);
    sgt_arena_destroy(arena);
    nn_adamw_destroy(opt);
    if (dp) dp_free(dp);
    sgt_model_free(m);
    nn_params_destroy(p);
    return res;
}

static cJSON *result_json(const model_result *r) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "params", (double)r->params);
    cJSON_AddNumberToObject(j, "router_params", (double)r->router_params);
    cJSON_AddStringToObject(j, "precision", r->precision ? r->precision : "f32");
    cJSON_AddStringToObject(j, "attention", r->attention ? r->attention : "fused");
    cJSON_AddNumberToObject(j, "tokens", (double)r->tokens);
    cJSON_AddNumberToObject(j, "steps", (double)r->steps);
    cJSON_AddNumberToObject(j, "final_train_loss", r->final_loss);
    cJSON_AddNumberToObject(j, "final_val_loss", r->final_val);
    cJSON_AddNumberToObject(j, "tokens_per_s", r->tokens_per_s);
    cJSON_AddNumberToObject(j, "wall_time_s", r->wall);
    cJSON_AddBoolToObject(j, "complete", r->done);
    return j;
}

int main(int argc, char **argv) {
    train_args a = {
        .model = "both", .ffn_path = "mask", .precision = "auto", .attention = "fused", .config = "sgt-150m", .output_dir = "outputs", .device = "auto", .text_field = "text",
        .max_tokens = 500000000, .batch_size = 8, .warmup = 100, .seed = 1337, .eval_every = 200, .log_every = 10,
        .eval_tokens = 65536, .lr = 6e-4, .min_lr = 6e-5, .weight_decay = 0.1, .aux_w = 0.01, .router = "ste", .balance_rate = 1e-3,
        .val_fraction = SGT_VAL_FRACTION_DEFAULT, .grad_clip = 1.0, .progress = true, .data_parallel = "auto", .schedule = "cosine",
    };
    cli_flag flags[] = {
        {"dataset", CLI_STRING, &a.dataset, "JSONL file, one {\"text\": ...} object per line (required)", 0, 0, 0, 0},
        {"model", CLI_CHOICE, &a.model, "which model(s) to train: both = dense + sparse; dense_flop = the FLOP-matched dense baseline (FFN width top_k_blocks x block_size); all = the three", "dense|sparse|both|dense_flop|all", 0, 0, 0},
        {"max_tokens", CLI_INT, &a.max_tokens, "training tokens per model (500M, 1e6 style suffixes k/M/G)", 0, 1, 1e15, 0},
        {"top_k_blocks", CLI_INT, &a.top_k, "active FFN blocks per token (0: the preset's)", 0, 0, 4096, 0},
        {"num_blocks", CLI_INT, &a.num_blocks, "FFN blocks (0: the preset's)", 0, 0, 4096, 0},
        {"block_size", CLI_INT, &a.block_size, "FFN block width (0: the preset's)", 0, 0, 65536, 0},
        {"ffn_path", CLI_CHOICE, &a.ffn_path, "sparse FFN kernel: mask-and-multiply (the seed's) or skip unselected blocks", "mask|skip", 0, 0, 0},
        {"precision", CLI_CHOICE, &a.precision, "f32, or bf16 mixed precision (f32 master weights, norms, softmax statistics, loss and AdamW); auto: bf16 on cuda, f32 on cpu", "auto|f32|bf16", 0, 0, 0},
        {"attention", CLI_CHOICE, &a.attention, "fused attention kernel, or the composed reference (matmul, causal softmax, matmul)", "fused|composed", 0, 0, 0},
        {"config", CLI_STRING, &a.config, "model preset: sgt-150m, small, tiny or nano (the SGT experiment's GPT); gpt2, gpt2-tiny or gpt2-nano (the classic GPT-2, trained alone into <output_dir>/gpt2)", 0, 0, 0, 0},
        {"batch_size", CLI_INT, &a.batch_size, "sequences per micro-batch, the global one: under mpirun -np N each rank trains on batch_size/N of them (N must divide it), so the same flags train the same model", 0, 1, 1 << 20, 0},
        {"seq_len", CLI_INT, &a.seq_len, "tokens per sequence (0: the preset's context length)", 0, 0, 1 << 20, 0},
        {"tokens_per_step", CLI_INT, &a.tokens_per_step, "tokens per optimizer step, over all ranks; a multiple of batch_size*seq_len gives gradient accumulation (0: one micro-batch)", 0, 0, 1e12, 0},
        {"lr", CLI_DOUBLE, &a.lr, "peak learning rate", 0, 1e-12, 1e6, 0},
        {"min_lr", CLI_DOUBLE, &a.min_lr, "final learning rate of the decay", 0, 0, 10, 0},
        {"schedule", CLI_CHOICE, &a.schedule, "learning rate after the warmup: cosine decay to min_lr, constant, linear decay, or wsd (warmup-stable-decay: constant, then linear decay over the last --decay_frac of the steps)", "cosine|constant|linear|wsd", 0, 0, 0},
        {"decay_frac", CLI_DOUBLE, &a.decay_frac, "--schedule wsd: the share of all steps spent decaying (0: 0.2)", 0, 0, 1, 0},
        {"warmup", CLI_INT, &a.warmup, "linear warmup steps", 0, 0, 1e12, 0},
        {"weight_decay", CLI_DOUBLE, &a.weight_decay, "AdamW decoupled weight decay (not on norms, biases, embeddings)", 0, 0, 10, 0},
        {"aux_loss_weight", CLI_DOUBLE, &a.aux_w, "weight of the load-balancing loss (sparse)", 0, 0, 1000, 0},
        {"router", CLI_CHOICE, &a.router, "sparse router: ste = the seed's straight-through top-k; sigmoid = sigma-MoE, the selected blocks scaled by their sigmoid gates; balanced = ste with DeepSeek-V3's auxiliary-loss-free bias balancing (use --aux_loss_weight 0)", NN_ROUTER_KIND_NAMES, 0, 0, 0},
        {"balance_rate", CLI_DOUBLE, &a.balance_rate, "--router balanced: the bias update per step", 0, 0, 10, 0},
        {"grad_clip", CLI_DOUBLE, &a.grad_clip, "global gradient-norm clip", 0, 1e-12, 1e12, 0},
        {"output_dir", CLI_STRING, &a.output_dir, "where checkpoints, logs and the token cache go (one train at a time: <dir>/.lock)", 0, 0, 0, 0},
        {"device", CLI_CHOICE, &a.device, "where to train", "auto|cpu|cuda", 0, 0, 0},
        {"seed", CLI_INT, &a.seed, "seed of the initialisation and the batch order", 0, 0, 1e18, 0},
        {"resume", CLI_BOOL, &a.resume, "continue from the checkpoints in output_dir", 0, 0, 0, 0},
        {"eval_every", CLI_INT, &a.eval_every, "validation every N steps (and at the end)", 0, 0, 1e12, 0},
        {"eval_tokens", CLI_INT, &a.eval_tokens, "validation tokens per periodic evaluation (0: all)", 0, 0, 1e15, 0},
        {"log_every", CLI_INT, &a.log_every, "log every N steps", 0, 1, 1e12, 0},
        {"ckpt_every", CLI_INT, &a.ckpt_every, "checkpoint every N steps (0: at the end only)", 0, 0, 1e12, 0},
        {"stop_at_step", CLI_INT, &a.stop_at_step, "stop after this step with a checkpoint, as an interruption would (0: never)", 0, 0, 1e12, 0},
        {"val_fraction", CLI_DOUBLE, &a.val_fraction, "share of documents held out for validation", 0, 0, 0.9, 0},
        {"text_field", CLI_STRING, &a.text_field, "JSON key of the text", 0, 0, 0, 0},
        {"tokenizer", CLI_STRING, &a.tokenizer, "GPT-2 tokenizer directory (default: $SGT_TOKENIZER, $SGT_SHARED/tokenizer/gpt2, ../shared/tokenizer/gpt2)", 0, 0, 0, 0},
        {"threads", CLI_INT, &a.threads, "CPU threads (0: all, or the cores over the ranks on this machine under mpirun)", 0, 0, 4096, 0},
        {"zero", CLI_INT, &a.zero, "under mpirun: 1 shards the AdamW moments and the update across the ranks (ZeRO-1); 0 keeps them whole on every rank", 0, 0, 1, 0},
        {"data_parallel", CLI_CHOICE, &a.data_parallel, "auto: the data-parallel path when several ranks run; on: also with one (to measure its cost: the flat buffer, the reduction, NCCL on cuda)", "auto|on", 0, 0, 0},
        {"progress", CLI_BOOL, &a.progress, "progress bar on a terminal", 0, 0, 0, 0},
    };
    int nf = (int)(sizeof flags / sizeof *flags);
    char err[1024];
    if (dist_init(&g_dist, &argc, &argv, err, sizeof err)) {
        fprintf(stderr, "train: %s\n", err);
        return 2;
    }
    exp_quiet = !RANK0;
    int rc = cli_parse("train", "train the dense and block-sparse (SGT v2) GPT side by side", flags, nf, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (!a.dataset) {
        fprintf(stderr, "train: --dataset is required (see --help)\n");
        return 2;
    }
    sgt_device dev;
    if (exp_resolve_device(a.device, &dev, err, sizeof err)) {
        fprintf(stderr, "train: %s\n", err);
        return 2;
    }
    if (a.threads == 0 && g_dist.local_world > 1) { /* the ranks on this machine share its cores */
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        a.threads = cores / g_dist.local_world > 0 ? cores / g_dist.local_world : 1;
    }
    sgt_set_threads((int)a.threads);
    /* the architecture: an sgt-gpt preset trains the SGT experiment's models; another
     * architecture's preset (models/model.h) its one model, in <output_dir>/<arch> */
    cJSON *probe = sgt_model_preset(a.config, err, sizeof err);
    const sgt_model_arch *arch = probe ? sgt_model_arch_of(probe, err, sizeof err) : NULL;
    if (!arch) {
        fprintf(stderr, "train: --config: %s\n", err);
        return 2;
    }
    const bool experiment = arch == sgt_model_arch_named("sgt-gpt");
    const int64_t probe_ctx = (int64_t)cJSON_GetObjectItemCaseSensitive(probe, "ctx_len")->valuedouble;
    cJSON_Delete(probe);
    if (experiment) {
        gpt_config pc;
        if (exp_model_config(&pc, a.config, true, a.num_blocks, a.block_size, a.top_k, a.seq_len, err, sizeof err)) {
            fprintf(stderr, "train: %s\n", err);
            return 2;
        }
    } else {
        const char *why = strcmp(a.model, "both") && strcmp(a.model, "dense")
                              ? "--model: sparse, dense_flop and all are the SGT experiment's models (an sgt-gpt preset)"
                          : a.num_blocks || a.block_size || a.top_k ? "--num_blocks, --block_size and --top_k_blocks are the SGT model's"
                          : a.seq_len > probe_ctx ? "--seq_len exceeds the preset's context length" : NULL;
        if (why) {
            fprintf(stderr, "train: %s; --config %s is a %s model (it trains alone, into %s/%s)\n", why, a.config,
                    arch->name, a.output_dir, arch->name);
            return 2;
        }
    }
    if (a.seq_len <= 0) a.seq_len = probe_ctx;
    if (a.tokens_per_step <= 0) a.tokens_per_step = a.batch_size * a.seq_len;
    if (exp_mkdirs(a.output_dir, err, sizeof err)) FAIL("--output_dir: %s", err);
    /* one train per output directory (lock.h); held until this process ends, however it ends */
    if (RANK0 && exp_lock_dir(a.output_dir, err, sizeof err) < 0) FAIL("--output_dir: %s", err);

    /* the token cache is built once, by rank 0; the others load it after */
    exp_data data;
    for (int turn = 0; turn < 2; turn++) {
        if ((turn == 0) == RANK0 &&
            exp_data_open(&data, a.dataset, a.text_field, a.tokenizer, a.output_dir, a.val_fraction,
                          (uint64_t)(2 * a.seq_len + 1), a.progress && RANK0, err, sizeof err))
            FAIL("%s", err);
        if (turn == 0) dist_barrier(&g_dist);
    }
    const sgt_jsonl_stats *js = &data.cache.stats;
    SAY("data: %s: %llu documents, %llu tokens (train %llu, validation %llu in %llu docs)%s\n", a.dataset,
            (unsigned long long)data.cache.n_docs, (unsigned long long)data.cache.n_tokens,
            (unsigned long long)data.split.n_train, (unsigned long long)data.split.n_val,
            (unsigned long long)data.split.n_val_docs, data.cache.origin == SGT_CACHE_LOADED ? " [cached]" : "");
    if (js->bad_json || js->missing_field || js->bad_utf8)
        SAY("data: skipped %llu malformed JSON lines, %llu without \"%s\", %llu with invalid UTF-8\n",
                (unsigned long long)js->bad_json, (unsigned long long)js->missing_field, a.text_field,
                (unsigned long long)js->bad_utf8);

    model_result res[N_MODELS] = {{0}};
    const bool all = !strcmp(a.model, "all"), both = !strcmp(a.model, "both");
    bool want[N_MODELS] = {experiment && (all || both || !strcmp(a.model, "dense")),
                           experiment && (all || both || !strcmp(a.model, "sparse")),
                           experiment && (all || !strcmp(a.model, "dense_flop")), !experiment};
    struct sigaction sa = {.sa_handler = on_interrupt, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    bool skipped = false; /* models left for the resume by an interruption */
    for (int k = 0; k < N_MODELS; k++) {
        if (want[k] && g_interrupt) {
            want[k] = false; /* the summary says what is complete */
            skipped = true;
        }
        if (want[k]) res[k] = train_model(&a, &data, dev, k, arch);
    }

    if (!RANK0) {
        exp_data_close(&data);
        dist_finalize(&g_dist);
        return g_interrupt ? 130 : 0;
    }
    /* training_summary.json: merge with what an earlier run wrote for the other model */
    char path[4200];
    snprintf(path, sizeof path, "%s/training_summary.json", a.output_dir);
    cJSON *sum = file_exists(path) ? exp_read_json(path, err, sizeof err) : NULL;
    if (!sum || !cJSON_IsObject(sum)) {
        cJSON_Delete(sum);
        sum = cJSON_CreateObject();
    }
    cJSON_DeleteItemFromObjectCaseSensitive(sum, "dataset");
    cJSON_AddStringToObject(sum, "dataset", a.dataset);
    cJSON *models = cJSON_GetObjectItemCaseSensitive(sum, "models");
    if (!cJSON_IsObject(models)) {
        cJSON_DeleteItemFromObjectCaseSensitive(sum, "models");
        models = cJSON_AddObjectToObject(sum, "models");
    }
    for (int k = 0; k < N_MODELS; k++)
        if (want[k]) {
            cJSON_DeleteItemFromObjectCaseSensitive(models, res[k].kind);
            cJSON_AddItemToObject(models, res[k].kind, result_json(&res[k]));
        }
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(models, "dense"), *s = cJSON_GetObjectItemCaseSensitive(models, "sparse");
    cJSON_DeleteItemFromObjectCaseSensitive(sum, "sparse_to_dense_throughput");
    if (d && s) {
        double td = cJSON_GetObjectItemCaseSensitive(d, "tokens_per_s")->valuedouble;
        double ts = cJSON_GetObjectItemCaseSensitive(s, "tokens_per_s")->valuedouble;
        cJSON_AddNumberToObject(sum, "sparse_to_dense_throughput", td > 0 ? ts / td : 0);
    }
    if (exp_write_json(path, sum, err, sizeof err)) FAIL("%s", err);
    cJSON_Delete(sum);
    for (int k = 0; k < N_MODELS; k++)
        if (want[k])
            fprintf(stderr, "%s: %lld tokens, train loss %.4f, val loss %.4f, %.0f tokens/s, %.1f s\n", res[k].kind,
                    (long long)res[k].tokens, res[k].final_loss, res[k].final_val, res[k].tokens_per_s, res[k].wall);
    fprintf(stderr, "wrote %s\n", path);
    bool complete = !skipped; /* 130 only when the interruption left training undone */
    for (int k = 0; k < N_MODELS; k++) complete &= !want[k] || res[k].done;
    exp_data_close(&data);
    dist_finalize(&g_dist);
    return g_interrupt && !complete ? 130 : 0;
}
