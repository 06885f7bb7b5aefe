/* test_device.h: the two-device harness of the GPU parity tests: a CPU context C (the oracle)
 * and a context G on the device under test DEV, each over its own arena; have_gpu, with
 * NEED_GPU() to skip a test without one; SGT_CUDA_TEST_ON_CPU=1 (without a CUDA device) letting
 * the CPU stand in for the GPU (self_check, DEV = SGT_CPU), a check of the test's own logic; WHAT()
 * for failure messages; TD_GROUP, the cmocka group setup/teardown that makes the two and
 * prints the seed and whether a device is there; and td_make, td_rand: CPU inputs (on C) from
 * host values, in any float dtype. */
#ifndef SGT_TEST_DEVICE_H
#define SGT_TEST_DEVICE_H

#include "test_util.h"

/* the setup line's words for a run without a device (a file may #define its own first) */
#ifndef TD_ABSENT
#define TD_ABSENT "absent: parity tests skip"
#endif

static sgt_arena *cpu_arena __attribute__((unused)), *dev_arena __attribute__((unused));
static sgt_ctx cpu_ctx __attribute__((unused)), dev_ctx __attribute__((unused));
static sgt_ctx *C __attribute__((unused)), *G __attribute__((unused)); /* G: NULL without a device */
static bool have_gpu __attribute__((unused));   /* a device to test (or the CPU playing one) */
static bool self_check __attribute__((unused)); /* SGT_CUDA_TEST_ON_CPU: the CPU plays the GPU */
static sgt_device DEV __attribute__((unused)) = SGT_CUDA; /* the device under test */

/* WHAT("fmt", ...): a formatted message for one check (valid until the next WHAT) */
static char what_buf[512] __attribute__((unused));
#define WHAT(...) (snprintf(what_buf, sizeof what_buf, __VA_ARGS__), what_buf)

#define NEED_GPU()             \
    do {                       \
        if (!have_gpu) skip(); \
    } while (0)

/* Makes C over a CPU arena (cpu_name, cpu_bytes) and, with a device, G over a DEV arena
 * (dev_name, dev_bytes); `test` names the file in the setup line. */
__attribute__((unused)) static void td_setup(const char *test, const char *cpu_name, size_t cpu_bytes,
                                             const char *dev_name, size_t dev_bytes) {
    have_gpu = sgt_device_available(SGT_CUDA);
    const char *self = getenv("SGT_CUDA_TEST_ON_CPU");
    if (!have_gpu && self && *self && strcmp(self, "0")) {
        have_gpu = self_check = true;
        DEV = SGT_CPU;
    }
    cpu_arena = sgt_arena_create(cpu_name, SGT_CPU, cpu_bytes, 0);
    cpu_ctx = (sgt_ctx){.arena = cpu_arena, .device = SGT_CPU};
    C = &cpu_ctx;
    if (have_gpu) {
        dev_arena = sgt_arena_create(dev_name, DEV, dev_bytes, 0);
        dev_ctx = (sgt_ctx){.arena = dev_arena, .device = DEV};
        G = &dev_ctx;
    }
    fprintf(stderr, "%s: seed %u, CUDA device %s\n", test, TEST_SEED,
            self_check ? "absent: SGT_CUDA_TEST_ON_CPU, the CPU plays the GPU"
            : have_gpu ? "present" : TD_ABSENT);
}

__attribute__((unused)) static void td_teardown(void) {
    sgt_arena_destroy(cpu_arena);
    if (dev_arena) sgt_arena_destroy(dev_arena);
}

/* Marks of both arenas, to release a case's tensors on both devices at once. */
typedef struct {
    sgt_arena_mark c, g;
} marks;

__attribute__((unused)) static marks mark_both(void) {
    marks m = {sgt_arena_get_mark(cpu_arena), {0}};
    if (dev_arena) m.g = sgt_arena_get_mark(dev_arena);
    return m;
}

__attribute__((unused)) static void rewind_both(marks m) {
    sgt_arena_rewind(cpu_arena, m.c);
    if (dev_arena) sgt_arena_rewind(dev_arena, m.g);
}

/* a CPU tensor (on C) of dtype dt holding v (rounded to dt; bf16 by the CPU's cast from f32) */
__attribute__((unused)) static sgt_tensor *td_make(sgt_dtype dt, int nd, const int64_t *shape, const double *v) {
    if (dt != SGT_BF16) return sgt_from_f64(C, dt, nd, shape, v);
    return sgt_cast(C, sgt_from_f64(C, SGT_F32, nd, shape, v), SGT_BF16);
}

/* a CPU tensor (on C) of dtype dt: lo + (hi - lo) tu_urand(i, stream) at element i, rounded to dt */
__attribute__((unused)) static sgt_tensor *td_rand(sgt_dtype dt, int nd, const int64_t *shape, uint64_t stream,
                                                   double lo, double hi) {
    const int64_t n = tu_prod(nd, shape);
    double *v = tu_dbuf(n);
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * tu_urand((uint64_t)i, stream);
    sgt_tensor *x = td_make(dt, nd, shape, v);
    free(v);
    return x;
}

/* TD_GROUP("test_x", "x-cpu", cpu_bytes, "x-dev", dev_bytes): group_setup and group_teardown
 * to pass to cmocka_run_group_tests. */
#define TD_GROUP(test, cpu_name, cpu_bytes, dev_name, dev_bytes)                      \
    static int group_setup(void **state) {                                            \
        (void)state;                                                                  \
        td_setup(test, cpu_name, (size_t)(cpu_bytes), dev_name, (size_t)(dev_bytes)); \
        return 0;                                                                     \
    }                                                                                 \
    static int group_teardown(void **state) {                                         \
        (void)state;                                                                  \
        td_teardown();                                                                \
        return 0;                                                                     \
    }

#endif
