/* ringtrain worker: --device dispatch (see device.h). The cpu branch of
 * every function is the host operation the training loop always did; the
 * cuda branch is in device_cuda.c. */
#include "device.h"

#include <stdio.h>
#include <string.h>

#include "common/common.h"

int device_open(device_t *d, const worker_options_t *o, coll_comm_t *comm)
{
    memset(d, 0, sizeof *d);
    d->kind = o->device;
    if (d->kind == WORKER_DEVICE_CPU)
        return 0;
    return device__cuda_open(d, o, comm);
}

const model_ops_t *device_model_ops(const device_t *d)
{
    return d->kind == WORKER_DEVICE_CUDA ? device__cuda_ops() : &model_ops_cpu;
}

int device_prepare(device_t *d, const model_t *m)
{
    if (d->kind == WORKER_DEVICE_CPU)
        return 0;
    return device__cuda_prepare(d, m);
}

int device_params_init(device_t *d, model_t *m, uint64_t seed,
                       coll_comm_t *comm)
{
    if (d->kind == WORKER_DEVICE_CUDA)
        return device__cuda_params_init(d, m, seed, comm);
    model_init_params(m, seed);
    int rc = coll_broadcast(comm, m->params, m->arena_floats * sizeof(float), 0);
    if (!rc)
        rc = coll_broadcast(comm, m->state, m->state_floats * sizeof(float), 0);
    return rc;
}

void device_input(device_t *d, const float **images, const int32_t **labels,
                  int count, int immutable)
{
    if (d->kind == WORKER_DEVICE_CUDA)
        device__cuda_input(d, images, labels, count, immutable);
}

int device_loss(device_t *d, const model_t *m, float *loss)
{
    if (d->kind == WORKER_DEVICE_CPU)
        return 0;
    return device__cuda_loss(d, m, loss);
}

int device_sync(device_t *d)
{
    if (d->kind == WORKER_DEVICE_CPU)
        return 0;
    return device__cuda_sync(d);
}

const float *device_params(device_t *d, const model_t *m)
{
    if (d->kind == WORKER_DEVICE_CPU)
        return m->params;
    return device__cuda_params(d, m);
}

int device_state_host(device_t *d, const model_t *m, ckpt_data_t *host)
{
    if (d->kind == WORKER_DEVICE_CUDA)
        return device__cuda_state_host(d, m, host);
    *host = (ckpt_data_t){m->params, m->momentum, m->state};
    return 0;
}

int device_state_to_host(device_t *d, const model_t *m, ckpt_data_t *host)
{
    int rc = device_state_host(d, m, host);
    if (!rc && d->kind == WORKER_DEVICE_CUDA)
        rc = device__cuda_state_to_host(d, m);
    return rc;
}

int device_state_from_host(device_t *d, const model_t *m)
{
    if (d->kind == WORKER_DEVICE_CPU)
        return 0;
    return device__cuda_state_from_host(d, m);
}

int device_allreduce_sum1(device_t *d, coll_comm_t *comm, float *value)
{
    if (d->kind == WORKER_DEVICE_CUDA)
        return device__cuda_allreduce_sum1(d, comm, value);
    return coll_allreduce(comm, COLL_IN_PLACE, value, 1, COLL_F32, COLL_SUM);
}

int device_host_gpus(const device_t *d, int hwloc_gpus)
{
    /* hwloc finds GPUs on the PCI bus (and through its CUDA/NVML plugins
     * where built with them); gVisor and many containers hide the bus. */
    if (hwloc_gpus == 0 && d->kind == WORKER_DEVICE_CUDA)
        return d->gpus;
    return hwloc_gpus;
}

const char *device_describe(const device_t *d, coll_comm_t *comm, int threads,
                            char *buf, size_t bytes)
{
    if (d->kind == WORKER_DEVICE_CPU)
        snprintf(buf, bytes, "cpu, %d thread(s) per rank", threads);
    else
        snprintf(buf, bytes,
                 "cuda, 1 GPU per rank by local rank (rank 0: GPU %d of %d), "
                 "allreduce on %s, convolutions on %s",
                 d->gpu, d->gpus,
                 strcmp(coll_comm_cuda_backend(comm), "nccl") == 0
                     ? "NCCL"
                     : "host memory (staged)",
                 d->cudnn ? "cuDNN" : "im2col + cuBLAS (RINGTRAIN_CONV=im2col or no cuDNN)");
    if (d->kind == WORKER_DEVICE_CUDA && d->cudnn) {
        size_t used = strlen(buf);
        snprintf(buf + used, bytes - used, " %d.%d.%d runtime, algorithms by %s",
                 d->cudnn_version / 10000, d->cudnn_version / 100 % 100,
                 d->cudnn_version % 100,
                 strcmp(d->cudnn_choice, "find") == 0 ? "timed trials (find)"
                                                      : "heuristic");
    }
    return buf;
}

const char *device_precision(const device_t *d, const worker_options_t *o,
                             char *buf, size_t bytes)
{
    const char *layout = d->fmt.layout == KERN_NHWC ? "NHWC" : "NCHW";
    if (d->kind == WORKER_DEVICE_CPU)
        snprintf(buf, bytes, "fp32");
    else if (d->fmt.dtype == KERN_F32)
        snprintf(buf, bytes, "fp32, %s, %s", layout,
                 d->tf32 ? "TF32 tensor cores allowed (--noallow_tf32: strict fp32)"
                         : "strict fp32 (no TF32)");
    else if (d->fmt.dtype == KERN_BF16)
        snprintf(buf, bytes, "bf16 activations, %s, tensor cores, fp32 master weights and "
                 "SGD, no loss scaling; gradients averaged in fp32", layout);
    else if (o->fp16_enable_auto_loss_scale)
        snprintf(buf, bytes, "fp16 activations, %s, tensor cores, fp32 master weights and "
                 "SGD; loss scale %g, auto (inf/NaN: skip the step, halve; x2 after %d "
                 "clean steps); gradients averaged in fp32", layout, o->fp16_loss_scale,
                 o->fp16_inc_loss_scale_every_n);
    else
        snprintf(buf, bytes, "fp16 activations, %s, tensor cores, fp32 master weights and "
                 "SGD; loss scale %g (fixed); gradients averaged in fp32", layout,
                 o->fp16_loss_scale);
    return buf;
}

void device_print_summary(device_t *d)
{
    if (d->kind == WORKER_DEVICE_CUDA)
        device__cuda_print_summary(d);
}

void device_close(device_t *d)
{
    if (d->kind == WORKER_DEVICE_CUDA)
        device__cuda_close(d);
    memset(d, 0, sizeof *d);
}
