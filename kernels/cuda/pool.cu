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
 * vary between runs.
 *
 * Kernels are templated on the storage type T (computed in float). NCHW
 * walks (plane, position) grids; NHWC has its own kernels, one thread per
 * element with channels fastest, reading a window's taps C elements apart
 * through the same window helpers. */
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

/* Window (oh, ow) of a plane whose element (h, w) is x[(h*W + w) * step]
 * (step 1: NCHW; C: NHWC): its maximum and where (h*W + w). First maximum
 * wins ties, NaN propagates; a window of padding only yields 0 and no
 * argmax (-1), as the CPU. */
template <typename T>
__device__ static inline float kpool__max(const T *x, size_t step, int oh,
                                          int ow, int H, int W, int k,
                                          int stride, int pad, int32_t *where)
{
    int h0, h1, w0, w1;
    kpool__window(oh, k, stride, pad, H, &h0, &h1);
    kpool__window(ow, k, stride, pad, W, &w0, &w1);
    float best = -INFINITY;
    int32_t at = -1;
    for (int h = h0; h < h1; h++)
        for (int w = w0; w < w1; w++) {
            float v = kcuda__ld(x[(size_t)(h * W + w) * step]);
            if (v > best || (isnan(v) && !isnan(best)) || at < 0) {
                best = v;
                at = h * W + w;
            }
        }
    *where = at;
    return at < 0 ? 0.0f : best;
}

/* Sum over window (oh, ow), in the CPU's order. */
template <typename T>
__device__ static inline float kpool__sum(const T *x, size_t step, int oh,
                                          int ow, int H, int W, int k,
                                          int stride, int pad)
{
    int h0, h1, w0, w1;
    kpool__window(oh, k, stride, pad, H, &h0, &h1);
    kpool__window(ow, k, stride, pad, W, &w0, &w1);
    float sum = 0.0f;
    for (int h = h0; h < h1; h++)
        for (int w = w0; w < w1; w++)
            sum += kcuda__ld(x[(size_t)(h * W + w) * step]);
    return sum;
}

/* Average pooling's gradient at input (h, w): the scaled output gradients
 * of the windows covering it, dy[(oh*OW + ow) * step], in the CPU's order
 * (__fmul_rn: the scale is not fused into the add, which the CPU rounds
 * separately). */
template <typename T>
__device__ static inline float kpool__gather(const T *dy, size_t step, int h,
                                             int w, int OH, int OW, int k,
                                             int stride, int pad, float scale)
{
    int oh0, oh1, ow0, ow1;
    kpool__covering(h, k, stride, pad, OH, &oh0, &oh1);
    kpool__covering(w, k, stride, pad, OW, &ow0, &ow1);
    float sum = 0.0f;
    for (int oh = oh0; oh <= oh1; oh++)
        for (int ow = ow0; ow <= ow1; ow++)
            sum += __fmul_rn(kcuda__ld(dy[(size_t)(oh * OW + ow) * step]), scale);
    return sum;
}

// in: planes (B*C, H, W) -> out, argmax: (B*C, OH, OW)
template <typename T>
__global__ static void maxpool_forward_kernel(T *out, int32_t *argmax,
                                              const T *in, unsigned planes,
                                              int H, int W, int OH, int OW,
                                              int k, int stride, int pad)
{
    unsigned ohw = (unsigned)(OH * OW);
    KPOOL__ROWS(plane, planes)
    {
        const T *x = in + (size_t)plane * H * W;
        KPOOL__COLS(pos, ohw)
        {
            int oh = (int)pos / OW, ow = (int)pos - oh * OW;
            int32_t where;
            float best = kpool__max(x, 1, oh, ow, H, W, k, stride, pad, &where);
            kcuda__st(out + (size_t)plane * ohw + pos, best);
            argmax[(size_t)plane * ohw + pos] = where;
        }
    }
}

// dout, argmax: (B*C, OH*OW) -> din (zeroed): (B*C, H*W)
template <typename T>
__global__ static void maxpool_backward_kernel(T *din, const T *dout,
                                               const int32_t *argmax,
                                               unsigned planes, unsigned hw,
                                               unsigned ohw)
{
    KPOOL__ROWS(plane, planes)
    {
        T *dx = din + (size_t)plane * hw;
        KPOOL__COLS(pos, ohw)
        {
            int32_t a = argmax[(size_t)plane * ohw + pos];
            if (a >= 0)
                atomicAdd(dx + a, dout[(size_t)plane * ohw + pos]);
        }
    }
}

