/* dtype.h: element types. f32 is the working type, f64 serves gradient checks, i32 holds indices.
 * bf16 is the storage type of mixed precision (bf16.h): ops accept it on every backend, with f32 math
 * (tensor.h: native kernels, or promotion to f32 at the dispatch point). */
#ifndef SGT_DTYPE_H
#define SGT_DTYPE_H

#include <stddef.h>

typedef enum { SGT_F32 = 0, SGT_F64, SGT_I32, SGT_BF16, SGT_NDTYPE } sgt_dtype;

static inline size_t sgt_dtype_size(sgt_dtype t) {
    static const size_t sz[SGT_NDTYPE] = {4, 8, 4, 2};
    return sz[t];
}
static inline const char *sgt_dtype_name(sgt_dtype t) {
    static const char *nm[SGT_NDTYPE] = {"f32", "f64", "i32", "bf16"};
    return (unsigned)t < SGT_NDTYPE ? nm[t] : "?";
}
static inline int sgt_dtype_is_float(sgt_dtype t) { return t == SGT_F32 || t == SGT_F64 || t == SGT_BF16; }

#endif
