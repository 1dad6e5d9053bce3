/* ringtrain worker: a model is a list of nodes (conv, batch norm, relu,
 * pooling, linear, residual add) over three arenas:
 *
 *   params   all learned parameters, one contiguous block carved by a size
 *            table in REVERSE node order (the last node's parameters first),
 *            so backward makes gradients ready as a growing prefix;
 *   grads    mirrors params exactly (one buffer for the allreduce);
 *   momentum mirrors params (optimizer state).
 *
 * Activations live in a fourth arena sized for the batch at build time;
 * in-place relu and residual add reuse their input's storage when nothing
 * else needs it. Activation gradients share a small pool assigned by liveness
 * (a gradient lives from its last consumer's backward to its producer's),
 * so backward needs a few activation-sized buffers, not one per layer.
 * Nothing here allocates after model_build().
 */
#ifndef RINGTRAIN_WORKER_MODEL_H
#define RINGTRAIN_WORKER_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* The kernels and memory a model runs on, chosen when it is built:
 * model_ops_cpu (host arenas, the *_cpu kernels) or, in builds with CUDA,
 * model_ops_cuda (worker/device_cuda.c: device arenas, the *_cuda kernels
 * queued on kernels_cuda_stream()). Entries have the kernels' signatures,
 * so the CPU table points straight at the CPU kernels and the CPU path runs
 * exactly the code it always did. */
typedef struct model_ops {
    const char *name;    /* "cpu", "cuda" */
    int device_memory;   /* arenas are not host-addressable */
    void *(*alloc)(size_t bytes); /* zeroed, 64-byte aligned; NULL if none */
    void (*release)(void *ptr);   /* accepts NULL */
    void (*copy)(void *dst, const void *src, size_t bytes); /* arena to arena */
    size_t (*conv_workspace_floats)(const conv2d_shape_t *s);
    void (*conv_forward)(float *, const float *, const float *, const float *,
                         const conv2d_shape_t *, float *);
    void (*conv_backward)(float *, float *, float *, const float *,
                          const float *, const float *, const conv2d_shape_t *,
                          float *);
    void (*bn_forward_train)(float *, float *, float *, float *, float *,
                             const float *, const float *, const float *, int,
                             int, int, float, float);
    void (*bn_forward_eval)(float *, const float *, const float *,
                            const float *, const float *, const float *, int,
                            int, int, float);
    void (*bn_backward)(float *, float *, float *, const float *, const float *,
                        const float *, const float *, const float *, int, int,
                        int);
    void (*relu_forward)(float *, const float *, size_t);
    void (*relu_backward)(float *, const float *, const float *, size_t);
    void (*add_forward)(float *, const float *, const float *, size_t);
    void (*add_inplace)(float *, const float *, size_t);
    void (*maxpool_forward)(float *, int32_t *, const float *, int, int, int,
                            int, int, int, int);
    void (*maxpool_backward)(float *, const float *, const int32_t *, int, int,
                             int, int, int, int);
    void (*avgpool_forward)(float *, const float *, int, int, int, int, int,
                            int, int);
    void (*avgpool_backward)(float *, const float *, int, int, int, int, int,
                             int, int);
    void (*gap_forward)(float *, const float *, int, int, int);
    void (*gap_backward)(float *, const float *, int, int, int);
    void (*linear_forward)(float *, const float *, const float *,
                           const float *, int, int, int);
    void (*linear_backward)(float *, float *, float *, const float *,
                            const float *, const float *, int, int, int);
    /* Mean cross-entropy: the CPU returns it; the CUDA table queues it into
     * *loss (device memory) and returns 0, so the step does not wait for
     * the GPU (the worker copies it back only when it prints it). */
    float (*loss_forward)(float *loss, float *probs, const float *logits,
                          const int32_t *labels, int B, int K);
    void (*loss_backward)(float *, const float *, const int32_t *, int, int);
    int (*accuracy_count)(const float *, const int32_t *, int, int);
    void (*sgd_update)(float *, float *, const float *, size_t, float, float,
                       float);
    /* Bytes of one activation or activation-gradient element (0: 4, fp32;
     * 2 for fp16/bf16 activations). Parameters, their gradients, batch-norm
     * statistics and probabilities are fp32 whatever this says. The float
     * pointers of the entries above then point at elements of this size. */
    size_t act_bytes;
    /* Optional (NULL: not fused): batch norm with the ReLU that follows it
     * fused in (out = max(bn(in), 0), written where the in-place ReLU would
     * write), and its backward, which masks dout by that output (relu_out)
     * before the batch-norm gradient. The model then skips the ReLU node. */
    void (*bn_relu_forward_train)(float *, float *, float *, float *, float *,
                                  const float *, const float *, const float *,
                                  int, int, int, float, float);
    void (*bn_relu_forward_eval)(float *, const float *, const float *,
                                 const float *, const float *, const float *,
                                 int, int, int, float);
    void (*bn_relu_backward)(float *din, float *dgamma, float *dbeta,
                             const float *dout, const float *in,
                             const float *gamma, const float *save_mean,
                             const float *save_rstd, const float *relu_out,
                             int B, int C, int HW);
} model_ops_t;

