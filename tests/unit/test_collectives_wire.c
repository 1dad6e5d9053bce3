/* Unit tests for the wire-compression loops of collectives/reduce.c:
 * coll__convert (fp32 <-> fp16 / bf16) and coll__reduce_wire (fp32 partial
 * sum + a received fp16 / bf16 segment, scaled, rounded through the wire
 * dtype), for every implementation the CPU has (portable, AVX2, AVX-512),
 * against a scalar reference built on independent oracles, for lengths
 * around the vector widths, misaligned buffers and in place; and the names
 * coll_compression_parse accepts.
 *
 * Oracles: fp16 through the compiler's _Float16 (libgcc), bf16 by nearest
 * neighbour in double arithmetic with ties to even; they share no code with
 * the library.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "collectives.h"
#include "common/common.h"
#include "reduce.h"

__extension__ typedef _Float16 oracle_f16_t;

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float bitsf(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint16_t oracle_to_f16(float f)
{
    oracle_f16_t h = (oracle_f16_t)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

static float oracle_from_f16(uint16_t u)
{
    oracle_f16_t h;
    memcpy(&h, &u, 2);
    return (float)h;
}

static uint16_t oracle_to_bf16(float f)
{
    uint32_t x = fbits(f);
    if (isnan(f))
        return (uint16_t)((x >> 16) | 0x40);
    uint16_t lo = (uint16_t)(x >> 16);
    if ((x & 0xffff) == 0)
        return lo;
    uint16_t hi = (uint16_t)(lo + 1);
    double vl = (double)bitsf((uint32_t)lo << 16);
    double vh = (hi & 0x7fff) == 0x7f80 ? copysign(ldexp(1.0, 128), (double)f)
                                        : (double)bitsf((uint32_t)hi << 16);
    double dl = fabs((double)f - vl), dh = fabs(vh - (double)f);
    if (dl != dh)
        return dl < dh ? lo : hi;
    return (lo & 1) ? hi : lo;
}

static float oracle_from_bf16(uint16_t u) { return bitsf((uint32_t)u << 16); }

static uint16_t oracle_to(coll_dtype_t wire, float f)
{
    return wire == COLL_F16 ? oracle_to_f16(f) : oracle_to_bf16(f);
}

static float oracle_from(coll_dtype_t wire, uint16_t u)
{
    return wire == COLL_F16 ? oracle_from_f16(u) : oracle_from_bf16(u);
}

static uint64_t rng_state = 0x243f6a8885a308d3u;
static uint32_t rng32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* Gradient-like values plus the edges: fp16 subnormals, near fp16's
 * overflow, ties, infinities, the occasional NaN. */
static float value(void)
{
    switch (rng32() % 12) {
    case 0:
        return 0x1p-24f * (float)(rng32() % 2048); /* fp16 subnormal range */
    case 1:
        return (rng32() & 1 ? 65504.0f : -65519.0f); /* fp16 max, rounds to it */
    case 2:
        return 1.0f + 0x1p-11f; /* fp16 tie: rounds to even (1.0) */
    case 3:
        return rng32() % 32 == 0 ? INFINITY : 0.1f;
    case 4:
        return rng32() % 32 == 0 ? NAN : -3.0e-3f;
    default:
        return (float)(int32_t)rng32() * 0x1p-33f;
    }
}

static int same_float(float got, float want)
{
    return fbits(got) == fbits(want) || (isnan(got) && isnan(want));
}

static int same_half(coll_dtype_t wire, uint16_t got, uint16_t want)
{
    if (got == want)
        return 1;
    return isnan(oracle_from(wire, got)) && isnan(oracle_from(wire, want));
}

static const size_t counts[] = {0, 1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100,
                                257, 4099};
enum { MAXC = 4099 + 8 };

