/* GPU test: 20 training steps of a tiny model built directly from the
 * kernels, once with the CPU ops and once with the CUDA ops, from the same
 * initial parameters and batch:
 *   x (16, 3, 12, 12) -> conv 3x3 pad 1 (8 filters, no bias) -> batch norm
 *   -> ReLU -> max pool 2x2/2 -> linear (288 -> 10, bias) -> softmax CE,
 * SGD with momentum 0.9 and weight decay over one parameter arena (reverse
 * layer order, as the worker lays it out). The same step function runs both
 * backends through a table of function pointers.
 * Checks: every step's loss |gpu - cpu| <= 1e-4 + 1e-3 |cpu|; the final
 * parameters, momentum and running statistics 1e-4 + 1e-3 |cpu| (float
 * rounding differences grow a little over 20 steps); and the loss fell to
 * below 70% of its first value on both (so the run is training at all).
 *
 * The same 20 steps in fp16 (the *_fmt_cuda ops in NHWC, cuDNN for the
 * convolution, the loss scaled by 128 and divided out by
 * sgd_update_scaled_cuda) against the CPU's fp32: every step's loss within
 * 2e-3 + 2e-2 |cpu| and falling below 70% of its first value; the final
 * parameters within 2e-2 of the largest (fp16 activations and gradients:
 * ~2^-11 per rounding, over 20 steps). Skipped without cuDNN. */
#include "gpu_test_util.h"

#define B 16
#define C_IN 3
#define HW_IN 12
#define C1 8
#define CLASSES 10
#define STEPS 20
#define POOLED (C1 * (HW_IN / 2) * (HW_IN / 2))

/* Parameter arena, last layer first: linear w, b; bn gamma, beta; conv w. */
#define P_LIN_W 0
#define P_LIN_B (P_LIN_W + CLASSES * POOLED)
#define P_GAMMA (P_LIN_B + CLASSES)
#define P_BETA (P_GAMMA + C1)
#define P_CONV_W (P_BETA + C1)
#define P_COUNT (P_CONV_W + C1 * C_IN * 9)

/* The fp16 run's activations (test_train_fp16_vs_cpu). */
static const kern_format_t fmt16 = {KERN_F16, KERN_NHWC};

typedef struct {
    /* 0: fp32 NCHW; else x is converted to fmt16 after its upload. */
    int convert;
    void *(*alloc)(size_t bytes);
    void (*release)(void *p);
    void (*upload)(void *dst, const void *src, size_t bytes);
    void (*download)(void *dst, const void *src, size_t bytes);
    size_t (*conv_ws)(const conv2d_shape_t *s);
    void (*conv_fwd)(float *, const float *, const float *, const float *,
                     const conv2d_shape_t *, float *);
    void (*conv_bwd)(float *, float *, float *, const float *, const float *,
                     const float *, const conv2d_shape_t *, float *);
    void (*bn_fwd)(float *, float *, float *, float *, float *, const float *,
                   const float *, const float *, int, int, int, float, float);
    void (*bn_bwd)(float *, float *, float *, const float *, const float *,
                   const float *, const float *, const float *, int, int, int);
    void (*relu_fwd)(float *, const float *, size_t);
    void (*relu_bwd)(float *, const float *, const float *, size_t);
    void (*pool_fwd)(float *, int32_t *, const float *, int, int, int, int,
                     int, int, int);
    void (*pool_bwd)(float *, const float *, const int32_t *, int, int, int,
                     int, int, int);
    void (*lin_fwd)(float *, const float *, const float *, const float *, int,
                    int, int);
    void (*lin_bwd)(float *, float *, float *, const float *, const float *,
                    const float *, int, int, int);
    float (*ce_fwd)(float *, const float *, const int32_t *, int, int);
    void (*ce_bwd)(float *, const float *, const int32_t *, int, int);
    void (*sgd)(float *, float *, const float *, size_t, float, float, float);
} backend_t;

static void *host_alloc(size_t bytes)
{
    void *p = calloc(1, bytes ? bytes : 1);
    assert_non_null(p);
    return p;
}

static void host_copy(void *dst, const void *src, size_t bytes)
{
    memcpy(dst, src, bytes);
}

