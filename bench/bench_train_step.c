/* bench_train_step.c: wall time of one full f32 training step of the dense and the SGT GPT on the
 * CPU, the number bench/train_step_vs_torch.py compares with PyTorch (bench/torch_gpt.py).
 *
 * A step is what the trainer does: forward with targets (cross-entropy + aux loss weight 0.01 for
 * SGT), backward from the loss, AdamW, zeroing the gradients, and the end-of-step reset of the tape
 * and the per-step arena. Each phase is timed separately (wall time, CLOCK_MONOTONIC):
 *   forward   gpt_forward + reading the loss
 *   backward  ag_backward
 *   optimizer nn_adamw_step
 *   zero+reset nn_params_zero_grad + ag_step_end
 * --warmup steps run first, untimed (the first one sizes the per-step arena, the next fault its
 * pages in), then --steps timed steps. Reported: median and min step time, tokens/s at the median
 * (B*T / median), the median of every phase, and the median CPU time of a step summed over all
 * threads (CLOCK_PROCESS_CPUTIME_ID): on a shared machine, CPU / wall shows how much of it we got.
 *
 * Inputs are fixed pseudo-random ids, the same for every step and reproducible in Python:
 *   id[i] = ((i * 2654435761 + 12345) mod 2^32) mod V,  i over a [B, T+1] row-major buffer;
 *   x = columns 0..T-1, targets = columns 1..T.
 *
 * --save PATH writes the initial weights as safetensors and runs one untimed check step first
 * (forward + backward, no optimizer update, gradients zeroed after), printing ce, aux, loss and the
 * global gradient norm as a JSON line {"check": ...}; torch_gpt.py --load PATH --check prints the
 * same from the same weights and ids (a golden comparison of the two implementations).
 *
 * --profile adds a per-op breakdown of the forward and backward phases: an observer chained in
 * front of the tape's timestamps every dispatched op, and the time since the previous op (kernel
 * plus the host code in between) is charged to it, keyed by op name and input shapes. Printed: the
 * top ops per phase in ms per step (mean over the timed steps). The observer costs ~1 us per op.
 *
 * Output: a human-readable block per model, then one JSON line per model for the driver:
 *   {"model": "dense", "tokens_per_s": ..., "median_ms": ..., ...}
 *
 * Models: dense (SwiGLU FFNs), sparse (SGT, mask-and-multiply FFNs as in the seed: the path
 * torch_gpt.py reproduces), sparse-skip (SGT with block skipping, cfg.ffn_skip: only the selected
 * blocks are computed; same forward, the router's STE gradient differs, see nn/router.h).
 * --model both = dense + sparse; all = dense + sparse + sparse-skip; or a comma-separated list
 * (e.g. dense,sparse-skip).
 *
 * The models run interleaved: all are built first, then round s runs step s of each in turn, so
 * that the machine's drift hits them alike (all of them are in memory at once). With dense among
 * them, each SGT model prints its step time over dense's: the ratio of the medians, the median of
 * the per-round ratios, and the ideal ratio, 1 - f (1 - k / nb) for block skipping, where f is the
 * FFN's share of the dense model's weight-matmul FLOPs (1 for mask-and-multiply, which computes
 * every block).
 *
 * Usage: bench_train_step [--model dense|sparse|sparse-skip|both|all] [--config NAME] [--batch B] [--seq T]
 *                         [--steps N] [--warmup W] [--threads N] [--top_k_blocks K] [--save PATH] [--profile]
 * (--top_k_blocks: the SGT models' k, default the preset's)
 * (--save with several models writes PATH with the model's name inserted before the extension.) */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../models/gpt.h"
#include "../nn/checkpoint.h"
#include "../nn/optim.h"
#include "bench_util.h"

/* After our headers: OpenBLAS's cblas.h pulls in <complex.h>, whose `I` macro would break the
 * parameter names `I` (d_ff) in nn/modules.h. */
#include <cblas.h>

#define AUX_WEIGHT 0.01
#define LR 3e-4

enum { PH_FWD, PH_BWD, PH_OPT, PH_ZERO, PH_N };
static const char *const phase_name[PH_N] = {"forward", "backward", "optimizer", "zero+reset"};

