/* ringtrain kernels (CUDA): softmax cross-entropy and accuracy.
 *
 * One block per row: the row's maximum, then exp(x - max) and its sum, then
 * the normalised probabilities and the row's loss
 * log(sum) - (x[label] - max) (in double, as the CPU), kept in scratch; a
 * second one-block kernel adds the rows in a fixed order and divides by B, so
 * the loss is deterministic. The plain entry points copy the result back and
 * wait (the same signature as the CPU reference); the _async ones leave it in
 * device memory for the caller to fetch when it wants. */
#include "cuda_internal.h"

#include <math.h>

#define KLOSS__THREADS 256

/* Block-wide maximum (fmaxf: NaN is ignored unless all are NaN). */
__device__ static inline float kloss__block_max(float v)
{
    __shared__ float part[KLOSS__THREADS];
    unsigned t = threadIdx.x;
    part[t] = v;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half)
            part[t] = fmaxf(part[t], part[t + half]);
        __syncthreads();
    }
    float result = part[0];
    __syncthreads();
    return result;
}

// logits: (B, K), labels: (B) -> probs: (B, K), row_loss: (B)
template <typename T>
__global__ static void softmax_ce_rows_kernel(float *probs, double *row_loss,
                                              const T *logits,
                                              const int32_t *labels, int K)
{
    int b = blockIdx.x;
    const T *x = logits + (size_t)b * K;
    float *p = probs + (size_t)b * K;
    float m = -INFINITY;
    for (int k = threadIdx.x; k < K; k += blockDim.x)
        m = fmaxf(m, kcuda__ld(x[k]));
    float max = kloss__block_max(m);
    float part = 0.0f;
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        float e = expf(kcuda__ld(x[k]) - max);
        p[k] = e;
        part += e;
    }
    float sum = (float)kcuda__block_sum((double)part);
    float inv = 1.0f / sum;
    /* Each thread rescales the entries it wrote itself. */
    for (int k = threadIdx.x; k < K; k += blockDim.x)
        p[k] *= inv;
    if (threadIdx.x == 0)
        row_loss[b] = log((double)sum) -
                      ((double)kcuda__ld(x[labels[b]]) - (double)max);
}

// row_loss: (B) -> loss: mean over rows (one block)
__global__ static void __launch_bounds__(KCUDA__REDUCE_THREADS)
softmax_ce_mean_kernel(float *loss,
                                              const double *row_loss, int B)
{
    double part = 0.0;
    for (int b = threadIdx.x; b < B; b += blockDim.x)
        part += row_loss[b];
    double total = kcuda__block_sum(part);
    if (threadIdx.x == 0)
        *loss = B > 0 ? (float)(total / B) : 0.0f;
}

// probs: (B, K), labels: (B) -> dlogits: (B, K) times *loss_scale (when
// not NULL); rows walk blockIdx.y
template <typename T>
__global__ static void softmax_ce_backward_kernel(T *dlogits,
                                                  const float *probs,
                                                  const int32_t *labels,
                                                  unsigned B, unsigned K,
                                                  float scale,
                                                  const float *loss_scale)
{
    float ls = loss_scale ? *loss_scale : 1.0f;
    for (unsigned b = blockIdx.y; b < B; b += gridDim.y) {
        unsigned label = (unsigned)labels[b];
        for (unsigned k = blockIdx.x * blockDim.x + threadIdx.x; k < K;
             k += gridDim.x * blockDim.x) {
            /* Two roundings, as the CPU: no fused multiply-subtract. The
             * loss scale (a power of two) then scales exactly. */
            float d = __fmul_rn(probs[(size_t)b * K + k], scale);
            if (k == label)
                d -= scale;
            kcuda__st(dlogits + (size_t)b * K + k, __fmul_rn(d, ls));
        }
    }
}

/* Row argmax with the CPU's rule (first maximum; NaN never wins, except that
 * a NaN in column 0 keeps column 0), and one count per correct row. */
