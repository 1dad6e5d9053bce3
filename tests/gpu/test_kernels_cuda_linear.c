/* GPU test: linear_forward_cuda / linear_backward_cuda against the CPU
 * reference on random inputs in [-1, 1], with and without bias, din NULL,
 * B = 1 and odd sizes. Tolerance |gpu - cpu| <= gt_sum_tol(terms) + 1e-5 *
 * |cpu|, terms = length of the sum behind each output (IC, OC or B).
 * TF32: with it allowed the forward must stay within TF32 rounding
 * (3e-3 * sqrt(IC) + 3e-3 * |cpu|), and after switching it off again within
 * the fp32 tolerance. */
#include "gpu_test_util.h"

typedef struct {
    int B, IC, OC, bias, din;
} linear_case_t;

static const linear_case_t cases[] = {
    {1, 1, 1, 1, 1},     {3, 7, 5, 1, 1},   {16, 33, 10, 0, 1},
    {64, 300, 129, 1, 0}, {5, 1024, 3, 1, 1}, {128, 96, 512, 0, 0},
};

static void run_case(const linear_case_t *k, uint64_t seed)
{
    gt_rng_t r = {seed};
    size_t nin = (size_t)k->B * k->IC, nw = (size_t)k->OC * k->IC;
    size_t nout = (size_t)k->B * k->OC;
    float *in = gt_random(&r, nin, -1, 1), *w = gt_random(&r, nw, -1, 1);
    float *bias = k->bias ? gt_random(&r, (size_t)k->OC, -1, 1) : NULL;
    float *dout = gt_random(&r, nout, -1, 1);
    float *out = gt_host(nout), *din = gt_host(nin), *dw = gt_host(nw);
    float *db = gt_host((size_t)k->OC);
    linear_forward_cpu(out, in, w, bias, k->B, k->IC, k->OC);
    linear_backward_cpu(k->din ? din : NULL, dw, k->bias ? db : NULL, dout, in,
                        w, k->B, k->IC, k->OC);

    float *d_in = gt_devf(in, nin), *d_w = gt_devf(w, nw);
    float *d_bias = bias ? gt_devf(bias, (size_t)k->OC) : NULL;
    float *d_dout = gt_devf(dout, nout), *d_out = gt_devf(NULL, nout);
    float *d_din = gt_devf(NULL, nin), *d_dw = gt_devf(NULL, nw);
    float *d_db = gt_devf(NULL, (size_t)k->OC);
    linear_forward_cuda(d_out, d_in, d_w, d_bias, k->B, k->IC, k->OC);
    linear_backward_cuda(k->din ? d_din : NULL, d_dw, k->bias ? d_db : NULL,
                         d_dout, d_in, d_w, k->B, k->IC, k->OC);
    gt_check_dev("out", d_out, out, nout, gt_sum_tol((size_t)k->IC), 1e-5);
    gt_check_dev("dweight", d_dw, dw, nw, gt_sum_tol((size_t)k->B), 1e-5);
    if (k->din)
        gt_check_dev("din", d_din, din, nin, gt_sum_tol((size_t)k->OC), 1e-5);
    if (k->bias)
        gt_check_dev("dbias", d_db, db, (size_t)k->OC,
                     gt_sum_tol((size_t)k->B), 1e-5);

    kernels_cuda_buffer_free(d_in);
    kernels_cuda_buffer_free(d_w);
    kernels_cuda_buffer_free(d_bias);
    kernels_cuda_buffer_free(d_dout);
    kernels_cuda_buffer_free(d_out);
    kernels_cuda_buffer_free(d_din);
    kernels_cuda_buffer_free(d_dw);
    kernels_cuda_buffer_free(d_db);
    free(in);
    free(w);
    free(bias);
    free(dout);
    free(out);
    free(din);
    free(dw);
    free(db);
}

static void test_linear_vs_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 1000 + i);
}

static void test_linear_tf32_switch(void **state)
{
    (void)state;
    gt_rng_t r = {77};
    int B = 256, IC = 512, OC = 256;
    size_t nin = (size_t)B * IC, nw = (size_t)OC * IC, nout = (size_t)B * OC;
    float *in = gt_random(&r, nin, -1, 1), *w = gt_random(&r, nw, -1, 1);
    float *out = gt_host(nout);
    linear_forward_cpu(out, in, w, NULL, B, IC, OC);
    float *d_in = gt_devf(in, nin), *d_w = gt_devf(w, nw);
    float *d_out = gt_devf(NULL, nout);

    kernels_cuda_set_tf32(1);
    linear_forward_cuda(d_out, d_in, d_w, NULL, B, IC, OC);
    gt_check_dev("out (tf32)", d_out, out, nout, 3e-3 * sqrt((double)IC),
                 3e-3);
    kernels_cuda_set_tf32(0);
    linear_forward_cuda(d_out, d_in, d_w, NULL, B, IC, OC);
    gt_check_dev("out (fp32 again)", d_out, out, nout, gt_sum_tol((size_t)IC),
                 1e-5);

    kernels_cuda_buffer_free(d_in);
    kernels_cuda_buffer_free(d_w);
    kernels_cuda_buffer_free(d_out);
    free(in);
    free(w);
    free(out);
}

int main(void)
{
    gt_require_device("test_kernels_cuda_linear");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_vs_cpu),
        cmocka_unit_test(test_linear_tf32_switch),
    };
    return cmocka_run_group_tests(tests, gt_setup, gt_teardown);
}
