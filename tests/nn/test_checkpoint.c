/* test_checkpoint.c: safetensors checkpoints. Save -> load is bit-exact (f32, f64); every kind of
 * bad file (truncated, garbage header, oversized header length, shape or dtype mismatch, missing or
 * unknown tensor, overlapping or inconsistent offsets, trailing bytes) is refused with a message
 * naming the file and the tensor, and leaves the destination untouched; a failed save leaves an
 * existing checkpoint byte-identical; metadata and the optimizer's state round-trip; and, when
 * python3 is present, an independent reader parses the file. */
#include <cjson/cJSON.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../nn/checkpoint.h"
#include "../common/test_util.h"

static char g_dir[64];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int setup(void **s) {
    (void)s;
    snprintf(g_dir, sizeof g_dir, "/tmp/sgt_ckpt_XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **s) {
    (void)s;
    return nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *in_dir(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s", g_dir, name);
    return buf;
}

/* ---- stores ---- */

typedef enum { V_NORMAL, V_TRANSPOSED_QKV, V_MISSING_LNF, V_EXTRA } variant;

static nn_params *make_store(uint64_t seed, sgt_dtype t, variant v) {
    nn_params *p = nn_params_create(seed, t, SGT_CPU);
    nn_param_new(p, "embed", "weight", SGT_SHAPE(5, 4), NN_INIT_NORMAL, 1.0, false);
    if (v == V_TRANSPOSED_QKV) nn_param_new(p, "layers.0.attn.qkv", "weight", SGT_SHAPE(12, 4), NN_INIT_NORMAL, 1.0, true);
    else nn_param_new(p, "layers.0.attn.qkv", "weight", SGT_SHAPE(4, 12), NN_INIT_NORMAL, 1.0, true);
    nn_param_new(p, "layers.0.attn.qkv", "bias", SGT_SHAPE(12), NN_INIT_NORMAL, 1.0, false);
    if (v == V_EXTRA) nn_param_new(p, "extra", "weight", SGT_SHAPE(3), NN_INIT_NORMAL, 1.0, true);
    if (v != V_MISSING_LNF) nn_param_new(p, "ln_f", "weight", SGT_SHAPE(4), NN_INIT_NORMAL, 1.0, false);
    return p;
}

/* all parameter bytes, concatenated */
static unsigned char *snapshot(const nn_params *p, size_t *n_out) {
    size_t n = 0;
    for (int i = 0; i < p->n; i++) n += (size_t)sgt_numel(p->items[i].t) * sgt_dtype_size(p->items[i].t->dtype);
    unsigned char *b = malloc(n), *q = b;
    for (int i = 0; i < p->n; i++) {
        size_t k = (size_t)sgt_numel(p->items[i].t) * sgt_dtype_size(p->items[i].t->dtype);
        memcpy(q, sgt_ptr(p->items[i].t), k);
        q += k;
    }
    *n_out = n;
    return b;
}

static void assert_params_equal(const nn_params *a, const nn_params *b, bool want_equal, const char *what) {
    size_t na, nb;
    unsigned char *sa = snapshot(a, &na), *sb = snapshot(b, &nb);
    bool eq = na == nb && !memcmp(sa, sb, na);
    free(sa);
    free(sb);
    if (eq != want_equal) fail_msg("%s: parameters are %s", what, eq ? "equal" : "different");
}

static unsigned char *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    if (fread(b, 1, (size_t)sz, f) != (size_t)sz) fail_msg("short read of %s", path);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void write_all(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f)) fail_msg("cannot write %s", path);
}

