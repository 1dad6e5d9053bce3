/* ringtrain kernels (CUDA): SGD with momentum and weight decay, PyTorch's
 * semantics (dampening 0, no Nesterov), one fused pass over the parameter
 * arena. Same arithmetic per element as the CPU reference; nvcc may contract
 * a*b + c into one FMA where the CPU rounds twice, so results agree to an
 * ulp or so rather than bit for bit. */
#include "cuda_internal.h"
#include "loss_scale_rule.h"

#include <math.h>

__global__ static void sgd_plain_kernel(float *params, const float *grads,
                                        size_t count, float lr,
                                        float weight_decay)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = grads[i] + weight_decay * params[i];
        params[i] -= lr * g;
    }
}

__global__ static void sgd_momentum_kernel(float *params, float *momentum_buf,
                                           const float *grads, size_t count,
                                           float lr, float momentum,
                                           float weight_decay)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = grads[i] + weight_decay * params[i];
        float v = momentum * momentum_buf[i] + g;
        momentum_buf[i] = v;
        params[i] -= lr * v;
    }
}

// params, momentum_buf, grads: (count)
extern "C" void sgd_update_cuda(float *params, float *momentum_buf,
                                const float *grads, size_t count, float lr,
                                float momentum, float weight_decay)
{
    if (!kcuda__ready("sgd_update_cuda") || count == 0)
        return;
    unsigned blocks = kcuda__blocks(count, KCUDA__THREADS);
    if (momentum == 0.0f || momentum_buf == NULL) {
        /* PyTorch keeps no buffer without momentum: p -= lr * g. */
        sgd_plain_kernel<<<blocks, KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
            params, grads, count, lr, weight_decay);
        KCUDA__LAUNCHED("sgd_plain_kernel");
        return;
    }
    sgd_momentum_kernel<<<blocks, KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
        params, momentum_buf, grads, count, lr, momentum, weight_decay);
    KCUDA__LAUNCHED("sgd_momentum_kernel");
}

/* ---- loss-scaled SGD (mixed precision) ---------------------------------------
 * Three launches, none waited for: the check (dynamic scaling only) raises
 * found_inf when any gradient is not finite; the update reads the flag and
 * the scale on the device and returns at once on a skipped step; one thread
 * then adjusts the scale by the rule the CPU reference uses
 * (loss_scale_rule.h). */

// grads: (count) -> s->found_inf (zeroed before the launch)
__global__ static void amp_check_kernel(loss_scale_t *s, const float *grads,
                                        size_t count)
{
    if (!s->dynamic)
        return;
    int bad = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x)
        bad |= !isfinite(grads[i]);
    /* Every writer stores the same 1: no atomic needed. */
    if (bad)
        s->found_inf = 1;
}

template <bool with_momentum>
__global__ static void sgd_scaled_kernel(float *params, float *momentum_buf,
                                         const float *grads, size_t count,
                                         float lr, float momentum,
                                         float weight_decay,
                                         const loss_scale_t *s)
{
    if (s->dynamic && s->found_inf)
        return;
    float inv = 1.0f / s->scale;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < count;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = __fmul_rn(grads[i], inv) + __fmul_rn(weight_decay, params[i]);
        if (with_momentum) {
            g = __fmul_rn(momentum, momentum_buf[i]) + g;
            momentum_buf[i] = g;
        }
        params[i] -= __fmul_rn(lr, g);
    }
}

__global__ static void loss_scale_adjust_kernel(loss_scale_t *s)
{
    kern__loss_scale_adjust(s);
}

// params, momentum_buf, grads (scaled by s->scale): (count); s: device memory
extern "C" void sgd_update_scaled_cuda(float *params, float *momentum_buf,
                                       const float *grads, size_t count,
                                       float lr, float momentum,
                                       float weight_decay, loss_scale_t *s)
{
    if (!kcuda__ready("sgd_update_scaled_cuda"))
        return;
    cudaStream_t st = kcuda__ctx.stream;
    RT_CUDA_CHECK(cudaMemsetAsync(&s->found_inf, 0, sizeof s->found_inf, st));
    if (count > 0) {
        unsigned blocks = kcuda__blocks(count, KCUDA__THREADS);
        amp_check_kernel<<<blocks, KCUDA__THREADS, 0, st>>>(s, grads, count);
        KCUDA__LAUNCHED("amp_check_kernel");
        if (momentum == 0.0f || momentum_buf == NULL)
            sgd_scaled_kernel<false><<<blocks, KCUDA__THREADS, 0, st>>>(
                params, momentum_buf, grads, count, lr, momentum,
                weight_decay, s);
        else
            sgd_scaled_kernel<true><<<blocks, KCUDA__THREADS, 0, st>>>(
                params, momentum_buf, grads, count, lr, momentum,
                weight_decay, s);
        KCUDA__LAUNCHED("sgd_scaled_kernel");
    }
    loss_scale_adjust_kernel<<<1, 1, 0, st>>>(s);
    KCUDA__LAUNCHED("loss_scale_adjust_kernel");
}
