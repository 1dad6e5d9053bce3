/* ringtrain kernels (CUDA): 2-D convolution through cuDNN (kernels.h,
 * "conv2d through cuDNN"). Built with -DRINGTRAIN_HAVE_CUDNN where meson
 * found cuDNN 9 (and always for the gpu-emu suite, against tests/gpu/emu's
 * cudnn.h); elsewhere the entry points say there is no cuDNN.
 *
 * API: cuDNN's legacy convolution calls only, each present since cuDNN 9.0
 * (the device's PyTorch wheels may carry any 9.x runtime): cudnnCreate /
 * SetStream / GetVersion, 4-D tensor and filter descriptors, a 2-D
 * convolution descriptor per direction (each direction's algorithm may want
 * its own math type), cudnnFindConvolution{Forward,BackwardData,
 * BackwardFilter}Algorithm (the non-Ex form: cuDNN allocates the trial
 * buffers itself, so planning needs no arenas), the _v7 heuristics, the
 * workspace-size queries and the three convolutions. No fused
 * conv+bias+activation call (cudnnConvolutionBiasActivationForward only
 * fuses ReLU before batch norm, which these models never have).
 *
 * Plans: one per (shape, format, TF32 setting), made once and kept in a
 * fixed table (no allocation per call; descriptors live as long as the
 * context). Each call finds its plan by a linear search over at most a few
 * dozen entries, which costs far less than a launch.
 *
 * Precision: fp16 and bf16 run as "pseudo-half" (storage half, compute and
 * accumulation fp32: CUDNN_DATA_FLOAT as the convolution's compute type)
 * with CUDNN_TENSOR_OP_MATH; fp32 with CUDNN_DEFAULT_MATH when TF32 is
 * allowed, else CUDNN_FMA_MATH, which rules TF32 out even where a timed
 * result would have preferred it. */
#include "cuda_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RINGTRAIN_HAVE_CUDNN

#include <cudnn.h>

#if CUDNN_MAJOR != 9
#error "kernels/cuda/cudnn.cu is written for cuDNN 9 (cudnn_version.h)"
#endif

/* Bias of a convolution with bias (LeNet's): out += bias[c] and
 * dbias[c] = sum of dout over (b, h, w), in either layout. Own kernels: the
 * networks that matter for speed have no convolution bias. */
template <typename T>
__global__ static void cudnn_bias_add_kernel(T *out, const float *bias,
                                             size_t total, unsigned C,
                                             unsigned hw, int nhwc)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned c = nhwc ? (unsigned)(i % C) : (unsigned)(i / hw % C);
        kcuda__st(out + i, kcuda__ld(out[i]) + bias[c]);
    }
}

// dbias[c] = sum over b, p of dout: one block per channel, fixed order
template <typename T>
__global__ static void __launch_bounds__(KCUDA__REDUCE_THREADS)
cudnn_bias_grad_kernel(float *dbias, const T *dout, int B, int C, int hw,
                       int nhwc)
{
    int c = blockIdx.x;
    float sum = 0.0f;
    size_t rows = (size_t)B * hw;
    if (nhwc) {
        for (size_t r = threadIdx.x; r < rows; r += blockDim.x)
            sum += kcuda__ld(dout[r * C + c]);
    } else {
        for (int b = 0; b < B; b++) {
            const T *row = dout + ((size_t)b * C + c) * hw;
            for (int p = threadIdx.x; p < hw; p += blockDim.x)
                sum += kcuda__ld(row[p]);
        }
    }
    double total = kcuda__block_sum((double)sum);
    if (threadIdx.x == 0)
        dbias[c] = (float)total;
}

static void kdnn__bias_add(void *out, const float *bias, const conv2d_shape_t *s,
                           kern_format_t f)
{
    size_t hw = (size_t)s->OH * s->OW;
    size_t total = (size_t)s->B * s->OC * hw;
    int nhwc = f.layout == KERN_NHWC;
    KCUDA__WITH_DTYPE(
        f.dtype, T,
        cudnn_bias_add_kernel<T><<<kcuda__blocks(total, KCUDA__THREADS),
                                   KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
            (T *)out, bias, total, (unsigned)s->OC, (unsigned)hw, nhwc));
    KCUDA__LAUNCHED("cudnn_bias_add_kernel");
}

