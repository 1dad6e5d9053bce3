/* Unit tests for max, average and global average pooling: forward against
 * naive double loops (window clipped at the borders, padding never the max,
 * average divides by k*k), argmax ties (the first maximum in row-major window
 * order wins, as in PyTorch), and backward against double-precision central
 * differences. Shapes: 2x2/2 (LeNet), 3x3/2 pad 1 (ResNet stem) on odd
 * sizes, 3x3/1 pad 1 (overlapping windows), batch > 1.
 * Tolerances: forward 1e-6 absolute; gradients within 1e-4 of scale. */
#include "test_kernels_util.h"

#include "kernels.h"

typedef struct {
    int B, C, H, W, k, stride, pad;
} pool_case_t;

static const pool_case_t pool_cases[] = {
    {2, 3, 8, 8, 2, 2, 0},   /* LeNet */
    {2, 2, 7, 9, 3, 2, 1},   /* ResNet stem, odd sizes */
    {1, 2, 6, 5, 3, 1, 1},   /* overlapping windows */
    {3, 1, 7, 7, 2, 2, 0},   /* odd size, last row/column dropped */
    {1, 1, 5, 6, 3, 3, 1},   /* stride 3 */
};

typedef struct {
    pool_case_t p;
    int OH, OW;
    int max; /* 1: max pooling, 0: average */
    double *in, *r, *out;
    int32_t *arg; /* reference argmax */
} pool_ctx_t;

static void ref_pool(pool_ctx_t *c)
{
    const pool_case_t *p = &c->p;
    for (int pl = 0; pl < p->B * p->C; pl++)
        for (int oh = 0; oh < c->OH; oh++)
            for (int ow = 0; ow < c->OW; ow++) {
                double best = -INFINITY, sum = 0.0;
                int where = -1;
                for (int kh = 0; kh < p->k; kh++)
                    for (int kw = 0; kw < p->k; kw++) {
                        int h = oh * p->stride - p->pad + kh;
                        int w = ow * p->stride - p->pad + kw;
                        if (h < 0 || h >= p->H || w < 0 || w >= p->W)
                            continue;
                        double v = c->in[((size_t)pl * p->H + h) * p->W + w];
                        sum += v;
                        if (where < 0 || v > best) {
                            best = v;
                            where = h * p->W + w;
                        }
                    }
                size_t at = ((size_t)pl * c->OH + oh) * c->OW + ow;
                c->out[at] = c->max ? best : sum / (p->k * p->k);
                c->arg[at] = where;
            }
}

static double pool_loss(void *ctx)
{
    pool_ctx_t *c = ctx;
    ref_pool(c);
    return tk_dot(c->r, c->out, (size_t)c->p.B * c->p.C * c->OH * c->OW);
}

/* Distinct values (gaps of 1/count, far above the FD step), shuffled. */
static void fill_distinct(tk_rng_t *rng, float *f, double *d, size_t count)
{
    for (size_t i = 0; i < count; i++)
        f[i] = (float)((double)i / count - 0.5);
    for (size_t i = count; i > 1; i--) {
        size_t j = tk_next(rng) % i;
        float t = f[i - 1];
        f[i - 1] = f[j];
        f[j] = t;
    }
    for (size_t i = 0; i < count; i++)
        d[i] = f[i];
}