// in: (B*C, H, W) -> out: (B*C, OH, OW); divisor k*k (padding counts)
template <typename T>
__global__ static void avgpool_forward_kernel(T *out, const T *in,
                                              unsigned planes, int H, int W,
                                              int OH, int OW, int k,
                                              int stride, int pad, float scale)
{
    unsigned ohw = (unsigned)(OH * OW);
    KPOOL__ROWS(plane, planes)
    {
        const T *x = in + (size_t)plane * H * W;
        KPOOL__COLS(pos, ohw)
        {
            int oh = (int)pos / OW, ow = (int)pos - oh * OW;
            float sum = kpool__sum(x, 1, oh, ow, H, W, k, stride, pad);
            kcuda__st(out + (size_t)plane * ohw + pos, sum * scale);
        }
    }
}

// dout: (B*C, OH, OW) -> din: (B*C, H, W), one thread per input pixel
template <typename T>
__global__ static void avgpool_backward_kernel(T *din, const T *dout,
                                               unsigned planes, int H, int W,
                                               int OH, int OW, int k,
                                               int stride, int pad,
                                               float scale)
{
    unsigned hw = (unsigned)(H * W);
    KPOOL__ROWS(plane, planes)
    {
        const T *dy = dout + (size_t)plane * OH * OW;
        KPOOL__COLS(pix, hw)
        {
            int h = (int)pix / W, w = (int)pix - h * W;
            float sum = kpool__gather(dy, 1, h, w, OH, OW, k, stride, pad, scale);
            kcuda__st(din + (size_t)plane * hw + pix, sum);
        }
    }
}

// in: (planes, HW) -> out: (planes), one thread per plane
template <typename T>
__global__ static void global_avgpool_forward_kernel(T *out, const T *in,
                                                     size_t planes, int HW,
                                                     float scale)
{
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < planes;
         p += (size_t)gridDim.x * blockDim.x) {
        const T *x = in + p * HW;
        float sum = 0.0f;
        for (int i = 0; i < HW; i++)
            sum += kcuda__ld(x[i]);
        kcuda__st(out + p, sum * scale);
    }
}

// dout: (planes) -> din: (planes, HW)
template <typename T>
__global__ static void global_avgpool_backward_kernel(T *din, const T *dout,
                                                      unsigned planes,
                                                      unsigned HW, float scale)
{
    KPOOL__ROWS(plane, planes)
    {
        float g = kcuda__ld(dout[plane]) * scale;
        KPOOL__COLS(i, HW)
        {
            kcuda__st(din + (size_t)plane * HW + i, g);
        }
    }
}

/* ---- NHWC: one thread per element of (B, spatial, C), channels fastest, so
 * a warp reads consecutive channels. Indices are 32-bit (checked). ---------- */

#define KPOOL__FOR(i, total)                                                   \
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (total);      \
         i += gridDim.x * blockDim.x)

// in: (B, H, W, C) -> out, argmax: (B, OH, OW, C)
template <typename T>
__global__ static void maxpool_nhwc_forward_kernel(T *out, int32_t *argmax,
                                                   const T *in, unsigned total,
                                                   int C, int H, int W, int OH,
                                                   int OW, int k, int stride,
                                                   int pad)
{
    KPOOL__FOR(i, total)
    {
        unsigned c = i % (unsigned)C, pos = i / (unsigned)C;
        unsigned b = pos / (unsigned)(OH * OW), p = pos - b * (unsigned)(OH * OW);
        int oh = (int)p / OW, ow = (int)p - oh * OW;
        const T *x = in + (size_t)b * H * W * C + c;
        int32_t where;
        float best = kpool__max(x, (size_t)C, oh, ow, H, W, k, stride, pad, &where);
        kcuda__st(out + i, best);
        argmax[i] = where;
    }
}

// dout, argmax: (B, OH, OW, C) -> din (zeroed): (B, H, W, C)
template <typename T>
__global__ static void maxpool_nhwc_backward_kernel(T *din, const T *dout,
                                                    const int32_t *argmax,
                                                    unsigned total, int C,
                                                    unsigned hw, unsigned ohw)
{
    KPOOL__FOR(i, total)
    {
        int32_t a = argmax[i];
        unsigned c = i % (unsigned)C, b = i / (unsigned)C / ohw;
        if (a >= 0)
            atomicAdd(din + ((size_t)b * hw + (unsigned)a) * C + c, dout[i]);
    }
}

