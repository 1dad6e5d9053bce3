/* CPU emulation of the CUDA runtime API (the C part): the types and
 * functions of the subset ringtrain uses, declared with C linkage so that C
 * code (collectives/cuda.c, collectives/nccl.c) compiles against the
 * emulation as it does against the real <cuda_runtime_api.h>. The C++ part
 * (launches, dim3, threadIdx, atomics) is cuda_runtime.h beside this, which
 * includes it; the execution model is described there.
 *
 * Streams and events: work runs on the calling thread when it is queued, so
 * an event is complete as soon as it is recorded, waits on events return at
 * once, and a stream is idle -- except a stream held by the NCCL emulation
 * (a hung collective, cuda_emu_stream_hold below). */
#ifndef RINGTRAIN_CUDA_EMU_RUNTIME_API_H
#define RINGTRAIN_CUDA_EMU_RUNTIME_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoDevice = 100,
    cudaErrorNotReady = 600,
    cudaErrorLaunchFailure = 719,
} cudaError_t;

typedef enum {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
} cudaMemcpyKind;

typedef enum { cudaDevAttrMultiProcessorCount = 16 } cudaDeviceAttr;

typedef struct emu_stream *cudaStream_t;
typedef struct emu_event *cudaEvent_t;
#define cudaStreamNonBlocking 0x01
#define cudaEventDisableTiming 0x02

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
/* One device unless CUDA_EMU_DEVICES=<n> says more (so several ranks on one
 * host can each pick "their" GPU by local rank). */
cudaError_t cudaGetDeviceCount(int *count);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaGetDevice(int *device);
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);
cudaError_t cudaStreamQuery(cudaStream_t stream);
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event,
                                unsigned flags);
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t event);
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream);
cudaError_t cudaEventQuery(cudaEvent_t event);
cudaError_t cudaEventSynchronize(cudaEvent_t event);
cudaError_t cudaMalloc(void **ptr, size_t bytes);
cudaError_t cudaMallocHost(void **ptr, size_t bytes);
cudaError_t cudaFree(void *ptr);
cudaError_t cudaFreeHost(void *ptr);
cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes,
                            cudaStream_t stream);
/* Copies check their direction: a "device" side must lie inside a live
 * cudaMalloc buffer, a "host" side outside every one, as a GPU would fault
 * (or copy garbage) otherwise. */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes,
                            cudaMemcpyKind kind, cudaStream_t stream);

/* Emulation only: 1 when [ptr, ptr + bytes) lies inside one live device
 * buffer (for the NCCL emulation's argument checks). */
int cuda_emu_is_device(const void *ptr, size_t bytes);
/* Emulation only: while held, events recorded on `stream` stay unfinished
 * (cudaEventQuery: not ready), as behind a hung kernel; waiting on the host
 * for them fails instead of blocking forever. For the NCCL emulation's
 * NCCL_EMU_HANG_AT. */
void cuda_emu_stream_hold(cudaStream_t stream, int held);

#ifdef __cplusplus
}
#endif

#endif
