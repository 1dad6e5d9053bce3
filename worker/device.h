/* ringtrain worker: where a rank trains (--device).
 *
 * cpu   host arenas and the *_cpu kernels; every function here is then a
 *       no-op or the plain host operation, so the CPU path is what it was.
 * cuda  one GPU per rank, chosen by the rank's local rank on its host (the
 *       communicator's MPI_Comm_split_type shared rank: under Open MPI the
 *       same as OMPI_COMM_WORLD_LOCAL_RANK): the kernels' CUDA context on
 *       it, the model's arenas in its memory (model_ops_cuda), the
 *       communicator attached in CUDA mode (NCCL, or host staging where the
 *       build has no NCCL or RINGTRAIN_NCCL=0), the batch copied in through
 *       pinned staging, the loss read back only when it is printed.
 *
 * Nothing allocates after device_prepare() except device_params() (once,
 * after training) and device_state_host() (once, before training, when
 * there are checkpoints). Errors of queued GPU work surface at the next
 * device_loss() or device_sync() (the kernels' convention). */
#ifndef RINGTRAIN_WORKER_DEVICE_H
#define RINGTRAIN_WORKER_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "collectives/collectives.h"
#include "model.h"
#include "worker.h"

typedef struct {
    worker_device_t kind;
    int gpu;                 /* CUDA device of this rank */
    int gpus;                /* CUDA devices visible to this rank */
    size_t sample_floats;    /* one input image */
    int batch;               /* images the buffers hold */
    float *images;           /* device batch (cuda) */
    int32_t *labels;
    float *scalar;           /* one float for device_allreduce_sum1 (cuda) */
    float *stage_images;     /* pinned staging (cuda) */
    int32_t *stage_labels;
    void *staged;            /* event: the stream has read the staging */
    const float *resident_images; /* host batch already on the device */
    const int32_t *resident_labels;
    int resident_count;
    float *host_params;      /* device_params() download */
    float *host_momentum;    /* with host_params and host_state: the host */
    float *host_state;       /* copy of the model state (checkpoints, cuda) */
    /* Precision (cuda): the activations' storage format, convolutions
     * through cuDNN (else im2col + cuBLAS), the cuDNN runtime's version,
     * the loss scale's device state (--use_fp16), the batch in the
     * activations' format (when that is not fp32 NCHW) and its shape. */
    kern_format_t fmt;
    int cudnn;
    int cudnn_version;
    const char *cudnn_choice; /* "find" or "heuristic" */
    int tf32;
    loss_scale_t *scaler;
    void *images_fmt;
    int in_c, in_h, in_w;
} device_t;

/* Collective over comm. Selects and initialises the device (o->device),
 * its precision and convolution path (o->use_fp16, use_bf16, allow_tf32,
 * data_format; RINGTRAIN_CONV=cudnn|im2col) and attaches the communicator.
 * Prints what went wrong; returns 0, RT_EINVAL (cuda in a build without
 * CUDA, more ranks on a host than GPUs, fp16/bf16/NHWC without cuDNN: the
 * program exits 2) or another RT_E... (no device, CUDA failure: exit 1). A
 * failure inside NCCL's setup aborts the job instead (peers may be waiting
 * in it). */
int device_open(device_t *d, const worker_options_t *o, coll_comm_t *comm);
/* The kernel table a model for this device is built with. */
const model_ops_t *device_model_ops(const device_t *d);
/* Buffers for batches of m's input (after the model is built). */
int device_prepare(device_t *d, const model_t *m);
/* Initial parameters and batch-norm state (rank 0's, broadcast) into the
 * model's arenas, momentum zeroed. Collective. */
int device_params_init(device_t *d, model_t *m, uint64_t seed,
                       coll_comm_t *comm);
