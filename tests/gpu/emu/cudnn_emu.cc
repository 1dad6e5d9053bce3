/* CPU emulation of the cuDNN subset kernels/cuda/cudnn.cu uses
 * (declarations, scope and checks: cudnn.h beside this). */
#include "cudnn.h"

#include "emu_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

extern "C" {
#include "kernels.h"
}

#define EMU_CUDNN_MAGIC 0x63646e6eu

struct emu_cudnn {
    unsigned magic;
    cudaStream_t stream;
};

struct emu_cudnn_tensor {
    int set;
    int filter;
    cudnnTensorFormat_t format;
    cudnnDataType_t type;
    int n, c, h, w;
};

struct emu_cudnn_conv {
    int set;
    int pad_h, pad_w, u, v, dil_h, dil_w;
    cudnnConvolutionMode_t mode;
    cudnnDataType_t compute;
    cudnnMathType_t math;
};

static cudnnStatus_t emu_bad(cudnnStatus_t st, const char *what)
{
    fprintf(stderr, "cudnn-emu: %s\n", what);
    return st;
}

size_t cudnnGetVersion(void)
{
    const char *v = getenv("CUDNN_EMU_VERSION");
    return v ? (size_t)atol(v) : 90100;
}

const char *cudnnGetErrorString(cudnnStatus_t st)
{
    switch (st) {
    case CUDNN_STATUS_SUCCESS:
        return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_NOT_INITIALIZED:
        return "CUDNN_STATUS_NOT_INITIALIZED";
    case CUDNN_STATUS_BAD_PARAM:
        return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED:
        return "CUDNN_STATUS_NOT_SUPPORTED";
    default:
        return "CUDNN_STATUS_INTERNAL_ERROR";
    }
}

static bool handle_ok(cudnnHandle_t h)
{
    return h && h->magic == EMU_CUDNN_MAGIC;
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *handle)
{
    int device;
    if (cudaGetDevice(&device) != cudaSuccess)
        return CUDNN_STATUS_NOT_INITIALIZED;
    *handle = new emu_cudnn{EMU_CUDNN_MAGIC, nullptr};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroy(cudnnHandle_t handle)
{
    if (!handle_ok(handle))
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "cudnnDestroy: bad handle");
    handle->magic = 0;
    delete handle;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t handle, cudaStream_t stream)
{
    if (!handle_ok(handle))
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "cudnnSetStream: bad handle");
    handle->stream = stream;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- descriptors ---------------------------------------------------------- */

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *desc)
{
    *desc = new emu_cudnn_tensor();
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t desc)
{
    delete desc; /* cuDNN accepts NULL too */
    return CUDNN_STATUS_SUCCESS;
}

static bool type_ok(cudnnDataType_t t)
{
    return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_HALF || t == CUDNN_DATA_BFLOAT16;
}

static cudnnStatus_t set4d(emu_cudnn_tensor *d, int filter, cudnnTensorFormat_t f,
                           cudnnDataType_t t, int n, int c, int h, int w)
{
    if (!d || (f != CUDNN_TENSOR_NCHW && f != CUDNN_TENSOR_NHWC) || !type_ok(t) ||
        n <= 0 || c <= 0 || h <= 0 || w <= 0)
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "set 4-D descriptor: bad format, type or size");
    *d = emu_cudnn_tensor{1, filter, f, t, n, c, h, w};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t desc,
                                         cudnnTensorFormat_t format,
                                         cudnnDataType_t type, int n, int c,
                                         int h, int w)
{
    return set4d(desc, 0, format, type, n, c, h, w);
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *desc)
{
    *desc = new emu_cudnn_tensor();
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t desc)
{
    delete desc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t desc,
                                         cudnnDataType_t type,
                                         cudnnTensorFormat_t format, int k,
                                         int c, int h, int w)
{
    return set4d(desc, 1, format, type, k, c, h, w);
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *desc)
{
    *desc = new emu_cudnn_conv();
    (*desc)->math = CUDNN_DEFAULT_MATH;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t desc)
{
    delete desc;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t desc,
                                              int pad_h, int pad_w, int u,
                                              int v, int dilation_h,
                                              int dilation_w,
                                              cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute_type)
{
    if (!desc || pad_h < 0 || pad_w < 0 || u <= 0 || v <= 0 || dilation_h <= 0 ||
        dilation_w <= 0)
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolution2dDescriptor: bad value");
    desc->set = 1;
    desc->pad_h = pad_h;
    desc->pad_w = pad_w;
    desc->u = u;
    desc->v = v;
    desc->dil_h = dilation_h;
    desc->dil_w = dilation_w;
    desc->mode = mode;
    desc->compute = compute_type;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t desc,
                                          cudnnMathType_t math)
{
    if (!desc || math < CUDNN_DEFAULT_MATH || math > CUDNN_FMA_MATH)
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "cudnnSetConvolutionMathType: bad value");
    desc->math = math;
    return CUDNN_STATUS_SUCCESS;
}

