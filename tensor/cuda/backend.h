/* backend.h: the CUDA backend's C interface, for device.c and the tests. Plain C with no CUDA
 * headers, so any C file can include it; it exists only in builds with the backend (SGT_HAVE_CUDA).
 * Everything here runs on device 0 and the backend's one stream (see cuda.h). */
#ifndef SGT_CUDA_BACKEND_H
#define SGT_CUDA_BACKEND_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "../tensor.h"

typedef enum { SGT_CUDA_H2D, SGT_CUDA_D2H, SGT_CUDA_D2D } sgt_cuda_copy_kind;

/* Usable CUDA devices: 0 (and no error) without a driver or a device. */
int sgt_cuda_device_count(void);
/* Device memory (cudaMalloc), for arenas. Out of memory fails naming the bytes requested and the
 * bytes free; without a device it fails saying so. The first call initialises the backend. */
void *sgt_cuda_malloc(size_t nbytes);
void sgt_cuda_free(void *p);
/* n bytes on the backend's stream; returns when the copy is complete (see device.h). */
void sgt_cuda_memcpy(void *dst, const void *src, size_t n, sgt_cuda_copy_kind kind);
void sgt_cuda_synchronize(void);
/* The backend's stream (a cudaStream_t), for custom ops' kernels (custom.h). */
void *sgt_cuda_stream_handle(void);

/* The backend's row of the op table, indexed by sgt_op (NULL for views). Filled by
 * sgt_cuda_register_kernels, which needs no device; initialising the backend calls it and points
 * sgt_cuda_kernels (tensor.h) at the table. */
extern sgt_kernel sgt_cuda_kernel_table[SGT_NOPS];
extern bool sgt_cuda_bf16_table[SGT_NOPS]; /* which of them take bf16 themselves (tensor.h) */
void sgt_cuda_register_kernels(void);

/* CUDA graphs (tensor/graph.h, cuda/graph.cu): capture of the backend's stream and replay. */
void sgt_cuda_graph_begin(void);
void *sgt_cuda_graph_end(void);
void sgt_cuda_graph_launch(void *g);
void sgt_cuda_graph_destroy(void *g);
bool sgt_cuda_graph_recording(void);

#ifdef __cplusplus
}
#endif

#endif