static void kdnn__bias_grad(float *dbias, const void *dout,
                            const conv2d_shape_t *s, kern_format_t f)
{
    int nhwc = f.layout == KERN_NHWC;
    KCUDA__WITH_DTYPE(
        f.dtype, T,
        cudnn_bias_grad_kernel<T><<<s->OC, KCUDA__REDUCE_THREADS, 0,
                                    kcuda__ctx.stream>>>(
            dbias, (const T *)dout, s->B, s->OC, s->OH * s->OW, nhwc));
    KCUDA__LAUNCHED("cudnn_bias_grad_kernel");
}


#define KDNN__MAX_PLANS 256
#define KDNN__MAX_ALGOS 16

typedef struct {
    conv2d_shape_t s;
    kern_format_t f;
    int tf32;
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv[3]; /* forward, bwd data, bwd filter */
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws[3];
    int found;  /* 1: timed (find), 0: heuristic */
} kdnn__plan_t;

static struct {
    cudnnHandle_t handle;
    int version;
    int plan_count;
    size_t max_ws;   /* largest workspace planned (bytes) */
    kdnn__plan_t plans[KDNN__MAX_PLANS];
} kdnn;

static int kdnn__check(cudnnStatus_t st, const char *file, int line,
                       const char *call)
{
    if (st == CUDNN_STATUS_SUCCESS)
        return 0;
    return kcuda__report(RT_ECUDA, file, line, call, cudnnGetErrorString(st));
}
#define RT_CUDNN_CHECK(call) kdnn__check((call), __FILE__, __LINE__, #call)

void kdnn__free(void)
{
    for (int i = 0; i < kdnn.plan_count; i++) {
        kdnn__plan_t *p = &kdnn.plans[i];
        cudnnDestroyTensorDescriptor(p->x);
        cudnnDestroyTensorDescriptor(p->y);
        cudnnDestroyFilterDescriptor(p->w);
        for (int d = 0; d < 3; d++)
            cudnnDestroyConvolutionDescriptor(p->conv[d]);
    }
    if (kdnn.handle)
        cudnnDestroy(kdnn.handle);
    memset(&kdnn, 0, sizeof kdnn);
}

extern "C" int kernels_cudnn_init(char *why, size_t why_bytes)
{
    if (kdnn.handle)
        return 0;
    if (!kcuda__ready("kernels_cudnn_init")) {
        snprintf(why, why_bytes, "kernels_cuda_init() was not called");
        return RT_EINVAL;
    }
    size_t v = cudnnGetVersion();
    if (v / 10000 != CUDNN_MAJOR) {
        snprintf(why, why_bytes,
                 "the cuDNN runtime is version %zu.%zu.%zu, this build needs "
                 "cuDNN %d (built against %d.%d.%d)",
                 v / 10000, v / 100 % 100, v % 100, CUDNN_MAJOR, CUDNN_MAJOR,
                 CUDNN_MINOR, CUDNN_PATCHLEVEL);
        return RT_ENOTSUP;
    }
    cudnnStatus_t st = cudnnCreate(&kdnn.handle);
    if (st == CUDNN_STATUS_SUCCESS)
        st = cudnnSetStream(kdnn.handle, kcuda__ctx.stream);
    if (st != CUDNN_STATUS_SUCCESS) {
        snprintf(why, why_bytes, "cudnnCreate: %s", cudnnGetErrorString(st));
        if (kdnn.handle)
            cudnnDestroy(kdnn.handle);
        kdnn.handle = NULL;
        return RT_ENOTSUP;
    }
    kdnn.version = (int)v;
    return 0;
}

extern "C" int kernels_cudnn_version(void)
{
    return kdnn.handle ? kdnn.version : 0;
}

static const char *kdnn__choice_env(void)
{
    const char *e = getenv("RINGTRAIN_CUDNN_ALGO");
    return e && strcmp(e, "heuristic") == 0 ? "heuristic" : "find";
}

extern "C" const char *kernels_cudnn_choice(void)
{
    return kdnn__choice_env();
}

static size_t kdnn__cap(void)
{
    const char *e = getenv("RINGTRAIN_CUDNN_WORKSPACE_MB");
    long mb = e ? atol(e) : 512;
    return (size_t)(mb > 0 ? mb : 0) << 20;
}

static cudnnDataType_t kdnn__type(kern_dtype_t t)
{
    return t == KERN_F16 ? CUDNN_DATA_HALF
           : t == KERN_BF16 ? CUDNN_DATA_BFLOAT16
                            : CUDNN_DATA_FLOAT;
}