/* The geometry cuDNN would accept: set descriptors, one type and one
 * format throughout, fp32 compute, no dilation, square padding and stride
 * (the CPU reference has one of each), y the convolution's output shape.
 * Fills the CPU reference's shape. */
static cudnnStatus_t geometry(const emu_cudnn_tensor *x, const emu_cudnn_tensor *w,
                              const emu_cudnn_conv *conv, const emu_cudnn_tensor *y,
                              conv2d_shape_t *s)
{
    if (!x || !w || !conv || !y || !x->set || !w->set || !conv->set || !y->set ||
        x->filter || y->filter || !w->filter)
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "convolution: a descriptor is unset or of the wrong kind");
    if (x->type != w->type || y->type != x->type || x->format != w->format ||
        y->format != x->format)
        return emu_bad(CUDNN_STATUS_NOT_SUPPORTED,
                       "convolution: x, w, y differ in data type or format");
    if (conv->compute != CUDNN_DATA_FLOAT || conv->mode != CUDNN_CROSS_CORRELATION ||
        conv->dil_h != 1 || conv->dil_w != 1 || conv->pad_h != conv->pad_w ||
        conv->u != conv->v)
        return emu_bad(CUDNN_STATUS_NOT_SUPPORTED,
                       "convolution: the emulation takes fp32 compute, cross-correlation, "
                       "no dilation, square padding and stride");
    if (x->c != w->c || conv2d_shape_init(s, x->n, x->c, x->h, x->w, w->n, w->h, w->w,
                                          conv->u, conv->pad_h) != 0)
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "convolution: x and w do not fit together");
    if (y->n != s->B || y->c != s->OC || y->h != s->OH || y->w != s->OW)
        return emu_bad(CUDNN_STATUS_BAD_PARAM,
                       "convolution: y is not the convolution's output shape");
    return CUDNN_STATUS_SUCCESS;
}

/* ---- algorithms ------------------------------------------------------------ */

typedef struct {
    int algo;
    cudnnStatus_t status;
    float time;
    size_t memory;
} emu_algo_t;

static const emu_algo_t fwd_algos[] = {
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, CUDNN_STATUS_SUCCESS, 1.0f, 4096},
    {CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, CUDNN_STATUS_SUCCESS, 1.02f, 0},
    {CUDNN_CONVOLUTION_FWD_ALGO_GEMM, CUDNN_STATUS_NOT_SUPPORTED, -1.0f, 0},
};
static const emu_algo_t bwd_data_algos[] = {
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_1, CUDNN_STATUS_SUCCESS, 1.0f, 8192},
    {CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, CUDNN_STATUS_SUCCESS, 2.0f, 0},
};
static const emu_algo_t bwd_filter_algos[] = {
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_1, CUDNN_STATUS_SUCCESS, 1.0f, (size_t)1 << 20},
    {CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0, CUDNN_STATUS_SUCCESS, 3.0f, 0},
};
#define EMU_COUNT(a) ((int)(sizeof(a) / sizeof(a[0])))

template <typename Perf, typename Algo>
static cudnnStatus_t list(const emu_algo_t *algos, int count, cudnnMathType_t math,
                          int requested, int *returned, Perf *perf)
{
    if (requested <= 0 || !returned || !perf)
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "algorithm query: bad count or output");
    int n = count < requested ? count : requested;
    for (int i = 0; i < n; i++) {
        memset(&perf[i], 0, sizeof perf[i]);
        perf[i].algo = (Algo)algos[i].algo;
        perf[i].status = algos[i].status;
        perf[i].time = algos[i].time;
        perf[i].memory = algos[i].memory;
        perf[i].determinism = CUDNN_DETERMINISTIC;
        perf[i].mathType = math;
    }
    *returned = n;
    return CUDNN_STATUS_SUCCESS;
}

/* The algorithm's workspace, or -1 when it is not offered. */
static long algo_memory(const emu_algo_t *algos, int count, int algo)
{
    for (int i = 0; i < count; i++)
        if (algos[i].algo == algo && algos[i].status == CUDNN_STATUS_SUCCESS)
            return (long)algos[i].memory;
    return -1;
}