extern const model_ops_t model_ops_cpu;

typedef enum {
    NODE_CONV,
    NODE_BN,
    NODE_RELU,
    NODE_MAXPOOL,
    NODE_AVGPOOL,
    NODE_GAP,
    NODE_LINEAR,
    NODE_ADD,
} node_kind_t;

typedef enum {
    INIT_TORCH_DEFAULT, /* U(+-1/sqrt(fan_in)) for weights and biases */
    INIT_KAIMING_FAN_OUT, /* N(0, sqrt(2/fan_out)), torchvision's ResNet convs */
} init_kind_t;

typedef struct {
    int c, h, w;          /* per-sample shape (h = w = 1 for vectors) */
    int producer;         /* node index, -1 for the model input */
    int consumers;        /* number of nodes reading it */
    int last_consumer;    /* highest consumer node index */
    int storage;          /* tensor whose activation storage this one uses */
    int grad_storage;     /* tensor whose gradient buffer this one uses */
    size_t act_offset;    /* floats, into the activation arena (if own storage) */
    size_t grad_offset;   /* floats, into the gradient pool (if own buffer) */
    float *act;           /* resolved pointers, valid after model_build */
    float *grad;
} tensor_t;

typedef struct {
    node_kind_t kind;
    int in0, in1;         /* tensor ids (in1 only for add) */
    int out;
    /* conv / pool / linear geometry */
    int oc, k, stride, pad;
    int has_bias;
    init_kind_t init;
    /* parameters: offsets in floats into params/grads/momentum */
    size_t w_off, w_count, b_off, b_count;
    /* batch norm: running stats (state arena) and saved stats (act arena) */
    size_t run_off, save_off;
    /* max pooling argmax (act arena, int32 reinterpreted) */
    size_t argmax_off;
    int32_t *argmax;
    float *save_mean, *save_rstd, *run_mean, *run_var;
} node_t;

#define MODEL_MAX_NODES 512
#define MODEL_MAX_TENSORS (MODEL_MAX_NODES + 1)

typedef struct {
    char name[32];
    int batch;            /* batch size the activation arena is sized for */
    int in_c, in_h, in_w; /* input image shape */
    int classes;
    int node_count, tensor_count;
    node_t nodes[MODEL_MAX_NODES];
    tensor_t tensors[MODEL_MAX_TENSORS];
    int input, logits;    /* tensor ids */

    size_t param_count;   /* floats (without alignment padding) */
    size_t arena_floats;  /* floats in params/grads/momentum, with padding */
    /* ready_prefix[i]: floats of the grads arena complete once nodes i..end
     * finished backward (monotone non-increasing in i). */
    size_t ready_prefix[MODEL_MAX_NODES];
    float *params, *grads, *momentum;
    size_t state_floats;
    float *state;         /* batch-norm running statistics */

    size_t act_floats;
    float *act;           /* activations, argmax, saved statistics */
    size_t gradpool_floats;
    float *gradpool;      /* activation gradients + one accumulation buffer */
    float *grad_scratch;  /* where a second contribution is formed before add */
    size_t grad_scratch_floats;
    size_t workspace_floats;
    float *workspace;     /* conv im2col scratch */
    float *probs;         /* (batch, classes) softmax output */
    unsigned char *grad_written; /* per tensor, reset each backward */
    int bn_eval;          /* forward uses running statistics */
    /* Optional: called after each node's forward (backward = 0) or backward
     * (1) with its start and end times (rt_now()); for timelines. */
    void (*trace)(void *ctx, int node, int backward, double t0, double t1);
    void *trace_ctx;
    const model_ops_t *ops; /* where the arenas live and the kernels run */
    float *loss;          /* 1 float in the arenas' memory (device loss) */
} model_t;

/* Builder: add nodes, then model_build() sizes and allocates everything.
 * Each call returns the id of the output tensor, or -1 on a shape error. */
void model_begin(model_t *m, const char *name, int in_c, int in_h, int in_w,
                 int classes);
int model_conv(model_t *m, int in, int oc, int k, int stride, int pad,
               int has_bias, init_kind_t init);
int model_bn(model_t *m, int in);
int model_relu(model_t *m, int in);
int model_maxpool(model_t *m, int in, int k, int stride, int pad);
int model_avgpool(model_t *m, int in, int k, int stride, int pad);
int model_gap(model_t *m, int in);
int model_linear(model_t *m, int in, int out_features, int has_bias);
int model_add(model_t *m, int a, int b);