static void run_case(const pool_case_t *p, int max, uint64_t seed,
                     size_t max_points)
{
    tk_rng_t rng = {seed};
    pool_ctx_t c = {.p = *p, .max = max};
    c.OH = (p->H + 2 * p->pad - p->k) / p->stride + 1;
    c.OW = (p->W + 2 * p->pad - p->k) / p->stride + 1;
    size_t in_count = (size_t)p->B * p->C * p->H * p->W;
    size_t out_count = (size_t)p->B * p->C * c.OH * c.OW;
    c.in = tk_dalloc(in_count);
    c.r = tk_dalloc(out_count);
    c.out = tk_dalloc(out_count);
    c.arg = calloc(out_count, sizeof(int32_t));
    int32_t *arg = calloc(out_count, sizeof(int32_t));
    float *in = tk_falloc(in_count), *out = tk_falloc(out_count);
    float *dout = tk_falloc(out_count), *din = tk_falloc(in_count);
    fill_distinct(&rng, in, c.in, in_count);
    tk_fill(&rng, dout, c.r, out_count, -1, 1);

    tk_fill_nan(out, out_count);
    tk_fill_nan(din, in_count);
    if (max) {
        maxpool2d_forward_cpu(out, arg, in, p->B, p->C, p->H, p->W, p->k,
                              p->stride, p->pad);
        maxpool2d_backward_cpu(din, dout, arg, p->B, p->C, p->H, p->W, c.OH,
                               c.OW);
    } else {
        avgpool2d_forward_cpu(out, in, p->B, p->C, p->H, p->W, p->k,
                              p->stride, p->pad);
        avgpool2d_backward_cpu(din, dout, p->B, p->C, p->H, p->W, p->k,
                               p->stride, p->pad);
    }
    pool_loss(&c);
    tk_check_close(max ? "maxpool out" : "avgpool out", out, c.out,
                   out_count, 1e-6, 0);
    if (max)
        for (size_t i = 0; i < out_count; i++)
            if (arg[i] != c.arg[i])
                fail_msg("maxpool argmax[%zu]: got %d, want %d", i,
                         (int)arg[i], (int)c.arg[i]);
    double *num = tk_dalloc(in_count);
    tk_numeric_grad(num, c.in, in_count, pool_loss, &c, max_points);
    tk_check_grad(max ? "maxpool din" : "avgpool din", din, num, in_count,
                  1e-4);
    free(num), free(in), free(out), free(dout), free(din), free(arg);
    free(c.in), free(c.r), free(c.out), free(c.arg);
}

static void test_maxpool(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
        run_case(&pool_cases[i], 1, 10 + i, 0);
}

static void test_avgpool(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    for (size_t i = 0; i < sizeof pool_cases / sizeof pool_cases[0]; i++)
        run_case(&pool_cases[i], 0, 20 + i, 0);
}

static void test_pool_threads(void **state)
{
    (void)state;
    static const pool_case_t big = {4, 16, 33, 31, 3, 2, 1};
    kernels_set_num_threads(2);
    run_case(&big, 1, 30, 200);
    run_case(&big, 0, 31, 200);
    kernels_set_num_threads(1);
}

/* Ties: 3x3/1 pad 1 over a plane of equal values, and all-negative values
 * (padding must not act as 0 and win). */
static void test_maxpool_ties_and_padding(void **state)
{
    (void)state;
    enum { H = 4, W = 5 };
    float in[H * W], out[H * W], din[H * W], dout[H * W];
    int32_t arg[H * W];
    for (int i = 0; i < H * W; i++) {
        in[i] = 2.0f;
        dout[i] = 1.0f;
    }
    maxpool2d_forward_cpu(out, arg, in, 1, 1, H, W, 3, 1, 1);
    for (int oh = 0; oh < H; oh++)
        for (int ow = 0; ow < W; ow++) {
            /* First in-range tap of the window, scanning rows then columns. */
            int h = oh > 0 ? oh - 1 : 0, w = ow > 0 ? ow - 1 : 0;
            assert_int_equal(arg[oh * W + ow], h * W + w);
            assert_true(out[oh * W + ow] == 2.0f);
        }
    maxpool2d_backward_cpu(din, dout, arg, 1, 1, H, W, H, W);
    /* Every window's gradient lands on its first tap: input (h, w) receives
     * one per window that starts there. */
    for (int h = 0; h < H; h++)
        for (int w = 0; w < W; w++) {
            int rows = (h == 0) ? 2 : (h + 1 < H ? 1 : 0);
            int cols = (w == 0) ? 2 : (w + 1 < W ? 1 : 0);
            float want = (float)(rows * cols);
            if (din[h * W + w] != want)
                fail_msg("tie din[%d][%d]: got %g, want %g", h, w,
                         (double)din[h * W + w], (double)want);
        }

    for (int i = 0; i < H * W; i++)
        in[i] = -1.0f - (float)i;
    maxpool2d_forward_cpu(out, arg, in, 1, 1, H, W, 3, 2, 1);
    /* Window (0,0) covers rows/cols -1..1: the max is in[0] = -1. */
    assert_true(out[0] == -1.0f);
    assert_int_equal(arg[0], 0);
    for (int i = 0; i < 2 * 3; i++)
        assert_true(out[i] < 0.0f);

    /* A NaN wins its windows (PyTorch: `val > max || isnan(val)`), in the
     * interior and at the border, and is where the gradient goes. */
    for (int i = 0; i < H * W; i++)
        in[i] = (float)i;
    in[1 * W + 2] = NAN; /* windows (0, 1) and (1, 1) of 3x3/2 pad 1 */
    in[3 * W + 0] = NAN; /* window (1, 0): left border */
    maxpool2d_forward_cpu(out, arg, in, 1, 1, H, W, 3, 2, 1);
    /* output 2 x 3 */
    assert_true(isnan(out[0 * 3 + 1]) && arg[0 * 3 + 1] == 1 * W + 2);
    assert_true(isnan(out[1 * 3 + 1]) && arg[1 * 3 + 1] == 1 * W + 2);
    assert_true(isnan(out[1 * 3 + 0]) && arg[1 * 3 + 0] == 3 * W + 0);
    assert_true(out[0 * 3 + 0] == (float)(1 * W + 1));
    assert_true(out[1 * 3 + 2] == (float)(3 * W + 4));

    /* Average pooling counts padding: a corner window of ones holds 4 of 9. */
    for (int i = 0; i < H * W; i++)
        in[i] = 1.0f;
    avgpool2d_forward_cpu(out, in, 1, 1, H, W, 3, 1, 1);
    assert_true(fabsf(out[0] - 4.0f / 9.0f) < 1e-7f);
    assert_true(fabsf(out[1 * W + 1] - 1.0f) < 1e-7f);
}

