/* ringtrain kernels (CPU): batch normalisation over (B, HW) per channel.
 *
 * Channels are independent and split across threads. Statistics are exact
 * two-pass ones per row (mean, then centred sum of squares, while the row is
 * in L1), combined across the B rows of a channel with Chan et al.'s formula
 * in double; the output pass follows. That reads the tensor about twice and
 * writes it once. Backward: one pass for sum(dy) and sum(dy * (x - mean)),
 * one for din. */
#include "kernels.h"
#include "cpu_internal.h"

#include <math.h>
#include <string.h>

/* Row loops on 16-float vectors (GCC/Clang vector types), each compiled for
 * AVX-512, AVX2 and the baseline and picked at load time (target_clones):
 * the build targets plain x86-64, whose 4-wide SSE made these loops
 * instruction-bound. Reductions keep two vector accumulators so adds do not
 * wait on each other. */
typedef float bn__v16 __attribute__((vector_size(64)));
#define BN__CLONES KERN__CLONES

/* Loads/stores through memcpy (no alignment assumed) and a horizontal sum,
 * as macros: a function taking or returning a 64-byte vector would have an
 * ABI that differs between the clones. */
#define BN__LOAD(p)                                                            \
    __extension__({                                                            \
        bn__v16 v_;                                                            \
        memcpy(&v_, (p), sizeof v_);                                           \
        v_;                                                                    \
    })
#define BN__STORE(p, v)                                                        \
    do {                                                                       \
        bn__v16 v_ = (v);                                                      \
        memcpy((p), &v_, sizeof v_);                                           \
    } while (0)
#define BN__HSUM(a, out)                                                       \
    do {                                                                       \
        bn__v16 a_ = (a);                                                      \
        float s_ = 0.0f;                                                       \
        for (int l_ = 0; l_ < 16; l_++)                                        \
            s_ += a_[l_];                                                      \
        (out) = s_;                                                            \
    } while (0)

BN__CLONES static float bn__row_sum(const float *x, int count)
{
    bn__v16 a0 = {0}, a1 = {0};
    int i = 0;
    for (; i + 32 <= count; i += 32) {
        a0 += BN__LOAD(x + i);
        a1 += BN__LOAD(x + i + 16);
    }
    float s;
    BN__HSUM(a0 + a1, s);
    for (; i < count; i++)
        s += x[i];
    return s;
}

BN__CLONES static float bn__row_sq_dev(const float *x, float mean, int count)
{
    bn__v16 a0 = {0}, a1 = {0};
    int i = 0;
    for (; i + 32 <= count; i += 32) {
        bn__v16 d0 = BN__LOAD(x + i) - mean, d1 = BN__LOAD(x + i + 16) - mean;
        a0 += d0 * d0;
        a1 += d1 * d1;
    }
    float s;
    BN__HSUM(a0 + a1, s);
    for (; i < count; i++) {
        float d = x[i] - mean;
        s += d * d;
    }
    return s;
}

/* sum(dy) and sum(dy * (x - mean)) over a row. */
BN__CLONES static void bn__row_grad_sums(const float *x, const float *dy,
                                         float mean, int count,
                                         float *sum_dy, float *sum_dy_xc)
{
    bn__v16 a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    int i = 0;
    for (; i + 32 <= count; i += 32) {
        bn__v16 g0 = BN__LOAD(dy + i), g1 = BN__LOAD(dy + i + 16);
        a0 += g0;
        a1 += g1;
        b0 += g0 * (BN__LOAD(x + i) - mean);
        b1 += g1 * (BN__LOAD(x + i + 16) - mean);
    }
    float s0, s1;
    BN__HSUM(a0 + a1, s0);
    BN__HSUM(b0 + b1, s1);
    for (; i < count; i++) {
        s0 += dy[i];
        s1 += dy[i] * (x[i] - mean);
    }
    *sum_dy = s0;
    *sum_dy_xc = s1;
}

/* y = x * scale + shift */
BN__CLONES static void bn__row_affine(float *y, const float *x, float scale,
                                      float shift, int count)
{
    int i = 0;
    for (; i + 16 <= count; i += 16)
        BN__STORE(y + i, BN__LOAD(x + i) * scale + shift);
    for (; i < count; i++)
        y[i] = x[i] * scale + shift;
}

/* dx = a * dy + b * (x - mean) + c */
BN__CLONES static void bn__row_din(float *dx, const float *dy, const float *x,
                                   float mean, float a, float b, float c,
                                   int count)
{
    int i = 0;
    for (; i + 16 <= count; i += 16)
        BN__STORE(dx + i, a * BN__LOAD(dy + i) +
                              b * (BN__LOAD(x + i) - mean) + c);
    for (; i < count; i++)
        dx[i] = a * dy[i] + b * (x[i] - mean) + c;
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
        /* Each row's mean and centred sum of squares while the row is in
         * L1 (two passes over the row), combined across rows with Chan et
         * al.'s pairwise formula: M2 = sum(M2_b) + sum(n (mean_b - mean)^2).
         * Going back over all B rows of a channel for the second pass missed
         * L2: rows lie C*HW apart, a stride that maps them onto the same
         * cache sets. */
        double sum = 0.0, m2 = 0.0, sum_sq_means = 0.0;
        for (int b = 0; b < B; b++) {
            const float *row = x + b * plane_stride;
            float row_mean = bn__row_sum(row, HW) / (float)HW;
            m2 += bn__row_sq_dev(row, row_mean, HW);
            sum += row_mean;
            sum_sq_means += (double)row_mean * row_mean;
        }
        /* sum over rows of HW * (mean_b - mean)^2, mean = sum / B */
        double mean_d = sum / B;
        double between = HW * (sum_sq_means - B * mean_d * mean_d);
        double sq = m2 + (between > 0.0 ? between : 0.0);
        float mean = (float)mean_d;
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
        for (int b = 0; b < B; b++)
            bn__row_din(dx + b * plane_stride, dy + b * plane_stride,
                        x + b * plane_stride, mean, a, bcoef, ccoef, HW);
    }
}
