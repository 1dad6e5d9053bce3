/* ringtrain-kernels-bench: where the time of a training step goes, kernel by
 * kernel, on this machine. Times conv2d forward/backward at every distinct
 * ResNet-50 (v1.5) layer shape, the non-GEMM ops at their ResNet-50 shapes,
 * LeNet's convs, whole LeNet and MLP training steps, and raw GEMM GFLOP/s
 * (OpenBLAS and the GEMM the kernels use), each the best of --reps runs after
 * one warm-up. The "x n" column is how often the shape occurs in the network,
 * and the totals weight by it, so they estimate one training step's time in
 * that kernel family.
 *
 *   ringtrain-kernels-bench [--threads N] [--batch B] [--reps R]
 *                           [--only gemm|resnet50|ops|lenet|mlp] [--cpu-clock]
 *
 * Not a test: it only prints. Hold the benchmark lock when timing
 * (flock /tmp/ringtrain-bench.lock ...). */
#include "kernels.h"

#include "common/common.h"
#include "cpu/cpu_internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROG "ringtrain-kernels-bench"

static int bench_reps = 5;
static int bench_cpu_clock;

/* Wall clock, or with --cpu-clock this thread's CPU time: on a busy shared
 * machine time slices stolen by others then do not count (one thread only;
 * cache and memory-bandwidth contention still do). */
