/* Unit tests for sgd_update_cpu (PyTorch SGD: g = grad + wd * p;
 * buf = m * buf + g, buf starting at 0; p -= lr * buf): a three-step
 * sequence worked out by hand, a double-precision reference loop over random
 * arrays (odd counts, two threads), and momentum 0 (no buffer). And the
 * loss-scaled reference, sgd_update_scaled_cpu: a static scale is plain
 * SGD on grads / scale; dynamic scaling skips a step with an inf or NaN
 * gradient (parameters and momentum untouched) and halves the scale, and
 * doubles it after inc_every clean steps (here 1000). */
#include "test_kernels_util.h"

#include "kernels.h"

static void test_sgd_hand_sequence(void **state)
{
    (void)state;
    /* p = 1, grad = 0.5 each step, lr 0.1, momentum 0.9, weight decay 0.01:
     * step 1: g = 0.5 + 0.01 * 1       = 0.51
     *         buf = 0.51,                p = 1 - 0.051          = 0.949
     * step 2: g = 0.5 + 0.01 * 0.949   = 0.50949
     *         buf = 0.9 * 0.51 + g     = 0.96849
     *         p = 0.949 - 0.096849     = 0.852151
     * step 3: g = 0.5 + 0.00852151     = 0.50852151
     *         buf = 0.871641 + g       = 1.38016251
     *         p = 0.852151 - 0.138016251 = 0.714134749 */
    const double want_p[3] = {0.949, 0.852151, 0.714134749};
    const double want_buf[3] = {0.51, 0.96849, 1.38016251};
    float p = 1.0f, buf = 0.0f, grad = 0.5f;
    for (int step = 0; step < 3; step++) {
        sgd_update_cpu(&p, &buf, &grad, 1, 0.1f, 0.9f, 0.01f);
        if (fabs(p - want_p[step]) > 1e-6 || fabs(buf - want_buf[step]) > 1e-6)
            fail_msg("SGD step %d: p %.9g (want %.9g), buf %.9g (want %.9g)",
                     step + 1, (double)p, want_p[step], (double)buf,
                     want_buf[step]);
    }
}

static void sgd_case(size_t count, float lr, float momentum, float wd,
                     int with_buf, uint64_t seed)
{
    tk_rng_t rng = {seed};
    float *p = tk_falloc(count), *buf = tk_falloc(count);
    float *grad = tk_falloc(count);
    double *dp = tk_dalloc(count), *dbuf = tk_dalloc(count);
    tk_fill(&rng, p, dp, count, -1, 1);
    for (size_t i = 0; i < count; i++)
        buf[i] = 0.0f;
    for (int step = 0; step < 4; step++) {
        tk_fill(&rng, grad, NULL, count, -1, 1);
        sgd_update_cpu(p, with_buf ? buf : NULL, grad, count, lr, momentum,
                       wd);
        for (size_t i = 0; i < count; i++) {
            double g = grad[i] + (double)wd * dp[i];
            if (momentum != 0.0f) {
                dbuf[i] = momentum * dbuf[i] + g;
                g = dbuf[i];
            }
            dp[i] -= lr * g;
        }
    }
    tk_check_close("sgd params", p, dp, count, 1e-6, 1e-5);
    if (with_buf && momentum != 0.0f)
        tk_check_close("sgd momentum buffer", buf, dbuf, count, 1e-6, 1e-5);
    if (with_buf && momentum == 0.0f)
        for (size_t i = 0; i < count; i++)
            assert_true(buf[i] == 0.0f);
    free(p), free(buf), free(grad), free(dp), free(dbuf);
}

static void test_sgd_reference(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    sgd_case(1, 0.1f, 0.9f, 1e-4f, 1, 1);
    sgd_case(1023, 0.05f, 0.9f, 5e-4f, 1, 2);
    sgd_case(999, 0.01f, 0.0f, 1e-4f, 1, 3); /* momentum 0: buffer unused */
    sgd_case(999, 0.01f, 0.0f, 0.0f, 0, 4);  /* and may be NULL */
    kernels_set_num_threads(2);
    sgd_case(300007, 0.1f, 0.9f, 1e-4f, 1, 5);
    kernels_set_num_threads(1);
}

static void test_sgd_loss_scale(void **state)
{
    (void)state;
    enum { N = 7 };
    float p[N], buf[N], g[N], p2[N], buf2[N], g2[N];
    for (int i = 0; i < N; i++) {
        p[i] = p2[i] = 0.1f * (float)(i + 1);
        buf[i] = buf2[i] = 0.0f;
    }
    loss_scale_t s;
    loss_scale_init(&s, 128.0f, 0, 1000);
    for (int step = 0; step < 3; step++) {
        for (int i = 0; i < N; i++) {
            g2[i] = 0.25f * (float)(i - step);
            g[i] = g2[i] * 128.0f;
        }
        sgd_update_scaled_cpu(p, buf, g, N, 0.1f, 0.9f, 0.01f, &s);
        sgd_update_cpu(p2, buf2, g2, N, 0.1f, 0.9f, 0.01f);
    }
    for (int i = 0; i < N; i++)
        if (p[i] != p2[i] || buf[i] != buf2[i])
            fail_msg("static scale: p[%d] %.9g vs plain SGD %.9g", i, (double)p[i],
                     (double)p2[i]);
    assert_true(s.scale == 128.0f && s.skipped == 0 && s.steps == 3);

    loss_scale_init(&s, 1024.0f, 1, 1000);
    memcpy(p2, p, sizeof p);
    memcpy(buf2, buf, sizeof buf);
    g[3] = INFINITY;
    sgd_update_scaled_cpu(p, buf, g, N, 0.1f, 0.9f, 0.01f, &s);
    assert_memory_equal(p, p2, sizeof p);
    assert_memory_equal(buf, buf2, sizeof buf);
    assert_true(s.scale == 512.0f && s.skipped == 1 && s.found_inf == 1);
    g[3] = NAN;
    sgd_update_scaled_cpu(p, buf, g, N, 0.1f, 0.9f, 0.01f, &s);
    assert_true(s.scale == 256.0f && s.skipped == 2);
    g[3] = 1.0f;
    for (int step = 1; step <= 1000; step++) {
        sgd_update_scaled_cpu(p, buf, g, N, 0.0f, 0.9f, 0.0f, &s);
        if (step == 999)
            assert_true(s.scale == 256.0f && s.good_steps == 999);
    }
    assert_true(s.scale == 512.0f && s.good_steps == 0 && s.found_inf == 0);
    assert_true(s.steps == 1002 && s.skipped == 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_hand_sequence),
        cmocka_unit_test(test_sgd_reference),
        cmocka_unit_test(test_sgd_loss_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