/* a file from a header string (padded to 8) and `ndata` bytes of data */
static void write_raw(const char *path, const char *header, size_t ndata) {
    size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
    size_t n = 8 + padded + ndata;
    unsigned char *b = calloc(1, n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memset(b + 8, ' ', padded);
    memcpy(b + 8, header, hl);
    for (size_t i = 0; i < ndata; i++) b[8 + padded + i] = (unsigned char)i;
    write_all(path, b, n);
    free(b);
}

#define EXPECT_FAIL(rc, err, sub1, sub2)                                                                  \
    do {                                                                                                  \
        if ((rc) != -1) fail_msg("expected failure (%s, %s), got rc %d", sub1, sub2, rc);                \
        if (!strstr(err, sub1)) fail_msg("error '%s' does not contain '%s'", err, sub1);                  \
        if ((sub2) && !strstr(err, (const char *)(sub2))) fail_msg("error '%s' does not contain '%s'", err, \
                                                                   (const char *)(sub2));                \
    } while (0)

/* ---- tests ---- */

static void t_round_trip_bit_exact(void **s) {
    (void)s;
    sgt_dtype types[2] = {SGT_F32, SGT_F64};
    for (int k = 0; k < 2; k++) {
        char path[128], err[512];
        in_dir(path, sizeof path, k ? "rt64.safetensors" : "rt32.safetensors");
        nn_params *a = make_store(1, types[k], V_NORMAL), *b = make_store(2, types[k], V_NORMAL);
        assert_params_equal(a, b, false, "stores with different seeds");
        if (nn_save_params(a, path, NULL, err, sizeof err)) fail_msg("save: %s", err);
        if (nn_load_params(b, path, err, sizeof err)) fail_msg("load: %s", err);
        assert_params_equal(a, b, true, "after the round trip");

        /* the layout: 8-aligned header, packed data, nothing after it */
        size_t n;
        unsigned char *f = read_all(path, &n);
        uint64_t hl = 0;
        for (int i = 0; i < 8; i++) hl |= (uint64_t)f[i] << (8 * i);
        size_t nb;
        free(snapshot(a, &nb));
        assert_int_equal(hl % 8, 0);
        assert_int_equal(n, 8 + hl + nb);
        assert_int_equal(f[8], '{');
        /* the data section is the parameters' bytes in store order */
        unsigned char *snap = snapshot(a, &nb);
        assert_memory_equal(f + 8 + hl, snap, nb);
        free(snap);
        free(f);
        nn_params_destroy(a);
        nn_params_destroy(b);
    }
}

static void t_metadata_round_trip(void **s) {
    (void)s;
    char path[128], err[512];
    in_dir(path, sizeof path, "meta.safetensors");
    nn_params *a = make_store(1, SGT_F32, V_NORMAL);
    const char *meta = "{\"config\": \"{\\\"d_model\\\": 4, \\\"name\\\": \\\"tiny\\\"}\", \"commit\": \"abc\\n\\\"q\\\"\"}";
    if (nn_save_params(a, path, meta, err, sizeof err)) fail_msg("save: %s", err);
    char *got = NULL;
    if (nn_read_metadata(path, &got, err, sizeof err)) fail_msg("read_metadata: %s", err);
    cJSON *j = cJSON_Parse(got), *want = cJSON_Parse(meta);
    assert_non_null(j);
    assert_true(cJSON_Compare(j, want, true));
    cJSON_Delete(j);
    cJSON_Delete(want);
    free(got);

    /* no metadata: "{}" */
    if (nn_save_params(a, path, NULL, err, sizeof err)) fail_msg("save: %s", err);
    if (nn_read_metadata(path, &got, err, sizeof err)) fail_msg("read_metadata: %s", err);
    assert_string_equal(got, "{}");
    free(got);

    /* safetensors metadata maps strings to strings */
    EXPECT_FAIL(nn_save_params(a, path, "{\"step\": 3}", err, sizeof err), err, "meta.safetensors", "'step'");
    EXPECT_FAIL(nn_save_params(a, path, "[1, 2]", err, sizeof err), err, "meta.safetensors", "not a JSON object");
    nn_params_destroy(a);
}

/* A non-contiguous tensor (a transposed view) is written as its contiguous copy. */
static void t_generic_save_non_contiguous(void **s) {
    (void)s;
    char path[128], err[512];
    in_dir(path, sizeof path, "generic.safetensors");
    tu_env *e = tu_env_new();
    sgt_tensor *x = tu_rand(&e->ctx, SGT_F64, SGT_SHAPE(3, 5), 1, -1, 1);
    sgt_tensor *xt = sgt_transpose(&e->ctx, x, 0, 1);
    sgt_tensor *ids = sgt_from_i32(&e->ctx, SGT_SHAPE(4), (int32_t[]){1, -2, 3, 7});
    assert_false(sgt_is_contiguous(xt));
    const char *names[2] = {"xt", "ids"};
    sgt_tensor *ts[2] = {xt, ids};
    if (nn_save_safetensors(path, 2, names, ts, NULL, err, sizeof err)) fail_msg("save: %s", err);
    size_t n;
    unsigned char *f = read_all(path, &n);
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)f[i] << (8 * i);
    sgt_tensor *dense = sgt_copy(&e->ctx, xt);
    assert_int_equal(n, 8 + hl + 15 * 8 + 4 * 4);
    assert_memory_equal(f + 8 + hl, sgt_ptr(dense), 15 * 8);
    assert_memory_equal(f + 8 + hl + 15 * 8, sgt_ptr(ids), 16);
    char *hdr = strndup((char *)f + 8, hl);
    assert_non_null(strstr(hdr, "\"xt\":{\"dtype\":\"F64\",\"shape\":[5,3],\"data_offsets\":[0,120]}"));
    assert_non_null(strstr(hdr, "\"ids\":{\"dtype\":\"I32\",\"shape\":[4],\"data_offsets\":[120,136]}"));
    free(hdr);
    free(f);
    /* duplicate and reserved names are refused */
    const char *dup[2] = {"a", "a"};
    EXPECT_FAIL(nn_save_safetensors(path, 2, dup, ts, NULL, err, sizeof err), err, "generic.safetensors", "'a'");
    const char *res[1] = {"__metadata__"};
    EXPECT_FAIL(nn_save_safetensors(path, 1, res, ts, NULL, err, sizeof err), err, "generic.safetensors", "reserved");
    tu_env_free(e);
}

