/* Unit tests for collectives/reduce.c: fp16 and bf16 conversions (rounding,
 * subnormals, infinities, NaN) against independent oracles, and every
 * reduction loop (portable, AVX2, AVX-512 where the CPU has them) against a
 * scalar reference for every dtype, source count, length, alignment and flag.
 *
 * Oracles: fp16 uses the compiler's _Float16 conversions (libgcc), which
 * share no code with the library; bf16 picks the nearer of the two
 * neighbouring bf16 values in double arithmetic, ties to the even one.
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

static uint16_t oracle_f32_to_f16(float f)
{
    oracle_f16_t h = (oracle_f16_t)f;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}

static float oracle_f16_to_f32(uint16_t u)
{
    oracle_f16_t h;
    memcpy(&h, &u, 2);
    return (float)h;
}

static uint16_t oracle_f32_to_bf16(float f)
{
    uint32_t x = fbits(f);
    if (isnan(f))
        return (uint16_t)((x >> 16) | 0x40);
    uint16_t lo = (uint16_t)(x >> 16); /* truncation: toward zero */
    if ((x & 0xffff) == 0)
        return lo;
    uint16_t hi = (uint16_t)(lo + 1); /* next away from zero (may be inf) */
    double vl = (double)bitsf((uint32_t)lo << 16);
    /* Past the largest finite value, IEEE rounding measures the distance to
     * 2^128 (where the next value would be) and overflows to infinity. */
    double vh = (hi & 0x7fff) == 0x7f80 ? copysign(ldexp(1.0, 128), (double)f)
                                        : (double)bitsf((uint32_t)hi << 16);
    double dl = fabs((double)f - vl);
    double dh = fabs(vh - (double)f);
    if (dl < dh)
        return lo;
    if (dh < dl)
        return hi;
    return (lo & 1) ? hi : lo;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint32_t rng32(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

#define FAIL_MSG(...)                                                          \
    do {                                                                       \
        print_error(__VA_ARGS__);                                              \
        fail();                                                                \
    } while (0)

/* ---- conversions --------------------------------------------------------------- */

static void test_f16_to_f32_exhaustive(void **state)
{
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float got = coll__f16_to_f32((uint16_t)h);
        float want = oracle_f16_to_f32((uint16_t)h);
        if (isnan(want)) {
            if (!isnan(got))
                FAIL_MSG("f16 0x%04x: got %g, expected NaN\n", h, (double)got);
            continue;
        }
        if (fbits(got) != fbits(want))
            FAIL_MSG("f16 0x%04x: got %a (0x%08x), expected %a (0x%08x)\n", h,
                     (double)got, fbits(got), (double)want, fbits(want));
    }
}

static void check_f16(float f)
{
    uint16_t got = coll__f32_to_f16(f);
    uint16_t want = oracle_f32_to_f16(f);
    if (isnan(f)) {
        if ((got & 0x7c00) != 0x7c00 || (got & 0x3ff) == 0)
            FAIL_MSG("f32 NaN 0x%08x -> f16 0x%04x, not a NaN\n", fbits(f), got);
        if ((got & 0x8000) != ((fbits(f) >> 16) & 0x8000))
            FAIL_MSG("f32 NaN 0x%08x -> f16 0x%04x lost its sign\n", fbits(f), got);
        return;
    }
    if (got != want)
        FAIL_MSG("f32 %a (0x%08x) -> f16 0x%04x, expected 0x%04x\n", (double)f,
                 fbits(f), got, want);
}

static void test_f32_to_f16_ties_and_neighbours(void **state)
{
    (void)state;
    /* Every midpoint between consecutive fp16 values (exact in fp32), and
     * one fp32 ulp either side: ties must go to the even mantissa. */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        double a = oracle_f16_to_f32((uint16_t)h);
        double b = h + 1 == 0x7c00 ? 65536.0 : oracle_f16_to_f32((uint16_t)(h + 1));
        float mid = (float)((a + b) / 2);
        for (int sign = 0; sign < 2; sign++) {
            float m = sign ? -mid : mid;
            check_f16(m);
            check_f16(nextafterf(m, INFINITY));
            check_f16(nextafterf(m, -INFINITY));
            check_f16(sign ? -(float)a : (float)a);
        }
    }
}

