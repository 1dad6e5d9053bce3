/* ringtrain kernels (CUDA): fully connected layer, out = in * weight^T + bias,
 * as one cuBLAS GEMM each way (kcuda__sgemm, row-major), like the CPU
 * reference. The bias is broadcast into out first and the GEMM adds onto it
 * (beta = 1); its gradient is a column sum done in the CPU's row order. */
#include "cuda_internal.h"

// out (B, OC) = bias broadcast
__global__ static void linear_bias_fill_kernel(float *out, const float *bias,
                                               int B, int OC)
{
    size_t total = (size_t)B * OC;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = bias[i % OC];
}

// dbias[o] = sum over rows b of dout[b, o]; one thread per column, rows in
// order (coalesced across threads, same summation order as the CPU).
__global__ static void linear_bias_grad_kernel(float *dbias, const float *dout,
                                               int B, int OC)
{
    for (int o = blockIdx.x * blockDim.x + threadIdx.x; o < OC;
         o += gridDim.x * blockDim.x) {
        float sum = 0.0f;
        for (int b = 0; b < B; b++)
            sum += dout[(size_t)b * OC + o];
        dbias[o] = sum;
    }
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
        size_t total = (size_t)B * OC;
        linear_bias_fill_kernel<<<kcuda__blocks(total, KCUDA__THREADS),
                                  KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
            out, bias, B, OC);
        KCUDA__LAUNCHED("linear_bias_fill_kernel");
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
    if (dbias && OC > 0) {
        linear_bias_grad_kernel<<<kcuda__blocks((size_t)OC, KCUDA__THREADS),
                                  KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
            dbias, dout, B, OC);
        KCUDA__LAUNCHED("linear_bias_grad_kernel");
    }
}
