/* test_jsonl.c: the streaming JSONL reader: skipping and counting of empty lines, bad JSON,
 * missing or non-string fields and invalid UTF-8; CRLF; a multi-MB line; a custom field; and the
 * errors for missing, empty and all-invalid files. Files are written under a mkdtemp dir. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsonl.h"

static char g_dir[64];

static void path_in_dir(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", g_dir, name);
}

static void write_bytes(const char *path, const char *data, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_str(const char *path, const char *s) { write_bytes(path, s, strlen(s)); }

static void expect_doc(sgt_jsonl *r, const char *want, size_t want_len) {
    const char *text;
    size_t len;
    char err[256];
    int rc = sgt_jsonl_next(r, &text, &len, err, sizeof err);
    if (rc != 1) fail_msg("expected document \"%.40s\", got rc %d", want, rc);
    if (len != want_len || memcmp(text, want, len) != 0)
        fail_msg("expected document \"%.40s\" (%zu bytes), got \"%.40s\" (%zu bytes)", want,
                 want_len, text, len);
    assert_int_equal(text[len], 0);
}

static void expect_eof(sgt_jsonl *r) {
    const char *text;
    size_t len;
    assert_int_equal(sgt_jsonl_next(r, &text, &len, NULL, 0), 0);
    assert_int_equal(sgt_jsonl_next(r, &text, &len, NULL, 0), 0); /* stays at EOF */
}

static void test_skips_and_counts(void **state) {
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "mixed.jsonl");
    static const char data[] =
        "\xEF\xBB\xBF{\"text\": \"first\"}\n"   /* 1: with a BOM */
        "\n"                                      /* 2: empty */
        "   \t \n"                                /* 3: blank */
        "{\"text\": \"unterminated\n"             /* 4: bad JSON */
        "{\"text\": \"a\"} trailing\n"            /* 5: bad JSON (garbage after the object) */
        "[\"text\", \"array\"]\n"                 /* 6: bad JSON (not an object) */
        "{\"other\": \"x\"}\n"                    /* 7: missing field */
        "{\"text\": 5}\n"                         /* 8: non-string field */
        "{\"text\": null}\n"                      /* 9: non-string field */
        "{\"text\": \"crlf line\"}\r\n"           /* 10: CRLF */
        "{\"text\": \"bad \xff utf8\"}\n"         /* 11: invalid UTF-8 */
        "{\"text\": \"overlong \xc0\xaf\"}\n"     /* 12: invalid UTF-8 */
        "{\"text\": \"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\"\\n\"}\n" /* 13: escapes */
        "{\"id\": 3, \"text\": \"\"}\r\n"         /* 14: an empty text is a document */
        "\r\n"                                    /* 15: empty (CRLF) */
        "{\"text\": \"no newline at end\"}";      /* 16 */
    write_bytes(path, data, sizeof data - 1);
    sgt_jsonl *r;
    char err[512];
    assert_int_equal(sgt_jsonl_open(path, NULL, &r, err, sizeof err), 0);
    expect_doc(r, "first", 5);
    expect_doc(r, "crlf line", 9);
    expect_doc(r, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\"\n", 15);
    expect_doc(r, "", 0);
    expect_doc(r, "no newline at end", 17);
    expect_eof(r);
    const sgt_jsonl_stats *s = sgt_jsonl_stats_of(r);
    assert_int_equal(s->lines, 16);
    assert_int_equal(s->docs, 5);
    assert_int_equal(s->empty_lines, 3);
    assert_int_equal(s->bad_json, 3);
    assert_int_equal(s->missing_field, 3);
    assert_int_equal(s->bad_utf8, 2);
    assert_int_equal(s->first_bad_line, 4);
    assert_int_equal(s->bytes, sizeof data - 1);
    assert_int_equal(s->file_size, sizeof data - 1);
    sgt_jsonl_close(r);
}

static void test_custom_field(void **state) {
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "field.jsonl");
    write_str(path, "{\"text\": \"not me\", \"content\": \"me\"}\n{\"text\": \"only text\"}\n"
                    "{\"content\": \"me too\"}\n");
    sgt_jsonl *r;
    assert_int_equal(sgt_jsonl_open(path, "content", &r, NULL, 0), 0);
    expect_doc(r, "me", 2);
    expect_doc(r, "me too", 6);
    expect_eof(r);
    assert_int_equal(sgt_jsonl_stats_of(r)->missing_field, 1);
    sgt_jsonl_close(r);
}

/* A 6 MB line between two small ones: read whole, in order. */
static void test_huge_line(void **state) {
    (void)state;
    char path[128];
    path_in_dir(path, sizeof path, "huge.jsonl");
    size_t n = 6u << 20;
    char *text = malloc(n + 1);
    for (size_t i = 0; i < n; i++) text[i] = (char)('a' + i % 26);
    text[n - 1] = 'Z';
    text[n] = 0;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fprintf(f, "{\"text\": \"before\"}\r\n{\"text\": \"%s\"}\r\n{\"text\": \"after\"}\r\n", text);
    fclose(f);
    sgt_jsonl *r;
    assert_int_equal(sgt_jsonl_open(path, NULL, &r, NULL, 0), 0);
    expect_doc(r, "before", 6);
    expect_doc(r, text, n);
    expect_doc(r, "after", 5);
    expect_eof(r);
    sgt_jsonl_close(r);
    free(text);
}

static void test_missing_file(void **state) {
    (void)state;
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "does-not-exist.jsonl");
    sgt_jsonl *r = (sgt_jsonl *)1;
    assert_int_equal(sgt_jsonl_open(path, NULL, &r, err, sizeof err), -ENOENT);
    assert_null(r);
    assert_non_null(strstr(err, path));
}

static void test_empty_file(void **state) {
    (void)state;
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "empty.jsonl");
    write_str(path, "");
    sgt_jsonl *r;
    assert_int_equal(sgt_jsonl_open(path, NULL, &r, err, sizeof err), -ENODATA);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "empty"));
}

static void test_no_valid_document(void **state) {
    (void)state;
    char path[128], err[512] = "";
    path_in_dir(path, sizeof path, "invalid.jsonl");
    write_str(path, "\n{oops}\n{\"title\": \"x\"}\n{\"text\": \"\xfe\"}\n\n");
    sgt_jsonl *r;
    assert_int_equal(sgt_jsonl_open(path, NULL, &r, err, sizeof err), -ENODATA);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "no valid document"));
    assert_non_null(strstr(err, "1 bad JSON"));
    assert_non_null(strstr(err, "1 invalid UTF-8"));
}

static int setup(void **state) {
    (void)state;
    strcpy(g_dir, "/tmp/sgt_jsonl_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    const char *names[] = {"mixed.jsonl", "field.jsonl", "huge.jsonl", "empty.jsonl",
                           "invalid.jsonl"};
    char path[128];
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        path_in_dir(path, sizeof path, names[i]);
        unlink(path);
    }
    return rmdir(g_dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_skips_and_counts), cmocka_unit_test(test_custom_field),
        cmocka_unit_test(test_huge_line),        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_empty_file),       cmocka_unit_test(test_no_valid_document),
    };
    return cmocka_run_group_tests_name("jsonl", tests, setup, teardown) ? 1 : 0;
}
