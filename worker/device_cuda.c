/* ringtrain worker: --device=cuda (see device.h): the CUDA kernel table the
 * model is built on, GPU selection by local rank, the communicator in CUDA
 * mode, batch staging and the few host<->device copies of a run. Only the
 * kernels' C API is used here (no CUDA header), so the same object links
 * against the real kernels and against the gpu-emu emulation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "device.h"

/* Device arenas: cudaMalloc'd (256-byte aligned), zeroed. */
static void *cuda_alloc(size_t bytes)
{
    return kernels_cuda_buffer_alloc(bytes);
}

/* This process's GPU run, chosen once by device__cuda_open and read by the
 * kernel table's entries below (one device per process): the activations'
 * storage format, whether convolutions go through cuDNN, the loss scale's
 * device state (--use_fp16), and a test hook (RINGTRAIN_FAULT_GRAD=inf@N:
 * the N-th update's first gradient becomes +inf, as an overflow would). */
static struct {
    kern_format_t fmt;
    int cudnn;
    loss_scale_t *scaler;
    long inject_inf_at;
    long updates;
} dc;

static size_t cuda_conv_ws(const conv2d_shape_t *s)
{
    return dc.cudnn ? conv2d_workspace_floats_cudnn(s, dc.fmt)
                    : conv2d_workspace_floats_cuda(s);
}

static void cuda_conv_forward(float *out, const float *in, const float *w,
                              const float *b, const conv2d_shape_t *s, float *ws)
{
    if (dc.cudnn)
        conv2d_forward_cudnn(out, in, w, b, s, ws, dc.fmt);
    else
        conv2d_forward_cuda(out, in, w, b, s, ws);
}

static void cuda_conv_backward(float *din, float *dw, float *db, const float *dout,
                               const float *in, const float *w, const conv2d_shape_t *s,
                               float *ws)
{
    if (dc.cudnn)
        conv2d_backward_cudnn(din, dw, db, dout, in, w, s, ws, dc.fmt);
    else
        conv2d_backward_cuda(din, dw, db, dout, in, w, s, ws);
}

static void cuda_bn_train(float *out, float *save_mean, float *save_rstd, float *rmean,
                          float *rvar, const float *in, const float *gamma,
                          const float *beta, int B, int C, int HW, float momentum, float eps)
{
    batchnorm_forward_train_fmt_cuda(out, save_mean, save_rstd, rmean, rvar, in, gamma, beta,
                                     B, C, HW, momentum, eps, 0, dc.fmt);
}

static void cuda_bn_relu_train(float *out, float *save_mean, float *save_rstd, float *rmean,
                               float *rvar, const float *in, const float *gamma,
                               const float *beta, int B, int C, int HW, float momentum,
                               float eps)
{
    batchnorm_forward_train_fmt_cuda(out, save_mean, save_rstd, rmean, rvar, in, gamma, beta,
                                     B, C, HW, momentum, eps, 1, dc.fmt);
}

static void cuda_bn_eval(float *out, const float *in, const float *gamma, const float *beta,
                         const float *rmean, const float *rvar, int B, int C, int HW,
                         float eps)
{
    batchnorm_forward_eval_fmt_cuda(out, in, gamma, beta, rmean, rvar, B, C, HW, eps, 0,
                                    dc.fmt);
}

static void cuda_bn_relu_eval(float *out, const float *in, const float *gamma,
                              const float *beta, const float *rmean, const float *rvar,
                              int B, int C, int HW, float eps)
{
    batchnorm_forward_eval_fmt_cuda(out, in, gamma, beta, rmean, rvar, B, C, HW, eps, 1,
                                    dc.fmt);
}

static void cuda_bn_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                             const float *in, const float *gamma, const float *save_mean,
                             const float *save_rstd, int B, int C, int HW)
{
    batchnorm_backward_fmt_cuda(din, dgamma, dbeta, dout, in, gamma, save_mean, save_rstd,
                                NULL, B, C, HW, dc.fmt);
}

static void cuda_bn_relu_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                                  const float *in, const float *gamma,
                                  const float *save_mean, const float *save_rstd,
                                  const float *relu_out, int B, int C, int HW)
{
    batchnorm_backward_fmt_cuda(din, dgamma, dbeta, dout, in, gamma, save_mean, save_rstd,
                                relu_out, B, C, HW, dc.fmt);
}

static void cuda_relu_forward(float *out, const float *in, size_t count)
{
    relu_forward_fmt_cuda(out, in, count, dc.fmt);
}