static void check_convert(int isa)
{
    float *f = rt_alloc_aligned(MAXC * sizeof *f, 64);
    float *back = rt_alloc_aligned(MAXC * sizeof *back, 64);
    uint16_t *h = rt_alloc_aligned(MAXC * sizeof *h, 64);
    assert_non_null(f);
    assert_non_null(back);
    assert_non_null(h);
    for (int w = COLL_F16; w <= COLL_BF16; w++) {
        coll_dtype_t wire = (coll_dtype_t)w;
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            for (size_t mis = 0; mis < 2; mis++) {
                size_t count = counts[ci];
                float *src = f + mis;
                uint16_t *dst = h + (1 - mis);
                for (size_t i = 0; i < count; i++)
                    src[i] = value();
                dst[count] = 0xbeef; /* nothing written past the end */
                coll__convert(wire, dst, COLL_F32, src, count);
                for (size_t i = 0; i < count; i++)
                    if (!same_half(wire, dst[i], oracle_to(wire, src[i])))
                        fail_msg("isa %s f32 -> %s count %zu: element %zu "
                                 "(%a) is 0x%04x, expected 0x%04x",
                                 coll__reduce_isa_name(isa),
                                 coll_dtype_name(wire), count, i,
                                 (double)src[i], dst[i],
                                 oracle_to(wire, src[i]));
                assert_int_equal(dst[count], 0xbeef);
                back[mis + count] = -7.0f;
                coll__convert(COLL_F32, back + mis, wire, dst, count);
                for (size_t i = 0; i < count; i++)
                    if (!same_float(back[mis + i], oracle_from(wire, dst[i])))
                        fail_msg("isa %s %s -> f32 count %zu: element %zu "
                                 "(0x%04x) is %a, expected %a",
                                 coll__reduce_isa_name(isa),
                                 coll_dtype_name(wire), count, i, dst[i],
                                 (double)back[mis + i],
                                 (double)oracle_from(wire, dst[i]));
                assert_true(back[mis + count] == -7.0f);
            }
        }
    }
    /* Same dtype on both sides: a copy. */
    for (size_t i = 0; i < 100; i++)
        f[i] = value();
    coll__convert(COLL_F32, back, COLL_F32, f, 100);
    assert_memory_equal(back, f, 100 * sizeof *f);
    rt_free_aligned(f);
    rt_free_aligned(back);
    rt_free_aligned(h);
}

static void check_reduce_wire(int isa)
{
    float *a = rt_alloc_aligned(MAXC * sizeof *a, 64);
    float *dst = rt_alloc_aligned(MAXC * sizeof *dst, 64);
    float *orig = rt_alloc_aligned(MAXC * sizeof *orig, 64);
    uint16_t *b = rt_alloc_aligned(MAXC * sizeof *b, 64);
    assert_non_null(a);
    assert_non_null(dst);
    assert_non_null(orig);
    assert_non_null(b);
    const float scale = 1.0f / 3.0f;
    for (int w = COLL_F16; w <= COLL_BF16; w++) {
        coll_dtype_t wire = (coll_dtype_t)w;
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            for (int variant = 0; variant < 16; variant++) {
                size_t count = counts[ci];
                int flags = ((variant & 1) ? COLL__REDUCE_SCALE : 0) |
                            ((variant & 2) ? COLL__REDUCE_ROUND : 0) |
                            ((variant & 8) ? COLL__REDUCE_ROUND_IN : 0);
                int in_place = variant & 4;
                size_t mis = (count + (size_t)variant) % 2;
                float *pa = a + mis;
                uint16_t *pb = b + (1 - mis);
                for (size_t i = 0; i < count; i++) {
                    pa[i] = value();
                    orig[i] = pa[i];
                    pb[i] = oracle_to(wire, value());
                }
                float *out = in_place ? pa : dst + (1 - mis);
                out[count] = 42.0f;
                if (in_place)
                    pa[count] = 42.0f;
                coll__reduce_wire(wire, out, pa, pb, count, scale, flags);
                for (size_t i = 0; i < count; i++) {
                    float x = orig[i];
                    if (flags & COLL__REDUCE_ROUND_IN)
                        x = oracle_from(wire, oracle_to(wire, x));
                    float acc = x + oracle_from(wire, pb[i]);
                    if (flags & COLL__REDUCE_SCALE)
                        acc *= scale;
                    if (flags & COLL__REDUCE_ROUND)
                        acc = oracle_from(wire, oracle_to(wire, acc));
                    if (!same_float(out[i], acc))
                        fail_msg("isa %s wire %s count %zu flags %d in-place "
                                 "%d: element %zu is %a, expected %a (a %a, "
                                 "b 0x%04x)",
                                 coll__reduce_isa_name(isa),
                                 coll_dtype_name(wire), count, flags,
                                 in_place != 0, i, (double)out[i], (double)acc,
                                 (double)orig[i], pb[i]);
                }
                assert_true(out[count] == 42.0f);
            }
        }
    }
    rt_free_aligned(a);
    rt_free_aligned(dst);
    rt_free_aligned(orig);
    rt_free_aligned(b);
}

