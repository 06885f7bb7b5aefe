/* dp.c: gradient averaging, clipping and ZeRO-1 over the flat buffer (see dp.h). */
#include "dp.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/checkpoint.h"

#define DP_FAIL(s, ...)                                                  \
    do {                                                                 \
        fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                  \
        fprintf(stderr, __VA_ARGS__);                                    \
        fputc('\n', stderr);                                             \
        dist_abort((s)->d, 1);                                           \
    } while (0)

static void *xcalloc(dp_sync *s, size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size);
    if (!p) DP_FAIL(s, "out of host memory (%zu x %zu bytes)", n, size);
    return p;
}

static int owner_of(const dp_sync *s, int i) {
    int r = 0;
    while (i >= s->first[r + 1]) r++;
    return r;
}

int dp_init(dp_sync *s, dist_ctx *d, nn_params *p, int zero, bool nccl, char *err, size_t errn) {
    memset(s, 0, sizeof *s);
    s->d = d;
    s->p = p;
    s->zero = zero;
    s->nccl = nccl;
    for (int i = 0; i < p->n; i++) {
        const sgt_tensor *t = p->items[i].t;
        if (t->dtype != SGT_F32 || !sgt_is_contiguous(t)) {
            snprintf(err, errn, "data parallel: parameter '%s' is not a contiguous f32 tensor", p->items[i].name);
            return -1;
        }
    }
    const int W = d->world;
    s->first = xcalloc(s, (size_t)W + 1, sizeof *s->first);
    s->off = xcalloc(s, (size_t)p->n, sizeof *s->off);
    /* contiguous runs: rank r's run ends where the running total first reaches (r+1)/W of the whole */
    const int64_t total = nn_params_count(p);
    int64_t run = 0, acc = 0;
    int r = 0;
    for (int i = 0; i < p->n; i++) {
        while (r < W - 1 && acc >= total * (r + 1) / W) {
            s->first[++r] = i;
            run = 0;
        }
        s->off[i] = run;
        const int64_t n = sgt_numel(p->items[i].t);
        run += n;
        acc += n;
        if (run > s->chunk) s->chunk = run;
    }
    while (r < W - 1) s->first[++r] = p->n;
    s->first[W] = p->n;
    if (s->chunk < 1) s->chunk = 1;
    if (s->chunk > 2147483647LL) {
        snprintf(err, errn, "data parallel: a shard of %lld floats exceeds MPI's int counts; use more ranks",
                 (long long)s->chunk);
        return -1;
    }
    s->owned = *p;
    s->owned.items = p->items + s->first[d->rank];
    s->owned.n = s->owned.cap = s->first[d->rank + 1] - s->first[d->rank];
    const size_t flat_n = (size_t)(W * s->chunk);
    s->flat = xcalloc(s, flat_n, sizeof(float));
    s->mine = xcalloc(s, (size_t)s->chunk, sizeof(float));
    s->scratch = xcalloc(s, flat_n, sizeof(float));
    if (nccl) {
        const sgt_device dev = p->items[0].t->device;
        s->dflat = sgt_device_alloc(dev, flat_n * sizeof(float));
        s->dmine = sgt_device_alloc(dev, (size_t)s->chunk * sizeof(float));
    }
    return 0;
}

void dp_free(dp_sync *s) {
    if (s->dflat) sgt_device_free(s->p->items[0].t->device, s->dflat);
    if (s->dmine) sgt_device_free(s->p->items[0].t->device, s->dmine);
    free(s->first);
    free(s->off);
    free(s->flat);
    free(s->mine);
    free(s->scratch);
    memset(s, 0, sizeof *s);
}

/* the position of parameter i in the flat buffer */
static int64_t flat_at(const dp_sync *s, int i) { return (int64_t)owner_of(s, i) * s->chunk + s->off[i]; }

/* tensor <-> flat (host or device) */
static void pack(dp_sync *s, const sgt_tensor *t, int i, bool device) {
    if (device)
        sgt_device_copy(s->dflat + flat_at(s, i), t->device, sgt_ptr(t), t->device,
                        sizeof(float) * (size_t)sgt_numel(t));
    else
        sgt_copy_to_host(t, s->flat + flat_at(s, i));
}

