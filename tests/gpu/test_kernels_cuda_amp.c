/* GPU test: loss-scaled SGD (sgd_update_scaled_cuda, state in device
 * memory) against its CPU reference (sgd_update_scaled_cpu), step by step:
 *
 *   static     scale 128, gradients scaled by 128: parameters and momentum
 *              as plain SGD on the unscaled gradients; every step applied,
 *              the scale never moves
 *   inf / NaN  dynamic scaling; an inf injected into one gradient (and a
 *              NaN on a later step): that step leaves parameters and
 *              momentum bit for bit unchanged, the scale halves, the skip
 *              is counted, the clean-step count restarts
 *   growth     dynamic, inc_every 1000: 999 clean steps leave the scale,
 *              the 1000th doubles it (and the count restarts), capped at
 *              KERN_LOSS_SCALE_MAX
 * The device state is read back after each checked step; the CPU state must
 * match it field for field, and the parameters within an ulp or two (the
 * GPU may fuse a multiply-add where the CPU rounds twice). */
#include "gpu_test_util.h"

#define COUNT 1000

typedef struct {
    float params[COUNT], momentum[COUNT], grads[COUNT];
    loss_scale_t s;
} side_t;

static float *d_params, *d_mom, *d_grads;
static loss_scale_t *d_state;

static void upload(const side_t *h)
{
    assert_int_equal(kernels_cuda_copy_to_device(d_params, h->params, sizeof h->params), 0);
    assert_int_equal(kernels_cuda_copy_to_device(d_mom, h->momentum, sizeof h->momentum), 0);
    assert_int_equal(kernels_cuda_copy_to_device(d_state, &h->s, sizeof h->s), 0);
}

/* One step on both sides from the same (scaled) gradients. */
static void step_both(side_t *cpu, const float *grads)
{
    memcpy(cpu->grads, grads, sizeof cpu->grads);
    assert_int_equal(kernels_cuda_copy_to_device(d_grads, grads, sizeof cpu->grads), 0);
    sgd_update_scaled_cpu(cpu->params, cpu->momentum, cpu->grads, COUNT, 0.1f, 0.9f,
                          1e-4f, &cpu->s);
    sgd_update_scaled_cuda(d_params, d_mom, d_grads, COUNT, 0.1f, 0.9f, 1e-4f, d_state);
}

static void compare(const side_t *cpu, const char *when)
{
    loss_scale_t g;
    assert_int_equal(kernels_cuda_synchronize(), 0);
    assert_int_equal(kernels_cuda_copy_to_host(&g, d_state, sizeof g), 0);
    if (g.scale != cpu->s.scale || g.good_steps != cpu->s.good_steps ||
        g.found_inf != cpu->s.found_inf || g.skipped != cpu->s.skipped ||
        g.steps != cpu->s.steps)
        fail_msg("%s: device state scale %g good %d inf %d skipped %d steps %lld, cpu "
                 "scale %g good %d inf %d skipped %d steps %lld",
                 when, (double)g.scale, g.good_steps, g.found_inf, g.skipped,
                 (long long)g.steps, (double)cpu->s.scale, cpu->s.good_steps,
                 cpu->s.found_inf, cpu->s.skipped, (long long)cpu->s.steps);
    gt_check_dev("params", d_params, cpu->params, COUNT, 1e-7, 1e-6);
    gt_check_dev("momentum", d_mom, cpu->momentum, COUNT, 1e-7, 1e-6);
}

static void fill(side_t *h, gt_rng_t *r, float scale, int dynamic, int inc_every)
{
    for (int i = 0; i < COUNT; i++) {
        h->params[i] = gt_uniform(r, -1, 1);
        h->momentum[i] = gt_uniform(r, -0.1f, 0.1f);
    }
    loss_scale_init(&h->s, scale, dynamic, inc_every);
}

static void scaled_grads(float *g, gt_rng_t *r, float scale)
{
    for (int i = 0; i < COUNT; i++)
        g[i] = gt_uniform(r, -1, 1) * scale;
}

static void test_static_scale(void **state)
{
    (void)state;
    gt_rng_t r = {8100};
    side_t *cpu = calloc(1, sizeof *cpu);
    float *g = gt_host(COUNT), *plain_p = gt_host(COUNT), *plain_m = gt_host(COUNT);
    assert_non_null(cpu);
    fill(cpu, &r, 128.0f, 0, 1000);
    memcpy(plain_p, cpu->params, sizeof cpu->params);
    memcpy(plain_m, cpu->momentum, sizeof cpu->momentum);
    upload(cpu);
    for (int step = 0; step < 5; step++) {
        scaled_grads(g, &r, 128.0f);
        step_both(cpu, g);
        for (int i = 0; i < COUNT; i++)
            g[i] /= 128.0f; /* exact: a power of two */
        sgd_update_cpu(plain_p, plain_m, g, COUNT, 0.1f, 0.9f, 1e-4f);
    }
    compare(cpu, "static, 5 steps");
    gt_check_close("static scale vs plain SGD", cpu->params, plain_p, COUNT, 0, 0);
    assert_true(cpu->s.scale == 128.0f && cpu->s.skipped == 0 && cpu->s.steps == 5);
    free(cpu);
    free(g);
    free(plain_p);
    free(plain_m);
}

