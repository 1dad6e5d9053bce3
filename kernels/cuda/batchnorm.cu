/* ringtrain kernels (CUDA): batch normalisation over (B, HW) per channel.
 *
 * One block per channel does the whole op in one launch, as the CPU reference
 * does per thread: sum -> mean, centred sum of squares -> variance (two-pass,
 * so large means cannot cancel digits), then normalise; the channel's later
 * passes mostly hit L2. Each thread sums its elements in float and the block
 * combines those partial sums in double, in a fixed order, so the result is
 * deterministic and at least as accurate as the CPU's float-row sums.
 * Backward is likewise one block per channel: the two sums, then din.
 *
 * A channel with few elements per row (HW = 7x7 at batch 64) is walked as one
 * flat index so every thread has work; a large one row by row, which saves
 * the division. */
#include "cuda_internal.h"

#include <math.h>

/* Calls f(offset) for every element of channel c's (B, HW) slab, offsets
 * relative to the channel's first element, split across the block. */
template <typename F>
__device__ static inline void bn__for_channel(int B, int HW,
                                              size_t plane_stride, F f)
{
    if (HW >= (int)blockDim.x) {
        for (int b = 0; b < B; b++)
            for (int p = threadIdx.x; p < HW; p += blockDim.x)
                f((size_t)b * plane_stride + p);
    } else {
        unsigned total = (unsigned)B * (unsigned)HW;
        for (unsigned j = threadIdx.x; j < total; j += blockDim.x) {
            unsigned b = j / (unsigned)HW, p = j - b * (unsigned)HW;
            f((size_t)b * plane_stride + p);
        }
    }
}

// in/out: (B, C, HW); one block per channel
__global__ static void __launch_bounds__(KCUDA__REDUCE_THREADS)
bn_forward_train_kernel(
    float *out, float *save_mean, float *save_rstd, float *running_mean,
    float *running_var, const float *in, const float *gamma,
    const float *beta, int B, int C, int HW, float momentum, float eps)
{
    int c = blockIdx.x;
    size_t plane_stride = (size_t)C * HW;
    double count = (double)B * HW;
    const float *x = in + (size_t)c * HW;
    float *y = out + (size_t)c * HW;

    float part = 0.0f;
    bn__for_channel(B, HW, plane_stride, [&](size_t i) { part += x[i]; });
    float mean = (float)(kcuda__block_sum((double)part) / count);

    part = 0.0f;
    bn__for_channel(B, HW, plane_stride, [&](size_t i) {
        float d = x[i] - mean;
        part += d * d;
    });
    double sq = kcuda__block_sum((double)part);
    double var = sq / count;
    float rstd = (float)(1.0 / sqrt(var + (double)eps));
    float scale = gamma[c] * rstd;
    float shift = beta[c] - mean * scale;
    bn__for_channel(B, HW, plane_stride,
                    [&](size_t i) { y[i] = x[i] * scale + shift; });

    if (threadIdx.x == 0) {
        save_mean[c] = mean;
        save_rstd[c] = rstd;
        /* PyTorch's running variance is unbiased; with one value per channel
         * there is no unbiased estimate, so the biased one is used. */
        double unbiased = count > 1.0 ? sq / (count - 1.0) : var;
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] =
            (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
    }
}

// in/out: (B, C, HW); rows r = b*C + c
__global__ static void bn_forward_eval_kernel(float *out, const float *in,
                                              const float *gamma,
                                              const float *beta,
                                              const float *running_mean,
                                              const float *running_var, int C,
                                              unsigned rows, unsigned HW,
                                              float eps)
{
    for (unsigned r = blockIdx.y; r < rows; r += gridDim.y) {
        unsigned c = r % (unsigned)C;
        float scale = gamma[c] / sqrtf(running_var[c] + eps);
        float shift = beta[c] - running_mean[c] * scale;
        const float *x = in + (size_t)r * HW;
        float *y = out + (size_t)r * HW;
        for (unsigned p = blockIdx.x * blockDim.x + threadIdx.x; p < HW;
             p += gridDim.x * blockDim.x)
            y[p] = x[p] * scale + shift;
    }
}

