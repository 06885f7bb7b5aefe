/* faultshim.c: an LD_PRELOAD library that makes the Nth file write operation of a process fail,
 * the way a crash or a full disk would, for tests/apps/test_faults.sh.
 *
 * The operations counted are the stdio and POSIX calls through which sgt writes files: fwrite,
 * fputc, fflush, fsync, fclose and rename (standard output and error are not counted). Env:
 *   SGT_FAULT       kill   : SIGKILL the process at operation N (before it runs)
 *                   enospc : operation N and every later one fail with ENOSPC (a full disk)
 *                   eio    : the same with EIO
 *                   sigint : raise SIGINT at operation N and go on (an interruption at a known point)
 *                   count  : fail nothing; at exit, write the number of operations to SGT_FAULT_OUT
 *   SGT_FAULT_AT    N (1-based)
 *   SGT_FAULT_OPS   which operations count, a comma list of the names above (default: all)
 *   SGT_FAULT_OUT   count mode: the file the count goes to */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { MODE_OFF, MODE_KILL, MODE_ENOSPC, MODE_EIO, MODE_SIGINT, MODE_COUNT };
static int mode = -1;
static long at, seen;
static const char *ops;

static void setup(void) {
    const char *m = getenv("SGT_FAULT"), *n = getenv("SGT_FAULT_AT");
    mode = !m ? MODE_OFF : !strcmp(m, "kill") ? MODE_KILL : !strcmp(m, "enospc") ? MODE_ENOSPC
         : !strcmp(m, "eio") ? MODE_EIO : !strcmp(m, "sigint") ? MODE_SIGINT : !strcmp(m, "count") ? MODE_COUNT : MODE_OFF;
    at = n ? atol(n) : 0;
    ops = getenv("SGT_FAULT_OPS");
}

static void report(void) {
    const char *p = getenv("SGT_FAULT_OUT");
    FILE *f = p ? fopen(p, "w") : NULL;
    if (f) { /* the real calls: this runs after counting is over */
        fprintf(f, "%ld\n", seen);
        fclose(f);
    }
}

/* 0: let the operation run; an errno: fail it with that */
static int fault(const char *op, FILE *stream) {
    if (mode < 0) {
        setup();
        if (mode == MODE_COUNT) atexit(report);
    }
    if (mode == MODE_OFF || (stream && (stream == stdout || stream == stderr))) return 0;
    if (ops) { /* whole names in a comma list */
        size_t n = strlen(op);
        const char *h = ops;
        while ((h = strstr(h, op)) && !((h == ops || h[-1] == ',') && (h[n] == ',' || h[n] == 0))) h++;
        if (!h) return 0;
    }
    if (mode == MODE_COUNT) {
        seen++;
        return 0;
    }
    if (++seen < at) return 0;
    if (mode == MODE_SIGINT) {
        if (seen == at) raise(SIGINT);
        return 0;
    }
    if (mode == MODE_KILL) {
        kill(getpid(), SIGKILL);
        pause();
    }
    return mode == MODE_ENOSPC ? ENOSPC : EIO;
}

#define REAL(name) static __typeof__(name) *real; if (!real) real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

size_t fwrite(const void *p, size_t size, size_t n, FILE *f) {
    REAL(fwrite);
    int e = fault("fwrite", f);
    if (e) { /* half of it reaches the file, as on a disk that fills up */
        size_t part = n / 2;
        if (part) real(p, size, part, f);
        errno = e;
        return part;
    }
    return real(p, size, n, f);
}

int fputc(int c, FILE *f) {
    REAL(fputc);
    int e = fault("fputc", f);
    if (e) {
        errno = e;
        return EOF;
    }
    return real(c, f);
}

int fflush(FILE *f) {
    REAL(fflush);
    int e = f ? fault("fflush", f) : 0;
    if (e) {
        errno = e;
        return EOF;
    }
    return real(f);
}

int fsync(int fd) {
    REAL(fsync);
    int e = fd > 2 ? fault("fsync", NULL) : 0;
    if (e) {
        errno = e;
        return -1;
    }
    return real(fd);
}

int fclose(FILE *f) {
    REAL(fclose);
    int e = fault("fclose", f);
    int r = real(f); /* the stream is released either way, as fclose(3) does on failure */
    if (e) {
        errno = e;
        return EOF;
    }
    return r;
}

int rename(const char *from, const char *to) {
    REAL(rename);
    int e = fault("rename", NULL);
    if (e) {
        errno = e;
        return -1;
    }
    return real(from, to);
}
