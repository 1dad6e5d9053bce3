/* ringtrain kernels (CUDA): max, average and global average pooling.
 *
 * Forward passes are one thread per output, walking the window in the CPU's
 * order, so outputs (and max pooling's argmax) equal the reference bit for
 * bit. Average pooling's backward is one thread per input pixel gathering
 * the windows that cover it, in the order the CPU adds them (no atomics;
 * __fmul_rn keeps nvcc from fusing the scale into the add, which the CPU
 * rounds separately).
 * Max pooling's backward only has the argmax (not the window geometry), so
 * it scatters with atomicAdd into a zeroed din: where windows overlap
 * (3x3 stride 2) the order of the few additions, and so the last bits, may
 * vary between runs. */
#include "cuda_internal.h"

#include <math.h>

#define KPOOL__ROWS(r, rows) for (unsigned r = blockIdx.y; r < (rows); r += gridDim.y)
#define KPOOL__COLS(col_, cols)                                                \
    for (unsigned col_ = blockIdx.x * blockDim.x + threadIdx.x; col_ < (cols); \
         col_ += gridDim.x * blockDim.x)

static inline int kpool__out_size(int size, int k, int stride, int pad)
{
    return (size + 2 * pad - k) / stride + 1;
}

/* Input positions [*lo, *hi) covered by window `o` along one axis. */
__device__ static inline void kpool__window(int o, int k, int stride, int pad,
                                            int size, int *lo, int *hi)
{
    int start = o * stride - pad;
    int end = start + k;
    *lo = start < 0 ? 0 : start;
    *hi = end > size ? size : end;
}

/* Windows [*lo, *hi] (inclusive) along one axis that cover input `i`:
 * o*stride - pad <= i <= o*stride - pad + k - 1, within [0, out_size). */
__device__ static inline void kpool__covering(int i, int k, int stride,
                                              int pad, int out_size, int *lo,
                                              int *hi)
{
    int t = i + pad - k + 1;
    *lo = t <= 0 ? 0 : (t + stride - 1) / stride;
    int h = (i + pad) / stride;
    *hi = h < out_size - 1 ? h : out_size - 1;
}

// in: planes (B*C, H, W) -> out, argmax: (B*C, OH, OW)
__global__ static void maxpool_forward_kernel(float *out, int32_t *argmax,
                                              const float *in, unsigned planes,
                                              int H, int W, int OH, int OW,
                                              int k, int stride, int pad)
{
    unsigned ohw = (unsigned)(OH * OW);
    KPOOL__ROWS(plane, planes)
    {
        const float *x = in + (size_t)plane * H * W;
        KPOOL__COLS(pos, ohw)
        {
            int oh = (int)pos / OW, ow = (int)pos - oh * OW;
            int h0, h1, w0, w1;
            kpool__window(oh, k, stride, pad, H, &h0, &h1);
            kpool__window(ow, k, stride, pad, W, &w0, &w1);
            /* First maximum wins ties, NaN propagates; a window of padding
             * only yields 0 and no argmax (as the CPU). */
            float best = -INFINITY;
            int32_t where = -1;
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++) {
                    float v = x[h * W + w];
                    if (v > best || (isnan(v) && !isnan(best)) || where < 0) {
                        best = v;
                        where = h * W + w;
                    }
                }
            out[(size_t)plane * ohw + pos] = where < 0 ? 0.0f : best;
            argmax[(size_t)plane * ohw + pos] = where;
        }
    }
}

// dout, argmax: (B*C, OH*OW) -> din (zeroed): (B*C, H*W)
__global__ static void maxpool_backward_kernel(float *din, const float *dout,
                                               const int32_t *argmax,
                                               unsigned planes, unsigned hw,
                                               unsigned ohw)
{
    KPOOL__ROWS(plane, planes)
    {
        float *dx = din + (size_t)plane * hw;
        KPOOL__COLS(pos, ohw)
        {
            int32_t a = argmax[(size_t)plane * ohw + pos];
            if (a >= 0)
                atomicAdd(dx + a, dout[(size_t)plane * ohw + pos]);
        }
    }
}