static void *dev_alloc(size_t bytes)
{
    void *p = kernels_cuda_buffer_alloc(bytes);
    assert_non_null(p);
    return p;
}

static void dev_upload(void *dst, const void *src, size_t bytes)
{
    assert_int_equal(kernels_cuda_copy_to_device(dst, src, bytes), 0);
}

static void dev_download(void *dst, const void *src, size_t bytes)
{
    assert_int_equal(kernels_cuda_synchronize(), 0);
    assert_int_equal(kernels_cuda_copy_to_host(dst, src, bytes), 0);
}

static const backend_t cpu = {
    0, host_alloc, free, host_copy, host_copy, conv2d_workspace_floats,
    conv2d_forward_cpu, conv2d_backward_cpu, batchnorm_forward_train_cpu,
    batchnorm_backward_cpu, relu_forward_cpu, relu_backward_cpu,
    maxpool2d_forward_cpu, maxpool2d_backward_cpu, linear_forward_cpu,
    linear_backward_cpu, softmax_cross_entropy_forward_cpu,
    softmax_cross_entropy_backward_cpu, sgd_update_cpu,
};

static const backend_t gpu = {
    0, dev_alloc, kernels_cuda_buffer_free, dev_upload, dev_download,
    conv2d_workspace_floats_cuda, conv2d_forward_cuda, conv2d_backward_cuda,
    batchnorm_forward_train_cuda, batchnorm_backward_cuda, relu_forward_cuda,
    relu_backward_cuda, maxpool2d_forward_cuda, maxpool2d_backward_cuda,
    linear_forward_cuda, linear_backward_cuda,
    softmax_cross_entropy_forward_cuda, softmax_cross_entropy_backward_cuda,
    sgd_update_cuda,
};

typedef struct {
    float params[P_COUNT], momentum[P_COUNT];
    float running_mean[C1], running_var[C1];
    float loss[STEPS];
} result_t;