static void cuda_relu_backward(float *din, const float *dout, const float *out, size_t count)
{
    relu_backward_fmt_cuda(din, dout, out, count, dc.fmt);
}

static void cuda_add_forward(float *out, const float *a, const float *b, size_t count)
{
    add_forward_fmt_cuda(out, a, b, count, dc.fmt);
}

static void cuda_add_inplace(float *acc, const float *x, size_t count)
{
    add_inplace_fmt_cuda(acc, x, count, dc.fmt);
}

static void cuda_maxpool_forward(float *out, int32_t *argmax, const float *in, int B, int C,
                                 int H, int W, int k, int stride, int pad)
{
    maxpool2d_forward_fmt_cuda(out, argmax, in, B, C, H, W, k, stride, pad, dc.fmt);
}

static void cuda_maxpool_backward(float *din, const float *dout, const int32_t *argmax,
                                  int B, int C, int H, int W, int OH, int OW)
{
    maxpool2d_backward_fmt_cuda(din, dout, argmax, B, C, H, W, OH, OW, dc.fmt);
}

static void cuda_avgpool_forward(float *out, const float *in, int B, int C, int H, int W,
                                 int k, int stride, int pad)
{
    avgpool2d_forward_fmt_cuda(out, in, B, C, H, W, k, stride, pad, dc.fmt);
}

static void cuda_avgpool_backward(float *din, const float *dout, int B, int C, int H, int W,
                                  int k, int stride, int pad)
{
    avgpool2d_backward_fmt_cuda(din, dout, B, C, H, W, k, stride, pad, dc.fmt);
}

static void cuda_gap_forward(float *out, const float *in, int B, int C, int HW)
{
    global_avgpool_forward_fmt_cuda(out, in, B, C, HW, dc.fmt);
}

static void cuda_gap_backward(float *din, const float *dout, int B, int C, int HW)
{
    global_avgpool_backward_fmt_cuda(din, dout, B, C, HW, dc.fmt);
}

static void cuda_linear_forward(float *out, const float *in, const float *w, const float *b,
                                int B, int IC, int OC)
{
    linear_forward_fmt_cuda(out, in, w, b, B, IC, OC, dc.fmt);
}

static void cuda_linear_backward(float *din, float *dw, float *db, const float *dout,
                                 const float *in, const float *w, int B, int IC, int OC)
{
    linear_backward_fmt_cuda(din, dw, db, dout, in, w, B, IC, OC, dc.fmt);
}

/* The loss stays on the device; the step never waits for it. */
static float cuda_loss_forward(float *loss, float *probs, const float *logits,
                               const int32_t *labels, int B, int K)
{
    softmax_cross_entropy_forward_async_fmt_cuda(loss, probs, logits, labels, B, K, dc.fmt);
    return 0.0f;
}

/* fp16: dlogits carry the loss scale (read on the device). */
static void cuda_loss_backward(float *dlogits, const float *probs, const int32_t *labels,
                               int B, int K)
{
    softmax_cross_entropy_backward_fmt_cuda(dlogits, probs, labels, B, K,
                                            dc.scaler ? &dc.scaler->scale : NULL, dc.fmt);
}

static int cuda_accuracy(const float *logits, const int32_t *labels, int B, int K)
{
    return accuracy_count_fmt_cuda(logits, labels, B, K, dc.fmt);
}

/* fp16: the update divides the loss scale out, and (auto scaling) skips a
 * step with inf/NaN gradients and moves the scale, all on the device. */
static void cuda_sgd(float *params, float *momentum_buf, const float *grads, size_t count,
                     float lr, float momentum, float weight_decay)
{
    if (dc.inject_inf_at > 0 && ++dc.updates == dc.inject_inf_at && count > 0) {
        const float inf = INFINITY;
        kernels_cuda_copy_to_device((float *)(uintptr_t)grads, &inf, sizeof inf);
    }
    if (dc.scaler)
        sgd_update_scaled_cuda(params, momentum_buf, grads, count, lr, momentum,
                               weight_decay, dc.scaler);
    else
        sgd_update_cuda(params, momentum_buf, grads, count, lr, momentum, weight_decay);
}