static cudnnMathType_t kdnn__math(const kdnn__plan_t *p)
{
    if (p->f.dtype != KERN_F32)
        return CUDNN_TENSOR_OP_MATH;
    return p->tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* The math type a direction runs with: the one cuDNN timed the algorithm
 * with, except that strict fp32 stays FMA whatever cuDNN reported. */
static cudnnMathType_t kdnn__math_for(const kdnn__plan_t *p, cudnnMathType_t m)
{
    return p->f.dtype == KERN_F32 && !p->tf32 ? CUDNN_FMA_MATH : m;
}

static int kdnn__descriptors(kdnn__plan_t *p)
{
    const conv2d_shape_t *s = &p->s;
    cudnnTensorFormat_t fmt =
        p->f.layout == KERN_NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    cudnnDataType_t t = kdnn__type(p->f.dtype);
    if (RT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x)) ||
        RT_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y)) ||
        RT_CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w)) ||
        RT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, fmt, t, s->B, s->C,
                                                  s->H, s->W)) ||
        RT_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, fmt, t, s->B, s->OC,
                                                  s->OH, s->OW)) ||
        RT_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, t, fmt, s->OC, s->C,
                                                  s->KH, s->KW)))
        return RT_ECUDA;
    for (int d = 0; d < 3; d++)
        if (RT_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv[d])) ||
            RT_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
                p->conv[d], s->pad, s->pad, s->stride, s->stride, 1, 1,
                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT)) ||
            RT_CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv[d],
                                                       kdnn__math(p))))
            return RT_ECUDA;
    return 0;
}

/* From n results (fastest first, as cuDNN orders them): the fastest usable
 * one, or a smaller-workspace one within 3% of it. -1 if none is usable. */
template <typename Perf>
static int kdnn__pick(const Perf *r, int n, size_t cap)
{
    int best = -1;
    for (int i = 0; i < n; i++) {
        if (r[i].status != CUDNN_STATUS_SUCCESS || r[i].memory > cap)
            continue;
        if (best < 0) {
            best = i;
            continue;
        }
        if (r[i].time <= r[best].time * 1.03f && r[i].memory < r[best].memory)
            best = i;
    }
    return best;
}

/* Heuristic results carry no time: the first usable suggestion. */
template <typename Perf>
static int kdnn__first(const Perf *r, int n, size_t cap)
{
    for (int i = 0; i < n; i++)
        if (r[i].status == CUDNN_STATUS_SUCCESS && r[i].memory <= cap)
            return i;
    return -1;
}

static int kdnn__none(const kdnn__plan_t *p, const char *direction)
{
    char msg[300];
    snprintf(msg, sizeof msg,
             "no %s algorithm for conv %dx%d/%d %d->%d at %dx%d batch %d "
             "(%s) fits the workspace cap (RINGTRAIN_CUDNN_WORKSPACE_MB)",
             direction, p->s.KH, p->s.KW, p->s.stride, p->s.C, p->s.OC, p->s.H,
             p->s.W, p->s.B, kern_dtype_name(p->f.dtype));
    return kcuda__report(RT_ENOTSUP, __FILE__, __LINE__, "kernels/cuda/cudnn.cu",
                         msg);
}

/* One direction d's algorithm: `query(perf, &n)` lists the candidates
 * (timed or suggested), `size(algo, &bytes)` gives the chosen one's
 * workspace; the direction's descriptor takes the math type it was timed
 * with. */
template <typename Perf, typename Algo, typename Query, typename Size>
static int kdnn__choose(kdnn__plan_t *p, int d, const char *what, int find,
                        size_t cap, Query query, Size size, Algo *algo)
{
    Perf r[KDNN__MAX_ALGOS];
    int n = 0;
    if (kdnn__check(query(r, &n), __FILE__, __LINE__, what))
        return RT_ECUDA;
    int i = find ? kdnn__pick(r, n, cap) : kdnn__first(r, n, cap);
    if (i < 0)
        return kdnn__none(p, what);
    *algo = r[i].algo;
    if (RT_CUDNN_CHECK(cudnnSetConvolutionMathType(
            p->conv[d], kdnn__math_for(p, r[i].mathType))) ||
        kdnn__check(size(*algo, &p->ws[d]), __FILE__, __LINE__, what))
        return RT_ECUDA;
    return 0;
}

/* The three directions' algorithms (find: cudnnFind*, timed on this GPU;
 * else the _v7 heuristics). */