/* Trains STEPS steps on backend `be` from the given start; fills *res. */
static void train(const backend_t *be, const float *x_host,
                  const int32_t *labels_host, const float *params_host,
                  result_t *res)
{
    conv2d_shape_t s;
    assert_int_equal(conv2d_shape_init(&s, B, C_IN, HW_IN, HW_IN, C1, 3, 3, 1,
                                       1),
                     0);
    size_t nx = (size_t)B * C_IN * HW_IN * HW_IN;
    size_t nact = (size_t)B * C1 * HW_IN * HW_IN;
    size_t npool = (size_t)B * POOLED, nlog = (size_t)B * CLASSES;
    size_t fl = sizeof(float);
    float *x = be->alloc(nx * fl);
    int32_t *labels = be->alloc(B * sizeof(int32_t));
    float *params = be->alloc(P_COUNT * fl), *grads = be->alloc(P_COUNT * fl);
    float *mom = be->alloc(P_COUNT * fl);
    float *conv_out = be->alloc(nact * fl), *bn_out = be->alloc(nact * fl);
    float *relu_out = be->alloc(nact * fl), *dact = be->alloc(nact * fl);
    float *dact2 = be->alloc(nact * fl);
    float *mean = be->alloc(C1 * fl), *rstd = be->alloc(C1 * fl);
    float *rmean = be->alloc(C1 * fl), *rvar = be->alloc(C1 * fl);
    float *pool_out = be->alloc(npool * fl), *dpool = be->alloc(npool * fl);
    int32_t *argmax = be->alloc(npool * sizeof(int32_t));
    float *logits = be->alloc(nlog * fl), *probs = be->alloc(nlog * fl);
    float *dlogits = be->alloc(nlog * fl);
    float *ws = be->alloc(be->conv_ws(&s) * fl);
    float ones[C1];
    for (int c = 0; c < C1; c++)
        ones[c] = 1.0f;
    be->upload(x, x_host, nx * fl);
    if (be->convert) {
        /* The fp16 NHWC copy of the batch the layers read. */
        float *x32 = x;
        x = be->alloc(nx * fl);
        tensor_from_f32_fmt_cuda(x, x32, B, C_IN, HW_IN, HW_IN, fmt16);
        be->release(x32);
    }
    be->upload(labels, labels_host, B * sizeof(int32_t));
    be->upload(params, params_host, P_COUNT * fl);
    be->upload(rvar, ones, C1 * fl);

    for (int step = 0; step < STEPS; step++) {
        be->conv_fwd(conv_out, x, params + P_CONV_W, NULL, &s, ws);
        be->bn_fwd(bn_out, mean, rstd, rmean, rvar, conv_out, params + P_GAMMA,
                   params + P_BETA, B, C1, HW_IN * HW_IN, 0.1f, 1e-5f);
        be->relu_fwd(relu_out, bn_out, nact);
        be->pool_fwd(pool_out, argmax, relu_out, B, C1, HW_IN, HW_IN, 2, 2, 0);
        be->lin_fwd(logits, pool_out, params + P_LIN_W, params + P_LIN_B, B,
                    POOLED, CLASSES);
        res->loss[step] = be->ce_fwd(probs, logits, labels, B, CLASSES);
        be->ce_bwd(dlogits, probs, labels, B, CLASSES);
        be->lin_bwd(dpool, grads + P_LIN_W, grads + P_LIN_B, dlogits, pool_out,
                    params + P_LIN_W, B, POOLED, CLASSES);
        be->pool_bwd(dact, dpool, argmax, B, C1, HW_IN, HW_IN, HW_IN / 2,
                     HW_IN / 2);
        be->relu_bwd(dact, dact, relu_out, nact);
        be->bn_bwd(dact2, grads + P_GAMMA, grads + P_BETA, dact, conv_out,
                   params + P_GAMMA, mean, rstd, B, C1, HW_IN * HW_IN);
        be->conv_bwd(NULL, grads + P_CONV_W, NULL, dact2, x, params + P_CONV_W,
                     &s, ws);
        be->sgd(params, mom, grads, P_COUNT, 0.05f, 0.9f, 1e-4f);
    }
    be->download(res->params, params, P_COUNT * fl);
    be->download(res->momentum, mom, P_COUNT * fl);
    be->download(res->running_mean, rmean, C1 * fl);
    be->download(res->running_var, rvar, C1 * fl);

    void *bufs[] = {x, labels, params, grads, mom, conv_out, bn_out, relu_out,
                    dact, dact2, mean, rstd, rmean, rvar, pool_out, dpool,
                    argmax, logits, probs, dlogits, ws};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        be->release(bufs[i]);
}

/* ---- fp16: the _fmt ops in NHWC, cuDNN, a loss scale of 128 ------------- */

static float *scale_dev;        /* 128, read by the loss backward */
static loss_scale_t *state_dev; /* static scaling, 128 */
static float *loss_dev;

static size_t h_conv_ws(const conv2d_shape_t *s)
{
    return conv2d_workspace_floats_cudnn(s, fmt16);
}
static void h_conv_fwd(float *o, const float *i, const float *w, const float *b,
                       const conv2d_shape_t *s, float *ws)
{
    conv2d_forward_cudnn(o, i, w, b, s, ws, fmt16);
}
static void h_conv_bwd(float *di, float *dw, float *db, const float *dout, const float *in,
                       const float *w, const conv2d_shape_t *s, float *ws)
{
    conv2d_backward_cudnn(di, dw, db, dout, in, w, s, ws, fmt16);
}
static void h_bn_fwd(float *o, float *sm, float *sr, float *rm, float *rv, const float *i,
                     const float *g, const float *b, int B_, int C, int HW, float mo,
                     float eps)
{
    batchnorm_forward_train_fmt_cuda(o, sm, sr, rm, rv, i, g, b, B_, C, HW, mo, eps, 0,
                                     fmt16);
}
static void h_bn_bwd(float *di, float *dg, float *db, const float *dout, const float *in,
                     const float *g, const float *sm, const float *sr, int B_, int C, int HW)
{
    batchnorm_backward_fmt_cuda(di, dg, db, dout, in, g, sm, sr, NULL, B_, C, HW, fmt16);
}
static void h_relu_fwd(float *o, const float *i, size_t n)
{
    relu_forward_fmt_cuda(o, i, n, fmt16);
}
static void h_relu_bwd(float *di, const float *dout, const float *o, size_t n)
{
    relu_backward_fmt_cuda(di, dout, o, n, fmt16);
}
static void h_pool_fwd(float *o, int32_t *am, const float *i, int B_, int C, int H, int W,
                       int k, int st, int pad)
{
    maxpool2d_forward_fmt_cuda(o, am, i, B_, C, H, W, k, st, pad, fmt16);
}
static void h_pool_bwd(float *di, const float *dout, const int32_t *am, int B_, int C, int H,
                       int W, int OH, int OW)
{
    maxpool2d_backward_fmt_cuda(di, dout, am, B_, C, H, W, OH, OW, fmt16);
}
/* The pooled map (B, C1, 6, 6) is NHWC here; the linear layer's weights
 * assume the CPU's NCHW flatten, so it is reordered on the way in and its
 * gradient on the way out (through fp32: fp16 -> fp32 -> fp16 is exact). */
