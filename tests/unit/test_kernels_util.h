/* Shared helpers for the kernels unit tests (tests/unit/test_kernels_*.c):
 * a seeded generator, float/double buffers, comparisons that print the index
 * and both values, and a double-precision central-difference gradient.
 *
 * Gradient checks work the same way in every file: a naive reference forward
 * in double defines a scalar loss L(x) = sum(r * f(x)) with fixed random r;
 * the kernel's backward gets dout = r, and its gradients must match
 * (L(x + h e_j) - L(x - h e_j)) / 2h computed in double on the reference.
 * The reference forward is itself checked against the float kernel forward,
 * so together they tie the kernel's backward to its own forward. */
#ifndef RINGTRAIN_TEST_KERNELS_UTIL_H
#define RINGTRAIN_TEST_KERNELS_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Central-difference step (double): truncation error O(h^2) ~ 1e-10 and
 * rounding ~ 1e-16 * |L| / h, both far below the float tolerances used. */
#define TK_FD_STEP 1e-5

typedef struct {
    uint64_t s;
} tk_rng_t;

static inline uint64_t tk_next(tk_rng_t *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static inline double tk_uniform(tk_rng_t *r, double lo, double hi)
{
    return lo + (hi - lo) * (double)(tk_next(r) >> 11) * 0x1.0p-53;
}

static inline float *tk_falloc(size_t count)
{
    float *p = malloc((count ? count : 1) * sizeof(float));
    assert_non_null(p);
    return p;
}

static inline double *tk_dalloc(size_t count)
{
    double *p = calloc(count ? count : 1, sizeof(double));
    assert_non_null(p);
    return p;
}

/* Random values exactly representable in float, in both precisions. */
static inline void tk_fill(tk_rng_t *r, float *f, double *d, size_t count,
                           double lo, double hi)
{
    for (size_t i = 0; i < count; i++) {
        float v = (float)tk_uniform(r, lo, hi);
        if (f)
            f[i] = v;
        if (d)
            d[i] = v;
    }
}

/* Values that stay at least `gap` from zero (ReLU's kink). */
static inline void tk_fill_away_from_zero(tk_rng_t *r, float *f, double *d,
                                          size_t count, double gap)
{
    for (size_t i = 0; i < count; i++) {
        double v = tk_uniform(r, gap, 1.0);
        if (tk_next(r) & 1)
            v = -v;
        f[i] = (float)v;
        d[i] = (float)v;
    }
}

static inline void tk_fill_nan(float *f, size_t count)
{
    for (size_t i = 0; i < count; i++)
        f[i] = NAN;
}

/* |got - want| <= atol + rtol * |want| for every element; on failure prints
 * which array, the first bad index and both values. */
static inline void tk_check_close_(const char *what, const float *got,
                                   const double *want, size_t count,
                                   double atol, double rtol, const char *file,
                                   int line)
{
    for (size_t i = 0; i < count; i++) {
        double g = got[i], w = want[i];
        double err = fabs(g - w);
        if (!(err <= atol + rtol * fabs(w))) {
            fail_msg("%s:%d: %s[%zu]: got %.9g, want %.9g (|diff| %.3g > "
                     "atol %.1g + rtol %.1g * |want|)",
                     file, line, what, i, g, w, err, atol, rtol);
        }
    }
}
#define tk_check_close(what, got, want, count, atol, rtol)                     \
    tk_check_close_(what, got, want, count, atol, rtol, __FILE__, __LINE__)

static inline void tk_check_equal_f_(const char *what, const float *got,
                                     const float *want, size_t count,
                                     const char *file, int line)
{
    for (size_t i = 0; i < count; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s:%d: %s[%zu]: got %.9g, want %.9g (bitwise)", file,
                     line, what, i, (double)got[i], (double)want[i]);
}
#define tk_check_equal_f(what, got, want, count)                               \
    tk_check_equal_f_(what, got, want, count, __FILE__, __LINE__)

/* The gradient checks' loss: sum(r * y). */
static inline double tk_dot(const double *r, const double *y, size_t count)
{
    double s = 0.0;
    for (size_t i = 0; i < count; i++)
        s += r[i] * y[i];
    return s;
}

/* Numerical gradient of loss(ctx) w.r.t. x[j] for every j (or, when
 * max_points < count, for an evenly spread subset; grad[j] = NAN elsewhere
 * and tk_check_grad skips those). x is perturbed in place and restored. */
typedef double (*tk_loss_fn)(void *ctx);

static inline void tk_numeric_grad(double *grad, double *x, size_t count,
                                   tk_loss_fn loss, void *ctx,
                                   size_t max_points)
{
    size_t step = 1;
    if (max_points && count > max_points)
        step = (count + max_points - 1) / max_points;
    for (size_t j = 0; j < count; j++) {
        if (j % step != 0) {
            grad[j] = NAN;
            continue;
        }
        double keep = x[j];
        x[j] = keep + TK_FD_STEP;
        double up = loss(ctx);
        x[j] = keep - TK_FD_STEP;
        double down = loss(ctx);
        x[j] = keep;
        grad[j] = (up - down) / (2.0 * TK_FD_STEP);
    }
}

/* Analytic (float) vs numerical (double) gradient. The tolerance is relative
 * to the gradient's scale: |a - n| <= tol * (max|n| + 1e-3) + tol * |n|. */
static inline void tk_check_grad_(const char *what, const float *analytic,
                                  const double *numeric, size_t count,
                                  double tol, const char *file, int line)
{
    double scale = 1e-3;
    size_t checked = 0;
    for (size_t i = 0; i < count; i++)
        if (!isnan(numeric[i]) && fabs(numeric[i]) > scale)
            scale = fabs(numeric[i]);
    for (size_t i = 0; i < count; i++) {
        if (isnan(numeric[i]))
            continue;
        checked++;
        double a = analytic[i], n = numeric[i];
        double err = fabs(a - n);
        if (!(err <= tol * scale + tol * fabs(n)))
            fail_msg("%s:%d: gradient %s[%zu]: backward %.9g, finite "
                     "difference %.9g (|diff| %.3g, tolerance %.3g)",
                     file, line, what, i, a, n, err,
                     tol * scale + tol * fabs(n));
    }
    if (checked == 0)
        fail_msg("%s:%d: gradient %s: nothing checked", file, line, what);
}
#define tk_check_grad(what, analytic, numeric, count, tol)                     \
    tk_check_grad_(what, analytic, numeric, count, tol, __FILE__, __LINE__)

#endif
