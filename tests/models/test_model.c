/* test_model.c: the model interface (models/model.h). Both built-in architectures through it:
 * presets, the config round trip (a model rebuilt from its own config is the same architecture,
 * another is not), losses equal to the architectures' own forwards, token NLLs that average to
 * the loss, the runtime refusals; and an architecture defined here, outside the library (a bigram
 * model), registered, found by its preset, trained a few steps through the interface, and
 * gradient-checked in float64 through it. */
#include <math.h>

#include "../../autograd/gradcheck.h"
#include "../../models/model.h"
#include "../../nn/optim.h"
#include "../common/test_util.h"

static int64_t fixed_batch(int32_t *ids, int32_t *tg, int64_t n, int64_t V) {
    for (int64_t i = 0; i < n; i++) ids[i] = (int32_t)((i * 37 + 11) % V), tg[i] = (int32_t)((i * 53 + 5) % V);
    return n;
}

static void t_builtin_archs(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    char err[512];
    const char *presets[] = {"nano", "gpt2-nano"}, *archs[] = {"sgt-gpt", "gpt2"};
    for (int k = 0; k < 2; k++) {
        cJSON *cfg = sgt_model_preset(presets[k], err, sizeof err);
        assert_non_null(cfg);
        assert_string_equal(cJSON_GetObjectItemCaseSensitive(cfg, "arch")->valuestring, archs[k]);
        assert_ptr_equal(sgt_model_arch_of(cfg, err, sizeof err), sgt_model_arch_named(archs[k]));
        nn_params *p = nn_params_create(5, SGT_F32, SGT_CPU);
        sgt_model *m = sgt_model_build(cfg, NULL, p, err, sizeof err);
        if (!m) fail_msg("%s: %s", presets[k], err);
        assert_ptr_equal(m->arch, sgt_model_arch_named(archs[k]));
        /* the SGT GPT's count leaves out its padded vocabulary rows (gpt.h) */
        assert_int_equal(sgt_model_param_count(m), k ? nn_params_count(p) : gpt_param_count(sgt_model_gpt(m)));
        assert_true(sgt_model_same(m, m->config));
        assert_true(sgt_model_same(m, cfg));
        /* a changed field is another architecture */
        cJSON *other = cJSON_Duplicate(cfg, 1);
        cJSON_ReplaceItemInObjectCaseSensitive(other, "n_layers", cJSON_CreateNumber(3));
        assert_false(sgt_model_same(m, other));
        cJSON_Delete(other);
        /* the loss through the interface is the architecture's own, and the token NLLs average to it */
        int32_t ids[16], tg[16];
        fixed_batch(ids, tg, 16, m->vocab);
        sgt_tensor *x = sgt_from_i32(&e->ctx, SGT_SHAPE(2, 8), ids), *y = sgt_from_i32(&e->ctx, SGT_SHAPE(2, 8), tg);
        sgt_model_fwd o = {.targets = y, .token_nll = true};
        sgt_model_out out = sgt_model_forward(&e->ctx, m, x, &o);
        double own;
        if (k == 0) {
            assert_non_null(sgt_model_gpt(m));
            assert_null(sgt_model_gpt2(m));
            gpt_forward_opts go = {.targets = y};
            own = sgt_item(gpt_forward(&e->ctx, sgt_model_gpt(m), x, &go).loss);
        } else {
            assert_non_null(sgt_model_gpt2(m));
            assert_null(sgt_model_gpt(m));
            sgt_tensor *loss;
            gpt2_forward(&e->ctx, sgt_model_gpt2(m), x, y, &loss, NULL);
            own = sgt_item(loss);
        }
        assert_true(fabs(sgt_item(out.loss) - own) < 1e-6);
        assert_int_equal(out.logits->shape[2], m->vocab);
        float nll[16];
        sgt_copy_to_host(out.token_nll, nll);
        double mean = 0;
        for (int i = 0; i < 16; i++) mean += nll[i] / 16.0;
        assert_true(fabs(mean - sgt_item(out.ce)) < 1e-5);
        /* a rebuild from the model's own config has the same parameters */
        nn_params *p2 = nn_params_create(5, SGT_F32, SGT_CPU);
        sgt_model *m2 = sgt_model_build(m->config, NULL, p2, err, sizeof err);
        assert_non_null(m2);
        assert_int_equal(nn_params_count(p2), nn_params_count(p));
        assert_true(sgt_model_same(m2, cfg));
        sgt_model_free(m2);
        nn_params_destroy(p2);
        sgt_model_free(m);
        nn_params_destroy(p);
        cJSON_Delete(cfg);
        sgt_arena_reset(e->arena);
    }
    /* the train/eval mode: GPT-2 has dropout, the SGT GPT none */
    cJSON *cfg = sgt_model_preset("gpt2-nano", err, sizeof err);
    nn_params *p = nn_params_create(5, SGT_F32, SGT_CPU);
    sgt_model *m = sgt_model_build(cfg, NULL, p, err, sizeof err);
    assert_non_null(m->mode);
    assert_false(m->mode->train);
    sgt_model_set_train(m, true);
    assert_true(sgt_model_gpt2(m)->mode.train);
    /* refusals, with the reason */
    nn_params *q = nn_params_create(5, SGT_F32, SGT_CPU);
    sgt_model_runtime bf = {.compute = SGT_BF16}, skip = {.ffn_skip = true};
    assert_null(sgt_model_build(cfg, &bf, q, err, sizeof err));
    assert_non_null(strstr(err, "bf16"));
    assert_null(sgt_model_build(cfg, &skip, q, err, sizeof err));
    assert_non_null(strstr(err, "block-skipping"));
    assert_int_equal(q->n, 0); /* nothing built */
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "arch", cJSON_CreateString("gpt5"));
    assert_null(sgt_model_build(cfg, NULL, q, err, sizeof err));
    assert_non_null(strstr(err, "gpt5"));
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "arch", cJSON_CreateString("gpt2"));
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "n_heads", cJSON_CreateNumber(5));
    assert_null(sgt_model_build(cfg, NULL, q, err, sizeof err));
    assert_non_null(strstr(err, "n_heads"));
    /* sizes from untrusted metadata: whole numbers in range, or refused by name (no UB conversion) */
    const double bad[] = {2.5, -1, 1e300};
    for (int i = 0; i < 3; i++) {
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "n_heads", cJSON_CreateNumber(2));
        cJSON_ReplaceItemInObjectCaseSensitive(cfg, "vocab", cJSON_CreateNumber(bad[i]));
        assert_null(sgt_model_build(cfg, NULL, q, err, sizeof err));
        if (!strstr(err, "vocab") || !strstr(err, "whole number")) fail_msg("vocab %g: %s", bad[i], err);
    }
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "vocab", cJSON_CreateNumber(101));
    cJSON_ReplaceItemInObjectCaseSensitive(cfg, "dropout", cJSON_CreateNumber(1.5));
    assert_null(sgt_model_build(cfg, NULL, q, err, sizeof err));
    assert_non_null(strstr(err, "dropout"));
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "d_model");
    assert_null(sgt_model_build(cfg, NULL, q, err, sizeof err));
    assert_non_null(strstr(err, "d_model"));
    assert_null(sgt_model_preset("gpt3", err, sizeof err));
    assert_non_null(strstr(err, "gpt2-tiny"));
    assert_non_null(strstr(err, "sgt-150m"));
    /* a config without "arch" (checkpoints from before the interface) is the SGT GPT's */
    gpt_config gc;
    gpt_preset("nano", &gc);
    cJSON *old = gpt_config_to_json(&gc);
    cJSON_DeleteItemFromObjectCaseSensitive(old, "arch");
    assert_ptr_equal(sgt_model_arch_of(old, err, sizeof err), sgt_model_arch_named("sgt-gpt"));
    cJSON_Delete(old);
    nn_params_destroy(q);
    sgt_model_free(m);
    nn_params_destroy(p);
    cJSON_Delete(cfg);
    tu_env_free(e);
}

