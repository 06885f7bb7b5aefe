/* tensor.h: the tensor, the op context, and views.
 *
 * A tensor is a strided view of bytes owned by an arena: dtype, device, shape, element strides and
 * an element offset from `data`. Views (reshape, permute, narrow, expand) share the bytes.
 * tensor/ knows nothing of gradients: `ext` is an opaque slot that the layer above (autograd) owns.
 *
 * Every op goes through one dispatch point, sgt_dispatch(), which picks the kernel for the
 * output's device from the op table (op_list.h) and then calls the context's observer, through
 * which autograd records its tape. */
#ifndef SGT_TENSOR_H
#define SGT_TENSOR_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "device.h"
#include "dtype.h"
#include "error.h"

#define SGT_MAX_DIMS 6
#define SGT_MAX_SRC 10
#define SGT_MAX_DST 6

typedef struct sgt_tensor {
    sgt_dtype dtype;
    sgt_device device;
    int ndim;
    int64_t shape[SGT_MAX_DIMS];
    int64_t stride[SGT_MAX_DIMS]; /* in elements; 0 on broadcast dims */
    int64_t offset;               /* in elements, from data */
    void *data;                   /* base of the storage (arena-owned) */
    void *ext;                    /* owned by the layer above (autograd); tensor/ never reads it */
    const char *name;             /* optional, e.g. a parameter's hierarchical name */
} sgt_tensor;

typedef enum {
#define SGT_OP(e, n, v, f) SGT_OP_##e,
#include "op_list.h"
#undef SGT_OP
    SGT_NOPS
} sgt_op;

typedef struct sgt_opcall {
    sgt_op op;
    int nsrc, ndst;
    sgt_tensor *src[SGT_MAX_SRC];
    sgt_tensor *dst[SGT_MAX_DST];
    int64_t ip[SGT_MAX_DIMS + 2];
    double fp[8];
    /* SGT_OP_CUSTOM only (custom.h): the op's definition, the caller's data for its kernels, and
     * an opaque word of the layer above (autograd's backward); NULL otherwise */
    const struct sgt_custom_op *custom;
    void *custom_user;
    const void *custom_ext;
} sgt_opcall;

typedef void (*sgt_kernel)(const sgt_opcall *call);
typedef void (*sgt_op_observer)(void *user, const sgt_opcall *call);

typedef struct {
    const char *name;
    bool is_view;
} sgt_op_info;

extern const sgt_op_info sgt_ops[SGT_NOPS];
/* Kernel tables, one per backend, indexed by sgt_op. NULL for views. */
extern const sgt_kernel sgt_cpu_kernels[SGT_NOPS];
extern const sgt_kernel *sgt_cuda_kernels; /* NULL when the CUDA backend is not built */
/* Per backend and op: does the kernel take bf16 operands itself? For an op where it does not, the
 * dispatch point promotes: bf16 operands are cast to f32 temporaries, the f32 kernel runs, and
 * the f32 results are rounded back into the bf16 outputs. So every op accepts bf16 on every
 * backend, with f32 math; the native kernels are the fast path of mixed precision. */
extern const bool sgt_cpu_bf16_native[SGT_NOPS];
extern const bool *sgt_cuda_bf16_native;

/* The op context: where outputs are allocated, and who observes ops. */
typedef struct sgt_ctx {
    sgt_arena *arena;          /* per-step (or persistent while building parameters) */
    sgt_device device;         /* device of tensors created from nothing (zeros, rng) */
    sgt_op_observer observer;  /* called after every dispatched op (autograd's tape) */
    void *observer_user;
} sgt_ctx;

/* ---- creation (bytes from ctx->arena, contiguous; the struct from its host side, see arena.h) ---- */
sgt_tensor *sgt_empty(sgt_ctx *c, sgt_dtype t, int ndim, const int64_t *shape);
sgt_tensor *sgt_empty_like(sgt_ctx *c, const sgt_tensor *x);
sgt_tensor *sgt_zeros(sgt_ctx *c, sgt_dtype t, int ndim, const int64_t *shape);
sgt_tensor *sgt_full(sgt_ctx *c, sgt_dtype t, int ndim, const int64_t *shape, double v);
sgt_tensor *sgt_scalar(sgt_ctx *c, sgt_dtype t, double v);
/* A new tensor struct over the same bytes (no op recorded, ext cleared). */
sgt_tensor *sgt_alias(sgt_ctx *c, const sgt_tensor *x);
/* Copies host values in/out (f64 in and out for convenience; converts to the dtype). These work on
 * tensors of any device: device tensors are staged through host memory (and wait for the device). */
