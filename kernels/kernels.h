/* ringtrain kernels: the tensor operations of training, forward and backward.
 *
 * Two implementations share every signature: *_cpu (kernels/cpu/, OpenBLAS,
 * the readable reference) and *_cuda (kernels/cuda/, cuBLAS + own kernels,
 * pointers are device pointers, work is queued on kernels_cuda_stream()).
 *
 * Conventions (llm.c style): outputs first, then inputs, then sizes. Tensors
 * are dense, row-major, NCHW for images. Every backward *writes* (does not
 * accumulate into) its input and parameter gradients; a NULL input-gradient
 * pointer means "not needed" and is skipped (first layer). Sizes are int
 * (every dimension of these models fits), products are computed in size_t.
 * No kernel allocates: scratch comes from the caller (see *_workspace_floats).
 */
#ifndef RINGTRAIN_KERNELS_H
#define RINGTRAIN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Threads used by CPU kernels (OpenBLAS and own loops). n >= 1. */
void kernels_set_num_threads(int n);
int kernels_get_num_threads(void);

/* ---- CUDA context (kernels/cuda/; only in builds with CUDA) ----------------
 * One per process: a device, one stream every *_cuda op is queued on, one
 * cuBLAS handle with its workspace and a little scratch, all created by
 * kernels_cuda_init() and never per call. Ops are asynchronous and return
 * nothing; a failing CUDA or cuBLAS call prints "[host:rank] file:line call:
 * <library's error string>" and is remembered: kernels_cuda_synchronize()
 * returns it (the first one, as RT_ECUDA) after waiting for the stream. Not
 * thread-safe: one thread queues work. */

/* Devices visible (>= 0). When there are none, *why (if not NULL) gets the
 * runtime's reason, e.g. "no CUDA-capable device is detected". */
int kernels_cuda_device_count(const char **why);
/* Selects `device` and creates the stream, cuBLAS handle and scratch.
 * Returns 0, or RT_ECUDA (message printed). Calling it again is a no-op. */
int kernels_cuda_init(int device);
/* Releases everything kernels_cuda_init() made; safe without init or twice. */
void kernels_cuda_free(void);
/* The stream (a cudaStream_t), for callers that order their own work on it. */
void *kernels_cuda_stream(void);
/* TF32 tensor cores (about 10 mantissa bits in the products) for fp32
 * GEMMs and fp32 cuDNN convolutions (planned after the call): off by
 * default, so results stay within fp32 rounding of the CPU reference. */
void kernels_cuda_set_tf32(int allow);
/* Waits for the stream; returns 0 or the first error seen (RT_ECUDA). */
int kernels_cuda_synchronize(void);

/* Device memory, 256-byte aligned and zeroed; NULL (message printed) on
 * failure. _buffer_free accepts NULL. Copies wait for the stream. */
void *kernels_cuda_buffer_alloc(size_t bytes);
void kernels_cuda_buffer_free(void *ptr);
int kernels_cuda_copy_to_device(void *dst, const void *src, size_t bytes);
int kernels_cuda_copy_to_host(void *dst, const void *src, size_t bytes);
/* Queues dst[0 .. bytes) = 0 on the stream. */
void kernels_cuda_zero(void *dst, size_t bytes);
/* Queues dst = src between device buffers on the stream. */
void kernels_cuda_copy_device(void *dst, const void *src, size_t bytes);
/* Queues a host-to-device copy on the stream and returns at once: src must
 * stay unchanged until the stream has passed the copy (a later
 * kernels_cuda_synchronize(), or any wait that covers it). From pinned
 * memory the copy is a DMA that overlaps the host; from pageable memory the
 * runtime stages it and may return only when the copy is done. */
void kernels_cuda_copy_to_device_async(void *dst, const void *src,
                                       size_t bytes);
/* Pinned (page-locked) host memory, zeroed, for staging copies; NULL
 * (message printed) on failure. _host_free accepts NULL. */
void *kernels_cuda_host_alloc(size_t bytes);
void kernels_cuda_host_free(void *ptr);
/* A point on the stream (a cudaEvent_t), for a host buffer the stream reads
 * later: _record marks the stream's current end, _wait blocks the host until
 * the stream has passed the last mark (0, or RT_ECUDA). NULL on failure;
 * _destroy accepts NULL. */
