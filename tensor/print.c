/* print.c: sgt_tensor_print (print.h). Two passes over the shown elements: format each into a
 * cell, take the widest, then walk the index space again writing brackets, cells and "..." rows. */
#include "print.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CELL 32

typedef struct {
    const sgt_tensor *x;
    bool summarise;
    const double *all;  /* every element in logical order, when not summarised; else NULL */
    bool sci;           /* "%.4e" rather than "%.4f" */
    int width;
    FILE *f;
} printer;

/* Is index i of a dim of size n shown (not inside the elided middle)? */
static bool shown(const printer *p, int64_t i, int64_t n) {
    return !p->summarise || n <= 2 * SGT_PRINT_EDGE || i < SGT_PRINT_EDGE || i >= n - SGT_PRINT_EDGE;
}

static double value(const printer *p, const int64_t *idx) {
    if (p->all) {
        int64_t flat = 0;
        for (int d = 0; d < p->x->ndim; d++) flat = flat * p->x->shape[d] + idx[d];
        return p->all[flat];
    }
    return sgt_get(p->x, idx);
}

static void cell(const printer *p, double v, char *out) {
    if (p->x->dtype == SGT_I32) snprintf(out, CELL, "%lld", (long long)v);
    else if (isnan(v)) snprintf(out, CELL, "nan");
    else if (isinf(v)) snprintf(out, CELL, v > 0 ? "inf" : "-inf");
    else snprintf(out, CELL, p->sci ? "%.4e" : "%.4f", v);
}

/* Calls visit on every shown element (row-major), for the first pass. */
static void each_shown(const printer *p, int d, int64_t *idx, void (*visit)(void *, double), void *u) {
    const sgt_tensor *x = p->x;
    if (d == x->ndim) {
        visit(u, value(p, idx));
        return;
    }
    for (int64_t i = 0; i < x->shape[d]; i++) {
        if (!shown(p, i, x->shape[d])) continue;
        idx[d] = i;
        each_shown(p, d + 1, idx, visit, u);
    }
}

typedef struct {
    double maxabs, minabs; /* minabs over nonzero finite values */
} range;

static void see_range(void *u, double v) {
    range *r = u;
    if (!isfinite(v)) return;
    double a = fabs(v);
    if (a > r->maxabs) r->maxabs = a;
    if (a > 0 && a < r->minabs) r->minabs = a;
}

static void see_width(void *u, double v) {
    printer *p = u;
    char s[CELL];
    cell(p, v, s);
    int w = (int)strlen(s);
    if (w > p->width) p->width = w;
}

/* Writes dim d's bracketed block; indent is the column where its '[' stands. */
static void block(printer *p, int d, int64_t *idx, int indent) {
    const sgt_tensor *x = p->x;
    int64_t n = x->shape[d];
    fputc('[', p->f);
    bool first = true, elided = false;
    for (int64_t i = 0; i < n; i++) {
        if (!shown(p, i, n)) {
            if (!elided) {
                if (d == x->ndim - 1) fputs(", ...", p->f);
                else fprintf(p->f, ",\n%*s...", indent + 1, "");
                elided = true;
            }
            continue;
        }
        idx[d] = i;
        if (d == x->ndim - 1) {
            char s[CELL];
            cell(p, value(p, idx), s);
            fprintf(p->f, "%s%*s", first ? "" : ", ", p->width, s);
        } else {
            if (!first || elided) {
                fputc(',', p->f);
                for (int k = d + 1; k < x->ndim; k++) fputc('\n', p->f); /* a blank line per extra dim */
                fprintf(p->f, "%*s", indent + 1, "");
            }
            block(p, d + 1, idx, indent + 1);
        }
        first = false;
    }
    fputc(']', p->f);
}

void sgt_tensor_print(FILE *f, const sgt_tensor *x, const char *name) {
    char sh[256];
    /* the shape without sgt_shape_str's dtype suffix */
    int o = snprintf(sh, sizeof sh, "[");
    for (int d = 0; d < x->ndim && o < (int)sizeof sh; d++)
        o += snprintf(sh + o, sizeof sh - (size_t)o, d ? ",%lld" : "%lld", (long long)x->shape[d]);
    if (o < (int)sizeof sh) snprintf(sh + o, sizeof sh - (size_t)o, "]");
    fprintf(f, "%s%sshape %s, %s, %s\n", name ? name : "", name ? ": " : "", sh, sgt_dtype_name(x->dtype),
            sgt_device_name(x->device));
    int64_t numel = sgt_numel(x);
    printer p = {.x = x, .summarise = numel > SGT_PRINT_THRESHOLD, .f = f};
    double *all = NULL;
    if (!p.summarise && numel > 0) {
        all = malloc((size_t)numel * sizeof *all);
        SGT_CHECK(all, "sgt_tensor_print: out of memory for %lld values", (long long)numel);
        sgt_to_f64(x, all);
        p.all = all;
    }
    if (numel == 0) {
        fputs("[]\n", f);
        return;
    }
    int64_t idx[SGT_MAX_DIMS] = {0};
    if (x->ndim == 0) {
        char s[CELL];
        cell(&p, sgt_item(x), s);
        fprintf(f, "%s\n", s);
        free(all);
        return;
    }
    if (x->dtype != SGT_I32) {
        range r = {0, INFINITY};
        each_shown(&p, 0, idx, see_range, &r);
        p.sci = r.maxabs >= 1e5 || (r.minabs < 1e-4);
    }
    each_shown(&p, 0, idx, see_width, &p);
    block(&p, 0, idx, 0);
    fputc('\n', f);
    free(all);
}

char *sgt_tensor_format(const sgt_tensor *x, const char *name) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    sgt_tensor_print(f, x, name);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
