/* collectives: vectorised reduction and copy loops (optimised, with a
 * portable reference).
 *
 * One loop shape serves every caller: dst = round(scale * sum of nsrc
 * sources), optionally stored twice (the shared-memory algorithm writes the
 * caller's output and a shared result slot in one pass). The loop is written
 * once per instruction set: portable C (the reference the tests compare the
 * others with), AVX2+F16C (8 lanes) and AVX-512 F/BW/VL (16 lanes, masked
 * tails). fp16 and bf16 are widened to fp32, summed in fp32 and rounded to
 * nearest-even once on store, which is what "fp32 accumulation" means here.
 * Non-temporal stores are used for outputs far larger than the caches, where
 * reading the line first (write-allocate) would cost a third of the memory
 * traffic. Wire compression adds two loops of the same three flavours:
 * conversion between fp32 and fp16/bf16, and the compressed ring's step
 * (fp32 partial sum + a received fp16/bf16 segment, in fp32).
 */
#include "reduce.h"

#include <immintrin.h>
#include <string.h>

#include "common/common.h"

/* ---- scalar conversions (also the portable path) ---------------------- */

static inline uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float coll__f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in fp32 */
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) /* inf, or NaN made quiet */
        return bits_f32(sign | 0x7f800000u | (mant << 13) |
                        (mant ? 0x400000u : 0u));
    return bits_f32(sign | ((exp + 112u) << 23) | (mant << 13));
}

uint16_t coll__f32_to_f16(float f)
{
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) {
        if (ax > 0x7f800000u) /* NaN: keep the top payload bits, quiet */
            return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
        return (uint16_t)(sign | 0x7c00u);
    }
    /* 65520 (0x477ff000) is halfway between 65504 (odd mantissa) and
     * 65536: it and everything above round to infinity. */
    if (ax >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00u);
    if (ax < 0x38800000u) {
        /* Below 2^-14: a subnormal half, in units of 2^-24. The value is
         * mant * 2^(e-150); in half units that is mant * 2^(e-126). */
        uint32_t e = ax >> 23;
        if (e < 102) /* below 2^-25: rounds to zero (2^-25 itself ties to 0) */
            return (uint16_t)sign;
        uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - e; /* 1 .. 24 */
        uint32_t r = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u)))
            r++;
        return (uint16_t)(sign | r);
    }
    /* Normal: round the 23-bit mantissa to 10 bits (ties to even); a carry
     * into the exponent is the correct next binade. */
    uint32_t t = ax + 0xfffu + ((ax >> 13) & 1u);
    return (uint16_t)(sign | ((t >> 13) - (112u << 10)));
}

