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
/* TF32 tensor-core GEMMs (about 10 mantissa bits in the products): off by
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

/* ---- optimizer -----------------------------------------------------------
 * SGD with momentum and weight decay, PyTorch semantics:
 *   g = grad + weight_decay * param; buf = momentum * buf + g; param -= lr * buf
 * (buf starts at 0, so the first step uses buf = g). */
void sgd_update_cpu(float *params, float *momentum_buf, const float *grads,
                    size_t count, float lr, float momentum, float weight_decay);
void sgd_update_cuda(float *params, float *momentum_buf, const float *grads,
                     size_t count, float lr, float momentum,
                     float weight_decay);

#endif