/* Sizes arenas for `batch` without allocating anything (m->ops, or
 * model_ops_cpu when NULL, decides the convolution workspace); may be
 * called again at another batch. model_memory_bytes() then says what
 * model_build() would allocate. Returns 0 or RT_EINVAL. */
int model_plan(model_t *m, int batch);
/* Plans for `batch` and allocates the arenas (the only allocation) with
 * m->ops (model_ops_cpu when NULL). The last tensor added is the logits.
 * Returns 0 or RT_E... */
int model_build(model_t *m, int batch);
void model_free(model_t *m);

/* Creates one of the known models ("trivial", "mlp", "lenet", "resnet20",
 * "resnet50", "resnet101") with `classes` outputs (0: the model's default)
 * and builds it for `batch`. RT_ENOENT for an unknown name. */
int model_create(model_t *m, const char *name, int classes, int batch);
/* The same, built on `ops` (NULL: model_ops_cpu). */
int model_create_on(model_t *m, const char *name, int classes, int batch,
                    const model_ops_t *ops);
/* The named model's nodes, planned for `batch` on `ops` (NULL:
 * model_ops_cpu) but not allocated: its layout, offsets and sizes, for
 * tools that only read them (the arenas stay NULL; model_free is safe).
 * RT_ENOENT for an unknown name. */
int model_create_planned(model_t *m, const char *name, int classes, int batch,
                         const model_ops_t *ops);
/* What model_create_on() would allocate, in bytes (model_memory_bytes of
 * the planned model), without allocating it; *param_bytes (may be NULL):
 * one parameter arena. RT_ENOENT for an unknown name, RT_ENOMEM when the
 * planner's scratch model cannot be had. */
int model_plan_bytes(const char *name, int classes, int batch, const model_ops_t *ops,
                     size_t *bytes, size_t *param_bytes);
/* The graph of a known model only (nodes and shapes; no arenas, nothing
 * allocated, model_free not needed), e.g. to look at its layers before
 * choosing how to build it. RT_ENOENT for an unknown name. */
int model_graph(model_t *m, const char *name, int classes);
/* 1 when a linear layer reads a feature map with spatial extent (LeNet's
 * flatten): its weights assume the map's NCHW order. */
int model_flattens_map(const model_t *m);
/* NULL-terminated list of model names. */
const char *const *model_names(void);
/* Default input shape and classes of a named model; RT_ENOENT if unknown. */
int model_default_shape(const char *name, int *c, int *h, int *w, int *classes);

/* Initialises parameters (deterministic in seed) and batch-norm state, and
 * zeroes the momentum. Host arenas only (model_ops_cpu). */
void model_init_params(model_t *m, uint64_t seed);
/* The same values written to host arrays laid out as the params arena
 * (arena_floats, padding zeroed) and the state arena (state_floats), for
 * models whose arenas live on a device. */
void model_init_params_host(const model_t *m, uint64_t seed, float *params,
                            float *state);

/* Hash of the architecture: node kinds, shapes, parameter layout. */
uint64_t model_shape_hash(const model_t *m);

/* Forward on input (B, C, H, W) with B <= batch; returns mean loss and fills
 * probs. labels may be NULL (then no loss: returns 0). input and labels are
 * in the arenas' memory (device pointers for a device model, whose loss is
 * left in m->loss: the return value is then 0). */
float model_forward(model_t *m, const float *input, const int32_t *labels,
                    int B);
/* Callback after each node's backward: the first `ready_floats` of the grads
 * arena are final. */
typedef void (*model_ready_fn)(void *ctx, size_t ready_floats);
/* Backward from the loss of the last forward (training mode). */
void model_backward(model_t *m, const float *input, const int32_t *labels,
                    int B, model_ready_fn ready, void *ctx);

/* "conv 5x5/1 32->64", "linear 3136->512", ... for messages. */
void model_node_describe(const model_t *m, int node, char *buf, size_t bytes);

/* Memory the model holds (or, planned, would hold), in bytes: every arena
 * (parameters, gradients, momentum, batch-norm state, activations,
 * activation gradients, convolution workspace, softmax output). */
size_t model_memory_bytes(const model_t *m);

/* Gradient buckets (the worker's, and ringtrain-predict's model of it):
 * they close at node boundaries in backward order (only whole layers are ever
 * ready), the first at ~1 MiB (PyTorch DDP's small first bucket, so
 * communication starts early), the rest at ~bucket_mb, never more than
 * max_buckets (the cap grows instead). Bucket k is floats [end[k-1], end[k])
 * of the grads arena (end[-1] = 0), complete once node[k]'s backward ends.
 * Returns the count. */
#define MODEL_FIRST_BUCKET_BYTES ((size_t)1 << 20)
#define MODEL_MAX_BUCKETS 1024 /* the worker's request table */
int model_buckets_plan(const model_t *m, double bucket_mb, int max_buckets, size_t *end,
                       int *node);

#endif