static void unpack_from(sgt_tensor *t, const float *host, const float *dev_src) {
    const size_t bytes = sizeof(float) * (size_t)sgt_numel(t);
    if (dev_src) sgt_device_copy(sgt_ptr(t), t->device, dev_src, t->device, bytes);
    else sgt_copy_from_host(t, host);
}

static sgt_tensor *grad_of(dp_sync *s, int i) {
    sgt_tensor *g = ag_grad(s->p->items[i].t);
    if (!g) DP_FAIL(s, "data parallel: parameter '%s' has no gradient buffer", s->p->items[i].name);
    return g;
}

/* The NCCL path: the gradients stay on the device; the norm and the clipping are the store's own
 * (nn_grad_norm, nn_clip_grad_norm) over the owned view, the squared norms summed over MPI. */
static double reduce_clip_nccl(dp_sync *s, double max_norm, sgt_ctx *scratch) {
    dist_ctx *d = s->d;
    for (int i = 0; i < s->p->n; i++) pack(s, grad_of(s, i), i, true);
    if (!s->zero) { /* ZeRO-0: one all-reduce of the whole buffer, then every rank clips alike */
        dist_nccl_allreduce_avg_f32(d, s->dflat, (int64_t)d->world * s->chunk);
        for (int i = 0; i < s->p->n; i++) unpack_from(grad_of(s, i), NULL, s->dflat + flat_at(s, i));
        return nn_clip_grad_norm(s->p, scratch, max_norm);
    }
    dist_nccl_reduce_scatter_avg_f32(d, s->dflat, s->dmine, s->chunk);
    const int lo = s->first[d->rank], hi = s->first[d->rank + 1];
    for (int i = lo; i < hi; i++) unpack_from(grad_of(s, i), NULL, s->dmine + s->off[i]);
    const double local = s->owned.n ? nn_grad_norm(&s->owned, scratch) : 0;
    double sq = local * local;
    dist_sum_f64(d, &sq, 1);
    const double norm = sqrt(sq);
    /* scale by max_norm / norm: nn_clip_grad_norm scales by its bound / the local norm */
    if (isfinite(norm) && max_norm > 0 && norm > max_norm && local > 0)
        nn_clip_grad_norm(&s->owned, scratch, local * (max_norm / norm));
    return norm;
}

double dp_reduce_clip(dp_sync *s, double max_norm, sgt_ctx *scratch) {
    if (s->nccl) return reduce_clip_nccl(s, max_norm, scratch);
    dist_ctx *d = s->d;
    const int W = d->world, lo = s->first[d->rank], hi = s->first[d->rank + 1];
    for (int i = 0; i < s->p->n; i++) pack(s, grad_of(s, i), i, false);
    dist_reduce_scatter_f32(d, s->flat, s->mine, s->scratch, s->chunk);
    /* the mean, and this chunk's share of the squared norm (padding is zero: it adds nothing) */
    const float inv = 1.0f / (float)W;
    double sq = 0;
    for (int64_t k = 0; k < s->chunk; k++) {
        s->mine[k] *= inv;
        sq += (double)s->mine[k] * (double)s->mine[k];
    }
    dist_sum_f64(d, &sq, 1);
    const double norm = sqrt(sq);
    if (isfinite(norm) && max_norm > 0 && norm > max_norm) {
        const float c = (float)(max_norm / norm);
        for (int64_t k = 0; k < s->chunk; k++) s->mine[k] *= c;
    }
    if (s->zero) { /* the owned gradients only */
        for (int i = lo; i < hi; i++) unpack_from(grad_of(s, i), s->mine + s->off[i], NULL);
        return norm;
    }
    dist_allgather_f32(d, s->mine, s->flat, s->chunk);
    for (int i = 0; i < s->p->n; i++) unpack_from(grad_of(s, i), s->flat + flat_at(s, i), NULL);
    return norm;
}