static void test_all_isas(void **state)
{
    (void)state;
    int original = coll__reduce_isa(), tested = 0;
    for (int isa = 0; isa < COLL__ISA_COUNT; isa++) {
        if (coll__reduce_set_isa(isa) != 0) {
            printf("# %s not supported by this CPU, not tested\n",
                   coll__reduce_isa_name(isa));
            continue;
        }
        check_convert(isa);
        check_reduce_wire(isa);
        tested++;
    }
    assert_int_equal(coll__reduce_set_isa(original), 0);
    assert_true(tested >= 1);
}

/* The rounding the compressed ring relies on: a value rounded once through
 * the wire and sent again arrives unchanged (what makes every rank's result
 * bitwise equal to the owner's). */
static void test_round_trip_is_stable(void **state)
{
    (void)state;
    float in[64], once[64], twice[64];
    uint16_t h1[64], h2[64];
    for (int w = COLL_F16; w <= COLL_BF16; w++) {
        coll_dtype_t wire = (coll_dtype_t)w;
        for (int i = 0; i < 64; i++)
            in[i] = value();
        coll__convert(wire, h1, COLL_F32, in, 64);
        coll__convert(COLL_F32, once, wire, h1, 64);
        coll__convert(wire, h2, COLL_F32, once, 64);
        coll__convert(COLL_F32, twice, wire, h2, 64);
        for (int i = 0; i < 64; i++) {
            if (!same_half(wire, h1[i], h2[i]))
                fail_msg("%s element %d: 0x%04x then 0x%04x",
                         coll_dtype_name(wire), i, h1[i], h2[i]);
            if (!same_float(once[i], twice[i]))
                fail_msg("%s element %d: %a then %a", coll_dtype_name(wire),
                         i, (double)once[i], (double)twice[i]);
        }
    }
}

/* The names a --compression flag takes, both ways. */
static void test_compression_names(void **state)
{
    (void)state;
    const char *names[] = {"none", "fp16", "bf16"};
    for (int k = 0; k < COLL_COMPRESS_COUNT; k++) {
        coll_compression_t got = COLL_COMPRESS_COUNT;
        assert_int_equal(coll_compression_parse(names[k], &got), 0);
        assert_int_equal(got, k);
        assert_string_equal(coll_compression_name(got), names[k]);
    }
    coll_compression_t keep = COLL_COMPRESS_BF16;
    const char *bad[] = {"", "FP16", "fp32", "half", "bf16 ", "fp8"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(coll_compression_parse(bad[k], &keep), RT_EINVAL);
        assert_int_equal(keep, COLL_COMPRESS_BF16);
    }
    assert_int_equal(coll_compression_parse(NULL, &keep), RT_EINVAL);
    assert_int_equal(coll_compression_parse("fp16", NULL), RT_EINVAL);
    assert_string_equal(coll_compression_name((coll_compression_t)9), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_isas),
        cmocka_unit_test(test_round_trip_is_stable),
        cmocka_unit_test(test_compression_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
