/* Shared helpers for the GPU tests (tests/gpu/test_*.c): skip without a
 * device, a seeded generator, host<->device buffers through the kernels'
 * CUDA helpers (no CUDA headers needed here), and the comparison every test
 * uses: GPU result against the CPU reference, element by element,
 *     |gpu - cpu| <= tol + eps * |cpu|
 * printing the array, the first bad index and both values. For the storage
 * formats (kernels.h, kern_format_t): rounding to fp16 / bf16 on the host
 * (the CPU reference then starts from exactly the values the GPU holds) and
 * device tensors in a format, made from and read back as fp32 NCHW. */
#ifndef RINGTRAIN_GPU_TEST_UTIL_H
#define RINGTRAIN_GPU_TEST_UTIL_H

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels.h"

/* Exit 77 (meson's "skipped") when there is no CUDA device, saying why. */
static inline void gt_require_device(const char *prog)
{
    const char *why = NULL;
    int count = kernels_cuda_device_count(&why);
    if (count <= 0) {
        printf("%s: skipped: no CUDA device (cudaGetDeviceCount: %s)\n", prog,
               why ? why : "0 devices");
        exit(77);
    }
}

/* cmocka group setup/teardown: one context for the whole file. */
static inline int gt_setup(void **state)
{
    (void)state;
    return kernels_cuda_init(0) == 0 ? 0 : -1;
}

static inline int gt_teardown(void **state)
{
    (void)state;
    int rc = kernels_cuda_synchronize();
    kernels_cuda_free();
    return rc == 0 ? 0 : -1;
}

typedef struct {
    uint64_t s;
} gt_rng_t;

static inline uint64_t gt_next(gt_rng_t *r)
{
    /* splitmix64 */
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static inline float gt_uniform(gt_rng_t *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(gt_next(r) >> 11) * 0x1.0p-53);
}

