/* cli.c: the flag parser (see cli.h). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_default(const cli_flag *f) {
    switch (f->type) {
    case CLI_INT: printf("%lld", (long long)*(int64_t *)f->dst); break;
    case CLI_DOUBLE: printf("%g", *(double *)f->dst); break;
    case CLI_BOOL: printf("%s", *(bool *)f->dst ? "true" : "false"); break;
    default: {
        const char *s = *(const char **)f->dst;
        printf("%s", s ? s : "(none)");
    }
    }
}

static void usage(const char *prog, const char *summary, const cli_flag *flags, int n) {
    printf("%s: %s\n\nFlags (default in brackets):\n", prog, summary);
    for (int i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s", flags[i].name,
                 flags[i].type == CLI_BOOL ? "" : flags[i].type == CLI_CHOICE ? " {choice}" : " VALUE");
        if (flags[i].type == CLI_CHOICE) snprintf(left, sizeof left, "--%s %s", flags[i].name, flags[i].choices);
        printf("  %-30s %s [", left, flags[i].help);
        print_default(&flags[i]);
        printf("]\n");
    }
    printf("  %-30s %s\n", "--help", "print this and exit");
}

static int set_value(const char *prog, cli_flag *f, const char *v) {
    char *end;
    switch (f->type) {
    case CLI_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        /* allow 1e6-style and 500M-style counts */
        long long mult = 1;
        if (*end == 'k' || *end == 'K') mult = 1000, end++;
        else if (*end == 'M') mult = 1000000, end++;
        else if (*end == 'G' || *end == 'B') mult = 1000000000, end++;
        if (!errno && __builtin_mul_overflow(x, mult, &x)) errno = ERANGE; /* "9223372036854775G" */
        if (errno || end == v || *end) {
            fprintf(stderr, "%s: --%s expects an integer, got '%s'\n", prog, f->name, v);
            return -1;
        }
        if (f->min < f->max && (x < f->min || x > f->max)) {
            fprintf(stderr, "%s: --%s must be in [%g, %g], got %lld\n", prog, f->name, f->min, f->max, x);
            return -1;
        }
        *(int64_t *)f->dst = x;
        break;
    }
    case CLI_DOUBLE: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x)) {
            fprintf(stderr, "%s: --%s expects a number, got '%s'\n", prog, f->name, v);
            return -1;
        }
        if (f->min < f->max && (x < f->min || x > f->max)) {
            fprintf(stderr, "%s: --%s must be in [%g, %g], got %g\n", prog, f->name, f->min, f->max, x);
            return -1;
        }
        *(double *)f->dst = x;
        break;
    }
    case CLI_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "1")) *(bool *)f->dst = true;
        else if (!strcmp(v, "false") || !strcmp(v, "0")) *(bool *)f->dst = false;
        else {
            fprintf(stderr, "%s: --%s expects true or false, got '%s'\n", prog, f->name, v);
            return -1;
        }
        break;
    case CLI_CHOICE: {
        size_t n = strlen(v);
        const char *c = f->choices;
        bool ok = false;
        while (c && *c) {
            const char *bar = strchr(c, '|');
            size_t len = bar ? (size_t)(bar - c) : strlen(c);
            if (len == n && !strncmp(c, v, n)) ok = true;
            c = bar ? bar + 1 : NULL;
        }
        if (!ok) {
            fprintf(stderr, "%s: --%s must be one of %s, got '%s'\n", prog, f->name, f->choices, v);
            return -1;
        }
        *(const char **)f->dst = v;
        break;
    }
    case CLI_STRING:
        if (!*v) {
            fprintf(stderr, "%s: --%s expects a value\n", prog, f->name);
            return -1;
        }
        *(const char **)f->dst = v;
        break;
    }
    f->set = true;
    return 0;
}

int cli_parse(const char *prog, const char *summary, cli_flag *flags, int nflags, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(prog, summary, flags, nflags);
            return 1;
        }
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "%s: unexpected argument '%s' (flags start with --; see --help)\n", prog, a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        cli_flag *f = NULL;
        for (int k = 0; k < nflags; k++)
            if (strlen(flags[k].name) == nlen && !strncmp(flags[k].name, name, nlen)) f = &flags[k];
        if (!f) {
            fprintf(stderr, "%s: unknown flag '--%.*s' (see --help)\n", prog, (int)nlen, name);
            return -1;
        }
        const char *v;
        if (eq) v = eq + 1;
        else if (f->type == CLI_BOOL && (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0 ||
                                         (strcmp(argv[i + 1], "true") && strcmp(argv[i + 1], "false"))))
            v = "true";
        else if (i + 1 < argc) v = argv[++i];
        else {
            fprintf(stderr, "%s: --%s needs a value\n", prog, f->name);
            return -1;
        }
        if (set_value(prog, f, v)) return -1;
    }
    return 0;
}

bool cli_was_set(const cli_flag *flags, int nflags, const char *name) {
    for (int i = 0; i < nflags; i++)
        if (!strcmp(flags[i].name, name)) return flags[i].set;
    return false;
}
