/* typed.cuh: element loads and stores for kernels templated on the storage type, so that one
 * kernel body serves f32, f64 and bf16: bf16 (stored as its 16 bits, ../bf16.h) loads into f32
 * math and rounds once on store; f32 and f64 load and store as they are. sgt_math<T>::type is
 * the math type of storage type T. */
#ifndef SGT_CUDA_TYPED_CUH
#define SGT_CUDA_TYPED_CUH

#include <stdint.h>

#include "../bf16.h"

template <typename T> struct sgt_math { typedef T type; };
template <> struct sgt_math<uint16_t> { typedef float type; };

__device__ __forceinline__ float sgt_ld(float v) { return v; }
__device__ __forceinline__ double sgt_ld(double v) { return v; }
__device__ __forceinline__ float sgt_ld(uint16_t v) { return sgt_bf16_to_f32(v); }

__device__ __forceinline__ void sgt_st(float *p, float v) { *p = v; }
__device__ __forceinline__ void sgt_st(float *p, double v) { *p = (float)v; }
__device__ __forceinline__ void sgt_st(double *p, double v) { *p = v; }
__device__ __forceinline__ void sgt_st(uint16_t *p, float v) { *p = sgt_f32_to_bf16(v); }
__device__ __forceinline__ void sgt_st(uint16_t *p, double v) { *p = sgt_f32_to_bf16((float)v); }

#endif
