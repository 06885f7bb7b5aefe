/* checkpoint.h: weights and training state in the safetensors format
 * (https://github.com/huggingface/safetensors), readable by the Python tools as they are.
 *
 * Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON padded with spaces to a
 * multiple of 8,
 *   {"name": {"dtype": "F32", "shape": [2304, 768], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "string value", ...}}
 * then the raw little-endian tensor bytes; offsets are relative to the start of that data section,
 * and we write tensors packed in order without gaps. dtypes: f32 "F32", f64 "F64", i32 "I32",
 * bf16 "BF16". Metadata values are strings (the format's rule), so structured values such as the
 * trainer's state are stored as JSON text inside a string.
 *
 * Writes are atomic: the file is written to "<path>.tmp.<pid>", flushed and fsync'd, then renamed
 * over <path>; on any failure the temp file is removed and an existing <path> is left untouched.
 * Loads validate the whole file (header, names, dtypes, shapes, offsets, size) and read all of its
 * data before the first byte of any destination tensor is written, so a failed load changes nothing.
 *
 * Every function returns 0 on success and -1 on failure with a message in err (errn bytes, may be
 * 0) that names the file and the tensor or field involved, e.g.
 *   "ckpt.safetensors: tensor 'layers.0.attn.qkv.weight' has shape [768,2304], the model expects [2304,768]".
 * Tensors may live on any device: data is staged through host memory (sgt_copy_to_host and
 * sgt_copy_from_host), so a checkpoint saved from the GPU loads on the CPU and the other way round. */
#ifndef SGT_NN_CHECKPOINT_H
#define SGT_NN_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>

#include "optim.h"
#include "params.h"

/* Writes n tensors (any strides; copied to contiguous bytes as needed) under the given names.
 * metadata_json: NULL or a JSON object whose values are all strings; it becomes "__metadata__". */
int nn_save_safetensors(const char *path, int n, const char *const *names, sgt_tensor *const *tensors,
                        const char *metadata_json, char *err, size_t errn);

/* Every parameter of the store under its hierarchical name, in store order. */
int nn_save_params(nn_params *p, const char *path, const char *metadata_json, char *err, size_t errn);
/* Loads every parameter of the store from path. The file must hold exactly the store's
 * parameters (no missing, no unknown names) with the same dtypes and shapes. */
int nn_load_params(nn_params *p, const char *path, char *err, size_t errn);

/* Non-strict loading with renaming, for fine-tuning (a model with a new head), loading a
 * submodule, or a checkpoint whose names carry another prefix. Each name of the file is first
 * rewritten by the prefix map: the first entry whose `from` begins the name replaces that prefix
 * with `to` ("transformer." -> "" strips it; "" -> "backbone." adds one); `to` NULL drops the
 * tensor (neither loaded nor reported). A dtype or shape mismatch of a tensor that both have is
 * always an error naming the tensor and both shapes. Tensors of the file the model lacks
 * ("unexpected") and parameters the file lacks ("missing") are errors when strict, and are
 * otherwise skipped and listed in the report; missing parameters keep their values. The file's
 * layout is checked whole, the loaded tensors all-or-nothing as in nn_load_params. */
typedef struct {
    const char *from, *to;
} nn_prefix_map;
typedef struct {
    bool strict;
    int n_prefix;
    const nn_prefix_map *prefix;
} nn_load_opts;
/* Names are malloc'd copies: missing ones are the model's, unexpected ones the file's (before
 * renaming). Free with nn_load_report_free; zeroed on failure. */
typedef struct {
    int n_loaded, n_missing, n_unexpected;
    char **missing, **unexpected;
} nn_load_report;
/* o NULL: strict, no renaming (nn_load_params is this). rep may be NULL. */
int nn_load_params_opts(nn_params *p, const char *path, const nn_load_opts *o, nn_load_report *rep, char *err,
                        size_t errn);
void nn_load_report_free(nn_load_report *r);

/* The "__metadata__" object of a safetensors file as a malloc'd JSON string ("{}" when the file
 * has none). The caller frees *json_out. */
int nn_read_metadata(const char *path, char **json_out, char *err, size_t errn);

/* The optimizer's state beside the weights: tensors "adam.m.<param>" and "adam.v.<param>" for
 * every parameter, and metadata {"format": "sgt-adamw", "version": "1", "step": "<step>",
 * "state": "<state_json>"}. state_json is the trainer's opaque JSON text (config, RNG, data
 * position; NULL stores "null"). */
int nn_save_train_state(const nn_adamw *o, const char *path, const char *state_json, char *err, size_t errn);
/* Restores the moments and the step count, and returns the trainer's state JSON as a malloc'd
 * string in *state_json_out (may be NULL if not wanted; the caller frees it). All-or-nothing like
 * nn_load_params. */
int nn_load_train_state(nn_adamw *o, const char *path, char **state_json_out, char *err, size_t errn);

#endif
