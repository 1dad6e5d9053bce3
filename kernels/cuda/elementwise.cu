/* ringtrain kernels (CUDA): ReLU and the residual add. Memory-bound
 * grid-stride loops; each element is independent, so results equal the CPU
 * reference bit for bit. */
#include "cuda_internal.h"

#define KCUDA__FOR_EACH(i, count)                                              \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x;             \
         i < (count); i += (size_t)gridDim.x * blockDim.x)

__global__ static void relu_forward_kernel(float *out, const float *in,
                                           size_t count)
{
    KCUDA__FOR_EACH(i, count)
    {
        float v = in[i];
        out[i] = v > 0.0f ? v : 0.0f;
    }
}

__global__ static void relu_backward_kernel(float *din, const float *dout,
                                            const float *out, size_t count)
{
    KCUDA__FOR_EACH(i, count)
    {
        din[i] = out[i] > 0.0f ? dout[i] : 0.0f;
    }
}

__global__ static void add_forward_kernel(float *out, const float *a,
                                          const float *b, size_t count)
{
    KCUDA__FOR_EACH(i, count)
    {
        out[i] = a[i] + b[i];
    }
}

__global__ static void add_inplace_kernel(float *acc, const float *x,
                                          size_t count)
{
    KCUDA__FOR_EACH(i, count)
    {
        acc[i] += x[i];
    }
}

#define KCUDA__ELEMENTWISE(kernel, count, ...)                                 \
    do {                                                                       \
        if (!kcuda__ready(#kernel) || (count) == 0)                            \
            return;                                                            \
        kernel<<<kcuda__blocks((count), KCUDA__THREADS), KCUDA__THREADS, 0,    \
                 kcuda__ctx.stream>>>(__VA_ARGS__);                            \
        KCUDA__LAUNCHED(#kernel);                                              \
    } while (0)

// in, out: (count)
extern "C" void relu_forward_cuda(float *out, const float *in, size_t count)
{
    KCUDA__ELEMENTWISE(relu_forward_kernel, count, out, in, count);
}

// dout, out: (count) -> din: (count)
extern "C" void relu_backward_cuda(float *din, const float *dout,
                                   const float *out, size_t count)
{
    KCUDA__ELEMENTWISE(relu_backward_kernel, count, din, dout, out, count);
}

// a, b: (count) -> out: (count)
extern "C" void add_forward_cuda(float *out, const float *a, const float *b,
                                 size_t count)
{
    KCUDA__ELEMENTWISE(add_forward_kernel, count, out, a, b, count);
}

// acc += x, both (count)
extern "C" void add_inplace_cuda(float *acc, const float *x, size_t count)
{
    KCUDA__ELEMENTWISE(add_inplace_kernel, count, acc, x, count);
}