static cudnnStatus_t workspace_size(const emu_algo_t *algos, int count, int algo,
                                    size_t *bytes)
{
    long m = algo_memory(algos, count, algo);
    if (m < 0)
        return emu_bad(CUDNN_STATUS_NOT_SUPPORTED, "workspace size: algorithm not offered");
    *bytes = (size_t)m;
    return CUDNN_STATUS_SUCCESS;
}

/* ---- data: storage type and layout <-> fp32 NCHW -------------------------- */

static size_t elem_bytes(cudnnDataType_t t)
{
    return t == CUDNN_DATA_FLOAT ? 4 : 2;
}

static size_t count_of(const emu_cudnn_tensor *d)
{
    return (size_t)d->n * d->c * d->h * d->w;
}

static size_t index_of(const emu_cudnn_tensor *d, size_t n, size_t c, size_t h, size_t w)
{
    if (d->format == CUDNN_TENSOR_NHWC)
        return ((n * d->h + h) * d->w + w) * d->c + c;
    return ((n * d->c + c) * d->h + h) * d->w + w;
}

static emu_elem_t elem_of(cudnnDataType_t t)
{
    return t == CUDNN_DATA_HALF ? EMU_F16 : t == CUDNN_DATA_BFLOAT16 ? EMU_BF16 : EMU_F32;
}

static float load(cudnnDataType_t t, const void *p, size_t i)
{
    return emu_load(elem_of(t), p, i);
}

static bool tf32_applies(const emu_cudnn_tensor *d, const emu_cudnn_conv *conv)
{
    return d->type == CUDNN_DATA_FLOAT && conv->math != CUDNN_FMA_MATH;
}

/* The tensor as fp32 NCHW (TF32-rounded when the math allows it). */
static std::vector<float> gather(const emu_cudnn_tensor *d, const void *p, bool tf32)
{
    std::vector<float> out(count_of(d));
    size_t i = 0;
    for (int n = 0; n < d->n; n++)
        for (int c = 0; c < d->c; c++)
            for (int h = 0; h < d->h; h++)
                for (int w = 0; w < d->w; w++) {
                    float v = load(d->type, p, index_of(d, n, c, h, w));
                    out[i++] = tf32 ? emu_to_tf32(v) : v;
                }
    return out;
}

/* dst = alpha * result + beta * dst, rounded once into dst's type. */
static void scatter(const emu_cudnn_tensor *d, void *p, const std::vector<float> &result,
                    float alpha, float beta)
{
    size_t i = 0;
    for (int n = 0; n < d->n; n++)
        for (int c = 0; c < d->c; c++)
            for (int h = 0; h < d->h; h++)
                for (int w = 0; w < d->w; w++) {
                    size_t at = index_of(d, n, c, h, w);
                    float v = alpha * result[i++];
                    if (beta != 0.0f)
                        v += beta * load(d->type, p, at);
                    emu_store(elem_of(d->type), p, at, v);
                }
}

/* Every buffer inside emulated device memory, the workspace as large as
 * the algorithm asked for, a stream set. */
static cudnnStatus_t buffers_ok(cudnnHandle_t h, const emu_cudnn_tensor *const *descs,
                                const void *const *ptrs, int count, long need,
                                const void *workspace, size_t workspace_bytes)
{
    if (!handle_ok(h))
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "convolution: bad handle");
    if (!h->stream)
        return emu_bad(CUDNN_STATUS_BAD_PARAM,
                       "convolution on the legacy default stream: cudnnSetStream was not "
                       "called (the work would not be ordered with the kernels' stream)");
    if (need < 0)
        return emu_bad(CUDNN_STATUS_NOT_SUPPORTED, "convolution: algorithm not offered");
    for (int i = 0; i < count; i++)
        if (!cuda_emu_is_device(ptrs[i], count_of(descs[i]) * elem_bytes(descs[i]->type)))
            return emu_bad(CUDNN_STATUS_BAD_PARAM,
                           "convolution: a buffer is not device memory of its descriptor's size");
    if (need > 0 && (workspace_bytes < (size_t)need ||
                     !cuda_emu_is_device(workspace, (size_t)need)))
        return emu_bad(CUDNN_STATUS_BAD_PARAM,
                       "convolution: the workspace is smaller than the algorithm needs");
    return CUDNN_STATUS_SUCCESS;
}

/* ---- the three directions -----------------------------------------------------
 * Each query or convolution names its tensors in the forward convolution's
 * roles (input x, filter w, output y), whichever are inputs or outputs. */