template <typename T>
__global__ static void accuracy_kernel(int32_t *count, const T *logits,
                                       const int32_t *labels, int K)
{
    __shared__ float best_v[KLOSS__THREADS];
    __shared__ int best_i[KLOSS__THREADS];
    int b = blockIdx.x;
    const T *x = logits + (size_t)b * K;
    float bv = -INFINITY;
    int bi = -1;
    for (int k = threadIdx.x; k < K; k += blockDim.x) {
        float v = kcuda__ld(x[k]);
        if (isnan(v))
            v = -INFINITY;
        if (bi < 0 || v > bv) {
            bv = v;
            bi = k;
        }
    }
    unsigned t = threadIdx.x;
    best_v[t] = bv;
    best_i[t] = bi;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half) {
            float ov = best_v[t + half];
            int oi = best_i[t + half];
            int mi = best_i[t];
            if (oi >= 0 &&
                (mi < 0 || ov > best_v[t] || (ov == best_v[t] && oi < mi))) {
                best_v[t] = ov;
                best_i[t] = oi;
            }
        }
        __syncthreads();
    }
    if (t == 0) {
        int best = isnan(kcuda__ld(x[0])) ? 0 : best_i[0];
        if (best == labels[b])
            atomicAdd((int *)count, 1);
    }
}

extern "C" void softmax_cross_entropy_forward_async_fmt_cuda(
    float *loss, float *probs, const void *logits, const int32_t *labels,
    int B, int K, kern_format_t f)
{
    if (!kcuda__ready("softmax_cross_entropy_forward_async_fmt_cuda") ||
        !kcuda__fmt_ok(f, "softmax_cross_entropy_forward_async_fmt_cuda"))
        return;
    if ((size_t)(B > 0 ? B : 0) > KCUDA__MAX_ROWS) {
        kcuda__report(RT_ERANGE, __FILE__, __LINE__,
                      "softmax_cross_entropy_forward_async_cuda",
                      "batch larger than the loss scratch (KCUDA__MAX_ROWS)");
        return;
    }
    if (B > 0 && K > 0) {
        KCUDA__WITH_DTYPE(
            f.dtype, T,
            softmax_ce_rows_kernel<T><<<B, KLOSS__THREADS, 0,
                                        kcuda__ctx.stream>>>(
                probs, kcuda__ctx.row_scratch, (const T *)logits, labels, K));
        KCUDA__LAUNCHED("softmax_ce_rows_kernel");
    }
    softmax_ce_mean_kernel<<<1, KCUDA__REDUCE_THREADS, 0, kcuda__ctx.stream>>>(
        loss, kcuda__ctx.row_scratch, B > 0 && K > 0 ? B : 0);
    KCUDA__LAUNCHED("softmax_ce_mean_kernel");
}

extern "C" void softmax_cross_entropy_forward_async_cuda(float *loss,
                                                         float *probs,
                                                         const float *logits,
                                                         const int32_t *labels,
                                                         int B, int K)
{
    softmax_cross_entropy_forward_async_fmt_cuda(loss, probs, logits, labels,
                                                 B, K, kcuda__f32());
}

// logits: (B, K), labels: (B) -> probs: (B, K); returns the mean loss
// (NaN when a CUDA call failed; kernels_cuda_synchronize() says which)
extern "C" float softmax_cross_entropy_forward_cuda(float *probs,
                                                    const float *logits,
                                                    const int32_t *labels,
                                                    int B, int K)
{
    if (!kcuda__ready("softmax_cross_entropy_forward_cuda"))
        return NAN;
    int before = kcuda__ctx.error;
    softmax_cross_entropy_forward_async_cuda(kcuda__ctx.loss_dev, probs,
                                             logits, labels, B, K);
    if (RT_CUDA_CHECK(cudaMemcpyAsync(kcuda__ctx.loss_host, kcuda__ctx.loss_dev,
                                      sizeof(float), cudaMemcpyDeviceToHost,
                                      kcuda__ctx.stream)) ||
        RT_CUDA_CHECK(cudaStreamSynchronize(kcuda__ctx.stream)) ||
        kcuda__ctx.error != before)
        return NAN;
    return *kcuda__ctx.loss_host;
}