/* ---- an architecture from outside the library: logits = emb[idx] @ out + bias ---- */

typedef struct {
    nn_embedding emb;
    nn_linear out;
    int64_t V, C;
} bigram;

static cJSON *bigram_preset(const char *name) {
    if (strcmp(name, "bigram-test")) return NULL;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "arch", "bigram");
    cJSON_AddStringToObject(j, "preset", name);
    cJSON_AddNumberToObject(j, "vocab", 11);
    cJSON_AddNumberToObject(j, "ctx_len", 8);
    cJSON_AddNumberToObject(j, "d_model", 6);
    return j;
}

static int bigram_build(sgt_model *m, const cJSON *cfg, const sgt_model_runtime *rt, char *err, size_t errn) {
    (void)rt;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, "vocab"), *c = cJSON_GetObjectItemCaseSensitive(cfg, "d_model");
    if (!cJSON_IsNumber(v) || !cJSON_IsNumber(c) || v->valuedouble < 2 || c->valuedouble < 1) {
        snprintf(err, errn, "bigram: vocab >= 2 and d_model >= 1 needed");
        return -1;
    }
    bigram *b = calloc(1, sizeof *b);
    b->V = (int64_t)v->valuedouble;
    b->C = (int64_t)c->valuedouble;
    nn_embedding_init(&b->emb, m->params, "emb", b->V, b->C, 0.5);
    nn_linear_init(&b->out, m->params, "out", b->C, b->V, true, 0.5);
    m->impl = b;
    m->config = cJSON_Duplicate(cfg, 1);
    m->vocab = b->V;
    m->ctx_len = (int64_t)cJSON_GetObjectItemCaseSensitive(cfg, "ctx_len")->valuedouble;
    return 0;
}