static void test_f32_to_f16_sweep(void **state)
{
    (void)state;
    /* A stride through all 2^32 bit patterns plus random ones. */
    for (uint64_t x = 0; x < (UINT64_C(1) << 32); x += 4099)
        check_f16(bitsf((uint32_t)x));
    for (int i = 0; i < 1000000; i++)
        check_f16(bitsf(rng32() ^ (rng32() << 16)));
    /* Named edge cases. */
    const float edges[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f,
                           65536.0f, 1e10f, -1e10f, INFINITY, -INFINITY,
                           0x1p-14f, 0x1p-24f, 0x1p-25f, 0x1.000002p-25f,
                           0x1.8p-24f, 0x1p-26f, 0x1p-149f, 1.0f / 3.0f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
        check_f16(edges[i]);
    assert_int_equal(coll__f32_to_f16(65520.0f), 0x7c00);  /* ties to inf */
    assert_int_equal(coll__f32_to_f16(0x1p-25f), 0x0000);  /* ties to zero */
    assert_int_equal(coll__f32_to_f16(0x1.8p-24f), 0x0002); /* 1.5 -> 2 */
    check_f16(NAN);
    check_f16(-NAN);
    check_f16(bitsf(0x7f800001)); /* signalling NaN */
}

static void check_bf16(float f)
{
    uint16_t got = coll__f32_to_bf16(f);
    uint16_t want = oracle_f32_to_bf16(f);
    if (isnan(f)) {
        float back = coll__bf16_to_f32(got);
        if (!isnan(back))
            FAIL_MSG("f32 NaN 0x%08x -> bf16 0x%04x, not a NaN\n", fbits(f), got);
        return;
    }
    if (got != want)
        FAIL_MSG("f32 %a (0x%08x) -> bf16 0x%04x, expected 0x%04x\n", (double)f,
                 fbits(f), got, want);
}

static void test_bf16(void **state)
{
    (void)state;
    /* bf16 -> f32 is exact: every pattern round-trips. */
    for (uint32_t h = 0; h < 65536; h++) {
        float f = coll__bf16_to_f32((uint16_t)h);
        assert_int_equal(fbits(f), h << 16);
        if (!isnan(f))
            assert_int_equal(coll__f32_to_bf16(f), h);
    }
    /* Midpoints (ties to even) and their neighbours, all signs. */
    for (uint32_t h = 0; h < 0x7f80; h++) {
        float mid = bitsf((h << 16) | 0x8000);
        for (int sign = 0; sign < 2; sign++) {
            float m = sign ? -mid : mid;
            check_bf16(m);
            check_bf16(nextafterf(m, INFINITY));
            check_bf16(nextafterf(m, -INFINITY));
        }
    }
    for (uint64_t x = 0; x < (UINT64_C(1) << 32); x += 4099)
        check_bf16(bitsf((uint32_t)x));
    assert_int_equal(coll__f32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(coll__f32_to_bf16(-INFINITY), 0xff80);
    assert_int_equal(coll__f32_to_bf16(3.4e38f), 0x7f80); /* rounds to inf */
    assert_int_equal(coll__f32_to_bf16(0x1p-149f), 0x0000); /* rounds to zero */
    assert_int_equal(coll__f32_to_bf16(0x1p-133f), 0x0001); /* bf16 subnormal */
    check_bf16(NAN);
    check_bf16(bitsf(0x7f800001)); /* NaN whose payload sits in the low bits */
    check_bf16(bitsf(0xff800001));
}

/* ---- reduction loops ------------------------------------------------------------ */

static float ref_load(coll_dtype_t dt, const void *p, size_t i)
{
    if (dt == COLL_F32)
        return ((const float *)p)[i];
    uint16_t h = ((const uint16_t *)p)[i];
    return dt == COLL_F16 ? oracle_f16_to_f32(h) : bitsf((uint32_t)h << 16);
}

static uint32_t ref_encode(coll_dtype_t dt, float v)
{
    if (dt == COLL_F32)
        return fbits(v);
    return dt == COLL_F16 ? oracle_f32_to_f16(v) : oracle_f32_to_bf16(v);
}

static uint32_t got_bits(coll_dtype_t dt, const void *p, size_t i)
{
    if (dt == COLL_F32)
        return fbits(((const float *)p)[i]);
    return ((const uint16_t *)p)[i];
}

static int bits_is_nan(coll_dtype_t dt, uint32_t b)
{
    if (dt == COLL_F32)
        return (b & 0x7fffffff) > 0x7f800000;
    if (dt == COLL_F16)
        return (b & 0x7c00) == 0x7c00 && (b & 0x3ff);
    return (b & 0x7f80) == 0x7f80 && (b & 0x7f);
}

/* Values that stress the loops: ordinary, subnormal (fp32 and fp16),
 * large, infinities and the occasional NaN. */
static float interesting(coll_dtype_t dt, int k)
{
    switch (rng32() % 16) {
    case 0:
        return 0x1p-140f * (float)(rng32() % 64); /* fp32 subnormal */
    case 1:
        return 0x1p-24f * (float)(rng32() % 1024); /* fp16 subnormal range */
    case 2:
        return (rng32() & 1 ? 1.0f : -1.0f) * 60000.0f;
    case 3:
        return k == 0 && rng32() % 8 == 0 ? INFINITY : 1.5f;
    case 4:
        return rng32() % 64 == 0 ? NAN : -2.25f;
    default: {
        float v = ((float)(int32_t)rng32()) * 0x1p-28f;
        return dt == COLL_BF16 ? v * 1e3f : v;
    }
    }
}

static void fill(coll_dtype_t dt, void *p, size_t count, int k)
{
    for (size_t i = 0; i < count; i++) {
        uint32_t b = ref_encode(dt, interesting(dt, k));
        if (dt == COLL_F32)
            ((float *)p)[i] = bitsf(b);
        else
            ((uint16_t *)p)[i] = (uint16_t)b;
    }
}

static void check_isa(int isa)
{
    static const size_t counts[] = {0, 1, 2, 7, 8, 15, 16, 17, 31, 32, 33, 63,
                                    64, 65, 100, 257, 1000, 4099};
    static const int nsrcs[] = {1, 2, 3, 5};
    enum { MAXC = 4099 + 64, MAXS = 5 };
    for (int dt = 0; dt < COLL_DTYPE_COUNT; dt++) {
        size_t es = coll_dtype_size((coll_dtype_t)dt);
        for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
            size_t count = counts[ci];
            for (size_t si = 0; si < sizeof nsrcs / sizeof nsrcs[0]; si++) {
                int nsrc = nsrcs[si];
                for (int variant = 0; variant < 8; variant++) {
                    int flags = ((variant & 1) ? COLL__REDUCE_SCALE : 0) |
                                ((variant & 2) ? COLL__REDUCE_NT : 0);
                    int with_dst2 = variant & 4;
                    /* Misalign by one element for half the cases. */
                    size_t mis = (count + variant) % 2;
                    unsigned char *mem[MAXS + 2];
                    const void *srcs[MAXS];
                    for (int k = 0; k < nsrc + 2; k++) {
                        mem[k] = rt_alloc_aligned((MAXC + 1) * es, 64);
                        assert_non_null(mem[k]);
                    }
                    for (int k = 0; k < nsrc; k++) {
                        fill((coll_dtype_t)dt, mem[k] + mis * es, count, k);
                        srcs[k] = mem[k] + mis * es;
                    }
                    void *dst = mem[nsrc] + mis * es;
                    void *dst2 = with_dst2 ? mem[nsrc + 1] + es : NULL;
                    /* In place for some cases: dst is source 0. */
                    int in_place = (variant == 3 || variant == 6) && nsrc > 1;
                    unsigned char *orig0 = NULL;
                    if (in_place) {
                        orig0 = malloc(count * es + 1);
                        memcpy(orig0, srcs[0], count * es);
                        dst = (void *)srcs[0];
                    }
                    float scale = 1.0f / 3.0f;
                    coll__reduce((coll_dtype_t)dt, dst, dst2, srcs, nsrc, count,
                                 scale, flags);
                    for (size_t i = 0; i < count; i++) {
                        float acc = ref_load((coll_dtype_t)dt,
                                             in_place ? (const void *)orig0 : srcs[0], i);
                        for (int k = 1; k < nsrc; k++)
                            acc += ref_load((coll_dtype_t)dt, srcs[k], i);
                        if (flags & COLL__REDUCE_SCALE)
                            acc *= scale;
                        uint32_t want = ref_encode((coll_dtype_t)dt, acc);
                        uint32_t got = got_bits((coll_dtype_t)dt, dst, i);
                        int ok = got == want ||
                                 (bits_is_nan((coll_dtype_t)dt, got) &&
                                  bits_is_nan((coll_dtype_t)dt, want));
                        if (ok && dst2)
                            ok = got_bits((coll_dtype_t)dt, dst2, i) == got;
                        if (!ok)
                            FAIL_MSG("isa %s dtype %s nsrc %d count %zu flags "
                                     "%d dst2 %d in-place %d: element %zu is "
                                     "0x%08x, expected 0x%08x\n",
                                     coll__reduce_isa_name(isa),
                                     coll_dtype_name((coll_dtype_t)dt), nsrc,
                                     count, flags, with_dst2 != 0, in_place, i,
                                     got, want);
                    }
                    free(orig0);
                    for (int k = 0; k < nsrc + 2; k++)
                        rt_free_aligned(mem[k]);
                }
            }
        }
    }
}

static void test_reduce_all_isas(void **state)
{
    (void)state;
    int tested = 0;
    int original = coll__reduce_isa();
    for (int isa = 0; isa < COLL__ISA_COUNT; isa++) {
        if (coll__reduce_set_isa(isa) != 0) {
            printf("# %s not supported by this CPU, not tested\n",
                   coll__reduce_isa_name(isa));
            continue;
        }
        check_isa(isa);
        tested++;
    }
    assert_int_equal(coll__reduce_set_isa(original), 0);
    assert_true(tested >= 1);
    assert_int_equal(coll__reduce_set_isa(COLL__ISA_COUNT), RT_ENOTSUP);
}

static void test_copy(void **state)
{
    (void)state;
    int original = coll__reduce_isa();
    enum { MAXB = 70000 };
    unsigned char *src = malloc(MAXB + 64), *dst = malloc(MAXB + 64);
    assert_non_null(src);
    assert_non_null(dst);
    for (size_t i = 0; i < MAXB + 64; i++)
        src[i] = (unsigned char)(i * 37 + 11);
    const size_t sizes[] = {0, 1, 63, 64, 4095, 4096, 4097, 65536, 69999};
    for (int isa = 0; isa < COLL__ISA_COUNT; isa++) {
        if (coll__reduce_set_isa(isa) != 0)
            continue;
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int off = 0; off < 3; off++)
                for (int nt = 0; nt < 2; nt++) {
                    memset(dst, 0xee, MAXB + 64);
                    coll__copy(dst + off * 3, src + off, sizes[s],
                               nt ? COLL__REDUCE_NT : 0);
                    assert_memory_equal(dst + off * 3, src + off, sizes[s]);
                    /* Nothing written past the end. */
                    assert_int_equal(dst[off * 3 + sizes[s]], 0xee);
                }
    }
    assert_int_equal(coll__reduce_set_isa(original), 0);
    free(src);
    free(dst);
}

