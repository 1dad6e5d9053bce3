/* ringtrain kernels (CPU): batch normalisation over (B, HW) per channel.
 *
 * Channels are independent and split across threads. Each channel's B rows
 * of HW values are walked in consecutive passes (sum, centred sum of squares,
 * normalise): the first pass brings the channel into L2 (~400 KB for
 * ResNet-50's 56x56 stage at batch 32) and the later passes hit it there, so
 * the whole op costs about one read and one write of the tensor. Two-pass
 * variance (centred) keeps float rows accurate; row sums are float, vectorised,
 * and accumulate into double across rows. */
#include "kernels.h"
#include "cpu_internal.h"

#include <math.h>

static inline float bn__row_sum(const float *x, int count)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < count; i++)
        sum += x[i];
    return sum;
}

static inline float bn__row_sq_dev(const float *x, float mean, int count)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int i = 0; i < count; i++) {
        float d = x[i] - mean;
        sum += d * d;
    }
    return sum;
}

static inline void bn__row_affine(float *y, const float *x, float scale,
                                  float shift, int count)
{
#pragma omp simd
    for (int i = 0; i < count; i++)
        y[i] = x[i] * scale + shift;
}

// in/out: (B, C, HW)  gamma, beta, running_*: (C)  save_mean, save_rstd: (C)
void batchnorm_forward_train_cpu(float *out, float *save_mean, float *save_rstd,
                                 float *running_mean, float *running_var,
                                 const float *in, const float *gamma,
                                 const float *beta, int B, int C, int HW,
                                 float momentum, float eps)
{
    size_t plane_stride = (size_t)C * HW;
    double count = (double)B * HW;
    int threads = kern__threads_for((size_t)B * plane_stride);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int c = 0; c < C; c++) {
        const float *x = in + (size_t)c * HW;
        float *y = out + (size_t)c * HW;
        double sum = 0.0;
        for (int b = 0; b < B; b++)
            sum += bn__row_sum(x + b * plane_stride, HW);
        float mean = (float)(sum / count);
        double sq = 0.0;
        for (int b = 0; b < B; b++)
            sq += bn__row_sq_dev(x + b * plane_stride, mean, HW);
        double var = sq / count;
        float rstd = (float)(1.0 / sqrt(var + (double)eps));
        float scale = gamma[c] * rstd;
        float shift = beta[c] - mean * scale;
        for (int b = 0; b < B; b++)
            bn__row_affine(y + b * plane_stride, x + b * plane_stride, scale,
                           shift, HW);
        save_mean[c] = mean;
        save_rstd[c] = rstd;
        /* PyTorch updates the running variance with the unbiased estimate;
         * with a single value per channel there is none, so use the biased. */
        double unbiased = count > 1.0 ? sq / (count - 1.0) : var;
        running_mean[c] = (1.0f - momentum) * running_mean[c] + momentum * mean;
        running_var[c] =
            (1.0f - momentum) * running_var[c] + momentum * (float)unbiased;
    }
}

// in/out: (B, C, HW)  gamma, beta, running_mean, running_var: (C)
void batchnorm_forward_eval_cpu(float *out, const float *in,
                                const float *gamma, const float *beta,
                                const float *running_mean,
                                const float *running_var, int B, int C, int HW,
                                float eps)
{
    long rows = (long)B * C;
    int threads = kern__threads_for((size_t)rows * HW);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long r = 0; r < rows; r++) {
        int c = (int)(r % C);
        float scale =
            gamma[c] / sqrtf(running_var[c] + eps);
        float shift = beta[c] - running_mean[c] * scale;
        bn__row_affine(out + (size_t)r * HW, in + (size_t)r * HW, scale, shift,
                       HW);
    }
}

/* xhat = (x - mean) * rstd, N = B * HW:
 *   dbeta = sum(dy), dgamma = sum(dy * xhat)
 *   din = gamma * rstd * (dy - dbeta / N - xhat * dgamma / N)
 * rewritten as din = a * dy + b * (x - mean) + c so the last pass is a short
 * FMA chain (x - mean, not x, so a large mean cannot cancel digits away). */
void batchnorm_backward_cpu(float *din, float *dgamma, float *dbeta,
                            const float *dout, const float *in,
                            const float *gamma, const float *save_mean,
                            const float *save_rstd, int B, int C, int HW)
{
    size_t plane_stride = (size_t)C * HW;
    double count = (double)B * HW;
    int threads = kern__threads_for((size_t)B * plane_stride);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int c = 0; c < C; c++) {
        const float *x = in + (size_t)c * HW;
        const float *dy = dout + (size_t)c * HW;
        float mean = save_mean[c];
        float rstd = save_rstd[c];
        double sum_dy = 0.0, sum_dy_xc = 0.0;
        for (int b = 0; b < B; b++) {
            const float *xr = x + b * plane_stride;
            const float *dyr = dy + b * plane_stride;
            float s0 = 0.0f, s1 = 0.0f;
#pragma omp simd reduction(+ : s0, s1)
            for (int i = 0; i < HW; i++) {
                s0 += dyr[i];
                s1 += dyr[i] * (xr[i] - mean);
            }
            sum_dy += s0;
            sum_dy_xc += s1;
        }
        float db = (float)sum_dy;
        float dg = (float)(sum_dy_xc * rstd);
        dbeta[c] = db;
        dgamma[c] = dg;
        if (!din)
            continue;
        float k = gamma[c] * rstd;
        float mean_dy = (float)(sum_dy / count);
        float mean_dy_xhat = (float)(sum_dy_xc * rstd / count);
        float a = k;
        float bcoef = -k * rstd * mean_dy_xhat;
        float ccoef = -k * mean_dy;
        float *dx = din + (size_t)c * HW;
        for (int b = 0; b < B; b++) {
            const float *xr = x + b * plane_stride;
            const float *dyr = dy + b * plane_stride;
            float *dxr = dx + b * plane_stride;
#pragma omp simd
            for (int i = 0; i < HW; i++)
                dxr[i] = a * dyr[i] + bcoef * (xr[i] - mean) + ccoef;
        }
    }
}