static const kern_format_t fmt16_nchw = {KERN_F16, KERN_NCHW};
static float *lin_f32, *lin_in, *lin_din;

static void to_nchw(float *dst, const float *src)
{
    tensor_to_f32_fmt_cuda(lin_f32, src, B, C1, HW_IN / 2, HW_IN / 2, fmt16);
    tensor_from_f32_fmt_cuda(dst, lin_f32, B, C1, HW_IN / 2, HW_IN / 2, fmt16_nchw);
}

static void h_lin_fwd(float *o, const float *i, const float *w, const float *b, int B_,
                      int IC, int OC)
{
    to_nchw(lin_in, i);
    linear_forward_fmt_cuda(o, lin_in, w, b, B_, IC, OC, fmt16);
}
static void h_lin_bwd(float *di, float *dw, float *db, const float *dout, const float *in,
                      const float *w, int B_, int IC, int OC)
{
    to_nchw(lin_in, in);
    linear_backward_fmt_cuda(lin_din, dw, db, dout, lin_in, w, B_, IC, OC, fmt16);
    tensor_to_f32_fmt_cuda(lin_f32, lin_din, B, C1, HW_IN / 2, HW_IN / 2, fmt16_nchw);
    tensor_from_f32_fmt_cuda(di, lin_f32, B, C1, HW_IN / 2, HW_IN / 2, fmt16);
}
static float h_ce_fwd(float *probs, const float *logits, const int32_t *labels, int B_, int K)
{
    float loss;
    softmax_cross_entropy_forward_async_fmt_cuda(loss_dev, probs, logits, labels, B_, K,
                                                 fmt16);
    dev_download(&loss, loss_dev, sizeof loss);
    return loss;
}
static void h_ce_bwd(float *d, const float *probs, const int32_t *labels, int B_, int K)
{
    softmax_cross_entropy_backward_fmt_cuda(d, probs, labels, B_, K, scale_dev, fmt16);
}
static void h_sgd(float *p, float *m, const float *g, size_t n, float lr, float mo, float wd)
{
    sgd_update_scaled_cuda(p, m, g, n, lr, mo, wd, state_dev);
}

static const backend_t gpu16 = {
    1, dev_alloc, kernels_cuda_buffer_free, dev_upload, dev_download,
    h_conv_ws, h_conv_fwd, h_conv_bwd, h_bn_fwd, h_bn_bwd, h_relu_fwd, h_relu_bwd,
    h_pool_fwd, h_pool_bwd, h_lin_fwd, h_lin_bwd, h_ce_fwd, h_ce_bwd, h_sgd,
};

/* The batch, labels and initial parameters both tests start from. */
static void make_start(float **x, int32_t **labels, float **params)
{
    gt_rng_t r = {7000};
    size_t nx = (size_t)B * C_IN * HW_IN * HW_IN;
    *x = gt_random(&r, nx, -1, 1);
    *labels = gt_labels(&r, B, CLASSES);
    float *p = gt_host(P_COUNT);
    float lin = 1.0f / sqrtf((float)POOLED), conv = 1.0f / sqrtf(C_IN * 9.0f);
    for (int i = P_LIN_W; i < P_LIN_B + CLASSES; i++)
        p[i] = gt_uniform(&r, -lin, lin);
    for (int i = 0; i < C1; i++) {
        p[P_GAMMA + i] = 1.0f;
        p[P_BETA + i] = 0.0f;
    }
    for (int i = P_CONV_W; i < P_COUNT; i++)
        p[i] = gt_uniform(&r, -conv, conv);
    *params = p;
}