sgt_tensor *sgt_from_f64(sgt_ctx *c, sgt_dtype t, int ndim, const int64_t *shape, const double *v);
sgt_tensor *sgt_from_i32(sgt_ctx *c, int ndim, const int64_t *shape, const int32_t *v);
void sgt_to_f64(const sgt_tensor *x, double *out);   /* logical (row-major) order */
double sgt_item(const sgt_tensor *x);                 /* value of a 1-element tensor */
double sgt_get(const sgt_tensor *x, const int64_t *idx);
void sgt_set(sgt_tensor *x, const int64_t *idx, double v);
/* Raw element copies in x's own dtype, in logical (row-major) order, for any view on any device:
 * dst/src hold numel(x) elements. Writing into a view leaves the bytes between its elements alone. */
void sgt_copy_to_host(const sgt_tensor *x, void *dst);
void sgt_copy_from_host(sgt_tensor *x, const void *src);
/* A contiguous copy of x on device d, in c's arena (which must live on d). Not an op: nothing is
 * recorded, so no gradient flows through it (for moving data and checkpoints, not for graphs). */
sgt_tensor *sgt_to_device(sgt_ctx *c, sgt_tensor *x, sgt_device d);

/* ---- shape queries ---- */
int64_t sgt_numel(const sgt_tensor *x);
bool sgt_is_contiguous(const sgt_tensor *x);
bool sgt_same_shape(const sgt_tensor *a, const sgt_tensor *b);
/* Writes "[2,3,4] f32" into buf; returns buf (for error messages). */
const char *sgt_shape_str(const sgt_tensor *x, char *buf, int n);
static inline void *sgt_ptr(const sgt_tensor *x) {
    return (char *)x->data + x->offset * (int64_t)sgt_dtype_size(x->dtype);
}
/* Normalises a possibly negative dim; fails naming the op if out of range. */
int sgt_dim(const sgt_tensor *x, int dim, const char *op);

/* ---- views (no copy; recorded as ops) ---- */
sgt_tensor *sgt_reshape(sgt_ctx *c, sgt_tensor *x, int ndim, const int64_t *shape); /* one -1 allowed; copies if not viewable */
sgt_tensor *sgt_permute(sgt_ctx *c, sgt_tensor *x, const int *perm);
sgt_tensor *sgt_transpose(sgt_ctx *c, sgt_tensor *x, int d0, int d1);
sgt_tensor *sgt_narrow(sgt_ctx *c, sgt_tensor *x, int dim, int64_t start, int64_t len);
sgt_tensor *sgt_expand(sgt_ctx *c, sgt_tensor *x, int ndim, const int64_t *shape);
sgt_tensor *sgt_contiguous(sgt_ctx *c, sgt_tensor *x); /* x itself when already contiguous */
/* split along dim into pieces of the given sizes (views); out must hold n tensors */
void sgt_split(sgt_ctx *c, sgt_tensor *x, int dim, int n, const int64_t *sizes, sgt_tensor **out);

/* CPU threads for kernels and BLAS (0 keeps the OpenMP default). */
void sgt_set_threads(int n);
int sgt_get_threads(void);
/* NULL, or a one-line note when the BLAS runs slower kernels than the CPU supports: OpenBLAS
 * (0.3.21, Debian 12) does not know newer x86 cores (Sapphire Rapids...) and falls back to its
 * generic Prescott kernels; OPENBLAS_CORETYPE=SKYLAKEX, read when the library loads, selects the
 * AVX-512 ones (~3x faster GEMMs here). The library does not set it itself: the process's
 * environment is the user's. */
const char *sgt_cpu_blas_note(void);

/* ---- the dispatch point ---- */
void sgt_dispatch(sgt_ctx *c, sgt_opcall *call);
/* The call's op name for messages: the op table's, or a custom op's own name. */
const char *sgt_opcall_name(const sgt_opcall *call);

/* Convenience for fixed shapes: SGT_SHAPE(2, 3) -> 2, (int64_t[]){2, 3} */
#define SGT_SHAPE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}

#endif