/* Every entry reads dc; act_bytes is set by device__cuda_open. */
static model_ops_t ops_cuda = {
    .name = "cuda",
    .device_memory = 1,
    .alloc = cuda_alloc,
    .release = kernels_cuda_buffer_free,
    .copy = kernels_cuda_copy_device,
    .conv_workspace_floats = cuda_conv_ws,
    .conv_forward = cuda_conv_forward,
    .conv_backward = cuda_conv_backward,
    .bn_forward_train = cuda_bn_train,
    .bn_forward_eval = cuda_bn_eval,
    .bn_backward = cuda_bn_backward,
    .relu_forward = cuda_relu_forward,
    .relu_backward = cuda_relu_backward,
    .add_forward = cuda_add_forward,
    .add_inplace = cuda_add_inplace,
    .maxpool_forward = cuda_maxpool_forward,
    .maxpool_backward = cuda_maxpool_backward,
    .avgpool_forward = cuda_avgpool_forward,
    .avgpool_backward = cuda_avgpool_backward,
    .gap_forward = cuda_gap_forward,
    .gap_backward = cuda_gap_backward,
    .linear_forward = cuda_linear_forward,
    .linear_backward = cuda_linear_backward,
    .loss_forward = cuda_loss_forward,
    .loss_backward = cuda_loss_backward,
    .accuracy_count = cuda_accuracy,
    .sgd_update = cuda_sgd,
    .bn_relu_forward_train = cuda_bn_relu_train,
    .bn_relu_forward_eval = cuda_bn_relu_eval,
    .bn_relu_backward = cuda_bn_relu_backward,
};

const model_ops_t *device__cuda_ops(void) { return &ops_cuda; }

/* Every rank learns the worst status (the failing ranks printed why). */
static int agree(coll_comm_t *comm, int rc)
{
    double worst = -(double)rc;
    if (coll_allreduce_f64_max(comm, &worst, 1) != 0)
        return RT_EMPI;
    return -(int)worst;
}

/* The convolution path: cuDNN unless RINGTRAIN_CONV=im2col, or unless the
 * build or the runtime has no usable cuDNN, which only fp32 NCHW can do
 * without. Returns 0 or RT_EINVAL (message in err). */
static int choose_conv(device_t *d, const worker_options_t *o, char *err, size_t bytes)
{
    const char *env = getenv("RINGTRAIN_CONV");
    int want_im2col = env && strcmp(env, "im2col") == 0;
    if (env && !want_im2col && strcmp(env, "cudnn") != 0) {
        snprintf(err, bytes, "RINGTRAIN_CONV=%s: unknown; choose cudnn or im2col", env);
        return RT_EINVAL;
    }
    int need = o->use_fp16 || o->use_bf16 || o->data_format == WORKER_LAYOUT_NHWC;
    if (want_im2col) {
        if (need)
            snprintf(err, bytes, "RINGTRAIN_CONV=im2col runs fp32 NCHW only; drop it for "
                     "--use_fp16, --use_bf16 or --data_format=NHWC");
        return need ? RT_EINVAL : 0;
    }
    char why[300] = "";
    if (kernels_cudnn_init(why, sizeof why) == 0) {
        d->cudnn = 1;
        d->cudnn_version = kernels_cudnn_version();
        d->cudnn_choice = kernels_cudnn_choice();
        return 0;
    }
    if (!need && !env)
        return 0; /* fp32 NCHW: im2col does without cuDNN */
    snprintf(err, bytes, "%s needs cuDNN: %s",
             env ? "RINGTRAIN_CONV=cudnn"
                 : o->use_fp16 ? "--use_fp16"
                 : o->use_bf16 ? "--use_bf16" : "--data_format=NHWC", why);
    return RT_EINVAL;
}

/* The activations' format: fp16/bf16/fp32 as the flags say; NHWC when
 * asked, or by default for fp16/bf16 on cuDNN unless the model flattens a
 * feature map into a linear layer (its weights assume NCHW order). */
static int choose_format(device_t *d, const worker_options_t *o, char *err, size_t bytes)
{
    d->fmt.dtype = o->use_fp16 ? KERN_F16 : o->use_bf16 ? KERN_BF16 : KERN_F32;
    d->fmt.layout = KERN_NCHW;
    model_t *graph = calloc(1, sizeof *graph);
    if (!graph || model_graph(graph, o->model, 0) != 0) {
        free(graph);
        return RT_ENOMEM;
    }
    int flattens = model_flattens_map(graph);
    free(graph);
    if (o->data_format == WORKER_LAYOUT_NHWC && flattens) {
        snprintf(err, bytes, "--data_format=NHWC: model %s flattens a feature map into a "
                 "linear layer whose weights assume NCHW; use --data_format=NCHW", o->model);
        return RT_EINVAL;
    }
    if (o->data_format == WORKER_LAYOUT_NHWC ||
        (o->data_format == WORKER_LAYOUT_AUTO && d->fmt.dtype != KERN_F32 && !flattens))
        d->fmt.layout = KERN_NHWC;
    return 0;
}