/* Trains from make_start's start on the CPU (want) and on `gpu_be`
 * (got), and prints both losses. */
static void train_pair(const backend_t *gpu_be, result_t *want, result_t *got)
{
    float *x, *params;
    int32_t *labels;
    make_start(&x, &labels, &params);
    train(&cpu, x, labels, params, want);
    train(gpu_be, x, labels, params, got);
    for (int i = 0; i < STEPS; i++)
        printf("step %2d  loss cpu %.6f  gpu %.6f\n", i + 1, (double)want->loss[i],
               (double)got->loss[i]);
    free(x);
    free(labels);
    free(params);
}

static void test_train_cpu_vs_gpu(void **state)
{
    (void)state;
    result_t *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    train_pair(&gpu, want, got);
    gt_check_close("loss", got->loss, want->loss, STEPS, 1e-4, 1e-3);
    gt_check_close("params", got->params, want->params, P_COUNT, 1e-4, 1e-3);
    gt_check_close("momentum", got->momentum, want->momentum, P_COUNT, 1e-4,
                   1e-3);
    gt_check_close("running_mean", got->running_mean, want->running_mean, C1,
                   1e-4, 1e-3);
    gt_check_close("running_var", got->running_var, want->running_var, C1,
                   1e-4, 1e-3);
    if (!(want->loss[STEPS - 1] < 0.7f * want->loss[0]))
        fail_msg("cpu loss did not fall: %.6f -> %.6f",
                 (double)want->loss[0], (double)want->loss[STEPS - 1]);
    if (!(got->loss[STEPS - 1] < 0.7f * got->loss[0]))
        fail_msg("gpu loss did not fall: %.6f -> %.6f", (double)got->loss[0],
                 (double)got->loss[STEPS - 1]);
    free(want);
    free(got);
}

static void test_train_fp16_vs_cpu(void **state)
{
    (void)state;
    char why[256];
    if (kernels_cudnn_init(why, sizeof why) != 0) {
        printf("fp16 training: skipped: %s\n", why);
        skip();
    }
    assert_int_equal(kernels_cuda_weight_scratch(CLASSES * POOLED), 0);
    float scale = 128.0f;
    loss_scale_t st;
    loss_scale_init(&st, scale, 0, 1000);
    scale_dev = gt_devf(&scale, 1);
    state_dev = gt_dev(&st, sizeof st);
    loss_dev = gt_devf(NULL, 1);
    lin_f32 = gt_devf(NULL, (size_t)B * POOLED);
    lin_in = gt_devf(NULL, (size_t)B * POOLED);
    lin_din = gt_devf(NULL, (size_t)B * POOLED);

    result_t *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    train_pair(&gpu16, want, got);
    gt_check_close("fp16 loss", got->loss, want->loss, STEPS, 2e-3, 2e-2);
    float most = 0.0f;
    for (int i = 0; i < P_COUNT; i++)
        most = fabsf(want->params[i]) > most ? fabsf(want->params[i]) : most;
    gt_check_close("fp16 params", got->params, want->params, P_COUNT, 2e-2 * most, 0);
    if (!(got->loss[STEPS - 1] < 0.7f * got->loss[0]))
        fail_msg("fp16 loss did not fall: %.6f -> %.6f", (double)got->loss[0],
                 (double)got->loss[STEPS - 1]);
    void *dev[] = {scale_dev, state_dev, loss_dev, lin_f32, lin_in, lin_din};
    for (size_t i = 0; i < sizeof dev / sizeof dev[0]; i++)
        kernels_cuda_buffer_free(dev[i]);
    free(want);
    free(got);
}

int main(void)
{
    gt_require_device("test_kernels_cuda_train");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_cpu_vs_gpu),
        cmocka_unit_test(test_train_fp16_vs_cpu),
    };
    return cmocka_run_group_tests(tests, gt_setup, gt_teardown);
}
