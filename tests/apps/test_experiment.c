/* test_experiment.c: the experiment end to end, through the real binaries (paths in SGT_TRAIN
 * and SGT_EVAL): train + eval on a nano config in seconds produce every output file with its
 * documented fields; an interrupted and resumed run gives the same loss curve as an uninterrupted
 * one; bad input (missing file, bad flag, empty data, corrupt checkpoint, NaN loss) gives a clear
 * one-line error and a non-zero exit, and never overwrites a good checkpoint. */
#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

static char tmpdir[256], data[1024], out[1 << 16];

/* runs a shell command, capturing stdout+stderr in out; returns the exit status */
static int run(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8400];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    char drain[4096]; /* read to the end: a child writing into a closed pipe would die of SIGPIPE */
    while (fread(drain, 1, sizeof drain, p) > 0) {
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char *bin(const char *env) {
    const char *b = getenv(env);
    if (!b) fail_msg("%s is not set (meson sets it)", env);
    return b;
}

#define TRAIN(dir, extra) \
    run("%s --dataset %s --config nano --max_tokens 2048 --batch_size 4 --seq_len 32 --log_every 1 --eval_every 4 " \
        "--eval_tokens 256 --warmup 2 --lr 3e-3 --threads 1 --progress false --output_dir %s %s", \
        bin("SGT_TRAIN"), data, dir, extra)

static cJSON *read_json(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("missing output file %s", path);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON *j = cJSON_Parse(buf);
    if (!j) fail_msg("%s is not valid JSON", path);
    return j;
}

/* the first 64 KiB of a file (a checkpoint's header and metadata): its length, the bytes in buf */
static char head[1 << 16];
static size_t read_head(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    size_t n = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    head[n] = 0;
    return n;
}

static void need(const cJSON *o, const char *field, const char *where) {
    if (!cJSON_GetObjectItemCaseSensitive(o, field)) fail_msg("%s: field '%s' missing", where, field);
}

static void need_file(const char *dir, const char *name) {
    char p[1024];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (stat(p, &st) || st.st_size == 0) fail_msg("missing or empty output %s", p);
}

static int setup(void **s) {
    (void)s;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/sgt-e2e-XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    const char *sh = getenv("SGT_SHARED");
    snprintf(data, sizeof data, "%s/data/tinyshakespeare.jsonl", sh ? sh : "../shared");
    return 0;
}

static int teardown(void **s) {
    (void)s;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    return system(cmd);
}

static void t_train_and_eval_outputs(void **s) {
    (void)s;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/run", tmpdir);
    if (TRAIN(dir, "")) fail_msg("train failed:\n%s", out);
    const char *files[] = {"dense/checkpoint.safetensors", "dense/train_state.safetensors", "dense/train_log.json",
                           "sparse/checkpoint.safetensors", "sparse/train_state.safetensors", "sparse/train_log.json",
                           "training_summary.json"};
    for (unsigned i = 0; i < sizeof files / sizeof *files; i++) need_file(dir, files[i]);
    char p[1024];
    const char *kinds[2] = {"dense", "sparse"};
    for (int k = 0; k < 2; k++) {
        snprintf(p, sizeof p, "%s/%s/train_log.json", dir, kinds[k]);
        cJSON *log = read_json(p);
        need(log, "params", p);
        const cJSON *e, *arr = cJSON_GetObjectItemCaseSensitive(log, "log");
        assert_int_equal(cJSON_GetArraySize(arr), 16); /* 2048 tokens / 128 per step, logged every step */
        int vals = 0;
        cJSON_ArrayForEach(e, arr) {
            const char *f[] = {"step", "tokens", "loss", "aux_loss", "lr", "grad_norm", "tokens_per_s", "elapsed"};
            for (unsigned i = 0; i < 8; i++) need(e, f[i], p);
            vals += cJSON_GetObjectItemCaseSensitive(e, "val_loss") != NULL;
            if (k == 1) need(e, "block_usage", p);
        }
        assert_int_equal(vals, 4);
        cJSON_Delete(log);
    }
    snprintf(p, sizeof p, "%s/training_summary.json", dir);
    cJSON *sum = read_json(p);
    need(sum, "sparse_to_dense_throughput", p);
    for (int k = 0; k < 2; k++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sum, "models"), kinds[k]);
        if (!m) fail_msg("%s: model %s missing", p, kinds[k]);
        const char *f[] = {"params", "tokens", "final_train_loss", "final_val_loss", "tokens_per_s", "wall_time_s"};
        for (unsigned i = 0; i < 6; i++) need(m, f[i], p);
    }
    cJSON_Delete(sum);

    if (run("%s --dataset %s --seq_len 32 --prompt_tokens 8 --decode_tokens 8 --eval_tokens 512 --threads 1 "
            "--output_dir %s --sample 'To be' --sample_tokens 4",
            bin("SGT_EVAL"), data, dir))
        fail_msg("eval failed:\n%s", out);
    assert_non_null(strstr(out, "perplexity"));
    assert_non_null(strstr(out, "[sparse] To be"));
    const char *more[] = {"eval_results.json", "report.html", "loss_curves.svg", "block_heatmap.svg"};
    for (unsigned i = 0; i < 4; i++) need_file(dir, more[i]);
    snprintf(p, sizeof p, "%s/eval_results.json", dir);
    cJSON *r = read_json(p);
    const char *top[] = {"perplexity", "training_throughput", "decode_latency", "block_utilisation", "learned_structure",
                         "structure_verdict"};
    for (unsigned i = 0; i < 6; i++) need(r, top[i], p);
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(r, "perplexity");
    need(pp, "relative_gap", p);
    need(pp, "verdict", p);
    need(pp, "predicted_tokens", p);
    need(pp, "documents", p);
    need(cJSON_GetObjectItemCaseSensitive(pp, "dense"), "ppl", p);
    /* the gap's 95% interval holds its point estimate; the verdict follows from the interval */
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(pp, "relative_gap_ci95");
    if (!ci || cJSON_GetArraySize(ci) != 2) fail_msg("%s: perplexity.relative_gap_ci95 [low, high] missing", p);
    const double lo = cJSON_GetArrayItem(ci, 0)->valuedouble, hi = cJSON_GetArrayItem(ci, 1)->valuedouble;
    const double gap = cJSON_GetObjectItemCaseSensitive(pp, "relative_gap")->valuedouble;
    if (!(lo <= gap && gap <= hi)) fail_msg("%s: gap %g outside its interval [%g, %g]", p, gap, lo, hi);
    const char *v = cJSON_GetObjectItemCaseSensitive(pp, "verdict")->valuestring;
    assert_string_equal(v, hi <= 0.02 ? "PASS" : lo > 0.02 ? "FAIL" : "INCONCLUSIVE");
    assert_non_null(strstr(out, "95% interval"));
    const cJSON *dl = cJSON_GetObjectItemCaseSensitive(r, "decode_latency");
    const char *paths[3] = {"dense", "sparse_mask", "sparse_skip"};
    for (int i = 0; i < 3; i++) {
        need(cJSON_GetObjectItemCaseSensitive(dl, paths[i]), "ms_per_token_p90", p);
        need(cJSON_GetObjectItemCaseSensitive(dl, paths[i]), "ratio_to_ideal", p);
    }
    need(dl, "sparse_skip_to_dense_ms", p);
    const cJSON *bu = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "block_utilisation"), 1);
    const char *uf[] = {"selection_frequency", "normalised_entropy", "cv", "max_violation", "dead_blocks"};
    for (unsigned i = 0; i < 5; i++) need(bu, uf[i], p);
    const cJSON *ls = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "learned_structure"), 0);
    const char *sf[] = {"router_confidence", "overlap_random_pairs", "overlap_same_token", "token_dependence"};
    for (unsigned i = 0; i < 4; i++) need(ls, sf[i], p);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(bu, "selection_frequency")), 4);
    cJSON_Delete(r);

    /* eval's default prompt (32 tokens) does not fit nano's context of 32: half the context is
     * the prompt then; the same length asked for explicitly is a one-line error naming the flag */
    if (run("%s --dataset %s --eval_tokens 512 --decode_tokens 4 --threads 1 --output_dir %s", bin("SGT_EVAL"), data, dir))
        fail_msg("eval with the default --prompt_tokens failed on nano:\n%s", out);
    r = read_json(p);
    const cJSON *dd = cJSON_GetObjectItemCaseSensitive(r, "decode_latency");
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(dd, "prompt_tokens")->valuedouble, 16);
    cJSON_Delete(r);
    assert_int_not_equal(run("%s --dataset %s --eval_tokens 512 --prompt_tokens 32 --threads 1 --output_dir %s",
                             bin("SGT_EVAL"), data, dir), 0);
    assert_non_null(strstr(out, "--prompt_tokens 32"));
}