void *kernels_cuda_event_create(void);
void kernels_cuda_event_record(void *event);
int kernels_cuda_event_wait(void *event);
void kernels_cuda_event_destroy(void *event);

/* Reserves (once, at start-up) room for the _fmt ops to hold `count`
 * parameters of one layer in the activations' precision, and their gradient
 * (the weight casts of fp16/bf16 convolutions and linear layers). Call it
 * with the largest layer's weight count; 0 or RT_ECUDA. An op whose layer
 * does not fit reports RT_ERANGE (at the next synchronize). */
int kernels_cuda_weight_scratch(size_t count);

/* ---- storage formats of the CUDA ops ---------------------------------------
 * The *_fmt_cuda ops take activations and activation gradients (void *)
 * stored as `dtype` in `layout`; parameters, parameter gradients, batch-norm
 * statistics, probabilities and the loss stay fp32 (float *). Every value is
 * loaded as float, computed in float (sums as the fp32 op does them) and
 * rounded once, to nearest even, when stored. NHWC is the memory order of a
 * 4-D image tensor whose shape is still written (B, C, H, W): element
 * (b, c, h, w) at ((b*H + h)*W + w)*C + c; tensors without spatial extent
 * ((B, C) vectors, logits) are the same in both. {KERN_F32, KERN_NCHW} is
 * exactly the plain *_cuda op (they are the same kernels). */
typedef enum { KERN_F32 = 0, KERN_F16 = 1, KERN_BF16 = 2 } kern_dtype_t;
typedef enum { KERN_NCHW = 0, KERN_NHWC = 1 } kern_layout_t;
typedef struct {
    kern_dtype_t dtype;
    kern_layout_t layout;
} kern_format_t;

/* Bytes per element (4 or 2), and "fp32" / "fp16" / "bf16". */
size_t kern_dtype_size(kern_dtype_t dtype);
const char *kern_dtype_name(kern_dtype_t dtype);

/* dst (B, C, H, W) in format f = src (B, C, H, W), fp32 NCHW (the model's
 * input batch), and back. */
void tensor_from_f32_fmt_cuda(void *dst, const float *src, int B, int C, int H,
                              int W, kern_format_t f);
void tensor_to_f32_fmt_cuda(float *dst, const void *src, int B, int C, int H,
                            int W, kern_format_t f);

/* ---- linear ------------------------------------------------------------
 * in: (B, IC)  weight: (OC, IC)  bias: (OC) or NULL  out: (B, OC) */
void linear_forward_cpu(float *out, const float *in, const float *weight,
                        const float *bias, int B, int IC, int OC);
void linear_forward_cuda(float *out, const float *in, const float *weight,
                         const float *bias, int B, int IC, int OC);
/* dout: (B, OC) -> din: (B, IC) or NULL, dweight: (OC, IC), dbias: (OC) or NULL */
void linear_backward_cpu(float *din, float *dweight, float *dbias,
                         const float *dout, const float *in,
                         const float *weight, int B, int IC, int OC);
void linear_backward_cuda(float *din, float *dweight, float *dbias,
                          const float *dout, const float *in,
                          const float *weight, int B, int IC, int OC);
/* in, out, din, dout in format f (the layout does not apply: (B, features));
 * weight, bias, dweight, dbias fp32. fp16/bf16 multiply on tensor cores
 * (cublasGemmEx, fp32 accumulation) with a cast of the weights
 * (kernels_cuda_weight_scratch); dweight is accumulated and stored in fp32. */
void linear_forward_fmt_cuda(void *out, const void *in, const float *weight,
                             const float *bias, int B, int IC, int OC,
                             kern_format_t f);
void linear_backward_fmt_cuda(void *din, float *dweight, float *dbias,
                              const void *dout, const void *in,
                              const float *weight, int B, int IC, int OC,
                              kern_format_t f);

/* ---- conv2d (im2col + GEMM) ----------------------------------------------
 * in: (B, C, H, W)  weight: (OC, C, KH, KW)  bias: (OC) or NULL
 * out: (B, OC, OH, OW) with OH = (H + 2*pad - KH) / stride + 1 (same for W).
 * workspace: conv2d_workspace_floats(...) floats, reused between calls. */
typedef struct {
    int B, C, H, W;     /* input */
    int OC, KH, KW;     /* filters */
    int stride, pad;
    int OH, OW;         /* filled by conv2d_shape_init */
} conv2d_shape_t;