/* one bad file: loading it into a fresh normal f32 store fails with both substrings, and changes nothing */
static void expect_load_fails(const char *path, sgt_dtype t, const char *sub1, const char *sub2) {
    nn_params *dst = make_store(9, t, V_NORMAL), *ref = make_store(9, t, V_NORMAL);
    char err[512];
    EXPECT_FAIL(nn_load_params(dst, path, err, sizeof err), err, sub1, sub2);
    const char *base = strrchr(path, '/') + 1;
    if (!strstr(err, base)) fail_msg("error '%s' does not name the file %s", err, base);
    assert_params_equal(dst, ref, true, "destination after a failed load");
    nn_params_destroy(dst);
    nn_params_destroy(ref);
}

static void t_bad_files_refused(void **s) {
    (void)s;
    char good[128], path[128], err[512];
    in_dir(good, sizeof good, "good.safetensors");
    nn_params *a = make_store(1, SGT_F32, V_NORMAL);
    if (nn_save_params(a, good, NULL, err, sizeof err)) fail_msg("save: %s", err);
    size_t n;
    unsigned char *f = read_all(good, &n);

    /* truncated in the data section: the last tensor runs past the end */
    write_all(in_dir(path, sizeof path, "trunc.safetensors"), f, n - 5);
    expect_load_fails(path, SGT_F32, "truncated", "'ln_f.weight'");
    /* truncated inside the header */
    write_all(in_dir(path, sizeof path, "trunc_header.safetensors"), f, 40);
    expect_load_fails(path, SGT_F32, "header length", "truncated");
    /* shorter than the length field */
    write_all(in_dir(path, sizeof path, "tiny.safetensors"), f, 5);
    expect_load_fails(path, SGT_F32, "too short", NULL);
    /* garbage JSON */
    if (n < 64) fail_msg("checkpoint of %zu bytes is too small for the corruption cases", (size_t)n);
    unsigned char *g = malloc(n);
    assert_non_null(g);
    memcpy(g, f, n);
    for (int i = 0; i < 9; i++) g[9 + i] = (unsigned char)"garbage!!"[i]; /* memcpy trips a GCC 12 -Warray-bounds false positive under ASan */
    write_all(in_dir(path, sizeof path, "garbage.safetensors"), g, n);
    expect_load_fails(path, SGT_F32, "not valid JSON", NULL);
    /* a header length larger than the file */
    memcpy(g, f, n);
    for (int i = 0; i < 8; i++) g[i] = (unsigned char)((uint64_t)n >> (8 * i));
    write_all(in_dir(path, sizeof path, "hugelen.safetensors"), g, n);
    expect_load_fails(path, SGT_F32, "header length", "exceeds");
    /* trailing bytes after the last tensor */
    unsigned char *t = calloc(1, n + 4);
    memcpy(t, f, n);
    write_all(in_dir(path, sizeof path, "trailing.safetensors"), t, n + 4);
    expect_load_fails(path, SGT_F32, "trailing", NULL);
    free(t);
    free(g);
    free(f);
    /* not there at all */
    expect_load_fails(in_dir(path, sizeof path, "absent.safetensors"), SGT_F32, "opening", "No such file");
    nn_params_destroy(a);
}

