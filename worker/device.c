/* ringtrain worker: --device dispatch (see device.h). The cpu branch of
 * every function is the host operation the training loop always did; the
 * cuda branch is in device_cuda.c. */
#include "device.h"

#include <stdio.h>
#include <string.h>

#include "common/common.h"

int device_open(device_t *d, worker_device_t kind, coll_comm_t *comm)
{
    memset(d, 0, sizeof *d);
    d->kind = kind;
    if (kind == WORKER_DEVICE_CPU)
        return 0;
    return device__cuda_open(d, comm);
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
                 "allreduce on %s",
                 d->gpu, d->gpus,
                 strcmp(coll_comm_cuda_backend(comm), "nccl") == 0
                     ? "NCCL"
                     : "host memory (staged)");
    return buf;
}

void device_close(device_t *d)
{
    if (d->kind == WORKER_DEVICE_CUDA)
        device__cuda_close(d);
    memset(d, 0, sizeof *d);
}
