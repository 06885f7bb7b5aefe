/* bf16.h: bfloat16 <-> f32 conversion, shared by the CPU kernels and the CUDA kernels (host and
 * device), so that both backends round identically. bf16 is stored as its 16 bits (uint16_t): the
 * top half of an f32. To bf16 rounds to nearest, ties to even (as __float2bfloat16_rn); a NaN
 * stays a (quiet) NaN; other dtypes convert through f32. */
#ifndef SGT_BF16_H
#define SGT_BF16_H

#include <stdint.h>

#ifdef __CUDACC__
#define SGT_BF16_HD __host__ __device__
#else
#define SGT_BF16_HD
#endif

SGT_BF16_HD static inline float sgt_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v;
    v.u = (uint32_t)h << 16;
    return v.f;
}

SGT_BF16_HD static inline uint16_t sgt_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v;
    v.f = f;
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x0040u); /* NaN: keep it quiet */
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

#endif
