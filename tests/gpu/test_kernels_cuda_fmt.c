/* GPU test: the storage-format ops (*_fmt_cuda: fp32, fp16, bf16 in NCHW
 * and NHWC) against the CPU reference.
 *
 * Inputs are random, rounded on the host to the format's dtype, so the CPU
 * reference (fp32, NCHW) starts from exactly the values the GPU holds; the
 * GPU result is read back through tensor_to_f32_fmt_cuda. What remains is
 * the GPU's own error: one rounding of each stored result (eps = 2^-10 for
 * fp16, 2^-7 for bf16, gt_ulp) plus the fp32 tolerances of the fp32 tests.
 * Checked:
 *   convert      fp32 -> format -> fp32 is the host's rounding exactly; the
 *                NHWC element order and the fp16 bit patterns, raw
 *   elementwise  relu, add: exactly round(cpu)
 *   batch norm   train (with and without the fused ReLU, both layouts:
 *                NHWC's two-pass chunked reduction), eval, backward (with
 *                the ReLU mask from the fused output), inputs with mean 3
 *   pooling      max (and its argmax, bit for bit), average, global average,
 *                forward and backward
 *   linear       fp16/bf16 (cublasGemmEx on the cast weights), fp32 dweight
 *   loss         fp16/bf16 logits; dlogits times a loss scale of 128 */
#include "gpu_test_util.h"

static const kern_format_t formats[] = {
    {KERN_F32, KERN_NCHW}, {KERN_F32, KERN_NHWC}, {KERN_F16, KERN_NCHW},
    {KERN_F16, KERN_NHWC}, {KERN_BF16, KERN_NCHW}, {KERN_BF16, KERN_NHWC},
};
#define FORMATS (sizeof formats / sizeof formats[0])

static float *rounded(gt_rng_t *r, size_t count, float lo, float hi,
                      kern_dtype_t t)
{
    float *p = gt_random(r, count, lo, hi);
    gt_quantize(p, count, t);
    return p;
}

static void test_convert(void **state)
{
    (void)state;
    int B = 2, C = 3, H = 4, W = 5;
    size_t n = (size_t)B * C * H * W;
    for (size_t k = 0; k < FORMATS; k++) {
        kern_format_t f = formats[k];
        gt_rng_t r = {100 + k};
        float *x = gt_random(&r, n, -3, 3), *want = gt_host(n);
        for (size_t i = 0; i < n; i++)
            want[i] = gt_round(f.dtype, x[i]);
        void *d = gt_dev_fmt(x, B, C, H, W, f);
        gt_check_fmt("roundtrip", d, want, B, C, H, W, f, 0, 0);
        if (f.layout == KERN_NHWC && f.dtype != KERN_BF16) {
            /* Raw: (b, c, h, w) at ((b*H + h)*W + w)*C + c. */
            size_t esize = kern_dtype_size(f.dtype);
            unsigned char *raw = malloc(n * esize);
            assert_non_null(raw);
            assert_int_equal(kernels_cuda_synchronize(), 0);
            assert_int_equal(kernels_cuda_copy_to_host(raw, d, n * esize), 0);
            for (int b = 0; b < B; b++)
                for (int c = 0; c < C; c++)
                    for (int h = 0; h < H; h++)
                        for (int w = 0; w < W; w++) {
                            size_t at = (((size_t)b * H + h) * W + w) * C + c;
                            float v = want[(((size_t)b * C + c) * H + h) * W + w];
                            float got;
                            if (f.dtype == KERN_F16) {
                                gt_f16_t hv;
                                memcpy(&hv, raw + at * 2, 2);
                                got = (float)hv;
                            } else {
                                memcpy(&got, raw + at * 4, 4);
                            }
                            if (got != v)
                                fail_msg("%s raw [%d,%d,%d,%d] at %zu: %g, want %g",
                                         gt_fmt_name(f), b, c, h, w, at,
                                         (double)got, (double)v);
                        }
            free(raw);
        }
        kernels_cuda_buffer_free(d);
        free(x);
        free(want);
    }
}

