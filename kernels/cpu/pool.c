/* ringtrain kernels (CPU): max, average and global average pooling. Every
 * (batch, channel) plane is independent, so planes are split across threads;
 * window bounds are clipped once per output row/column instead of testing
 * each tap against the padding. */
#include "kernels.h"
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

/* Input positions [*lo, *hi) covered by window `o` along one axis. */
static inline void pool__window(int o, int k, int stride, int pad, int size,
                                int *lo, int *hi)
{
    int start = o * stride - pad;
    int end = start + k;
    *lo = start < 0 ? 0 : start;
    *hi = end > size ? size : end;
}

static inline int pool__out_size(int size, int k, int stride, int pad)
{
    return (size + 2 * pad - k) / stride + 1;
}

/* Max of x over rows [h0, h1) and columns [w0, w1) of a plane W wide, and
 * its index. The first maximum wins ties and a NaN wins over numbers (the
 * last NaN), as PyTorch's `val > max || isnan(val)`. The common path is
 * branch-free (random data defeats branch prediction: a branchy loop costs
 * ~5x); a NaN anywhere sends the window through the exact rule. An empty
 * window (only possible with pad > k/2) gives 0 and no index (-1). */
static inline void maxpool__window(const float *x, int W, int h0, int h1,
                                   int w0, int w1, float *best_out,
                                   int32_t *where_out)
{
    if (h0 >= h1 || w0 >= w1) {
        *best_out = 0.0f;
        *where_out = -1;
        return;
    }
    float best = x[h0 * W + w0];
    int32_t where = h0 * W + w0;
    int nan = 0;
    for (int h = h0; h < h1; h++) {
        const float *xr = x + h * W;
        for (int w = w0; w < w1; w++) {
            float v = xr[w];
            int32_t gt = -(int32_t)(v > best);
            nan |= v != v;
            best = v > best ? v : best;
            where = (where & ~gt) | ((h * W + w) & gt);
        }
    }
    if (nan) {
        best = x[h0 * W + w0];
        where = h0 * W + w0;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) {
                float v = x[h * W + w];
                if (v > best || isnan(v)) {
                    best = v;
                    where = h * W + w;
                }
            }
    }
    *best_out = best;
    *where_out = where;
}

/* One tap of the interior loop below over `count` outputs: y/a keep the
 * running maximum and its index, output j reads xr[j * stride] at input
 * index base + j * stride; returns nonzero if a NaN was read. Cloned
 * for AVX-512/AVX2/baseline, with stride 2 (ResNet's and LeNet's pools) and
 * 1 as constants so the strided loads vectorise. */
#define POOL__TAP_BODY(STRIDE)                                                 \
    int nan = 0;                                                               \
    _Pragma("omp simd reduction(| : nan)")                                     \
    for (int j = 0; j < count; j++) {                                          \
        float v = xr[j * (STRIDE)];                                            \
        float cur = y[j];                                                      \
        int32_t mask = -(int32_t)(v > cur);                                    \
        nan |= v != v;                                                         \
        y[j] = v > cur ? v : cur;                                              \
        a[j] = (a[j] & ~mask) | ((base + j * (STRIDE)) & mask);                \
    }                                                                          \
    return nan;

#define POOL__CLONES KERN__CLONES

POOL__CLONES static int maxpool__tap_s1(float *restrict y, int32_t *restrict a,
                                        const float *restrict xr, int32_t base,
                                        int count)
{
    POOL__TAP_BODY(1)
}

POOL__CLONES static int maxpool__tap_s2(float *restrict y, int32_t *restrict a,
                                        const float *restrict xr, int32_t base,
                                        int count)
{
    POOL__TAP_BODY(2)
}

static int maxpool__tap(float *restrict y, int32_t *restrict a,
                        const float *restrict xr, int32_t base, int count,
                        int stride)
{
    if (stride == 2)
        return maxpool__tap_s2(y, a, xr, base, count);
    if (stride == 1)
        return maxpool__tap_s1(y, a, xr, base, count);
    int nan = 0;
    for (int j = 0; j < count; j++) {
        float v = xr[j * stride];
        int gt = v > y[j];
        nan |= v != v;
        y[j] = gt ? v : y[j];
        a[j] = gt ? base + j * stride : a[j];
    }
    return nan;
}

/* One output row of max pooling over input rows [h0, h1). Interior columns
 * (whole window inside the plane) are done tap by tap across the row, so the
 * compare-select chains of neighbouring outputs run in parallel instead of
 * one 4-cycle chain per output; taps go in window order with a strict
 * compare, so the first maximum still wins. Border columns and rows holding
 * a NaN go through maxpool__window. */