/* TF32, the convolution path, the format, the loss scale; the same on
 * every rank (the flags are, by the settings hash). */
static int choose_precision(device_t *d, const worker_options_t *o, int rank)
{
    char err[512] = "";
    d->tf32 = o->allow_tf32;
    kernels_cuda_set_tf32(d->tf32);
    int rc = choose_conv(d, o, err, sizeof err);
    if (!rc)
        rc = choose_format(d, o, err, sizeof err);
    if (rc == RT_EINVAL && rank == 0)
        fprintf(stderr, "ringtrain-worker: error: %s\n", err);
    if (rc)
        return rc;
    if (o->use_fp16) {
        loss_scale_t init;
        loss_scale_init(&init, (float)o->fp16_loss_scale, o->fp16_enable_auto_loss_scale,
                        o->fp16_inc_loss_scale_every_n);
        d->scaler = kernels_cuda_buffer_alloc(sizeof *d->scaler);
        if (!d->scaler || kernels_cuda_copy_to_device(d->scaler, &init, sizeof init) != 0)
            return RT_ECUDA;
    }
    const char *fault = getenv("RINGTRAIN_FAULT_GRAD");
    memset(&dc, 0, sizeof dc);
    dc.fmt = d->fmt;
    dc.cudnn = d->cudnn;
    dc.scaler = d->scaler;
    if (fault && strncmp(fault, "inf@", 4) == 0)
        dc.inject_inf_at = atol(fault + 4);
    ops_cuda.act_bytes = kern_dtype_size(d->fmt.dtype);
    return 0;
}

int device__cuda_open(device_t *d, const worker_options_t *o, coll_comm_t *comm)
{
    int rank = coll_comm_rank(comm);
    int local = coll_comm_local_rank(comm), local_size = coll_comm_local_size(comm);
    const char *why = NULL;
    int rc = 0;
    d->gpus = kernels_cuda_device_count(&why);
    if (d->gpus <= 0) {
        if (local == 0)
            fprintf(stderr, "ringtrain-worker: error: rank %d: --device=cuda: no CUDA device is "
                            "visible (%s); run on a GPU node (check CUDA_VISIBLE_DEVICES and "
                            "the driver) or use --device=cpu\n",
                    rank, why ? why : "0 devices");
        rc = RT_ECUDA;
    } else if (local_size > d->gpus) {
        if (local == 0)
            fprintf(stderr, "ringtrain-worker: error: rank %d: --device=cuda: %d ranks on this "
                            "host but %d GPU(s) visible; each rank needs its own GPU: start at "
                            "most %d rank(s) per host (slotsPerWorker, mpirun -npernode)\n",
                    rank, local_size, d->gpus, d->gpus);
        rc = RT_EINVAL;
    } else {
        d->gpu = local;
        rc = kernels_cuda_init(d->gpu);
        if (rc)
            fprintf(stderr, "ringtrain-worker: error: rank %d: cannot initialise GPU %d "
                            "(see the CUDA message above)\n",
                    rank, d->gpu);
    }
    rc = agree(comm, rc);
    if (rc)
        return rc;
    rc = agree(comm, choose_precision(d, o, rank));
    if (rc)
        return rc;
    rc = coll_comm_attach_cuda(comm, d->gpu, kernels_cuda_stream(), COLL_CUDA_AUTO);
    /* NCCL buckets queue back to back on the device; the step waits for
     * them on the stream, not on the host (a no-op for host staging). */
    if (rc == 0)
        rc = coll_comm_cuda_set_stream_ordered(comm, 1);
    if (rc == RT_ENCCL || rc == RT_ECUDA || rc == RT_ETIMEDOUT) {
        /* Peers may be inside NCCL's setup waiting for this rank. */
        fprintf(stderr, "ringtrain-worker: error: rank %d: cannot set up the GPU allreduce: %s "
                        "(see above); RINGTRAIN_NCCL=0 stages it through host memory instead\n",
                rank, rt_strerror(rc));
        coll_abort(comm, 1);
    }
    if (rc && rank == 0)
        fprintf(stderr, "ringtrain-worker: error: cannot set up the GPU allreduce: %s "
                        "(see above)\n",
                rt_strerror(rc));
    return rc;
}