float coll__bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t coll__f32_to_bf16(float f)
{
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((x >> 16) | 0x40u);
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* ---- portable loop ------------------------------------------------------ */

static inline float load_scalar(coll_dtype_t dtype, const void *p, size_t i)
{
    switch (dtype) {
    case COLL_F16:
        return coll__f16_to_f32(((const uint16_t *)p)[i]);
    case COLL_BF16:
        return coll__bf16_to_f32(((const uint16_t *)p)[i]);
    default:
        return ((const float *)p)[i];
    }
}

static inline void store_scalar(coll_dtype_t dtype, void *p, size_t i, float v)
{
    switch (dtype) {
    case COLL_F16:
        ((uint16_t *)p)[i] = coll__f32_to_f16(v);
        break;
    case COLL_BF16:
        ((uint16_t *)p)[i] = coll__f32_to_bf16(v);
        break;
    default:
        ((float *)p)[i] = v;
        break;
    }
}

static void reduce_range_generic(coll_dtype_t dtype, void *dst, void *dst2,
                                 const void *const *srcs, int nsrc,
                                 size_t begin, size_t end, float scale,
                                 int flags)
{
    for (size_t i = begin; i < end; i++) {
        float acc = load_scalar(dtype, srcs[0], i);
        for (int k = 1; k < nsrc; k++)
            acc += load_scalar(dtype, srcs[k], i);
        if (flags & COLL__REDUCE_SCALE)
            acc *= scale;
        store_scalar(dtype, dst, i, acc);
        if (dst2)
            store_scalar(dtype, dst2, i, acc);
    }
}

static void reduce_generic(coll_dtype_t dtype, void *dst, void *dst2,
                           const void *const *srcs, int nsrc, size_t count,
                           float scale, int flags)
{
    reduce_range_generic(dtype, dst, dst2, srcs, nsrc, 0, count, scale, flags);
}

static void copy_generic(void *dst, const void *src, size_t bytes, int flags)
{
    (void)flags;
    memcpy(dst, src, bytes);
}

/* Wire compression, portable: conversions and the compressed-ring step. */
static inline float round_through(coll_dtype_t wire, float v)
{
    if (wire == COLL_F16)
        return coll__f16_to_f32(coll__f32_to_f16(v));
    if (wire == COLL_BF16)
        return coll__bf16_to_f32(coll__f32_to_bf16(v));
    return v;
}

static void convert_range_generic(coll_dtype_t dd, void *dst, coll_dtype_t sd,
                                  const void *src, size_t begin, size_t end)
{
    for (size_t i = begin; i < end; i++)
        store_scalar(dd, dst, i, load_scalar(sd, src, i));
}

static void convert_generic(coll_dtype_t dd, void *dst, coll_dtype_t sd,
                            const void *src, size_t count)
{
    convert_range_generic(dd, dst, sd, src, 0, count);
}

static void reduce_wire_range_generic(coll_dtype_t wire, float *dst,
                                      const float *a, const void *b,
                                      size_t begin, size_t end, float scale,
                                      int flags)
{
    for (size_t i = begin; i < end; i++) {
        float x = flags & COLL__REDUCE_ROUND_IN ? round_through(wire, a[i]) : a[i];
        float acc = x + load_scalar(wire, b, i);
        if (flags & COLL__REDUCE_SCALE)
            acc *= scale;
        if (flags & COLL__REDUCE_ROUND)
            acc = round_through(wire, acc);
        dst[i] = acc;
    }
}

static void reduce_wire_generic(coll_dtype_t wire, float *dst, const float *a,
                                const void *b, size_t count, float scale,
                                int flags)
{
    reduce_wire_range_generic(wire, dst, a, b, 0, count, scale, flags);
}

/* ---- AVX2 + F16C -------------------------------------------------------- */

#define T_AVX2 __attribute__((target("avx2,f16c")))
#define T_AVX2_INLINE static inline __attribute__((always_inline)) T_AVX2

T_AVX2_INLINE __m256 ld8(coll_dtype_t dtype, const void *p, size_t i)
{
    if (dtype == COLL_F32)
        return _mm256_loadu_ps((const float *)p + i);
    __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + i));
    if (dtype == COLL_F16)
        return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

T_AVX2_INLINE __m128i bf16_pack8(__m256 v)
{
    __m256i x = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
    __m256i q = _mm256_or_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(0x40));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, q, nan);
    __m256i p = _mm256_packus_epi32(r, r); /* per 128-bit lane */
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(p, 0x08));
}

T_AVX2_INLINE void st8(coll_dtype_t dtype, void *p, size_t i, __m256 v, int nt)
{
    if (dtype == COLL_F32) {
        if (nt)
            _mm256_stream_ps((float *)p + i, v);
        else
            _mm256_storeu_ps((float *)p + i, v);
        return;
    }
    __m128i h = dtype == COLL_F16
                    ? _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
                    : bf16_pack8(v);
    __m128i *q = (__m128i *)((uint16_t *)p + i);
    if (nt)
        _mm_stream_si128(q, h);
    else
        _mm_storeu_si128(q, h);
}

/* Elements to peel so that dst + i is 32-byte aligned for streaming stores;
 * SIZE_MAX when it never will be (dst not even element-aligned). */
static size_t nt_peel(const void *dst, size_t esize, size_t align)
{
    uintptr_t a = (uintptr_t)dst;
    if (a % esize)
        return SIZE_MAX;
    return ((align - a % align) % align) / esize;
}

