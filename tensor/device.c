/* device.c: device names, availability and raw allocation for each device. */
#include "device.h"

#include <stdlib.h>

#include "error.h"

const char *sgt_device_name(sgt_device d) {
    switch (d) {
    case SGT_CPU: return "cpu";
    case SGT_CUDA: return "cuda";
    default: return "?";
    }
}

int sgt_device_available(sgt_device d) { return d == SGT_CPU; }

void *sgt_device_alloc(sgt_device d, size_t nbytes) {
    SGT_CHECK(d == SGT_CPU, "device %s is not available in this build", sgt_device_name(d));
    size_t n = (nbytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    SGT_CHECK(p, "out of host memory: %zu bytes requested", nbytes);
    return p;
}

void sgt_device_free(sgt_device d, void *p) {
    (void)d;
    free(p);
}
