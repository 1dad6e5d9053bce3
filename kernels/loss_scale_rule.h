/* ringtrain kernels, internal: the dynamic loss scale's rule, the one piece
 * of logic the CPU reference (cpu/amp.c) and the device (cuda/sgd.cu, one
 * thread) must share to the letter, so it is written once, here, for both
 * compilers. After an update: a skipped step (found_inf) halves the scale
 * (never to 0) and restarts the clean-step count; inc_every clean steps in
 * a row double it (never past KERN_LOSS_SCALE_MAX). */
#ifndef RINGTRAIN_KERNELS_LOSS_SCALE_RULE_H
#define RINGTRAIN_KERNELS_LOSS_SCALE_RULE_H

#include <float.h>
#include <math.h>

#include "kernels.h"

#if defined(__CUDACC__) || defined(__CUDA_ARCH__)
#define KERN__HOST_DEVICE __host__ __device__
#else
#define KERN__HOST_DEVICE
#endif

static inline KERN__HOST_DEVICE void kern__loss_scale_adjust(loss_scale_t *s)
{
    s->steps++;
    if (!s->dynamic)
        return;
    if (s->found_inf) {
        s->skipped++;
        s->good_steps = 0;
        s->scale = fmaxf(s->scale * 0.5f, FLT_MIN);
    } else if (++s->good_steps >= s->inc_every) {
        s->good_steps = 0;
        s->scale = fminf(s->scale * 2.0f, KERN_LOSS_SCALE_MAX);
    }
}

#endif
