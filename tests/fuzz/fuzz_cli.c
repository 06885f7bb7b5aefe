/* fuzz_cli.c: the apps' flag parser (apps/cli.c). The input is split at NUL bytes into argv; a
 * table with a flag of every type (int with a range, double, string, bool, choice) is parsed.
 * The parser must return 0, 1 (--help) or -1, never crash, and keep values inside their range. */
#include <stdbool.h>

#include "cli.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[66];
    int argc = 0;
    argv[argc++] = "prog";
    for (size_t i = 0; i <= size && argc < 65;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;
    int64_t steps = 10;
    double lr = 1e-3;
    const char *out = "out", *mode = "dense";
    bool resume = false;
    cli_flag flags[] = {
        {"steps", CLI_INT, &steps, "training steps", NULL, 1, 1000000, false},
        {"lr", CLI_DOUBLE, &lr, "learning rate", NULL, 0, 1, false},
        {"output_dir", CLI_STRING, &out, "where results go", NULL, 0, 0, false},
        {"resume", CLI_BOOL, &resume, "continue a run", NULL, 0, 0, false},
        {"model", CLI_CHOICE, &mode, "which model", "dense|sgt", 0, 0, false},
    };
    /* the parser prints its errors and --help to stdout/stderr: silence them while fuzzing */
    FILE *saved_err = stderr, *saved_out = stdout;
    FILE *null = fopen("/dev/null", "w");
    if (null) stderr = stdout = null;
    int rc = cli_parse("prog", "fuzzing", flags, 5, argc, argv);
    if (null) {
        stderr = saved_err;
        stdout = saved_out;
        fclose(null);
    }
    if (rc < -1 || rc > 1) abort();
    if (rc == 0) {
        if (steps < 1 || steps > 1000000 || !(lr >= 0 && lr <= 1)) abort();
        if (strcmp(mode, "dense") && strcmp(mode, "sgt")) abort();
        (void)cli_was_set(flags, 5, "steps");
    }
    free(buf);
    return 0;
}
