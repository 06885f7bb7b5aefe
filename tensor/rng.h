/* rng.h: the counter-based RNG (Philox4x32-10) and its transforms, as inline functions that the
 * CPU kernels and the CUDA kernels share, so the streams agree bit for bit.
 *
 * Element i of a fill with (seed, stream) draws Philox block (counter = {i, stream}, key = seed).
 * Uniform: the top 24 (f32) or 53 (f64) bits of the block's words. Normal: Box-Muller on two
 * 32-bit uniforms, with log and cos computed by our own polynomials from + - * / only, in double,
 * so that no libm (glibc vs CUDA) difference can change a bit. Build with contraction off
 * (-ffp-contract=off here, --fmad=false for the .cu files). */
#ifndef SGT_RNG_H
#define SGT_RNG_H

#include <stdint.h>

#ifdef __CUDACC__
#define SGT_HD __host__ __device__
#else
#define SGT_HD
#endif

typedef struct { uint32_t v[4]; } sgt_philox_out;

SGT_HD static inline uint32_t sgt_mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

SGT_HD static inline sgt_philox_out sgt_philox(uint64_t counter, uint64_t stream, uint64_t seed) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = (uint32_t)stream,
             c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = sgt_mulhilo(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = sgt_mulhilo(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    sgt_philox_out o = {{c0, c1, c2, c3}};
    return o;
}

/* (0, 1]: never 0, so log() is finite */
SGT_HD static inline double sgt_u32_to_open01(uint32_t x) { return ((double)x + 1.0) * (1.0 / 4294967296.0); }

/* log(x) for x in (0, 1]: x = m * 2^e with m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s),
 * s = (m-1)/(m+1), |s| < 0.172: the odd series to s^27 in Horner form (next term < 1e-22).
 * Coefficients are constant expressions, folded identically by gcc and nvcc. */
SGT_HD static inline double sgt_rng_log(double x) {
    int e = 0;
    while (x < 0.70710678118654752440) { x *= 2.0; e--; }
    const double s = (x - 1.0) / (x + 1.0), s2 = s * s;
    double p = 1.0 / 27.0;
    p = p * s2 + 1.0 / 25.0;
    p = p * s2 + 1.0 / 23.0;
    p = p * s2 + 1.0 / 21.0;
    p = p * s2 + 1.0 / 19.0;
    p = p * s2 + 1.0 / 17.0;
    p = p * s2 + 1.0 / 15.0;
    p = p * s2 + 1.0 / 13.0;
    p = p * s2 + 1.0 / 11.0;
    p = p * s2 + 1.0 / 9.0;
    p = p * s2 + 1.0 / 7.0;
    p = p * s2 + 1.0 / 5.0;
    p = p * s2 + 1.0 / 3.0;
    p = p * s2 + 1.0;
    return 2.0 * s * p + (double)e * 0.69314718055994530942;
}

/* cos(2 pi u) for u in [0, 1): reduce to [0, 1/8] of a turn (|a| <= pi/4), then the Taylor
 * series of cos or sin in Horner form (next term < 1e-20). */
SGT_HD static inline double sgt_rng_cos2pi(double u) {
    double sign = 1.0;
    if (u >= 0.5) u = 1.0 - u;          /* cos symmetric about half a turn */
    if (u > 0.25) { u = 0.5 - u; sign = -1.0; }
    int use_sin = 0;
    if (u > 0.125) { u = 0.25 - u; use_sin = 1; }
    const double a = u * 6.28318530717958647692, a2 = a * a;
    double r;
    if (use_sin) {
        double p = -1.0 / 1307674368000.0;   /* -1/15! */
        p = p * a2 + 1.0 / 6227020800.0;     /* 1/13! */
        p = p * a2 - 1.0 / 39916800.0;       /* 1/11! */
        p = p * a2 + 1.0 / 362880.0;
        p = p * a2 - 1.0 / 5040.0;
        p = p * a2 + 1.0 / 120.0;
        p = p * a2 - 1.0 / 6.0;
        r = a + a * a2 * p;
    } else {
        double p = 1.0 / 20922789888000.0;   /* 1/16! */
        p = p * a2 - 1.0 / 87178291200.0;    /* 1/14! */
        p = p * a2 + 1.0 / 479001600.0;      /* 1/12! */
        p = p * a2 - 1.0 / 3628800.0;
        p = p * a2 + 1.0 / 40320.0;
        p = p * a2 - 1.0 / 720.0;
        p = p * a2 + 1.0 / 24.0;
        p = p * a2 - 0.5;
        r = 1.0 + a2 * p;
    }
    return sign * r;
}

/* Standard normal for element i. IEEE sqrt is correctly rounded on both sides, so it may come
 * from the compiler; log and cos may not, hence the polynomials above. */
SGT_HD static inline double sgt_rng_normal_at(uint64_t i, uint64_t stream, uint64_t seed) {
    sgt_philox_out o = sgt_philox(i, stream, seed);
    double u1 = sgt_u32_to_open01(o.v[0]), u2 = (double)o.v[1] * (1.0 / 4294967296.0);
    double r2 = -2.0 * sgt_rng_log(u1);
#ifdef __CUDA_ARCH__ /* the device pass of nvcc; its host pass takes the builtin */
    double r = __dsqrt_rn(r2);
#else
    double r = __builtin_sqrt(r2);
#endif
    return r * sgt_rng_cos2pi(u2);
}

SGT_HD static inline double sgt_rng_uniform_at(uint64_t i, uint64_t stream, uint64_t seed) {
    sgt_philox_out o = sgt_philox(i, stream, seed);
    /* 53 random bits: [0, 1) */
    uint64_t bits = ((uint64_t)o.v[0] << 21) ^ (uint64_t)(o.v[1] >> 11);
    return (double)(bits & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

SGT_HD static inline float sgt_rng_uniform_f32_at(uint64_t i, uint64_t stream, uint64_t seed) {
    sgt_philox_out o = sgt_philox(i, stream, seed);
    return (float)(o.v[0] >> 8) * (1.0f / 16777216.0f); /* 24 bits: [0, 1) exactly in f32 */
}

/* Dropout's decision for element i: kept when the 24-bit uniform draw of sgt_rng_uniform_f32_at
 * is >= p, compared in integers, its 24 bits >= thr = ceil(p 2^24) (sgt_dropout_threshold), so the
 * CPU and the GPU keep the same elements whatever the dtype. */
SGT_HD static inline uint32_t sgt_dropout_threshold(double p) {
    const double t = p * 16777216.0;
    const uint32_t f = (uint32_t)t;
    return (double)f < t ? f + 1 : f;
}

SGT_HD static inline int sgt_rng_keep_at(uint64_t i, uint64_t stream, uint64_t seed, uint32_t thr) {
    return (sgt_philox(i, stream, seed).v[0] >> 8) >= thr;
}

#endif
