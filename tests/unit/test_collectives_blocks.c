/* Unit tests for collectives/blocks.h (how vectors are cut into blocks and
 * segments) and collectives/select.c (the algorithm table, forcing by name,
 * and the automatic choice by ranks, hosts and bytes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "blocks.h"
#include "coll_internal.h"

static void check_blocks(size_t count, size_t parts)
{
    size_t next = 0, lo = SIZE_MAX, hi = 0;
    for (size_t b = 0; b < parts; b++) {
        size_t off = coll__block_offset(count, parts, b);
        size_t n = coll__block_count(count, parts, b);
        /* Contiguous, in order, covering everything exactly once. */
        assert_int_equal(off, next);
        next = off + n;
        lo = n < lo ? n : lo;
        hi = n > hi ? n : hi;
        /* The first count % parts blocks are the longer ones. */
        assert_int_equal(n, count / parts + (b < count % parts ? 1 : 0));
    }
    assert_int_equal(next, count);
    assert_true(hi - lo <= 1);
}

static void test_blocks_small(void **state)
{
    (void)state;
    for (size_t parts = 1; parts <= 9; parts++)
        for (size_t count = 0; count <= 200; count++)
            check_blocks(count, parts);
}

static void test_blocks_uneven_examples(void **state)
{
    (void)state;
    /* 7 elements over 3 ranks: 3, 2, 2 at 0, 3, 5. */
    assert_int_equal(coll__block_count(7, 3, 0), 3);
    assert_int_equal(coll__block_count(7, 3, 1), 2);
    assert_int_equal(coll__block_count(7, 3, 2), 2);
    assert_int_equal(coll__block_offset(7, 3, 1), 3);
    assert_int_equal(coll__block_offset(7, 3, 2), 5);
    /* Fewer elements than ranks: 2 over 5 -> 1, 1, 0, 0, 0. */
    assert_int_equal(coll__block_count(2, 5, 1), 1);
    assert_int_equal(coll__block_count(2, 5, 2), 0);
    assert_int_equal(coll__block_offset(2, 5, 4), 2);
}

static void test_blocks_large(void **state)
{
    (void)state;
    /* Beyond 2^32 elements nothing wraps. */
    const size_t counts[] = {(size_t)1 << 33, ((size_t)1 << 40) + 7,
                             ((size_t)1 << 30) + 5};
    for (size_t i = 0; i < 3; i++)
        for (size_t parts = 1; parts <= 7; parts++)
            check_blocks(counts[i], parts);
}

static void test_segments(void **state)
{
    (void)state;
    assert_int_equal(coll__seg_total(0, 16), 0);
    assert_int_equal(coll__seg_total(1, 16), 1);
    assert_int_equal(coll__seg_total(16, 16), 1);
    assert_int_equal(coll__seg_total(17, 16), 2);
    for (size_t seg = 1; seg <= 40; seg += 3)
        for (size_t count = 0; count <= 300; count++) {
            size_t total = coll__seg_total(count, seg), sum = 0;
            for (size_t s = 0; s < total; s++) {
                size_t n = coll__seg_count(count, seg, s);
                assert_true(n >= 1 && n <= seg);
                if (s + 1 < total)
                    assert_int_equal(n, seg);
                sum += n;
            }
            assert_int_equal(sum, count);
        }
}

/* ---- selection ---------------------------------------------------------------- */

static coll_comm_t fake(int size, int hosts, int with_shm)
{
    static coll__shm_t shm;
    coll_comm_t c;
    memset(&c, 0, sizeof c);
    c.size = size;
    c.local_size = size / hosts;
    c.host_count = hosts;
    c.forced = -1;
    c.shm = with_shm ? &shm : NULL;
    return c;
}

static void test_algorithm_names(void **state)
{
    (void)state;
    const char *const *names = coll_algorithm_names();
    int n = 0;
    for (; names[n]; n++) {
        assert_int_equal(coll__algo_lookup(names[n]), n);
        assert_string_equal(coll__algos[n].name, names[n]);
    }
    assert_int_equal(n, COLL__ALGO_COUNT);
    assert_int_equal(coll__algo_lookup("auto"), -1);
    assert_int_equal(coll__algo_lookup("Ring"), -1);
    assert_int_equal(coll__algo_lookup(NULL), -1);
}