// in: (B, H, W, C) -> out: (B, OH, OW, C); divisor k*k
template <typename T>
__global__ static void avgpool_nhwc_forward_kernel(T *out, const T *in,
                                                   unsigned total, int C, int H,
                                                   int W, int OH, int OW, int k,
                                                   int stride, int pad,
                                                   float scale)
{
    KPOOL__FOR(i, total)
    {
        unsigned c = i % (unsigned)C, pos = i / (unsigned)C;
        unsigned b = pos / (unsigned)(OH * OW), p = pos - b * (unsigned)(OH * OW);
        int oh = (int)p / OW, ow = (int)p - oh * OW;
        const T *x = in + (size_t)b * H * W * C + c;
        kcuda__st(out + i, kpool__sum(x, (size_t)C, oh, ow, H, W, k, stride, pad) * scale);
    }
}

// dout: (B, OH, OW, C) -> din: (B, H, W, C), one thread per input element
template <typename T>
__global__ static void avgpool_nhwc_backward_kernel(T *din, const T *dout,
                                                    unsigned total, int C,
                                                    int H, int W, int OH,
                                                    int OW, int k, int stride,
                                                    int pad, float scale)
{
    KPOOL__FOR(i, total)
    {
        unsigned c = i % (unsigned)C, pos = i / (unsigned)C;
        unsigned b = pos / (unsigned)(H * W), p = pos - b * (unsigned)(H * W);
        int h = (int)p / W, w = (int)p - h * W;
        const T *dy = dout + (size_t)b * OH * OW * C + c;
        kcuda__st(din + i, kpool__gather(dy, (size_t)C, h, w, OH, OW, k, stride, pad, scale));
    }
}

// in: (B, HW, C) -> out: (B, C), one thread per (b, c)
template <typename T>
__global__ static void gap_nhwc_forward_kernel(T *out, const T *in,
                                               unsigned total, int C, int HW,
                                               float scale)
{
    KPOOL__FOR(i, total)
    {
        unsigned c = i % (unsigned)C, b = i / (unsigned)C;
        const T *x = in + (size_t)b * HW * C + c;
        float sum = 0.0f;
        for (int p = 0; p < HW; p++)
            sum += kcuda__ld(x[(size_t)p * C]);
        kcuda__st(out + i, sum * scale);
    }
}

// dout: (B, C) -> din: (B, HW, C)
template <typename T>
__global__ static void gap_nhwc_backward_kernel(T *din, const T *dout,
                                                unsigned total, int C, int HW,
                                                float scale)
{
    KPOOL__FOR(i, total)
    {
        unsigned c = i % (unsigned)C, b = i / (unsigned)C / (unsigned)HW;
        kcuda__st(din + i, kcuda__ld(dout[(size_t)b * C + c]) * scale);
    }
}

#define KPOOL__LAUNCH2D(kernel, rows, cols, ...)                               \
    do {                                                                       \
        kernel<<<kcuda__grid2d((rows), (cols), KCUDA__THREADS), KCUDA__THREADS, \
                 0, kcuda__ctx.stream>>>(__VA_ARGS__);                         \
        KCUDA__LAUNCHED(#kernel);                                              \
    } while (0)

#define KPOOL__LAUNCH1D(kernel, total, ...)                                    \
    do {                                                                       \
        kernel<<<kcuda__blocks((total), KCUDA__THREADS), KCUDA__THREADS, 0,    \
                 kcuda__ctx.stream>>>(__VA_ARGS__);                            \
        KCUDA__LAUNCHED(#kernel);                                              \
    } while (0)

/* Common checks: context ready, format known, sizes positive, and for NHWC
 * the flat element count within 32-bit indices. */
static int kpool__ok(const char *op, kern_format_t f, size_t elements)
{
    if (!kcuda__ready(op) || !kcuda__fmt_ok(f, op) || elements == 0)
        return 0;
    if (f.layout == KERN_NHWC && elements > 0xffffffffu) {
        kcuda__report(RT_ERANGE, __FILE__, __LINE__, op,
                      "NHWC pooling of more than 2^32 elements");
        return 0;
    }
    return 1;
}

/* A windowed pooling call's sizes: output size, the element count of the
 * side the kernel walks (out: forward; in: backward), planes, 1/(k*k).
 * 0 when there is nothing to do or the call is refused (reported). */
typedef struct {
    int OH, OW;
    size_t total;
    unsigned planes;
    float scale;
} kpool__dims_t;

static int kpool__setup(const char *op, kern_format_t f, int B, int C, int H,
                        int W, int k, int stride, int pad, int walk_input,
                        kpool__dims_t *d)
{
    d->OH = kpool__out_size(H, k, stride, pad);
    d->OW = kpool__out_size(W, k, stride, pad);
    if (B <= 0 || C <= 0 || H <= 0 || W <= 0 || d->OH <= 0 || d->OW <= 0)
        return 0;
    d->total = (size_t)B * C * (walk_input ? (size_t)H * W : (size_t)d->OH * d->OW);
    d->planes = (unsigned)B * (unsigned)C;
    d->scale = 1.0f / (float)(k * k);
    return kpool__ok(op, f, d->total);
}

// in: (B, C, H, W) -> out, argmax: (B, C, OH, OW), in format f
extern "C" void maxpool2d_forward_fmt_cuda(void *out, int32_t *argmax,
                                           const void *in, int B, int C, int H,
                                           int W, int k, int stride, int pad,
                                           kern_format_t f)
{
    kpool__dims_t d;
    if (!kpool__setup("maxpool2d_forward_fmt_cuda", f, B, C, H, W, k, stride,
                      pad, 0, &d))
        return;
    if (f.layout == KERN_NHWC)
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH1D(maxpool_nhwc_forward_kernel<T>,
                                          d.total, (T *)out, argmax,
                                          (const T *)in, (unsigned)d.total, C,
                                          H, W, d.OH, d.OW, k, stride, pad));
    else
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH2D(maxpool_forward_kernel<T>, d.planes,
                                          (size_t)d.OH * d.OW, (T *)out, argmax,
                                          (const T *)in, d.planes, H, W, d.OH,
                                          d.OW, k, stride, pad));
}