static void test_elementwise(void **state)
{
    (void)state;
    size_t n = 1000 + 17;
    for (size_t k = 0; k < FORMATS; k += 2) {
        kern_format_t f = formats[k];
        gt_rng_t r = {200 + k};
        float *a = rounded(&r, n, -2, 2, f.dtype), *b = rounded(&r, n, -2, 2, f.dtype);
        float *want = gt_host(n);
        void *da = gt_dev_fmt(a, 1, 1, 1, (int)n, f), *db = gt_dev_fmt(b, 1, 1, 1, (int)n, f);
        void *dout = gt_dev_fmt(NULL, 1, 1, 1, (int)n, f);

        relu_forward_cpu(want, a, n);
        relu_forward_fmt_cuda(dout, da, n, f);
        gt_check_fmt("relu", dout, want, 1, 1, 1, (int)n, f, 0, 0);
        relu_backward_cpu(want, b, a, n);
        relu_backward_fmt_cuda(dout, db, da, n, f);
        gt_check_fmt("relu backward", dout, want, 1, 1, 1, (int)n, f, 0, 0);
        add_forward_cpu(want, a, b, n);
        gt_quantize(want, n, f.dtype);
        add_forward_fmt_cuda(dout, da, db, n, f);
        gt_check_fmt("add", dout, want, 1, 1, 1, (int)n, f, 0, 0);
        add_inplace_fmt_cuda(da, db, n, f);
        gt_check_fmt("add in place", da, want, 1, 1, 1, (int)n, f, 0, 0);

        kernels_cuda_buffer_free(da);
        kernels_cuda_buffer_free(db);
        kernels_cuda_buffer_free(dout);
        free(a);
        free(b);
        free(want);
    }
}

typedef struct {
    int B, C, H, W, din;
} bn_case_t;

