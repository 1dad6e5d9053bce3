/* Unit tests for conv2d_*_cpu: forward against a direct (naive) convolution
 * in double, and backward (din, dweight, dbias) against double-precision
 * central differences of that convolution. Shapes cover stride 1/2/3,
 * padding 0..3, odd and non-square sizes, 1x1 (with and without im2col),
 * batch > 1, single-image and multi-image GEMM chunks with a remainder.
 * Tolerances: forward |diff| <= 2e-5 + 1e-4 |want|; gradients within 1e-4 of
 * the gradient's scale (see tk_check_grad). */
#include "test_kernels_util.h"

#include "cpu/cpu_internal.h"
#include "kernels.h"

typedef struct {
    int B, C, H, W, OC, KH, KW, stride, pad, bias;
} conv_case_t;

static const conv_case_t conv_cases[] = {
    {2, 3, 7, 6, 4, 3, 3, 1, 1, 1},   /* 3x3 pad 1, odd sizes */
    {2, 3, 9, 7, 5, 3, 3, 2, 1, 0},   /* stride 2 */
    {3, 4, 5, 5, 6, 1, 1, 1, 0, 0},   /* 1x1, several images per GEMM */
    {1, 4, 6, 5, 3, 1, 1, 1, 0, 1},   /* 1x1, one image: no workspace */
    {2, 4, 7, 7, 3, 1, 1, 2, 0, 0},   /* 1x1 stride 2 (downsample) */
    {2, 1, 8, 8, 4, 5, 5, 1, 2, 1},   /* LeNet-style 5x5 pad 2 */
    {2, 3, 11, 10, 2, 7, 7, 2, 3, 0}, /* ResNet stem-style 7x7/2 pad 3 */
    {1, 2, 9, 8, 3, 3, 3, 1, 1, 1},   /* one image, im2col */
    {2, 2, 4, 5, 3, 3, 2, 3, 2, 1},   /* non-square kernel, stride 3 */
    {5, 2, 16, 16, 3, 3, 3, 1, 1, 1}, /* chunks of 3 + 2 images */
    {2, 3, 32, 33, 4, 1, 1, 1, 0, 1}, /* 1x1, one image per GEMM, B = 2 */
    {2, 2, 32, 32, 3, 3, 3, 1, 1, 0}, /* im2col, one image per GEMM, B = 2 */
    {2, 2, 3, 4, 3, 2, 2, 1, 2, 1},   /* pad >= kernel: rows of padding */
    {3, 2, 5, 3, 2, 3, 3, 1, 0, 0},   /* output 1 wide */
};

/* out = conv(in, w) + bias, directly from the definition. */
static void ref_conv(double *out, const double *in, const double *w,
                     const double *bias, const conv2d_shape_t *s)
{
    for (int b = 0; b < s->B; b++)
        for (int o = 0; o < s->OC; o++)
            for (int oh = 0; oh < s->OH; oh++)
                for (int ow = 0; ow < s->OW; ow++) {
                    double sum = bias ? bias[o] : 0.0;
                    for (int c = 0; c < s->C; c++)
                        for (int kh = 0; kh < s->KH; kh++)
                            for (int kw = 0; kw < s->KW; kw++) {
                                int ih = oh * s->stride - s->pad + kh;
                                int iw = ow * s->stride - s->pad + kw;
                                if (ih < 0 || ih >= s->H || iw < 0 ||
                                    iw >= s->W)
                                    continue;
                                sum += in[((size_t)(b * s->C + c) * s->H +
                                           ih) * s->W + iw] *
                                       w[((size_t)(o * s->C + c) * s->KH +
                                          kh) * s->KW + kw];
                            }
                    out[((size_t)(b * s->OC + o) * s->OH + oh) * s->OW +
                        ow] = sum;
                }
}

typedef struct {
    conv2d_shape_t s;
    double *in, *w, *bias, *r, *out;
    size_t out_count;
} conv_ctx_t;

static double conv_loss(void *p)
{
    conv_ctx_t *c = p;
    ref_conv(c->out, c->in, c->w, c->bias, &c->s);
    return tk_dot(c->r, c->out, c->out_count);
}

#define GUARD 16
#define GUARD_VALUE 12345.0f

