/* Unit tests for batchnorm_*_cpu: training forward against a double
 * reference (batch mean, biased variance), saved mean and 1/std, running
 * statistics over several steps as PyTorch updates them (momentum, unbiased
 * variance), eval mode, and backward (din, dgamma, dbeta) against
 * double-precision central differences of the training forward.
 * Tolerances: forward |diff| <= 1e-5 + 1e-4 |want| (1e-4 absolute for the
 * large-mean case); gradients within 1e-4 of the gradient's scale. */
#include "test_kernels_util.h"

#include "kernels.h"

#define EPS 1e-5f
#define MOMENTUM 0.1f

typedef struct {
    int B, C, HW;
    double *in, *gamma, *beta, *r, *out;
    double *mean, *var; /* batch mean, biased variance (C) */
} bn_ctx_t;

static void bn_stats(bn_ctx_t *c)
{
    double n = (double)c->B * c->HW;
    for (int ch = 0; ch < c->C; ch++) {
        double sum = 0.0, sq = 0.0;
        for (int b = 0; b < c->B; b++)
            for (int i = 0; i < c->HW; i++)
                sum += c->in[((size_t)b * c->C + ch) * c->HW + i];
        double mean = sum / n;
        for (int b = 0; b < c->B; b++)
            for (int i = 0; i < c->HW; i++) {
                double d = c->in[((size_t)b * c->C + ch) * c->HW + i] - mean;
                sq += d * d;
            }
        c->mean[ch] = mean;
        c->var[ch] = sq / n;
    }
}

static double bn_loss(void *p)
{
    bn_ctx_t *c = p;
    bn_stats(c);
    for (int b = 0; b < c->B; b++)
        for (int ch = 0; ch < c->C; ch++) {
            double rstd = 1.0 / sqrt(c->var[ch] + (double)EPS);
            for (int i = 0; i < c->HW; i++) {
                size_t at = ((size_t)b * c->C + ch) * c->HW + i;
                c->out[at] = (c->in[at] - c->mean[ch]) * rstd * c->gamma[ch] +
                             c->beta[ch];
            }
        }
    return tk_dot(c->r, c->out, (size_t)c->B * c->C * c->HW);
}