static void bn_case(const bn_case_t *k, kern_format_t f, int relu, uint64_t seed)
{
    gt_rng_t r = {seed};
    int B = k->B, C = k->C, H = k->H, W = k->W, HW = H * W;
    size_t n = (size_t)B * C * HW, nc = (size_t)C;
    double eps_out = gt_ulp(f.dtype) + 1e-5;
    /* NHWC's one-pass shifted sums: statistics a little looser. */
    double eps_stat = f.layout == KERN_NHWC ? 1e-4 : 1e-5;
    float *in = rounded(&r, n, 2, 4, f.dtype), *dout = rounded(&r, n, -1, 1, f.dtype);
    float *gamma = gt_random(&r, nc, 0.5f, 1.5f), *beta = gt_random(&r, nc, -1, 1);
    float *rmean = gt_random(&r, nc, -1, 1), *rvar = gt_random(&r, nc, 0.5f, 2);
    float *out = gt_host(n), *smean = gt_host(nc), *srstd = gt_host(nc);
    float *din = gt_host(n), *dgamma = gt_host(nc), *dbeta = gt_host(nc);
    void *d_in = gt_dev_fmt(in, B, C, H, W, f), *d_dout = gt_dev_fmt(dout, B, C, H, W, f);
    void *d_out = gt_dev_fmt(NULL, B, C, H, W, f), *d_din = gt_dev_fmt(NULL, B, C, H, W, f);
    float *d_gamma = gt_devf(gamma, nc), *d_beta = gt_devf(beta, nc);
    float *d_rmean = gt_devf(rmean, nc), *d_rvar = gt_devf(rvar, nc);
    float *d_smean = gt_devf(NULL, nc), *d_srstd = gt_devf(NULL, nc);
    float *d_dgamma = gt_devf(NULL, nc), *d_dbeta = gt_devf(NULL, nc);

    for (int step = 0; step < 2; step++) {
        batchnorm_forward_train_cpu(out, smean, srstd, rmean, rvar, in, gamma, beta, B,
                                    C, HW, 0.1f, 1e-5f);
        batchnorm_forward_train_fmt_cuda(d_out, d_smean, d_srstd, d_rmean, d_rvar, d_in,
                                         d_gamma, d_beta, B, C, HW, 0.1f, 1e-5f, relu, f);
    }
    if (relu)
        relu_forward_cpu(out, out, n);
    gt_check_fmt("bn out", d_out, out, B, C, H, W, f, 1e-5, eps_out);
    gt_check_dev("save_mean", d_smean, smean, nc, 1e-5, eps_stat);
    gt_check_dev("save_rstd", d_srstd, srstd, nc, 1e-5, eps_stat);
    gt_check_dev("running_mean", d_rmean, rmean, nc, 1e-5, eps_stat);
    gt_check_dev("running_var", d_rvar, rvar, nc, 1e-5, eps_stat);

    /* Backward from the fused output's mask: dout where out > 0. */
    float *dy = gt_host(n);
    if (relu)
        relu_backward_cpu(dy, dout, out, n);
    else
        memcpy(dy, dout, n * sizeof(float));
    batchnorm_backward_cpu(k->din ? din : NULL, dgamma, dbeta, dy, in, gamma, smean, srstd,
                           B, C, HW);
    batchnorm_backward_fmt_cuda(k->din ? d_din : NULL, d_dgamma, d_dbeta, d_dout, d_in,
                                d_gamma, d_smean, d_srstd, relu ? d_out : NULL, B, C, HW, f);
    size_t terms = (size_t)B * HW;
    gt_check_dev("dgamma", d_dgamma, dgamma, nc, gt_sum_tol(terms), 1e-4);
    gt_check_dev("dbeta", d_dbeta, dbeta, nc, gt_sum_tol(terms), 1e-4);
    if (k->din)
        gt_check_fmt("bn din", d_din, din, B, C, H, W, f, 1e-5, eps_out + 1e-4);

    batchnorm_forward_eval_cpu(out, in, gamma, beta, rmean, rvar, B, C, HW, 1e-5f);
    if (relu)
        relu_forward_cpu(out, out, n);
    assert_int_equal(kernels_cuda_copy_to_device(d_rmean, rmean, nc * sizeof(float)), 0);
    assert_int_equal(kernels_cuda_copy_to_device(d_rvar, rvar, nc * sizeof(float)), 0);
    batchnorm_forward_eval_fmt_cuda(d_out, d_in, d_gamma, d_beta, d_rmean, d_rvar, B, C, HW,
                                    1e-5f, relu, f);
    gt_check_fmt("bn out (eval)", d_out, out, B, C, H, W, f, 1e-5, eps_out);

    void *dev[] = {d_in, d_dout, d_out, d_din, d_gamma, d_beta, d_rmean, d_rvar,
                   d_smean, d_srstd, d_dgamma, d_dbeta};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        kernels_cuda_buffer_free(dev[i]);
    float *host[] = {in, dout, gamma, beta, rmean, rvar, out, smean, srstd, din,
                     dgamma, dbeta, dy};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
        free(host[i]);
}

static void test_batchnorm(void **state)
{
    (void)state;
    /* One value per channel; a small map; more channels than a block's 32
     * and rows split over several chunks; HW above the NCHW block size. */
    static const bn_case_t cases[] = {
        {1, 1, 1, 1, 1}, {2, 3, 5, 1, 1}, {4, 70, 9, 11, 1}, {3, 5, 30, 50, 0},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t k = 0; k < FORMATS; k++)
            for (int relu = 0; relu < 2; relu++) {
                printf("bn case %zu %s relu %d\n", c, gt_fmt_name(formats[k]), relu);
                bn_case(&cases[c], formats[k], relu, 300 + 10 * c + 2 * k + relu);
            }
}

