/* ringtrain kernels (CPU): SGD with momentum and weight decay, PyTorch's
 * semantics (dampening 0, no Nesterov). One flat loop over the parameter
 * arena: it reads params, grads and the momentum buffer and writes two of
 * them, so it is memory-bound; it is fused into one pass and split across
 * threads. */
#include "kernels.h"
#include "cpu_internal.h"

#include <stddef.h>

// params, momentum_buf, grads: (count)
void sgd_update_cpu(float *params, float *momentum_buf, const float *grads,
                    size_t count, float lr, float momentum, float weight_decay)
{
    int threads = kern__threads_for(count);
    if (momentum == 0.0f || momentum_buf == NULL) {
        /* PyTorch keeps no buffer without momentum: p -= lr * g. */
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (size_t i = 0; i < count; i++) {
            float g = grads[i] + weight_decay * params[i];
            params[i] -= lr * g;
        }
        return;
    }
#pragma omp parallel for simd num_threads(threads) schedule(static)
    for (size_t i = 0; i < count; i++) {
        float g = grads[i] + weight_decay * params[i];
        float v = momentum * momentum_buf[i] + g;
        momentum_buf[i] = v;
        params[i] -= lr * v;
    }
}