static int kdnn__choose_all(kdnn__plan_t *p, int find, size_t cap)
{
    cudnnHandle_t h = kdnn.handle;
    const int max = KDNN__MAX_ALGOS;
    typedef cudnnConvolutionFwdAlgoPerf_t fwd_t;
    typedef cudnnConvolutionBwdDataAlgoPerf_t data_t;
    typedef cudnnConvolutionBwdFilterAlgoPerf_t filter_t;
    return kdnn__choose<fwd_t>(
               p, 0, "forward (cudnnFind/GetConvolutionForwardAlgorithm)", find,
               cap,
               [&](fwd_t *r, int *n) {
                   return find ? cudnnFindConvolutionForwardAlgorithm(
                                     h, p->x, p->w, p->conv[0], p->y, max, n, r)
                               : cudnnGetConvolutionForwardAlgorithm_v7(
                                     h, p->x, p->w, p->conv[0], p->y, max, n, r);
               },
               [&](cudnnConvolutionFwdAlgo_t a, size_t *bytes) {
                   return cudnnGetConvolutionForwardWorkspaceSize(
                       h, p->x, p->w, p->conv[0], p->y, a, bytes);
               },
               &p->fwd) ||
           kdnn__choose<data_t>(
               p, 1, "backward-data (cudnnFind/GetConvolutionBackwardDataAlgorithm)",
               find, cap,
               [&](data_t *r, int *n) {
                   return find ? cudnnFindConvolutionBackwardDataAlgorithm(
                                     h, p->w, p->y, p->conv[1], p->x, max, n, r)
                               : cudnnGetConvolutionBackwardDataAlgorithm_v7(
                                     h, p->w, p->y, p->conv[1], p->x, max, n, r);
               },
               [&](cudnnConvolutionBwdDataAlgo_t a, size_t *bytes) {
                   return cudnnGetConvolutionBackwardDataWorkspaceSize(
                       h, p->w, p->y, p->conv[1], p->x, a, bytes);
               },
               &p->bwd_data) ||
           kdnn__choose<filter_t>(
               p, 2, "backward-filter (cudnnFind/GetConvolutionBackwardFilterAlgorithm)",
               find, cap,
               [&](filter_t *r, int *n) {
                   return find ? cudnnFindConvolutionBackwardFilterAlgorithm(
                                     h, p->x, p->y, p->conv[2], p->w, max, n, r)
                               : cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                                     h, p->x, p->y, p->conv[2], p->w, max, n, r);
               },
               [&](cudnnConvolutionBwdFilterAlgo_t a, size_t *bytes) {
                   return cudnnGetConvolutionBackwardFilterWorkspaceSize(
                       h, p->x, p->y, p->conv[2], p->w, a, bytes);
               },
               &p->bwd_filter);
}

static size_t kdnn__ws_max(const kdnn__plan_t *p)
{
    size_t bytes = p->ws[0];
    for (int d = 1; d < 3; d++)
        bytes = p->ws[d] > bytes ? p->ws[d] : bytes;
    return bytes;
}

static int kdnn__same(const kdnn__plan_t *p, const conv2d_shape_t *s,
                      kern_format_t f)
{
    const conv2d_shape_t *q = &p->s;
    return q->B == s->B && q->C == s->C && q->H == s->H && q->W == s->W &&
           q->OC == s->OC && q->KH == s->KH && q->KW == s->KW &&
           q->stride == s->stride && q->pad == s->pad && p->f.dtype == f.dtype &&
           p->f.layout == f.layout &&
           (f.dtype != KERN_F32 || p->tf32 == kcuda__ctx.tf32);
}

/* The workspace a call may use for a shape it plans itself: that of the
 * same layer planned at another batch (the caller's buffer was sized for
 * it), else the largest planned. */
static size_t kdnn__call_cap(const conv2d_shape_t *s, kern_format_t f)
{
    size_t cap = 0;
    int sibling = 0;
    for (int i = 0; i < kdnn.plan_count; i++) {
        const kdnn__plan_t *p = &kdnn.plans[i];
        conv2d_shape_t q = *s;
        q.B = p->s.B;
        if (p->s.B < 0 || !kdnn__same(p, &q, f))
            continue;
        size_t ws = kdnn__ws_max(p);
        if (!sibling || ws < cap)
            cap = ws;
        sibling = 1;
    }
    return sibling ? cap : kdnn.max_ws;
}

/* The plan for (s, f): found, or made now (find: timed trials, for
 * start-up; heuristic within kdnn__call_cap, for a shape first met by a
 * call). NULL on failure (reported). */
