/* CPU emulation of a one-rank NCCL (declarations and scope: nccl.h beside
 * this). */
#include "nccl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMU_NCCL_MAGIC 0x6e63636cu

struct emu_nccl_comm {
    unsigned magic;
    int finalized;
    long allreduces;  /* calls so far */
    long error_at;    /* NCCL_EMU_ASYNC_ERROR_AT, 0: never */
    long hang_at;     /* NCCL_EMU_HANG_AT, 0: never */
    cudaStream_t hung; /* the stream held by the hung call, until abort */
    char last_error[200];
};

static char emu_nccl_last[200];

static ncclResult_t emu_nccl_error(ncclComm_t comm, ncclResult_t r,
                                   const char *what)
{
    char *dst = comm ? comm->last_error : emu_nccl_last;
    snprintf(dst, sizeof comm->last_error, "nccl-emu: %s", what);
    fprintf(stderr, "nccl-emu: %s\n", what);
    return r;
}

static bool comm_ok(ncclComm_t comm)
{
    return comm && comm->magic == EMU_NCCL_MAGIC;
}

const char *ncclGetErrorString(ncclResult_t r)
{
    switch (r) {
    case ncclSuccess:
        return "no error";
    case ncclInvalidArgument:
        return "invalid argument (run with NCCL_DEBUG=WARN for details)";
    case ncclInvalidUsage:
        return "invalid usage (run with NCCL_DEBUG=WARN for details)";
    case ncclInProgress:
        return "NCCL operation in progress";
    case ncclRemoteError:
        return "remote process exited or there was a network error";
    default:
        return "internal error";
    }
}

const char *ncclGetLastError(ncclComm_t comm)
{
    return comm_ok(comm) ? comm->last_error : emu_nccl_last;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId *id)
{
    if (!id)
        return emu_nccl_error(nullptr, ncclInvalidArgument, "ncclGetUniqueId: NULL id");
    memset(id, 0, sizeof *id);
    memcpy(id->internal, "ringtrain-nccl-emu", 18);
    return ncclSuccess;
}

ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks,
                                    ncclUniqueId id, int rank,
                                    ncclConfig_t *config)
{
    if (!comm)
        return emu_nccl_error(nullptr, ncclInvalidArgument, "NULL comm");
    *comm = nullptr;
    if (config && (config->magic != 0xcafebeef || config->size != sizeof *config))
        return emu_nccl_error(nullptr, ncclInvalidArgument,
                              "config not set from NCCL_CONFIG_INITIALIZER");
    if (memcmp(id.internal, "ringtrain-nccl-emu", 18) != 0)
        return emu_nccl_error(nullptr, ncclInvalidArgument,
                              "unique id not from ncclGetUniqueId");
    if (nranks != 1 || rank != 0)
        return emu_nccl_error(nullptr, ncclInvalidUsage,
                              "the NCCL emulation has one rank only (use the "
                              "host backend, RINGTRAIN_NCCL=0, for more)");
    int device = -1;
    if (cudaGetDevice(&device) != cudaSuccess)
        return emu_nccl_error(nullptr, ncclUnhandledCudaError, "cudaGetDevice failed");
    *comm = new emu_nccl_comm();
    (*comm)->magic = EMU_NCCL_MAGIC;
    const char *at = getenv("NCCL_EMU_ASYNC_ERROR_AT");
    (*comm)->error_at = at ? atol(at) : 0;
    const char *hang = getenv("NCCL_EMU_HANG_AT");
    (*comm)->hang_at = hang ? atol(hang) : 0;
    return ncclSuccess;
}

ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *state)
{
    if (!comm_ok(comm) || !state)
        return emu_nccl_error(nullptr, ncclInvalidArgument,
                              "ncclCommGetAsyncError: bad communicator");
    *state = ncclSuccess;
    if (comm->error_at > 0 && comm->allreduces >= comm->error_at) {
        snprintf(comm->last_error, sizeof comm->last_error,
                 "nccl-emu: injected: the connection to a peer failed "
                 "(NCCL_EMU_ASYNC_ERROR_AT=%ld)", comm->error_at);
        *state = ncclRemoteError;
    }
    return ncclSuccess;
}

static size_t type_size(ncclDataType_t t)
{
    switch (t) {
    case ncclInt8:
        return 1;
    case ncclFloat16:
    case ncclBfloat16:
        return 2;
    case ncclFloat32:
        return 4;
    case ncclFloat64:
        return 8;
    default:
        return 0;
    }
}

ncclResult_t ncclAllReduce(const void *sendbuf, void *recvbuf, size_t count,
                           ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream)
{
    if (!comm_ok(comm) || comm->finalized)
        return emu_nccl_error(nullptr, ncclInvalidUsage,
                              "ncclAllReduce on a finalized, aborted or bad "
                              "communicator");
    comm->allreduces++;
    size_t esize = type_size(type);
    if (esize == 0 || (int)op < ncclSum || op > ncclAvg)
        return emu_nccl_error(comm, ncclInvalidArgument, "bad type or op");
    if (count == 0)
        return ncclSuccess;
    size_t bytes = count * esize;
    if (!cuda_emu_is_device(sendbuf, bytes) || !cuda_emu_is_device(recvbuf, bytes))
        return emu_nccl_error(comm, ncclInvalidArgument,
                              "ncclAllReduce: a buffer is not device memory");
    if (comm->hang_at > 0 && comm->allreduces == comm->hang_at) {
        cuda_emu_stream_hold(stream, 1); /* the result never comes */
        comm->hung = stream;
        return ncclSuccess;
    }
    /* One rank: the sum is the input, and avg scales it by 1/1. */
    if (sendbuf != recvbuf)
        memmove(recvbuf, sendbuf, bytes);
    return ncclSuccess;
}

ncclResult_t ncclCommFinalize(ncclComm_t comm)
{
    if (!comm_ok(comm) || comm->finalized)
        return emu_nccl_error(nullptr, ncclInvalidUsage, "ncclCommFinalize twice or on a bad comm");
    comm->finalized = 1;
    return ncclSuccess;
}

ncclResult_t ncclCommDestroy(ncclComm_t comm)
{
    if (!comm_ok(comm))
        return emu_nccl_error(nullptr, ncclInvalidUsage, "ncclCommDestroy on a bad comm");
    comm->magic = 0;
    delete comm;
    return ncclSuccess;
}

ncclResult_t ncclCommAbort(ncclComm_t comm)
{
    if (comm_ok(comm) && comm->hung)
        cuda_emu_stream_hold(comm->hung, 0); /* abort ends the kernels */
    return ncclCommDestroy(comm);
}
