/* GPU test: conv2d_forward_cuda / conv2d_backward_cuda against the CPU
 * reference on random inputs in [-1, 1]. Shapes cover 3x3 pad 1, stride 2
 * and 3, odd and non-square sizes, non-square kernels, 1x1 with stride 1
 * (no im2col: batched GEMM straight on the input) and stride 2, the 7x7/2
 * stem, bias and no bias, din NULL, and one shape large enough that the GPU
 * splits the batch into uneven chunks (2 + 2 + 1 images; test_kernels_cuda_host
 * checks that split), so the dweight accumulation across chunks is exercised.
 * Tolerance |gpu - cpu| <= gt_sum_tol(terms) + 1e-5 * |cpu|, terms = the
 * length of the sum behind each output: C*KH*KW (out), B*OH*OW (dweight,
 * dbias), OC*KH*KW (din). Each side gets its own workspace size. */
#include "gpu_test_util.h"

#include "conv_cases.h"

static const conv_case_t cases[] = {
    GT_CONV_CASES_COMMON,
    {8, 64, 14, 14, 64, 3, 3, 1, 1, 0, 1},  /* a ResNet stage, small */
    {8, 256, 7, 7, 128, 1, 1, 1, 0, 0, 1},  /* bottleneck 1x1 reduce */
    {5, 1, 1024, 1024, 16, 3, 3, 1, 1, 1, 1} /* chunks of 2 + 2 + 1 */
};

static void run_case(const conv_case_t *k, uint64_t seed)
{
    conv2d_shape_t s;
    assert_int_equal(conv2d_shape_init(&s, k->B, k->C, k->H, k->W, k->OC,
                                       k->KH, k->KW, k->stride, k->pad),
                     0);
    gt_rng_t r = {seed};
    size_t nin = (size_t)s.B * s.C * s.H * s.W;
    size_t nw = (size_t)s.OC * s.C * s.KH * s.KW;
    size_t nout = (size_t)s.B * s.OC * s.OH * s.OW;
    size_t ws_cpu = conv2d_workspace_floats(&s);
    size_t ws_gpu = conv2d_workspace_floats_cuda(&s);
    float *in = gt_random(&r, nin, -1, 1), *w = gt_random(&r, nw, -1, 1);
    float *bias = k->bias ? gt_random(&r, (size_t)s.OC, -1, 1) : NULL;
    float *dout = gt_random(&r, nout, -1, 1);
    float *out = gt_host(nout), *din = gt_host(nin), *dw = gt_host(nw);
    float *db = gt_host((size_t)s.OC), *ws = gt_host(ws_cpu);
    conv2d_forward_cpu(out, in, w, bias, &s, ws);
    conv2d_backward_cpu(k->din ? din : NULL, dw, k->bias ? db : NULL, dout, in,
                        w, &s, ws);

    float *d_in = gt_devf(in, nin), *d_w = gt_devf(w, nw);
    float *d_bias = bias ? gt_devf(bias, (size_t)s.OC) : NULL;
    float *d_dout = gt_devf(dout, nout), *d_out = gt_devf(NULL, nout);
    float *d_din = gt_devf(NULL, nin), *d_dw = gt_devf(NULL, nw);
    float *d_db = gt_devf(NULL, (size_t)s.OC), *d_ws = gt_devf(NULL, ws_gpu);
    conv2d_forward_cuda(d_out, d_in, d_w, d_bias, &s, d_ws);
    conv2d_backward_cuda(k->din ? d_din : NULL, d_dw, k->bias ? d_db : NULL,
                         d_dout, d_in, d_w, &s, d_ws);

    size_t taps = (size_t)s.KH * s.KW;
    size_t positions = (size_t)s.B * s.OH * s.OW;
    gt_check_dev("out", d_out, out, nout, gt_sum_tol((size_t)s.C * taps), 1e-5);
    gt_check_dev("dweight", d_dw, dw, nw, gt_sum_tol(positions), 1e-5);
    if (k->din)
        gt_check_dev("din", d_din, din, nin, gt_sum_tol((size_t)s.OC * taps),
                     1e-5);
    if (k->bias)
        gt_check_dev("dbias", d_db, db, (size_t)s.OC, gt_sum_tol(positions),
                     1e-5);

    kernels_cuda_buffer_free(d_in);
    kernels_cuda_buffer_free(d_w);
    kernels_cuda_buffer_free(d_bias);
    kernels_cuda_buffer_free(d_dout);
    kernels_cuda_buffer_free(d_out);
    kernels_cuda_buffer_free(d_din);
    kernels_cuda_buffer_free(d_dw);
    kernels_cuda_buffer_free(d_db);
    kernels_cuda_buffer_free(d_ws);
    free(in);
    free(w);
    free(bias);
    free(dout);
    free(out);
    free(din);
    free(dw);
    free(db);
    free(ws);
}

static void test_conv_vs_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        printf("case %zu: B=%d C=%d %dx%d OC=%d %dx%d/%d pad %d\n", i,
               cases[i].B, cases[i].C, cases[i].H, cases[i].W, cases[i].OC,
               cases[i].KH, cases[i].KW, cases[i].stride, cases[i].pad);
        run_case(&cases[i], 2000 + i);
    }
}

int main(void)
{
    gt_require_device("test_kernels_cuda_conv");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_vs_cpu),
    };
    return cmocka_run_group_tests(tests, gt_setup, gt_teardown);
}