T_AVX2_INLINE void reduce8_body(coll_dtype_t dtype, void *dst, void *dst2,
                                const void *const *srcs, int nsrc,
                                size_t count, float scale, int flags)
{
    size_t esize = dtype == COLL_F32 ? 4 : 2;
    int nt = 0;
    size_t i = 0;
    if (flags & COLL__REDUCE_NT) {
        size_t peel = nt_peel(dst, esize, dtype == COLL_F32 ? 32 : 16);
        if (peel != SIZE_MAX && peel <= count) {
            reduce_range_generic(dtype, dst, dst2, srcs, nsrc, 0, peel, scale, flags);
            i = peel;
            nt = 1;
        }
    }
    __m256 vs = _mm256_set1_ps(scale);
    const int do_scale = flags & COLL__REDUCE_SCALE;
    for (; i + 8 <= count; i += 8) {
        __m256 acc = ld8(dtype, srcs[0], i);
        for (int k = 1; k < nsrc; k++)
            acc = _mm256_add_ps(acc, ld8(dtype, srcs[k], i));
        if (do_scale)
            acc = _mm256_mul_ps(acc, vs);
        st8(dtype, dst, i, acc, nt);
        if (dst2)
            st8(dtype, dst2, i, acc, 0);
    }
    if (nt)
        _mm_sfence();
    reduce_range_generic(dtype, dst, dst2, srcs, nsrc, i, count, scale, flags);
}

T_AVX2 static void reduce_avx2(coll_dtype_t dtype, void *dst, void *dst2,
                               const void *const *srcs, int nsrc, size_t count,
                               float scale, int flags)
{
    switch (dtype) {
    case COLL_F16:
        reduce8_body(COLL_F16, dst, dst2, srcs, nsrc, count, scale, flags);
        break;
    case COLL_BF16:
        reduce8_body(COLL_BF16, dst, dst2, srcs, nsrc, count, scale, flags);
        break;
    default:
        reduce8_body(COLL_F32, dst, dst2, srcs, nsrc, count, scale, flags);
        break;
    }
}

T_AVX2 static void copy_avx2(void *dst, const void *src, size_t bytes, int flags)
{
    size_t peel = nt_peel(dst, 1, 32);
    if (!(flags & COLL__REDUCE_NT) || bytes < 4096 || peel > bytes) {
        memcpy(dst, src, bytes);
        return;
    }
    memcpy(dst, src, peel);
    char *d = (char *)dst + peel;
    const char *s = (const char *)src + peel;
    size_t left = bytes - peel;
    for (; left >= 128; left -= 128, d += 128, s += 128) {
        __m256i a = _mm256_loadu_si256((const __m256i *)s);
        __m256i b = _mm256_loadu_si256((const __m256i *)(s + 32));
        __m256i c = _mm256_loadu_si256((const __m256i *)(s + 64));
        __m256i e = _mm256_loadu_si256((const __m256i *)(s + 96));
        _mm256_stream_si256((__m256i *)d, a);
        _mm256_stream_si256((__m256i *)(d + 32), b);
        _mm256_stream_si256((__m256i *)(d + 64), c);
        _mm256_stream_si256((__m256i *)(d + 96), e);
    }
    _mm_sfence();
    memcpy(d, s, left);
}

