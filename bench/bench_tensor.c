/* bench_tensor.c: CPU throughput of sgt's core tensor ops against a reference peer (cblas_sgemm, memcpy).
 *
 *   matmul (f32), GFLOP/s = 2*M*N*K / t:  sgt_matmul vs a direct cblas_sgemm of the same problem,
 *       for 1024^3, x[8192,768] @ w[768,2304], the same with w stored [2304,768] (tb=true), and a
 *       3-D x[8,1024,768] @ w[768,2304] (batch dims folded into rows).
 *   softmax (f32, last dim), GB/s:         sgt_softmax on [64,50257] and [4096,1024] vs memcpy.
 *   elementwise (f32), GB/s:               add [16M]+[16M], mul [8192,768]*[768] (broadcast bias),
 *                                          gelu [8192,3072], each vs memcpy.
 *
 * GB/s counts the bytes an op must move: every input read once plus the output written once.
 * The memcpy peer copies half that many bytes, so it reads + writes the same total traffic, and is
 * split over the same OpenMP threads as our kernels (one contiguous slice per thread).
 *
 * Every figure is reported as the median and the best (minimum-time) of --reps timed runs taken
 * after warm-up, timed with clock_gettime(CLOCK_MONOTONIC); ours and the peer alternate run by run
 * so that drift of the machine hits both alike. Ratio = ours / peer throughput (1.0 = as fast).
 *
 * Our outputs are allocated from a per-step arena that is reset after every run, as in training:
 * the warm-up runs size it, after which the steady state does no malloc at all. Each row prints the
 * arena's n_system_allocs before and after its timed loop to show that it did not grow.
 *
 * Usage: bench_tensor [--reps N] [--threads N]
 *   --reps N     timed runs per case (default: 20; 10 for the GPT-sized matmuls)
 *   --threads N  sets omp_set_num_threads and openblas_set_num_threads (default: OpenMP's max) */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_util.h"
#include "ops.h"
#include "tensor.h"

#define WARMUP 2 /* after the checking run: the first may grow the arena, the next faults its pages */

typedef struct {
    double med, min; /* seconds */
} timing;

/* sorts t in place */
static timing summarize(double *t, int n) {
    const double med = bench_median_sorted(t, n);
    return (timing){med, t[0]};
}

/* ---- the cases ---- */

typedef enum { K_MATMUL, K_SOFTMAX, K_ADD, K_MUL, K_GELU } kind;

typedef struct {
    const char *name;
    kind k;
    sgt_tensor *a, *b; /* inputs, in the persistent arena */
    bool tb;
    int64_t M, N, K;   /* matmul: the GEMM the peer runs */
    double work;       /* flops (matmul) or bytes read + written */
    int reps;
} bench_case;

typedef struct {
    sgt_ctx *step;      /* per-step context: our outputs */
    float *peer_out;    /* matmul peer output */
    char *cpy_src, *cpy_dst;
} bench_env;

static sgt_tensor *run_ours(bench_env *e, const bench_case *bc) {
    sgt_ctx *c = e->step;
    switch (bc->k) {
    case K_MATMUL: return sgt_matmul(c, bc->a, bc->b, false, bc->tb);
    case K_SOFTMAX: return sgt_softmax(c, bc->a);
    case K_ADD: return sgt_add(c, bc->a, bc->b);
    case K_MUL: return sgt_mul(c, bc->a, bc->b);
    case K_GELU: return sgt_gelu(c, bc->a);
    }
    return NULL;
}

/* memcpy split into one contiguous slice per OpenMP thread */
static void par_memcpy(char *dst, const char *src, size_t n) {
#pragma omp parallel
    {
        size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
        size_t chunk = ((n + nt - 1) / nt + 63) & ~(size_t)63;
        size_t s = t * chunk;
        if (s < n) memcpy(dst + s, src + s, n - s < chunk ? n - s : chunk);
    }
}

static void run_peer(bench_env *e, const bench_case *bc) {
    if (bc->k == K_MATMUL) {
        /* the inputs' own storage; b is [K,N] or, with tb, [N,K] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, bc->tb ? CblasTrans : CblasNoTrans, (int)bc->M, (int)bc->N,
                    (int)bc->K, 1.0f, sgt_ptr(bc->a), (int)bc->K, sgt_ptr(bc->b), bc->tb ? (int)bc->K : (int)bc->N,
                    0.0f, e->peer_out, (int)bc->N);
    } else {
        par_memcpy(e->cpy_dst, e->cpy_src, (size_t)(bc->work / 2));
    }
}

/* max |ours - peer| / max |peer| for matmul (same GEMM, so expected ~0) */
static double check_matmul(const bench_env *e, const bench_case *bc, const sgt_tensor *y) {
    const float *p = sgt_ptr(y);
    int64_t n = bc->M * bc->N;
    double dmax = 0, vmax = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)p[i] - (double)e->peer_out[i]), v = fabs((double)e->peer_out[i]);
        dmax = d > dmax ? d : dmax;
        vmax = v > vmax ? v : vmax;
    }
    return vmax > 0 ? dmax / vmax : dmax;
}

