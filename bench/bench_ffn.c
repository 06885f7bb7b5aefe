/* bench_ffn.c: one SwiGLU FFN layer, forward and backward, dense against block-skipping
 * (sgt_bsparse_swiglu, the SGT skip path), on the same inputs, alternating run by run.
 *
 *   dense:  G = X Wg^T, U = X Wu^T, H = silu(G) U, Y = H Wd^T; backward dH = dY Wd, dWd = dY^T H,
 *           dG, dU = swiglu_bwd, dWg = dG^T X, dWu = dU^T X, dX = dG Wg + dU Wu (9 OpenBLAS GEMMs
 *           through sgt_matmul: the peer, the same library the skip path calls)
 *   skip:   sgt_bsparse_swiglu + sgt_bsparse_swiglu_bwd with every token choosing k distinct
 *           blocks of nb (a fixed pseudo-random choice, each block chosen N k / nb times on average)
 *
 * The skip path does k / nb of the dense FLOPs; the table prints that ideal ratio beside the
 * measured time ratio (skip / dense) for forward, backward and both, and each side's GFLOP/s (of
 * the FLOPs it must do: 6 N C I forward, 12 N C I backward, I = nb bs, times k / nb for skip).
 * Medians of --reps timed runs after warm-up; outputs live in a per-step arena reset every run.
 *
 * Usage: bench_ffn [--tokens N] [--C C] [--blocks NB] [--block_size BS] [--top_k_blocks K[,K...]]
 *                  [--reps R] [--threads T] [--skip_only]
 *   --skip_only: time the skip kernels alone (dense columns print nan), e.g. under perf
 *   defaults: one sgt-150m layer at B 2 x T 256: N 512, C 768, NB 32, BS 64, K 32,16,8,4, R 7 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "ops.h"
#include "tensor.h"

#define WARMUP 2

typedef struct {
    sgt_tensor *x, *wg, *wu, *wd, *dy;
} ffn_in;

static void run_dense(sgt_ctx *c, const ffn_in *in, int64_t bs, double *tf, double *tb) {
    const double t0 = bench_now();
    sgt_tensor *G = sgt_matmul(c, in->x, in->wg, false, true), *U = sgt_matmul(c, in->x, in->wu, false, true);
    sgt_tensor *H = sgt_swiglu(c, G, U, NULL, bs);
    sgt_tensor *Y = sgt_matmul(c, H, in->wd, false, true);
    (void)Y;
    const double t1 = bench_now();
    sgt_tensor *dH = sgt_matmul(c, in->dy, in->wd, false, false);
    sgt_tensor *dWd = sgt_matmul(c, in->dy, H, true, false), *dG, *dU;
    sgt_swiglu_bwd(c, G, U, NULL, dH, bs, &dG, &dU, NULL);
    sgt_tensor *dWg = sgt_matmul(c, dG, in->x, true, false), *dWu = sgt_matmul(c, dU, in->x, true, false);
    sgt_tensor *dX = sgt_matmul(c, dG, in->wg, false, false);
    sgt_add_into(c, dX, sgt_matmul(c, dU, in->wu, false, false));
    (void)dWd, (void)dWg, (void)dWu;
    *tf = t1 - t0, *tb = bench_now() - t1;
}

static void run_skip(sgt_ctx *c, const ffn_in *in, sgt_tensor *idx, sgt_tensor *m, int64_t bs, double *tf,
                     double *tb) {
    const double t0 = bench_now();
    sgt_tensor *G, *U;
    sgt_tensor *Y = sgt_bsparse_swiglu(c, in->x, in->wg, in->wu, in->wd, idx, m, bs, &G, &U);
    (void)Y;
    const double t1 = bench_now();
    sgt_tensor *dx, *dwg, *dwu, *dwd, *dm;
    sgt_bsparse_swiglu_bwd(c, in->x, in->wg, in->wu, in->wd, idx, m, G, U, in->dy, bs, &dx, &dwg, &dwu, &dwd, &dm);
    *tf = t1 - t0, *tb = bench_now() - t1;
}

/* k distinct blocks of nb per token: a rotation of a per-token pseudo-random permutation */
static sgt_tensor *make_idx(sgt_ctx *c, int64_t N, int64_t nb, int64_t k) {
    int32_t *v = malloc(sizeof *v * (size_t)(N * k)), *perm = malloc(sizeof *perm * (size_t)nb);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int64_t t = 0; t < N; t++) {
        for (int64_t b = 0; b < nb; b++) perm[b] = (int32_t)b;
        for (int64_t b = nb - 1; b > 0; b--) { /* Fisher-Yates with an xorshift */
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            const int64_t j = (int64_t)(s % (uint64_t)(b + 1));
            const int32_t tmp = perm[b];
            perm[b] = perm[j], perm[j] = tmp;
        }
        memcpy(v + t * k, perm, sizeof *v * (size_t)k);
    }
    sgt_tensor *idx = sgt_from_i32(c, SGT_SHAPE(N, k), v);
    free(v), free(perm);
    return idx;
}

static sgt_tensor *rand_f32(sgt_ctx *c, uint64_t stream, int nd, const int64_t *shape, double a) {
    sgt_tensor *t = sgt_empty(c, SGT_F32, nd, shape);
    sgt_rng_uniform(c, t, 77, stream, -a, a);
    return t;
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [--tokens N] [--C C] [--blocks NB] [--block_size BS] [--top_k_blocks K[,K...]] [--reps R] "
            "[--threads T] [--skip_only]\n",
            argv0);
    exit(2);
}

