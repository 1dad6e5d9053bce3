/* ringtrain kernels (CPU): softmax cross-entropy and accuracy. Numerically
 * stable: every row is shifted by its maximum before exp(), and the loss is
 * log(sum) - (logit[label] - max), so large logits never overflow. */
#include "kernels.h"
#include "cpu_internal.h"

#include <math.h>

// logits: (B, K), labels: (B) -> probs: (B, K); returns the mean loss
float softmax_cross_entropy_forward_cpu(float *probs, const float *logits,
                                        const int32_t *labels, int B, int K)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float *x = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        float max = x[0];
        for (int k = 1; k < K; k++)
            max = x[k] > max ? x[k] : max;
        float sum = 0.0f;
        for (int k = 0; k < K; k++) {
            p[k] = expf(x[k] - max);
            sum += p[k];
        }
        float inv = 1.0f / sum;
        for (int k = 0; k < K; k++)
            p[k] *= inv;
        total += log((double)sum) - ((double)x[labels[b]] - (double)max);
    }
    return B > 0 ? (float)(total / B) : 0.0f;
}

// probs: (B, K), labels: (B) -> dlogits: (B, K)
void softmax_cross_entropy_backward_cpu(float *dlogits, const float *probs,
                                        const int32_t *labels, int B, int K)
{
    float scale = B > 0 ? 1.0f / (float)B : 0.0f;
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * K;
        float *d = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++)
            d[k] = p[k] * scale;
        d[labels[b]] -= scale;
    }
}

// logits: (B, K), labels: (B); ties go to the first maximum
int accuracy_count_cpu(const float *logits, const int32_t *labels, int B,
                       int K)
{
    int correct = 0;
    for (int b = 0; b < B; b++) {
        const float *x = logits + (size_t)b * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (x[k] > x[best])
                best = k;
        correct += best == labels[b];
    }
    return correct;
}