typedef struct {
    int B, C, HW;
    double *in, *r, *out;
} gap_ctx_t;

static double gap_loss(void *ctx)
{
    gap_ctx_t *c = ctx;
    for (int p = 0; p < c->B * c->C; p++) {
        double s = 0.0;
        for (int i = 0; i < c->HW; i++)
            s += c->in[(size_t)p * c->HW + i];
        c->out[p] = s / c->HW;
    }
    return tk_dot(c->r, c->out, (size_t)c->B * c->C);
}

static void gap_case(int B, int C, int HW, uint64_t seed, size_t max_points)
{
    tk_rng_t rng = {seed};
    size_t in_count = (size_t)B * C * HW, out_count = (size_t)B * C;
    gap_ctx_t c = {.B = B, .C = C, .HW = HW};
    c.in = tk_dalloc(in_count);
    c.r = tk_dalloc(out_count);
    c.out = tk_dalloc(out_count);
    float *in = tk_falloc(in_count), *din = tk_falloc(in_count);
    float *out = tk_falloc(out_count), *dout = tk_falloc(out_count);
    tk_fill(&rng, in, c.in, in_count, -1, 1);
    tk_fill(&rng, dout, c.r, out_count, -1, 1);
    tk_fill_nan(out, out_count);
    tk_fill_nan(din, in_count);
    global_avgpool_forward_cpu(out, in, B, C, HW);
    global_avgpool_backward_cpu(din, dout, B, C, HW);
    gap_loss(&c);
    tk_check_close("global avgpool out", out, c.out, out_count, 1e-6, 1e-5);
    double *num = tk_dalloc(in_count);
    tk_numeric_grad(num, c.in, in_count, gap_loss, &c, max_points);
    tk_check_grad("global avgpool din", din, num, in_count, 1e-4);
    free(num), free(in), free(din), free(out), free(dout);
    free(c.in), free(c.r), free(c.out);
}

static void test_global_avgpool(void **state)
{
    (void)state;
    kernels_set_num_threads(1);
    gap_case(2, 3, 49, 40, 0);
    gap_case(1, 5, 1, 41, 0);
    kernels_set_num_threads(2);
    gap_case(8, 64, 49, 42, 300);
    kernels_set_num_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_avgpool),
        cmocka_unit_test(test_maxpool_ties_and_padding),
        cmocka_unit_test(test_pool_threads),
        cmocka_unit_test(test_global_avgpool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