/* 1 when the activations are not stored as the fp32 NCHW batch is. */
static int converts_input(const device_t *d)
{
    return d->fmt.dtype != KERN_F32 || d->fmt.layout != KERN_NCHW;
}

int device__cuda_prepare(device_t *d, const model_t *m)
{
    d->batch = m->batch;
    d->in_c = m->in_c;
    d->in_h = m->in_h;
    d->in_w = m->in_w;
    d->sample_floats = (size_t)m->in_c * (size_t)m->in_h * (size_t)m->in_w;
    size_t image_bytes = (size_t)m->batch * d->sample_floats * sizeof(float);
    size_t label_bytes = (size_t)m->batch * sizeof(int32_t);
    d->images = kernels_cuda_buffer_alloc(image_bytes);
    d->labels = kernels_cuda_buffer_alloc(label_bytes);
    d->scalar = kernels_cuda_buffer_alloc(sizeof(float));
    d->stage_images = kernels_cuda_host_alloc(image_bytes);
    d->stage_labels = kernels_cuda_host_alloc(label_bytes);
    d->staged = kernels_cuda_event_create();
    if (!d->images || !d->labels || !d->scalar || !d->stage_images || !d->stage_labels ||
        !d->staged)
        return RT_ENOMEM;
    kernels_cuda_event_record(d->staged);
    if (converts_input(d)) {
        d->images_fmt = kernels_cuda_buffer_alloc((size_t)m->batch * d->sample_floats *
                                                  kern_dtype_size(d->fmt.dtype));
        if (!d->images_fmt)
            return RT_ENOMEM;
    }
    /* Casts of the largest layer's weights (fp16/bf16, or NHWC filters). */
    size_t most = 0;
    for (int i = 0; i < m->node_count; i++) {
        const node_t *n = &m->nodes[i];
        if ((n->kind == NODE_CONV || n->kind == NODE_LINEAR) && n->w_count > most)
            most = n->w_count;
    }
    if (converts_input(d) && kernels_cuda_weight_scratch(most) != 0)
        return RT_ECUDA;
    /* cuDNN planned every convolution while the model was built: a shape
     * it could not plan was reported then. */
    return kernels_cuda_synchronize();
}

int device__cuda_params_init(device_t *d, model_t *m, uint64_t seed,
                             coll_comm_t *comm)
{
    (void)d;
    size_t pbytes = m->arena_floats * sizeof(float);
    size_t sbytes = m->state_floats * sizeof(float);
    float *params = malloc(pbytes), *state = malloc(sbytes);
    int rc = params && state ? 0 : RT_ENOMEM;
    if (!rc) {
        memset(state, 0, sbytes);
        model_init_params_host(m, seed, params, state);
        rc = coll_broadcast(comm, params, pbytes, 0);
    }
    if (!rc)
        rc = coll_broadcast(comm, state, sbytes, 0);
    if (!rc)
        rc = kernels_cuda_copy_to_device(m->params, params, pbytes);
    if (!rc)
        rc = kernels_cuda_copy_to_device(m->state, state, sbytes);
    if (!rc) {
        kernels_cuda_zero(m->momentum, pbytes);
        rc = kernels_cuda_synchronize();
    }
    free(params);
    free(state);
    return rc;
}

void device__cuda_input(device_t *d, const float **images,
                        const int32_t **labels, int count, int immutable)
{
    if (count > d->batch)
        count = d->batch;
    if (!(immutable && *images == d->resident_images && *labels == d->resident_labels &&
          count == d->resident_count)) {
        size_t image_bytes = (size_t)count * d->sample_floats * sizeof(float);
        size_t label_bytes = (size_t)count * sizeof(int32_t);
        /* The previous batch's copies have left the staging buffers (an
         * error here shows at the next synchronize). */
        (void)kernels_cuda_event_wait(d->staged);
        memcpy(d->stage_images, *images, image_bytes);
        memcpy(d->stage_labels, *labels, label_bytes);
        kernels_cuda_copy_to_device_async(d->images, d->stage_images, image_bytes);
        kernels_cuda_copy_to_device_async(d->labels, d->stage_labels, label_bytes);
        kernels_cuda_event_record(d->staged);
        if (converts_input(d))
            tensor_from_f32_fmt_cuda(d->images_fmt, d->images, count, d->in_c, d->in_h,
                                     d->in_w, d->fmt);
        d->resident_images = immutable ? *images : NULL;
        d->resident_labels = immutable ? *labels : NULL;
        d->resident_count = immutable ? count : 0;
    }
    *images = converts_input(d) ? d->images_fmt : d->images;
    *labels = d->labels;
}

