/* device.h: where a tensor's bytes live, and the per-device memory primitives.
 * The CPU backend is always built; CUDA entries are filled in when the CUDA backend is built
 * (SGT_HAVE_CUDA); without it, asking for a CUDA device is a clear error. */
#ifndef SGT_DEVICE_H
#define SGT_DEVICE_H

#include <stddef.h>

typedef enum { SGT_CPU = 0, SGT_CUDA = 1, SGT_NDEVICE } sgt_device;

const char *sgt_device_name(sgt_device d);

/* Raw allocation on a device (used by arenas only; ops never allocate). */
void *sgt_device_alloc(sgt_device d, size_t nbytes);
void sgt_device_free(sgt_device d, void *p);
/* Whether a device can be used in this build and on this machine. */
int sgt_device_available(sgt_device d);
/* Copies n bytes between two devices (either may be the CPU). Returns once dst holds the bytes
 * and src may be reused: copies wait for the device's queued kernels, so they see their results. */
void sgt_device_copy(void *dst, sgt_device dst_dev, const void *src, sgt_device src_dev, size_t n);
/* Waits for everything queued on the device (nothing to wait for on the CPU). */
void sgt_device_synchronize(sgt_device d);
/* The device's memory bandwidth in bytes/s, read + write: the best of a few 256 MiB copies on the
 * device. The floor against which memory-bound work (batch-1 decoding) is judged. */
double sgt_device_bandwidth(sgt_device d);

#endif