/* softmax rows must sum to 1 */
static double check_softmax(const sgt_tensor *y) {
    const float *p = sgt_ptr(y);
    int64_t n = y->shape[y->ndim - 1], rows = sgt_numel(y) / n;
    double worst = 0;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) s += p[r * n + i];
        worst = fabs(s - 1) > worst ? fabs(s - 1) : worst;
    }
    return worst;
}

static void bench(bench_env *e, const bench_case *bc) {
    sgt_arena *ar = e->step->arena;
    /* a checking run (also the first warm-up) */
    sgt_tensor *y = run_ours(e, bc);
    run_peer(e, bc);
    char note[64] = "";
    if (bc->k == K_MATMUL) snprintf(note, sizeof note, "maxdiff %.1e", check_matmul(e, bc, y));
    if (bc->k == K_SOFTMAX) snprintf(note, sizeof note, "|rowsum-1| %.1e", check_softmax(y));
    sgt_arena_reset(ar);
    for (int w = 0; w < WARMUP; w++) {
        run_ours(e, bc);
        sgt_arena_reset(ar);
        run_peer(e, bc);
    }
    double *to = malloc(sizeof(double) * (size_t)bc->reps), *tp = malloc(sizeof(double) * (size_t)bc->reps);
    unsigned long long allocs0 = (unsigned long long)ar->n_system_allocs;
    for (int r = 0; r < bc->reps; r++) {
        double t0 = bench_now();
        run_ours(e, bc);
        double t1 = bench_now();
        sgt_arena_reset(ar);
        double t2 = bench_now();
        run_peer(e, bc);
        double t3 = bench_now();
        to[r] = t1 - t0;
        tp[r] = t3 - t2;
    }
    unsigned long long allocs1 = (unsigned long long)ar->n_system_allocs;
    timing so = summarize(to, bc->reps), sp = summarize(tp, bc->reps);
    free(to);
    free(tp);
    const double g = 1e-9 * bc->work;
    printf("%-35s %8.2f %8.2f  %8.2f %8.2f  %6.3f %6.3f  %3d  %3llu->%llu%*s%s\n", bc->name, g / so.med, g / so.min,
           g / sp.med, g / sp.min, sp.med / so.med, sp.min / so.min, bc->reps, allocs0, allocs1, note[0] ? 4 : 0, "",
           note);
    fflush(stdout);
}

static sgt_tensor *rand_tensor(sgt_ctx *c, uint64_t stream, int ndim, const int64_t *shape) {
    sgt_tensor *t = sgt_empty(c, SGT_F32, ndim, shape);
    sgt_rng_uniform(c, t, 1234, stream, -1.0, 1.0);
    return t;
}

/* the machine's load average, since a busy machine is the usual reason for noisy figures */
static void print_load(const char *when) {
    char buf[128] = "?\n";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(buf, sizeof buf, f)) snprintf(buf, sizeof buf, "?\n");
        fclose(f);
    }
    printf("load average (%s): %s", when, buf);
}

static void usage(const char *argv0) {
    fprintf(stderr, "usage: %s [--reps N] [--threads N]\n", argv0);
    exit(2);
}

int main(int argc, char **argv) {
    int reps = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else usage(argv[0]);
    }
    if (reps < 0 || threads < 0) usage(argv[0]);
    if (threads > 0) omp_set_num_threads(threads);
    else threads = omp_get_max_threads();
    openblas_set_num_threads(threads);
    const int small = reps ? reps : 20, big = reps ? reps : 10;

    printf("bench_tensor: threads %d (OpenMP max %d, OpenBLAS %d), OpenBLAS config: %s\n", threads,
           omp_get_max_threads(), openblas_get_num_threads(), openblas_get_config());

    print_load("start");

    sgt_arena *persist = sgt_arena_create("bench-inputs", SGT_CPU, 0, 0);
    sgt_arena *steparena = sgt_arena_create("bench-step", SGT_CPU, 0, 0);
    sgt_ctx pc = {.arena = persist, .device = SGT_CPU}, sc = {.arena = steparena, .device = SGT_CPU};

    uint64_t stream = 0;