int device__cuda_loss(device_t *d, const model_t *m, float *loss)
{
    (void)d;
    int rc = kernels_cuda_copy_to_host(loss, m->loss, sizeof(float));
    int sync = kernels_cuda_synchronize();
    return rc ? rc : sync;
}

int device__cuda_sync(device_t *d)
{
    (void)d;
    return kernels_cuda_synchronize();
}

const float *device__cuda_params(device_t *d, const model_t *m)
{
    size_t bytes = m->arena_floats * sizeof(float);
    if (!d->host_params)
        d->host_params = malloc(bytes);
    if (!d->host_params || kernels_cuda_synchronize() != 0 ||
        kernels_cuda_copy_to_host(d->host_params, m->params, bytes) != 0)
        return NULL;
    return d->host_params;
}

void device__cuda_print_summary(device_t *d)
{
    loss_scale_t s;
    if (!d->scaler || kernels_cuda_synchronize() != 0 ||
        kernels_cuda_copy_to_host(&s, d->scaler, sizeof s) != 0)
        return;
    printf("Loss scale:  %g at the end; %d of %lld step(s) skipped for inf/NaN gradients\n",
           (double)s.scale, s.skipped, (long long)s.steps);
}

/* One host buffer of `bytes` (at least one byte, so a model without batch
 * norm still gets a pointer), made once. */
static int host_copy(float **buf, size_t bytes)
{
    if (!*buf)
        *buf = malloc(bytes ? bytes : 1);
    return *buf ? 0 : RT_ENOMEM;
}

int device__cuda_state_host(device_t *d, const model_t *m, ckpt_data_t *host)
{
    size_t pbytes = m->arena_floats * sizeof(float);
    if (host_copy(&d->host_params, pbytes) || host_copy(&d->host_momentum, pbytes) ||
        host_copy(&d->host_state, m->state_floats * sizeof(float)))
        return RT_ENOMEM;
    *host = (ckpt_data_t){d->host_params, d->host_momentum, d->host_state};
    return 0;
}

int device__cuda_state_to_host(device_t *d, const model_t *m)
{
    size_t pbytes = m->arena_floats * sizeof(float);
    size_t sbytes = m->state_floats * sizeof(float);
    int rc = kernels_cuda_synchronize();
    if (!rc)
        rc = kernels_cuda_copy_to_host(d->host_params, m->params, pbytes);
    if (!rc)
        rc = kernels_cuda_copy_to_host(d->host_momentum, m->momentum, pbytes);
    if (!rc && sbytes)
        rc = kernels_cuda_copy_to_host(d->host_state, m->state, sbytes);
    return rc;
}

int device__cuda_state_from_host(device_t *d, const model_t *m)
{
    size_t pbytes = m->arena_floats * sizeof(float);
    size_t sbytes = m->state_floats * sizeof(float);
    int rc = kernels_cuda_copy_to_device(m->params, d->host_params, pbytes);
    if (!rc)
        rc = kernels_cuda_copy_to_device(m->momentum, d->host_momentum, pbytes);
    if (!rc && sbytes)
        rc = kernels_cuda_copy_to_device(m->state, d->host_state, sbytes);
    if (!rc)
        rc = kernels_cuda_synchronize();
    return rc;
}

int device__cuda_allreduce_sum1(device_t *d, coll_comm_t *comm, float *value)
{
    int rc = kernels_cuda_copy_to_device(d->scalar, value, sizeof(float));
    if (!rc)
        rc = coll_allreduce(comm, COLL_IN_PLACE, d->scalar, 1, COLL_F32, COLL_SUM);
    if (!rc)
        rc = kernels_cuda_copy_to_host(value, d->scalar, sizeof(float));
    return rc;
}

void device__cuda_close(device_t *d)
{
    kernels_cuda_event_destroy(d->staged);
    kernels_cuda_buffer_free(d->scaler);
    kernels_cuda_buffer_free(d->images_fmt);
    memset(&dc, 0, sizeof dc);
    kernels_cuda_buffer_free(d->images);
    kernels_cuda_buffer_free(d->labels);
    kernels_cuda_buffer_free(d->scalar);
    kernels_cuda_host_free(d->stage_images);
    kernels_cuda_host_free(d->stage_labels);
    free(d->host_params);
    free(d->host_momentum);
    free(d->host_state);
    kernels_cuda_free();
}
