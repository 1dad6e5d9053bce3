/* Unit tests for the sampler's data position (worker/data.h): a position
 * counted step by step is the one a step number gives; the steps of
 * --num_epochs are ceil(epochs x steps per epoch) for a run that never
 * resized; and a position taken at one world size and continued at
 * another hands out every sample of the epoch exactly once (when the
 * global batches divide what is left) and never one twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "common/common.h"
#include "worker/data.h"

/* count samples of 1x2x2 pixels, as IDX data (shuffled per epoch). */
static void make_set(dataset_t *d, size_t count)
{
    memset(d, 0, sizeof *d);
    d->c = 1;
    d->h = 2;
    d->w = 2;
    d->classes = 10;
    d->count = count;
    d->pixels = calloc(count * 4, 1);
    d->labels = calloc(count, sizeof *d->labels);
    assert_non_null(d->pixels);
    assert_non_null(d->labels);
}

static void test_pos_matches_steps(void **state)
{
    (void)state;
    dataset_t d;
    make_set(&d, 100);
    sampler_t s;
    assert_int_equal(sampler_init(&s, &d, 0, 3, 4, 1, 7), 0);
    assert_int_equal(s.steps_per_epoch, 8); /* 100 / 12, 4 dropped */
    sampler_pos_t p = {0, 0};
    for (uint64_t step = 0; step < 40; step++) {
        sampler_pos_t want = sampler_pos_at_step(&s, step);
        if (p.epoch != want.epoch || p.sample != want.sample)
            fail_msg("step %llu: counted (%llu, %llu), the step gives (%llu, %llu)",
                     (unsigned long long)step, (unsigned long long)p.epoch,
                     (unsigned long long)p.sample, (unsigned long long)want.epoch,
                     (unsigned long long)want.sample);
        sampler_pos_advance(&s, &p);
    }
    static const double epochs[] = {0.1, 0.3, 1, 1.5, 2, 2.7, 3.99};
    for (size_t i = 0; i < sizeof epochs / sizeof epochs[0]; i++) {
        uint64_t want = (uint64_t)ceil(epochs[i] * (double)s.steps_per_epoch);
        sampler_pos_t zero = {0, 0};
        assert_int_equal(sampler_steps_until(&s, zero, epochs[i]), want);
        /* From any step on, what is left plus what was done. */
        for (uint64_t step = 0; step <= want; step++)
            assert_int_equal(step + sampler_steps_until(&s, sampler_pos_at_step(&s, step),
                                                        epochs[i]), want);
    }
    sampler_free(&s);
    dataset_free(&d);
}

/* Runs ranks x batch from position p for `steps` global batches (0: to the
 * end of p's epoch), counting each dataset index handed out. */
static sampler_pos_t take(const dataset_t *d, int ranks, int batch, sampler_pos_t p,
                          uint64_t steps, int *seen)
{
    sampler_t s[4];
    for (int r = 0; r < ranks; r++)
        assert_int_equal(sampler_init(&s[r], d, r, ranks, batch, 1, 99), 0);
    sampler_pos_fit(&s[0], &p);
    uint64_t epoch = p.epoch;
    for (uint64_t k = 0; (steps == 0 && p.epoch == epoch) || k < steps; k++) {
        for (int r = 0; r < ranks; r++) {
            const float *x;
            const int32_t *y;
            sampler_batch_at(&s[r], p, &x, &y);
            for (int i = 0; i < batch; i++)
                seen[s[r].indices[i]]++;
        }
        sampler_pos_advance(&s[0], &p);
    }
    for (int r = 0; r < ranks; r++)
        sampler_free(&s[r]);
    return p;
}

static void test_reshard_exactly_once(void **state)
{
    (void)state;
    dataset_t d;
    make_set(&d, 600);
    /* 3 x 50 for 4 steps (600 samples), then 2 x 50 to the end of the
     * epoch: 300 more... every sample once. */
    int seen[600] = {0};
    sampler_pos_t p = take(&d, 3, 50, (sampler_pos_t){0, 0}, 2, seen);
    assert_int_equal(p.sample, 300);
    p = take(&d, 2, 50, p, 0, seen);
    assert_int_equal(p.epoch, 1);
    assert_int_equal(p.sample, 0);
    for (int i = 0; i < 600; i++)
        if (seen[i] != 1)
            fail_msg("sample %d seen %d times", i, seen[i]);
    /* Growing: 2 x 40 for 3 steps (240), then 4 x 40 (160 a step): 360 more
     * fit 2 batches (320); the last 40 are dropped, none repeated. */
    memset(seen, 0, sizeof seen);
    p = take(&d, 2, 40, (sampler_pos_t){1, 0}, 3, seen);
    p = take(&d, 4, 40, p, 0, seen);
    int once = 0;
    for (int i = 0; i < 600; i++) {
        assert_in_range(seen[i], 0, 1);
        once += seen[i];
    }
    assert_int_equal(once, 240 + 320);
    /* A position that leaves no room for a batch of the new size moves on
     * to the next epoch. */
    sampler_t s;
    assert_int_equal(sampler_init(&s, &d, 0, 2, 100, 1, 99), 0);
    sampler_pos_t late = {3, 550};
    sampler_pos_fit(&s, &late);
    assert_int_equal(late.epoch, 4);
    assert_int_equal(late.sample, 0);
    sampler_free(&s);
    dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pos_matches_steps),
        cmocka_unit_test(test_reshard_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
