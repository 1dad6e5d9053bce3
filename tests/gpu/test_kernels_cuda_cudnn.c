/* GPU test: the cuDNN convolutions (conv2d_{forward,backward}_cudnn, every
 * storage format) against the CPU reference, and their plans.
 *
 * Shapes are test_kernels_cuda_conv's (3x3 pad 1, strides 2 and 3, 1x1,
 * 5x5 with bias, the 7x7/2 stem, non-square kernels, a ResNet stage, a
 * bottleneck), each in fp32 NCHW (strict: TF32 off), fp32 NHWC, fp16 and
 * bf16 in both layouts. Inputs, weights and dout are rounded to the dtype
 * on the host, so the cast of the fp32 master weights is exact and the CPU
 * reference sees what the GPU sees; fp32 accumulation then leaves the
 * fp32 tolerance (gt_sum_tol(terms) + 1e-5 |cpu|, terms as in the conv
 * test) plus one rounding of each stored result (gt_ulp; dweight is stored
 * in the dtype before its fp32 copy, as a half-precision convolution's
 * weight gradient is). Bias and dbias use the own kernels beside cuDNN.
 * With TF32 the products' inputs keep 10 mantissa bits: 2^-10 sqrt(terms)
 * more, absolute (an indexing mistake moves a result by ~sqrt(terms) / 3).
 *
 * Plans: planning a shape twice returns the same workspace; the workspace a
 * plan reports is enough for all three directions (the emulation checks it
 * against each algorithm's need); a shape first met by a call (a smaller
 * batch) still runs. TF32: with kernels_cuda_set_tf32(1) the fp32 result
 * stays within TF32's tolerance (~2^-11 per product) of the CPU.
 *
 * Skipped (77) without a device, or when this build has no cuDNN (the
 * reason printed). */
#include "gpu_test_util.h"

#include "common/common.h"

#include "conv_cases.h"

static const conv_case_t cases[] = {
    GT_CONV_CASES_COMMON,
    {4, 32, 14, 14, 32, 3, 3, 1, 1, 0, 1}, /* a ResNet stage, small */
    {4, 64, 7, 7, 32, 1, 1, 1, 0, 0, 1},   /* bottleneck 1x1 reduce */
};

static const kern_format_t formats[] = {
    {KERN_F32, KERN_NCHW}, {KERN_F32, KERN_NHWC}, {KERN_F16, KERN_NCHW},
    {KERN_F16, KERN_NHWC}, {KERN_BF16, KERN_NCHW}, {KERN_BF16, KERN_NHWC},
};

static void require_cudnn(void)
{
    char why[256] = "";
    int rc = kernels_cudnn_init(why, sizeof why);
    if (rc == RT_ENOTSUP) {
        printf("test_kernels_cuda_cudnn: skipped: %s\n", why);
        exit(77);
    }
    assert_int_equal(rc, 0);
    assert_true(kernels_cudnn_version() >= 90000);
}

/* eps_extra: a relative term for TF32 products. ws_given 0: plan the shape
 * first (the start-up path); else run unplanned with that workspace. */
