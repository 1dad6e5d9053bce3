/* ringtrain kernels, CUDA internals shared by the files in kernels/cuda/ (not
 * public): the process context (stream, cuBLAS handle, scratch), the vendor
 * check macros, launch sizing, the row-major GEMM entry points and a block
 * reduction.
 *
 * Error handling: ops return void (same signatures as the CPU reference), so a
 * failing call is printed where it happens and remembered; the caller learns
 * of it from kernels_cuda_synchronize(). Kernel launches are checked with
 * cudaGetLastError() right after the launch (no synchronisation). */
#ifndef RINGTRAIN_KERNELS_CUDA_INTERNAL_H
#define RINGTRAIN_KERNELS_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stddef.h>
#include <stdint.h>

/* The public headers are C: give their declarations C linkage here. */
extern "C" {
#include "common/common.h"
#include "kernels.h"
}

/* Threads per block for elementwise kernels and for the block reductions
 * (a power of two: kcuda__block_sum halves it). Kernels launched with
 * KCUDA__REDUCE_THREADS declare it in __launch_bounds__, so the compiler keeps
 * them within 64 registers a thread and the launch cannot fail for lack of
 * registers. */
#define KCUDA__THREADS 256
#define KCUDA__REDUCE_THREADS 1024

/* Rows of softmax cross-entropy a single call can hold in scratch. */
#define KCUDA__MAX_ROWS ((size_t)1 << 17)

/* (chunk, channel) partial statistics of the NHWC batch norm: chunks are
 * cut so that chunks * C stays within this many entries (3 floats each). */
#define KCUDA__BN_PARTIALS ((size_t)1 << 20)

typedef struct {
    int ready;
    int device;
    int sm_count;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace;
    double *row_scratch;  /* KCUDA__MAX_ROWS doubles: per-row losses */
    float *loss_dev;      /* one float: the synchronous loss */
    int32_t *count_dev;   /* one int: the synchronous accuracy count */
    float *loss_host;     /* pinned host copies of the two */
    int32_t *count_host;
    float *bn_partial;    /* KCUDA__BN_PARTIALS x 3 floats (batchnorm.cu) */
    void *wcast;          /* kernels_cuda_weight_scratch: a layer's weights */
    void *wgrad;          /* ... and their gradient, before fp32 / reorder */
    size_t wscratch_count; /* elements each holds (4 bytes apiece) */
    int tf32;             /* kernels_cuda_set_tf32 */
    int error;            /* first error seen (RT_E...), 0 if none */
} kcuda__ctx_t;

extern kcuda__ctx_t kcuda__ctx;

/* Report a failed call ("[host:rank] file:line call: what") and remember the
 * first error. Returns code, so callers can propagate it. */
int kcuda__report(int code, const char *file, int line, const char *call,
                  const char *what);

static inline int kcuda__check_cuda(cudaError_t e, const char *file, int line,
                                    const char *call)
{
    if (e == cudaSuccess)
        return 0;
    return kcuda__report(RT_ECUDA, file, line, call, cudaGetErrorString(e));
}

static inline int kcuda__check_cublas(cublasStatus_t s, const char *file,
                                      int line, const char *call)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return 0;
    return kcuda__report(RT_ECUDA, file, line, call, cublasGetStatusString(s));
}

/* Evaluate to 0 or RT_ECUDA; the failure is printed and remembered. */
#define RT_CUDA_CHECK(call) kcuda__check_cuda((call), __FILE__, __LINE__, #call)
#define RT_CUBLAS_CHECK(call)                                                  \
    kcuda__check_cublas((call), __FILE__, __LINE__, #call)
/* After a <<<...>>> launch: bad configuration or an earlier async fault. */
#define KCUDA__LAUNCHED(kernel)                                                \
    kcuda__check_cuda(cudaGetLastError(), __FILE__, __LINE__, kernel "<<<>>>")

/* 1 when ops may run; otherwise prints (once per call site kind) and
 * remembers that kernels_cuda_init() was not called. */
int kcuda__ready(const char *op);

/* Blocks for a grid-stride loop over `count` items: enough to fill the GPU
 * several times over, never more than the loop needs. count > 0. */
static inline unsigned kcuda__blocks(size_t count, int threads)
{
    size_t need = (count + (size_t)threads - 1) / (size_t)threads;
    size_t cap = (size_t)(kcuda__ctx.sm_count > 0 ? kcuda__ctx.sm_count : 132) * 32;
    return (unsigned)(need < cap ? need : cap);
}

/* Grid for a (rows, cols) loop: blockIdx.y walks rows (stepping by
 * gridDim.y past 65535), x-blocks of `threads` walk cols. Row-wise loops keep
 * the per-element index arithmetic to a division or two, which matters in
 * memory-bound kernels where 64-bit division would cost more than the load.
 * rows, cols > 0. */
static inline dim3 kcuda__grid2d(size_t rows, size_t cols, int threads)
{
    size_t x = (cols + (size_t)threads - 1) / (size_t)threads;
    return dim3((unsigned)(x < 65535 ? x : 65535),
                (unsigned)(rows < 65535 ? rows : 65535), 1);
}

/* Row-major GEMM, same contract as the CPU's kern__sgemm:
 * C(M,N) = alpha * op(A)(M,K) * op(B)(K,N) + beta * C; trans_a: A is stored
 * (K, M) with leading dimension lda, likewise trans_b. K == 0 gives beta * C. */
void kcuda__sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc);
/* `batch` such products, matrix i at A + i*stride_a (likewise B, C); a
 * stride of 0 reuses one matrix for every product. K >= 1. */