static void t_mismatches_refused(void **s) {
    (void)s;
    char path[128], err[512];
    /* shape: a store with the same name but the transposed shape */
    nn_params *x = make_store(1, SGT_F32, V_TRANSPOSED_QKV);
    if (nn_save_params(x, in_dir(path, sizeof path, "shape.safetensors"), NULL, err, sizeof err)) fail_msg("%s", err);
    expect_load_fails(path, SGT_F32, "tensor 'layers.0.attn.qkv.weight' has shape [12,4], the model expects [4,12]",
                      NULL);
    nn_params_destroy(x);
    /* dtype: an f64 file into an f32 store */
    x = make_store(1, SGT_F64, V_NORMAL);
    if (nn_save_params(x, in_dir(path, sizeof path, "dtype.safetensors"), NULL, err, sizeof err)) fail_msg("%s", err);
    expect_load_fails(path, SGT_F32, "has dtype F64, the model expects F32", "'embed.weight'");
    nn_params_destroy(x);
    /* missing */
    x = make_store(1, SGT_F32, V_MISSING_LNF);
    if (nn_save_params(x, in_dir(path, sizeof path, "missing.safetensors"), NULL, err, sizeof err)) fail_msg("%s", err);
    expect_load_fails(path, SGT_F32, "tensor 'ln_f.weight'", "missing");
    nn_params_destroy(x);
    /* unknown extra */
    x = make_store(1, SGT_F32, V_EXTRA);
    if (nn_save_params(x, in_dir(path, sizeof path, "extra.safetensors"), NULL, err, sizeof err)) fail_msg("%s", err);
    expect_load_fails(path, SGT_F32, "unknown tensor 'extra.weight'", NULL);
    nn_params_destroy(x);
}

static nn_param *find(nn_params *p, const char *name) {
    nn_param *q = nn_params_find(p, name);
    if (!q) fail_msg("no parameter '%s'", name);
    return q;
}

static bool same_bytes(const sgt_tensor *a, const sgt_tensor *b) {
    size_t n = (size_t)sgt_numel(a) * sgt_dtype_size(a->dtype);
    return n == (size_t)sgt_numel(b) * sgt_dtype_size(b->dtype) && !memcmp(sgt_ptr(a), sgt_ptr(b), n);
}

/* nn_load_params_opts: fine-tuning (the model has a new head the file lacks, the file a tensor the
 * model lacks), renamed prefixes, and shape mismatches that fail even when not strict. */
