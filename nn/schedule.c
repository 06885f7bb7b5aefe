/* schedule.c: the learning-rate schedules (cosine, constant, linear, warmup-stable-decay), each
 * after a linear warmup, and their names (see optim.h for the formulas). */
#include "optim.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const KIND_NAMES[] = {
    [NN_LR_COSINE] = "cosine", [NN_LR_CONSTANT] = "constant", [NN_LR_LINEAR] = "linear", [NN_LR_WSD] = "wsd"};
#define NKINDS ((int)(sizeof KIND_NAMES / sizeof KIND_NAMES[0]))

/* from hi at step `from` to lo at step `to` (to > from), linearly */
static double linear(double hi, double lo, int64_t from, int64_t to, int64_t s) {
    return hi + (lo - hi) * (double)(s - from) / (double)(to - from);
}

double nn_lr_plan_at(const nn_lr_plan *s, int64_t step) {
    if (step < 0) step = 0;
    if (step < s->warmup) return s->max_lr * (double)(step + 1) / (double)s->warmup;
    if (s->kind == NN_LR_CONSTANT) return s->max_lr;
    if (step >= s->total) return s->min_lr;
    switch (s->kind) {
    case NN_LR_LINEAR: return linear(s->max_lr, s->min_lr, s->warmup, s->total, step);
    case NN_LR_WSD: {
        const double f = s->decay_frac > 0 ? s->decay_frac : NN_WSD_DECAY_FRAC;
        int64_t d = s->total - (int64_t)llround(f * (double)s->total);
        if (d < s->warmup) d = s->warmup;
        if (step < d) return s->max_lr;
        return linear(s->max_lr, s->min_lr, d, s->total, step);
    }
    default: {
        const double progress = (double)(step - s->warmup) / (double)(s->total - s->warmup);
        return s->min_lr + (s->max_lr - s->min_lr) * 0.5 * (1.0 + cos(M_PI * progress));
    }
    }
}

double nn_lr_at(const nn_lr_schedule *s, int64_t step) {
    const nn_lr_plan p = {.max_lr = s->max_lr, .min_lr = s->min_lr, .warmup = s->warmup, .total = s->total};
    return nn_lr_plan_at(&p, step);
}

int nn_lr_kind_parse(const char *name, nn_lr_kind *out, char *err, size_t errn) {
    for (int k = 0; name && k < NKINDS; k++)
        if (strcmp(name, KIND_NAMES[k]) == 0) {
            *out = (nn_lr_kind)k;
            return 0;
        }
    if (err && errn) snprintf(err, errn, "unknown learning-rate schedule '%s' (cosine, constant, linear, wsd)",
                              name ? name : "(null)");
    return -1;
}

const char *nn_lr_kind_name(nn_lr_kind k) {
    return (int)k >= 0 && (int)k < NKINDS ? KIND_NAMES[k] : "?";
}
