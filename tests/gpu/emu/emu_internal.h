/* Internals shared by the emulation's sources (cuda_emu.cc, cudnn_emu.cc):
 * the element types the emulated libraries convert between, and TF32
 * rounding, defined once in cuda_emu.cc. */
#ifndef RINGTRAIN_CUDA_EMU_INTERNAL_H
#define RINGTRAIN_CUDA_EMU_INTERNAL_H

#include <stddef.h>

typedef enum { EMU_F32, EMU_F16, EMU_BF16 } emu_elem_t;

/* Element i of p (stored as t) as float, and v rounded (to nearest even)
 * into element i. */
float emu_load(emu_elem_t t, const void *p, size_t i);
void emu_store(emu_elem_t t, void *p, size_t i, float v);
/* An fp32 value with its mantissa rounded to TF32's 10 bits. */
float emu_to_tf32(float v);

#endif