/* the losses of every step of a run's log */
static int losses(const char *dir, const char *kind, double *v, int max) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/train_log.json", dir, kind);
    cJSON *log = read_json(p);
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(log, "log")) {
        if (n < max) v[n++] = cJSON_GetObjectItemCaseSensitive(e, "loss")->valuedouble;
    }
    cJSON_Delete(log);
    return n;
}

/* the 16 logged losses of model `kind` in run dirs a (uninterrupted) and b (resumed), bit for bit */
static void same_curve(const char *a, const char *b, const char *kind) {
    double la[64], lb[64];
    int na = losses(a, kind, la, 64), nb = losses(b, kind, lb, 64);
    assert_int_equal(na, 16);
    assert_int_equal(nb, 16);
    for (int i = 0; i < na; i++)
        if (la[i] != lb[i]) fail_msg("%s step %d: uninterrupted loss %.9g, resumed %.9g", kind, i + 1, la[i], lb[i]);
}

static void t_resume_equals_uninterrupted(void **s) {
    (void)s;
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/full", tmpdir);
    snprintf(b, sizeof b, "%s/resumed", tmpdir);
    if (TRAIN(a, "")) fail_msg("train failed:\n%s", out);
    if (TRAIN(b, "--stop_at_step 6")) fail_msg("interrupted train failed:\n%s", out);
    assert_non_null(strstr(out, "stopped at step 6"));
    if (TRAIN(b, "--resume")) fail_msg("resumed train failed:\n%s", out);
    assert_non_null(strstr(out, "resuming at step 6"));
    const char *kinds[2] = {"dense", "sparse"};
    for (int k = 0; k < 2; k++) same_curve(a, b, kinds[k]);
}

