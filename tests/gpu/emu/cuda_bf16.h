/* CPU emulation of the bf16 subset kernels/cuda uses (see cuda_fp16.h
 * beside it): __nv_bfloat16 storage, float <-> bf16 conversions with
 * round-to-nearest-even (NaN stays NaN), atomicAdd. */
#ifndef RINGTRAIN_CUDA_EMU_BF16_H
#define RINGTRAIN_CUDA_EMU_BF16_H

#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
    uint16_t x;
};

static inline float __bfloat162float(__nv_bfloat16 h)
{
    uint32_t u = (uint32_t)h.x << 16;
    float v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static inline __nv_bfloat16 __float2bfloat16_rn(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    __nv_bfloat16 h;
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        h.x = (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
        return h;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    h.x = (uint16_t)(u >> 16);
    return h;
}

static inline __nv_bfloat16 atomicAdd(__nv_bfloat16 *p, __nv_bfloat16 v)
{
    __nv_bfloat16 old = *p;
    *p = __float2bfloat16_rn(__bfloat162float(old) + __bfloat162float(v));
    return old;
}

#endif
