/* ringtrain kernels (CUDA): conversions between storage formats.
 *
 * Every one is a permutation of a 3-D array (A, X, Y) -> (A, Y, X) with a
 * change of storage type on the way (load as float, round once on store):
 *   image batch  fp32 (B, C, HW)   <-> format f (B, HW, C) for NHWC
 *   weights      fp32 (OC, C, KHW)  -> the cast (OC, KHW, C) for NHWC
 *   their grads  (OC, KHW, C)       -> fp32 (OC, C, KHW)
 * and, with Y = 1, a plain type conversion in the same order (NCHW). One
 * thread per destination element, writes coalesced. The input batch is
 * converted once per step (synthetic data: once per run) and the weights
 * twice per layer and step, so these passes stay far below the
 * convolutions they feed. */
#include "cuda_internal.h"

// src: (A, X, Y) -> dst: (A, Y, X); rows r = (a, y), columns x
template <typename Tout, typename Tin>
__global__ static void convert_permute_kernel(Tout *dst, const Tin *src,
                                              unsigned A, unsigned X,
                                              unsigned Y)
{
    size_t rows = (size_t)A * Y;
    for (size_t r = blockIdx.y; r < rows; r += gridDim.y) {
        size_t a = r / Y, y = r - a * Y;
        const Tin *s = src + a * X * Y + y;
        Tout *d = dst + r * X;
        for (unsigned x = blockIdx.x * blockDim.x + threadIdx.x; x < X;
             x += gridDim.x * blockDim.x)
            kcuda__st(d + x, kcuda__ld(s[(size_t)x * Y]));
    }
}

template <typename Tout, typename Tin>
static void convert_permute(Tout *dst, const Tin *src, size_t A, size_t X,
                            size_t Y)
{
    if (A == 0 || X == 0 || Y == 0)
        return;
    convert_permute_kernel<Tout, Tin><<<kcuda__grid2d(A * Y, X, KCUDA__THREADS),
                                        KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
        dst, src, (unsigned)A, (unsigned)X, (unsigned)Y);
    KCUDA__LAUNCHED("convert_permute_kernel");
}

// src: fp32 (B, C, H, W) -> dst: (B, C, H, W) in format f
extern "C" void tensor_from_f32_fmt_cuda(void *dst, const float *src, int B,
                                         int C, int H, int W, kern_format_t f)
{
    if (!kcuda__ready("tensor_from_f32_fmt_cuda") ||
        !kcuda__fmt_ok(f, "tensor_from_f32_fmt_cuda") || B <= 0 || C <= 0 ||
        H <= 0 || W <= 0)
        return;
    size_t hw = (size_t)H * W;
    /* NCHW is (B, C*HW, 1) -> (B, 1, C*HW): the same order. */
    size_t X = f.layout == KERN_NHWC ? (size_t)C : (size_t)C * hw;
    size_t Y = f.layout == KERN_NHWC ? hw : 1;
    KCUDA__WITH_DTYPE(f.dtype, T,
                      convert_permute((T *)dst, src, (size_t)B, X, Y));
}

// src: (B, C, H, W) in format f -> dst: fp32 (B, C, H, W)
extern "C" void tensor_to_f32_fmt_cuda(float *dst, const void *src, int B,
                                       int C, int H, int W, kern_format_t f)
{
    if (!kcuda__ready("tensor_to_f32_fmt_cuda") ||
        !kcuda__fmt_ok(f, "tensor_to_f32_fmt_cuda") || B <= 0 || C <= 0 ||
        H <= 0 || W <= 0)
        return;
    size_t hw = (size_t)H * W;
    size_t X = f.layout == KERN_NHWC ? hw : (size_t)C * hw;
    size_t Y = f.layout == KERN_NHWC ? (size_t)C : 1;
    KCUDA__WITH_DTYPE(f.dtype, T,
                      convert_permute(dst, (const T *)src, (size_t)B, X, Y));
}

void *kcuda__weights_cast(const float *w, size_t OC, size_t C, size_t KHW,
                          kern_dtype_t dtype, int nhwc)
{
    size_t count = OC * C * KHW;
    if (count > kcuda__ctx.wscratch_count) {
        kcuda__report(RT_ERANGE, __FILE__, __LINE__, "kcuda__weights_cast",
                      "a layer's weights exceed kernels_cuda_weight_scratch()");
        return NULL;
    }
    void *dst = kcuda__ctx.wcast;
    size_t X = nhwc ? C : C * KHW, Y = nhwc ? KHW : 1;
    KCUDA__WITH_DTYPE(dtype, T, convert_permute((T *)dst, w, OC, X, Y));
    return dst;
}

void kcuda__weights_uncast(float *dw, const void *scratch, size_t OC, size_t C,
                           size_t KHW, kern_dtype_t dtype, int nhwc)
{
    size_t X = nhwc ? KHW : C * KHW, Y = nhwc ? C : 1;
    KCUDA__WITH_DTYPE(dtype, T,
                      convert_permute(dw, (const T *)scratch, OC, X, Y));
}