typedef struct {
    const emu_algo_t *algos;
    int count;
} emu_dir_t;

static const emu_dir_t dir_fwd = {fwd_algos, EMU_COUNT(fwd_algos)};
static const emu_dir_t dir_bwd_data = {bwd_data_algos, EMU_COUNT(bwd_data_algos)};
static const emu_dir_t dir_bwd_filter = {bwd_filter_algos, EMU_COUNT(bwd_filter_algos)};

template <typename Perf, typename Algo>
static cudnnStatus_t find(cudnnHandle_t handle, const emu_cudnn_tensor *x,
                          const emu_cudnn_tensor *w, const emu_cudnn_conv *conv,
                          const emu_cudnn_tensor *y, const emu_dir_t &dir, int requested,
                          int *returned, Perf *perf)
{
    conv2d_shape_t s;
    if (!handle_ok(handle))
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "algorithm query: bad handle");
    cudnnStatus_t st = geometry(x, w, conv, y, &s);
    if (st != CUDNN_STATUS_SUCCESS)
        return st;
    return list<Perf, Algo>(dir.algos, dir.count, conv->math, requested, returned, perf);
}

static cudnnStatus_t ws_query(cudnnHandle_t handle, const emu_cudnn_tensor *x,
                              const emu_cudnn_tensor *w, const emu_cudnn_conv *conv,
                              const emu_cudnn_tensor *y, const emu_dir_t &dir, int algo,
                              size_t *bytes)
{
    conv2d_shape_t s;
    if (!handle_ok(handle))
        return emu_bad(CUDNN_STATUS_BAD_PARAM, "workspace size: bad handle");
    cudnnStatus_t st = geometry(x, w, conv, y, &s);
    if (st != CUDNN_STATUS_SUCCESS)
        return st;
    return workspace_size(dir.algos, dir.count, algo, bytes);
}

/* Everything a convolution call checks before it runs; fills the shape and
 * whether TF32 applies. */
static cudnnStatus_t prepare(cudnnHandle_t handle, const emu_cudnn_tensor *x,
                             const void *xp, const emu_cudnn_tensor *w, const void *wp,
                             const emu_cudnn_conv *conv, const emu_cudnn_tensor *y,
                             const void *yp, const emu_dir_t &dir, int algo,
                             const void *workspace, size_t workspace_bytes,
                             conv2d_shape_t *s, bool *tf32)
{
    cudnnStatus_t st = geometry(x, w, conv, y, s);
    if (st != CUDNN_STATUS_SUCCESS)
        return st;
    const emu_cudnn_tensor *descs[] = {x, w, y};
    const void *ptrs[] = {xp, wp, yp};
    *tf32 = tf32_applies(x, conv);
    return buffers_ok(handle, descs, ptrs, 3, algo_memory(dir.algos, dir.count, algo),
                      workspace, workspace_bytes);
}

/* ---- forward ------------------------------------------------------------------ */