static void t_bad_input(void **s) {
    (void)s;
    char dir[512], p[1024];
    snprintf(dir, sizeof dir, "%s/bad", tmpdir);
    /* missing dataset */
    assert_int_not_equal(run("%s --dataset /nonexistent/data.jsonl --config nano --output_dir %s", bin("SGT_TRAIN"), dir), 0);
    assert_non_null(strstr(out, "/nonexistent/data.jsonl"));
    /* bad flag and bad value */
    assert_int_equal(run("%s --dataset %s --no_such_flag 1", bin("SGT_TRAIN"), data), 2);
    assert_non_null(strstr(out, "unknown flag '--no_such_flag'"));
    assert_int_equal(run("%s --dataset %s --lr fast", bin("SGT_TRAIN"), data), 2);
    assert_non_null(strstr(out, "--lr expects a number"));
    assert_int_equal(run("%s --dataset %s --config huge", bin("SGT_TRAIN"), data), 2);
    assert_non_null(strstr(out, "unknown preset 'huge'"));
    /* a file with no valid document */
    snprintf(p, sizeof p, "%s/empty.jsonl", tmpdir);
    FILE *f = fopen(p, "w");
    fputs("not json\n{\"other\": 1}\n", f);
    fclose(f);
    assert_int_not_equal(run("%s --dataset %s --config nano --output_dir %s", bin("SGT_TRAIN"), p, dir), 0);
    assert_non_null(strstr(out, "empty.jsonl"));
    /* eval without checkpoints */
    assert_int_not_equal(run("%s --dataset %s --output_dir %s/none", bin("SGT_EVAL"), data, tmpdir), 0);
    assert_non_null(strstr(out, "no checkpoint"));
}

