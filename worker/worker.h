/* ringtrain worker: data-parallel training with tf_cnn_benchmarks' flags and
 * output. worker_options_parse() reads the command line; worker_run() trains
 * on a collectives communicator (every rank calls it with the same options).
 */
#ifndef RINGTRAIN_WORKER_H
#define RINGTRAIN_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "collectives/collectives.h"

typedef enum { WORKER_DATA_SYNTHETIC, WORKER_DATA_FASHION_MNIST } worker_data_t;
typedef enum { WORKER_DEVICE_CPU, WORKER_DEVICE_CUDA } worker_device_t;
/* horovod is tf_cnn_benchmarks' name for allreduce. independent: every rank
 * trains its own copy (no gradient exchange), the ranks still stepping
 * together: the compute of a synchronous job without its gradient traffic. */
/* --data_format (indexes of "NCHW|NHWC"; AUTO when not given). */
typedef enum {
    WORKER_LAYOUT_AUTO = -1,
    WORKER_LAYOUT_NCHW = 0,
    WORKER_LAYOUT_NHWC = 1
} worker_layout_t;
typedef enum {
    WORKER_UPDATE_ALLREDUCE,
    WORKER_UPDATE_HOROVOD,
    WORKER_UPDATE_PARAMETER_SERVER,
    WORKER_UPDATE_INDEPENDENT
} worker_update_t;

typedef struct {
    char model[32];
    int batch_size;            /* per rank */
    long num_batches;          /* timed steps; 0: from num_epochs */
    double num_epochs;         /* 0: use num_batches */
    int num_warmup_batches;
    int display_every;
    worker_data_t data;
    char data_dir[1024];
    double learning_rate;
    int lr_scaling;            /* 0 none, 1 linear: x the ranks that take data */
    double momentum;
    double weight_decay;
    int num_intra_threads;     /* 0: the cores of this rank's slot */
    int eval;
    worker_device_t device;
    uint64_t seed;
    double bucket_mb;
    int overlap;               /* start bucket allreduces during backward */
    int bind;                  /* bind compute threads to the slot's cores */
    worker_update_t variable_update;
    char allreduce[32];        /* forced algorithm, "" = auto */
    int compression;           /* gradients on the wire: 0 fp32, 1 fp16, 2 bf16
                                * (coll_compression_t's order) */
    char dump_params[1024];    /* rank 0 writes final parameters here */
    char checkpoint_dir[1024]; /* "" = no checkpoints */
    long checkpoint_every;     /* steps between checkpoints (0: at the end only) */
    int checkpoints_to_keep;
    double stall_timeout;      /* seconds a collective may wait for a rank */
    char timeline[1024];       /* Chrome trace JSON written here ("" = none) */
    /* Precision (tf_cnn_benchmarks' flags; --device=cuda only): fp16 or bf16
     * activations with fp32 master weights, or fp32 with TF32 tensor cores
     * allowed (the default, as PyTorch's cuDNN convolutions and TF) or not
     * (strict fp32). fp16 scales the loss: fixed, or automatically. */
    int use_fp16;
    int use_bf16;
    int allow_tf32;
    double fp16_loss_scale;
    int fp16_enable_auto_loss_scale;
    int fp16_inc_loss_scale_every_n;
    worker_layout_t data_format; /* WORKER_LAYOUT_AUTO: NHWC for fp16/bf16 on
                                  * the GPU where the model allows, else NCHW */
    int help;
} worker_options_t;

void worker_options_init(worker_options_t *o);
/* Parses argv (tf_cnn_benchmarks style: --flag=value or --flag value;
 * booleans as --flag, --flag=true|false, --noflag). On error returns RT_EINVAL
 * and writes a one-line message (naming the flag and what to do) into err. */
int worker_options_parse(worker_options_t *o, int argc, char **argv, char *err,
                         size_t err_bytes);
/* Help text for every flag. */
const char *worker_usage(void);

/* Trains as the options say. Returns 0, or RT_EINVAL/RT_EFORMAT/RT_ENOENT/
 * RT_EMISMATCH for bad input (the message is already printed; the program
 * exits 2), RT_ESTOPPED when a stop was asked for (worker_stop_install) and
 * every rank stopped after the same step, its checkpoint written (exit
 * 143), or another RT_E... for a failure (exit 1). Collective over comm. */
int worker_run(const worker_options_t *o, coll_comm_t *comm);

/* Stop requests: SIGTERM (Kubernetes stopping a pod) and SIGUSR1 (what
 * ringtrain-launcher sends mpirun, which passes it to every rank) are
 * recorded, not acted on: worker_run looks once per step, and the ranks
 * agree to stop after the same step. Later signals change nothing (a pod's
 * SIGTERM and the launcher's SIGUSR1 often both come). */
int worker_stop_install(void);
/* The first stop signal received, or 0. */
int worker_stop_signal(void);

#endif