cudnnStatus_t cudnnFindConvolutionForwardAlgorithm(
    cudnnHandle_t handle, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
    cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t y, int requested,
    int *returned, cudnnConvolutionFwdAlgoPerf_t *perf)
{
    return find<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        handle, x, w, conv, y, dir_fwd, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
    cudnnHandle_t handle, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
    cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t y, int requested,
    int *returned, cudnnConvolutionFwdAlgoPerf_t *perf)
{
    return find<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(
        handle, x, w, conv, y, dir_fwd, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(
    cudnnHandle_t handle, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
    cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t y,
    cudnnConvolutionFwdAlgo_t algo, size_t *bytes)
{
    return ws_query(handle, x, w, conv, y, dir_fwd, algo, bytes);
}

cudnnStatus_t cudnnConvolutionForward(
    cudnnHandle_t handle, const void *alpha, cudnnTensorDescriptor_t xd,
    const void *x, cudnnFilterDescriptor_t wd, const void *w,
    cudnnConvolutionDescriptor_t conv, cudnnConvolutionFwdAlgo_t algo,
    void *workspace, size_t workspace_bytes, const void *beta,
    cudnnTensorDescriptor_t yd, void *y)
{
    conv2d_shape_t s;
    bool tf32;
    cudnnStatus_t st = prepare(handle, xd, x, wd, w, conv, yd, y, dir_fwd, algo,
                               workspace, workspace_bytes, &s, &tf32);
    if (st != CUDNN_STATUS_SUCCESS)
        return st;
    std::vector<float> xin = gather(xd, x, tf32), win = gather(wd, w, tf32);
    std::vector<float> out(count_of(yd)), ws(conv2d_workspace_floats(&s) + 1);
    conv2d_forward_cpu(out.data(), xin.data(), win.data(), nullptr, &s, ws.data());
    scatter(yd, y, out, *(const float *)alpha, *(const float *)beta);
    return CUDNN_STATUS_SUCCESS;
}

/* ---- backward data --------------------------------------------------------------- */

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithm(
    cudnnHandle_t handle, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t dx, int requested,
    int *returned, cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    return find<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        handle, dx, w, conv, dy, dir_bwd_data, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t handle, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t dx, int requested,
    int *returned, cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    return find<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(
        handle, dx, w, conv, dy, dir_bwd_data, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(
    cudnnHandle_t handle, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t dx,
    cudnnConvolutionBwdDataAlgo_t algo, size_t *bytes)
{
    return ws_query(handle, dx, w, conv, dy, dir_bwd_data, algo, bytes);
}

cudnnStatus_t cudnnConvolutionBackwardData(
    cudnnHandle_t handle, const void *alpha, cudnnFilterDescriptor_t wd,
    const void *w, cudnnTensorDescriptor_t dyd, const void *dy,
    cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdDataAlgo_t algo,
    void *workspace, size_t workspace_bytes, const void *beta,
    cudnnTensorDescriptor_t dxd, void *dx)
{
    conv2d_shape_t s;
    bool tf32;
    cudnnStatus_t st = prepare(handle, dxd, dx, wd, w, conv, dyd, dy, dir_bwd_data, algo,
                               workspace, workspace_bytes, &s, &tf32);
    if (st != CUDNN_STATUS_SUCCESS)
        return st;
    std::vector<float> win = gather(wd, w, tf32), dyin = gather(dyd, dy, tf32);
    /* The CPU backward also forms dweight, from an input it is not given
     * here: a zero one, whose dweight is thrown away. */
    std::vector<float> zero_x(count_of(dxd)), dw(count_of(wd)), out(count_of(dxd));
    std::vector<float> ws(conv2d_workspace_floats(&s) + 1);
    conv2d_backward_cpu(out.data(), dw.data(), nullptr, dyin.data(), zero_x.data(),
                        win.data(), &s, ws.data());
    scatter(dxd, dx, out, *(const float *)alpha, *(const float *)beta);
    return CUDNN_STATUS_SUCCESS;
}

/* ---- backward filter --------------------------------------------------------------- */

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithm(
    cudnnHandle_t handle, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnFilterDescriptor_t dw, int requested,
    int *returned, cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    return find<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        handle, x, dw, conv, dy, dir_bwd_filter, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t handle, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnFilterDescriptor_t dw, int requested,
    int *returned, cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    return find<cudnnConvolutionBwdFilterAlgoPerf_t, cudnnConvolutionBwdFilterAlgo_t>(
        handle, x, dw, conv, dy, dir_bwd_filter, requested, returned, perf);
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterWorkspaceSize(
    cudnnHandle_t handle, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnFilterDescriptor_t dw,
    cudnnConvolutionBwdFilterAlgo_t algo, size_t *bytes)
{
    return ws_query(handle, x, dw, conv, dy, dir_bwd_filter, algo, bytes);
}

cudnnStatus_t cudnnConvolutionBackwardFilter(
    cudnnHandle_t handle, const void *alpha, cudnnTensorDescriptor_t xd,
    const void *x, cudnnTensorDescriptor_t dyd, const void *dy,
    cudnnConvolutionDescriptor_t conv, cudnnConvolutionBwdFilterAlgo_t algo,
    void *workspace, size_t workspace_bytes, const void *beta,
    cudnnFilterDescriptor_t dwd, void *dw)
{
    conv2d_shape_t s;
    bool tf32;
    cudnnStatus_t st = prepare(handle, xd, x, dwd, dw, conv, dyd, dy, dir_bwd_filter, algo,
                               workspace, workspace_bytes, &s, &tf32);
    if (st != CUDNN_STATUS_SUCCESS)
        return st;
    std::vector<float> xin = gather(xd, x, tf32), dyin = gather(dyd, dy, tf32);
    std::vector<float> zero_w(count_of(dwd)), out(count_of(dwd));
    std::vector<float> ws(conv2d_workspace_floats(&s) + 1);
    conv2d_backward_cpu(nullptr, out.data(), nullptr, dyin.data(), xin.data(),
                        zero_w.data(), &s, ws.data());
    scatter(dwd, dw, out, *(const float *)alpha, *(const float *)beta);
    return CUDNN_STATUS_SUCCESS;
}