static void t_corrupt_checkpoint_and_nan(void **s) {
    (void)s;
    char dir[512], ck[1024], cmd[4096];
    snprintf(dir, sizeof dir, "%s/guard", tmpdir);
    if (TRAIN(dir, "--model dense")) fail_msg("train failed:\n%s", out);
    snprintf(ck, sizeof ck, "%s/dense/checkpoint.safetensors", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s.good", ck, ck);
    assert_int_equal(system(cmd), 0);
    /* a NaN loss (an absurd learning rate) stops the run and keeps the good checkpoint */
    assert_int_not_equal(TRAIN(dir, "--model dense --resume --max_tokens 8192 --lr 1e5 --warmup 0"), 0);
    if (!strstr(out, "stopping without saving")) fail_msg("no NaN error in:\n%s", out);
    snprintf(cmd, sizeof cmd, "cmp -s %s %s.good", ck, ck);
    assert_int_equal(system(cmd), 0);
    /* a truncated checkpoint: eval names the file */
    snprintf(cmd, sizeof cmd, "truncate -s 5000 %s", ck);
    assert_int_equal(system(cmd), 0);
    assert_int_not_equal(run("%s --dataset %s --seq_len 32 --output_dir %s", bin("SGT_EVAL"), data, dir), 0);
    assert_non_null(strstr(out, "checkpoint.safetensors"));
}

/* the router variants and the FLOP-matched baseline through the apps: --model all trains three
 * models; the balanced router's bias is checkpointed, so an interrupted run resumes onto the
 * uninterrupted curve; a resume with another router is refused; eval scores dense_flop too */
static void t_router_variants_and_flop_baseline(void **s) {
    (void)s;
    char a[512], b[512], p[1024];
    snprintf(a, sizeof a, "%s/bal_full", tmpdir);
    snprintf(b, sizeof b, "%s/bal_resumed", tmpdir);
    const char *fl = "--model all --router balanced --aux_loss_weight 0 --balance_rate 0.02";
    char flags[256];
    if (TRAIN(a, fl)) fail_msg("train --model all failed:\n%s", out);
    snprintf(flags, sizeof flags, "%s --stop_at_step 6", fl);
    if (TRAIN(b, flags)) fail_msg("interrupted train failed:\n%s", out);
    snprintf(flags, sizeof flags, "%s --resume", fl);
    if (TRAIN(b, flags)) fail_msg("resumed train failed:\n%s", out);
    const char *kinds[3] = {"dense", "sparse", "dense_flop"};
    for (int k = 0; k < 3; k++) same_curve(a, b, kinds[k]);
    snprintf(p, sizeof p, "%s/sparse/checkpoint.safetensors", a);
    size_t n = read_head(p);
    if (!memmem(head, n, "balance_bias", 12)) fail_msg("%s has no balance_bias tensor", p);
    if (!memmem(head, n, "balanced", 8)) fail_msg("%s: its config does not name the balanced router", p);
    /* the dense_flop model: a dense FFN as wide as the SGT model's k selected blocks (nano: 2 x 16) */
    snprintf(p, sizeof p, "%s/dense_flop/train_log.json", a);
    cJSON *log = read_json(p);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(log, "config");
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(cfg, "d_ff")->valuedouble, 32);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cfg, "sparse")));
    cJSON_Delete(log);
    /* another router on resume: refused (here the tensors differ already: sigmoid has no bias) */
    assert_int_not_equal(TRAIN(b, "--model sparse --router sigmoid --resume"), 0);
    if (!strstr(out, "--resume:") || !strstr(out, "balance_bias")) fail_msg("no clear refusal in:\n%s", out);
    /* the same tensors, another router (the config tells them apart) */
    char c2[512];
    snprintf(c2, sizeof c2, "%s/ste", tmpdir);
    if (TRAIN(c2, "--model sparse --stop_at_step 2")) fail_msg("train failed:\n%s", out);
    assert_int_not_equal(TRAIN(c2, "--model sparse --router sigmoid --resume"), 0);
    assert_non_null(strstr(out, "another model config"));
    /* a bad router name */
    assert_int_equal(run("%s --dataset %s --router softmax", bin("SGT_TRAIN"), data), 2);
    assert_non_null(strstr(out, "--router"));
    /* eval: the baseline's perplexity with its interval and the SGT model's gap to it */
    if (run("%s --dataset %s --seq_len 32 --prompt_tokens 8 --decode_tokens 8 --eval_tokens 2048 --threads 1 --output_dir %s",
            bin("SGT_EVAL"), data, a))
        fail_msg("eval failed:\n%s", out);
    assert_non_null(strstr(out, "FLOP-matched dense (d_ff 32)"));
    snprintf(p, sizeof p, "%s/eval_results.json", a);
    cJSON *r = read_json(p);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "perplexity"), "dense_flop");
    if (!d) fail_msg("eval_results.json has no perplexity.dense_flop");
    assert_true(cJSON_GetObjectItemCaseSensitive(d, "ppl")->valuedouble > 1);
    const cJSON *gci = cJSON_GetObjectItemCaseSensitive(d, "sparse_relative_gap_ci95");
    assert_true(cJSON_IsArray(gci) && cJSON_GetArraySize(gci) == 2);
    const double g = cJSON_GetObjectItemCaseSensitive(d, "sparse_relative_gap")->valuedouble;
    assert_true(cJSON_GetArrayItem(gci, 0)->valuedouble <= g && g <= cJSON_GetArrayItem(gci, 1)->valuedouble);
    cJSON_Delete(r);
}