typedef struct {
    int B, C, H, W, k, stride, pad, max;
} pool_case_t;

static void pool_case(const pool_case_t *p, kern_format_t f, uint64_t seed)
{
    gt_rng_t r = {seed};
    int B = p->B, C = p->C, H = p->H, W = p->W;
    int OH = (H + 2 * p->pad - p->k) / p->stride + 1;
    int OW = (W + 2 * p->pad - p->k) / p->stride + 1;
    size_t n = (size_t)B * C * H * W, no = (size_t)B * C * OH * OW;
    double e = gt_ulp(f.dtype);
    float *in = rounded(&r, n, -2, 2, f.dtype), *dout = rounded(&r, no, -1, 1, f.dtype);
    float *out = gt_host(no), *din = gt_host(n);
    int32_t *argmax = calloc(no, sizeof(int32_t)), *got = calloc(no, sizeof(int32_t));
    assert_non_null(argmax);
    assert_non_null(got);
    void *d_in = gt_dev_fmt(in, B, C, H, W, f), *d_dout = gt_dev_fmt(dout, B, C, OH, OW, f);
    void *d_out = gt_dev_fmt(NULL, B, C, OH, OW, f), *d_din = gt_dev_fmt(NULL, B, C, H, W, f);
    int32_t *d_argmax = gt_dev(NULL, no * sizeof(int32_t));
    if (p->max) {
        maxpool2d_forward_cpu(out, argmax, in, B, C, H, W, p->k, p->stride, p->pad);
        maxpool2d_forward_fmt_cuda(d_out, d_argmax, d_in, B, C, H, W, p->k, p->stride,
                                   p->pad, f);
        gt_check_fmt("maxpool out", d_out, out, B, C, OH, OW, f, 0, 0);
        assert_int_equal(kernels_cuda_synchronize(), 0);
        assert_int_equal(kernels_cuda_copy_to_host(got, d_argmax, no * sizeof(int32_t)), 0);
        for (int b = 0; b < B; b++)
            for (int c = 0; c < C; c++)
                for (int q = 0; q < OH * OW; q++) {
                    size_t cpu_at = ((size_t)b * C + c) * OH * OW + q;
                    size_t at = f.layout == KERN_NHWC ? ((size_t)b * OH * OW + q) * C + c
                                                      : cpu_at;
                    if (got[at] != argmax[cpu_at])
                        fail_msg("%s argmax [%d,%d,%d]: %d, want %d", gt_fmt_name(f), b, c,
                                 q, got[at], argmax[cpu_at]);
                }
        maxpool2d_backward_cpu(din, dout, argmax, B, C, H, W, OH, OW);
        maxpool2d_backward_fmt_cuda(d_din, d_dout, d_argmax, B, C, H, W, OH, OW, f);
        /* Overlapping windows add in the storage type: a rounding each,
         * relative to the partial sums (|dout| <= 1, at most 4 of them). */
        gt_check_fmt("maxpool din", d_din, din, B, C, H, W, f, 2 * e, e);
    } else {
        avgpool2d_forward_cpu(out, in, B, C, H, W, p->k, p->stride, p->pad);
        avgpool2d_forward_fmt_cuda(d_out, d_in, B, C, H, W, p->k, p->stride, p->pad, f);
        gt_check_fmt("avgpool out", d_out, out, B, C, OH, OW, f, 1e-6, e);
        avgpool2d_backward_cpu(din, dout, B, C, H, W, p->k, p->stride, p->pad);
        avgpool2d_backward_fmt_cuda(d_din, d_dout, B, C, H, W, p->k, p->stride, p->pad, f);
        gt_check_fmt("avgpool din", d_din, din, B, C, H, W, f, 1e-6, e);
    }
    void *dev[] = {d_in, d_dout, d_out, d_din, d_argmax};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        kernels_cuda_buffer_free(dev[i]);
    free(in);
    free(dout);
    free(out);
    free(din);
    free(argmax);
    free(got);
}