// dout, argmax: (B, C, OH, OW) -> din: (B, C, H, W), in format f
extern "C" void maxpool2d_backward_fmt_cuda(void *din, const void *dout,
                                            const int32_t *argmax, int B,
                                            int C, int H, int W, int OH,
                                            int OW, kern_format_t f)
{
    if (B <= 0 || C <= 0 || H <= 0 || W <= 0)
        return;
    size_t in_total = (size_t)B * C * H * W;
    if (!kpool__ok("maxpool2d_backward_fmt_cuda", f, in_total))
        return;
    RT_CUDA_CHECK(cudaMemsetAsync(din, 0, in_total * kern_dtype_size(f.dtype),
                                  kcuda__ctx.stream));
    if (OH <= 0 || OW <= 0)
        return;
    size_t total = (size_t)B * C * OH * OW;
    unsigned planes = (unsigned)B * (unsigned)C;
    if (f.layout == KERN_NHWC)
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH1D(maxpool_nhwc_backward_kernel<T>,
                                          total, (T *)din, (const T *)dout,
                                          argmax, (unsigned)total, C,
                                          (unsigned)(H * W),
                                          (unsigned)(OH * OW)));
    else
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH2D(maxpool_backward_kernel<T>, planes,
                                          (size_t)OH * OW, (T *)din,
                                          (const T *)dout, argmax, planes,
                                          (unsigned)(H * W),
                                          (unsigned)(OH * OW)));
}

// in: (B, C, H, W) -> out: (B, C, OH, OW), in format f
extern "C" void avgpool2d_forward_fmt_cuda(void *out, const void *in, int B,
                                           int C, int H, int W, int k,
                                           int stride, int pad,
                                           kern_format_t f)
{
    kpool__dims_t d;
    if (!kpool__setup("avgpool2d_forward_fmt_cuda", f, B, C, H, W, k, stride,
                      pad, 0, &d))
        return;
    if (f.layout == KERN_NHWC)
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH1D(avgpool_nhwc_forward_kernel<T>,
                                          d.total, (T *)out, (const T *)in,
                                          (unsigned)d.total, C, H, W, d.OH,
                                          d.OW, k, stride, pad, d.scale));
    else
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH2D(avgpool_forward_kernel<T>, d.planes,
                                          (size_t)d.OH * d.OW, (T *)out,
                                          (const T *)in, d.planes, H, W, d.OH,
                                          d.OW, k, stride, pad, d.scale));
}

// dout: (B, C, OH, OW) -> din: (B, C, H, W), in format f
extern "C" void avgpool2d_backward_fmt_cuda(void *din, const void *dout, int B,
                                            int C, int H, int W, int k,
                                            int stride, int pad,
                                            kern_format_t f)
{
    kpool__dims_t d;
    if (!kpool__setup("avgpool2d_backward_fmt_cuda", f, B, C, H, W, k, stride,
                      pad, 1, &d))
        return;
    if (f.layout == KERN_NHWC)
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH1D(avgpool_nhwc_backward_kernel<T>,
                                          d.total, (T *)din, (const T *)dout,
                                          (unsigned)d.total, C, H, W, d.OH,
                                          d.OW, k, stride, pad, d.scale));
    else
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH2D(avgpool_backward_kernel<T>, d.planes,
                                          (size_t)H * W, (T *)din,
                                          (const T *)dout, d.planes, H, W, d.OH,
                                          d.OW, k, stride, pad, d.scale));
}