static void t_non_strict_and_renamed(void **s) {
    (void)s;
    char path[128], err[512];
    nn_params *src = make_store(1, SGT_F32, V_MISSING_LNF); /* the file: no ln_f */
    nn_param_new(src, "old_head", "weight", SGT_SHAPE(2), NN_INIT_NORMAL, 1.0, true);
    if (nn_save_params(src, in_dir(path, sizeof path, "partial.safetensors"), NULL, err, sizeof err)) fail_msg("%s", err);
    /* strict (the default wrapper and opts.strict) refuses it */
    nn_params *dst = make_store(2, SGT_F32, V_NORMAL);
    nn_load_opts strict = {.strict = true};
    nn_load_report rep;
    assert_int_equal(nn_load_params_opts(dst, path, &strict, &rep, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown tensor 'old_head.weight'"));
    assert_int_equal(rep.n_loaded + rep.n_missing + rep.n_unexpected, 0);
    /* non-strict loads what both have, keeps ln_f and reports both sides */
    sgt_tensor *lnf = find(dst, "ln_f.weight")->t;
    double lnf0 = sgt_get(lnf, (int64_t[]){0});
    nn_load_opts loose = {.strict = false};
    if (nn_load_params_opts(dst, path, &loose, &rep, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(rep.n_loaded, 3);
    assert_int_equal(rep.n_missing, 1);
    assert_string_equal(rep.missing[0], "ln_f.weight");
    assert_int_equal(rep.n_unexpected, 1);
    assert_string_equal(rep.unexpected[0], "old_head.weight");
    nn_load_report_free(&rep);
    assert_true(same_bytes(find(dst, "embed.weight")->t, find(src, "embed.weight")->t));
    assert_true(same_bytes(find(dst, "layers.0.attn.qkv.bias")->t, find(src, "layers.0.attn.qkv.bias")->t));
    assert_true(sgt_get(lnf, (int64_t[]){0}) == lnf0);
    /* a dropped prefix (to NULL) is neither loaded nor reported */
    nn_load_opts drop = {.strict = false, .n_prefix = 1, .prefix = (nn_prefix_map[]){{"old_head.", NULL}}};
    if (nn_load_params_opts(dst, path, &drop, &rep, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(rep.n_unexpected, 0);
    nn_load_report_free(&rep);
    nn_params_destroy(dst);

    /* renamed prefixes: the file's "embed." is the model's "backbone.embed.", and "layers." ->
     * "backbone.layers."; strict, so everything must match after renaming */
    nn_params *big = nn_params_create(3, SGT_F32, SGT_CPU);
    nn_param_new(big, "backbone.embed", "weight", SGT_SHAPE(5, 4), NN_INIT_NORMAL, 1.0, false);
    nn_param_new(big, "backbone.layers.0.attn.qkv", "weight", SGT_SHAPE(4, 12), NN_INIT_NORMAL, 1.0, true);
    nn_param_new(big, "backbone.layers.0.attn.qkv", "bias", SGT_SHAPE(12), NN_INIT_NORMAL, 1.0, false);
    nn_param_new(big, "head", "weight", SGT_SHAPE(2), NN_INIT_NORMAL, 1.0, true);
    nn_load_opts ren = {.strict = true, .n_prefix = 3,
                        .prefix = (nn_prefix_map[]){{"old_head.", "head."}, {"embed.", "backbone.embed."},
                                                    {"layers.", "backbone.layers."}}};
    if (nn_load_params_opts(big, path, &ren, &rep, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(rep.n_loaded, 4);
    assert_int_equal(rep.n_missing + rep.n_unexpected, 0);
    nn_load_report_free(&rep);
    assert_true(same_bytes(find(big, "backbone.layers.0.attn.qkv.weight")->t,
                           find(src, "layers.0.attn.qkv.weight")->t));
    assert_true(same_bytes(find(big, "head.weight")->t, find(src, "old_head.weight")->t));
    nn_params_destroy(big);

    /* a shape mismatch fails even when not strict, names the tensor and both shapes, loads nothing */
    nn_params *bad = make_store(4, SGT_F32, V_TRANSPOSED_QKV);
    size_t n0;
    unsigned char *before = snapshot(bad, &n0);
    assert_int_equal(nn_load_params_opts(bad, path, &loose, &rep, err, sizeof err), -1);
    assert_non_null(strstr(err, "tensor 'layers.0.attn.qkv.weight' has shape [4,12], the model expects [12,4]"));
    assert_int_equal(rep.n_loaded + rep.n_missing + rep.n_unexpected, 0);
    size_t n1;
    unsigned char *after = snapshot(bad, &n1);
    assert_true(n0 == n1 && !memcmp(before, after, n0));
    free(before);
    free(after);
    nn_params_destroy(bad);
    nn_params_destroy(src);
}

/* hand-written headers for a two-parameter f32 store a[2], b[2] */
static void t_bad_offsets_refused(void **s) {
    (void)s;
    char path[128], err[512];
    nn_params *dst = nn_params_create(3, SGT_F32, SGT_CPU);
    nn_param_new(dst, "", "a", SGT_SHAPE(2), NN_INIT_NORMAL, 1.0, true);
    nn_param_new(dst, "", "b", SGT_SHAPE(2), NN_INIT_NORMAL, 1.0, true);
    size_t n0;
    unsigned char *before = snapshot(dst, &n0);
    static const struct {
        const char *file, *header;
        size_t ndata;
        const char *sub1, *sub2;
    } cases[] = {
        {"ok.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         16, NULL, NULL},
        {"overlap.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "overlap", "'b'"},
        {"span.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,12]}}",
         12, "tensor 'b'", "span 4 bytes"},
        {"reversed.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, "tensor 'a'", "data_offsets"},
        {"dup.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, "'a'", "twice"},
        {"noshape.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, "tensor 'a'", "'shape'"},
        {"negshape.safetensors",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, "tensor 'a'", "'shape'"},
        {"f16.safetensors",
         "{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         12, "tensor 'a' has dtype F16", "expects F32"},
        {"array.safetensors", "[1, 2, 3]", 0, "not a JSON object", NULL},
        {"badmeta.safetensors",
         "{\"__metadata__\":{\"step\":3},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
         16, "'step'", "not a string"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        write_raw(in_dir(path, sizeof path, cases[k].file), cases[k].header, cases[k].ndata);
        int rc = nn_load_params(dst, path, err, sizeof err);
        if (!cases[k].sub1) { /* the well-formed control: it loads, and becomes the new reference */
            if (rc) fail_msg("%s: %s", cases[k].file, err);
            free(before);
            before = snapshot(dst, &n0);
            continue;
        }
        EXPECT_FAIL(rc, err, cases[k].sub1, cases[k].sub2);
        if (!strstr(err, cases[k].file)) fail_msg("error '%s' does not name %s", err, cases[k].file);
        size_t n1;
        unsigned char *after = snapshot(dst, &n1);
        assert_memory_equal(before, after, n0);
        free(after);
    }
    free(before);
    nn_params_destroy(dst);
}

/* The well-formed hand-written file (a and b stored in the other order) loads to the right places. */
static void t_out_of_order_offsets_load(void **s) {
    (void)s;
    char path[128], err[512];
    nn_params *dst = nn_params_create(3, SGT_F32, SGT_CPU);
    sgt_tensor *a = nn_param_new(dst, "", "a", SGT_SHAPE(2), NN_INIT_NORMAL, 1.0, true);
    sgt_tensor *b = nn_param_new(dst, "", "b", SGT_SHAPE(2), NN_INIT_NORMAL, 1.0, true);
    write_raw(in_dir(path, sizeof path, "swapped.safetensors"),
              "{\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
              16);
    if (nn_load_params(dst, path, err, sizeof err)) fail_msg("%s", err);
    const unsigned char wb[8] = {0, 1, 2, 3, 4, 5, 6, 7}, wa[8] = {8, 9, 10, 11, 12, 13, 14, 15};
    assert_memory_equal(sgt_ptr(a), wa, 8);
    assert_memory_equal(sgt_ptr(b), wb, 8);
    nn_params_destroy(dst);
}

static void t_failed_save_keeps_old_file(void **s) {
    (void)s;
    char path[128], tmp[256], err[512];
    in_dir(path, sizeof path, "keep.safetensors");
    nn_params *a = make_store(1, SGT_F32, V_NORMAL), *b = make_store(2, SGT_F32, V_NORMAL);
    if (nn_save_params(a, path, "{\"k\": \"v\"}", err, sizeof err)) fail_msg("save: %s", err);
    size_t n0;
    unsigned char *before = read_all(path, &n0);

    /* a directory where the temp file must go */
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_int_equal(mkdir(tmp, 0755), 0);
    EXPECT_FAIL(nn_save_params(b, path, NULL, err, sizeof err), err, "keep.safetensors", "temp file");
    size_t n1;
    unsigned char *after = read_all(path, &n1);
    assert_int_equal(n0, n1);
    assert_memory_equal(before, after, n0);
    free(after);
    struct stat st;
    assert_int_equal(stat(tmp, &st), 0); /* ours to remove, not the saver's */
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(rmdir(tmp), 0);

    /* a directory that does not exist */
    char nodir[160];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.safetensors", g_dir);
    EXPECT_FAIL(nn_save_params(b, nodir, NULL, err, sizeof err), err, "x.safetensors", "No such file");

    /* saving over a directory: the rename fails, and the temp file is cleaned up */
    char dirpath[160];
    snprintf(dirpath, sizeof dirpath, "%s/adir", g_dir);
    assert_int_equal(mkdir(dirpath, 0755), 0);
    assert_int_equal(mkdir(in_dir(tmp, sizeof tmp, "adir/inner"), 0755), 0); /* non-empty: rename cannot replace it */
    EXPECT_FAIL(nn_save_params(b, dirpath, NULL, err, sizeof err), err, "adir", "renam");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dirpath, (long)getpid());
    assert_int_equal(access(tmp, F_OK), -1);

    /* and the old checkpoint still loads */
    if (nn_load_params(b, path, err, sizeof err)) fail_msg("load: %s", err);
    assert_params_equal(a, b, true, "reloaded after failed saves");
    free(before);
    nn_params_destroy(a);
    nn_params_destroy(b);
}

/* fills every gradient with a deterministic function of (i, k) */
static void set_grads(nn_params *p, int k) {
    for (int i = 0; i < p->n; i++) {
        sgt_tensor *g = ag_grad(p->items[i].t);
        for (int64_t j = 0; j < sgt_numel(g); j++)
            ((float *)sgt_ptr(g))[j] = (float)sin(0.37 * (double)(j + 1) + 1.3 * (double)i + 0.11 * (double)k);
    }
}

static void t_train_state_round_trip(void **s) {
    (void)s;
    char wpath[128], opath[128], err[512];
    in_dir(wpath, sizeof wpath, "w.safetensors");
    in_dir(opath, sizeof opath, "opt.safetensors");
    nn_params *a = make_store(1, SGT_F32, V_NORMAL);
    nn_adamw *oa = nn_adamw_create(a, 0.9, 0.95, 1e-8, 0.1);
    for (int k = 0; k < 3; k++) {
        set_grads(a, k);
        nn_adamw_step(oa, 1e-2);
    }
    const char *state = "{\"rng\": 12345, \"data_pos\": [3, 17], \"note\": \"a \\\"quoted\\\" word\"}";
    if (nn_save_params(a, wpath, NULL, err, sizeof err)) fail_msg("%s", err);
    if (nn_save_train_state(oa, opath, state, err, sizeof err)) fail_msg("%s", err);

    nn_params *b = make_store(2, SGT_F32, V_NORMAL);
    nn_adamw *ob = nn_adamw_create(b, 0.9, 0.95, 1e-8, 0.1);
    char *got = NULL;
    if (nn_load_params(b, wpath, err, sizeof err)) fail_msg("%s", err);
    if (nn_load_train_state(ob, opath, &got, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(got, state);
    free(got);
    assert_int_equal(nn_adamw_get_step(ob), 3);
    for (int i = 0; i < a->n; i++) {
        size_t nb = (size_t)sgt_numel(oa->m[i]) * 4;
        assert_memory_equal(sgt_ptr(oa->m[i]), sgt_ptr(ob->m[i]), nb);
        assert_memory_equal(sgt_ptr(oa->v[i]), sgt_ptr(ob->v[i]), nb);
    }
    /* resumed training is bit-identical to uninterrupted training */
    for (int k = 3; k < 5; k++) {
        set_grads(a, k);
        set_grads(b, k);
        nn_adamw_step(oa, 1e-2);
        nn_adamw_step(ob, 1e-2);
    }
    assert_params_equal(a, b, true, "after resuming");

    /* the metadata carries the step and the state as strings */
    char *meta = NULL;
    if (nn_read_metadata(opath, &meta, err, sizeof err)) fail_msg("%s", err);
    assert_non_null(strstr(meta, "\"step\":\"3\""));
    assert_non_null(strstr(meta, "\"format\":\"sgt-adamw\""));
    free(meta);

    /* a weights file is not a training-state file, and a failed load changes neither moments nor step */
    size_t nm = (size_t)sgt_numel(ob->m[1]) * 4;
    unsigned char *m0 = malloc(nm);
    memcpy(m0, sgt_ptr(ob->m[1]), nm);
    EXPECT_FAIL(nn_load_train_state(ob, wpath, &got, err, sizeof err), err, "w.safetensors", "format");
    assert_null(got);
    assert_int_equal(nn_adamw_get_step(ob), 5);
    /* a state file for a different model: the error names the moment */
    nn_params *c = make_store(1, SGT_F32, V_EXTRA);
    nn_adamw *oc = nn_adamw_create(c, 0.9, 0.95, 1e-8, 0.1);
    if (nn_save_train_state(oc, opath, "{}", err, sizeof err)) fail_msg("%s", err);
    EXPECT_FAIL(nn_load_train_state(ob, opath, &got, err, sizeof err), err, "opt.safetensors", "adam.m.extra.weight");
    assert_memory_equal(m0, sgt_ptr(ob->m[1]), nm);
    assert_int_equal(nn_adamw_get_step(ob), 5);
    /* the state must be JSON */
    EXPECT_FAIL(nn_save_train_state(oa, opath, "{not json", err, sizeof err), err, "opt.safetensors", "state");
    free(m0);
    nn_adamw_destroy(oa);
    nn_adamw_destroy(ob);
    nn_adamw_destroy(oc);
    nn_params_destroy(a);
    nn_params_destroy(b);
    nn_params_destroy(c);
}

/* An independent reader: a few lines of Python (json + struct) parse the header and check the
 * offsets, the metadata and one value. Skipped without python3. */
static void t_python_reader(void **s) {
    (void)s;
    if (system("command -v python3 >/dev/null 2>&1") != 0) skip();
    char path[128], script[128], cmd[640], err[512];
    in_dir(path, sizeof path, "py.safetensors");
    in_dir(script, sizeof script, "check.py");
    nn_params *a = make_store(1, SGT_F64, V_NORMAL);
    if (nn_save_params(a, path, "{\"who\": \"sgt\"}", err, sizeof err)) fail_msg("%s", err);
    static const char *py =
        "import json, struct, sys, math\n"
        "path, first = sys.argv[1], float(sys.argv[2])\n"
        "b = open(path, 'rb').read()\n"
        "n = struct.unpack('<Q', b[:8])[0]\n"
        "h = json.loads(b[8:8 + n].decode('utf-8'))\n"
        "assert n % 8 == 0, n\n"
        "assert h.pop('__metadata__') == {'who': 'sgt'}\n"
        "size = {'F32': 4, 'F64': 8, 'I32': 4}\n"
        "end = 0\n"
        "for name, t in h.items():\n"
        "    lo, hi = t['data_offsets']\n"
        "    assert lo == end and hi - lo == size[t['dtype']] * math.prod(t['shape']), name\n"
        "    end = hi\n"
        "assert len(b) == 8 + n + end\n"
        "lo = h['embed.weight']['data_offsets'][0]\n"
        "assert struct.unpack('<d', b[8 + n + lo:8 + n + lo + 8])[0] == first\n"
        "assert list(h)[:2] == ['embed.weight', 'layers.0.attn.qkv.weight'], list(h)\n";
    write_all(script, py, strlen(py));
    snprintf(cmd, sizeof cmd, "python3 %s %s %.17g", script, path, ((double *)sgt_ptr(a->items[0].t))[0]);
    assert_int_equal(system(cmd), 0);
    nn_params_destroy(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_round_trip_bit_exact),
        cmocka_unit_test(t_metadata_round_trip),
        cmocka_unit_test(t_generic_save_non_contiguous),
        cmocka_unit_test(t_bad_files_refused),
        cmocka_unit_test(t_mismatches_refused),
        cmocka_unit_test(t_non_strict_and_renamed),
        cmocka_unit_test(t_bad_offsets_refused),
        cmocka_unit_test(t_out_of_order_offsets_load),
        cmocka_unit_test(t_failed_save_keeps_old_file),
        cmocka_unit_test(t_train_state_round_trip),
        cmocka_unit_test(t_python_reader),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
