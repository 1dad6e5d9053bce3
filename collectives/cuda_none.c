/* collectives: CUDA mode in a build without CUDA. coll_comm_attach_cuda()
 * refuses with RT_ENOTSUP; nothing else here is ever reached (a
 * communicator never enters CUDA mode), but the core files link against it
 * in every build. */
#include "coll_internal.h"

int coll_comm_attach_cuda(coll_comm_t *comm, int device, void *stream,
                          coll_cuda_backend_t backend)
{
    (void)device;
    (void)stream;
    (void)backend;
    if (comm == NULL)
        return RT_EINVAL;
    if (comm->rank == 0)
        rt_log_error("collectives: this build has no CUDA support; rebuild "
                     "with nvcc present (meson -Dcuda=enabled) to use device "
                     "buffers");
    return RT_ENOTSUP;
}

int coll__cuda_request_start(coll_comm_t *comm, coll_request_t *req)
{
    (void)comm;
    (void)req;
    return RT_ENOTSUP;
}

int coll__cuda_allreduce(coll_comm_t *comm, coll_request_t *req)
{
    (void)comm;
    (void)req;
    return RT_ENOTSUP;
}

int coll__cuda_request_finish(coll_comm_t *comm, coll_request_t *req)
{
    (void)comm;
    (void)req;
    return 0;
}

int coll__cuda_watching(const coll_comm_t *comm)
{
    (void)comm;
    return 0;
}

int coll__cuda_watch(coll_comm_t *comm)
{
    (void)comm;
    return 0;
}

int coll__cuda_drain(coll_comm_t *comm)
{
    (void)comm;
    return 0;
}

int coll_comm_cuda_set_stream_ordered(coll_comm_t *comm, int on)
{
    (void)comm;
    (void)on;
    return RT_EINVAL;
}

void coll__cuda_destroy(coll_comm_t *comm) { (void)comm; }

int coll__cuda_nccl_built(void) { return 0; }