/* Fills OH/OW; returns 0, or -1 when the sizes are invalid. */
int conv2d_shape_init(conv2d_shape_t *s, int B, int C, int H, int W, int OC,
                      int KH, int KW, int stride, int pad);
size_t conv2d_workspace_floats(const conv2d_shape_t *s);
/* The CUDA convolution groups more images per GEMM than the CPU one, so its
 * workspace differs: size it with this function for *_cuda. */
size_t conv2d_workspace_floats_cuda(const conv2d_shape_t *s);
void conv2d_forward_cpu(float *out, const float *in, const float *weight,
                        const float *bias, const conv2d_shape_t *s,
                        float *workspace);
void conv2d_forward_cuda(float *out, const float *in, const float *weight,
                         const float *bias, const conv2d_shape_t *s,
                         float *workspace);
/* din: (B, C, H, W) or NULL; dweight: (OC, C, KH, KW); dbias: (OC) or NULL */
void conv2d_backward_cpu(float *din, float *dweight, float *dbias,
                         const float *dout, const float *in,
                         const float *weight, const conv2d_shape_t *s,
                         float *workspace);
void conv2d_backward_cuda(float *din, float *dweight, float *dbias,
                          const float *dout, const float *in,
                          const float *weight, const conv2d_shape_t *s,
                          float *workspace);

/* ---- conv2d through cuDNN (kernels/cuda/cudnn.cu) ---------------------------
 * The same operation on activations in format f (fp32, fp16, bf16; NCHW or
 * NHWC) with cuDNN's legacy convolution API (present in every cuDNN 9).
 * weight is the fp32 master (OC, C, KH, KW); fp16/bf16 convolve a cast of it
 * (in (OC, KH, KW, C) order for NHWC), made per call on the stream (a pass
 * over the weights, far cheaper than the convolution), and dweight / dbias
 * are written in fp32. Math: fp16/bf16 on tensor cores with fp32
 * accumulation; fp32 as kernels_cuda_set_tf32() says (TF32 tensor cores, or
 * strict fp32 FMA kernels).
 *
 * kernels_cudnn_init() creates the handle on the kernels' stream, once, and
 * checks the runtime: it must be cuDNN 9 (the major version the build's
 * headers declare). Returns 0; RT_ENOTSUP with *why when this build has no
 * cuDNN or the runtime is another major version or cannot be loaded.
 * kernels_cudnn_version(): the runtime's cudnnGetVersion() (e.g. 90100 for
 * 9.1.0) after a successful init, else 0.
 *
 * conv2d_workspace_floats_cudnn() is the plan: at start-up, once per (shape,
 * format, math), it picks the forward, backward-data and backward-filter
 * algorithms and returns the workspace (floats) the three need; one buffer
 * of the largest size over all layers then serves every call. Choice
 * (RINGTRAIN_CUDNN_ALGO): "find" (default) times every algorithm cuDNN
 * offers on this GPU (cudnnFindConvolution*Algorithm, as PyTorch's
 * cudnn.benchmark) and keeps the fastest, or a smaller-workspace one within
 * 3% of it; "heuristic" takes cuDNN's first suggestion that fits
 * (cudnnGetConvolution*Algorithm_v7, no trial runs). Workspaces are capped
 * at RINGTRAIN_CUDNN_WORKSPACE_MB (default 512) per algorithm. A shape
 * first seen by a forward or backward call (a smaller last batch) is planned
 * there by the heuristic, within the largest workspace planned so far. */
int kernels_cudnn_init(char *why, size_t why_bytes);
int kernels_cudnn_version(void);
size_t conv2d_workspace_floats_cudnn(const conv2d_shape_t *s, kern_format_t f);
void conv2d_forward_cudnn(void *out, const void *in, const float *weight,
                          const float *bias, const conv2d_shape_t *s,
                          void *workspace, kern_format_t f);
void conv2d_backward_cudnn(void *din, float *dweight, float *dbias,
                           const void *dout, const void *in,
                           const float *weight, const conv2d_shape_t *s,
                           void *workspace, kern_format_t f);
/* "find" or "heuristic", and the algorithms each planned shape got, one
 * line per shape ("conv 3x3/1 64->64 56x56 b64: fwd 1, bwd-data 1,
 * bwd-filter 0, 12.3 MiB"), for logs. */
