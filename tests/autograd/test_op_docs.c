/* test_op_docs.c: docs/LIBRARY.md's op table is the op table. Every op of tensor/op_list.h has
 * its row, in order, and the row says what autograd/rules.c (differentiable?) and, in a CUDA
 * build, the CUDA backend (kernel? bf16 native?) say. On a mismatch the test prints the table as
 * it should be, to paste into the guide. The path of the guide is the program's argument. */
#include "../../autograd/tape.h"
#include "../common/test_util.h"
#ifdef SGT_HAVE_CUDA
#include "../../tensor/cuda/backend.h"
#endif

static const char *guide;

static const char *diff_word(int op) {
    switch (ag_rules[op].kind) {
    case AG_DIFF: return "yes";
    case AG_NONDIFF: return "no gradient";
    default: return "refused";
    }
}

/* the row of op, as the guide must have it */
static void row(int op, char *buf, size_t n) {
    const char *cuda = sgt_ops[op].is_view ? "view" : op == SGT_OP_CUSTOM ? "user kernel" : "yes";
    const char *bf16 = sgt_ops[op].is_view ? "view" : "via f32";
#ifdef SGT_HAVE_CUDA
    sgt_cuda_register_kernels();
    if (!sgt_ops[op].is_view && sgt_cuda_bf16_table[op]) bf16 = "native";
#else
    bf16 = "?"; /* not checked without the backend's table */
#endif
    snprintf(buf, n, "| `%s` | %s | %s | %s |", sgt_ops[op].name, diff_word(op), cuda, bf16);
}

static void t_table_matches(void **s) {
    (void)s;
    FILE *f = fopen(guide, "r");
    if (!f) fail_msg("cannot open the guide %s", guide);
    char line[512], want[256];
    int op = 0, bad = 0;
    while (fgets(line, sizeof line, f) && op < SGT_NOPS) {
        line[strcspn(line, "\n")] = 0;
        char name[80];
        snprintf(name, sizeof name, "| `%s` |", sgt_ops[op].name);
        if (strncmp(line, name, strlen(name))) continue;
        row(op, want, sizeof want);
#ifndef SGT_HAVE_CUDA
        /* compare up to the bf16 column */
        char *p = strrchr(want, '?');
        size_t keep = p ? (size_t)(p - want) : strlen(want);
        if (strncmp(line, want, keep)) {
#else
        if (strcmp(line, want)) {
#endif
            print_message("guide: %s\nwant:  %s\n", line, want);
            bad++;
        }
        op++;
    }
    fclose(f);
    if (op < SGT_NOPS || bad) {
        print_message("the op table for %s (from op_list.h, rules.c and the backends):\n", guide);
        print_message("| op | differentiable | CUDA | bf16 on CUDA |\n| --- | --- | --- | --- |\n");
        for (int i = 0; i < SGT_NOPS; i++) {
            row(i, want, sizeof want);
            print_message("%s\n", want);
        }
        fail_msg("%s: %d ops found in order of %d, %d rows differ", guide, op, SGT_NOPS, bad);
    }
}

int main(int argc, char **argv) {
    guide = argc > 1 ? argv[1] : "docs/LIBRARY.md";
    const struct CMUnitTest tests[] = {cmocka_unit_test(t_table_matches)};
    return cmocka_run_group_tests_name("op_docs", tests, NULL, NULL);
}