// in: (B*C, H, W) -> out: (B*C, OH, OW); divisor k*k (padding counts)
__global__ static void avgpool_forward_kernel(float *out, const float *in,
                                              unsigned planes, int H, int W,
                                              int OH, int OW, int k,
                                              int stride, int pad, float scale)
{
    unsigned ohw = (unsigned)(OH * OW);
    KPOOL__ROWS(plane, planes)
    {
        const float *x = in + (size_t)plane * H * W;
        KPOOL__COLS(pos, ohw)
        {
            int oh = (int)pos / OW, ow = (int)pos - oh * OW;
            int h0, h1, w0, w1;
            kpool__window(oh, k, stride, pad, H, &h0, &h1);
            kpool__window(ow, k, stride, pad, W, &w0, &w1);
            float sum = 0.0f;
            for (int h = h0; h < h1; h++)
                for (int w = w0; w < w1; w++)
                    sum += x[h * W + w];
            out[(size_t)plane * ohw + pos] = sum * scale;
        }
    }
}

// dout: (B*C, OH, OW) -> din: (B*C, H, W), one thread per input pixel
__global__ static void avgpool_backward_kernel(float *din, const float *dout,
                                               unsigned planes, int H, int W,
                                               int OH, int OW, int k,
                                               int stride, int pad,
                                               float scale)
{
    unsigned hw = (unsigned)(H * W);
    KPOOL__ROWS(plane, planes)
    {
        const float *dy = dout + (size_t)plane * OH * OW;
        KPOOL__COLS(pix, hw)
        {
            int h = (int)pix / W, w = (int)pix - h * W;
            int oh0, oh1, ow0, ow1;
            kpool__covering(h, k, stride, pad, OH, &oh0, &oh1);
            kpool__covering(w, k, stride, pad, OW, &ow0, &ow1);
            float sum = 0.0f;
            for (int oh = oh0; oh <= oh1; oh++)
                for (int ow = ow0; ow <= ow1; ow++)
                    sum += __fmul_rn(dy[oh * OW + ow], scale);
            din[(size_t)plane * hw + pix] = sum;
        }
    }
}

// in: (planes, HW) -> out: (planes), one thread per plane
__global__ static void global_avgpool_forward_kernel(float *out,
                                                     const float *in,
                                                     size_t planes, int HW,
                                                     float scale)
{
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < planes;
         p += (size_t)gridDim.x * blockDim.x) {
        const float *x = in + p * HW;
        float sum = 0.0f;
        for (int i = 0; i < HW; i++)
            sum += x[i];
        out[p] = sum * scale;
    }
}

// dout: (planes) -> din: (planes, HW)
__global__ static void global_avgpool_backward_kernel(float *din,
                                                      const float *dout,
                                                      unsigned planes,
                                                      unsigned HW, float scale)
{
    KPOOL__ROWS(plane, planes)
    {
        float g = dout[plane] * scale;
        KPOOL__COLS(i, HW)
        {
            din[(size_t)plane * HW + i] = g;
        }
    }
}