/* Wall time and the CPU time of all the process's threads. On a shared machine the wall time
 * includes the time our threads waited for a core; the CPU time does not, so cpu/wall shows how
 * much of the machine we actually got (with OMP_WAIT_POLICY=PASSIVE; spinning waits count as CPU). */
typedef struct {
    double wall, cpu;
} stamp;

static stamp now(void) { return (stamp){bench_clock_s(CLOCK_MONOTONIC), bench_clock_s(CLOCK_PROCESS_CPUTIME_ID)}; }

/* median of n values (sorts a copy) */
static double median(const double *v, int n) {
    double *s = malloc(sizeof *s * (size_t)n);
    SGT_CHECK(s, "out of host memory");
    memcpy(s, v, sizeof *s * (size_t)n);
    double m = bench_median_sorted(s, n);
    free(s);
    return m;
}

static void print_load(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f)) strcpy(buf, "?\n");
        fclose(f);
    }
    printf("load average (%s): %s", when, buf);
}

typedef struct {
    const char *config;
    int64_t B, T;
    int steps, warmup, threads;
    int64_t top_k; /* 0: the preset's */
    const char *save;
    bool profile;
} bench_opts;

/* ---- the per-op profiler (--profile) ---- */

#define PROF_MAX 1024
typedef struct {
    char key[160];
    int phase;       /* PH_FWD or PH_BWD */
    double t, cpu;   /* wall and CPU seconds over the timed steps */
    int64_t calls;
} prof_entry;

typedef struct {
    sgt_op_observer inner; /* the tape's observer, called first */
    void *inner_user;
    bool on;               /* timing the current phase */
    int phase;
    stamp last;            /* when the previous op (or the phase) ended */
    prof_entry e[PROF_MAX];
    int n;
} profiler;

static void shape_into(char *buf, size_t n, const sgt_tensor *x) {
    size_t at = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < x->ndim && at < n; d++)
        at += (size_t)snprintf(buf + at, n - at, d ? ",%lld" : "%lld", (long long)x->shape[d]);
    if (at < n) snprintf(buf + at, n - at, "]");
}

static void prof_observe(void *user, const sgt_opcall *call) {
    profiler *pr = user;
    if (pr->inner) pr->inner(pr->inner_user, call);
    if (!pr->on || sgt_ops[call->op].is_view) return;
    const stamp t = now();
    char key[160], s0[64] = "", s1[64] = "";
    if (call->nsrc > 0) shape_into(s0, sizeof s0, call->src[0]);
    else if (call->ndst > 0) shape_into(s0, sizeof s0, call->dst[0]);
    if (call->op == SGT_OP_MATMUL) {
        shape_into(s1, sizeof s1, call->src[1]);
        snprintf(key, sizeof key, "matmul %s%s @ %s%s", s0, call->ip[0] ? "^T" : "", s1, call->ip[1] ? "^T" : "");
    } else {
        snprintf(key, sizeof key, "%s %s", sgt_ops[call->op].name, s0);
    }
    int i = 0;
    while (i < pr->n && (pr->e[i].phase != pr->phase || strcmp(pr->e[i].key, key))) i++;
    if (i == pr->n) {
        SGT_CHECK(pr->n < PROF_MAX, "--profile: more than %d distinct ops", PROF_MAX);
        pr->n++;
        snprintf(pr->e[i].key, sizeof pr->e[i].key, "%s", key);
        pr->e[i].phase = pr->phase;
        pr->e[i].t = pr->e[i].cpu = 0;
        pr->e[i].calls = 0;
    }
    pr->e[i].t += t.wall - pr->last.wall;
    pr->e[i].cpu += t.cpu - pr->last.cpu;
    pr->e[i].calls++;
    pr->last = t;
}

static int cmp_prof(const void *a, const void *b) {
    const prof_entry *x = a, *y = b;
    return (x->t < y->t) - (x->t > y->t);
}

