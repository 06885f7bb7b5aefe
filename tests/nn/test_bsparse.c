/* test_bsparse.c: the block-skipping SGT FFN (sgt_bsparse_swiglu, NN_BS_SKIP) against
 * mask-and-multiply: equal outputs on the decode (few tokens) and grouped (many tokens) kernels,
 * a float64 gradcheck of the op (x, the three weights and the mask values), the grouped kernels'
 * forward and backward against autograd through mask-and-multiply on skewed routings (a block of
 * more rows than one task takes, blocks nobody chose) with results that do not depend on the
 * thread count, equal gradients of x and every weight through the module, and equal GPT logits
 * with the KV cache. */
#include "../../autograd/gradcheck.h"
#include "../../models/gpt.h"
#include "../common/test_util.h"

#include <omp.h>

#define C_ (&e->ctx)

typedef struct {
    int64_t N, C, nb, bs, k;
} shape_case;

/* random distinct block choices per token */
static sgt_tensor *rand_idx(sgt_ctx *c, int64_t N, int64_t k, int64_t nb, uint64_t stream) {
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(N * k));
    for (int64_t t = 0; t < N; t++)
        for (int64_t j = 0; j < k; j++) {
            int32_t b;
            bool dup;
            uint64_t q = 0;
            do {
                b = (int32_t)(sgt_rng_uniform_at((uint64_t)(t * 100 + j * 7) + q++, stream, TEST_SEED) * (double)nb);
                dup = false;
                for (int64_t i = 0; i < j; i++) dup |= v[t * k + i] == b;
            } while (dup);
            v[t * k + j] = b;
        }
    sgt_tensor *x = sgt_from_i32(c, SGT_SHAPE(N, k), v);
    free(v);
    return x;
}

/* mask-and-multiply reference: down((silu(x Wg^T) * x Wu^T) * mask_full) with mask_full [N, nb] */
static sgt_tensor *mask_ref(sgt_ctx *c, sgt_tensor *x, sgt_tensor *wg, sgt_tensor *wu, sgt_tensor *wd, sgt_tensor *idx,
                            sgt_tensor *m, int64_t nb, int64_t bs) {
    const int64_t N = x->shape[0], I = nb * bs;
    sgt_tensor *mf = sgt_scatter_add_last(c, m, idx, nb);                               /* [N, nb] */
    sgt_tensor *h = sgt_mul(c, sgt_silu(c, sgt_matmul(c, x, wg, false, true)), sgt_matmul(c, x, wu, false, true));
    sgt_tensor *hm = sgt_mul(c, sgt_reshape(c, h, SGT_SHAPE(N, nb, bs)), sgt_reshape(c, mf, SGT_SHAPE(N, nb, 1)));
    return sgt_matmul(c, sgt_reshape(c, hm, SGT_SHAPE(N, I)), wd, false, true);
}

static void t_forward_parity(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    shape_case cases[] = {{1, 24, 6, 8, 3}, {3, 33, 5, 16, 2}, {37, 24, 6, 8, 3}, {64, 40, 8, 12, 4}};
    for (int dt = 0; dt < 2; dt++)
        for (unsigned i = 0; i < sizeof cases / sizeof *cases; i++) {
            shape_case q = cases[i];
            sgt_dtype t = dt ? SGT_F64 : SGT_F32;
            const int64_t I = q.nb * q.bs;
            sgt_tensor *x = tu_rand(C_, t, SGT_SHAPE(q.N, q.C), 1, -1, 1);
            sgt_tensor *wg = tu_rand(C_, t, SGT_SHAPE(I, q.C), 2, -0.3, 0.3), *wu = tu_rand(C_, t, SGT_SHAPE(I, q.C), 3, -0.3, 0.3);
            sgt_tensor *wd = tu_rand(C_, t, SGT_SHAPE(q.C, I), 4, -0.3, 0.3);
            sgt_tensor *idx = rand_idx(C_, q.N, q.k, q.nb, 5 + i);
            sgt_tensor *m = tu_rand(C_, t, SGT_SHAPE(q.N, q.k), 6, 0.5, 1.5);
            sgt_tensor *y = sgt_bsparse_swiglu(C_, x, wg, wu, wd, idx, m, q.bs, NULL, NULL);
            double *ref = tu_host(mask_ref(C_, x, wg, wu, wd, idx, m, q.nb, q.bs));
            /* f32: both sides round differently (GEMM vs dot products), a few ulp of sums of C terms */
            tu_assert_close(y, ref, dt ? 1e-12 : 2e-5, dt ? 1e-13 : 2e-6, "bsparse forward vs mask-and-multiply");
            /* with the block-contiguous (transposed) down copy of the decode kernel */
            sgt_tensor *wdt = sgt_copy(C_, sgt_transpose(C_, wd, 0, 1));
            sgt_tensor *yt = sgt_bsparse_swiglu_ex(C_, x, wg, wu, wd, wdt, idx, m, q.bs, NULL, NULL);
            tu_assert_close(yt, ref, dt ? 1e-12 : 2e-5, dt ? 1e-13 : 2e-6, "bsparse forward (down transposed)");
            free(ref);
        }
    tu_env_free(e);
}

