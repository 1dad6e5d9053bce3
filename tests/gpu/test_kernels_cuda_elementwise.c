/* GPU test: ReLU (forward, backward, in place), the residual add (out of
 * place, in place on either input), add_inplace and the SGD update (with
 * momentum over several steps, and without momentum / with a NULL buffer)
 * against the CPU reference. Counts are odd and large enough for a
 * grid-stride loop to wrap. ReLU and add are single IEEE operations per
 * element: results must be bitwise equal (tolerance 0). SGD may be fused
 * into FMAs by nvcc: 1e-6 + 1e-6 |cpu| after 5 steps. */
#include "gpu_test_util.h"

#define COUNT ((size_t)5000011)

static void test_relu(void **state)
{
    (void)state;
    gt_rng_t r = {5001};
    float *in = gt_random(&r, COUNT, -1, 1), *dout = gt_random(&r, COUNT, -1, 1);
    in[7] = 0.0f;
    in[8] = -0.0f;
    float *out = gt_host(COUNT), *din = gt_host(COUNT);
    relu_forward_cpu(out, in, COUNT);
    relu_backward_cpu(din, dout, out, COUNT);
    float *d_in = gt_devf(in, COUNT), *d_dout = gt_devf(dout, COUNT);
    float *d_out = gt_devf(NULL, COUNT), *d_din = gt_devf(NULL, COUNT);
    relu_forward_cuda(d_out, d_in, COUNT);
    relu_backward_cuda(d_din, d_dout, d_out, COUNT);
    gt_check_dev("relu out", d_out, out, COUNT, 0, 0);
    gt_check_dev("relu din", d_din, din, COUNT, 0, 0);
    /* In place: out == in, din == dout. */
    relu_forward_cuda(d_in, d_in, COUNT);
    relu_backward_cuda(d_dout, d_dout, d_in, COUNT);
    gt_check_dev("relu out (in place)", d_in, out, COUNT, 0, 0);
    gt_check_dev("relu din (in place)", d_dout, din, COUNT, 0, 0);
    kernels_cuda_buffer_free(d_in);
    kernels_cuda_buffer_free(d_dout);
    kernels_cuda_buffer_free(d_out);
    kernels_cuda_buffer_free(d_din);
    free(in);
    free(dout);
    free(out);
    free(din);
}

static void test_add(void **state)
{
    (void)state;
    gt_rng_t r = {5002};
    float *a = gt_random(&r, COUNT, -1, 1), *b = gt_random(&r, COUNT, -1, 1);
    float *sum = gt_host(COUNT), *acc = gt_host(COUNT);
    add_forward_cpu(sum, a, b, COUNT);
    memcpy(acc, a, COUNT * sizeof(float));
    add_inplace_cpu(acc, b, COUNT);
    add_inplace_cpu(acc, b, COUNT);
    float *d_a = gt_devf(a, COUNT), *d_b = gt_devf(b, COUNT);
    float *d_out = gt_devf(NULL, COUNT);
    add_forward_cuda(d_out, d_a, d_b, COUNT);
    gt_check_dev("add out", d_out, sum, COUNT, 0, 0);
    add_forward_cuda(d_out, d_out, d_b, COUNT); /* out == a: a + 2b */
    gt_check_dev("add out (in place)", d_out, acc, COUNT, 0, 0);
    add_inplace_cuda(d_a, d_b, COUNT);
    add_inplace_cuda(d_a, d_b, COUNT);
    gt_check_dev("add_inplace", d_a, acc, COUNT, 0, 0);
    kernels_cuda_buffer_free(d_a);
    kernels_cuda_buffer_free(d_b);
    kernels_cuda_buffer_free(d_out);
    free(a);
    free(b);
    free(sum);
    free(acc);
}

static void sgd_case(float momentum, int with_buf, uint64_t seed)
{
    gt_rng_t r = {seed};
    float *p = gt_random(&r, COUNT, -1, 1), *buf = gt_host(COUNT);
    float *d_p = gt_devf(p, COUNT), *d_buf = gt_devf(NULL, COUNT);
    float *d_g = gt_devf(NULL, COUNT);
    for (int step = 0; step < 5; step++) {
        float *g = gt_random(&r, COUNT, -1, 1);
        assert_int_equal(kernels_cuda_copy_to_device(d_g, g,
                                                     COUNT * sizeof(float)), 0);
        sgd_update_cpu(p, with_buf ? buf : NULL, g, COUNT, 0.05f, momentum,
                       1e-4f);
        sgd_update_cuda(d_p, with_buf ? d_buf : NULL, d_g, COUNT, 0.05f,
                        momentum, 1e-4f);
        free(g);
    }
    gt_check_dev("params", d_p, p, COUNT, 1e-6, 1e-6);
    if (with_buf)
        gt_check_dev("momentum_buf", d_buf, buf, COUNT, 1e-6, 1e-6);
    kernels_cuda_buffer_free(d_p);
    kernels_cuda_buffer_free(d_buf);
    kernels_cuda_buffer_free(d_g);
    free(p);
    free(buf);
}

static void test_sgd(void **state)
{
    (void)state;
    sgd_case(0.9f, 1, 5003);
    sgd_case(0.0f, 1, 5004);
    sgd_case(0.9f, 0, 5005);
}

int main(void)
{
    gt_require_device("test_kernels_cuda_elementwise");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relu),
        cmocka_unit_test(test_add),
        cmocka_unit_test(test_sgd),
    };
    return cmocka_run_group_tests(tests, gt_setup, gt_teardown);
}
