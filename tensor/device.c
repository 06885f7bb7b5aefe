/* device.c: device names, availability, raw allocation and copies for each device. The CUDA
 * entries forward to the CUDA backend (cuda/backend.h) when it is built (SGT_HAVE_CUDA). */
#include "device.h"

#include <time.h>

#include <stdlib.h>
#include <string.h>

#include "error.h"
#ifdef SGT_HAVE_CUDA
#include "cuda/backend.h"
#endif

const char *sgt_device_name(sgt_device d) {
    switch (d) {
    case SGT_CPU: return "cpu";
    case SGT_CUDA: return "cuda";
    default: return "?";
    }
}

int sgt_device_available(sgt_device d) {
    if (d == SGT_CPU) return 1;
#ifdef SGT_HAVE_CUDA
    if (d == SGT_CUDA) return sgt_cuda_device_count() > 0;
#endif
    return 0;
}

static void check_known(sgt_device d) {
    SGT_CHECK(d == SGT_CPU || d == SGT_CUDA, "unknown device %d", (int)d);
#ifndef SGT_HAVE_CUDA
    SGT_CHECK(d != SGT_CUDA, "device cuda is not available: this build has no CUDA backend (nvcc was not found "
                             "when it was configured, or -Dcuda=disabled)");
#endif
}

void *sgt_device_alloc(sgt_device d, size_t nbytes) {
    check_known(d);
#ifdef SGT_HAVE_CUDA
    if (d == SGT_CUDA) return sgt_cuda_malloc(nbytes);
#endif
    size_t n = (nbytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    SGT_CHECK(p, "out of host memory: %zu bytes requested", nbytes);
    return p;
}

void sgt_device_free(sgt_device d, void *p) {
#ifdef SGT_HAVE_CUDA
    if (d == SGT_CUDA) {
        sgt_cuda_free(p);
        return;
    }
#endif
    (void)d;
    free(p);
}

void sgt_device_copy(void *dst, sgt_device dst_dev, const void *src, sgt_device src_dev, size_t n) {
    check_known(dst_dev);
    check_known(src_dev);
    if (!n) return;
    if (dst_dev == SGT_CPU && src_dev == SGT_CPU) {
        memmove(dst, src, n);
        return;
    }
#ifdef SGT_HAVE_CUDA
    sgt_cuda_copy_kind k = src_dev == SGT_CPU ? SGT_CUDA_H2D : dst_dev == SGT_CPU ? SGT_CUDA_D2H : SGT_CUDA_D2D;
    sgt_cuda_memcpy(dst, src, n, k);
#endif
}

void sgt_device_synchronize(sgt_device d) {
    check_known(d);
#ifdef SGT_HAVE_CUDA
    if (d == SGT_CUDA) sgt_cuda_synchronize();
#endif
}

double sgt_device_bandwidth(sgt_device d) {
    const size_t n = (size_t)256 << 20;
    char *a = sgt_device_alloc(d, n), *b = sgt_device_alloc(d, n);
    if (d == SGT_CPU) { /* untouched host pages all map the zero page: reading them is not reading memory */
        memset(a, 1, n);
        memset(b, 2, n);
    }
    double best = 1e30;
    for (int r = 0; r < 6; r++) { /* the first copy also touches the pages */
        struct timespec t0, t1;
        sgt_device_synchronize(d);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        sgt_device_copy(b, d, a, d, n);
        sgt_device_synchronize(d);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double t = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (r > 0 && t < best) best = t;
    }
    sgt_device_free(d, a);
    sgt_device_free(d, b);
    return 2.0 * (double)n / best;
}