const char *kernels_cudnn_choice(void);
void kernels_cudnn_describe_plans(void (*line)(void *ctx, const char *text),
                                  void *ctx);

/* ---- batch norm (per channel over B, H, W) ---------------------------------
 * in/out: (B, C, HW)  gamma, beta, running_mean, running_var: (C)
 * Training: normalises with batch statistics, saves mean and 1/std (C each)
 * for backward, updates running stats as PyTorch does
 * (running = (1 - momentum) * running + momentum * batch, unbiased variance). */
void batchnorm_forward_train_cpu(float *out, float *save_mean, float *save_rstd,
                                 float *running_mean, float *running_var,
                                 const float *in, const float *gamma,
                                 const float *beta, int B, int C, int HW,
                                 float momentum, float eps);
void batchnorm_forward_train_cuda(float *out, float *save_mean,
                                  float *save_rstd, float *running_mean,
                                  float *running_var, const float *in,
                                  const float *gamma, const float *beta, int B,
                                  int C, int HW, float momentum, float eps);
void batchnorm_forward_eval_cpu(float *out, const float *in,
                                const float *gamma, const float *beta,
                                const float *running_mean,
                                const float *running_var, int B, int C, int HW,
                                float eps);
void batchnorm_forward_eval_cuda(float *out, const float *in,
                                 const float *gamma, const float *beta,
                                 const float *running_mean,
                                 const float *running_var, int B, int C,
                                 int HW, float eps);
void batchnorm_backward_cpu(float *din, float *dgamma, float *dbeta,
                            const float *dout, const float *in,
                            const float *gamma, const float *save_mean,
                            const float *save_rstd, int B, int C, int HW);
void batchnorm_backward_cuda(float *din, float *dgamma, float *dbeta,
                             const float *dout, const float *in,
                             const float *gamma, const float *save_mean,
                             const float *save_rstd, int B, int C, int HW);
/* The same in format f (in, out, din, dout; statistics and parameters
 * fp32). relu = 1 fuses the ReLU that follows: out = max(bn(in), 0); the
 * backward then takes that output (`relu_out`, else NULL) and masks dout
 * with out > 0 before the batch-norm gradient, which is what a separate ReLU
 * backward would have done. NHWC reduces over (B, H, W) per channel in two
 * passes over row chunks (partial sums per chunk and channel, then a fixed-
 * order combine), so it is deterministic too. */
void batchnorm_forward_train_fmt_cuda(void *out, float *save_mean,
                                      float *save_rstd, float *running_mean,
                                      float *running_var, const void *in,
                                      const float *gamma, const float *beta,
                                      int B, int C, int HW, float momentum,
                                      float eps, int relu, kern_format_t f);
void batchnorm_forward_eval_fmt_cuda(void *out, const void *in,
                                     const float *gamma, const float *beta,
                                     const float *running_mean,
                                     const float *running_var, int B, int C,
                                     int HW, float eps, int relu,
                                     kern_format_t f);
void batchnorm_backward_fmt_cuda(void *din, float *dgamma, float *dbeta,
                                 const void *dout, const void *in,
                                 const float *gamma, const float *save_mean,
                                 const float *save_rstd, const void *relu_out,
                                 int B, int C, int HW, kern_format_t f);

/* ---- elementwise -------------------------------------------------------- */
/* out = max(in, 0); out may equal in. */
void relu_forward_cpu(float *out, const float *in, size_t count);
void relu_forward_cuda(float *out, const float *in, size_t count);
/* din = dout where out > 0 else 0; din may equal dout. */
void relu_backward_cpu(float *din, const float *dout, const float *out,
                       size_t count);
void relu_backward_cuda(float *din, const float *dout, const float *out,
                        size_t count);
/* out = a + b (residual add); out may equal a or b. Backward is the identity
 * for both inputs: callers pass dout on (see add_inplace_cpu to accumulate). */
void add_forward_cpu(float *out, const float *a, const float *b, size_t count);
void add_forward_cuda(float *out, const float *a, const float *b,
                      size_t count);
/* acc += x */
void add_inplace_cpu(float *acc, const float *x, size_t count);
void add_inplace_cuda(float *acc, const float *x, size_t count);
/* The same on `count` elements stored as f.dtype. */
void relu_forward_fmt_cuda(void *out, const void *in, size_t count,
                           kern_format_t f);
