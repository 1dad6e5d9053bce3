/* Unit tests for worker/options: tf_cnn_benchmarks-style flags and the
 * errors for bad ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "worker/worker.h"

static int parse(worker_options_t *o, char *err, size_t bytes, int argc, char **argv)
{
    worker_options_init(o);
    return worker_options_parse(o, argc, argv, err, bytes);
}

static void test_defaults_and_values(void **state)
{
    (void)state;
    worker_options_t o;
    char err[512] = "";
    char *argv[] = {"w", "--model=resnet20", "--batch_size", "32", "--num_batches=7",
                    "--learning_rate=0.1", "--noeval", "--overlap=false", "--bind=none",
                    "--variable_update=horovod", "--data_format=NCHW", "--seed=5"};
    assert_int_equal(parse(&o, err, sizeof err, 12, argv), 0);
    assert_string_equal(o.model, "resnet20");
    assert_int_equal(o.batch_size, 32);
    assert_int_equal(o.num_batches, 7);
    assert_true(o.learning_rate == 0.1);
    assert_int_equal(o.eval, 0);
    assert_int_equal(o.overlap, 0);
    assert_int_equal(o.bind, 0);
    assert_int_equal(o.seed, 5);
    assert_int_equal(o.num_warmup_batches, 10);

    char *argv2[] = {"w", "--data_name=fashion_mnist", "--num_epochs=2", "--eval"};
    assert_int_equal(parse(&o, err, sizeof err, 4, argv2), 0);
    assert_int_equal(o.data, WORKER_DATA_FASHION_MNIST);
    assert_true(o.num_epochs == 2.0);
    assert_int_equal(o.num_batches, 0);
    assert_int_equal(o.eval, 1);
    assert_int_equal(o.bind, 1);
    assert_int_equal(o.variable_update, WORKER_UPDATE_ALLREDUCE);

    char *argv3[] = {"w", "--variable_update=independent"};
    assert_int_equal(parse(&o, err, sizeof err, 2, argv3), 0);
    assert_int_equal(o.variable_update, WORKER_UPDATE_INDEPENDENT);
}

static void expect_bad(const char *needle, int argc, char **argv)
{
    worker_options_t o;
    char err[512] = "";
    int rc = parse(&o, err, sizeof err, argc, argv);
    if (rc != RT_EINVAL)
        fail_msg("%s: expected RT_EINVAL, got %d", argv[1], rc);
    if (!strstr(err, needle))
        fail_msg("%s: message '%s' lacks '%s'", argv[1], err, needle);
}

static void test_precision_flags(void **state)
{
    (void)state;
    worker_options_t o;
    char err[512] = "";
    assert_int_equal(parse(&o, err, sizeof err, 1, (char *[]){"w"}), 0);
    assert_int_equal(o.use_fp16, 0);
    assert_int_equal(o.use_bf16, 0);
    assert_int_equal(o.allow_tf32, 1);
    assert_true(o.fp16_loss_scale == 128.0);
    assert_int_equal(o.fp16_enable_auto_loss_scale, 0);
    assert_int_equal(o.fp16_inc_loss_scale_every_n, 1000);
    assert_int_equal(o.data_format, WORKER_LAYOUT_AUTO);
    char *argv[] = {"w", "--device=cuda", "--use_fp16", "--fp16_loss_scale=1024",
                    "--fp16_enable_auto_loss_scale", "--fp16_inc_loss_scale_every_n=500",
                    "--noallow_tf32", "--data_format=NHWC"};
    assert_int_equal(parse(&o, err, sizeof err, 8, argv), 0);
    assert_int_equal(o.use_fp16, 1);
    assert_true(o.fp16_loss_scale == 1024.0);
    assert_int_equal(o.fp16_enable_auto_loss_scale, 1);
    assert_int_equal(o.fp16_inc_loss_scale_every_n, 500);
    assert_int_equal(o.allow_tf32, 0);
    assert_int_equal(o.data_format, WORKER_LAYOUT_NHWC);
    char *argv2[] = {"w", "--device=cuda", "--use_bf16", "--data_format=NCHW"};
    assert_int_equal(parse(&o, err, sizeof err, 4, argv2), 0);
    assert_int_equal(o.use_bf16, 1);
    assert_int_equal(o.data_format, WORKER_LAYOUT_NCHW);

    expect_bad("--use_fp16 needs --device=cuda (the CPU kernels are fp32 only)", 2,
               (char *[]){"w", "--use_fp16"});
    expect_bad("--use_bf16 needs --device=cuda", 3, (char *[]){"w", "--use_bf16", "--device=cpu"});
    expect_bad("--use_fp16 and --use_bf16 contradict each other", 4,
               (char *[]){"w", "--device=cuda", "--use_fp16", "--use_bf16"});
    expect_bad("--fp16_loss_scale=0: the loss scale must be greater than 0", 4,
               (char *[]){"w", "--device=cuda", "--use_fp16", "--fp16_loss_scale=0"});
    expect_bad("--fp16_loss_scale=-8: out of range", 4,
               (char *[]){"w", "--device=cuda", "--use_fp16", "--fp16_loss_scale=-8"});
    expect_bad("--fp16_loss_scale=inf: out of range", 4,
               (char *[]){"w", "--device=cuda", "--use_fp16", "--fp16_loss_scale=inf"});
    expect_bad("--fp16_loss_scale=nan", 4,
               (char *[]){"w", "--device=cuda", "--use_fp16", "--fp16_loss_scale=nan"});
    expect_bad("apply to --use_fp16 only; add --use_fp16", 2,
               (char *[]){"w", "--fp16_enable_auto_loss_scale"});
    expect_bad("apply to --use_fp16 only (bf16 needs no loss scaling)", 4,
               (char *[]){"w", "--device=cuda", "--use_bf16", "--fp16_loss_scale=64"});
    expect_bad("--fp16_inc_loss_scale_every_n=0: out of range", 4,
               (char *[]){"w", "--device=cuda", "--use_fp16", "--fp16_inc_loss_scale_every_n=0"});
    expect_bad("--data_format=NHWC needs --device=cuda", 2, (char *[]){"w", "--data_format=NHWC"});
    expect_bad("--data_format=NCWH: unknown value; choose one of NCHW|NHWC", 2,
               (char *[]){"w", "--data_format=NCWH"});
}

static void test_bad_flags(void **state)
{
    (void)state;
    expect_bad("--model=vgg99: unknown model; choose one of trivial, mlp, lenet",
               2, (char *[]){"w", "--model=vgg99"});
    expect_bad("--batch_size=0: out of range", 2, (char *[]){"w", "--batch_size=0"});
    expect_bad("--batch_size=-3", 2, (char *[]){"w", "--batch_size=-3"});
    expect_bad("not a whole number", 2, (char *[]){"w", "--batch_size=12abc"});
    expect_bad("unknown flag '--bogus'", 2, (char *[]){"w", "--bogus=1"});
    expect_bad("--data_name=imagenet: unknown value", 2, (char *[]){"w", "--data_name=imagenet"});
    expect_bad("exclusive", 3, (char *[]){"w", "--num_batches=3", "--num_epochs=1"});
    expect_bad("fashion_mnist is 1x28x28", 3,
               (char *[]){"w", "--model=resnet50", "--data_name=fashion_mnist"});
    expect_bad("needs a value", 2, (char *[]){"w", "--model"});
    expect_bad("expected true or false", 2, (char *[]){"w", "--eval=maybe"});
    expect_bad("unexpected argument 'stray'", 2, (char *[]){"w", "stray"});
    expect_bad("--learning_rate=nan", 2, (char *[]){"w", "--learning_rate=nan"});
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_values),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_precision_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
