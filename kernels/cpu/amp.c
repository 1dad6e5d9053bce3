/* ringtrain kernels (CPU): mixed-precision helpers. The storage formats'
 * element sizes and names, and the reference of loss-scaled SGD: what
 * sgd_update_scaled_cuda does on the device (kernels/cuda/sgd.cu), written
 * plainly, so the tests can hold the two side by side. */
#include "kernels.h"
#include "cpu_internal.h"
#include "loss_scale_rule.h"

#include <math.h>
#include <stddef.h>

size_t kern_dtype_size(kern_dtype_t dtype)
{
    return dtype == KERN_F16 || dtype == KERN_BF16 ? 2 : 4;
}

const char *kern_dtype_name(kern_dtype_t dtype)
{
    switch (dtype) {
    case KERN_F16:
        return "fp16";
    case KERN_BF16:
        return "bf16";
    default:
        return "fp32";
    }
}

void loss_scale_init(loss_scale_t *s, float scale, int dynamic, int inc_every)
{
    s->scale = scale;
    s->dynamic = dynamic != 0;
    s->inc_every = inc_every > 0 ? inc_every : 1;
    s->good_steps = 0;
    s->found_inf = 0;
    s->skipped = 0;
    s->steps = 0;
}

// params, momentum_buf, grads (scaled by s->scale): (count)
void sgd_update_scaled_cpu(float *params, float *momentum_buf,
                           const float *grads, size_t count, float lr,
                           float momentum, float weight_decay,
                           loss_scale_t *s)
{
    s->found_inf = 0;
    if (s->dynamic)
        for (size_t i = 0; i < count && !s->found_inf; i++)
            s->found_inf = !isfinite(grads[i]);
    if (!s->found_inf) {
        float inv = 1.0f / s->scale;
        int plain = momentum == 0.0f || momentum_buf == NULL;
        for (size_t i = 0; i < count; i++) {
            float g = grads[i] * inv + weight_decay * params[i];
            if (!plain) {
                g = momentum * momentum_buf[i] + g;
                momentum_buf[i] = g;
            }
            params[i] -= lr * g;
        }
    }
    kern__loss_scale_adjust(s);
}