/* Makes *images / *labels (count samples, host memory) usable by the model:
 * cuda queues their copy into the device batch and points them there. The
 * staging buffer is reused: a new batch first waits until the stream has
 * read the previous one (an event; the host does not otherwise wait for
 * the GPU within a step, the gradient exchange being stream-ordered).
 * `immutable`: the host batch never changes (synthetic data), so the same
 * pointers need no new copy, as tf_cnn_benchmarks keeps synthetic data on
 * the GPU. */
void device_input(device_t *d, const float **images, const int32_t **labels,
                  int count, int immutable);
/* cuda: copies the loss of the last forward into *loss (waits for the GPU)
 * and returns any error the GPU reported; cpu: leaves *loss, returns 0. */
int device_loss(device_t *d, const model_t *m, float *loss);
/* Waits for the device's queued work; 0 or the first error (RT_ECUDA). */
int device_sync(device_t *d);
/* Host view of the parameter arena (cuda: downloaded); NULL on failure. */
const float *device_params(device_t *d, const model_t *m);
/* The model state a checkpoint holds (parameters, momentum, batch-norm
 * statistics) in host memory: cpu: the arenas themselves; cuda: host
 * buffers made on the first call and kept until device_close(). _host only
 * points *host at them (to load a checkpoint into); _to_host first waits
 * for the device and copies the arenas there; _from_host copies them back
 * into the device's arenas and waits (cpu: nothing to do). 0, RT_ENOMEM or
 * RT_ECUDA. */
int device_state_host(device_t *d, const model_t *m, ckpt_data_t *host);
int device_state_to_host(device_t *d, const model_t *m, ckpt_data_t *host);
int device_state_from_host(device_t *d, const model_t *m);
/* *value summed over the ranks through the communicator's allreduce (the
 * path gradient buckets take, with its --stall_timeout): in place on the
 * CPU; on cuda through device memory, after the work queued before it.
 * Collective; 0 or the allreduce's (or the copies') error. */
int device_allreduce_sum1(device_t *d, coll_comm_t *comm, float *value);
/* GPUs on this host for the header: hwloc's count, or where hwloc sees
 * none (a container or sandbox without the PCI view) and this rank runs on
 * cuda, the devices CUDA reports. */
int device_host_gpus(const device_t *d, int hwloc_gpus);
/* "cpu, 4 thread(s) per rank" / "cuda, ..." for the header. */
const char *device_describe(const device_t *d, coll_comm_t *comm, int threads,
                            char *buf, size_t bytes);
/* The header's precision line: "fp32", "fp16 activations (NHWC) ...". */
const char *device_precision(const device_t *d, const worker_options_t *o,
                             char *buf, size_t bytes);
/* After training, on the printing rank: what a summary should add (the
 * loss scale where it moves: its value and the steps skipped). Waits for
 * the device. */
void device_print_summary(device_t *d);
/* Frees what device_open/prepare made; call after model_free(). Accepts a
 * zeroed device_t. */
void device_close(device_t *d);

/* The CUDA side (device_cuda.c; device_none.c in builds without CUDA). */
const model_ops_t *device__cuda_ops(void); /* NULL without CUDA */
int device__cuda_open(device_t *d, const worker_options_t *o, coll_comm_t *comm);
void device__cuda_print_summary(device_t *d);
int device__cuda_prepare(device_t *d, const model_t *m);
int device__cuda_params_init(device_t *d, model_t *m, uint64_t seed,
                             coll_comm_t *comm);
void device__cuda_input(device_t *d, const float **images,
                        const int32_t **labels, int count, int immutable);
int device__cuda_loss(device_t *d, const model_t *m, float *loss);
int device__cuda_sync(device_t *d);
const float *device__cuda_params(device_t *d, const model_t *m);
int device__cuda_state_host(device_t *d, const model_t *m, ckpt_data_t *host);
int device__cuda_state_to_host(device_t *d, const model_t *m);
int device__cuda_state_from_host(device_t *d, const model_t *m);
int device__cuda_allreduce_sum1(device_t *d, coll_comm_t *comm, float *value);
void device__cuda_close(device_t *d);

#endif