/* Routing where every token picks block 0 (N rows: several tasks of the grouped kernel when N >
 * 256), the other k - 1 from blocks 1 .. nb - 2 (block nb - 1 is never chosen: its weight
 * gradients must be exactly zero). */
static sgt_tensor *skewed_idx(sgt_ctx *c, int64_t N, int64_t k, int64_t nb) {
    int32_t *v = malloc(sizeof(int32_t) * (size_t)(N * k));
    for (int64_t t = 0; t < N; t++) {
        v[t * k] = 0;
        for (int64_t j = 1; j < k; j++) v[t * k + j] = (int32_t)(1 + (t * 7 + j * 3 + t / 5) % (nb - 2));
        for (int64_t j = 2; j < k; j++) /* distinct: bump duplicates to the next free block */
            for (int64_t i = 1; i < j; i++)
                if (v[t * k + i] == v[t * k + j]) v[t * k + j] = (int32_t)(1 + v[t * k + j] % (nb - 2)), i = 0;
    }
    sgt_tensor *x = sgt_from_i32(c, SGT_SHAPE(N, k), v);
    free(v);
    return x;
}

/* The grouped kernels (N > the decode path's 4 tokens), forward and backward in f64, against
 * autograd through mask-and-multiply; then f32 at 1 and 2 threads: bit-identical. */
static void t_grouped_kernels(void **s) {
    (void)s;
    const struct {
        int64_t N, C, nb, bs, k;
        bool skewed;
    } cases[] = {{600, 24, 6, 8, 3, true}, {300, 16, 5, 4, 2, true}, {97, 20, 7, 6, 3, false}};
    for (unsigned ci = 0; ci < sizeof cases / sizeof *cases; ci++) {
        const int64_t N = cases[ci].N, Cc = cases[ci].C, nb = cases[ci].nb, bs = cases[ci].bs, k = cases[ci].k;
        const int64_t I = nb * bs;
        tu_env *e = tu_env_new();
        ag_tape tape;
        ag_tape_init(&tape, C_);
        sgt_tensor *x = tu_rand(C_, SGT_F64, SGT_SHAPE(N, Cc), 31, -1, 1);
        sgt_tensor *wg = tu_rand(C_, SGT_F64, SGT_SHAPE(I, Cc), 32, -0.3, 0.3);
        sgt_tensor *wu = tu_rand(C_, SGT_F64, SGT_SHAPE(I, Cc), 33, -0.3, 0.3);
        sgt_tensor *wd = tu_rand(C_, SGT_F64, SGT_SHAPE(Cc, I), 34, -0.3, 0.3);
        sgt_tensor *m = tu_rand(C_, SGT_F64, SGT_SHAPE(N, k), 35, 0.5, 1.5);
        sgt_tensor *dy = tu_rand(C_, SGT_F64, SGT_SHAPE(N, Cc), 36, -1, 1);
        sgt_tensor *idx = cases[ci].skewed ? skewed_idx(C_, N, k, nb) : rand_idx(C_, N, k, nb, 37);
        sgt_tensor *in[5] = {x, wg, wu, wd, m};
        for (int i = 0; i < 5; i++) ag_set_requires_grad(C_, in[i]);
        sgt_tensor *ref = mask_ref(C_, x, wg, wu, wd, idx, m, nb, bs);
        ag_backward(&tape, sgt_sum(C_, sgt_mul(C_, ref, dy), SGT_ALL_DIMS, false));
        double *want[6] = {tu_host(ref)};
        for (int i = 0; i < 5; i++) want[i + 1] = tu_host(ag_grad(in[i]));
        ag_tape_detach(&tape);

        sgt_tensor *G, *U, *got[6];
        got[0] = sgt_bsparse_swiglu(C_, x, wg, wu, wd, idx, m, bs, &G, &U);
        sgt_bsparse_swiglu_bwd(C_, x, wg, wu, wd, idx, m, G, U, dy, bs, &got[1], &got[2], &got[3], &got[4], &got[5]);
        const char *what[6] = {"y", "dx", "d gate", "d up", "d down", "dm"};
        for (int i = 0; i < 6; i++) {
            tu_assert_close(got[i], want[i], 1e-11, 1e-12, what[i]);
            free(want[i]);
        }
        if (cases[ci].skewed) { /* block nb - 1: nobody chose it, its gradients are exact zeros */
            double *dgv = tu_host(got[2]), *ddv = tu_host(got[4]);
            for (int64_t r = (nb - 1) * bs; r < I; r++)
                for (int64_t c = 0; c < Cc; c++)
                    if (dgv[r * Cc + c] != 0 || ddv[c * I + r] != 0)
                        fail_msg("unselected block %lld: gradient %g / %g at unit %lld, input %lld", (long long)(nb - 1),
                                 dgv[r * Cc + c], ddv[c * I + r], (long long)r, (long long)c);
            free(dgv), free(ddv);
        }

        /* f32 at 1 and at 2 threads: the same bits (the sums' order depends on the routing only) */
        sgt_tensor *in32[5], *d32 = sgt_cast(C_, dy, SGT_F32);
        for (int i = 0; i < 5; i++) in32[i] = sgt_cast(C_, in[i], SGT_F32);
        double *bits[2][6];
        const int max_threads = omp_get_max_threads();
        for (int th = 0; th < 2; th++) {
            omp_set_num_threads(th ? 2 : 1);
            sgt_tensor *o[6];
            o[0] = sgt_bsparse_swiglu(C_, in32[0], in32[1], in32[2], in32[3], idx, in32[4], bs, &G, &U);
            sgt_bsparse_swiglu_bwd(C_, in32[0], in32[1], in32[2], in32[3], idx, in32[4], G, U, d32, bs, &o[1], &o[2],
                                   &o[3], &o[4], &o[5]);
            for (int i = 0; i < 6; i++) bits[th][i] = tu_host(o[i]);
        }
        omp_set_num_threads(max_threads);
        for (int i = 0; i < 6; i++) {
            const int64_t n = sgt_numel(got[i]);
            for (int64_t j = 0; j < n; j++)
                if (bits[0][i][j] != bits[1][i][j])
                    fail_msg("%s (f32) [%lld]: %.9g at 1 thread, %.9g at 2", what[i], (long long)j, bits[0][i][j],
                             bits[1][i][j]);
            free(bits[0][i]), free(bits[1][i]);
        }
        tu_env_free(e);
    }
}