static void run_case(int B, int C, int HW, double center, uint64_t seed,
                     size_t max_points)
{
    tk_rng_t rng = {seed};
    size_t count = (size_t)B * C * HW;
    bn_ctx_t c = {.B = B, .C = C, .HW = HW};
    c.in = tk_dalloc(count);
    c.gamma = tk_dalloc(C);
    c.beta = tk_dalloc(C);
    c.r = tk_dalloc(count);
    c.out = tk_dalloc(count);
    c.mean = tk_dalloc(C);
    c.var = tk_dalloc(C);
    float *in = tk_falloc(count), *out = tk_falloc(count);
    float *gamma = tk_falloc(C), *beta = tk_falloc(C);
    float *dout = tk_falloc(count), *din = tk_falloc(count);
    float *dgamma = tk_falloc(C), *dbeta = tk_falloc(C);
    float *dgamma2 = tk_falloc(C), *dbeta2 = tk_falloc(C);
    float *save_mean = tk_falloc(C), *save_rstd = tk_falloc(C);
    float *rmean = tk_falloc(C), *rvar = tk_falloc(C);
    double *want_rmean = tk_dalloc(C), *want_rvar = tk_dalloc(C);
    double *want = tk_dalloc(C);
    tk_fill(&rng, in, c.in, count, center - 1.5, center + 1.5);
    tk_fill(&rng, gamma, c.gamma, C, 0.5, 1.5);
    tk_fill(&rng, beta, c.beta, C, -0.5, 0.5);
    tk_fill(&rng, dout, c.r, count, -1, 1);
    for (int ch = 0; ch < C; ch++) {
        rmean[ch] = 0.0f;
        rvar[ch] = 1.0f;
        want_rmean[ch] = 0.0;
        want_rvar[ch] = 1.0;
    }

    /* Three training steps on the same batch: running stats accumulate. */
    double n = (double)B * HW;
    for (int step = 0; step < 3; step++) {
        tk_fill_nan(out, count);
        batchnorm_forward_train_cpu(out, save_mean, save_rstd, rmean, rvar, in,
                                    gamma, beta, B, C, HW, MOMENTUM, EPS);
        bn_loss(&c);
        for (int ch = 0; ch < C; ch++) {
            double unbiased = n > 1 ? c.var[ch] * n / (n - 1) : c.var[ch];
            want_rmean[ch] = (1 - MOMENTUM) * want_rmean[ch] +
                             MOMENTUM * c.mean[ch];
            want_rvar[ch] = (1 - MOMENTUM) * want_rvar[ch] +
                            MOMENTUM * unbiased;
        }
    }
    double out_atol = center != 0.0 ? 1e-4 : 1e-5;
    tk_check_close("bn out", out, c.out, count, out_atol, 1e-4);
    tk_check_close("bn save_mean", save_mean, c.mean, C, 1e-6, 1e-5);
    for (int ch = 0; ch < C; ch++)
        want[ch] = 1.0 / sqrt(c.var[ch] + (double)EPS);
    tk_check_close("bn save_rstd", save_rstd, want, C, 1e-6, 1e-4);
    tk_check_close("bn running_mean", rmean, want_rmean, C, 1e-6, 1e-5);
    tk_check_close("bn running_var", rvar, want_rvar, C, 1e-6, 1e-4);

    /* Eval: (x - running_mean) / sqrt(running_var + eps) * gamma + beta. */
    double *want_eval = tk_dalloc(count);
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < HW; i++) {
                size_t at = ((size_t)b * C + ch) * HW + i;
                want_eval[at] = ((double)in[at] - rmean[ch]) /
                                    sqrt((double)rvar[ch] + (double)EPS) *
                                    gamma[ch] +
                                beta[ch];
            }
    tk_fill_nan(out, count);
    batchnorm_forward_eval_cpu(out, in, gamma, beta, rmean, rvar, B, C, HW,
                               EPS);
    tk_check_close("bn eval out", out, want_eval, count, out_atol, 1e-4);

    /* Backward from the saved statistics of the last training forward. */
    tk_fill_nan(din, count);
    tk_fill_nan(dgamma, C);
    tk_fill_nan(dbeta, C);
    batchnorm_backward_cpu(din, dgamma, dbeta, dout, in, gamma, save_mean,
                           save_rstd, B, C, HW);
    tk_fill_nan(dgamma2, C);
    tk_fill_nan(dbeta2, C);
    batchnorm_backward_cpu(NULL, dgamma2, dbeta2, dout, in, gamma, save_mean,
                           save_rstd, B, C, HW);
    tk_check_equal_f("dgamma (din NULL)", dgamma2, dgamma, C);
    tk_check_equal_f("dbeta (din NULL)", dbeta2, dbeta, C);

    double *num = tk_dalloc(count);
    tk_numeric_grad(num, c.in, count, bn_loss, &c, max_points);
    tk_check_grad("bn din", din, num, count, 1e-4);
    tk_numeric_grad(num, c.gamma, C, bn_loss, &c, 0);
    tk_check_grad("bn dgamma", dgamma, num, C, 1e-4);
    tk_numeric_grad(num, c.beta, C, bn_loss, &c, 0);
    tk_check_grad("bn dbeta", dbeta, num, C, 1e-4);

    free(num), free(want_eval), free(want), free(want_rmean), free(want_rvar);
    free(in), free(out), free(gamma), free(beta), free(dout), free(din);
    free(dgamma), free(dbeta), free(dgamma2), free(dbeta2);
    free(save_mean), free(save_rstd), free(rmean), free(rvar);
    free(c.in), free(c.gamma), free(c.beta), free(c.r), free(c.out);
    free(c.mean), free(c.var);
}

static void test_batchnorm_small(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    run_case(2, 3, 5, 0.0, 1, 0);
    run_case(1, 2, 7, 0.0, 2, 0);
    run_case(4, 2, 1, 0.0, 3, 0);  /* after global pooling: HW = 1 */
    run_case(3, 4, 9, 0.0, 4, 0);
}

/* Inputs around 100 with unit spread: a one-pass E[x^2] - E[x]^2 variance in
 * float would lose most digits here. */
static void test_batchnorm_large_mean(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    run_case(3, 2, 50, 100.0, 5, 60);
}

static void test_batchnorm_threads(void **state)
{
    (void)state;
    kernels_set_num_threads(2);
    run_case(4, 8, 1500, 0.0, 6, 40);
    kernels_set_num_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm_small),
        cmocka_unit_test(test_batchnorm_large_mean),
        cmocka_unit_test(test_batchnorm_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
