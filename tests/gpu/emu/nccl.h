/* CPU emulation of the NCCL subset collectives/nccl.c uses, for the gpu-emu
 * suite: a communicator of ONE rank only (ncclCommInitRankConfig refuses
 * any other size), on which an allreduce is exactly a copy (sum over one
 * rank, and avg = that sum times 1/1). It checks what a one-rank NCCL
 * would: arguments, device pointers (both buffers must lie inside emulated
 * device memory), the config's magic, and that nothing is used after abort
 * or destroy. It says nothing about NCCL across ranks: the gpu-emu suite
 * covers several ranks through the host-staged backend instead.
 *
 * Fault injection: NCCL_EMU_ASYNC_ERROR_AT=<k> makes the communicator report
 * an asynchronous ncclRemoteError (what a dead peer looks like) from the
 * k-th ncclAllReduce on, so the caller's poll-and-abort path can be tested.
 * NCCL_EMU_HANG_AT=<k>: the k-th ncclAllReduce never finishes (a peer that
 * never arrives, and no error): its stream is held (cuda_emu_stream_hold)
 * until ncclCommAbort, which ends it, as NCCL's abort ends its kernels. */
#ifndef RINGTRAIN_NCCL_EMU_H
#define RINGTRAIN_NCCL_EMU_H

#include <stddef.h>

#include "cuda_runtime_api.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NCCL_MAJOR 2
#define NCCL_MINOR 28
#define NCCL_PATCH 0
#define NCCL_VERSION(X, Y, Z) ((X) * 10000 + (Y) * 100 + (Z))
#define NCCL_VERSION_CODE NCCL_VERSION(NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH)

typedef enum {
    ncclSuccess = 0,
    ncclUnhandledCudaError = 1,
    ncclSystemError = 2,
    ncclInternalError = 3,
    ncclInvalidArgument = 4,
    ncclInvalidUsage = 5,
    ncclRemoteError = 6,
    ncclInProgress = 7,
} ncclResult_t;

typedef struct {
    char internal[128];
} ncclUniqueId;

typedef struct emu_nccl_comm *ncclComm_t;

typedef struct {
    size_t size;
    unsigned int magic;
    unsigned int version;
    int blocking;
} ncclConfig_t;

#define NCCL_CONFIG_INITIALIZER                                                \
    {sizeof(ncclConfig_t), 0xcafebeef, NCCL_VERSION_CODE, -2147483647 - 1}

typedef enum {
    ncclInt8 = 0,
    ncclFloat16 = 6,
    ncclFloat32 = 7,
    ncclFloat64 = 8,
    ncclBfloat16 = 9,
} ncclDataType_t;

typedef enum { ncclSum = 0, ncclProd = 1, ncclMax = 2, ncclMin = 3, ncclAvg = 4 } ncclRedOp_t;

const char *ncclGetErrorString(ncclResult_t result);
const char *ncclGetLastError(ncclComm_t comm);
ncclResult_t ncclGetUniqueId(ncclUniqueId *id);
ncclResult_t ncclCommInitRankConfig(ncclComm_t *comm, int nranks,
                                    ncclUniqueId id, int rank,
                                    ncclConfig_t *config);
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t *state);
ncclResult_t ncclAllReduce(const void *sendbuf, void *recvbuf, size_t count,
                           ncclDataType_t type, ncclRedOp_t op, ncclComm_t comm,
                           cudaStream_t stream);
ncclResult_t ncclCommFinalize(ncclComm_t comm);
ncclResult_t ncclCommDestroy(ncclComm_t comm);
ncclResult_t ncclCommAbort(ncclComm_t comm);

#ifdef __cplusplus
}
#endif

#endif