static int64_t pos_arg(const char *flag, const char *v, const char *argv0) {
    char *end;
    const long long n = strtoll(v, &end, 10);
    if (*end || n <= 0) {
        fprintf(stderr, "bench_ffn: %s: '%s' is not a positive integer\n", flag, v);
        usage(argv0);
    }
    return n;
}

int main(int argc, char **argv) {
    int64_t N = 512, C = 768, nb = 32, bs = 64, ks[16] = {32, 16, 8, 4};
    int nk = 4, reps = 7, threads = 0;
    bool skip_only = false;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--skip_only")) {
            skip_only = true;
            continue;
        }
        if (i + 1 >= argc) usage(argv[0]);
        const char *v = argv[++i];
        if (!strcmp(f, "--tokens")) N = pos_arg(f, v, argv[0]);
        else if (!strcmp(f, "--C")) C = pos_arg(f, v, argv[0]);
        else if (!strcmp(f, "--blocks")) nb = pos_arg(f, v, argv[0]);
        else if (!strcmp(f, "--block_size")) bs = pos_arg(f, v, argv[0]);
        else if (!strcmp(f, "--reps")) reps = (int)pos_arg(f, v, argv[0]);
        else if (!strcmp(f, "--threads")) threads = (int)pos_arg(f, v, argv[0]);
        else if (!strcmp(f, "--top_k_blocks")) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", v);
            nk = 0;
            for (char *tok = strtok(buf, ","); tok && nk < 16; tok = strtok(NULL, ","))
                ks[nk++] = pos_arg(f, tok, argv[0]);
        } else usage(argv[0]);
    }
    for (int i = 0; i < nk; i++)
        if (ks[i] > nb) {
            fprintf(stderr, "bench_ffn: --top_k_blocks %lld exceeds --blocks %lld\n", (long long)ks[i], (long long)nb);
            return 2;
        }
    if (threads) omp_set_num_threads(threads);
    else threads = omp_get_max_threads();
    openblas_set_num_threads(threads);
    const int64_t IW = nb * bs;
    printf("bench_ffn: N %lld tokens, C %lld, %lld blocks of %lld (I %lld), threads %d (OpenBLAS %d), f32, median of "
           "%d runs\n",
           (long long)N, (long long)C, (long long)nb, (long long)bs, (long long)IW, threads, openblas_get_num_threads(),
           reps);

    sgt_arena *pa = sgt_arena_create("ffn-inputs", SGT_CPU, 0, 0), *sa = sgt_arena_create("ffn-step", SGT_CPU, 0, 0);
    sgt_ctx pc = {.arena = pa, .device = SGT_CPU}, sc = {.arena = sa, .device = SGT_CPU};
    ffn_in in = {rand_f32(&pc, 1, SGT_SHAPE(N, C), 1), rand_f32(&pc, 2, SGT_SHAPE(IW, C), 0.05),
                 rand_f32(&pc, 3, SGT_SHAPE(IW, C), 0.05), rand_f32(&pc, 4, SGT_SHAPE(C, IW), 0.05),
                 rand_f32(&pc, 5, SGT_SHAPE(N, C), 1)};
    printf("%4s %7s | %9s %9s %9s | %9s %9s %9s | %6s %6s %6s %6s | %7s %7s\n", "k", "ideal", "dense fwd", "bwd",
           "total", "skip fwd", "bwd", "total", "fwd", "bwd", "total", "/ideal", "GF/s d", "GF/s s");
    double *td = malloc(sizeof(double) * 6 * (size_t)reps);
    for (int ki = 0; ki < nk; ki++) {
        const int64_t k = ks[ki];
        sgt_tensor *idx = make_idx(&pc, N, nb, k), *m = sgt_full(&pc, SGT_F32, SGT_SHAPE(N, k), 1.0);
        double *df = td, *db = df + reps, *dt = db + reps, *sf = dt + reps, *sb = sf + reps, *st = sb + reps;
        for (int r = -WARMUP; r < reps; r++) {
            double a, b, c2, d;
            if (skip_only) a = b = NAN; /* under a profiler: the skip kernels alone */
            else run_dense(&sc, &in, bs, &a, &b);
            sgt_arena_reset(sa);
            run_skip(&sc, &in, idx, m, bs, &c2, &d);
            sgt_arena_reset(sa);
            if (r < 0) continue;
            df[r] = a, db[r] = b, dt[r] = a + b, sf[r] = c2, sb[r] = d, st[r] = c2 + d;
        }
        double med[6];
        for (int j = 0; j < 6; j++) med[j] = bench_median_sorted(td + j * reps, reps);
        const double ideal = (double)k / (double)nb, fl = 18.0 * (double)N * (double)C * (double)IW;
        printf("%4lld %7.3f | %9.2f %9.2f %9.2f | %9.2f %9.2f %9.2f | %6.3f %6.3f %6.3f %6.2f | %7.1f %7.1f\n",
               (long long)k, ideal, 1e3 * med[0], 1e3 * med[1], 1e3 * med[2], 1e3 * med[3], 1e3 * med[4], 1e3 * med[5],
               med[3] / med[0], med[4] / med[1], med[5] / med[2], med[5] / med[2] / ideal, 1e-9 * fl / med[2],
               1e-9 * fl * ideal / med[5]);
        fflush(stdout);
    }
    free(td);
    sgt_arena_destroy(sa), sgt_arena_destroy(pa);
    return 0;
}
