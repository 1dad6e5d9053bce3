/* CPU emulation of the fp16 subset kernels/cuda uses (see cuda_runtime.h
 * beside it): the __half storage type and its conversions, rounded to
 * nearest even exactly as the GPU's cvt.rn.f16.f32 (the host compiler's
 * _Float16 conversions are IEEE-correct), and atomicAdd on it. No
 * arithmetic operators: the kernels compute in float and only store
 * halves, so the emulation needs none and cannot hide a missing
 * conversion. */
#ifndef RINGTRAIN_CUDA_EMU_FP16_H
#define RINGTRAIN_CUDA_EMU_FP16_H

#include <stdint.h>
#include <string.h>

struct __half {
    uint16_t x;
};

static inline float __half2float(__half h)
{
    _Float16 f;
    memcpy(&f, &h.x, sizeof f);
    return (float)f;
}

static inline __half __float2half_rn(float v)
{
    _Float16 f = (_Float16)v;
    __half h;
    memcpy(&h.x, &f, sizeof f);
    return h;
}

/* One OS thread runs every kernel thread, so this is a plain
 * read-modify-write, rounded once as the hardware's half add. */
static inline __half atomicAdd(__half *p, __half v)
{
    __half old = *p;
    *p = __float2half_rn(__half2float(old) + __half2float(v));
    return old;
}

#endif
