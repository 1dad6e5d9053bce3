/* collectives internal: reduction and copy loops for fp32, fp16 and bf16.
 *
 * Every reduction accumulates in fp32 and rounds once when it stores
 * (round-to-nearest-even for fp16 and bf16), so a sum of k inputs done in one
 * call is exactly the fp32 sum of the converted inputs, rounded once.
 * Sources are summed in the order given; callers pass them in rank order so
 * every rank computes bitwise the same result.
 *
 * Implementations: portable C, AVX2+F16C and AVX-512 (F, BW, VL), picked once
 * at first use with __builtin_cpu_supports(); tests can force one.
 */
#ifndef RINGTRAIN_COLLECTIVES_REDUCE_H
#define RINGTRAIN_COLLECTIVES_REDUCE_H

#include <stddef.h>
#include <stdint.h>

#include "collectives.h"

enum {
    COLL__REDUCE_SCALE = 1, /* multiply the sum by scale before storing */
    COLL__REDUCE_NT = 2,    /* non-temporal stores to dst (not dst2) */
    COLL__REDUCE_ROUND = 4, /* coll__reduce_wire: round the result through
                             * the wire dtype before storing it in fp32 */
    COLL__REDUCE_ROUND_IN = 8, /* coll__reduce_wire: round a through the
                                * wire dtype before adding */
};

enum {
    COLL__ISA_GENERIC = 0,
    COLL__ISA_AVX2 = 1,
    COLL__ISA_AVX512 = 2,
    COLL__ISA_COUNT
};

/* dst[i] = round(scale? * sum_k srcs[k][i]) for i < count, and the same value
 * to dst2[i] when dst2 is not NULL. nsrc >= 1. dst may alias srcs[k] exactly
 * (in-place); other overlaps are not allowed. */
void coll__reduce(coll_dtype_t dtype, void *dst, void *dst2,
                  const void *const *srcs, int nsrc, size_t count,
                  float scale, int flags);

/* memcpy, with non-temporal stores when flags has COLL__REDUCE_NT. */
void coll__copy(void *dst, const void *src, size_t bytes, int flags);

/* Wire compression (fp32 vectors sent as fp16 / bf16).
 * coll__convert: dst[i] = src[i] converted from src_dtype to dst_dtype
 * (round-to-nearest-even when narrowing, exact when widening); the same
 * dtype on both sides is a copy. dst and src must not overlap.
 * coll__reduce_wire: dst[i] = a[i] + widen(b[i]) in fp32 (a[i] first rounded
 * through the wire dtype with COLL__REDUCE_ROUND_IN, so that two peers
 * exchanging their vectors add the same two values), times scale with
 * COLL__REDUCE_SCALE, then with COLL__REDUCE_ROUND rounded to the wire dtype
 * and widened back (so it equals what a peer receiving it as wire gets);
 * dst may alias a. wire is COLL_F16 or COLL_BF16. */
void coll__convert(coll_dtype_t dst_dtype, void *dst, coll_dtype_t src_dtype,
                   const void *src, size_t count);
void coll__reduce_wire(coll_dtype_t wire, float *dst, const float *a,
                       const void *b, size_t count, float scale, int flags);

/* The implementation in use, and a way to force one (tests, benchmarks).
 * coll__reduce_set_isa returns 0, or RT_ENOTSUP when the CPU lacks it. */
int coll__reduce_isa(void);
const char *coll__reduce_isa_name(int isa);
int coll__reduce_set_isa(int isa);

/* Scalar conversions (round-to-nearest-even; NaN stays NaN, quieted). */
float coll__f16_to_f32(uint16_t h);
uint16_t coll__f32_to_f16(float f);
float coll__bf16_to_f32(uint16_t h);
uint16_t coll__f32_to_bf16(float f);

#endif
