/* test_cli.c: the apps' flag parser (apps/cli.c): values, ranges, suffixes, and the inputs the
 * fuzzer (tests/fuzz/fuzz_cli.c) found, kept as regressions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli.h"

static int parse1(const char *flag, const char *value, int64_t *steps) {
    char *argv[] = {"prog", (char *)flag, (char *)value, NULL};
    cli_flag flags[] = {{"steps", CLI_INT, steps, "steps", NULL, 0, 0, false}};
    return cli_parse("prog", "test", flags, 1, 3, argv);
}

static void test_suffixes(void **s) {
    (void)s;
    int64_t v = 0;
    assert_int_equal(parse1("--steps", "5k", &v), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(parse1("--steps", "2G", &v), 0);
    assert_int_equal(v, 2000000000);
    assert_int_equal(parse1("--steps", "abc", &v), -1);
}

/* found by fuzz_cli: the suffix multiplied past INT64_MAX (signed overflow, undefined behaviour) */
static void test_suffix_overflow(void **s) {
    (void)s;
    int64_t v = 7;
    assert_int_equal(parse1("--steps", "922337203685477580G", &v), -1);
    assert_int_equal(parse1("--steps", "-922337203685477580M", &v), -1);
    assert_int_equal(parse1("--steps", "9223372036854775k", &v), 0);
    assert_int_equal(v, 9223372036854775000LL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suffixes),
        cmocka_unit_test(test_suffix_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