// in: (B, C, HW) in format f -> out: (B, C)
extern "C" void global_avgpool_forward_fmt_cuda(void *out, const void *in,
                                                int B, int C, int HW,
                                                kern_format_t f)
{
    if (B <= 0 || C <= 0 || HW <= 0)
        return;
    size_t planes = (size_t)B * C;
    if (!kpool__ok("global_avgpool_forward_fmt_cuda", f, planes * HW))
        return;
    float scale = 1.0f / (float)HW;
    if (f.layout == KERN_NHWC)
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH1D(gap_nhwc_forward_kernel<T>, planes,
                                          (T *)out, (const T *)in,
                                          (unsigned)planes, C, HW, scale));
    else
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH1D(global_avgpool_forward_kernel<T>,
                                          planes, (T *)out, (const T *)in,
                                          planes, HW, scale));
}

// dout: (B, C) -> din: (B, C, HW) in format f
extern "C" void global_avgpool_backward_fmt_cuda(void *din, const void *dout,
                                                 int B, int C, int HW,
                                                 kern_format_t f)
{
    if (B <= 0 || C <= 0 || HW <= 0)
        return;
    size_t total = (size_t)B * C * HW;
    if (!kpool__ok("global_avgpool_backward_fmt_cuda", f, total))
        return;
    unsigned planes = (unsigned)B * (unsigned)C;
    float scale = 1.0f / (float)HW;
    if (f.layout == KERN_NHWC)
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH1D(gap_nhwc_backward_kernel<T>, total,
                                          (T *)din, (const T *)dout,
                                          (unsigned)total, C, HW, scale));
    else
        KCUDA__WITH_DTYPE(f.dtype, T,
                          KPOOL__LAUNCH2D(global_avgpool_backward_kernel<T>,
                                          planes, (size_t)HW, (T *)din,
                                          (const T *)dout, planes,
                                          (unsigned)HW, scale));
}

/* ---- the fp32 NCHW entry points (the kernels above, T = float) ------------- */

extern "C" void maxpool2d_forward_cuda(float *out, int32_t *argmax,
                                       const float *in, int B, int C, int H,
                                       int W, int k, int stride, int pad)
{
    if (!kcuda__ready("maxpool2d_forward_cuda"))
        return;
    maxpool2d_forward_fmt_cuda(out, argmax, in, B, C, H, W, k, stride, pad,
                               kcuda__f32());
}

extern "C" void maxpool2d_backward_cuda(float *din, const float *dout,
                                        const int32_t *argmax, int B, int C,
                                        int H, int W, int OH, int OW)
{
    if (!kcuda__ready("maxpool2d_backward_cuda"))
        return;
    maxpool2d_backward_fmt_cuda(din, dout, argmax, B, C, H, W, OH, OW,
                                kcuda__f32());
}

extern "C" void avgpool2d_forward_cuda(float *out, const float *in, int B,
                                       int C, int H, int W, int k, int stride,
                                       int pad)
{
    if (!kcuda__ready("avgpool2d_forward_cuda"))
        return;
    avgpool2d_forward_fmt_cuda(out, in, B, C, H, W, k, stride, pad,
                               kcuda__f32());
}

extern "C" void avgpool2d_backward_cuda(float *din, const float *dout, int B,
                                        int C, int H, int W, int k, int stride,
                                        int pad)
{
    if (!kcuda__ready("avgpool2d_backward_cuda"))
        return;
    avgpool2d_backward_fmt_cuda(din, dout, B, C, H, W, k, stride, pad,
                                kcuda__f32());
}

extern "C" void global_avgpool_forward_cuda(float *out, const float *in, int B,
                                            int C, int HW)
{
    if (!kcuda__ready("global_avgpool_forward_cuda"))
        return;
    global_avgpool_forward_fmt_cuda(out, in, B, C, HW, kcuda__f32());
}

extern "C" void global_avgpool_backward_cuda(float *din, const float *dout,
                                             int B, int C, int HW)
{
    if (!kcuda__ready("global_avgpool_backward_cuda"))
        return;
    global_avgpool_backward_fmt_cuda(din, dout, B, C, HW, kcuda__f32());
}
