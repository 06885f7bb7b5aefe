/* gradcheck.c: finite-difference gradient checking (see gradcheck.h). */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/rng.h"

typedef struct {
    ag_fn fn;
    void *user;
    sgt_tensor **inputs;
    int n;
    sgt_tensor *weights; /* R, or NULL for a scalar output */
} eval_ctx;

static sgt_tensor *loss_of(sgt_ctx *c, const eval_ctx *e) {
    sgt_tensor *out = e->fn(c, e->inputs, e->n, e->user);
    SGT_CHECK(out->dtype == SGT_F64, "gradcheck: the function must return f64, got %s", sgt_dtype_name(out->dtype));
    if (!e->weights) return out;
    return sgt_sum(c, sgt_mul(c, out, e->weights), SGT_ALL_DIMS, false);
}

/* evaluates L without recording anything, leaving the arena as it was */
static double eval_plain(sgt_ctx *c, const eval_ctx *e) {
    sgt_arena_mark m = sgt_arena_get_mark(c->arena);
    sgt_op_observer obs = c->observer;
    c->observer = NULL;
    double v = sgt_item(loss_of(c, e));
    c->observer = obs;
    sgt_arena_rewind(c->arena, m);
    return v;
}

ag_gradcheck_result ag_gradcheck(sgt_ctx *c, ag_fn fn, void *user, sgt_tensor **inputs, int n, const bool *diff,
                                 const ag_gradcheck_opts *opts) {
    ag_gradcheck_opts o = {1e-6, 1e-5, 1e-7, 64, 1234};
    if (opts) {
        if (opts->eps > 0) o.eps = opts->eps;
        if (opts->rtol > 0) o.rtol = opts->rtol;
        if (opts->atol > 0) o.atol = opts->atol;
        if (opts->max_elems > 0) o.max_elems = opts->max_elems;
        if (opts->seed) o.seed = opts->seed;
    }
    ag_gradcheck_result res = {.pass = true, .worst_input = -1};
    sgt_op_observer saved_obs = c->observer;
    void *saved_user = c->observer_user;

    bool use[SGT_MAX_SRC * 2] = {0};
    SGT_CHECK(n <= SGT_MAX_SRC * 2, "gradcheck: at most %d inputs", SGT_MAX_SRC * 2);
    for (int i = 0; i < n; i++) {
        use[i] = (diff ? diff[i] : true) && inputs[i]->dtype == SGT_F64;
        if (diff && diff[i])
            SGT_CHECK(inputs[i]->dtype == SGT_F64 && sgt_is_contiguous(inputs[i]) && inputs[i]->device == SGT_CPU,
                      "gradcheck: input %d must be a contiguous f64 CPU tensor", i);
        inputs[i]->ext = NULL;
    }

    eval_ctx e = {fn, user, inputs, n, NULL};
    /* learn the output's shape, then fix R */
    {
        c->observer = NULL;
        sgt_arena_mark m = sgt_arena_get_mark(c->arena);
        sgt_tensor *out = fn(c, inputs, n, user);
        int nd = out->ndim;
        int64_t shape[SGT_MAX_DIMS];
        memcpy(shape, out->shape, sizeof shape);
        bool scalar = sgt_numel(out) == 1 && nd == 0;
        sgt_arena_rewind(c->arena, m);
        if (!scalar) {
            e.weights = sgt_empty(c, SGT_F64, nd, shape);
            sgt_rng_normal(c, e.weights, o.seed, 7, 0.0, 1.0);
        }
    }

    /* analytic gradients */
    ag_tape tape;
    ag_tape_init(&tape, c);
    for (int i = 0; i < n; i++)
        if (use[i]) ag_set_requires_grad(c, inputs[i]);
    sgt_arena_mark base = sgt_arena_get_mark(c->arena);
    sgt_tensor *loss = loss_of(c, &e);
    ag_backward(&tape, loss);
    double *an[SGT_MAX_SRC * 2] = {0};
    for (int i = 0; i < n; i++) {
        if (!use[i]) continue;
        int64_t ne = sgt_numel(inputs[i]);
        an[i] = calloc((size_t)(ne ? ne : 1), sizeof(double));
        if (ag_grad(inputs[i])) sgt_to_f64(ag_grad(inputs[i]), an[i]); /* no path: gradient is zero */
        inputs[i]->ext = NULL;
    }
    ag_tape_detach(&tape);
    sgt_arena_rewind(c->arena, base);

    /* numeric, element by element (a seeded sample when large) */
    for (int i = 0; i < n; i++) {
        if (!use[i]) continue;
        double *x = sgt_ptr(inputs[i]);
        int64_t ne = sgt_numel(inputs[i]);
        int64_t cnt = ne < o.max_elems ? ne : o.max_elems;
        for (int64_t k = 0; k < cnt; k++) {
            int64_t j = ne <= o.max_elems ? k : (int64_t)(sgt_rng_uniform_at((uint64_t)k, (uint64_t)i, o.seed) * ne);
            double x0 = x[j];
            x[j] = x0 + o.eps;
            double fp = eval_plain(c, &e);
            x[j] = x0 - o.eps;
            double fm = eval_plain(c, &e);
            x[j] = x0;
            double num = (fp - fm) / (2 * o.eps), a = an[i][j];
            double err = fabs(a - num), scale = fmax(fmax(fabs(a), fabs(num)), o.atol);
            bool ok = err <= o.atol + o.rtol * fmax(fabs(a), fabs(num));
            res.checked++;
            if (err / scale > res.max_rel_err || (!ok && res.pass)) {
                res.max_rel_err = fmax(res.max_rel_err, err / scale);
                res.worst_input = i;
                res.worst_index = j;
                res.worst_analytic = a;
                res.worst_numeric = num;
            }
            if (!ok) res.pass = false;
        }
    }

    /* directional check over all inputs at once */
    {
        double dot = 0;
        double *v[SGT_MAX_SRC * 2] = {0}, *x0[SGT_MAX_SRC * 2] = {0};
        for (int i = 0; i < n; i++) {
            if (!use[i]) continue;
            int64_t ne = sgt_numel(inputs[i]);
            v[i] = malloc(sizeof(double) * (size_t)(ne ? ne : 1));
            x0[i] = malloc(sizeof(double) * (size_t)(ne ? ne : 1));
            double *x = sgt_ptr(inputs[i]);
            for (int64_t j = 0; j < ne; j++) {
                v[i][j] = sgt_rng_normal_at((uint64_t)j, 1000u + (uint64_t)i, o.seed);
                x0[i][j] = x[j];
                dot += v[i][j] * an[i][j];
            }
        }
        double f[2];
        for (int s = 0; s < 2; s++) {
            double h = s ? -o.eps : o.eps;
            for (int i = 0; i < n; i++) {
                if (!use[i]) continue;
                double *x = sgt_ptr(inputs[i]);
                for (int64_t j = 0; j < sgt_numel(inputs[i]); j++) x[j] = x0[i][j] + h * v[i][j];
            }
            f[s] = eval_plain(c, &e);
        }
        for (int i = 0; i < n; i++) {
            if (!use[i]) continue;
            memcpy(sgt_ptr(inputs[i]), x0[i], sizeof(double) * (size_t)sgt_numel(inputs[i]));
            free(v[i]);
            free(x0[i]);
        }
        res.dir_analytic = dot;
        res.dir_numeric = (f[0] - f[1]) / (2 * o.eps);
        double err = fabs(res.dir_analytic - res.dir_numeric);
        res.dir_rel_err = err / fmax(fmax(fabs(dot), fabs(res.dir_numeric)), o.atol);
        if (err > o.atol + o.rtol * fmax(fabs(dot), fabs(res.dir_numeric))) res.pass = false;
    }
    for (int i = 0; i < n; i++) free(an[i]);
    c->observer = saved_obs;
    c->observer_user = saved_user;
    snprintf(res.report, sizeof res.report,
             "%s: %d elements, max rel err %.2e (input %d [%lld]: analytic %.9g numeric %.9g); "
             "directional %.9g vs %.9g (rel %.2e)",
             res.pass ? "pass" : "FAIL", res.checked, res.max_rel_err, res.worst_input, (long long)res.worst_index,
             res.worst_analytic, res.worst_numeric, res.dir_analytic, res.dir_numeric, res.dir_rel_err);
    return res;
}
