/* GPU test: max, average and global average pooling against the CPU
 * reference. Max pooling: values and argmax must be identical (the window
 * is walked in the same order), including planted ties (first maximum wins),
 * a NaN (propagates) and windows of padding only (0, argmax -1); its
 * backward adds overlapping windows with atomics, so 1e-6 + 1e-6 |cpu|.
 * Average pooling forward and backward: 1e-6 + 1e-6 |cpu| (same order of
 * additions as the CPU); global average pooling (the CPU's sum is
 * vectorised, so its order differs): 1e-6 + 1e-5 |cpu|. */
#include "gpu_test_util.h"

typedef struct {
    int B, C, H, W, k, stride, pad;
} pool_case_t;

static const pool_case_t cases[] = {
    {2, 3, 8, 8, 2, 2, 0},     /* LeNet 2x2/2 */
    {2, 4, 15, 13, 3, 2, 1},   /* ResNet 3x3/2 pad 1, overlapping, odd */
    {1, 2, 5, 5, 3, 1, 1},     /* stride 1, heavy overlap */
    {3, 2, 4, 6, 2, 3, 1},     /* stride > k: gaps */
    {1, 2, 2, 3, 1, 1, 1},     /* 1x1 pad 1: padding-only border windows */
    {4, 16, 56, 56, 3, 2, 1},  /* a stem-sized map */
};

static int out_size(int size, int k, int stride, int pad)
{
    return (size + 2 * pad - k) / stride + 1;
}

static void run_case(const pool_case_t *p, uint64_t seed)
{
    gt_rng_t r = {seed};
    int OH = out_size(p->H, p->k, p->stride, p->pad);
    int OW = out_size(p->W, p->k, p->stride, p->pad);
    size_t nin = (size_t)p->B * p->C * p->H * p->W;
    size_t nout = (size_t)p->B * p->C * OH * OW;
    float *in = gt_random(&r, nin, -1, 1), *dout = gt_random(&r, nout, -1, 1);
    /* Ties: a run of equal values; a NaN somewhere in the middle. */
    for (size_t i = 0; i + 3 < nin && i < 24; i += 4)
        in[i + 1] = in[i];
    if (nin > 8)
        in[nin / 2] = NAN;
    float *out = gt_host(nout), *din = gt_host(nin);
    int32_t *argmax = calloc(nout, sizeof(int32_t));
    int32_t *argmax_gpu = calloc(nout, sizeof(int32_t));
    assert_non_null(argmax);
    assert_non_null(argmax_gpu);
    float *d_in = gt_devf(in, nin), *d_dout = gt_devf(dout, nout);
    float *d_out = gt_devf(NULL, nout), *d_din = gt_devf(NULL, nin);
    int32_t *d_argmax = gt_dev(NULL, nout * sizeof(int32_t));

    maxpool2d_forward_cpu(out, argmax, in, p->B, p->C, p->H, p->W, p->k,
                          p->stride, p->pad);
    maxpool2d_forward_cuda(d_out, d_argmax, d_in, p->B, p->C, p->H, p->W, p->k,
                           p->stride, p->pad);
    float *got = gt_fetch(d_out, nout);
    assert_int_equal(kernels_cuda_copy_to_host(argmax_gpu, d_argmax,
                                               nout * sizeof(int32_t)), 0);
    for (size_t i = 0; i < nout; i++) {
        if (argmax_gpu[i] != argmax[i])
            fail_msg("argmax[%zu]: gpu %d, cpu %d", i, (int)argmax_gpu[i],
                     (int)argmax[i]);
        if (memcmp(&got[i], &out[i], sizeof(float)) != 0)
            fail_msg("maxpool out[%zu]: gpu %.9g, cpu %.9g (bitwise)", i,
                     (double)got[i], (double)out[i]);
    }
    free(got);

    maxpool2d_backward_cpu(din, dout, argmax, p->B, p->C, p->H, p->W, OH, OW);
    maxpool2d_backward_cuda(d_din, d_dout, d_argmax, p->B, p->C, p->H, p->W,
                            OH, OW);
    gt_check_dev("maxpool din", d_din, din, nin, 1e-6, 1e-6);

    /* Average pooling on finite input. */
    in[nin / 2] = 0.5f;
    assert_int_equal(kernels_cuda_copy_to_device(d_in, in, nin * sizeof(float)),
                     0);
    avgpool2d_forward_cpu(out, in, p->B, p->C, p->H, p->W, p->k, p->stride,
                          p->pad);
    avgpool2d_forward_cuda(d_out, d_in, p->B, p->C, p->H, p->W, p->k,
                           p->stride, p->pad);
    gt_check_dev("avgpool out", d_out, out, nout, 1e-6, 1e-6);
    avgpool2d_backward_cpu(din, dout, p->B, p->C, p->H, p->W, p->k, p->stride,
                           p->pad);
    avgpool2d_backward_cuda(d_din, d_dout, p->B, p->C, p->H, p->W, p->k,
                            p->stride, p->pad);
    gt_check_dev("avgpool din", d_din, din, nin, 1e-6, 1e-6);

    /* Global average over each (H*W) plane. */
    size_t planes = (size_t)p->B * p->C;
    int HW = p->H * p->W;
    global_avgpool_forward_cpu(out, in, p->B, p->C, HW);
    global_avgpool_forward_cuda(d_out, d_in, p->B, p->C, HW);
    gt_check_dev("global avgpool out", d_out, out, planes, 1e-6, 1e-5);
    global_avgpool_backward_cpu(din, dout, p->B, p->C, HW);
    global_avgpool_backward_cuda(d_din, d_dout, p->B, p->C, HW);
    gt_check_dev("global avgpool din", d_din, din, nin, 1e-6, 1e-6);

    kernels_cuda_buffer_free(d_in);
    kernels_cuda_buffer_free(d_dout);
    kernels_cuda_buffer_free(d_out);
    kernels_cuda_buffer_free(d_din);
    kernels_cuda_buffer_free(d_argmax);
    free(in);
    free(dout);
    free(out);
    free(din);
    free(argmax);
    free(argmax_gpu);
}

static void test_pool_vs_cpu(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 4000 + i);
}

int main(void)
{
    gt_require_device("test_kernels_cuda_pool");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_vs_cpu),
    };
    return cmocka_run_group_tests(tests, gt_setup, gt_teardown);
}
