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
            for (int ow = 0; ow < OW; ow++) {
                int w0, w1;
                pool__window(ow, k, stride, pad, W, &w0, &w1);
                /* The first maximum wins ties and NaN propagates, as in
                 * PyTorch; a window of padding only yields 0 and no argmax. */
                float best = -INFINITY;
                int32_t where = -1;
                for (int h = h0; h < h1; h++)
                    for (int w = w0; w < w1; w++) {
                        float v = x[h * W + w];
                        if (v > best || (isnan(v) && !isnan(best)) ||
                            where < 0) {
                            best = v;
                            where = h * W + w;
                        }
                    }
                y[oh * OW + ow] = where < 0 ? 0.0f : best;
                a[oh * OW + ow] = where;
            }
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