static inline float *gt_host(size_t count)
{
    float *p = calloc(count ? count : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

static inline float *gt_random(gt_rng_t *r, size_t count, float lo, float hi)
{
    float *p = gt_host(count);
    for (size_t i = 0; i < count; i++)
        p[i] = gt_uniform(r, lo, hi);
    return p;
}

static inline int32_t *gt_labels(gt_rng_t *r, int B, int K)
{
    int32_t *p = calloc(B > 0 ? (size_t)B : 1, sizeof(int32_t));
    assert_non_null(p);
    for (int b = 0; b < B; b++)
        p[b] = (int32_t)(gt_next(r) % (uint64_t)K);
    return p;
}

/* Device copy of host data (bytes); NULL host gives a zeroed buffer. */
static inline void *gt_dev(const void *host, size_t bytes)
{
    void *d = kernels_cuda_buffer_alloc(bytes);
    assert_non_null(d);
    if (host)
        assert_int_equal(kernels_cuda_copy_to_device(d, host, bytes), 0);
    return d;
}

static inline float *gt_devf(const float *host, size_t count)
{
    return gt_dev(host, count * sizeof(float));
}

/* Host copy of a device buffer; checks the stream reported no error. */
static inline float *gt_fetch(const float *dev, size_t count)
{
    float *h = gt_host(count);
    assert_int_equal(kernels_cuda_synchronize(), 0);
    assert_int_equal(kernels_cuda_copy_to_host(h, dev, count * sizeof(float)),
                     0);
    return h;
}

static inline void gt_check_close_(const char *what, const float *gpu,
                                   const float *cpu, size_t count, double tol,
                                   double eps, const char *file, int line)
{
    for (size_t i = 0; i < count; i++) {
        double g = gpu[i], c = cpu[i];
        double err = fabs(g - c);
        if (!(err <= tol + eps * fabs(c)))
            fail_msg("%s:%d: %s[%zu]: gpu %.9g, cpu %.9g (|diff| %.3g > tol "
                     "%.3g + eps %.3g * |cpu|)",
                     file, line, what, i, g, c, err, tol, eps);
    }
}
#define gt_check_close(what, gpu, cpu, count, tol, eps)                        \
    gt_check_close_(what, gpu, cpu, count, tol, eps, __FILE__, __LINE__)

/* Device result against a host reference: fetch, compare, free the copy. */
#define gt_check_dev(what, dev, cpu, count, tol, eps)                          \
    do {                                                                       \
        float *gt__h = gt_fetch((dev), (count));                               \
        gt_check_close(what, gt__h, (cpu), (count), (tol), (eps));             \
        free(gt__h);                                                           \
    } while (0)

/* Absolute tolerance for a sum of `terms` products of values in [-1, 1].
 * Blocked and tree sums (BLAS, the GPU) err like u * sqrt(terms); a long
 * running float sum (the CPU's row sums: dbias over a 1024x1024 map) like
 * u * terms, since each addition rounds a partial sum of size ~sqrt(k).
 * 1e-5 * sqrt(terms) + 1e-7 * terms covers both several times over (u is
 * 6e-8), while an indexing mistake moves a result by ~sqrt(terms) / 3
 * (a whole term or more, 0.1 at the least). */
static inline double gt_sum_tol(size_t terms)
{
    double n = (double)(terms ? terms : 1);
    return 1e-5 * sqrt(n) + 1e-7 * n;
}

/* v rounded to nearest even in dtype (IEEE binary16 via the compiler's
 * _Float16; bf16 by hand, as the emulation and the GPU do it). */
__extension__ typedef _Float16 gt_f16_t;

static inline float gt_round(kern_dtype_t t, float v)
{
    if (t == KERN_F16)
        return (float)(gt_f16_t)v;
    if (t == KERN_BF16) {
        uint32_t u;
        memcpy(&u, &v, 4);
        if ((u & 0x7fffffffu) > 0x7f800000u)
            return v;
        u += 0x7fffu + ((u >> 16) & 1u);
        u &= 0xffff0000u;
        memcpy(&v, &u, 4);
    }
    return v;
}

static inline void gt_quantize(float *p, size_t count, kern_dtype_t t)
{
    for (size_t i = 0; i < count; i++)
        p[i] = gt_round(t, p[i]);
}

/* Relative error of one rounding in dtype, doubled (a value rounded twice
 * on its way, e.g. stored then converted, stays within it). */
static inline double gt_ulp(kern_dtype_t t)
{
    return t == KERN_F16 ? 0x1p-10 : t == KERN_BF16 ? 0x1p-7 : 2e-7;
}

static inline kern_format_t gt_fmt(kern_dtype_t t, kern_layout_t l)
{
    kern_format_t f = {t, l};
    return f;
}

static inline const char *gt_fmt_name(kern_format_t f)
{
    static char buf[32];
    snprintf(buf, sizeof buf, "%s %s", kern_dtype_name(f.dtype),
             f.layout == KERN_NHWC ? "NHWC" : "NCHW");
    return buf;
}

/* A device tensor (B, C, H, W) in format f holding host (fp32 NCHW);
 * host NULL gives zeros. */
static inline void *gt_dev_fmt(const float *host, int B, int C, int H, int W,
                               kern_format_t f)
{
    size_t count = (size_t)B * C * H * W;
    void *d = gt_dev(NULL, count * kern_dtype_size(f.dtype));
    if (host) {
        float *tmp = gt_devf(host, count);
        tensor_from_f32_fmt_cuda(d, tmp, B, C, H, W, f);
        assert_int_equal(kernels_cuda_synchronize(), 0);
        kernels_cuda_buffer_free(tmp);
    }
    return d;
}

/* Host fp32 NCHW copy of a device tensor in format f. */
static inline float *gt_fetch_fmt(const void *dev, int B, int C, int H, int W,
                                  kern_format_t f)
{
    size_t count = (size_t)B * C * H * W;
    float *tmp = gt_devf(NULL, count);
    tensor_to_f32_fmt_cuda(tmp, dev, B, C, H, W, f);
    float *h = gt_fetch(tmp, count);
    kernels_cuda_buffer_free(tmp);
    return h;
}

#define gt_check_fmt(what, dev, cpu, B, C, H, W, f, tol, eps)                  \
    do {                                                                       \
        float *gt__h = gt_fetch_fmt((dev), (B), (C), (H), (W), (f));           \
        gt_check_close(what, gt__h, (cpu), (size_t)(B) * (C) * (H) * (W),      \
                       (tol), (eps));                                          \
        free(gt__h);                                                           \
    } while (0)

#endif
