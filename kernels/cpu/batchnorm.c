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
#include <string.h>

/* Row reductions keep four independent vector accumulators: with one, each
 * add waits for the previous (3-4 cycles), which made these passes
 * latency-bound rather than memory-bound. GCC/Clang vector types: SSE on
 * x86-64, NEON elsewhere, plain code otherwise. */
typedef float bn__v4 __attribute__((vector_size(16)));

static inline bn__v4 bn__load(const float *p)
{
    bn__v4 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline float bn__hsum(bn__v4 a0, bn__v4 a1, bn__v4 a2, bn__v4 a3)
{
    bn__v4 a = (a0 + a1) + (a2 + a3);
    return (a[0] + a[1]) + (a[2] + a[3]);
}

static inline float bn__row_sum(const float *x, int count)
{
    bn__v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    int i = 0;
    for (; i + 16 <= count; i += 16) {
        a0 += bn__load(x + i);
        a1 += bn__load(x + i + 4);
        a2 += bn__load(x + i + 8);
        a3 += bn__load(x + i + 12);
    }
    float s = bn__hsum(a0, a1, a2, a3);
    for (; i < count; i++)
        s += x[i];
    return s;
}

static inline float bn__row_sq_dev(const float *x, float mean, int count)
{
    bn__v4 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
    bn__v4 m = {mean, mean, mean, mean};
    int i = 0;
    for (; i + 16 <= count; i += 16) {
        bn__v4 d0 = bn__load(x + i) - m, d1 = bn__load(x + i + 4) - m;
        bn__v4 d2 = bn__load(x + i + 8) - m, d3 = bn__load(x + i + 12) - m;
        a0 += d0 * d0;
        a1 += d1 * d1;
        a2 += d2 * d2;
        a3 += d3 * d3;
    }
    float s = bn__hsum(a0, a1, a2, a3);
    for (; i < count; i++) {
        float d = x[i] - mean;
        s += d * d;
    }
    return s;
}

/* sum(dy) and sum(dy * (x - mean)) over a row. */
static inline void bn__row_grad_sums(const float *x, const float *dy,
                                     float mean, int count, float *sum_dy,
                                     float *sum_dy_xc)
{
    bn__v4 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    bn__v4 m = {mean, mean, mean, mean};
    int i = 0;
    for (; i + 8 <= count; i += 8) {
        bn__v4 g0 = bn__load(dy + i), g1 = bn__load(dy + i + 4);
        a0 += g0;
        a1 += g1;
        b0 += g0 * (bn__load(x + i) - m);
        b1 += g1 * (bn__load(x + i + 4) - m);
    }
    bn__v4 z = {0};
    float s0 = bn__hsum(a0, a1, z, z), s1 = bn__hsum(b0, b1, z, z);
    for (; i < count; i++) {
        s0 += dy[i];
        s1 += dy[i] * (x[i] - mean);
    }
    *sum_dy = s0;
    *sum_dy_xc = s1;
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
            float s0, s1;
            bn__row_grad_sums(x + b * plane_stride, dy + b * plane_stride,
                              mean, HW, &s0, &s1);
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