static void run_case(const conv_case_t *k, uint64_t seed, size_t max_points)
{
    conv2d_shape_t s;
    assert_int_equal(conv2d_shape_init(&s, k->B, k->C, k->H, k->W, k->OC,
                                       k->KH, k->KW, k->stride, k->pad),
                     0);
    size_t in_count = (size_t)s.B * s.C * s.H * s.W;
    size_t w_count = (size_t)s.OC * s.C * s.KH * s.KW;
    size_t out_count = (size_t)s.B * s.OC * s.OH * s.OW;
    tk_rng_t rng = {seed};

    float *in = tk_falloc(in_count), *w = tk_falloc(w_count);
    float *bias = tk_falloc(s.OC), *out = tk_falloc(out_count);
    float *dout = tk_falloc(out_count), *din = tk_falloc(in_count);
    float *dw = tk_falloc(w_count), *db = tk_falloc(s.OC);
    float *dw2 = tk_falloc(w_count);
    conv_ctx_t c = {.s = s, .out_count = out_count};
    c.in = tk_dalloc(in_count);
    c.w = tk_dalloc(w_count);
    c.bias = k->bias ? tk_dalloc(s.OC) : NULL;
    c.r = tk_dalloc(out_count);
    c.out = tk_dalloc(out_count);
    tk_fill(&rng, in, c.in, in_count, -1, 1);
    tk_fill(&rng, w, c.w, w_count, -1, 1);
    tk_fill(&rng, bias, c.bias, k->bias ? (size_t)s.OC : 0, -1, 1);
    tk_fill(&rng, dout, c.r, out_count, -1, 1);

    size_t ws_count = conv2d_workspace_floats(&s);
    float *ws_block = tk_falloc(ws_count + GUARD);
    for (size_t i = 0; i < ws_count + GUARD; i++)
        ws_block[i] = GUARD_VALUE;
    float *ws = ws_count ? ws_block : NULL;

    /* Forward against the direct convolution. */
    tk_fill_nan(out, out_count);
    conv2d_forward_cpu(out, in, w, k->bias ? bias : NULL, &s, ws);
    conv_loss(&c);
    tk_check_close("conv out", out, c.out, out_count, 2e-5, 1e-4);

    /* Backward writes every gradient: NaN beforehand must not survive. */
    tk_fill_nan(din, in_count);
    tk_fill_nan(dw, w_count);
    tk_fill_nan(db, s.OC);
    conv2d_backward_cpu(din, dw, k->bias ? db : NULL, dout, in, w, &s, ws);
    /* din == NULL skips the input gradient and changes nothing else. */
    tk_fill_nan(dw2, w_count);
    conv2d_backward_cpu(NULL, dw2, NULL, dout, in, w, &s, ws);
    tk_check_equal_f("dweight (din NULL)", dw2, dw, w_count);
    for (size_t i = ws_count; i < ws_count + GUARD; i++)
        if (ws_block[i] != GUARD_VALUE)
            fail_msg("workspace overrun: float %zu past the %zu reported by "
                     "conv2d_workspace_floats was written",
                     i - ws_count, ws_count);

    double *num = tk_dalloc(in_count > w_count ? in_count : w_count);
    tk_numeric_grad(num, c.in, in_count, conv_loss, &c, max_points);
    tk_check_grad("conv din", din, num, in_count, 1e-4);
    tk_numeric_grad(num, c.w, w_count, conv_loss, &c, max_points);
    tk_check_grad("conv dweight", dw, num, w_count, 1e-4);
    if (k->bias) {
        tk_numeric_grad(num, c.bias, s.OC, conv_loss, &c, 0);
        tk_check_grad("conv dbias", db, num, s.OC, 1e-4);
    }
    free(num);

    free(in), free(w), free(bias), free(out), free(dout), free(din);
    free(dw), free(db), free(dw2), free(ws_block);
    free(c.in), free(c.w), free(c.bias), free(c.r), free(c.out);
}

static void test_conv_cases(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    for (size_t i = 0; i < sizeof conv_cases / sizeof conv_cases[0]; i++) {
        print_message("conv case %zu\n", i);
        run_case(&conv_cases[i], 100 + i, 400);
    }
}

/* Larger shapes with two threads, so the OpenMP splits of im2col/col2im and
 * the threaded GEMMs run; forward and gradients checked as above, the
 * gradients at 40 spread positions per tensor. */
static void test_conv_threads(void **state)
{
    (void)state;
    static const conv_case_t big[] = {
        {2, 12, 18, 18, 16, 3, 3, 1, 1, 1},
        {2, 8, 40, 40, 16, 1, 1, 1, 0, 0},
        {2, 8, 23, 21, 12, 3, 3, 2, 1, 0},
    };
    kernels_set_num_threads(2);
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        run_case(&big[i], 200 + i, 40);
    kernels_set_num_threads(1);
}