static void prof_print(profiler *pr, int steps, const double *phase_med) {
    qsort(pr->e, (size_t)pr->n, sizeof *pr->e, cmp_prof);
    for (int ph = PH_FWD; ph <= PH_BWD; ph++) {
        double sum = 0, csum = 0;
        for (int i = 0; i < pr->n; i++)
            if (pr->e[i].phase == ph) sum += pr->e[i].t, csum += pr->e[i].cpu;
        printf("profile, %s: ops account for %.1f ms/step wall (phase median %.1f), %.1f ms/step CPU\n",
               phase_name[ph], 1e3 * sum / steps, 1e3 * phase_med[ph], 1e3 * csum / steps);
        printf("  %9s %6s %9s %6s  %s\n", "wall ms", "%", "CPU ms", "calls", "op (input shapes), per step");
        int shown = 0;
        for (int i = 0; i < pr->n && shown < 25; i++) {
            if (pr->e[i].phase != ph) continue;
            printf("  %9.2f %6.1f %9.2f %6lld  %s\n", 1e3 * pr->e[i].t / steps, 100.0 * pr->e[i].t / sum,
                   1e3 * pr->e[i].cpu / steps, (long long)(pr->e[i].calls / steps), pr->e[i].key);
            shown++;
        }
    }
}

static gpt_output step_forward(sgt_ctx *c, const gpt_model *m, const int32_t *ids, int64_t B, int64_t T) {
    sgt_tensor *all = sgt_from_i32(c, SGT_SHAPE(B, T + 1), ids);
    sgt_tensor *x = sgt_contiguous(c, sgt_narrow(c, all, 1, 0, T));
    sgt_tensor *y = sgt_contiguous(c, sgt_narrow(c, all, 1, 1, T));
    return gpt_forward(c, m, x, &(gpt_forward_opts){.targets = y, .aux_weight = AUX_WEIGHT});
}

/* The path to save model `name`'s weights to: opts->save, with the name inserted when several run. */
static void save_path(char *buf, size_t n, const char *save, const char *name, bool several) {
    if (!several) {
        snprintf(buf, n, "%s", save);
        return;
    }
    const char *dot = strrchr(save, '.'), *slash = strrchr(save, '/');
    if (!dot || (slash && dot < slash)) dot = save + strlen(save);
    snprintf(buf, n, "%.*s.%s%s", (int)(dot - save), save, name, dot);
}

enum { M_DENSE, M_SPARSE, M_SKIP, M_N };
static const char *const model_name[M_N] = {"dense", "sparse", "sparse-skip"};

/* One model's state across the interleaved rounds. */
typedef struct {
    int kind;
    gpt_config cfg;
    nn_params *p;
    gpt_model *m;
    nn_adamw *opt;
    sgt_arena *arena;
    sgt_ctx c;
    ag_tape tape;
    profiler *pr;
    int32_t *ids;
    double *ph[PH_N], *tot, *cpu; /* per timed step */
    double first_loss, last_loss;
    uint64_t allocs0;
} model_run;