typedef struct {
    int64_t bs;
} gc_user;

static sgt_tensor *f_op(sgt_ctx *c, sgt_tensor **in, int n, void *u) {
    (void)n;
    return sgt_bsparse_swiglu(c, in[0], in[1], in[2], in[3], in[4], in[5], ((gc_user *)u)->bs, NULL, NULL);
}

static void t_gradcheck_op(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    shape_case cases[] = {{2, 10, 4, 3, 2}, {9, 10, 4, 3, 2}};
    for (unsigned i = 0; i < 2; i++) {
        shape_case q = cases[i];
        const int64_t I = q.nb * q.bs;
        sgt_tensor *in[6] = {tu_rand(C_, SGT_F64, SGT_SHAPE(q.N, q.C), 11, -1, 1),
                             tu_rand(C_, SGT_F64, SGT_SHAPE(I, q.C), 12, -0.5, 0.5),
                             tu_rand(C_, SGT_F64, SGT_SHAPE(I, q.C), 13, -0.5, 0.5),
                             tu_rand(C_, SGT_F64, SGT_SHAPE(q.C, I), 14, -0.5, 0.5), rand_idx(C_, q.N, q.k, q.nb, 15),
                             tu_rand(C_, SGT_F64, SGT_SHAPE(q.N, q.k), 16, 0.5, 1.5)};
        gc_user u = {q.bs};
        ag_gradcheck_result r = ag_gradcheck(C_, f_op, &u, in, 6, (bool[]){true, true, true, true, false, true}, NULL);
        print_message("    N=%lld: %s\n", (long long)q.N, r.report);
        if (!r.pass) fail_msg("bsparse_swiglu gradcheck: %s", r.report);
    }
    tu_env_free(e);
}

/* Module level. With the router in hard_only mode both paths are the same function of x and the
 * weights, so every gradient must agree. With the STE, the gate/up/down gradients still agree;
 * x's and the router's differ by design (the skip path's STE sees the selected blocks only). */