static void maxpool__row(float *y, int32_t *a, const float *x, int W, int OW,
                         int h0, int h1, int k, int stride, int pad)
{
    int lo = (pad + stride - 1) / stride;
    int hi = W + pad - k >= 0 ? (W + pad - k) / stride + 1 : 0;
    if (hi > OW)
        hi = OW;
    if (lo > hi)
        lo = hi;
    for (int ow = 0; ow < OW; ow++) {
        if (ow == lo) {
            ow = hi - 1;
            continue;
        }
        int w0, w1;
        pool__window(ow, k, stride, pad, W, &w0, &w1);
        maxpool__window(x, W, h0, h1, w0, w1, &y[ow], &a[ow]);
    }
    if (lo >= hi)
        return;
    if (h0 >= h1) {
        for (int ow = lo; ow < hi; ow++) {
            y[ow] = 0.0f;
            a[ow] = -1;
        }
        return;
    }
    for (int ow = lo; ow < hi; ow++) {
        int32_t at = h0 * W + ow * stride - pad;
        y[ow] = x[at];
        a[ow] = at;
    }
    int nan = 0;
    for (int h = h0; h < h1; h++)
        for (int kw = 0; kw < k; kw++) {
            if (h == h0 && kw == 0)
                continue;
            int32_t at = h * W + lo * stride - pad + kw;
            nan |= maxpool__tap(y + lo, a + lo, x + at, at, hi - lo, stride);
        }
    if (nan)
        for (int ow = lo; ow < hi; ow++) {
            int w0, w1;
            pool__window(ow, k, stride, pad, W, &w0, &w1);
            maxpool__window(x, W, h0, h1, w0, w1, &y[ow], &a[ow]);
        }
}

// in: (B, C, H, W) -> out, argmax: (B, C, OH, OW)
void maxpool2d_forward_cpu(float *out, int32_t *argmax, const float *in, int B,
                           int C, int H, int W, int k, int stride, int pad)
{
    int OH = pool__out_size(H, k, stride, pad);
    int OW = pool__out_size(W, k, stride, pad);
    long planes = (long)B * C;
    int threads = kern__threads_for((size_t)planes * H * W);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * H * W;
        float *y = out + (size_t)p * OH * OW;
        int32_t *a = argmax + (size_t)p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0, h1;
            pool__window(oh, k, stride, pad, H, &h0, &h1);
            maxpool__row(y + (size_t)oh * OW, a + (size_t)oh * OW, x, W, OW,
                         h0, h1, k, stride, pad);
        }
    }
}

// dout, argmax: (B, C, OH, OW) -> din: (B, C, H, W)
void maxpool2d_backward_cpu(float *din, const float *dout,
                            const int32_t *argmax, int B, int C, int H, int W,
                            int OH, int OW)
{
    long planes = (long)B * C;
    int threads = kern__threads_for((size_t)planes * H * W);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long p = 0; p < planes; p++) {
        float *dx = din + (size_t)p * H * W;
        const float *dy = dout + (size_t)p * OH * OW;
        const int32_t *a = argmax + (size_t)p * OH * OW;
        memset(dx, 0, (size_t)H * W * sizeof(float));
        for (int i = 0; i < OH * OW; i++)
            if (a[i] >= 0)
                dx[a[i]] += dy[i];
    }
}

// in: (B, C, H, W) -> out: (B, C, OH, OW); divisor k*k (padding counts)
void avgpool2d_forward_cpu(float *out, const float *in, int B, int C, int H,
                           int W, int k, int stride, int pad)
{
    int OH = pool__out_size(H, k, stride, pad);
    int OW = pool__out_size(W, k, stride, pad);
    float scale = 1.0f / (float)(k * k);
    long planes = (long)B * C;
    int threads = kern__threads_for((size_t)planes * H * W);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * H * W;
        float *y = out + (size_t)p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            int h0, h1;
            pool__window(oh, k, stride, pad, H, &h0, &h1);
            for (int ow = 0; ow < OW; ow++) {
                int w0, w1;
                pool__window(ow, k, stride, pad, W, &w0, &w1);
                float sum = 0.0f;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                        sum += x[h * W + w];
                y[oh * OW + ow] = sum * scale;
            }
        }
    }
}

// dout: (B, C, OH, OW) -> din: (B, C, H, W)
void avgpool2d_backward_cpu(float *din, const float *dout, int B, int C, int H,
                            int W, int k, int stride, int pad)
{
    int OH = pool__out_size(H, k, stride, pad);
    int OW = pool__out_size(W, k, stride, pad);
    float scale = 1.0f / (float)(k * k);
    long planes = (long)B * C;
    int threads = kern__threads_for((size_t)planes * H * W);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long p = 0; p < planes; p++) {
        float *dx = din + (size_t)p * H * W;
        const float *dy = dout + (size_t)p * OH * OW;
        memset(dx, 0, (size_t)H * W * sizeof(float));
        for (int oh = 0; oh < OH; oh++) {
            int h0, h1;
            pool__window(oh, k, stride, pad, H, &h0, &h1);
            for (int ow = 0; ow < OW; ow++) {
                int w0, w1;
                pool__window(ow, k, stride, pad, W, &w0, &w1);
                float g = dy[oh * OW + ow] * scale;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++)
                        dx[h * W + w] += g;
            }
        }
    }
}

// in: (B, C, HW) -> out: (B, C)
void global_avgpool_forward_cpu(float *out, const float *in, int B, int C,
                                int HW)
{
    long planes = (long)B * C;
    float scale = 1.0f / (float)HW;
    int threads = kern__threads_for((size_t)planes * HW);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long p = 0; p < planes; p++) {
        const float *x = in + (size_t)p * HW;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int i = 0; i < HW; i++)
            sum += x[i];
        out[p] = sum * scale;
    }
}

// dout: (B, C) -> din: (B, C, HW)
void global_avgpool_backward_cpu(float *din, const float *dout, int B, int C,
                                 int HW)
{
    long planes = (long)B * C;
    float scale = 1.0f / (float)HW;
    int threads = kern__threads_for((size_t)planes * HW);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long p = 0; p < planes; p++) {
        float *dx = din + (size_t)p * HW;
        float g = dout[p] * scale;
        for (int i = 0; i < HW; i++)
            dx[i] = g;
    }
}