/* sum and avg as the collectives use them: exact for small integers. */
static void test_sum_avg_semantics(void **state)
{
    (void)state;
    float a[5] = {1, 2, 3, 4, -5}, b[5] = {10, 20, 30, 40, 50}, c[5] = {0, 0, 0, 1, 2};
    float out[5];
    const void *srcs[3] = {a, b, c};
    coll__reduce(COLL_F32, out, NULL, srcs, 3, 5, 1.0f, 0);
    for (int i = 0; i < 5; i++)
        assert_true(out[i] == a[i] + b[i] + c[i]);
    coll__reduce(COLL_F32, out, NULL, srcs, 3, 5, 1.0f / 3.0f, COLL__REDUCE_SCALE);
    for (int i = 0; i < 5; i++) {
        float want = (a[i] + b[i] + c[i]) * (1.0f / 3.0f);
        if (out[i] != want)
            FAIL_MSG("avg element %d: %g, expected %g\n", i, (double)out[i],
                     (double)want);
    }
    /* fp16 accumulates in fp32: 2048 + 1 + 1 is 2050 (fp16 alone would give
     * 2048 twice, since 2049 is not representable). */
    uint16_t h[3] = {coll__f32_to_f16(2048.0f), coll__f32_to_f16(1.0f),
                     coll__f32_to_f16(1.0f)};
    uint16_t hout = 0;
    const void *hs[3] = {&h[0], &h[1], &h[2]};
    coll__reduce(COLL_F16, &hout, NULL, hs, 3, 1, 1.0f, 0);
    assert_int_equal(hout, coll__f32_to_f16(2050.0f));
    /* bf16 the same way: 256 + 1 + 1 = 258. */
    uint16_t g[3] = {coll__f32_to_bf16(256.0f), coll__f32_to_bf16(1.0f),
                     coll__f32_to_bf16(1.0f)};
    const void *gs[3] = {&g[0], &g[1], &g[2]};
    coll__reduce(COLL_BF16, &hout, NULL, gs, 3, 1, 1.0f, 0);
    assert_int_equal(hout, coll__f32_to_bf16(258.0f));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_to_f32_exhaustive),
        cmocka_unit_test(test_f32_to_f16_ties_and_neighbours),
        cmocka_unit_test(test_f32_to_f16_sweep),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_reduce_all_isas),
        cmocka_unit_test(test_copy),
        cmocka_unit_test(test_sum_avg_semantics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