static double bench_now(void)
{
    if (!bench_cpu_clock)
        return rt_now();
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One warm-up call, then the fastest of bench_reps timed calls (seconds):
 * the machine is shared, and for locating costs the least-disturbed run is
 * the useful one (quote training figures as medians, not these). */
#define BENCH_BEST(result, call)                                             \
    do {                                                                       \
        double t_[64];                                                         \
        int n_ = bench_reps < 64 ? bench_reps : 64;                            \
        call;                                                                  \
        for (int r_ = 0; r_ < n_; r_++) {                                      \
            double t0_ = bench_now();                                          \
            call;                                                              \
            t_[r_] = bench_now() - t0_;                                        \
        }                                                                      \
        qsort(t_, n_, sizeof(double), cmp_double);                             \
        (result) = t_[0];                                                      \
    } while (0)

static float *bench_alloc(size_t count)
{
    float *p = rt_alloc_aligned((count ? count : 1) * sizeof(float), 64);
    if (!p) {
        fprintf(stderr, PROG ": error: out of memory allocating %zu floats; "
                        "try a smaller --batch\n", count);
        exit(1);
    }
    /* Small non-zero values: no denormals, no NaN. */
    for (size_t i = 0; i < count; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

typedef struct {
    const char *name;
    int C, H, OC, K, stride, pad, count, first;
} conv_layer_t;

/* ResNet-50 v1.5 (stride in the 3x3), 224x224 input: every distinct conv
 * shape and how many times it occurs. */
static const conv_layer_t resnet50_convs[] = {
    {"stem 7x7/2 3-64", 3, 224, 64, 7, 2, 3, 1, 1},
    {"l1 1x1 64-64", 64, 56, 64, 1, 1, 0, 1, 0},
    {"l1 3x3 64-64", 64, 56, 64, 3, 1, 1, 3, 0},
    {"l1 1x1 64-256 (+ds)", 64, 56, 256, 1, 1, 0, 4, 0},
    {"l1 1x1 256-64", 256, 56, 64, 1, 1, 0, 2, 0},
    {"l2 1x1 256-128", 256, 56, 128, 1, 1, 0, 1, 0},
    {"l2 3x3/2 128-128", 128, 56, 128, 3, 2, 1, 1, 0},
    {"l2 ds 1x1/2 256-512", 256, 56, 512, 1, 2, 0, 1, 0},
    {"l2 1x1 128-512", 128, 28, 512, 1, 1, 0, 4, 0},
    {"l2 1x1 512-128", 512, 28, 128, 1, 1, 0, 3, 0},
    {"l2 3x3 128-128", 128, 28, 128, 3, 1, 1, 3, 0},
    {"l3 1x1 512-256", 512, 28, 256, 1, 1, 0, 1, 0},
    {"l3 3x3/2 256-256", 256, 28, 256, 3, 2, 1, 1, 0},
    {"l3 ds 1x1/2 512-1024", 512, 28, 1024, 1, 2, 0, 1, 0},
    {"l3 1x1 256-1024", 256, 14, 1024, 1, 1, 0, 6, 0},
    {"l3 1x1 1024-256", 1024, 14, 256, 1, 1, 0, 5, 0},
    {"l3 3x3 256-256", 256, 14, 256, 3, 1, 1, 5, 0},
    {"l4 1x1 1024-512", 1024, 14, 512, 1, 1, 0, 1, 0},
    {"l4 3x3/2 512-512", 512, 14, 512, 3, 2, 1, 1, 0},
    {"l4 ds 1x1/2 1024-2048", 1024, 14, 2048, 1, 2, 0, 1, 0},
    {"l4 1x1 512-2048", 512, 7, 2048, 1, 1, 0, 3, 0},
    {"l4 1x1 2048-512", 2048, 7, 512, 1, 1, 0, 2, 0},
    {"l4 3x3 512-512", 512, 7, 512, 3, 1, 1, 2, 0},
};

static const conv_layer_t lenet_convs[] = {
    {"lenet 5x5 1-32", 1, 28, 32, 5, 1, 2, 1, 1},
    {"lenet 5x5 32-64", 32, 14, 64, 5, 1, 2, 1, 0},
};

/* Times each layer; returns the weighted step total (seconds) in *total. */
static void bench_convs(const conv_layer_t *layers, size_t count, int B,
                        double *total_fwd, double *total_bwd,
                        double *total_flop)
{
    size_t max_in = 0, max_out = 0, max_w = 0, max_ws = 0, max_col = 0;
    conv2d_shape_t s;
    for (size_t i = 0; i < count; i++) {
        const conv_layer_t *l = &layers[i];
        conv2d_shape_init(&s, B, l->C, l->H, l->H, l->OC, l->K, l->K,
                          l->stride, l->pad);
        size_t in = (size_t)B * l->C * l->H * l->H;
        size_t out = (size_t)B * l->OC * s.OH * s.OW;
        size_t w = (size_t)l->OC * l->C * l->K * l->K;
        size_t ws = conv2d_workspace_floats(&s);
        size_t col = (size_t)l->C * l->K * l->K * kern__conv_chunk(&s) *
                     s.OH * s.OW;
        max_col = col > max_col ? col : max_col;
        max_in = in > max_in ? in : max_in;
        max_out = out > max_out ? out : max_out;
        max_w = w > max_w ? w : max_w;
        max_ws = ws > max_ws ? ws : max_ws;
    }
    float *in = bench_alloc(max_in), *din = bench_alloc(max_in);
    float *out = bench_alloc(max_out), *dout = bench_alloc(max_out);
    float *w = bench_alloc(max_w), *dw = bench_alloc(max_w);
    float *ws = bench_alloc(max_ws), *col = bench_alloc(max_col);
    printf("%-24s %4s %6s %8s %6s %8s %6s %6s %7s\n", "conv layer (batch)",
           "x n", "ws MiB", "fwd ms", "GF/s", "bwd ms", "GF/s", "GFLOP",
           "gemm%");
    *total_fwd = *total_bwd = *total_flop = 0.0;
    for (size_t i = 0; i < count; i++) {
        const conv_layer_t *l = &layers[i];
        conv2d_shape_init(&s, B, l->C, l->H, l->H, l->OC, l->K, l->K,
                          l->stride, l->pad);
        double flop = 2.0 * B * l->OC * s.OH * s.OW * l->C * l->K * l->K;
        double t_fwd, t_bwd;
        BENCH_BEST(t_fwd, conv2d_forward_cpu(out, in, w, NULL, &s, ws));
        /* The first layer has no input gradient. */
        BENCH_BEST(t_bwd, conv2d_backward_cpu(l->first ? NULL : din, dw,
                                                NULL, dout, in, w, &s, ws));
        double bwd_flop = l->first ? flop : 2.0 * flop;
        /* The forward's GEMMs alone, same shapes and count: the rest of the
         * forward time is im2col and copies. */
        int chunk = kern__conv_chunk(&s);
        int n = chunk * s.OH * s.OW, K = l->C * l->K * l->K;
        double t_gemm;
        BENCH_BEST(t_gemm, kern__sgemm(0, 0, l->OC, n, K, 1.0f, w, K, col, n,
                                       0.0f, out, n));
        t_gemm *= (double)B / chunk;
        printf("%-24s %4d %6.1f %8.2f %6.1f %8.2f %6.1f %6.2f %6.0f%%\n",
               l->name, l->count,
               (double)conv2d_workspace_floats(&s) * 4.0 / (1 << 20),
               t_fwd * 1e3, flop / t_fwd * 1e-9, t_bwd * 1e3,
               bwd_flop / t_bwd * 1e-9, flop * 1e-9, 100.0 * t_gemm / t_fwd);
        *total_fwd += l->count * t_fwd;
        *total_bwd += l->count * t_bwd;
        *total_flop += l->count * (flop + bwd_flop);
    }
    printf("%-24s %4s %6s %8.1f %6s %8.1f   => %.1f GFLOP/s over fwd+bwd\n",
           "weighted total", "", "", *total_fwd * 1e3, "", *total_bwd * 1e3,
           *total_flop / (*total_fwd + *total_bwd) * 1e-9);
    rt_free_aligned(in), rt_free_aligned(din), rt_free_aligned(out);
    rt_free_aligned(dout), rt_free_aligned(w), rt_free_aligned(dw);
    rt_free_aligned(ws), rt_free_aligned(col);
}

static void bench_gemm(void)
{
    static const int shapes[][3] = {
        {1024, 1024, 1024}, {64, 1024, 784}, {64, 1024, 1024},
        {256, 3136, 64},    {512, 784, 1152}, {512, 1568, 4608},
    };
    printf("%-24s %9s %7s %9s %7s\n", "sgemm M x N x K (NN)", "openblas",
           "GF/s", "kernels", "GF/s");
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        int M = shapes[i][0], N = shapes[i][1], K = shapes[i][2];
        float *a = bench_alloc((size_t)M * K), *b = bench_alloc((size_t)K * N);
        float *c = bench_alloc((size_t)M * N);
        double t_blas, t_own;
        BENCH_BEST(t_blas,
                     cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M,
                                 N, K, 1.0f, a, K, b, N, 0.0f, c, N));
        BENCH_BEST(t_own, kern__sgemm(0, 0, M, N, K, 1.0f, a, K, b, N, 0.0f,
                                        c, N));
        char name[64];
        snprintf(name, sizeof name, "%d x %d x %d", M, N, K);
        double flop = 2.0 * M * N * K;
        printf("%-24s %9.2f %7.1f %9.2f %7.1f  ms\n", name, t_blas * 1e3,
               flop / t_blas * 1e-9, t_own * 1e3, flop / t_own * 1e-9);
        rt_free_aligned(a), rt_free_aligned(b), rt_free_aligned(c);
    }
}

typedef struct {
    const char *name;
    int C, H, count;
} act_shape_t;

/* ResNet-50's activation shapes after each conv, with how many BN (+ReLU)
 * layers see them. */
static const act_shape_t resnet50_acts[] = {
    {"64 x 112^2", 64, 112, 1},  {"64 x 56^2", 64, 56, 6},
    {"256 x 56^2", 256, 56, 4},  {"128 x 56^2", 128, 56, 1},
    {"128 x 28^2", 128, 28, 7},  {"512 x 28^2", 512, 28, 5},
    {"256 x 28^2", 256, 28, 1},  {"256 x 14^2", 256, 14, 11},
    {"1024 x 14^2", 1024, 14, 7}, {"512 x 14^2", 512, 14, 1},
    {"512 x 7^2", 512, 7, 5},    {"2048 x 7^2", 2048, 7, 4},
};

static void bench_ops(int B)
{
    size_t max = (size_t)B * 64 * 112 * 112;
    float *x = bench_alloc(max), *y = bench_alloc(max);
    float *dy = bench_alloc(max), *dx = bench_alloc(max);
    float *g = bench_alloc(2048), *bt = bench_alloc(2048);
    float *m = bench_alloc(2048), *r = bench_alloc(2048);
    float *rm = bench_alloc(2048), *rv = bench_alloc(2048);
    float *dg = bench_alloc(2048), *db = bench_alloc(2048);
    for (int i = 0; i < 2048; i++)
        rv[i] = 1.0f;
    printf("%-24s %5s %9s %9s %9s %9s\n", "op at (batch, shape)", "x n",
           "bn fwd", "bn bwd", "relu fwd", "relu bwd");
    double tot[4] = {0};
    for (size_t i = 0; i < sizeof resnet50_acts / sizeof resnet50_acts[0];
         i++) {
        const act_shape_t *a = &resnet50_acts[i];
        int HW = a->H * a->H;
        size_t count = (size_t)B * a->C * HW;
        double t[4];
        BENCH_BEST(t[0], batchnorm_forward_train_cpu(y, m, r, rm, rv, x, g,
                                                       bt, B, a->C, HW, 0.1f,
                                                       1e-5f));
        BENCH_BEST(t[1], batchnorm_backward_cpu(dx, dg, db, dy, x, g, m, r,
                                                  B, a->C, HW));
        BENCH_BEST(t[2], relu_forward_cpu(y, x, count));
        BENCH_BEST(t[3], relu_backward_cpu(dx, dy, y, count));
        printf("%-24s %5d %9.2f %9.2f %9.2f %9.2f  ms\n", a->name, a->count,
               t[0] * 1e3, t[1] * 1e3, t[2] * 1e3, t[3] * 1e3);
        for (int k = 0; k < 4; k++)
            tot[k] += a->count * t[k];
    }
    printf("%-24s %5s %9.1f %9.1f %9.1f %9.1f  ms (ReLU runs on ~2/3 of "
           "these)\n", "weighted total", "", tot[0] * 1e3, tot[1] * 1e3,
           tot[2] * 1e3, tot[3] * 1e3);

    int32_t *arg = malloc((size_t)B * 64 * 56 * 56 * sizeof(int32_t));
    if (!arg) {
        fprintf(stderr, PROG ": error: out of memory\n");
        exit(1);
    }
    double tp, tpb, tadd, tgap, tsgd;
    BENCH_BEST(tp, maxpool2d_forward_cpu(y, arg, x, B, 64, 112, 112, 3, 2,
                                           1));
    BENCH_BEST(tpb, maxpool2d_backward_cpu(dx, dy, arg, B, 64, 112, 112, 56,
                                             56));
    BENCH_BEST(tadd, add_forward_cpu(y, x, dy, (size_t)B * 256 * 56 * 56));
    BENCH_BEST(tgap, global_avgpool_forward_cpu(y, x, B, 2048, 49));
    /* 25.6 M parameters: ResNet-50's arena. */
    size_t params = 25557032;
    float *p = bench_alloc(params), *pg = bench_alloc(params);
    float *pm = bench_alloc(params);
    BENCH_BEST(tsgd, sgd_update_cpu(p, pm, pg, params, 0.1f, 0.9f, 1e-4f));
    printf("maxpool 3x3/2 fwd %.2f bwd %.2f ms; add 256x56^2 %.2f ms; "
           "global avgpool %.2f ms; sgd 25.6M params %.2f ms (%.1f GB/s)\n",
           tp * 1e3, tpb * 1e3, tadd * 1e3, tgap * 1e3, tsgd * 1e3,
           5.0 * 4 * params / tsgd * 1e-9);
    free(arg);
    rt_free_aligned(p), rt_free_aligned(pg), rt_free_aligned(pm);
    rt_free_aligned(x), rt_free_aligned(y), rt_free_aligned(dy);
    rt_free_aligned(dx), rt_free_aligned(g), rt_free_aligned(bt);
    rt_free_aligned(m), rt_free_aligned(r), rt_free_aligned(rm);
    rt_free_aligned(rv), rt_free_aligned(dg), rt_free_aligned(db);
}

/* Parameter and gradient arenas for the step benchmarks: one block each,
 * carved in order, as the worker lays them out. */
typedef struct {
    float *p, *g, *m;
    size_t used, count;
} arena_t;

static float *arena_take(arena_t *a, size_t count, float **grad)
{
    float *p = a->p + a->used;
    *grad = a->g + a->used;
    a->used += (count + 15) & ~(size_t)15;
    return p;
}

static void arena_init(arena_t *a, size_t count)
{
    a->count = count;
    a->used = 0;
    a->p = bench_alloc(count);
    a->g = bench_alloc(count);
    a->m = bench_alloc(count);
    for (size_t i = 0; i < count; i++)
        a->p[i] *= 0.05f;
}

static void arena_free(arena_t *a)
{
    rt_free_aligned(a->p), rt_free_aligned(a->g), rt_free_aligned(a->m);
}

/* One MLP 784-1024-1024-10 training step with only kernel calls: what the
 * worker's step costs without any framework around it. */
typedef struct {
    int B;
    float *x[4], *dx[4], *w[3], *dw[3], *bias[3], *dbias[3], *probs;
    int32_t *labels;
    arena_t ar;
} mlp_t;

static const int mlp_dims[] = {784, 1024, 1024, 10};

static void mlp_step(mlp_t *m)
{
    int B = m->B;
    for (int i = 0; i < 3; i++) {
        linear_forward_cpu(m->x[i + 1], m->x[i], m->w[i], m->bias[i], B,
                           mlp_dims[i], mlp_dims[i + 1]);
        if (i < 2)
            relu_forward_cpu(m->x[i + 1], m->x[i + 1],
                             (size_t)B * mlp_dims[i + 1]);
    }
    softmax_cross_entropy_forward_cpu(m->probs, m->x[3], m->labels, B, 10);
    softmax_cross_entropy_backward_cpu(m->dx[3], m->probs, m->labels, B, 10);
    for (int i = 2; i >= 0; i--) {
        linear_backward_cpu(i ? m->dx[i] : NULL, m->dw[i], m->dbias[i],
                            m->dx[i + 1], m->x[i], m->w[i], B, mlp_dims[i],
                            mlp_dims[i + 1]);
        if (i)
            relu_backward_cpu(m->dx[i], m->dx[i], m->x[i],
                              (size_t)B * mlp_dims[i]);
    }
    sgd_update_cpu(m->ar.p, m->ar.m, m->ar.g, m->ar.used, 0.01f, 0.9f, 1e-4f);
}

static void bench_mlp(int B)
{
    mlp_t m = {.B = B};
    size_t params = 0;
    for (int i = 0; i < 3; i++)
        params += ((size_t)mlp_dims[i] * mlp_dims[i + 1] + mlp_dims[i + 1] +
                   32) & ~(size_t)15;
    arena_init(&m.ar, params);
    for (int i = 0; i < 4; i++) {
        m.x[i] = bench_alloc((size_t)B * mlp_dims[i]);
        m.dx[i] = bench_alloc((size_t)B * mlp_dims[i]);
    }
    for (int i = 0; i < 3; i++) {
        m.w[i] = arena_take(&m.ar, (size_t)mlp_dims[i] * mlp_dims[i + 1],
                            &m.dw[i]);
        m.bias[i] = arena_take(&m.ar, mlp_dims[i + 1], &m.dbias[i]);
    }
    m.probs = bench_alloc((size_t)B * 10);
    m.labels = calloc((size_t)B, sizeof(int32_t));
    for (int b = 0; b < B; b++)
        m.labels[b] = b % 10;
    double t_step, t_sgd;
    BENCH_BEST(t_step, mlp_step(&m));
    BENCH_BEST(t_sgd, sgd_update_cpu(m.ar.p, m.ar.m, m.ar.g, m.ar.used, 0.01f,
                                     0.9f, 1e-4f));
    printf("mlp 784-1024-1024-10 batch %d step (kernels only, %zu params): "
           "%.3f ms, %.0f images/sec; of it sgd %.3f ms\n",
           B, m.ar.used, t_step * 1e3, B / t_step, t_sgd * 1e3);
    for (int i = 0; i < 4; i++)
        rt_free_aligned(m.x[i]), rt_free_aligned(m.dx[i]);
    rt_free_aligned(m.probs);
    free(m.labels);
    arena_free(&m.ar);
}

/* LeNet (tf_cnn_benchmarks layout) on 28x28x1, batch B: conv5x5x32 pad 2,
 * ReLU, maxpool 2 -> conv5x5x64 pad 2, ReLU, maxpool 2 -> fc 512, ReLU ->
 * fc 10. One training step with only kernel calls. */
typedef struct {
    int B;
    conv2d_shape_t c1, c2;
    float *x, *a1, *p1, *a2, *p2, *f1, *f2, *probs;
    float *da1, *dp1, *da2, *dp2, *df1, *df2;
    int32_t *arg1, *arg2, *labels;
    float *w1, *b1, *w2, *b2, *w3, *b3, *w4, *b4;
    float *gw1, *gb1, *gw2, *gb2, *gw3, *gb3, *gw4, *gb4;
    float *ws;
    arena_t ar;
} lenet_t;

static void lenet_step(lenet_t *n)
{
    int B = n->B;
    size_t s1 = (size_t)B * 32 * 28 * 28, s2 = (size_t)B * 64 * 14 * 14;
    conv2d_forward_cpu(n->a1, n->x, n->w1, n->b1, &n->c1, n->ws);
    relu_forward_cpu(n->a1, n->a1, s1);
    maxpool2d_forward_cpu(n->p1, n->arg1, n->a1, B, 32, 28, 28, 2, 2, 0);
    conv2d_forward_cpu(n->a2, n->p1, n->w2, n->b2, &n->c2, n->ws);
    relu_forward_cpu(n->a2, n->a2, s2);
    maxpool2d_forward_cpu(n->p2, n->arg2, n->a2, B, 64, 14, 14, 2, 2, 0);
    linear_forward_cpu(n->f1, n->p2, n->w3, n->b3, B, 3136, 512);
    relu_forward_cpu(n->f1, n->f1, (size_t)B * 512);
    linear_forward_cpu(n->f2, n->f1, n->w4, n->b4, B, 512, 10);
    softmax_cross_entropy_forward_cpu(n->probs, n->f2, n->labels, B, 10);
    softmax_cross_entropy_backward_cpu(n->df2, n->probs, n->labels, B, 10);
    linear_backward_cpu(n->df1, n->gw4, n->gb4, n->df2, n->f1, n->w4, B, 512,
                        10);
    relu_backward_cpu(n->df1, n->df1, n->f1, (size_t)B * 512);
    linear_backward_cpu(n->dp2, n->gw3, n->gb3, n->df1, n->p2, n->w3, B, 3136,
                        512);
    maxpool2d_backward_cpu(n->da2, n->dp2, n->arg2, B, 64, 14, 14, 7, 7);
    relu_backward_cpu(n->da2, n->da2, n->a2, s2);
    conv2d_backward_cpu(n->dp1, n->gw2, n->gb2, n->da2, n->p1, n->w2, &n->c2,
                        n->ws);
    maxpool2d_backward_cpu(n->da1, n->dp1, n->arg1, B, 32, 28, 28, 14, 14);
    relu_backward_cpu(n->da1, n->da1, n->a1, s1);
    conv2d_backward_cpu(NULL, n->gw1, n->gb1, n->da1, n->x, n->w1, &n->c1,
                        n->ws);
    sgd_update_cpu(n->ar.p, n->ar.m, n->ar.g, n->ar.used, 0.01f, 0.9f, 1e-4f);
}

static void bench_lenet(int B)
{
    lenet_t n = {.B = B};
    conv2d_shape_init(&n.c1, B, 1, 28, 28, 32, 5, 5, 1, 2);
    conv2d_shape_init(&n.c2, B, 32, 14, 14, 64, 5, 5, 1, 2);
    size_t ws1 = conv2d_workspace_floats(&n.c1);
    size_t ws2 = conv2d_workspace_floats(&n.c2);
    n.ws = bench_alloc(ws1 > ws2 ? ws1 : ws2);
    size_t s1 = (size_t)B * 32 * 28 * 28, s2 = (size_t)B * 64 * 14 * 14;
    n.x = bench_alloc((size_t)B * 28 * 28);
    n.a1 = bench_alloc(s1), n.da1 = bench_alloc(s1);
    n.p1 = bench_alloc(s1 / 4), n.dp1 = bench_alloc(s1 / 4);
    n.a2 = bench_alloc(s2), n.da2 = bench_alloc(s2);
    n.p2 = bench_alloc(s2 / 4), n.dp2 = bench_alloc(s2 / 4);
    n.f1 = bench_alloc((size_t)B * 512), n.df1 = bench_alloc((size_t)B * 512);
    n.f2 = bench_alloc((size_t)B * 10), n.df2 = bench_alloc((size_t)B * 10);
    n.probs = bench_alloc((size_t)B * 10);
    n.arg1 = malloc(s1 / 4 * sizeof(int32_t));
    n.arg2 = malloc(s2 / 4 * sizeof(int32_t));
    n.labels = calloc((size_t)B, sizeof(int32_t));
    if (!n.arg1 || !n.arg2 || !n.labels) {
        fprintf(stderr, PROG ": error: out of memory\n");
        exit(1);
    }
    arena_init(&n.ar, 800 + 32 + 51200 + 64 + 3136 * 512 + 512 + 5120 + 10 +
                          8 * 16);
    n.w1 = arena_take(&n.ar, 800, &n.gw1);
    n.b1 = arena_take(&n.ar, 32, &n.gb1);
    n.w2 = arena_take(&n.ar, 51200, &n.gw2);
    n.b2 = arena_take(&n.ar, 64, &n.gb2);
    n.w3 = arena_take(&n.ar, 3136 * 512, &n.gw3);
    n.b3 = arena_take(&n.ar, 512, &n.gb3);
    n.w4 = arena_take(&n.ar, 5120, &n.gw4);
    n.b4 = arena_take(&n.ar, 10, &n.gb4);
    for (int b = 0; b < B; b++)
        n.labels[b] = b % 10;
    double t_step, t_c2b;
    BENCH_BEST(t_step, lenet_step(&n));
    BENCH_BEST(t_c2b, conv2d_backward_cpu(n.dp1, n.gw2, n.gb2, n.da2, n.p1,
                                          n.w2, &n.c2, n.ws));
    printf("lenet batch %d step (kernels only, %zu params): %.3f ms, %.0f "
           "images/sec; of it conv2 backward %.3f ms\n",
           B, n.ar.used, t_step * 1e3, B / t_step, t_c2b * 1e3);
    float *bufs[] = {n.ws, n.x, n.a1, n.da1, n.p1, n.dp1, n.a2, n.da2, n.p2,
                     n.dp2, n.f1, n.df1, n.f2, n.df2, n.probs};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        rt_free_aligned(bufs[i]);
    free(n.arg1), free(n.arg2), free(n.labels);
    arena_free(&n.ar);
}

static int parse_int(const char *flag, const char *text, int min, int max)
{
    uint64_t v;
    if (!text || rt_parse_u64(text, (uint64_t)min, (uint64_t)max, 0, &v)) {
        fprintf(stderr, PROG ": error: %s needs a whole number in [%d, %d], "
                        "got '%s'\n", flag, min, max, text ? text : "");
        exit(2);
    }
    return (int)v;
}

int main(int argc, char **argv)
{
    int threads = 1, batch = 32;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--threads"))
            threads = parse_int("--threads", next, 1, 256), i++;
        else if (!strcmp(argv[i], "--batch"))
            batch = parse_int("--batch", next, 1, 1024), i++;
        else if (!strcmp(argv[i], "--reps"))
            bench_reps = parse_int("--reps", next, 1, 64), i++;
        else if (!strcmp(argv[i], "--cpu-clock"))
            bench_cpu_clock = 1;
        else if (!strcmp(argv[i], "--only") && next)
            only = next, i++;
        else {
            fprintf(stderr, PROG ": error: unknown argument '%s'; usage: " PROG
                            " [--threads N] [--batch B] [--reps R] [--only "
                            "gemm|resnet50|ops|lenet|mlp] [--cpu-clock]\n",
                    argv[i]);
            return 2;
        }
    }
    if (bench_cpu_clock && threads != 1) {
        fprintf(stderr, PROG ": error: --cpu-clock measures one thread; "
                        "use it with --threads 1\n");
        return 2;
    }
    kernels_set_num_threads(threads);
    printf("# " PROG ": %d thread(s), batch %d, best of %d, %s; %s\n",
           threads, batch, bench_reps,
           bench_cpu_clock ? "thread CPU time" : "wall time",
           openblas_get_config());
    double f, b, flop;
    if (!only || !strcmp(only, "gemm"))
        bench_gemm();
    if (!only || !strcmp(only, "resnet50")) {
        bench_convs(resnet50_convs,
                    sizeof resnet50_convs / sizeof resnet50_convs[0], batch,
                    &f, &b, &flop);
        printf("resnet50 convs alone: %.2f images/sec\n", batch / (f + b));
    }
    if (!only || !strcmp(only, "ops"))
        bench_ops(batch);
    if (!only || !strcmp(only, "lenet")) {
        bench_convs(lenet_convs, 2, 64, &f, &b, &flop);
        bench_lenet(64);
    }
    if (!only || !strcmp(only, "mlp"))
        bench_mlp(64);
    return 0;
}