// probs: (B, K), labels: (B) -> dlogits: (B, K) in f.dtype, times *scale
extern "C" void softmax_cross_entropy_backward_fmt_cuda(
    void *dlogits, const float *probs, const int32_t *labels, int B, int K,
    const float *scale, kern_format_t f)
{
    if (!kcuda__ready("softmax_cross_entropy_backward_fmt_cuda") ||
        !kcuda__fmt_ok(f, "softmax_cross_entropy_backward_fmt_cuda") ||
        B <= 0 || K <= 0)
        return;
    KCUDA__WITH_DTYPE(
        f.dtype, T,
        softmax_ce_backward_kernel<T><<<kcuda__grid2d((size_t)B, (size_t)K,
                                                      KCUDA__THREADS),
                                        KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
            (T *)dlogits, probs, labels, (unsigned)B, (unsigned)K,
            1.0f / (float)B, scale));
    KCUDA__LAUNCHED("softmax_ce_backward_kernel");
}

// probs: (B, K), labels: (B) -> dlogits: (B, K)
extern "C" void softmax_cross_entropy_backward_cuda(float *dlogits,
                                                    const float *probs,
                                                    const int32_t *labels,
                                                    int B, int K)
{
    softmax_cross_entropy_backward_fmt_cuda(dlogits, probs, labels, B, K, NULL,
                                            kcuda__f32());
}

static void accuracy_count_async_fmt(int32_t *count, const void *logits,
                                     const int32_t *labels, int B, int K,
                                     kern_format_t f)
{
    if (!kcuda__ready("accuracy_count_async_cuda") ||
        !kcuda__fmt_ok(f, "accuracy_count_async_cuda"))
        return;
    RT_CUDA_CHECK(cudaMemsetAsync(count, 0, sizeof(int32_t), kcuda__ctx.stream));
    if (B <= 0 || K <= 0)
        return;
    KCUDA__WITH_DTYPE(f.dtype, T,
                      accuracy_kernel<T><<<B, KLOSS__THREADS, 0,
                                           kcuda__ctx.stream>>>(
                          count, (const T *)logits, labels, K));
    KCUDA__LAUNCHED("accuracy_kernel");
}

extern "C" void accuracy_count_async_cuda(int32_t *count, const float *logits,
                                          const int32_t *labels, int B, int K)
{
    accuracy_count_async_fmt(count, logits, labels, B, K, kcuda__f32());
}

// logits: (B, K) in f.dtype, labels: (B); returns the number of correct rows
// (-1 when a CUDA call failed)
extern "C" int accuracy_count_fmt_cuda(const void *logits,
                                       const int32_t *labels, int B, int K,
                                       kern_format_t f)
{
    if (!kcuda__ready("accuracy_count_cuda"))
        return -1;
    int before = kcuda__ctx.error;
    accuracy_count_async_fmt(kcuda__ctx.count_dev, logits, labels, B, K, f);
    if (RT_CUDA_CHECK(cudaMemcpyAsync(kcuda__ctx.count_host,
                                      kcuda__ctx.count_dev, sizeof(int32_t),
                                      cudaMemcpyDeviceToHost,
                                      kcuda__ctx.stream)) ||
        RT_CUDA_CHECK(cudaStreamSynchronize(kcuda__ctx.stream)) ||
        kcuda__ctx.error != before)
        return -1;
    return *kcuda__ctx.count_host;
}

// logits: (B, K), labels: (B); returns the number of correct rows (-1 when a
// CUDA call failed)
extern "C" int accuracy_count_cuda(const float *logits, const int32_t *labels,
                                   int B, int K)
{
    return accuracy_count_fmt_cuda(logits, labels, B, K, kcuda__f32());
}