static sgt_model_out bigram_forward(sgt_ctx *c, void *impl, sgt_tensor *idx, const sgt_model_fwd *o) {
    bigram *b = impl;
    sgt_model_out out = {.logits = nn_linear_forward(c, &b->out, nn_embedding_forward(c, &b->emb, idx))};
    if (o->targets)
        out.loss = out.ce = nn_cross_entropy_nll(c, out.logits, o->targets, 0, o->token_nll ? &out.token_nll : NULL);
    return out;
}

static int64_t bigram_params(const void *impl) {
    const bigram *b = impl;
    return b->V * b->C + b->C * b->V + b->V;
}

static void bigram_free(void *impl) { free(impl); }

static const sgt_model_arch bigram_arch = {
    .name = "bigram", .presets = "bigram-test", .preset = bigram_preset, .build = bigram_build,
    .forward = bigram_forward, .param_count = bigram_params, .free = bigram_free,
};

typedef struct {
    sgt_model *m;
    sgt_tensor *idx, *tgt;
} gc_user;

static sgt_tensor *f_model(sgt_ctx *c, sgt_tensor **x, int n, void *u) {
    (void)x, (void)n;
    gc_user *g = u;
    sgt_model_fwd o = {.targets = g->tgt};
    return sgt_model_forward(c, g->m, g->idx, &o).loss;
}

static void t_outside_arch(void **s) {
    (void)s;
    tu_env *e = tu_env_new();
    char err[512];
    assert_int_equal(sgt_model_register(&bigram_arch), 0);
    assert_int_equal(sgt_model_register(&bigram_arch), -1); /* the name is taken */
    bool listed = false;
    for (int i = 0; sgt_model_arch_at(i); i++) listed |= sgt_model_arch_at(i) == &bigram_arch;
    assert_true(listed);
    cJSON *cfg = sgt_model_preset("bigram-test", err, sizeof err);
    if (!cfg) fail_msg("%s", err);
    /* float64 gradients through the interface */
    nn_params *p = nn_params_create(9, SGT_F64, SGT_CPU);
    sgt_model *m = sgt_model_build(cfg, NULL, p, err, sizeof err);
    if (!m) fail_msg("%s", err);
    assert_int_equal(sgt_model_param_count(m), nn_params_count(p));
    assert_true(sgt_model_same(m, cfg));
    int32_t ids[8], tg[8];
    fixed_batch(ids, tg, 8, m->vocab);
    gc_user u = {m, sgt_from_i32(&e->ctx, SGT_SHAPE(2, 4), ids), sgt_from_i32(&e->ctx, SGT_SHAPE(2, 4), tg)};
    sgt_tensor *in[8];
    for (int i = 0; i < p->n; i++) in[i] = p->items[i].t;
    ag_gradcheck_opts go = {.max_elems = 24, .rtol = 1e-5, .atol = 1e-9};
    ag_gradcheck_result r = ag_gradcheck(&e->ctx, f_model, &u, in, p->n, NULL, &go);
    print_message("    bigram through the interface: %s\n", r.report);
    if (!r.pass) fail_msg("gradcheck failed: %s", r.report);
    sgt_model_free(m);
    nn_params_destroy(p);
    /* a few AdamW steps through the interface: the loss falls */
    p = nn_params_create(9, SGT_F32, SGT_CPU);
    m = sgt_model_build(cfg, NULL, p, err, sizeof err);
    ag_tape tape;
    ag_tape_init(&tape, &e->ctx);
    nn_adamw *opt = nn_adamw_create(p, 0.9, 0.95, 1e-8, 0.0);
    double first = 0, last = 0;
    for (int step = 0; step < 60; step++) {
        sgt_model_fwd o = {.targets = sgt_from_i32(&e->ctx, SGT_SHAPE(2, 4), tg)};
        sgt_model_out out = sgt_model_forward(&e->ctx, m, sgt_from_i32(&e->ctx, SGT_SHAPE(2, 4), ids), &o);
        last = sgt_item(out.loss);
        if (step == 0) first = last;
        ag_backward(&tape, out.loss);
        ag_step_end(&tape);
        nn_adamw_step(opt, 3e-2);
        nn_params_zero_grad(p);
        sgt_arena_reset(e->arena);
    }
    print_message("    bigram: loss %.4f -> %.4f\n", first, last);
    assert_true(last < 0.5 * first);
    ag_tape_detach(&tape);
    nn_adamw_destroy(opt);
    sgt_model_free(m);
    nn_params_destroy(p);
    cJSON_Delete(cfg);
    tu_env_free(e);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_builtin_archs),
        cmocka_unit_test(t_outside_arch),
    };
    return cmocka_run_group_tests_name("model", tests, NULL, NULL);
}