static kdnn__plan_t *kdnn__plan(const conv2d_shape_t *s, kern_format_t f,
                                int at_call)
{
    for (int i = 0; i < kdnn.plan_count; i++)
        if (kdnn__same(&kdnn.plans[i], s, f))
            return &kdnn.plans[i];
    if (!kdnn.handle) {
        kcuda__report(RT_EINVAL, __FILE__, __LINE__, "conv2d_*_cudnn",
                      "kernels_cudnn_init() was not called (or failed)");
        return NULL;
    }
    if (kdnn.plan_count >= KDNN__MAX_PLANS) {
        kcuda__report(RT_ERANGE, __FILE__, __LINE__, "conv2d_*_cudnn",
                      "more convolution shapes than KDNN__MAX_PLANS");
        return NULL;
    }
    kdnn__plan_t *p = &kdnn.plans[kdnn.plan_count];
    memset(p, 0, sizeof *p);
    p->s = *s;
    p->f = f;
    p->tf32 = kcuda__ctx.tf32;
    int find = !at_call && strcmp(kdnn__choice_env(), "find") == 0;
    size_t cap = at_call ? kdnn__call_cap(s, f) : kdnn__cap();
    kdnn.plan_count++; /* its descriptors are freed by kdnn__free either way */
    if (kdnn__descriptors(p) || kdnn__choose_all(p, find, cap)) {
        p->s.B = -1; /* never matches again */
        return NULL;
    }
    p->found = find;
    for (int d = 0; d < 3; d++)
        if (p->ws[d] > kdnn.max_ws)
            kdnn.max_ws = p->ws[d];
    return p;
}

extern "C" size_t conv2d_workspace_floats_cudnn(const conv2d_shape_t *s,
                                                kern_format_t f)
{
    if (!kcuda__ready("conv2d_workspace_floats_cudnn") ||
        !kcuda__fmt_ok(f, "conv2d_workspace_floats_cudnn"))
        return 0;
    kdnn__plan_t *p = kdnn__plan(s, f, 0);
    if (!p)
        return 0;
    return (kdnn__ws_max(p) + sizeof(float) - 1) / sizeof(float);
}

extern "C" void kernels_cudnn_describe_plans(void (*line)(void *, const char *),
                                             void *ctx)
{
    for (int i = 0; i < kdnn.plan_count; i++) {
        const kdnn__plan_t *p = &kdnn.plans[i];
        if (p->s.B < 0)
            continue;
        char text[200];
        snprintf(text, sizeof text,
                 "conv %dx%d/%d %d->%d %dx%d b%d %s %s: fwd %d, bwd-data %d, "
                 "bwd-filter %d (%s), workspace %.1f MiB",
                 p->s.KH, p->s.KW, p->s.stride, p->s.C, p->s.OC, p->s.H, p->s.W,
                 p->s.B, kern_dtype_name(p->f.dtype),
                 p->f.layout == KERN_NHWC ? "NHWC" : "NCHW", (int)p->fwd,
                 (int)p->bwd_data, (int)p->bwd_filter,
                 p->found ? "timed" : "heuristic",
                 (double)kdnn__ws_max(p) / 1048576.0);
        line(ctx, text);
    }
}

/* The weights as the plan's filter wants them: the fp32 master itself for
 * fp32 NCHW, else a cast (and reorder) in the weight scratch. */
static const void *kdnn__filter(const kdnn__plan_t *p, const float *weight)
{
    if (p->f.dtype == KERN_F32 && p->f.layout == KERN_NCHW)
        return weight;
    return kcuda__weights_cast(weight, (size_t)p->s.OC, (size_t)p->s.C,
                               (size_t)p->s.KH * p->s.KW, p->f.dtype,
                               p->f.layout == KERN_NHWC);
}

// in: (B, C, H, W)  weight: (OC, C, KH, KW) fp32  bias: (OC) fp32 or NULL
// -> out: (B, OC, OH, OW); in and out in format f
extern "C" void conv2d_forward_cudnn(void *out, const void *in,
                                     const float *weight, const float *bias,
                                     const conv2d_shape_t *s, void *workspace,
                                     kern_format_t f)
{
    if (!kcuda__ready("conv2d_forward_cudnn") ||
        !kcuda__fmt_ok(f, "conv2d_forward_cudnn"))
        return;
    kdnn__plan_t *p = kdnn__plan(s, f, 1);
    const void *w = p ? kdnn__filter(p, weight) : NULL;
    if (!w)
        return;
    float one = 1.0f, zero = 0.0f;
    RT_CUDNN_CHECK(cudnnConvolutionForward(kdnn.handle, &one, p->x, in, p->w, w,
                                           p->conv[0], p->fwd, workspace,
                                           p->ws[0], &zero, p->y, out));
    if (bias)
        kdnn__bias_add(out, bias, s, f);
}