static void run_case(const conv_case_t *k, kern_format_t f, double eps_extra,
                     size_t ws_given, uint64_t seed)
{
    conv2d_shape_t s;
    assert_int_equal(conv2d_shape_init(&s, k->B, k->C, k->H, k->W, k->OC, k->KH,
                                       k->KW, k->stride, k->pad),
                     0);
    gt_rng_t r = {seed};
    size_t nin = (size_t)s.B * s.C * s.H * s.W;
    size_t nw = (size_t)s.OC * s.C * s.KH * s.KW;
    size_t nout = (size_t)s.B * s.OC * s.OH * s.OW;
    float *in = gt_random(&r, nin, -1, 1), *w = gt_random(&r, nw, -1, 1);
    float *bias = k->bias ? gt_random(&r, (size_t)s.OC, -1, 1) : NULL;
    float *dout = gt_random(&r, nout, -1, 1);
    gt_quantize(in, nin, f.dtype);
    gt_quantize(w, nw, f.dtype);
    gt_quantize(dout, nout, f.dtype);
    float *out = gt_host(nout), *din = gt_host(nin), *dw = gt_host(nw);
    float *db = gt_host((size_t)s.OC), *ws = gt_host(conv2d_workspace_floats(&s));
    conv2d_forward_cpu(out, in, w, bias, &s, ws);
    conv2d_backward_cpu(k->din ? din : NULL, dw, k->bias ? db : NULL, dout, in, w, &s, ws);

    size_t ws_floats = ws_given;
    if (!ws_given) {
        ws_floats = conv2d_workspace_floats_cudnn(&s, f);
        assert_int_equal(kernels_cuda_synchronize(), 0);
        assert_int_equal(conv2d_workspace_floats_cudnn(&s, f), ws_floats); /* planned once */
    }
    void *d_in = gt_dev_fmt(in, s.B, s.C, s.H, s.W, f);
    void *d_dout = gt_dev_fmt(dout, s.B, s.OC, s.OH, s.OW, f);
    void *d_out = gt_dev_fmt(NULL, s.B, s.OC, s.OH, s.OW, f);
    void *d_din = gt_dev_fmt(NULL, s.B, s.C, s.H, s.W, f);
    float *d_w = gt_devf(w, nw), *d_bias = bias ? gt_devf(bias, (size_t)s.OC) : NULL;
    float *d_dw = gt_devf(NULL, nw), *d_db = gt_devf(NULL, (size_t)s.OC);
    float *d_ws = gt_devf(NULL, ws_floats ? ws_floats : 1);
    conv2d_forward_cudnn(d_out, d_in, d_w, d_bias, &s, d_ws, f);
    conv2d_backward_cudnn(k->din ? d_din : NULL, d_dw, k->bias ? d_db : NULL, d_dout, d_in,
                          d_w, &s, d_ws, f);

    double e = gt_ulp(f.dtype);
    size_t taps = (size_t)s.KH * s.KW, positions = (size_t)s.B * s.OH * s.OW;
    size_t t_out = (size_t)s.C * taps, t_din = (size_t)s.OC * taps;
    /* TF32 rounds each product's inputs: errors ~ 2^-11 per product, adding
     * like a random walk (values in [-1, 1]). A bias is added to the stored
     * convolution, whose rounding is relative to the sum before the bias
     * (|conv| < 4 here), not to the result. */
    double tf = 2 * eps_extra;
    gt_check_fmt("out", d_out, out, s.B, s.OC, s.OH, s.OW, f,
                 gt_sum_tol(t_out) + tf * sqrt((double)t_out) + (k->bias ? 4 * e : 0),
                 e + eps_extra);
    gt_check_dev("dweight", d_dw, dw, nw, gt_sum_tol(positions) + tf * sqrt((double)positions),
                 e + 1e-5);
    if (k->din)
        gt_check_fmt("din", d_din, din, s.B, s.C, s.H, s.W, f,
                     gt_sum_tol(t_din) + tf * sqrt((double)t_din), e);
    if (k->bias)
        gt_check_dev("dbias", d_db, db, (size_t)s.OC, gt_sum_tol(positions), 1e-5);

    void *dev[] = {d_in, d_dout, d_out, d_din, d_w, d_bias, d_dw, d_db, d_ws};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        kernels_cuda_buffer_free(dev[i]);
    float *host[] = {in, w, bias, dout, out, din, dw, db, ws};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

static void test_cudnn_vs_cpu(void **state)
{
    (void)state;
    require_cudnn();
    size_t most = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t nw = (size_t)cases[i].OC * cases[i].C * cases[i].KH * cases[i].KW;
        most = nw > most ? nw : most;
    }
    assert_int_equal(kernels_cuda_weight_scratch(most), 0);
    kernels_cuda_set_tf32(0);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (size_t k = 0; k < sizeof formats / sizeof formats[0]; k++) {
            printf("case %zu %s: B=%d C=%d %dx%d OC=%d %dx%d/%d pad %d\n", i,
                   gt_fmt_name(formats[k]), cases[i].B, cases[i].C, cases[i].H,
                   cases[i].W, cases[i].OC, cases[i].KH, cases[i].KW, cases[i].stride,
                   cases[i].pad);
            run_case(&cases[i], formats[k], 0.0, 0, 7000 + 10 * i + k);
        }
}

/* fp32 with TF32 allowed: inputs keep 10 mantissa bits in the products. */
static void test_cudnn_tf32(void **state)
{
    (void)state;
    require_cudnn();
    kernels_cuda_set_tf32(1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i += 3)
        run_case(&cases[i], formats[0], 0x1p-10, 0, 7500 + i);
    kernels_cuda_set_tf32(0);
}

static void print_line(void *ctx, const char *text)
{
    (*(int *)ctx)++;
    printf("  plan: %s\n", text);
}

/* A shape never planned (a smaller last batch than the one planned) is
 * planned by the call itself, within the workspace of the same layer at
 * the planned batch, and gives the right answer. */
static void test_cudnn_unplanned_shape(void **state)
{
    (void)state;
    require_cudnn();
    conv_case_t k = cases[8];
    conv2d_shape_t s;
    assert_int_equal(conv2d_shape_init(&s, k.B, k.C, k.H, k.W, k.OC, k.KH, k.KW,
                                       k.stride, k.pad),
                     0);
    size_t ws = conv2d_workspace_floats_cudnn(&s, formats[3]);
    k.B = 3;
    int before = 0;
    kernels_cudnn_describe_plans(print_line, &before);
    run_case(&k, formats[3], 0.0, ws ? ws : 1, 7900);
    int after = 0;
    kernels_cudnn_describe_plans(print_line, &after);
    assert_int_equal(after, before + 1);
    printf("algorithm choice: %s\n", kernels_cudnn_choice());
}

int main(void)
{
    gt_require_device("test_kernels_cuda_cudnn");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cudnn_vs_cpu),
        cmocka_unit_test(test_cudnn_tf32),
        cmocka_unit_test(test_cudnn_unplanned_shape),
    };
    return cmocka_run_group_tests(tests, gt_setup, gt_teardown);
}
