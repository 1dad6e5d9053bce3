/* ringtrain worker: --device=cuda (see device.h): the CUDA kernel table the
 * model is built on, GPU selection by local rank, the communicator in CUDA
 * mode, batch staging and the few host<->device copies of a run. Only the
 * kernels' C API is used here (no CUDA header), so the same object links
 * against the real kernels and against the gpu-emu emulation. */
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

/* The loss stays on the device; the step never waits for it. */
static float cuda_loss_forward(float *loss, float *probs, const float *logits,
                               const int32_t *labels, int B, int K)
{
    softmax_cross_entropy_forward_async_cuda(loss, probs, logits, labels, B, K);
    return 0.0f;
}

static const model_ops_t ops_cuda = {
    .name = "cuda",
    .device_memory = 1,
    .alloc = cuda_alloc,
    .release = kernels_cuda_buffer_free,
    .copy = kernels_cuda_copy_device,
    .conv_workspace_floats = conv2d_workspace_floats_cuda,
    .conv_forward = conv2d_forward_cuda,
    .conv_backward = conv2d_backward_cuda,
    .bn_forward_train = batchnorm_forward_train_cuda,
    .bn_forward_eval = batchnorm_forward_eval_cuda,
    .bn_backward = batchnorm_backward_cuda,
    .relu_forward = relu_forward_cuda,
    .relu_backward = relu_backward_cuda,
    .add_forward = add_forward_cuda,
    .add_inplace = add_inplace_cuda,
    .maxpool_forward = maxpool2d_forward_cuda,
    .maxpool_backward = maxpool2d_backward_cuda,
    .avgpool_forward = avgpool2d_forward_cuda,
    .avgpool_backward = avgpool2d_backward_cuda,
    .gap_forward = global_avgpool_forward_cuda,
    .gap_backward = global_avgpool_backward_cuda,
    .linear_forward = linear_forward_cuda,
    .linear_backward = linear_backward_cuda,
    .loss_forward = cuda_loss_forward,
    .loss_backward = softmax_cross_entropy_backward_cuda,
    .accuracy_count = accuracy_count_cuda,
    .sgd_update = sgd_update_cuda,
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

int device__cuda_open(device_t *d, coll_comm_t *comm)
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
    rc = coll_comm_attach_cuda(comm, d->gpu, kernels_cuda_stream(), COLL_CUDA_AUTO);
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

int device__cuda_prepare(device_t *d, const model_t *m)
{
    d->batch = m->batch;
    d->sample_floats = (size_t)m->in_c * (size_t)m->in_h * (size_t)m->in_w;
    size_t image_bytes = (size_t)m->batch * d->sample_floats * sizeof(float);
    size_t label_bytes = (size_t)m->batch * sizeof(int32_t);
    d->images = kernels_cuda_buffer_alloc(image_bytes);
    d->labels = kernels_cuda_buffer_alloc(label_bytes);
    d->scalar = kernels_cuda_buffer_alloc(sizeof(float));
    d->stage_images = kernels_cuda_host_alloc(image_bytes);
    d->stage_labels = kernels_cuda_host_alloc(label_bytes);
    if (!d->images || !d->labels || !d->scalar || !d->stage_images || !d->stage_labels)
        return RT_ENOMEM;
    return 0;
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
        memcpy(d->stage_images, *images, image_bytes);
        memcpy(d->stage_labels, *labels, label_bytes);
        kernels_cuda_copy_to_device_async(d->images, d->stage_images, image_bytes);
        kernels_cuda_copy_to_device_async(d->labels, d->stage_labels, label_bytes);
        d->resident_images = immutable ? *images : NULL;
        d->resident_labels = immutable ? *labels : NULL;
        d->resident_count = immutable ? count : 0;
    }
    *images = d->images;
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
