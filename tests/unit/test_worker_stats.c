/* Unit tests for worker/stats.c: medians by selection and tf_cnn_benchmarks'
 * speed statistics, against a sort-based reference. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "worker/stats.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_sorted(const double *v, size_t count)
{
    double *c = malloc(count * sizeof *c);
    assert_non_null(c);
    memcpy(c, v, count * sizeof *c);
    qsort(c, count, sizeof *c, cmp_double);
    double m = count % 2 ? c[count / 2] : 0.5 * (c[count / 2 - 1] + c[count / 2]);
    free(c);
    return m;
}

static uint64_t lcg = 12345;
static double next_value(int levels)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t r = lcg >> 33;
    return levels ? (double)(r % (uint64_t)levels) : (double)r / 4294967296.0;
}

/* Every size up to 64, with many ties (few levels), all equal, sorted and
 * reversed inputs, and one large array. */
static void test_median_matches_sort(void **state)
{
    (void)state;
    double v[4096], copy[4096];
    int level_sets[] = {0, 1, 2, 3, 7};
    for (size_t count = 1; count <= 64; count++) {
        for (size_t l = 0; l < sizeof level_sets / sizeof *level_sets; l++) {
            for (size_t i = 0; i < count; i++)
                v[i] = next_value(level_sets[l]);
            memcpy(copy, v, count * sizeof *v);
            double want = median_sorted(v, count);
            assert_true(stats_median_inplace(copy, count) == want);
        }
        for (size_t i = 0; i < count; i++)
            v[i] = (double)i;
        assert_true(stats_median_inplace(v, count) == median_sorted(v, count));
        for (size_t i = 0; i < count; i++)
            v[i] = (double)(count - i);
        memcpy(copy, v, count * sizeof *v);
        assert_true(stats_median_inplace(copy, count) == median_sorted(v, count));
    }
    for (size_t i = 0; i < 4096; i++)
        v[i] = next_value(0);
    memcpy(copy, v, sizeof v);
    assert_true(stats_median_inplace(copy, 4096) == median_sorted(v, 4096));
}

static void test_speed_stats_reference(void **state)
{
    (void)state;
    enum { COUNT = 1001 };
    double times[COUNT], scratch[COUNT], speeds[COUNT], dev[COUNT];
    double tsum = 0, ssum = 0, ssq = 0;
    for (size_t i = 0; i < COUNT; i++) {
        times[i] = 0.05 + 0.01 * next_value(0);
        speeds[i] = 64.0 / times[i];
        tsum += times[i];
        ssum += speeds[i];
        ssq += speeds[i] * speeds[i];
    }
    double median = median_sorted(speeds, COUNT);
    for (size_t i = 0; i < COUNT; i++)
        dev[i] = fabs(speeds[i] - median);
    double smean = ssum / COUNT;
    speed_stats_t st;
    speed_stats(times, COUNT, 64.0, scratch, &st);
    assert_true(fabs(st.mean - 64.0 / (tsum / COUNT)) < 1e-9);
    assert_true(fabs(st.uncertainty - sqrt(ssq / COUNT - smean * smean) / sqrt(COUNT)) < 1e-6);
    assert_true(st.jitter == 1.4826 * median_sorted(dev, COUNT));
    /* One step: no spread. */
    speed_stats(times, 1, 64.0, scratch, &st);
    assert_true(st.uncertainty == 0.0 && st.jitter == 0.0);
    assert_true(fabs(st.mean - 64.0 / times[0]) < 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_median_matches_sort),
        cmocka_unit_test(test_speed_stats_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
