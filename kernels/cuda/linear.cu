/* ringtrain kernels (CUDA): fully connected layer, out = in * weight^T + bias,
 * as one cuBLAS GEMM each way (kcuda__sgemm, row-major), like the CPU
 * reference. The bias is broadcast into out first and the GEMM adds onto it
 * (beta = 1); its gradient is a column sum done in the CPU's row order.
 * fp16/bf16 activations: cublasGemmEx on a cast of the fp32 weights (tensor
 * cores, fp32 accumulation); the weight gradient comes out of the GEMM in
 * fp32 directly (half inputs, float output). */
#include "cuda_internal.h"

// out (B, OC) = bias broadcast
template <typename T>
__global__ static void linear_bias_fill_kernel(T *out, const float *bias,
                                               int B, int OC)
{
    size_t total = (size_t)B * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        kcuda__st(out + i, bias[i % OC]);
}

// dbias[o] = sum over rows b of dout[b, o]; one thread per column, rows in
// order (coalesced across threads, same summation order as the CPU).
template <typename T>
__global__ static void linear_bias_grad_kernel(float *dbias, const T *dout,
                                               int B, int OC)
{
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < OC;
         o += gridDim.x * blockDim.x) {
        float sum = 0.0f;
        for (int b = 0; b < B; b++)
            sum += kcuda__ld(dout[(size_t)b * OC + o]);
        dbias[o] = sum;
    }
}

template <typename T>
static void linear_bias_fill(T *out, const float *bias, int B, int OC)
{
    size_t total = (size_t)B * OC;
    linear_bias_fill_kernel<T><<<kcuda__blocks(total, KCUDA__THREADS),
                                 KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
        out, bias, B, OC);
    KCUDA__LAUNCHED("linear_bias_fill_kernel");
}

template <typename T>
static void linear_bias_grad(float *dbias, const T *dout, int B, int OC)
{
    linear_bias_grad_kernel<T><<<kcuda__blocks((size_t)OC, KCUDA__THREADS),
                                 KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
        dbias, dout, B, OC);
    KCUDA__LAUNCHED("linear_bias_grad_kernel");
}

// in: (B, IC)  weight: (OC, IC)  bias: (OC) or NULL  out: (B, OC)
extern "C" void linear_forward_cuda(float *out, const float *in,
                                    const float *weight, const float *bias,
                                    int B, int IC, int OC)
{
    if (!kcuda__ready("linear_forward_cuda") || B <= 0 || OC <= 0)
        return;
    float beta = 0.0f;
    if (bias) {
        linear_bias_fill(out, bias, B, OC);
        beta = 1.0f;
    }
    kcuda__sgemm(0, 1, B, OC, IC, 1.0f, in, IC, weight, IC, beta, out, OC);
}

// dout: (B, OC) -> din: (B, IC) or NULL, dweight: (OC, IC), dbias: (OC) or NULL
extern "C" void linear_backward_cuda(float *din, float *dweight, float *dbias,
                                     const float *dout, const float *in,
                                     const float *weight, int B, int IC,
                                     int OC)
{
    if (!kcuda__ready("linear_backward_cuda"))
        return;
    if (din)
        kcuda__sgemm(0, 0, B, IC, OC, 1.0f, dout, OC, weight, IC, 0.0f, din,
                     IC);
    kcuda__sgemm(1, 0, OC, IC, B, 1.0f, dout, OC, in, IC, 0.0f, dweight, IC);
    if (dbias && OC > 0)
        linear_bias_grad(dbias, dout, B, OC);
}

// in: (B, IC)  weight: (OC, IC) fp32  bias: (OC) fp32 or NULL
// -> out: (B, OC); in and out in format f
extern "C" void linear_forward_fmt_cuda(void *out, const void *in,
                                        const float *weight, const float *bias,
                                        int B, int IC, int OC, kern_format_t f)
{
    if (!kcuda__fmt_ok(f, "linear_forward_fmt_cuda"))
        return;
    if (f.dtype == KERN_F32) {
        linear_forward_cuda((float *)out, (const float *)in, weight, bias, B,
                            IC, OC);
        return;
    }
    if (!kcuda__ready("linear_forward_fmt_cuda") || B <= 0 || OC <= 0)
        return;
    const void *w = kcuda__weights_cast(weight, (size_t)OC, (size_t)IC, 1,
                                        f.dtype, 0);
    if (!w)
        return;
    float beta = 0.0f;
    if (bias) {
        KCUDA__WITH_DTYPE(f.dtype, T, linear_bias_fill((T *)out, bias, B, OC));
        beta = 1.0f;
    }
    kcuda__gemm_ex(0, 1, B, OC, IC, in, f.dtype, IC, w, f.dtype, IC, beta, out,
                   f.dtype, OC);
}

// dout: (B, OC) -> din: (B, IC) or NULL (both format f), dweight: (OC, IC)
// fp32, dbias: (OC) fp32 or NULL
extern "C" void linear_backward_fmt_cuda(void *din, float *dweight,
                                         float *dbias, const void *dout,
                                         const void *in, const float *weight,
                                         int B, int IC, int OC,
                                         kern_format_t f)
{
    if (!kcuda__fmt_ok(f, "linear_backward_fmt_cuda"))
        return;
    if (f.dtype == KERN_F32) {
        linear_backward_cuda((float *)din, dweight, dbias, (const float *)dout,
                             (const float *)in, weight, B, IC, OC);
        return;
    }
    if (!kcuda__ready("linear_backward_fmt_cuda") || OC <= 0 || IC <= 0)
        return;
    if (B <= 0) {
        kernels_cuda_zero(dweight, (size_t)OC * IC * sizeof(float));
        if (dbias)
            kernels_cuda_zero(dbias, (size_t)OC * sizeof(float));
        return;
    }
    if (din) {
        const void *w = kcuda__weights_cast(weight, (size_t)OC, (size_t)IC, 1,
                                            f.dtype, 0);
        if (!w)
            return;
        kcuda__gemm_ex(0, 0, B, IC, OC, dout, f.dtype, OC, w, f.dtype, IC,
                       0.0f, din, f.dtype, IC);
    }
    kcuda__gemm_ex(1, 0, OC, IC, B, dout, f.dtype, OC, in, f.dtype, IC, 0.0f,
                   dweight, KERN_F32, IC);
    if (dbias)
        KCUDA__WITH_DTYPE(f.dtype, T,
                          linear_bias_grad(dbias, (const T *)dout, B, OC));
}
