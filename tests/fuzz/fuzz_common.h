/* fuzz_common.h: what the fuzz targets share: the libFuzzer entry point's prototype, and a
 * scratch file that each input is written to (the readers under test take paths).
 * The scratch directory is made once per process under $TMPDIR (or /tmp) and removed at exit. */
#ifndef SGT_FUZZ_COMMON_H
#define SGT_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An optional one-time setup a target may define (libFuzzer calls it before the first input). */
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char fz_dir_[256];

static void fz_cleanup_(void) {
    if (!fz_dir_[0]) return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fz_dir_);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fz_dir_);
}

/* The scratch directory (made on first use). */
static inline const char *fz_dir(void) {
    if (!fz_dir_[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(fz_dir_, sizeof fz_dir_, "%s/sgt-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(fz_dir_)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fz_cleanup_);
    }
    return fz_dir_;
}

/* path = <scratch>/<name>; data[0..n) written to it. */
static inline const char *fz_write(const char *name, const void *data, size_t n, char *path, size_t pathsz) {
    snprintf(path, pathsz, "%s/%s", fz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        perror("fuzz: writing the scratch file");
        abort();
    }
    return path;
}

#endif
