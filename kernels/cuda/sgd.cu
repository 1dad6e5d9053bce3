/* ringtrain kernels (CUDA): SGD with momentum and weight decay, PyTorch's
 * semantics (dampening 0, no Nesterov), one fused pass over the parameter
 * arena. Same arithmetic per element as the CPU reference; nvcc may contract
 * a*b + c into one FMA where the CPU rounds twice, so results agree to an
 * ulp or so rather than bit for bit. */
#include "cuda_internal.h"

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
