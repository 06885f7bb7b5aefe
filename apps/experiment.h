/* experiment.h: what apps/train and apps/eval share: the data pipeline (tokenizer, token cache,
 * split), model configs in JSON, the exact validation loss, the device choice, output paths and
 * atomic JSON files.
 *
 * Validation loss / perplexity, exactly: the validation token stream is cut into windows
 * starting at 0, T, 2T, ...; window w feeds tokens [wT, wT+T) and predicts [wT+1, wT+T]; the last
 * incomplete window is dropped. NLL is the mean over every predicted token; PPL = exp(NLL). */
#ifndef SGT_APPS_EXPERIMENT_H
#define SGT_APPS_EXPERIMENT_H

#include <stdio.h>
#include <cjson/cJSON.h>

#include "../models/model.h"
#include "data/dataset.h"
#include "data/token_cache.h"
#include "data/tokenizer.h"

typedef struct {
    sgt_tokenizer *tok;
    sgt_token_cache cache;
    sgt_data_split split;
    char cache_path[4096];
} exp_data;

/* Loads the tokenizer (tok_dir may be NULL: SGT_TOKENIZER, SGT_SHARED, ../shared), tokenises the
 * dataset once into <output_dir>/cache/<name>.tokens, and splits it. */
int exp_data_open(exp_data *d, const char *dataset, const char *text_field, const char *tok_dir,
                  const char *output_dir, double val_fraction, uint64_t min_val_tokens, bool progress, char *err,
                  size_t errn);
void exp_data_close(exp_data *d);

/* The model config for a preset plus the seed's overrides (<= 0 keeps the preset's value). */
int exp_model_config(gpt_config *cfg, const char *preset, bool sparse, int64_t num_blocks, int64_t block_size,
                     int64_t top_k, int64_t seq_len, char *err, size_t errn);

/* "auto" -> the CPU when no CUDA device is usable (says so on stderr); "cuda" without one is an
 * error. */
/* Set on the ranks other than 0 of a data-parallel run: the helpers here print no notes. */
extern bool exp_quiet;
int exp_resolve_device(const char *flag, sgt_device *dev, char *err, size_t errn);
/* --precision auto|f32|bf16 -> the compute dtype of a model of architecture arch: auto is bf16
 * mixed precision on a GPU where the architecture has it, f32 otherwise and on the CPU (where
 * bf16 is only emulated); bf16 is bf16 (an architecture without it refuses to build). */
sgt_dtype exp_compute_dtype(const char *precision, sgt_device dev, const sgt_model_arch *arch);

/* Mean NLL over the validation windows (at most max_tokens predicted tokens when > 0), batch B,
 * in eval mode (dropout off; the model's mode is restored after).
 * window_nll (NULL, or room for n / T doubles) receives each scored window's mean NLL, in order;
 * *n_windows (optional) their count. */
double exp_val_nll(sgt_ctx *c, sgt_model *m, const uint16_t *tokens, uint64_t n, int64_t B, int64_t T,
                   int64_t max_tokens, int64_t *n_predicted, double *window_nll, int64_t *n_windows);

/* A file written atomically: the stream writes <path>.tmp.<pid>, which exp_file_commit checks
 * (every write, flush and fsync), closes and renames over path; a reader or a crash sees the old
 * file or the whole new one. On failure the temporary is removed and err names path and errno. */
typedef struct {
    FILE *f;
    char path[4096], tmp[4200];
} exp_file;
int exp_file_open(exp_file *o, const char *path, char *err, size_t errn);
int exp_file_commit(exp_file *o, char *err, size_t errn);
/* Writes a JSON document to path atomically (as above). */
int exp_write_json(const char *path, const cJSON *doc, char *err, size_t errn);
/* Reads and parses a JSON file; NULL with err set on failure. */
cJSON *exp_read_json(const char *path, char *err, size_t errn);
/* mkdir -p */
int exp_mkdirs(const char *path, char *err, size_t errn);
double exp_now(void);

#endif
