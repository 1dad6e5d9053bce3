/* ringtrain worker: the CUDA side of --device in a build without CUDA:
 * --device=cuda is refused (exit 2) with what to do; nothing else here is
 * reached. */
#include <stdio.h>

#include "common/common.h"
#include "device.h"

const model_ops_t *device__cuda_ops(void) { return NULL; }

int device__cuda_open(device_t *d, const worker_options_t *o, coll_comm_t *comm)
{
    (void)d;
    (void)o;
    if (coll_comm_rank(comm) == 0)
        fprintf(stderr, "ringtrain-worker: error: --device=cuda: this build has no CUDA "
                        "support; rebuild with -Dcuda=enabled on a machine with nvcc, or use "
                        "--device=cpu\n");
    return RT_EINVAL;
}

int device__cuda_prepare(device_t *d, const model_t *m)
{
    (void)d;
    (void)m;
    return RT_ENOTSUP;
}

int device__cuda_params_init(device_t *d, model_t *m, uint64_t seed,
                             coll_comm_t *comm)
{
    (void)d;
    (void)m;
    (void)seed;
    (void)comm;
    return RT_ENOTSUP;
}

void device__cuda_input(device_t *d, const float **images,
                        const int32_t **labels, int count, int immutable)
{
    (void)d;
    (void)images;
    (void)labels;
    (void)count;
    (void)immutable;
}

int device__cuda_loss(device_t *d, const model_t *m, float *loss)
{
    (void)d;
    (void)m;
    (void)loss;
    return RT_ENOTSUP;
}

int device__cuda_sync(device_t *d)
{
    (void)d;
    return RT_ENOTSUP;
}

const float *device__cuda_params(device_t *d, const model_t *m)
{
    (void)d;
    (void)m;
    return NULL;
}

int device__cuda_state_host(device_t *d, const model_t *m, ckpt_data_t *host)
{
    (void)d;
    (void)m;
    (void)host;
    return RT_ENOTSUP;
}

int device__cuda_state_to_host(device_t *d, const model_t *m)
{
    (void)d;
    (void)m;
    return RT_ENOTSUP;
}

int device__cuda_state_from_host(device_t *d, const model_t *m)
{
    (void)d;
    (void)m;
    return RT_ENOTSUP;
}

int device__cuda_allreduce_sum1(device_t *d, coll_comm_t *comm, float *value)
{
    (void)d;
    (void)comm;
    (void)value;
    return RT_ENOTSUP;
}

void device__cuda_print_summary(device_t *d) { (void)d; }

void device__cuda_close(device_t *d) { (void)d; }