#define RAND(...) rand_tensor(&pc, ++stream, SGT_SHAPE(__VA_ARGS__))
    sgt_tensor *a1k = RAND(1024, 1024), *b1k = RAND(1024, 1024);
    sgt_tensor *x = RAND(8192, 768), *w = RAND(768, 2304), *wt = RAND(2304, 768);
    sgt_tensor *x3 = sgt_reshape(&pc, x, SGT_SHAPE(8, 1024, 768)); /* a view of x */
    sgt_tensor *sm_v = RAND(64, 50257), *sm_t = RAND(4096, 1024);
    sgt_tensor *ea = RAND(16 << 20), *eb = RAND(16 << 20);
    sgt_tensor *bias = RAND(768);
    sgt_tensor *h = RAND(8192, 3072);

    const double f = 4; /* bytes per f32 */
    bench_case cases[] = {
        {"matmul 1024x1024x1024", K_MATMUL, a1k, b1k, false, 1024, 1024, 1024, 0, small},
        {"matmul [8192,768]@[768,2304]", K_MATMUL, x, w, false, 8192, 2304, 768, 0, big},
        {"matmul tb [8192,768]@[2304,768]^T", K_MATMUL, x, wt, true, 8192, 2304, 768, 0, big},
        {"matmul 3-D [8,1024,768]@[768,2304]", K_MATMUL, x3, w, false, 8192, 2304, 768, 0, big},
        {"softmax [64,50257]", K_SOFTMAX, sm_v, NULL, false, 0, 0, 0, f * 2 * 64 * 50257, small},
        {"softmax [4096,1024]", K_SOFTMAX, sm_t, NULL, false, 0, 0, 0, f * 2 * 4096 * 1024, small},
        {"add [16M]+[16M]", K_ADD, ea, eb, false, 0, 0, 0, f * 3 * (16 << 20), small},
        {"mul [8192,768]*[768]", K_MUL, x, bias, false, 0, 0, 0, f * (2.0 * 8192 * 768 + 768), small},
        {"gelu [8192,3072]", K_GELU, h, NULL, false, 0, 0, 0, f * 2 * 8192 * 3072, small},
    };
    const int ncase = (int)(sizeof cases / sizeof cases[0]);
    size_t cpy = 0;
    for (int i = 0; i < ncase; i++) {
        if (cases[i].k == K_MATMUL) cases[i].work = 2.0 * (double)cases[i].M * (double)cases[i].N * (double)cases[i].K;
        else if ((size_t)(cases[i].work / 2) > cpy) cpy = (size_t)(cases[i].work / 2);
    }

    bench_env e = {.step = &sc};
    e.peer_out = malloc(sizeof(float) * 8192 * 2304);
    e.cpy_src = malloc(cpy);
    e.cpy_dst = malloc(cpy);
    if (!e.peer_out || !e.cpy_src || !e.cpy_dst) {
        fprintf(stderr, "bench_tensor: out of memory\n");
        return 1;
    }
    memset(e.peer_out, 0, sizeof(float) * 8192 * 2304); /* fault the pages in before timing */
    memset(e.cpy_src, 1, cpy);
    memset(e.cpy_dst, 0, cpy);

    printf("matmul: GFLOP/s = 2*M*N*K/t; peer = cblas_sgemm on the same buffers.\n"
           "softmax/elementwise: GB/s = (bytes read + bytes written)/t; peer = memcpy of half those bytes\n"
           "  (same read+write traffic), split over the OpenMP threads.\n"
           "med = at the median time, best = at the minimum time; ratio = ours/peer; allocs = step arena's\n"
           "  n_system_allocs before->after the timed loop.\n\n");
    printf("%-35s %8s %8s  %8s %8s  %6s %6s  %3s  %-8s %s\n", "case", "ours", "ours", "peer", "peer", "ratio",
           "ratio", "n", "allocs", "check");
    printf("%-35s %8s %8s  %8s %8s  %6s %6s\n", "", "med", "best", "med", "best", "med", "best");
    for (int i = 0; i < ncase; i++) {
        if (i == 0) printf("-- matmul f32 (GFLOP/s)\n");
        if (i == 4) printf("-- softmax f32 (GB/s)\n");
        if (i == 6) printf("-- elementwise f32 (GB/s)\n");
        bench(&e, &cases[i]);
    }
    print_load("end");

    free(e.peer_out);
    free(e.cpy_src);
    free(e.cpy_dst);
    sgt_arena_destroy(steparena);
    sgt_arena_destroy(persist);
    return 0;
}