// dout: (B, OC, OH, OW), in: (B, C, H, W) in format f -> din (format f) or
// NULL, dweight: (OC, C, KH, KW) fp32, dbias: (OC) fp32 or NULL
extern "C" void conv2d_backward_cudnn(void *din, float *dweight, float *dbias,
                                      const void *dout, const void *in,
                                      const float *weight,
                                      const conv2d_shape_t *s, void *workspace,
                                      kern_format_t f)
{
    if (!kcuda__ready("conv2d_backward_cudnn") ||
        !kcuda__fmt_ok(f, "conv2d_backward_cudnn"))
        return;
    kdnn__plan_t *p = kdnn__plan(s, f, 1);
    if (!p)
        return;
    float one = 1.0f, zero = 0.0f;
    if (dbias)
        kdnn__bias_grad(dbias, dout, s, f);
    if (din) {
        const void *w = kdnn__filter(p, weight);
        if (!w)
            return;
        RT_CUDNN_CHECK(cudnnConvolutionBackwardData(
            kdnn.handle, &one, p->w, w, p->y, dout, p->conv[1], p->bwd_data,
            workspace, p->ws[1], &zero, p->x, din));
    }
    int direct = f.dtype == KERN_F32 && f.layout == KERN_NCHW;
    size_t count = (size_t)s->OC * s->C * s->KH * s->KW;
    void *dw = direct ? (void *)dweight : kcuda__wgrad(count, "conv2d_backward_cudnn");
    if (!dw)
        return;
    RT_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
        kdnn.handle, &one, p->x, in, p->y, dout, p->conv[2], p->bwd_filter,
        workspace, p->ws[2], &zero, p->w, dw));
    if (!direct)
        kcuda__weights_uncast(dweight, dw, (size_t)s->OC, (size_t)s->C,
                              (size_t)s->KH * s->KW, f.dtype,
                              f.layout == KERN_NHWC);
}

#else /* no cuDNN in this build */

void kdnn__free(void) {}

extern "C" int kernels_cudnn_init(char *why, size_t why_bytes)
{
    snprintf(why, why_bytes,
             "this build has no cuDNN (meson -Dcudnn=enabled, with "
             "-Dcudnn_root=DIR where cudnn.h and libcudnn are)");
    return RT_ENOTSUP;
}

extern "C" int kernels_cudnn_version(void) { return 0; }

extern "C" const char *kernels_cudnn_choice(void) { return "none"; }

extern "C" void kernels_cudnn_describe_plans(void (*line)(void *, const char *),
                                             void *ctx)
{
    (void)line;
    (void)ctx;
}

extern "C" size_t conv2d_workspace_floats_cudnn(const conv2d_shape_t *s,
                                                kern_format_t f)
{
    (void)s;
    (void)f;
    kcuda__report(RT_ENOTSUP, __FILE__, __LINE__, "conv2d_workspace_floats_cudnn",
                  "this build has no cuDNN");
    return 0;
}

extern "C" void conv2d_forward_cudnn(void *out, const void *in,
                                     const float *weight, const float *bias,
                                     const conv2d_shape_t *s, void *workspace,
                                     kern_format_t f)
{
    (void)out;
    (void)in;
    (void)weight;
    (void)bias;
    (void)s;
    (void)workspace;
    (void)f;
    kcuda__report(RT_ENOTSUP, __FILE__, __LINE__, "conv2d_forward_cudnn",
                  "this build has no cuDNN");
}

extern "C" void conv2d_backward_cudnn(void *din, float *dweight, float *dbias,
                                      const void *dout, const void *in,
                                      const float *weight,
                                      const conv2d_shape_t *s, void *workspace,
                                      kern_format_t f)
{
    (void)din;
    (void)dweight;
    (void)dbias;
    (void)dout;
    (void)in;
    (void)weight;
    (void)s;
    (void)workspace;
    (void)f;
    kcuda__report(RT_ENOTSUP, __FILE__, __LINE__, "conv2d_backward_cudnn",
                  "this build has no cuDNN");
}

#endif