static void model_setup(model_run *r, const bench_opts *o, int kind, bool several) {
    const char *name = model_name[kind];
    const bool sparse = kind != M_DENSE;
    memset(r, 0, sizeof *r);
    r->kind = kind;
    gpt_config *cfg = &r->cfg;
    SGT_CHECK(gpt_preset(o->config, cfg) == 0, "unknown --config '%s' (presets: %s)", o->config, gpt_preset_names());
    cfg->sparse = sparse;
    cfg->ffn_skip = kind == M_SKIP;
    if (o->top_k) {
        SGT_CHECK(o->top_k <= cfg->num_blocks, "--top_k_blocks %lld exceeds the %lld blocks of preset '%s'",
                  (long long)o->top_k, (long long)cfg->num_blocks, o->config);
        cfg->top_k = o->top_k;
    }
    SGT_CHECK(o->T <= cfg->ctx_len, "--seq %lld exceeds the context length %lld of preset '%s'", (long long)o->T,
              (long long)cfg->ctx_len, o->config);
    r->p = nn_params_create(1234, SGT_F32, SGT_CPU);
    r->m = gpt_build(cfg, r->p);
    r->opt = nn_adamw_create(r->p, 0.9, 0.95, 1e-8, 0.1);
    r->arena = sgt_arena_create("train-step", SGT_CPU, 0, 0);
    r->c = (sgt_ctx){.arena = r->arena, .device = SGT_CPU};
    ag_tape_init(&r->tape, &r->c);
    if (o->profile) {
        r->pr = calloc(1, sizeof *r->pr);
        SGT_CHECK(r->pr, "out of host memory for the profiler");
        r->pr->inner = r->c.observer;
        r->pr->inner_user = r->c.observer_user;
        r->c.observer = prof_observe;
        r->c.observer_user = r->pr;
    }
    r->ids = bench_make_ids(o->B, o->T, cfg->vocab);
    const int n = o->steps;
    r->tot = calloc((size_t)n, sizeof *r->tot);
    r->cpu = calloc((size_t)n, sizeof *r->cpu);
    for (int k = 0; k < PH_N; k++) r->ph[k] = calloc((size_t)n, sizeof **r->ph);
    for (int k = 0; k < PH_N; k++) SGT_CHECK(r->ph[k], "out of host memory");
    SGT_CHECK(r->tot && r->cpu, "out of host memory");

    if (o->save) {
        char path[1024], err[512];
        save_path(path, sizeof path, o->save, name, several);
        SGT_CHECK(nn_save_params(r->p, path, NULL, err, sizeof err) == 0, "saving the initial weights: %s", err);
        gpt_output out = step_forward(&r->c, r->m, r->ids, o->B, o->T);
        double ce = sgt_item(out.ce), aux = out.aux ? sgt_item(out.aux) : 0.0, loss = sgt_item(out.loss);
        ag_backward(&r->tape, out.loss);
        ag_step_end(&r->tape);
        double gn = nn_grad_norm(r->p, &r->c);
        nn_params_zero_grad(r->p);
        printf("{\"check\": \"%s\", \"weights\": \"%s\", \"ce\": %.9g, \"aux\": %.9g, \"loss\": %.9g, "
               "\"grad_norm\": %.9g}\n", name, path, ce, aux, loss, gn);
    }
}

/* step s of the model (s < warmup: untimed) */
static void model_step(model_run *r, const bench_opts *o, int s) {
    profiler *pr = r->pr;
    if (s == o->warmup) r->allocs0 = r->arena->n_system_allocs;
    const bool prof = pr && s >= o->warmup;
    const stamp t0 = now();
    if (prof) {
        pr->on = true;
        pr->phase = PH_FWD;
        pr->last = t0;
    }
    gpt_output out = step_forward(&r->c, r->m, r->ids, o->B, o->T);
    double loss = sgt_item(out.loss);
    const stamp t1 = now();
    if (prof) {
        pr->phase = PH_BWD;
        pr->last = t1;
    }
    ag_backward(&r->tape, out.loss);
    const stamp t2 = now();
    if (pr) pr->on = false;
    nn_adamw_step(r->opt, LR);
    const stamp t3 = now();
    nn_params_zero_grad(r->p);
    ag_step_end(&r->tape);
    const stamp t4 = now();
    if (s == 0) r->first_loss = loss;
    r->last_loss = loss;
    if (s >= o->warmup) {
        int i = s - o->warmup;
        r->ph[PH_FWD][i] = t1.wall - t0.wall;
        r->ph[PH_BWD][i] = t2.wall - t1.wall;
        r->ph[PH_OPT][i] = t3.wall - t2.wall;
        r->ph[PH_ZERO][i] = t4.wall - t3.wall;
        r->tot[i] = t4.wall - t0.wall;
        r->cpu[i] = t4.cpu - t0.cpu;
    }
}

/* The FFN's share f of the weight-matmul FLOPs of the dense model (per token: 2 (4 C^2 + 3 C I)
 * per layer, 2 C V for the head; attention scores and the router left out), and the ideal time
 * ratio of a model that computes k of nb blocks: 1 - f (1 - k / nb). */
static double ffn_share(const gpt_config *cfg) {
    const double C = (double)cfg->d_model, hid = (double)cfg->d_ff, L = (double)cfg->n_layers;
    const double ffn = L * 3 * C * hid;
    return ffn / (L * 4 * C * C + ffn + C * (double)cfg->vocab);
}