void relu_backward_fmt_cuda(void *din, const void *dout, const void *out,
                            size_t count, kern_format_t f);
void add_forward_fmt_cuda(void *out, const void *a, const void *b,
                          size_t count, kern_format_t f);
void add_inplace_fmt_cuda(void *acc, const void *x, size_t count,
                          kern_format_t f);

/* ---- pooling -----------------------------------------------------------
 * in: (B, C, H, W) -> out: (B, C, OH, OW), OH = (H + 2*pad - k) / stride + 1.
 * Max pooling records the argmax (index within the input plane) for backward;
 * padding never wins. Average pooling divides by k*k (padding counted, as
 * PyTorch's default count_include_pad=True). */
void maxpool2d_forward_cpu(float *out, int32_t *argmax, const float *in, int B,
                           int C, int H, int W, int k, int stride, int pad);
void maxpool2d_forward_cuda(float *out, int32_t *argmax, const float *in,
                            int B, int C, int H, int W, int k, int stride,
                            int pad);
void maxpool2d_backward_cpu(float *din, const float *dout,
                            const int32_t *argmax, int B, int C, int H, int W,
                            int OH, int OW);
/* The CUDA version adds overlapping windows' gradients with atomics, so its
 * last bits may vary from run to run. */
void maxpool2d_backward_cuda(float *din, const float *dout,
                             const int32_t *argmax, int B, int C, int H,
                             int W, int OH, int OW);
void avgpool2d_forward_cpu(float *out, const float *in, int B, int C, int H,
                           int W, int k, int stride, int pad);
void avgpool2d_forward_cuda(float *out, const float *in, int B, int C, int H,
                            int W, int k, int stride, int pad);
void avgpool2d_backward_cpu(float *din, const float *dout, int B, int C, int H,
                            int W, int k, int stride, int pad);
void avgpool2d_backward_cuda(float *din, const float *dout, int B, int C,
                             int H, int W, int k, int stride, int pad);
/* in: (B, C, HW) -> out: (B, C) */
void global_avgpool_forward_cpu(float *out, const float *in, int B, int C,
                                int HW);
void global_avgpool_forward_cuda(float *out, const float *in, int B, int C,
                                 int HW);
void global_avgpool_backward_cpu(float *din, const float *dout, int B, int C,
                                 int HW);
void global_avgpool_backward_cuda(float *din, const float *dout, int B,
                                  int C, int HW);
/* The same in format f. The argmax stays the index within the input plane
 * (h*W + w) in both layouts. Max pooling's backward adds overlapping
 * windows with atomics in the storage type (fp16/bf16: each addition
 * rounds; a pixel gets at most ceil(k/stride)^2 of them). Global average
 * pooling's output (B, C) is the same in both layouts. */
void maxpool2d_forward_fmt_cuda(void *out, int32_t *argmax, const void *in,
                                int B, int C, int H, int W, int k, int stride,
                                int pad, kern_format_t f);
void maxpool2d_backward_fmt_cuda(void *din, const void *dout,
                                 const int32_t *argmax, int B, int C, int H,
                                 int W, int OH, int OW, kern_format_t f);
void avgpool2d_forward_fmt_cuda(void *out, const void *in, int B, int C,
                                int H, int W, int k, int stride, int pad,
                                kern_format_t f);
void avgpool2d_backward_fmt_cuda(void *din, const void *dout, int B, int C,
                                 int H, int W, int k, int stride, int pad,
                                 kern_format_t f);
void global_avgpool_forward_fmt_cuda(void *out, const void *in, int B, int C,
                                     int HW, kern_format_t f);
void global_avgpool_backward_fmt_cuda(void *din, const void *dout, int B,
                                      int C, int HW, kern_format_t f);

/* ---- loss --------------------------------------------------------------
 * logits: (B, K), labels: (B) in [0, K). probs: (B, K) softmax, kept for
 * backward. Returns the mean cross-entropy over the batch. */
float softmax_cross_entropy_forward_cpu(float *probs, const float *logits,
                                        const int32_t *labels, int B, int K);
/* The CUDA version waits for the stream to return the loss; the _async one
 * writes it to *loss (1 device float) and returns at once. */
float softmax_cross_entropy_forward_cuda(float *probs, const float *logits,
                                         const int32_t *labels, int B, int K);