static void module_grads(bool skip, bool hard_only, double **g) {
    const int64_t C = 16, nb = 6, bs = 4, k = 2;
    tu_env *e = tu_env_new();
    ag_tape tape;
    ag_tape_init(&tape, C_);
    nn_params *p = nn_params_create(5, SGT_F64, SGT_CPU);
    nn_bs_swiglu m;
    nn_bs_swiglu_init(&m, p, "ffn", C, nb, bs, k, 0.3, 0.3);
    m.path = skip ? NN_BS_SKIP : NN_BS_MASK;
    m.router.hard_only = hard_only;
    sgt_tensor *x = tu_rand(C_, SGT_F64, SGT_SHAPE(3, 7, C), 21, -1, 1);
    ag_set_requires_grad(C_, x);
    sgt_tensor *y = nn_bs_swiglu_forward(C_, &m, x, NULL);
    sgt_tensor *w = tu_rand(C_, SGT_F64, SGT_SHAPE(3, 7, C), 22, -1, 1);
    ag_backward(&tape, sgt_sum(C_, sgt_mul(C_, y, w), SGT_ALL_DIMS, false));
    sgt_tensor *ts[5] = {ag_grad(x), ag_grad(m.ffn.gate.w), ag_grad(m.ffn.up.w), ag_grad(m.ffn.down.w),
                         ag_grad(m.router.fc2.b)};
    for (int i = 0; i < 5; i++) {
        int64_t n = ts[i] ? sgt_numel(ts[i]) : nb;
        g[i] = ts[i] ? tu_host(ts[i]) : calloc((size_t)n, sizeof(double)); /* no gradient reached: zeros */
    }
    ag_tape_detach(&tape);
    nn_params_destroy(p);
    tu_env_free(e);
}

static void t_module_gradient_parity(void **s) {
    (void)s;
    const int64_t n[5] = {21 * 16, 24 * 16, 24 * 16, 16 * 24, 6};
    const char *what[5] = {"dx", "d gate", "d up", "d down", "d router.fc2.bias"};
    for (int hard = 1; hard >= 0; hard--) {
        double *gm[5], *gs[5];
        module_grads(false, hard, gm);
        module_grads(true, hard, gs);
        for (int i = hard ? 0 : 1; i < (hard ? 5 : 4); i++)
            for (int64_t j = 0; j < n[i]; j++)
                if (fabs(gm[i][j] - gs[i][j]) > 1e-10 * (1 + fabs(gm[i][j])))
                    fail_msg("%s (%s)[%lld]: mask-and-multiply %.12g vs skip %.12g", what[i],
                             hard ? "hard mask" : "STE", (long long)j, gm[i][j], gs[i][j]);
        bool nonzero = false;
        for (int64_t j = 0; j < n[1]; j++) nonzero |= gm[1][j] != 0;
        assert_true(nonzero);
        for (int i = 0; i < 5; i++) free(gm[i]), free(gs[i]);
    }
}

/* a whole SGT GPT: logits of the full forward and of KV-cache decoding agree across the paths */
static void t_gpt_paths_agree(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    gpt_config cfg;
    gpt_preset("nano", &cfg);
    cfg.sparse = true;
    nn_params *p = nn_params_create(9, SGT_F64, SGT_CPU);
    gpt_model *m = gpt_build(&cfg, p);
    int32_t ids[14];
    for (int i = 0; i < 14; i++) ids[i] = (int32_t)((i * 31 + 7) % cfg.vocab);
    sgt_tensor *idx = sgt_from_i32(C_, SGT_SHAPE(2, 7), ids);
    double *ref = tu_host(gpt_forward(C_, m, idx, NULL).logits);
    gpt_set_ffn_skip(m, true);
    sgt_tensor *full = gpt_forward(C_, m, idx, NULL).logits;
    tu_assert_close(full, ref, 1e-11, 1e-12, "SGT logits, skip vs mask");
    gpt_prepare_decode(m, SGT_F32); /* the decode kernel streams the transposed down copies */
    gpt_kv kv;
    gpt_kv_init(&kv, C_, m, 2, 7);
    for (int64_t t = 0; t < 7; t++) {
        sgt_tensor *one = sgt_contiguous(C_, sgt_narrow(C_, idx, 1, t, 1));
        double *got = tu_host(gpt_forward(C_, m, one, &(gpt_forward_opts){.kv = &kv}).logits);
        for (int b = 0; b < 2; b++)
            for (int64_t v = 0; v < cfg.vocab; v++) {
                double w = ref[(b * 7 + t) * cfg.vocab + v], a = got[b * cfg.vocab + v];
                if (fabs(a - w) > 1e-10 * (1 + fabs(w)))
                    fail_msg("decode (skip) b %d pos %lld v %lld: %.12g vs %.12g", b, (long long)t, (long long)v, a, w);
            }
        free(got);
    }
    free(ref);
    gpt_free(m);
    nn_params_destroy(p);
    tu_env_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_forward_parity),
        cmocka_unit_test(t_gradcheck_op),
        cmocka_unit_test(t_grouped_kernels),
        cmocka_unit_test(t_module_gradient_parity),
        cmocka_unit_test(t_gpt_paths_agree),
    };
    return cmocka_run_group_tests_name("bsparse", tests, NULL, NULL);
}
