/* vmath.h: f32 exp and tanh written with + - * / and bit operations only, so that loops over
 * them vectorise (glibc's expf and tanhf are scalar calls: softmax, cross-entropy, silu and gelu
 * were bound by them). Accuracy against glibc, checked by tests/tensor/test_ops.c:
 *   sgt_expf:  <= 2 ulp on [-87.3, 88.7]; 0 below (no subnormals), +inf above, NaN kept
 *   sgt_tanhf: <= 2e-7 relative (series near 0, via sgt_expf elsewhere), +-1 for large |x|, NaN kept
 * These are explicit approximations, not fast-math: the compiler still follows IEEE rules. */
#ifndef SGT_VMATH_H
#define SGT_VMATH_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static inline float sgt_expf(float x) {
    const float hi = 88.7228317f, lo = -87.3365479f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    xc = x != x ? 0.0f : xc; /* NaN: compute on 0 (no undefined int conversion), return x below */
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (round to nearest under the default mode) */
    float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    /* r = x - n ln2 in two parts (Cody-Waite) */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    /* y * 2^n as two factors, so n = 128 (x near the top) and n = -126 stay representable */
    int32_t ni = (int32_t)n, h = ni >> 1;
    int32_t e1 = (h + 127) << 23, e2 = (ni - h + 127) << 23;
    float s1, s2;
    memcpy(&s1, &e1, sizeof s1);
    memcpy(&s2, &e2, sizeof s2);
    y = y * s1 * s2;
    y = x < lo ? 0.0f : y;
    y = x > hi ? __builtin_inff() : y;
    return x != x ? x : y;
}

static inline float sgt_tanhf(float x) {
    /* |x| < 0.55: odd Taylor series to x^15 (next term < 4e-8 relative);
     * else sign(x) (1 - 2 / (exp(2|x|) + 1)), exact to a few ulp of 1 and +-1 for large |x| */
    const float ax = x < 0 ? -x : x, x2 = x * x;
    float p = -929569.0f / 638512875.0f;
    p = p * x2 + 21844.0f / 6081075.0f;
    p = p * x2 + -1382.0f / 155925.0f;
    p = p * x2 + 62.0f / 2835.0f;
    p = p * x2 + -17.0f / 315.0f;
    p = p * x2 + 2.0f / 15.0f;
    p = p * x2 + -1.0f / 3.0f;
    const float small = x + x * x2 * p;
    const float big = 1.0f - 2.0f / (sgt_expf(2.0f * ax) + 1.0f);
    const float y = ax < 0.55f ? small : (x < 0 ? -big : big);
    return x != x ? x : y;
}

/* max and sum of a row with 8 explicit lanes, so the loops vectorise without reassociation flags;
 * an all -inf (fully masked) row gets max 0 so exp stays finite; NaN propagates */
#define ROW_REDUCE(T)                                                                            \
    static inline T row_max_##T(const T *x, int64_t n) {                                         \
        T m[8] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY, -INFINITY}; \
        bool has_nan = false;                                                                        \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= n; i += 8)                                                               \
            for (int j = 0; j < 8; j++) {                                                        \
                m[j] = x[i + j] > m[j] ? x[i + j] : m[j];                                        \
                has_nan |= x[i + j] != x[i + j];                                                     \
            }                                                                                    \
        for (; i < n; i++) {                                                                     \
            m[0] = x[i] > m[0] ? x[i] : m[0];                                                    \
            has_nan |= x[i] != x[i];                                                                 \
        }                                                                                        \
        T r = m[0];                                                                              \
        for (int j = 1; j < 8; j++) r = m[j] > r ? m[j] : r;                                     \
        if (has_nan) return (T)NAN;                                                                  \
        return isinf(r) && r < 0 ? (T)0 : r;                                                     \
    }                                                                                            \
    static inline double row_sum_##T(const T *x, int64_t n) {                                    \
        double s[8] = {0};                                                                       \
        int64_t i = 0;                                                                           \
        for (; i + 8 <= n; i += 8)                                                               \
            for (int j = 0; j < 8; j++) s[j] += x[i + j];                                        \
        for (; i < n; i++) s[0] += x[i];                                                         \
        return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));                 \
    }

ROW_REDUCE(float)
ROW_REDUCE(double)

#endif