/* Another architecture through the model interface (models/model.h): train --config gpt2-nano
 * trains the classic GPT-2 alone into <dir>/gpt2 with the same logs, checkpoints and resume (its
 * dropout masks included: the resumed curve is the uninterrupted one), its config and arch in the
 * checkpoint metadata; eval rebuilds it from the checkpoint and scores it beside the dense model
 * on the same windows, with its interval and its paired gap; hf_gpt2 --checkpoint exports it to
 * Hugging Face's layout and reads it back to the same logits; the SGT-only flags are refused. */
#define TRAIN_GPT2(dir, extra) \
    run("%s --dataset %s --config gpt2-nano --max_tokens 2048 --batch_size 4 --seq_len 32 --log_every 1 " \
        "--eval_every 4 --eval_tokens 256 --warmup 2 --lr 3e-3 --threads 1 --progress false --output_dir %s %s", \
        bin("SGT_TRAIN"), data, dir, extra)

static void t_other_architecture(void **s) {
    (void)s;
    char a[512], b[512], p[1024];
    snprintf(a, sizeof a, "%s/gpt2_full", tmpdir);
    snprintf(b, sizeof b, "%s/gpt2_resumed", tmpdir);
    if (TRAIN_GPT2(a, "")) fail_msg("train --config gpt2-nano failed:\n%s", out);
    assert_non_null(strstr(out, "gpt2: gpt2-nano"));
    const char *files[] = {"gpt2/checkpoint.safetensors", "gpt2/train_state.safetensors", "gpt2/train_log.json",
                           "training_summary.json"};
    for (unsigned i = 0; i < 4; i++) need_file(a, files[i]);
    snprintf(p, sizeof p, "%s/dense", a);
    struct stat st;
    assert_int_not_equal(stat(p, &st), 0); /* the GPT-2 alone */
    double l[64];
    assert_int_equal(losses(a, "gpt2", l, 64), 16);
    if (!(l[15] < l[0] - 0.5)) fail_msg("gpt2 loss did not fall: %.4f -> %.4f", l[0], l[15]);
    /* the checkpoint rebuilds its model: arch and config in the metadata */
    snprintf(p, sizeof p, "%s/gpt2/checkpoint.safetensors", a);
    if (!memmem(head, read_head(p), "\"arch\":\"gpt2\"", 13)) fail_msg("%s: no \"arch\":\"gpt2\" in the metadata", p);
    /* interrupted and resumed: the same curve, dropout included */
    if (TRAIN_GPT2(b, "--stop_at_step 6")) fail_msg("interrupted train failed:\n%s", out);
    if (TRAIN_GPT2(b, "--resume")) fail_msg("resumed train failed:\n%s", out);
    assert_non_null(strstr(out, "gpt2: resuming at step 6"));
    same_curve(a, b, "gpt2");
    /* a resume with another architecture's config is refused */
    assert_int_not_equal(run("%s --dataset %s --config gpt2-tiny --max_tokens 4096 --batch_size 4 --seq_len 32 --threads 1 "
                             "--progress false --output_dir %s --resume", bin("SGT_TRAIN"), data, b), 0);
    assert_non_null(strstr(out, "--resume:"));
    /* the SGT experiment's flags are refused for it, with the reason */
    assert_int_equal(TRAIN_GPT2(b, "--model sparse"), 2);
    assert_non_null(strstr(out, "--model"));
    assert_int_equal(TRAIN_GPT2(b, "--top_k_blocks 2"), 2);
    assert_non_null(strstr(out, "--top_k_blocks"));
    assert_int_not_equal(TRAIN_GPT2(b, "--ffn_path skip"), 0);
    assert_non_null(strstr(out, "block-skipping"));
    assert_int_not_equal(TRAIN_GPT2(b, "--precision bf16"), 0);
    assert_non_null(strstr(out, "bf16"));
    /* an unknown preset names every architecture's presets */
    assert_int_equal(run("%s --dataset %s --config gpt3", bin("SGT_TRAIN"), data), 2);
    if (!strstr(out, "gpt2-tiny") || !strstr(out, "sgt-150m")) fail_msg("the presets are not listed:\n%s", out);
    /* eval: beside the dense model, on the same windows */
    if (TRAIN(a, "--model dense")) fail_msg("train --model dense failed:\n%s", out);
    if (run("%s --dataset %s --seq_len 32 --prompt_tokens 8 --decode_tokens 8 --eval_tokens 2048 --threads 1 --output_dir %s "
            "--sample 'To be' --sample_tokens 4", bin("SGT_EVAL"), data, a))
        fail_msg("eval failed:\n%s", out);
    assert_non_null(strstr(out, "gpt2 (gpt2-nano"));
    assert_non_null(strstr(out, "[gpt2] To be"));
    snprintf(p, sizeof p, "%s/eval_results.json", a);
    cJSON *r = read_json(p);
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(r, "perplexity");
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(pp, "gpt2"), *d = cJSON_GetObjectItemCaseSensitive(pp, "dense");
    if (!g || !d) fail_msg("eval_results.json: perplexity.gpt2 or perplexity.dense missing");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(g, "arch")->valuestring, "gpt2");
    assert_int_equal((int)cJSON_GetObjectItemCaseSensitive(g, "predicted_tokens")->valuedouble,
                     (int)cJSON_GetObjectItemCaseSensitive(d, "predicted_tokens")->valuedouble);
    const double ppl = cJSON_GetObjectItemCaseSensitive(g, "ppl")->valuedouble;
    const cJSON *ci = cJSON_GetObjectItemCaseSensitive(g, "ppl_ci95");
    assert_true(cJSON_IsArray(ci) && cJSON_GetArraySize(ci) == 2);
    assert_true(cJSON_GetArrayItem(ci, 0)->valuedouble <= ppl && ppl <= cJSON_GetArrayItem(ci, 1)->valuedouble);
    const double gap = cJSON_GetObjectItemCaseSensitive(g, "relative_gap_to_dense")->valuedouble;
    const double dp = cJSON_GetObjectItemCaseSensitive(d, "ppl")->valuedouble;
    assert_true(fabs(gap - (ppl / dp - 1)) < 1e-9);
    const cJSON *gci = cJSON_GetObjectItemCaseSensitive(g, "relative_gap_to_dense_ci95");
    assert_true(cJSON_IsArray(gci) && cJSON_GetArraySize(gci) == 2);
    assert_true(cJSON_GetArrayItem(gci, 0)->valuedouble <= gap && gap <= cJSON_GetArrayItem(gci, 1)->valuedouble);
    need(cJSON_GetObjectItemCaseSensitive(r, "training_throughput"), "gpt2", p);
    cJSON_Delete(r);
    /* the trained GPT-2 in Hugging Face's layout (hf_gpt2 --checkpoint), read back: the same logits */
    if (run("%s --checkpoint %s/gpt2/checkpoint.safetensors --ids 1,2,3 --logits_out %s/l1.json --export %s/hf && "
            "%s --hf_dir %s/hf --ids 1,2,3 --logits_out %s/l2.json && cmp %s/l1.json %s/l2.json",
            bin("SGT_HF_GPT2"), a, a, a, bin("SGT_HF_GPT2"), a, a, a, a))
        fail_msg("the export of the trained GPT-2 did not read back to the same logits:\n%s", out);
    assert_int_not_equal(run("%s --checkpoint %s/dense/checkpoint.safetensors --export %s/hf2", bin("SGT_HF_GPT2"), a, a), 0);
    assert_non_null(strstr(out, "not a GPT-2"));
    /* eval of the GPT-2 alone */
    if (run("%s --dataset %s --seq_len 32 --eval_tokens 512 --threads 1 --output_dir %s", bin("SGT_EVAL"), data, b))
        fail_msg("eval of the GPT-2 alone failed:\n%s", out);
    assert_non_null(strstr(out, "gpt2 (gpt2-nano"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_train_and_eval_outputs),
        cmocka_unit_test(t_resume_equals_uninterrupted),
        cmocka_unit_test(t_bad_input),
        cmocka_unit_test(t_corrupt_checkpoint_and_nan),
        cmocka_unit_test(t_router_variants_and_flop_baseline),
        cmocka_unit_test(t_other_architecture),
    };
    return cmocka_run_group_tests_name("experiment", tests, setup, teardown);
}