static void gap_case(int B, int C, int H, int W, kern_format_t f, uint64_t seed)
{
    gt_rng_t r = {seed};
    size_t n = (size_t)B * C * H * W, no = (size_t)B * C;
    float *in = rounded(&r, n, -2, 2, f.dtype), *dout = rounded(&r, no, -1, 1, f.dtype);
    float *out = gt_host(no), *din = gt_host(n);
    void *d_in = gt_dev_fmt(in, B, C, H, W, f), *d_dout = gt_dev_fmt(dout, B, C, 1, 1, f);
    void *d_out = gt_dev_fmt(NULL, B, C, 1, 1, f), *d_din = gt_dev_fmt(NULL, B, C, H, W, f);
    global_avgpool_forward_cpu(out, in, B, C, H * W);
    global_avgpool_forward_fmt_cuda(d_out, d_in, B, C, H * W, f);
    gt_check_fmt("gap out", d_out, out, B, C, 1, 1, f, 1e-6, gt_ulp(f.dtype));
    global_avgpool_backward_cpu(din, dout, B, C, H * W);
    global_avgpool_backward_fmt_cuda(d_din, d_dout, B, C, H * W, f);
    gt_check_fmt("gap din", d_din, din, B, C, H, W, f, 1e-7, gt_ulp(f.dtype));
    void *dev[] = {d_in, d_dout, d_out, d_din};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        kernels_cuda_buffer_free(dev[i]);
    free(in);
    free(dout);
    free(out);
    free(din);
}