/* With the own GEMM, threads split outputs and never a sum, so one and two
 * threads give bitwise the same forward and gradients (what makes n-rank vs
 * 1-rank comparisons exact up to the allreduce). OpenBLAS does not promise
 * this, so the check is skipped when it is the GEMM. */
static void test_conv_threads_bitwise(void **state)
{
    (void)state;
    const char *gemm = getenv("RINGTRAIN_GEMM");
    if (!kern__gemm_own_available() || (gemm && !strcmp(gemm, "openblas")))
        skip();
    static const conv_case_t k = {5, 16, 12, 12, 24, 3, 3, 1, 1, 1};
    conv2d_shape_t s;
    assert_int_equal(conv2d_shape_init(&s, k.B, k.C, k.H, k.W, k.OC, k.KH,
                                       k.KW, k.stride, k.pad),
                     0);
    size_t in_count = (size_t)s.B * s.C * s.H * s.W;
    size_t w_count = (size_t)s.OC * s.C * s.KH * s.KW;
    size_t out_count = (size_t)s.B * s.OC * s.OH * s.OW;
    tk_rng_t rng = {300};
    float *in = tk_falloc(in_count), *w = tk_falloc(w_count);
    float *bias = tk_falloc(s.OC), *dout = tk_falloc(out_count);
    float *ws = tk_falloc(conv2d_workspace_floats(&s));
    float *out[2], *din[2], *dw[2], *db[2];
    tk_fill(&rng, in, NULL, in_count, -1, 1);
    tk_fill(&rng, w, NULL, w_count, -1, 1);
    tk_fill(&rng, bias, NULL, s.OC, -1, 1);
    tk_fill(&rng, dout, NULL, out_count, -1, 1);
    for (int t = 0; t < 2; t++) {
        out[t] = tk_falloc(out_count);
        din[t] = tk_falloc(in_count);
        dw[t] = tk_falloc(w_count);
        db[t] = tk_falloc(s.OC);
        kernels_set_num_threads(t + 1);
        conv2d_forward_cpu(out[t], in, w, bias, &s, ws);
        conv2d_backward_cpu(din[t], dw[t], db[t], dout, in, w, &s, ws);
    }
    kernels_set_num_threads(1);
    tk_check_equal_f("conv out, 2 threads vs 1", out[1], out[0], out_count);
    tk_check_equal_f("conv din, 2 threads vs 1", din[1], din[0], in_count);
    tk_check_equal_f("conv dweight, 2 threads vs 1", dw[1], dw[0], w_count);
    tk_check_equal_f("conv dbias, 2 threads vs 1", db[1], db[0], s.OC);
    for (int t = 0; t < 2; t++)
        free(out[t]), free(din[t]), free(dw[t]), free(db[t]);
    free(in), free(w), free(bias), free(dout), free(ws);
}

static void test_conv_shape(void **state)
{
    (void)state;
    conv2d_shape_t s;
    assert_int_equal(conv2d_shape_init(&s, 32, 3, 224, 224, 64, 7, 7, 2, 3),
                     0);
    assert_int_equal(s.OH, 112);
    assert_int_equal(s.OW, 112);
    assert_int_equal(conv2d_shape_init(&s, 1, 64, 56, 56, 64, 3, 3, 2, 1), 0);
    assert_int_equal(s.OH, 28);
    assert_int_equal(conv2d_shape_init(&s, 1, 1, 4, 4, 1, 5, 5, 1, 0), -1);
    assert_int_equal(conv2d_shape_init(&s, 0, 1, 4, 4, 1, 3, 3, 1, 0), -1);
    assert_int_equal(conv2d_shape_init(&s, 1, 1, 4, 4, 1, 3, 3, 0, 0), -1);
    assert_int_equal(conv2d_shape_init(&s, 1, 1, 4, 4, 1, 3, 3, 1, -1), -1);
    /* 1x1 stride 1 at one image per GEMM needs no workspace. */
    assert_int_equal(conv2d_shape_init(&s, 4, 64, 56, 56, 256, 1, 1, 1, 0), 0);
    assert_int_equal(conv2d_workspace_floats(&s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_shape),
        cmocka_unit_test(test_conv_cases),
        cmocka_unit_test(test_conv_threads),
        cmocka_unit_test(test_conv_threads_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