static void model_report(model_run *r, const bench_opts *o, const model_run *dense) {
    const char *name = model_name[r->kind];
    const bool sparse = r->kind != M_DENSE;
    const int n = o->steps;
    const uint64_t allocs_timed = r->arena->n_system_allocs - r->allocs0;
    const char *variant = r->kind == M_SKIP ? ", SGT, block skipping" : sparse ? ", SGT, mask-and-multiply" : "";
    printf("\n== %s (%s%s", name, o->config, variant);
    if (sparse) printf(", top %lld of %lld blocks", (long long)r->cfg.top_k, (long long)r->cfg.num_blocks);
    printf("): %lld params, B %lld x T %lld = %lld tokens/step\n", (long long)gpt_param_count(r->m), (long long)o->B,
           (long long)o->T, (long long)(o->B * o->T));
    const double med = median(r->tot, n), tok = (double)(o->B * o->T), cmed = median(r->cpu, n);
    double mn = r->tot[0];
    for (int i = 1; i < n; i++) mn = r->tot[i] < mn ? r->tot[i] : mn;
    double pm[PH_N];
    for (int k = 0; k < PH_N; k++) pm[k] = median(r->ph[k], n);
    printf("step: median %.1f ms, min %.1f ms  ->  %.0f tokens/s (median), %.0f (best); %d steps after %d warm-up\n",
           1e3 * med, 1e3 * mn, tok / med, tok / mn, n, o->warmup);
    printf("phases (median ms):");
    for (int k = 0; k < PH_N; k++) printf("  %s %.1f (%.0f%%)", phase_name[k], 1e3 * pm[k], 100.0 * pm[k] / med);
    printf("\nCPU time: median %.1f ms/step, %.2f cores busy on average (of %d threads)", 1e3 * cmed,
           cmed / med, o->threads);
    printf("\nloss %.4f (first step) -> %.4f (last); per-step arena %.1f MiB, %llu mallocs in the timed steps\n",
           r->first_loss, r->last_loss, (double)r->arena->high_water / (1 << 20), (unsigned long long)allocs_timed);
    double ratio = 0, paired = 0, ideal = 0;
    if (dense && sparse) {
        /* the ratio of medians, and the median of the per-round ratios (rounds alternate the models) */
        double *q = malloc(sizeof *q * (size_t)n);
        SGT_CHECK(q, "out of host memory");
        for (int i = 0; i < n; i++) q[i] = r->tot[i] / dense->tot[i];
        paired = median(q, n);
        free(q);
        ratio = med / median(dense->tot, n);
        const double f = ffn_share(&dense->cfg);
        ideal = r->kind == M_SKIP ? 1 - f * (1 - (double)r->cfg.top_k / (double)r->cfg.num_blocks) : 1.0;
        printf("step time / dense: %.3f (medians), %.3f (median of the %d paired rounds); ideal %.3f (the FFN is "
               "%.1f%% of the dense weight-matmul FLOPs; %s)\n",
               ratio, paired, n, ideal, 100 * f,
               r->kind == M_SKIP ? "k / nb of it computed" : "every block computed");
    }
    printf("{\"model\": \"%s\", \"impl\": \"sgt\", \"config\": \"%s\", \"batch\": %lld, \"seq\": %lld, "
           "\"threads\": %d, \"steps\": %d, \"top_k_blocks\": %lld, \"tokens_per_s\": %.1f, \"median_ms\": %.3f, "
           "\"min_ms\": %.3f, \"forward_ms\": %.3f, \"backward_ms\": %.3f, \"optimizer_ms\": %.3f, "
           "\"zero_reset_ms\": %.3f, \"cpu_ms\": %.3f, \"first_loss\": %.6f",
           name, o->config, (long long)o->B, (long long)o->T, o->threads, n, (long long)(sparse ? r->cfg.top_k : 0),
           tok / med, 1e3 * med, 1e3 * mn, 1e3 * pm[PH_FWD], 1e3 * pm[PH_BWD], 1e3 * pm[PH_OPT], 1e3 * pm[PH_ZERO],
           1e3 * cmed, r->first_loss);
    if (dense && sparse) printf(", \"vs_dense\": %.4f, \"vs_dense_paired\": %.4f, \"ideal\": %.4f", ratio, paired, ideal);
    printf("}\n");
    fflush(stdout);
    if (r->pr) prof_print(r->pr, n, pm);
}