static void test_select_auto(void **state)
{
    (void)state;
    coll_comm_t one = fake(1, 1, 0);
    assert_string_equal(coll__algos[coll__select(&one, 1000, COLL_F32)].name, "copy");

    /* One host, two ranks: one-shot at every size. */
    coll_comm_t two = fake(2, 1, 1);
    assert_string_equal(coll__algos[coll__select(&two, 1, COLL_F32)].name,
                        "shm_oneshot");
    assert_string_equal(coll__algos[coll__select(&two, 1 << 28, COLL_F32)].name,
                        "shm_oneshot");
    /* More ranks: one-shot for small, two-shot above a byte threshold (not
     * an element count: the same count in fp16 is half the bytes). */
    coll_comm_t local = fake(3, 1, 1);
    assert_string_equal(coll__algos[coll__select(&local, 1, COLL_F32)].name,
                        "shm_oneshot");
    assert_string_equal(coll__algos[coll__select(&local, 64 << 20, COLL_F32)].name,
                        "shm");
    size_t last_small = 0;
    for (size_t count = 1; count < ((size_t)1 << 26); count *= 2)
        if (coll__select(&local, count, COLL_F32) == COLL__ALGO_SHM_ONESHOT)
            last_small = count;
    assert_true(last_small > 0 && last_small < ((size_t)1 << 25));
    assert_int_equal(coll__select(&local, last_small * 2, COLL_F32),
                     COLL__ALGO_SHM);
    assert_int_equal(coll__select(&local, last_small * 2, COLL_F16),
                     COLL__ALGO_SHM_ONESHOT);

    /* Several hosts: recursive doubling for small, ring for large. */
    coll_comm_t hosts = fake(4, 2, 0);
    assert_string_equal(coll__algos[coll__select(&hosts, 1, COLL_F32)].name, "rd");
    assert_string_equal(coll__algos[coll__select(&hosts, 64 << 20, COLL_F32)].name,
                        "ring");
}

static void test_select_forced(void **state)
{
    (void)state;
    coll_comm_t c = fake(3, 1, 1);
    assert_int_equal(coll__select_init(&c, "ring"), 0);
    assert_int_equal(coll__select(&c, 1, COLL_F32), COLL__ALGO_RING);
    assert_int_equal(coll__select(&c, 1 << 28, COLL_BF16), COLL__ALGO_RING);
    assert_int_equal(coll__select_init(&c, "auto"), 0);
    assert_int_equal(c.forced, -1);
    assert_int_equal(coll__select_init(&c, "nonsense"), RT_EINVAL);

    /* The environment applies only when the config names nothing. */
    setenv("RINGTRAIN_ALLREDUCE", "rd", 1);
    assert_int_equal(coll__select_init(&c, NULL), 0);
    assert_int_equal(coll__select(&c, 1 << 20, COLL_F32), COLL__ALGO_RD);
    assert_int_equal(coll__select_init(&c, "mpi"), 0);
    assert_int_equal(coll__select(&c, 1 << 20, COLL_F32), COLL__ALGO_MPI);
    setenv("RINGTRAIN_ALLREDUCE", "bogus", 1);
    assert_int_equal(coll__select_init(&c, NULL), RT_EINVAL);
    unsetenv("RINGTRAIN_ALLREDUCE");

    /* A forced algorithm runs even on one rank (each handles it). */
    coll_comm_t one = fake(1, 1, 0);
    assert_int_equal(coll__select_init(&one, "shm"), 0);
    assert_int_equal(coll__select(&one, 5, COLL_F32), COLL__ALGO_SHM);

    /* What cannot run here is refused, with a reason. */
    const char *why = NULL;
    coll_comm_t multi = fake(4, 2, 0);
    assert_false(coll__algo_usable(&multi, COLL__ALGO_SHM, &why));
    assert_non_null(why);
    assert_false(coll__algo_usable(&multi, COLL__ALGO_COPY, &why));
    assert_true(coll__algo_usable(&multi, COLL__ALGO_RING, &why));
    assert_true(coll__algo_usable(&one, COLL__ALGO_COPY, &why));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocks_small),
        cmocka_unit_test(test_blocks_uneven_examples),
        cmocka_unit_test(test_blocks_large),
        cmocka_unit_test(test_segments),
        cmocka_unit_test(test_algorithm_names),
        cmocka_unit_test(test_select_auto),
        cmocka_unit_test(test_select_forced),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