/* A float vector rounded to the wire dtype and widened back. */
T_AVX2_INLINE __m256 round8(coll_dtype_t wire, __m256 v)
{
    if (wire == COLL_F16)
        return _mm256_cvtph_ps(
            _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __m128i h = bf16_pack8(v);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

T_AVX2_INLINE void convert8_body(coll_dtype_t dd, void *dst, coll_dtype_t sd,
                                 const void *src, size_t count)
{
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        st8(dd, dst, i, ld8(sd, src, i), 0);
    convert_range_generic(dd, dst, sd, src, i, count);
}

T_AVX2 static void convert_avx2(coll_dtype_t dd, void *dst, coll_dtype_t sd,
                                const void *src, size_t count)
{
    if (sd == COLL_F32 && dd == COLL_F16)
        convert8_body(COLL_F16, dst, COLL_F32, src, count);
    else if (sd == COLL_F32 && dd == COLL_BF16)
        convert8_body(COLL_BF16, dst, COLL_F32, src, count);
    else if (sd == COLL_F16 && dd == COLL_F32)
        convert8_body(COLL_F32, dst, COLL_F16, src, count);
    else if (sd == COLL_BF16 && dd == COLL_F32)
        convert8_body(COLL_F32, dst, COLL_BF16, src, count);
    else
        convert_generic(dd, dst, sd, src, count);
}

T_AVX2_INLINE void reduce_wire8_body(coll_dtype_t wire, float *dst,
                                     const float *a, const void *b,
                                     size_t count, float scale, int flags)
{
    const __m256 vs = _mm256_set1_ps(scale);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 x = _mm256_loadu_ps(a + i);
        if (flags & COLL__REDUCE_ROUND_IN)
            x = round8(wire, x);
        __m256 acc = _mm256_add_ps(x, ld8(wire, b, i));
        if (flags & COLL__REDUCE_SCALE)
            acc = _mm256_mul_ps(acc, vs);
        if (flags & COLL__REDUCE_ROUND)
            acc = round8(wire, acc);
        _mm256_storeu_ps(dst + i, acc);
    }
    reduce_wire_range_generic(wire, dst, a, b, i, count, scale, flags);
}

T_AVX2 static void reduce_wire_avx2(coll_dtype_t wire, float *dst,
                                    const float *a, const void *b,
                                    size_t count, float scale, int flags)
{
    if (wire == COLL_F16)
        reduce_wire8_body(COLL_F16, dst, a, b, count, scale, flags);
    else if (wire == COLL_BF16)
        reduce_wire8_body(COLL_BF16, dst, a, b, count, scale, flags);
    else
        reduce_wire_generic(wire, dst, a, b, count, scale, flags);
}

/* ---- AVX-512 F/BW/VL ------------------------------------------------------ */

#define T_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,f16c")))
#define T_AVX512_INLINE static inline __attribute__((always_inline)) T_AVX512

T_AVX512_INLINE __m512 ld16(coll_dtype_t dtype, const void *p, size_t i,
                            __mmask16 m)
{
    if (dtype == COLL_F32)
        return _mm512_maskz_loadu_ps(m, (const float *)p + i);
    __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + i);
    if (dtype == COLL_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

T_AVX512_INLINE __m512 ld16_full(coll_dtype_t dtype, const void *p, size_t i)
{
    if (dtype == COLL_F32)
        return _mm512_loadu_ps((const float *)p + i);
    __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + i));
    if (dtype == COLL_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

T_AVX512_INLINE __m256i pack16(coll_dtype_t dtype, __m512 v)
{
    if (dtype == COLL_F16)
        return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512i x = _mm512_castps_si512(v);
    __m512i hi = _mm512_srli_epi32(x, 16);
    __m512i lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(
        _mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(r);
}

T_AVX512_INLINE void st16(coll_dtype_t dtype, void *p, size_t i, __m512 v,
                          __mmask16 m)
{
    if (dtype == COLL_F32)
        _mm512_mask_storeu_ps((float *)p + i, m, v);
    else
        _mm256_mask_storeu_epi16((uint16_t *)p + i, m, pack16(dtype, v));
}

T_AVX512_INLINE void st16_full(coll_dtype_t dtype, void *p, size_t i, __m512 v,
                               int nt)
{
    if (dtype == COLL_F32) {
        if (nt)
            _mm512_stream_ps((float *)p + i, v);
        else
            _mm512_storeu_ps((float *)p + i, v);
        return;
    }
    __m256i h = pack16(dtype, v);
    __m256i *q = (__m256i *)((uint16_t *)p + i);
    if (nt)
        _mm256_stream_si256(q, h);
    else
        _mm256_storeu_si256(q, h);
}

/* NSRC2 != 0 specialises the common two-source case (two ranks, or one
 * accumulate step of a ring) so the inner source loop disappears. */
T_AVX512_INLINE void reduce16_body(coll_dtype_t dtype, int nsrc2, void *dst,
                                   void *dst2, const void *const *srcs,
                                   int nsrc, size_t count, float scale,
                                   int flags)
{
    size_t esize = dtype == COLL_F32 ? 4 : 2;
    const __m512 vs = _mm512_set1_ps(scale);
    const int do_scale = flags & COLL__REDUCE_SCALE;
    const void *s0 = srcs[0];
    const void *s1 = nsrc > 1 ? srcs[1] : srcs[0];
    int nt = 0;
    size_t i = 0;
    if (flags & COLL__REDUCE_NT) {
        size_t peel = nt_peel(dst, esize, dtype == COLL_F32 ? 64 : 32);
        if (peel != SIZE_MAX && peel + 16 <= count) {
            if (peel) {
                __mmask16 m = (__mmask16)((1u << peel) - 1);
                __m512 acc = ld16(dtype, s0, 0, m);
                for (int k = 1; k < nsrc; k++)
                    acc = _mm512_add_ps(acc, ld16(dtype, srcs[k], 0, m));
                if (do_scale)
                    acc = _mm512_mul_ps(acc, vs);
                st16(dtype, dst, 0, acc, m);
                if (dst2)
                    st16(dtype, dst2, 0, acc, m);
            }
            i = peel;
            nt = 1;
        }
    }
    for (; i + 32 <= count; i += 32) {
        __m512 a, b;
        if (nsrc2) {
            a = _mm512_add_ps(ld16_full(dtype, s0, i), ld16_full(dtype, s1, i));
            b = _mm512_add_ps(ld16_full(dtype, s0, i + 16),
                              ld16_full(dtype, s1, i + 16));
        } else {
            a = ld16_full(dtype, s0, i);
            b = ld16_full(dtype, s0, i + 16);
            for (int k = 1; k < nsrc; k++) {
                a = _mm512_add_ps(a, ld16_full(dtype, srcs[k], i));
                b = _mm512_add_ps(b, ld16_full(dtype, srcs[k], i + 16));
            }
        }
        if (do_scale) {
            a = _mm512_mul_ps(a, vs);
            b = _mm512_mul_ps(b, vs);
        }
        st16_full(dtype, dst, i, a, nt);
        st16_full(dtype, dst, i + 16, b, nt);
        if (dst2) {
            st16_full(dtype, dst2, i, a, 0);
            st16_full(dtype, dst2, i + 16, b, 0);
        }
    }
    for (; i < count; i += 16) {
        size_t left = count - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff
                                 : (__mmask16)((1u << left) - 1);
        __m512 acc = ld16(dtype, s0, i, m);
        for (int k = 1; k < nsrc; k++)
            acc = _mm512_add_ps(acc, ld16(dtype, srcs[k], i, m));
        if (do_scale)
            acc = _mm512_mul_ps(acc, vs);
        st16(dtype, dst, i, acc, m);
        if (dst2)
            st16(dtype, dst2, i, acc, m);
    }
    if (nt)
        _mm_sfence();
}

T_AVX512 static void reduce_avx512(coll_dtype_t dtype, void *dst, void *dst2,
                                   const void *const *srcs, int nsrc,
                                   size_t count, float scale, int flags)
{
    int two = nsrc == 2;
    switch (dtype) {
    case COLL_F16:
        if (two)
            reduce16_body(COLL_F16, 1, dst, dst2, srcs, nsrc, count, scale, flags);
        else
            reduce16_body(COLL_F16, 0, dst, dst2, srcs, nsrc, count, scale, flags);
        break;
    case COLL_BF16:
        if (two)
            reduce16_body(COLL_BF16, 1, dst, dst2, srcs, nsrc, count, scale, flags);
        else
            reduce16_body(COLL_BF16, 0, dst, dst2, srcs, nsrc, count, scale, flags);
        break;
    default:
        if (two)
            reduce16_body(COLL_F32, 1, dst, dst2, srcs, nsrc, count, scale, flags);
        else
            reduce16_body(COLL_F32, 0, dst, dst2, srcs, nsrc, count, scale, flags);
        break;
    }
}

T_AVX512 static void copy_avx512(void *dst, const void *src, size_t bytes,
                                 int flags)
{
    size_t peel = nt_peel(dst, 1, 64);
    if (!(flags & COLL__REDUCE_NT) || bytes < 4096 || peel > bytes) {
        memcpy(dst, src, bytes);
        return;
    }
    memcpy(dst, src, peel);
    char *d = (char *)dst + peel;
    const char *s = (const char *)src + peel;
    size_t left = bytes - peel;
    for (; left >= 256; left -= 256, d += 256, s += 256) {
        __m512i a = _mm512_loadu_si512((const void *)s);
        __m512i b = _mm512_loadu_si512((const void *)(s + 64));
        __m512i c = _mm512_loadu_si512((const void *)(s + 128));
        __m512i e = _mm512_loadu_si512((const void *)(s + 192));
        _mm512_stream_si512((void *)d, a);
        _mm512_stream_si512((void *)(d + 64), b);
        _mm512_stream_si512((void *)(d + 128), c);
        _mm512_stream_si512((void *)(d + 192), e);
    }
    _mm_sfence();
    memcpy(d, s, left);
}

T_AVX512_INLINE __m512 round16(coll_dtype_t wire, __m512 v)
{
    __m256i h = pack16(wire, v);
    if (wire == COLL_F16)
        return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

T_AVX512_INLINE void convert16_body(coll_dtype_t dd, void *dst,
                                    coll_dtype_t sd, const void *src,
                                    size_t count)
{
    size_t i = 0;
    for (; i + 16 <= count; i += 16)
        st16_full(dd, dst, i, ld16_full(sd, src, i), 0);
    if (i < count) {
        __mmask16 m = (__mmask16)((1u << (count - i)) - 1);
        st16(dd, dst, i, ld16(sd, src, i, m), m);
    }
}

T_AVX512 static void convert_avx512(coll_dtype_t dd, void *dst,
                                    coll_dtype_t sd, const void *src,
                                    size_t count)
{
    if (sd == COLL_F32 && dd == COLL_F16)
        convert16_body(COLL_F16, dst, COLL_F32, src, count);
    else if (sd == COLL_F32 && dd == COLL_BF16)
        convert16_body(COLL_BF16, dst, COLL_F32, src, count);
    else if (sd == COLL_F16 && dd == COLL_F32)
        convert16_body(COLL_F32, dst, COLL_F16, src, count);
    else if (sd == COLL_BF16 && dd == COLL_F32)
        convert16_body(COLL_F32, dst, COLL_BF16, src, count);
    else
        convert_generic(dd, dst, sd, src, count);
}

T_AVX512_INLINE void reduce_wire16_body(coll_dtype_t wire, float *dst,
                                        const float *a, const void *b,
                                        size_t count, float scale, int flags)
{
    const __m512 vs = _mm512_set1_ps(scale);
    for (size_t i = 0; i < count; i += 16) {
        size_t left = count - i;
        __mmask16 m = left >= 16 ? (__mmask16)0xffff
                                 : (__mmask16)((1u << left) - 1);
        __m512 x = _mm512_maskz_loadu_ps(m, a + i);
        if (flags & COLL__REDUCE_ROUND_IN)
            x = round16(wire, x);
        __m512 acc = _mm512_add_ps(x, ld16(wire, b, i, m));
        if (flags & COLL__REDUCE_SCALE)
            acc = _mm512_mul_ps(acc, vs);
        if (flags & COLL__REDUCE_ROUND)
            acc = round16(wire, acc);
        _mm512_mask_storeu_ps(dst + i, m, acc);
    }
}

T_AVX512 static void reduce_wire_avx512(coll_dtype_t wire, float *dst,
                                        const float *a, const void *b,
                                        size_t count, float scale, int flags)
{
    if (wire == COLL_F16)
        reduce_wire16_body(COLL_F16, dst, a, b, count, scale, flags);
    else if (wire == COLL_BF16)
        reduce_wire16_body(COLL_BF16, dst, a, b, count, scale, flags);
    else
        reduce_wire_generic(wire, dst, a, b, count, scale, flags);
}

/* ---- dispatch ------------------------------------------------------------ */

typedef void (*reduce_fn)(coll_dtype_t, void *, void *, const void *const *,
                          int, size_t, float, int);
typedef void (*copy_fn)(void *, const void *, size_t, int);
typedef void (*convert_fn)(coll_dtype_t, void *, coll_dtype_t, const void *,
                           size_t);
typedef void (*reduce_wire_fn)(coll_dtype_t, float *, const float *,
                               const void *, size_t, float, int);

static const struct {
    const char *name;
    reduce_fn reduce;
    copy_fn copy;
    convert_fn convert;
    reduce_wire_fn reduce_wire;
} isa_table[COLL__ISA_COUNT] = {
    [COLL__ISA_GENERIC] = {"generic", reduce_generic, copy_generic,
                           convert_generic, reduce_wire_generic},
    [COLL__ISA_AVX2] = {"avx2", reduce_avx2, copy_avx2, convert_avx2,
                        reduce_wire_avx2},
    [COLL__ISA_AVX512] = {"avx512", reduce_avx512, copy_avx512,
                          convert_avx512, reduce_wire_avx512},
};

/* -1 until first use; a benign race (every thread computes the same value). */
static int isa_current = -1;

static int isa_supported(int isa)
{
    __builtin_cpu_init();
    switch (isa) {
    case COLL__ISA_GENERIC:
        return 1;
    case COLL__ISA_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    case COLL__ISA_AVX512:
        return __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    default:
        return 0;
    }
}

int coll__reduce_isa(void)
{
    int isa = __atomic_load_n(&isa_current, __ATOMIC_RELAXED);
    if (isa < 0) {
        isa = COLL__ISA_GENERIC;
        for (int k = COLL__ISA_COUNT - 1; k > COLL__ISA_GENERIC; k--) {
            if (isa_supported(k)) {
                isa = k;
                break;
            }
        }
        __atomic_store_n(&isa_current, isa, __ATOMIC_RELAXED);
    }
    return isa;
}

const char *coll__reduce_isa_name(int isa)
{
    if (isa < 0 || isa >= COLL__ISA_COUNT)
        return "unknown";
    return isa_table[isa].name;
}

int coll__reduce_set_isa(int isa)
{
    if (isa < 0 || isa >= COLL__ISA_COUNT || !isa_supported(isa))
        return RT_ENOTSUP;
    __atomic_store_n(&isa_current, isa, __ATOMIC_RELAXED);
    return 0;
}

void coll__reduce(coll_dtype_t dtype, void *dst, void *dst2,
                  const void *const *srcs, int nsrc, size_t count, float scale,
                  int flags)
{
    if (count == 0)
        return;
    isa_table[coll__reduce_isa()].reduce(dtype, dst, dst2, srcs, nsrc, count,
                                         scale, flags);
}

void coll__copy(void *dst, const void *src, size_t bytes, int flags)
{
    if (bytes == 0 || dst == src)
        return;
    isa_table[coll__reduce_isa()].copy(dst, src, bytes, flags);
}

void coll__convert(coll_dtype_t dst_dtype, void *dst, coll_dtype_t src_dtype,
                   const void *src, size_t count)
{
    if (count == 0)
        return;
    if (dst_dtype == src_dtype) {
        memcpy(dst, src, count * (dst_dtype == COLL_F32 ? 4 : 2));
        return;
    }
    isa_table[coll__reduce_isa()].convert(dst_dtype, dst, src_dtype, src, count);
}

void coll__reduce_wire(coll_dtype_t wire, float *dst, const float *a,
                       const void *b, size_t count, float scale, int flags)
{
    if (count == 0)
        return;
    isa_table[coll__reduce_isa()].reduce_wire(wire, dst, a, b, count, scale,
                                              flags);
}