static void test_pooling(void **state)
{
    (void)state;
    static const pool_case_t cases[] = {
        {2, 3, 9, 8, 3, 2, 1, 1},  /* ResNet's 3x3/2 pad 1 max pool */
        {2, 5, 8, 8, 2, 2, 0, 1},  /* LeNet's 2x2/2 */
        {2, 4, 7, 6, 2, 2, 0, 0},  /* average, odd sizes */
        {1, 3, 5, 5, 3, 1, 1, 0},  /* average, overlapping, padded */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (size_t k = 0; k < FORMATS; k++)
            pool_case(&cases[c], formats[k], 400 + 10 * c + k);
    for (size_t k = 0; k < FORMATS; k++)
        gap_case(3, 40, 7, 7, formats[k], 480 + k);
}

static void test_linear(void **state)
{
    (void)state;
    int B = 5, IC = 37, OC = 11;
    assert_int_equal(kernels_cuda_weight_scratch((size_t)OC * IC), 0);
    for (size_t k = 2; k < FORMATS; k += 2) {
        kern_format_t f = formats[k];
        double e = gt_ulp(f.dtype);
        gt_rng_t r = {500 + k};
        size_t nin = (size_t)B * IC, nw = (size_t)OC * IC, nout = (size_t)B * OC;
        float *in = rounded(&r, nin, -1, 1, f.dtype), *w = rounded(&r, nw, -1, 1, f.dtype);
        float *bias = gt_random(&r, (size_t)OC, -1, 1), *dout = rounded(&r, nout, -1, 1, f.dtype);
        float *out = gt_host(nout), *din = gt_host(nin), *dw = gt_host(nw);
        float *db = gt_host((size_t)OC);
        void *d_in = gt_dev_fmt(in, B, IC, 1, 1, f), *d_dout = gt_dev_fmt(dout, B, OC, 1, 1, f);
        void *d_out = gt_dev_fmt(NULL, B, OC, 1, 1, f), *d_din = gt_dev_fmt(NULL, B, IC, 1, 1, f);
        float *d_w = gt_devf(w, nw), *d_bias = gt_devf(bias, (size_t)OC);
        float *d_dw = gt_devf(NULL, nw), *d_db = gt_devf(NULL, (size_t)OC);
        linear_forward_cpu(out, in, w, bias, B, IC, OC);
        linear_forward_fmt_cuda(d_out, d_in, d_w, d_bias, B, IC, OC, f);
        /* The bias is stored in the output's type before the GEMM adds. */
        gt_check_fmt("linear out", d_out, out, B, OC, 1, 1, f, gt_sum_tol((size_t)IC) + e, e);
        linear_backward_cpu(din, dw, db, dout, in, w, B, IC, OC);
        linear_backward_fmt_cuda(d_din, d_dw, d_db, d_dout, d_in, d_w, B, IC, OC, f);
        gt_check_fmt("linear din", d_din, din, B, IC, 1, 1, f, gt_sum_tol((size_t)OC), e);
        gt_check_dev("linear dweight", d_dw, dw, nw, gt_sum_tol((size_t)B), 1e-5);
        gt_check_dev("linear dbias", d_db, db, (size_t)OC, gt_sum_tol((size_t)B), 1e-5);
        void *dev[] = {d_in, d_dout, d_out, d_din, d_w, d_bias, d_dw, d_db};
        for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
            kernels_cuda_buffer_free(dev[i]);
        float *host[] = {in, w, bias, dout, out, din, dw, db};
        for (size_t i = 0; i < sizeof host / sizeof host[0]; i++)
            free(host[i]);
    }
}

static void test_loss(void **state)
{
    (void)state;
    int B = 7, K = 10;
    for (size_t k = 2; k < FORMATS; k += 2) {
        kern_format_t f = formats[k];
        gt_rng_t r = {600 + k};
        size_t n = (size_t)B * K;
        float *logits = rounded(&r, n, -3, 3, f.dtype), *probs = gt_host(n);
        float *dlogits = gt_host(n);
        int32_t *labels = gt_labels(&r, B, K);
        void *d_logits = gt_dev_fmt(logits, B, K, 1, 1, f);
        void *d_dlogits = gt_dev_fmt(NULL, B, K, 1, 1, f);
        int32_t *d_labels = gt_dev(labels, (size_t)B * sizeof(int32_t));
        float *d_probs = gt_devf(NULL, n), *d_loss = gt_devf(NULL, 1);
        float scale = 128.0f, *d_scale = gt_devf(&scale, 1);
        float loss = softmax_cross_entropy_forward_cpu(probs, logits, labels, B, K);
        softmax_cross_entropy_forward_async_fmt_cuda(d_loss, d_probs, d_logits, d_labels, B,
                                                     K, f);
        gt_check_dev("loss", d_loss, &loss, 1, 1e-6, 1e-6);
        gt_check_dev("probs", d_probs, probs, n, 1e-7, 1e-5);
        softmax_cross_entropy_backward_cpu(dlogits, probs, labels, B, K);
        for (size_t i = 0; i < n; i++)
            dlogits[i] *= scale;
        softmax_cross_entropy_backward_fmt_cuda(d_dlogits, d_probs, d_labels, B, K, d_scale, f);
        gt_check_fmt("dlogits x 128", d_dlogits, dlogits, B, K, 1, 1, f, 1e-5,
                     gt_ulp(f.dtype));
        assert_int_equal(accuracy_count_fmt_cuda(d_logits, d_labels, B, K, f),
                         accuracy_count_cpu(logits, labels, B, K));
        void *dev[] = {d_logits, d_dlogits, d_labels, d_probs, d_loss, d_scale};
        for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
            kernels_cuda_buffer_free(dev[i]);
        free(logits);
        free(probs);
        free(dlogits);
        free(labels);
    }
}

int main(void)
{
    gt_require_device("test_kernels_cuda_fmt");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_convert),   cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_batchnorm), cmocka_unit_test(test_pooling),
        cmocka_unit_test(test_linear),    cmocka_unit_test(test_loss),
    };
    return cmocka_run_group_tests(tests, gt_setup, gt_teardown);
}