static void model_free(model_run *r) {
    if (r->pr) {
        r->c.observer = r->pr->inner; /* give the context back to the tape before detaching it */
        r->c.observer_user = r->pr->inner_user;
        free(r->pr);
    }
    for (int k = 0; k < PH_N; k++) free(r->ph[k]);
    free(r->tot);
    free(r->cpu);
    free(r->ids);
    ag_tape_detach(&r->tape);
    sgt_arena_destroy(r->arena);
    nn_adamw_destroy(r->opt);
    gpt_free(r->m);
    nn_params_destroy(r->p);
}

/* whether `name` is one of the comma-separated names in `list` */
static bool name_in_list(const char *list, const char *name) {
    const size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        const size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--model dense|sparse|sparse-skip|both|all|LIST] [--config NAME] [--batch B] [--seq T] [--steps N]\n"
            "          [--warmup W] [--threads N] [--top_k_blocks K] [--save PATH] [--profile]\n"
            "  presets: %s (default tiny); defaults: both, B 4, T 256, 10 steps, 2 warm-up,\n"
            "  threads = OpenMP's max\n",
            argv0, gpt_preset_names());
    exit(2);
}

int main(int argc, char **argv) {
    bench_opts o = {.config = "tiny", .B = 4, .T = 256, .steps = 10, .warmup = 2, .threads = 0, .save = NULL};
    const char *model = "both";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v && strcmp(a, "--profile")) usage(argv[0]);
        if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--config")) o.config = v;
        else if (!strcmp(a, "--batch")) o.B = atoll(v);
        else if (!strcmp(a, "--seq")) o.T = atoll(v);
        else if (!strcmp(a, "--steps")) o.steps = atoi(v);
        else if (!strcmp(a, "--warmup")) o.warmup = atoi(v);
        else if (!strcmp(a, "--threads")) o.threads = atoi(v);
        else if (!strcmp(a, "--save")) o.save = v;
        else if (!strcmp(a, "--top_k_blocks")) o.top_k = atoll(v);
        else if (!strcmp(a, "--profile")) {
            o.profile = true;
            continue;
        } else usage(argv[0]);
        i++;
    }
    const bool both = !strcmp(model, "both"), all = !strcmp(model, "all");
    bool run[M_N];
    int nrun = 0;
    for (int k = 0; k < M_N; k++) {
        run[k] = all || (both && k != M_SKIP) || name_in_list(model, model_name[k]);
        nrun += run[k];
    }
    if (!nrun || o.B < 1 || o.T < 1 || o.steps < 1 || o.warmup < 0 || o.threads < 0 || o.top_k < 0) usage(argv[0]);
    if (o.threads > 0) omp_set_num_threads(o.threads);
    else o.threads = omp_get_max_threads();
    openblas_set_num_threads(o.threads);

    printf("bench_train_step: config %s, B %lld, T %lld, threads %d (OpenMP %d, OpenBLAS %d), f32, AdamW lr %g, "
           "aux weight %g\n", o.config, (long long)o.B, (long long)o.T, o.threads, omp_get_max_threads(),
           openblas_get_num_threads(), LR, AUX_WEIGHT);
    print_load("start");
    /* every model lives at once; round s runs step s of each in turn, so that a drift of the
     * machine hits them alike */
    model_run runs[M_N];
    for (int k = 0; k < M_N; k++)
        if (run[k]) model_setup(&runs[k], &o, k, nrun > 1);
    for (int s = 0; s < o.warmup + o.steps; s++)
        for (int k = 0; k < M_N; k++)
            if (run[k]) model_step(&runs[k], &o, s);
    for (int k = 0; k < M_N; k++)
        if (run[k]) model_report(&runs[k], &o, run[M_DENSE] ? &runs[M_DENSE] : NULL);
    for (int k = 0; k < M_N; k++)
        if (run[k]) model_free(&runs[k]);
    print_load("end");
    return 0;
}
