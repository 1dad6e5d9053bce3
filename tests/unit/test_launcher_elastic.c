/* Unit tests for launcher/elastic.c: the program's flags the launcher
 * reads (last one wins, one dash or two, =V or a separate V), what a
 * ringtrain-worker's output says of its progress (resume, checkpoints,
 * step lines after the warm-up, a stop) and how steps lost are told, and
 * which hosts a relaunch takes (those that answered, in order, up to
 * --max-np). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "launcher/launcher.h"

static void test_args_flag(void **state)
{
    (void)state;
    const char *args[] = {"--model=mlp", "-display_every", "3", "--display_every=7",
                          "positional", "--num_warmup_batches", "0", "--display_everyone=9"};
    size_t count = sizeof args / sizeof args[0];
    assert_string_equal(launch_args_flag(args, count, "display_every"), "7");
    assert_string_equal(launch_args_flag(args, count, "num_warmup_batches"), "0");
    assert_string_equal(launch_args_flag(args, count, "model"), "mlp");
    assert_null(launch_args_flag(args, count, "variable_update"));
    const char *dangling[] = {"--display_every"};
    assert_null(launch_args_flag(dangling, 1, "display_every"));
}

static void feed(launch_progress_t *p, const char *line)
{
    launch_progress_line(p, line, strlen(line));
}

static void test_progress(void **state)
{
    (void)state;
    const char *args[] = {"--num_warmup_batches=2", "--display_every=1"};
    launch_progress_t p;
    launch_progress_init(&p, args, 2);
    char said[256];
    launch_progress_describe(&p, said, sizeof said);
    assert_string_equal(said, "resuming from step 0; steps lost unknown (the job showed no "
                              "step)");
    feed(&p, "Step\tImg/sec\ttotal_loss");
    assert_false(p.trained);
    feed(&p, "1\timages/sec: 100.0 +/- 0.0 (jitter = 0.0)\t2.300");
    assert_true(p.trained);
    assert_int_equal(p.last_step, 3); /* after 2 warm-up steps */
    feed(&p, "Checkpoint:  step 5: /c/ckpt-000000000005.rtck (0.10 s, in the background)");
    feed(&p, "6\timages/sec: 100.0 +/- 0.0 (jitter = 0.0)\t2.100");
    launch_progress_describe(&p, said, sizeof said);
    assert_string_equal(said, "resuming from step 5, 3 steps lost");
    /* The next run resumes (from a checkpoint written but not reported, as
     * a background write may be at a crash); its stop writes a checkpoint
     * of the step. */
    launch_progress_next_run(&p);
    assert_false(p.trained);
    feed(&p, "Resuming:    /c/ckpt-000000000006.rtck (step 6)");
    assert_false(p.started);
    feed(&p, "ringtrain:   0.1.0");
    assert_true(p.started);
    assert_false(p.trained);
    launch_progress_describe(&p, said, sizeof said);
    assert_string_equal(said, "resumed from step 6, 2 steps lost");
    feed(&p, "Stopped:     signal 10 (User defined signal 1) after step 12: checkpoint "
             "/c/ckpt-000000000012.rtck written in 0.09 s; run the same command to resume");
    assert_true(p.stopped);
    launch_progress_next_run(&p);
    launch_progress_describe(&p, said, sizeof said);
    assert_string_equal(said, "resuming from step 12, 0 steps lost");
    feed(&p, "Resuming:    /c/ckpt-000000000012.rtck (step 12)");
    feed(&p, "ringtrain:   0.1.0");
    launch_progress_describe(&p, said, sizeof said);
    assert_string_equal(said, "resumed from step 12, 0 steps lost");
}

/* Step lines every 10 steps give a lower bound, said so; a stop without a
 * checkpoint directory saves nothing. */
static void test_progress_coarse(void **state)
{
    (void)state;
    launch_progress_t p;
    char said[256];
    const char *coarse[] = {"--num_warmup_batches", "10"};
    launch_progress_init(&p, coarse, 2);
    feed(&p, "Checkpoint:  step 20: /c/ckpt-000000000020.rtck (0.10 s, in the background)");
    feed(&p, "20\timages/sec: 100.0 +/- 0.0 (jitter = 0.0)\t2.100");
    launch_progress_describe(&p, said, sizeof said);
    assert_string_equal(said, "resuming from step 20, at least 10 steps lost (step 30 was the "
                              "last shown; --display_every=10)");
    launch_progress_init(&p, NULL, 0);
    feed(&p, "Stopped:     signal 15 (Terminated) after step 4 (no --checkpoint_dir: nothing "
             "saved)");
    assert_int_equal(p.checkpoint, -1);
    launch_progress_describe(&p, said, sizeof said);
    assert_string_equal(said, "resuming from step 0, 4 steps lost");
}

static void test_hosts_choose(void **state)
{
    (void)state;
    char *names[] = {"a", "b", "c", "d"};
    uint32_t slots[] = {2, 2, 4, 1};
    launch_hostlist_t all = {.hosts = names, .slots = slots, .count = 4};
    unsigned char up[] = {1, 0, 1, 1};
    launch_hostlist_t chosen;
    uint64_t np;
    assert_int_equal(launch_hosts_choose(&all, up, 100, &chosen, &np), 0);
    assert_int_equal(np, 7);
    assert_int_equal(chosen.count, 3);
    assert_string_equal(chosen.hosts[1], "c");
    launch_hostlist_free(&chosen);
    /* Up to --max-np: c is needed for 3 processes, d is not. */
    assert_int_equal(launch_hosts_choose(&all, up, 3, &chosen, &np), 0);
    assert_int_equal(np, 3);
    assert_int_equal(chosen.count, 2);
    assert_int_equal(chosen.slots[1], 4);
    launch_hostlist_free(&chosen);
    unsigned char none[] = {0, 0, 0, 0};
    assert_int_equal(launch_hosts_choose(&all, none, 3, &chosen, &np), 0);
    assert_int_equal(np, 0);
    assert_int_equal(chosen.count, 0);
    launch_hostlist_free(&chosen);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_flag),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_progress_coarse),
        cmocka_unit_test(test_hosts_choose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