void softmax_cross_entropy_forward_async_cuda(float *loss, float *probs,
                                              const float *logits,
                                              const int32_t *labels, int B,
                                              int K);
/* dlogits = (probs - onehot(labels)) / B */
void softmax_cross_entropy_backward_cpu(float *dlogits, const float *probs,
                                        const int32_t *labels, int B, int K);
void softmax_cross_entropy_backward_cuda(float *dlogits, const float *probs,
                                         const int32_t *labels, int B, int K);
/* Number of rows whose argmax equals the label. */
int accuracy_count_cpu(const float *logits, const int32_t *labels, int B,
                       int K);
/* Waits for the stream; the _async one writes *count (1 device int32). */
int accuracy_count_cuda(const float *logits, const int32_t *labels, int B,
                        int K);
void accuracy_count_async_cuda(int32_t *count, const float *logits,
                               const int32_t *labels, int B, int K);
/* The same with logits and dlogits in f.dtype (probabilities and the loss
 * fp32). The backward multiplies dlogits by *scale (one device float: the
 * loss scale of mixed precision, read on the device) unless scale is NULL. */
void softmax_cross_entropy_forward_async_fmt_cuda(float *loss, float *probs,
                                                  const void *logits,
                                                  const int32_t *labels, int B,
                                                  int K, kern_format_t f);
void softmax_cross_entropy_backward_fmt_cuda(void *dlogits, const float *probs,
                                             const int32_t *labels, int B,
                                             int K, const float *scale,
                                             kern_format_t f);
int accuracy_count_fmt_cuda(const void *logits, const int32_t *labels, int B,
                            int K, kern_format_t f);

/* ---- optimizer -----------------------------------------------------------
 * SGD with momentum and weight decay, PyTorch semantics:
 *   g = grad + weight_decay * param; buf = momentum * buf + g; param -= lr * buf
 * (buf starts at 0, so the first step uses buf = g). */
void sgd_update_cpu(float *params, float *momentum_buf, const float *grads,
                    size_t count, float lr, float momentum, float weight_decay);
void sgd_update_cuda(float *params, float *momentum_buf, const float *grads,
                     size_t count, float lr, float momentum,
                     float weight_decay);

/* ---- loss scaling (mixed precision) --------------------------------------
 * fp16 gradients underflow: the loss gradient is multiplied by `scale`
 * before backward (softmax_cross_entropy_backward_fmt_cuda) and the update
 * divides it out again. Static (dynamic = 0; tf_cnn_benchmarks'
 * --fp16_loss_scale alone): every step is applied as it comes. Dynamic
 * (--fp16_enable_auto_loss_scale; PyTorch's GradScaler): a step whose
 * gradients hold an inf or NaN is skipped (parameters and momentum
 * unchanged) and halves the scale; after `inc_every` clean steps in a row
 * the scale doubles, up to KERN_LOSS_SCALE_MAX. The state is plain data so
 * the CUDA version keeps it in device memory and updates it there: no step
 * waits for the host to decide. */
#define KERN_LOSS_SCALE_MAX 16777216.0f /* 2^24 */
typedef struct {
    float scale;        /* the loss gradient's multiplier */
    int32_t dynamic;    /* 1: skip, halve and double as above */
    int32_t inc_every;  /* clean steps before the scale doubles */
    int32_t good_steps; /* clean steps since the last change */
    int32_t found_inf;  /* the last step's gradients were not all finite */
    int32_t skipped;    /* steps skipped so far */
    int64_t steps;      /* updates seen so far (applied or skipped) */
} loss_scale_t;

void loss_scale_init(loss_scale_t *s, float scale, int dynamic,
                     int inc_every);
/* sgd_update_cpu on grads / s->scale, then the scale's update (dynamic: the
 * step is skipped when a gradient is not finite). `s` is host memory for
 * the CPU reference and device memory for the CUDA version, which checks,
 * updates and adjusts in three launches without waiting. */
void sgd_update_scaled_cpu(float *params, float *momentum_buf,
                           const float *grads, size_t count, float lr,
                           float momentum, float weight_decay,
                           loss_scale_t *s);
void sgd_update_scaled_cuda(float *params, float *momentum_buf,
                            const float *grads, size_t count, float lr,
                            float momentum, float weight_decay,
                            loss_scale_t *s);

#endif