#define KPOOL__LAUNCH2D(kernel, rows, cols, ...)                               \
    do {                                                                       \
        kernel<<<kcuda__grid2d((rows), (cols), KCUDA__THREADS), KCUDA__THREADS, \
                 0, kcuda__ctx.stream>>>(__VA_ARGS__);                         \
        KCUDA__LAUNCHED(#kernel);                                              \
    } while (0)

// in: (B, C, H, W) -> out, argmax: (B, C, OH, OW)
extern "C" void maxpool2d_forward_cuda(float *out, int32_t *argmax,
                                       const float *in, int B, int C, int H,
                                       int W, int k, int stride, int pad)
{
    int OH = kpool__out_size(H, k, stride, pad);
    int OW = kpool__out_size(W, k, stride, pad);
    unsigned planes = (unsigned)B * (unsigned)C;
    if (!kcuda__ready("maxpool2d_forward_cuda") || planes == 0 || OH <= 0 ||
        OW <= 0)
        return;
    KPOOL__LAUNCH2D(maxpool_forward_kernel, planes, (size_t)OH * OW, out,
                    argmax, in, planes, H, W, OH, OW, k, stride, pad);
}

// dout, argmax: (B, C, OH, OW) -> din: (B, C, H, W)
extern "C" void maxpool2d_backward_cuda(float *din, const float *dout,
                                        const int32_t *argmax, int B, int C,
                                        int H, int W, int OH, int OW)
{
    unsigned planes = (unsigned)B * (unsigned)C;
    if (!kcuda__ready("maxpool2d_backward_cuda") || planes == 0 || H <= 0 ||
        W <= 0)
        return;
    RT_CUDA_CHECK(cudaMemsetAsync(din, 0, (size_t)planes * H * W * sizeof(float),
                                  kcuda__ctx.stream));
    if (OH <= 0 || OW <= 0)
        return;
    KPOOL__LAUNCH2D(maxpool_backward_kernel, planes, (size_t)OH * OW, din,
                    dout, argmax, planes, (unsigned)(H * W),
                    (unsigned)(OH * OW));
}

// in: (B, C, H, W) -> out: (B, C, OH, OW)
extern "C" void avgpool2d_forward_cuda(float *out, const float *in, int B,
                                       int C, int H, int W, int k, int stride,
                                       int pad)
{
    int OH = kpool__out_size(H, k, stride, pad);
    int OW = kpool__out_size(W, k, stride, pad);
    unsigned planes = (unsigned)B * (unsigned)C;
    if (!kcuda__ready("avgpool2d_forward_cuda") || planes == 0 || OH <= 0 ||
        OW <= 0)
        return;
    KPOOL__LAUNCH2D(avgpool_forward_kernel, planes, (size_t)OH * OW, out, in,
                    planes, H, W, OH, OW, k, stride, pad,
                    1.0f / (float)(k * k));
}

// dout: (B, C, OH, OW) -> din: (B, C, H, W)
extern "C" void avgpool2d_backward_cuda(float *din, const float *dout, int B,
                                        int C, int H, int W, int k, int stride,
                                        int pad)
{
    int OH = kpool__out_size(H, k, stride, pad);
    int OW = kpool__out_size(W, k, stride, pad);
    unsigned planes = (unsigned)B * (unsigned)C;
    if (!kcuda__ready("avgpool2d_backward_cuda") || planes == 0 || H <= 0 ||
        W <= 0)
        return;
    KPOOL__LAUNCH2D(avgpool_backward_kernel, planes, (size_t)H * W, din, dout,
                    planes, H, W, OH, OW, k, stride, pad,
                    1.0f / (float)(k * k));
}

// in: (B, C, HW) -> out: (B, C)
extern "C" void global_avgpool_forward_cuda(float *out, const float *in, int B,
                                            int C, int HW)
{
    size_t planes = (size_t)B * C;
    if (!kcuda__ready("global_avgpool_forward_cuda") || planes == 0 || HW <= 0)
        return;
    global_avgpool_forward_kernel<<<kcuda__blocks(planes, KCUDA__THREADS),
                                    KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
        out, in, planes, HW, 1.0f / (float)HW);
    KCUDA__LAUNCHED("global_avgpool_forward_kernel");
}

// dout: (B, C) -> din: (B, C, HW)
extern "C" void global_avgpool_backward_cuda(float *din, const float *dout,
                                             int B, int C, int HW)
{
    unsigned planes = (unsigned)B * (unsigned)C;
    if (!kcuda__ready("global_avgpool_backward_cuda") || planes == 0 ||
        HW <= 0)
        return;
    KPOOL__LAUNCH2D(global_avgpool_backward_kernel, planes, (size_t)HW, din,
                    dout, planes, (unsigned)HW, 1.0f / (float)HW);
}