/* xhat = (x - mean) * rstd, N = B * HW:
 *   dbeta = sum(dy), dgamma = sum(dy * xhat)
 *   din = a * dy + b * (x - mean) + c with the CPU's coefficients. */
__global__ static void __launch_bounds__(KCUDA__REDUCE_THREADS)
bn_backward_kernel(float *din, float *dgamma,
                                          float *dbeta, const float *dout,
                                          const float *in, const float *gamma,
                                          const float *save_mean,
                                          const float *save_rstd, int B, int C,
                                          int HW)
{
    int c = blockIdx.x;
    size_t plane_stride = (size_t)C * HW;
    double count = (double)B * HW;
    const float *x = in + (size_t)c * HW;
    const float *dy = dout + (size_t)c * HW;
    float mean = save_mean[c];
    float rstd = save_rstd[c];

    float s0 = 0.0f, s1 = 0.0f;
    bn__for_channel(B, HW, plane_stride, [&](size_t i) {
        s0 += dy[i];
        s1 += dy[i] * (x[i] - mean);
    });
    double sum_dy = kcuda__block_sum((double)s0);
    double sum_dy_xc = kcuda__block_sum((double)s1);
    if (threadIdx.x == 0) {
        dbeta[c] = (float)sum_dy;
        dgamma[c] = (float)(sum_dy_xc * rstd);
    }
    if (!din)
        return;
    float k = gamma[c] * rstd;
    float mean_dy = (float)(sum_dy / count);
    float mean_dy_xhat = (float)(sum_dy_xc * rstd / count);
    float a = k;
    float bcoef = -k * rstd * mean_dy_xhat;
    float ccoef = -k * mean_dy;
    float *dx = din + (size_t)c * HW;
    bn__for_channel(B, HW, plane_stride, [&](size_t i) {
        dx[i] = a * dy[i] + bcoef * (x[i] - mean) + ccoef;
    });
}

// in/out: (B, C, HW)  gamma, beta, running_*: (C)  save_mean, save_rstd: (C)
extern "C" void batchnorm_forward_train_cuda(
    float *out, float *save_mean, float *save_rstd, float *running_mean,
    float *running_var, const float *in, const float *gamma,
    const float *beta, int B, int C, int HW, float momentum, float eps)
{
    if (!kcuda__ready("batchnorm_forward_train_cuda") || C <= 0)
        return;
    bn_forward_train_kernel<<<C, KCUDA__REDUCE_THREADS, 0,
                              kcuda__ctx.stream>>>(
        out, save_mean, save_rstd, running_mean, running_var, in, gamma, beta,
        B, C, HW, momentum, eps);
    KCUDA__LAUNCHED("bn_forward_train_kernel");
}

// in/out: (B, C, HW)  gamma, beta, running_mean, running_var: (C)
extern "C" void batchnorm_forward_eval_cuda(float *out, const float *in,
                                            const float *gamma,
                                            const float *beta,
                                            const float *running_mean,
                                            const float *running_var, int B,
                                            int C, int HW, float eps)
{
    if (!kcuda__ready("batchnorm_forward_eval_cuda") || B <= 0 || C <= 0 ||
        HW <= 0)
        return;
    unsigned rows = (unsigned)B * (unsigned)C;
    bn_forward_eval_kernel<<<kcuda__grid2d(rows, (size_t)HW, KCUDA__THREADS),
                             KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
        out, in, gamma, beta, running_mean, running_var, C, rows, (unsigned)HW,
        eps);
    KCUDA__LAUNCHED("bn_forward_eval_kernel");
}

// dout, in: (B, C, HW) -> din: (B, C, HW) or NULL, dgamma, dbeta: (C)
extern "C" void batchnorm_backward_cuda(float *din, float *dgamma,
                                        float *dbeta, const float *dout,
                                        const float *in, const float *gamma,
                                        const float *save_mean,
                                        const float *save_rstd, int B, int C,
                                        int HW)
{
    if (!kcuda__ready("batchnorm_backward_cuda") || C <= 0)
        return;
    bn_backward_kernel<<<C, KCUDA__REDUCE_THREADS, 0, kcuda__ctx.stream>>>(
        din, dgamma, dbeta, dout, in, gamma, save_mean, save_rstd, B, C, HW);
    KCUDA__LAUNCHED("bn_backward_kernel");
}