/* every rank's owned tensors of `ts` (indexed by parameter, NULL outside the run) into s->flat */
static void gather_owned(dp_sync *s, sgt_tensor *const *ts_owned) {
    const int lo = s->first[s->d->rank], hi = s->first[s->d->rank + 1];
    for (int i = lo; i < hi; i++) sgt_copy_to_host(ts_owned[i - lo], s->mine + s->off[i]);
    dist_allgather_f32(s->d, s->mine, s->flat, s->chunk);
}

void dp_gather_params(dp_sync *s) {
    const int lo = s->first[s->d->rank], hi = s->first[s->d->rank + 1];
    if (s->nccl) {
        for (int i = lo; i < hi; i++) pack(s, s->p->items[i].t, i, true); /* into our own chunk of dflat */
        const sgt_device dev = s->p->items[0].t->device;
        sgt_device_copy(s->dmine, dev, s->dflat + (int64_t)s->d->rank * s->chunk, dev,
                        sizeof(float) * (size_t)s->chunk);
        dist_nccl_allgather_f32(s->d, s->dmine, s->dflat, s->chunk);
        for (int i = 0; i < s->p->n; i++)
            if (i < lo || i >= hi) unpack_from(s->p->items[i].t, NULL, s->dflat + flat_at(s, i));
        return;
    }
    sgt_tensor **own = xcalloc(s, (size_t)(hi - lo), sizeof *own);
    for (int i = lo; i < hi; i++) own[i - lo] = s->p->items[i].t;
    gather_owned(s, own);
    free(own);
    for (int i = 0; i < s->p->n; i++)
        if (i < lo || i >= hi) unpack_from(s->p->items[i].t, s->flat + flat_at(s, i), NULL);
}

/* An optimizer over the whole store whose moments are opt's for the owned run and fresh scratch
 * tensors elsewhere; the caller frees full->m / full->v. */
static void full_view(dp_sync *s, const nn_adamw *opt, sgt_ctx *scratch, nn_adamw *full) {
    const int lo = s->first[s->d->rank], hi = s->first[s->d->rank + 1];
    *full = *opt;
    full->params = s->p;
    full->n = s->p->n;
    full->m = xcalloc(s, (size_t)s->p->n, sizeof *full->m);
    full->v = xcalloc(s, (size_t)s->p->n, sizeof *full->v);
    for (int i = 0; i < s->p->n; i++) {
        const sgt_tensor *t = s->p->items[i].t;
        if (i >= lo && i < hi) {
            full->m[i] = opt->m[i - lo];
            full->v[i] = opt->v[i - lo];
        } else {
            full->m[i] = sgt_zeros(scratch, t->dtype, t->ndim, t->shape);
            full->v[i] = sgt_zeros(scratch, t->dtype, t->ndim, t->shape);
        }
    }
}

int dp_save_train_state(dp_sync *s, const nn_adamw *opt, sgt_ctx *scratch, const char *path, const char *state_json,
                        char *err, size_t errn) {
    if (!s->zero) return s->d->rank == 0 ? nn_save_train_state(opt, path, state_json, err, errn) : 0;
    nn_adamw full;
    full_view(s, opt, scratch, &full);
    for (int which = 0; which < 2; which++) { /* m, then v: each rank's shard to everyone */
        gather_owned(s, which ? opt->v : opt->m);
        sgt_tensor **dst = which ? full.v : full.m;
        for (int i = 0; i < s->p->n; i++) sgt_copy_from_host(dst[i], s->flat + flat_at(s, i));
    }
    int rc = s->d->rank == 0 ? nn_save_train_state(&full, path, state_json, err, errn) : 0;
    free(full.m);
    free(full.v);
    return rc;
}

int dp_load_train_state(dp_sync *s, nn_adamw *opt, sgt_ctx *scratch, const char *path, char **state_json_out,
                        char *err, size_t errn) {
    if (!s->zero) return nn_load_train_state(opt, path, state_json_out, err, errn);
    nn_adamw full;
    full_view(s, opt, scratch, &full);
    int rc = nn_load_train_state(&full, path, state_json_out, err, errn);
    opt->step = full.step;
    free(full.m);
    free(full.v);
    return rc;
}
