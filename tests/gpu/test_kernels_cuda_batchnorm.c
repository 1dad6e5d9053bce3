/* GPU test: batchnorm_{forward_train,forward_eval,backward}_cuda against the
 * CPU reference. Inputs have a mean far from zero (U(2, 4)) so a one-pass
 * variance would lose digits; shapes cover B = HW = 1 (one value per channel:
 * biased variance used for the running stat), HW below the block size (flat
 * walk) and above it (row walk), din NULL. Running statistics start random
 * and are updated twice, so the momentum update is checked, not just a copy.
 * Tolerances (|gpu - cpu| <= tol + eps * |cpu|): out, save_mean, save_rstd,
 * running stats and eval out 1e-5 + 1e-5 |cpu|; din 1e-5 + 1e-4 |cpu|;
 * dgamma, dbeta gt_sum_tol(B*HW) + 1e-5 |cpu|. */
#include "gpu_test_util.h"

typedef struct {
    int B, C, HW, din;
} bn_case_t;

static const bn_case_t cases[] = {
    {1, 1, 1, 1}, {2, 3, 5, 1}, {4, 16, 49, 1}, {3, 5, 1500, 1},
    {16, 64, 196, 0}, {2, 7, 3136, 1},
};

static void run_case(const bn_case_t *k, uint64_t seed)
{
    gt_rng_t r = {seed};
    int B = k->B, C = k->C, HW = k->HW;
    size_t n = (size_t)B * C * HW, nc = (size_t)C;
    float momentum = 0.1f, eps = 1e-5f;
    float *in = gt_random(&r, n, 2, 4), *dout = gt_random(&r, n, -1, 1);
    float *gamma = gt_random(&r, nc, 0.5f, 1.5f);
    float *beta = gt_random(&r, nc, -1, 1);
    float *rmean = gt_random(&r, nc, -1, 1), *rvar = gt_random(&r, nc, 0.5f, 2);
    float *d_in = gt_devf(in, n), *d_dout = gt_devf(dout, n);
    float *d_gamma = gt_devf(gamma, nc), *d_beta = gt_devf(beta, nc);
    float *d_rmean = gt_devf(rmean, nc), *d_rvar = gt_devf(rvar, nc);
    float *out = gt_host(n), *smean = gt_host(nc), *srstd = gt_host(nc);
    float *din = gt_host(n), *dgamma = gt_host(nc), *dbeta = gt_host(nc);
    float *d_out = gt_devf(NULL, n), *d_smean = gt_devf(NULL, nc);
    float *d_srstd = gt_devf(NULL, nc), *d_din = gt_devf(NULL, n);
    float *d_dgamma = gt_devf(NULL, nc), *d_dbeta = gt_devf(NULL, nc);

    for (int step = 0; step < 2; step++) {
        batchnorm_forward_train_cpu(out, smean, srstd, rmean, rvar, in, gamma,
                                    beta, B, C, HW, momentum, eps);
        batchnorm_forward_train_cuda(d_out, d_smean, d_srstd, d_rmean, d_rvar,
                                     d_in, d_gamma, d_beta, B, C, HW,
                                     momentum, eps);
    }
    gt_check_dev("out", d_out, out, n, 1e-5, 1e-5);
    gt_check_dev("save_mean", d_smean, smean, nc, 1e-5, 1e-5);
    gt_check_dev("save_rstd", d_srstd, srstd, nc, 1e-5, 1e-5);
    gt_check_dev("running_mean", d_rmean, rmean, nc, 1e-5, 1e-5);
    gt_check_dev("running_var", d_rvar, rvar, nc, 1e-5, 1e-5);

    batchnorm_backward_cpu(k->din ? din : NULL, dgamma, dbeta, dout, in, gamma,
                           smean, srstd, B, C, HW);
    batchnorm_backward_cuda(k->din ? d_din : NULL, d_dgamma, d_dbeta, d_dout,
                            d_in, d_gamma, d_smean, d_srstd, B, C, HW);
    size_t terms = (size_t)B * HW;
    gt_check_dev("dgamma", d_dgamma, dgamma, nc, gt_sum_tol(terms), 1e-5);
    gt_check_dev("dbeta", d_dbeta, dbeta, nc, gt_sum_tol(terms), 1e-5);
    if (k->din)
        gt_check_dev("din", d_din, din, n, 1e-5, 1e-4);

    /* Eval on the (identical) running statistics of both sides. */
    batchnorm_forward_eval_cpu(out, in, gamma, beta, rmean, rvar, B, C, HW,
                               eps);
    assert_int_equal(kernels_cuda_copy_to_device(d_rmean, rmean,
                                                 nc * sizeof(float)), 0);
    assert_int_equal(kernels_cuda_copy_to_device(d_rvar, rvar,
                                                 nc * sizeof(float)), 0);
    batchnorm_forward_eval_cuda(d_out, d_in, d_gamma, d_beta, d_rmean, d_rvar,
                                B, C, HW, eps);
    gt_check_dev("out (eval)", d_out, out, n, 1e-5, 1e-5);

    float *bufs[] = {d_in, d_dout, d_gamma, d_beta, d_rmean, d_rvar, d_out,
                     d_smean, d_srstd, d_din, d_dgamma, d_dbeta};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        kernels_cuda_buffer_free(bufs[i]);
    float *host[] = {in, dout, gamma, beta, rmean, rvar, out, smean, srstd,
                     din, dgamma, dbeta};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

static void test_batchnorm_vs_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 3000 + i);
}

int main(void)
{
    gt_require_device("test_kernels_cuda_batchnorm");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batchnorm_vs_cpu),
    };
    return cmocka_run_group_tests(tests, gt_setup, gt_teardown);
}