static void test_nonfinite_skips_and_halves(void **state)
{
    (void)state;
    gt_rng_t r = {8200};
    side_t *cpu = calloc(1, sizeof *cpu);
    float *g = gt_host(COUNT), *before_p = gt_host(COUNT), *before_m = gt_host(COUNT);
    assert_non_null(cpu);
    fill(cpu, &r, 1024.0f, 1, 1000);
    upload(cpu);
    for (int step = 0; step < 3; step++) {
        scaled_grads(g, &r, cpu->s.scale);
        step_both(cpu, g);
    }
    compare(cpu, "3 clean steps");
    assert_int_equal(cpu->s.good_steps, 3);
    const float bad[2] = {INFINITY, NAN};
    for (int k = 0; k < 2; k++) {
        memcpy(before_p, cpu->params, sizeof cpu->params);
        memcpy(before_m, cpu->momentum, sizeof cpu->momentum);
        float scale_before = cpu->s.scale;
        scaled_grads(g, &r, cpu->s.scale);
        g[123 + 400 * k] = bad[k];
        step_both(cpu, g);
        compare(cpu, k ? "NaN step" : "inf step");
        gt_check_dev("params after a skipped step", d_params, before_p, COUNT, 0, 0);
        gt_check_dev("momentum after a skipped step", d_mom, before_m, COUNT, 0, 0);
        assert_true(cpu->s.scale == scale_before / 2);
        assert_int_equal(cpu->s.found_inf, 1);
        assert_int_equal(cpu->s.skipped, k + 1);
        assert_int_equal(cpu->s.good_steps, 0);
        printf("%s injected: step skipped, scale %g -> %g\n", k ? "NaN" : "inf",
               (double)scale_before, (double)cpu->s.scale);
    }
    scaled_grads(g, &r, cpu->s.scale);
    step_both(cpu, g);
    compare(cpu, "clean step after the skips");
    assert_int_equal(cpu->s.found_inf, 0);
    assert_int_equal(cpu->s.good_steps, 1);
    free(cpu);
    free(g);
    free(before_p);
    free(before_m);
}

static void test_clean_steps_double(void **state)
{
    (void)state;
    gt_rng_t r = {8300};
    side_t *cpu = calloc(1, sizeof *cpu);
    float *g = gt_host(COUNT);
    assert_non_null(cpu);
    fill(cpu, &r, 64.0f, 1, 1000);
    upload(cpu);
    for (int step = 1; step <= 1000; step++) {
        scaled_grads(g, &r, cpu->s.scale);
        step_both(cpu, g);
        if (step == 999) {
            compare(cpu, "999 clean steps");
            assert_true(cpu->s.scale == 64.0f);
            assert_int_equal(cpu->s.good_steps, 999);
        }
    }
    compare(cpu, "1000 clean steps");
    assert_true(cpu->s.scale == 128.0f);
    assert_int_equal(cpu->s.good_steps, 0);
    printf("1000 clean steps: scale 64 -> %g\n", (double)cpu->s.scale);
    /* The cap. */
    fill(cpu, &r, KERN_LOSS_SCALE_MAX, 1, 1);
    upload(cpu);
    scaled_grads(g, &r, 1.0f);
    step_both(cpu, g);
    compare(cpu, "at the cap");
    assert_true(cpu->s.scale == KERN_LOSS_SCALE_MAX);
    free(cpu);
    free(g);
}

static int setup(void **state)
{
    if (gt_setup(state) != 0)
        return -1;
    d_params = gt_devf(NULL, COUNT);
    d_mom = gt_devf(NULL, COUNT);
    d_grads = gt_devf(NULL, COUNT);
    d_state = gt_dev(NULL, sizeof *d_state);
    return 0;
}

static int teardown(void **state)
{
    kernels_cuda_buffer_free(d_params);
    kernels_cuda_buffer_free(d_mom);
    kernels_cuda_buffer_free(d_grads);
    kernels_cuda_buffer_free(d_state);
    return gt_teardown(state);
}

int main(void)
{
    gt_require_device("test_kernels_cuda_amp");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_scale),
        cmocka_unit_test(test_nonfinite_skips_and_halves),
        cmocka_unit_test(test_clean_steps_double),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