void kcuda__sgemm_batched(int trans_a, int trans_b, int M, int N, int K,
                          float alpha, const float *A, int lda,
                          long long stride_a, const float *B, int ldb,
                          long long stride_b, float beta, float *C, int ldc,
                          long long stride_c, int batch);

/* ---- storage types of the _fmt ops ------------------------------------------
 * Values are loaded to float with kcuda__ld and stored with kcuda__st
 * (round to nearest even); kernels templated on the storage type T compute
 * in float throughout, so the fp32 instantiation is the fp32 kernel. */
__device__ __forceinline__ static float kcuda__ld(float v) { return v; }
__device__ __forceinline__ static float kcuda__ld(__half v)
{
    return __half2float(v);
}
__device__ __forceinline__ static float kcuda__ld(__nv_bfloat16 v)
{
    return __bfloat162float(v);
}
__device__ __forceinline__ static void kcuda__st(float *p, float v) { *p = v; }
__device__ __forceinline__ static void kcuda__st(__half *p, float v)
{
    *p = __float2half_rn(v);
}
__device__ __forceinline__ static void kcuda__st(__nv_bfloat16 *p, float v)
{
    *p = __float2bfloat16_rn(v);
}

/* Runs the statements with T the storage type of `dtype`. */
#define KCUDA__WITH_DTYPE(dtype, T, ...)                                       \
    do {                                                                       \
        switch (dtype) {                                                       \
        case KERN_F16: {                                                       \
            typedef __half T;                                                  \
            __VA_ARGS__;                                                       \
        } break;                                                               \
        case KERN_BF16: {                                                      \
            typedef __nv_bfloat16 T;                                           \
            __VA_ARGS__;                                                       \
        } break;                                                               \
        default: {                                                             \
            typedef float T;                                                   \
            __VA_ARGS__;                                                       \
        } break;                                                               \
        }                                                                      \
    } while (0)

/* 1 when f names a dtype and layout; otherwise reports (RT_EINVAL). */
int kcuda__fmt_ok(kern_format_t f, const char *op);

/* The plain fp32 NCHW format of the *_cuda ops. */
static inline kern_format_t kcuda__f32(void)
{
    kern_format_t f = {KERN_F32, KERN_NCHW};
    return f;
}

/* Weights (OC, C, KHW) fp32 -> the scratch in `dtype`, in (OC, KHW, C)
 * order when nhwc (the filter layout of an NHWC convolution), and the
 * gradient's way back: scratch (same order, `dtype`) -> dweight fp32
 * (OC, C, KHW). NULL when the layer does not fit the scratch (reported). */
void *kcuda__weights_cast(const float *w, size_t OC, size_t C, size_t KHW,
                          kern_dtype_t dtype, int nhwc);
void kcuda__weights_uncast(float *dw, const void *scratch, size_t OC, size_t C,
                           size_t KHW, kern_dtype_t dtype, int nhwc);
/* The gradient scratch, when `count` elements fit (else NULL, reported). */
void *kcuda__wgrad(size_t count, const char *op);

/* cudnn.cu: releases the cuDNN handle and plans (kernels_cuda_free). */
void kdnn__free(void);

/* Row-major C = op(A) * op(B) + beta * C (alpha 1) with each matrix in its
 * own storage type (cublasGemmEx, fp32 accumulation: tensor cores for
 * fp16/bf16 inputs). K >= 1. */
void kcuda__gemm_ex(int trans_a, int trans_b, int M, int N, int K,
                    const void *A, kern_dtype_t ta, int lda, const void *B,
                    kern_dtype_t tb, int ldb, float beta, void *C,
                    kern_dtype_t tc, int ldc);

/* Sum of one double per thread over the block (blockDim.x a power of two,
 * at most KCUDA__REDUCE_THREADS); every thread gets the total. Uses shared
 * memory and __syncthreads only, so every thread of the block must call it.
 * The order of additions is fixed, so the result is deterministic. */
__device__ static inline double kcuda__block_sum(double v)
{
    __shared__ double part[KCUDA__REDUCE_THREADS];
    __shared__ double total;
    unsigned t = threadIdx.x;
    part[t] = v;
    __syncthreads();
    for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
        if (t < half)
            part[t] += part[t + half];
        __syncthreads();
    }
    if (t == 0)
        total = part[0];
    __syncthreads();
    double result = total;
    /* Keep the next call's writes to part/total behind everyone's read. */
    __syncthreads();
    return result;
}

#endif
