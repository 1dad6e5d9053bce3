/* ringtrain kernels (CUDA): ReLU and the residual add. Memory-bound
 * grid-stride loops over any storage type (T: float, __half,
 * __nv_bfloat16; computed in float); each element is independent, so the
 * fp32 results equal the CPU reference bit for bit. */
#include "cuda_internal.h"

#define KCUDA__FOR_EACH(i, count)                                              \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;             \
         i < (count); i += (size_t)gridDim.x * blockDim.x)

template <typename T>
__global__ static void relu_forward_kernel(T *out, const T *in, size_t count)
{
    KCUDA__FOR_EACH(i, count)
    {
        float v = kcuda__ld(in[i]);
        kcuda__st(out + i, v > 0.0f ? v : 0.0f);
    }
}

template <typename T>
__global__ static void relu_backward_kernel(T *din, const T *dout,
                                            const T *out, size_t count)
{
    KCUDA__FOR_EACH(i, count)
    {
        kcuda__st(din + i, kcuda__ld(out[i]) > 0.0f ? kcuda__ld(dout[i]) : 0.0f);
    }
}

template <typename T>
__global__ static void add_forward_kernel(T *out, const T *a, const T *b,
                                          size_t count)
{
    KCUDA__FOR_EACH(i, count)
    {
        kcuda__st(out + i, kcuda__ld(a[i]) + kcuda__ld(b[i]));
    }
}

template <typename T>
__global__ static void add_inplace_kernel(T *acc, const T *x, size_t count)
{
    KCUDA__FOR_EACH(i, count)
    {
        kcuda__st(acc + i, kcuda__ld(acc[i]) + kcuda__ld(x[i]));
    }
}

#define KCUDA__ELEMENTWISE(kernel, f, count, ...)                              \
    do {                                                                       \
        if (!kcuda__ready(#kernel) || !kcuda__fmt_ok(f, #kernel) ||            \
            (count) == 0)                                                      \
            return;                                                            \
        KCUDA__WITH_DTYPE(f.dtype, T,                                          \
                          kernel<T><<<kcuda__blocks((count), KCUDA__THREADS),  \
                                      KCUDA__THREADS, 0,                       \
                                      kcuda__ctx.stream>>>(__VA_ARGS__));      \
        KCUDA__LAUNCHED(#kernel);                                              \
    } while (0)

// in, out: (count)
extern "C" void relu_forward_fmt_cuda(void *out, const void *in, size_t count,
                                      kern_format_t f)
{
    KCUDA__ELEMENTWISE(relu_forward_kernel, f, count, (T *)out, (const T *)in,
                       count);
}

// dout, out: (count) -> din: (count)
extern "C" void relu_backward_fmt_cuda(void *din, const void *dout,
                                       const void *out, size_t count,
                                       kern_format_t f)
{
    KCUDA__ELEMENTWISE(relu_backward_kernel, f, count, (T *)din,
                       (const T *)dout, (const T *)out, count);
}

// a, b: (count) -> out: (count)
extern "C" void add_forward_fmt_cuda(void *out, const void *a, const void *b,
                                     size_t count, kern_format_t f)
{
    KCUDA__ELEMENTWISE(add_forward_kernel, f, count, (T *)out, (const T *)a,
                       (const T *)b, count);
}

// acc += x, both (count)
extern "C" void add_inplace_fmt_cuda(void *acc, const void *x, size_t count,
                                     kern_format_t f)
{
    KCUDA__ELEMENTWISE(add_inplace_kernel, f, count, (T *)acc, (const T *)x,
                       count);
}

extern "C" void relu_forward_cuda(float *out, const float *in, size_t count)
{
    relu_forward_fmt_cuda(out, in, count, kcuda__f32());
}

extern "C" void relu_backward_cuda(float *din, const float *dout,
                                   const float *out, size_t count)
{
    relu_backward_fmt_cuda(din, dout, out, count, kcuda__f32());
}

extern "C" void add_forward_cuda(float *out, const float *a, const float *b,
                                 size_t count)
{
    add_forward_fmt_cuda(out, a, b, count, kcuda__f32());
}

extern "C" void add_inplace_cuda(float *acc, const float *x, size_t count)
{
    add_inplace_fmt_cuda(acc, x, count, kcuda__f32());
}
