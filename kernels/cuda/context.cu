/* ringtrain kernels (CUDA): the process context (device, stream, cuBLAS
 * handle and workspace, scratch), error reporting, device memory helpers and
 * the row-major GEMM wrappers over cuBLAS.
 *
 * Everything the ops need is allocated here once, so no op allocates: the
 * cuBLAS workspace is handed to cuBLAS up front (otherwise it allocates its
 * own on first use of a stream), and the loss/accuracy results go through
 * preallocated device words and pinned host words. */
#include "cuda_internal.h"

#include <stdio.h>
#include <string.h>

/* cuBLAS workspace: NVIDIA recommends 32 MiB on Hopper. */
#define KCUDA__BLAS_WORKSPACE_BYTES ((size_t)32 << 20)

kcuda__ctx_t kcuda__ctx;

int kcuda__report(int code, const char *file, int line, const char *call,
                  const char *what)
{
    char prefix[300];
    rt_log_prefix(prefix, sizeof prefix);
    fprintf(stderr, "[%s] %s:%d %s: %s\n", prefix, file, line, call, what);
    if (kcuda__ctx.error == 0)
        kcuda__ctx.error = code;
    return code;
}

int kcuda__ready(const char *op)
{
    if (kcuda__ctx.ready)
        return 1;
    kcuda__report(RT_EINVAL, __FILE__, __LINE__, op,
                  "kernels_cuda_init() was not called");
    return 0;
}

extern "C" int kernels_cuda_device_count(const char **why)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        if (why)
            *why = cudaGetErrorString(e);
        /* Clear the sticky runtime error so a later init is not confused. */
        (void)cudaGetLastError();
        return 0;
    }
    if (count <= 0 && why)
        *why = "the CUDA runtime reports 0 devices";
    return count > 0 ? count : 0;
}

extern "C" void kernels_cuda_free(void)
{
    kcuda__ctx_t *c = &kcuda__ctx;
    if (c->stream)
        (void)cudaStreamSynchronize(c->stream);
    if (c->blas)
        (void)cublasDestroy(c->blas);
    cudaFree(c->blas_workspace);
    cudaFree(c->row_scratch);
    cudaFree(c->loss_dev);
    cudaFree(c->count_dev);
    cudaFreeHost(c->loss_host);
    cudaFreeHost(c->count_host);
    cudaFree(c->bn_partial);
    cudaFree(c->wcast);
    cudaFree(c->wgrad);
    kdnn__free();
    if (c->stream)
        (void)cudaStreamDestroy(c->stream);
    memset(c, 0, sizeof *c);
}

extern "C" int kernels_cuda_init(int device)
{
    kcuda__ctx_t *c = &kcuda__ctx;
    if (c->ready)
        return 0;
    memset(c, 0, sizeof *c);
    c->device = device;
    if (RT_CUDA_CHECK(cudaSetDevice(device)) ||
        RT_CUDA_CHECK(cudaDeviceGetAttribute(&c->sm_count,
                                             cudaDevAttrMultiProcessorCount,
                                             device)) ||
        RT_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream,
                                                cudaStreamNonBlocking)) ||
        RT_CUBLAS_CHECK(cublasCreate(&c->blas)) ||
        RT_CUBLAS_CHECK(cublasSetStream(c->blas, c->stream)) ||
        RT_CUDA_CHECK(cudaMalloc(&c->blas_workspace,
                                 KCUDA__BLAS_WORKSPACE_BYTES)) ||
        RT_CUBLAS_CHECK(cublasSetWorkspace(c->blas, c->blas_workspace,
                                           KCUDA__BLAS_WORKSPACE_BYTES)) ||
        RT_CUBLAS_CHECK(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH)) ||
        RT_CUDA_CHECK(cudaMalloc(&c->row_scratch,
                                 KCUDA__MAX_ROWS * sizeof(double))) ||
        RT_CUDA_CHECK(cudaMalloc(&c->loss_dev, sizeof(float))) ||
        RT_CUDA_CHECK(cudaMalloc(&c->count_dev, sizeof(int32_t))) ||
        RT_CUDA_CHECK(cudaMallocHost(&c->loss_host, sizeof(float))) ||
        RT_CUDA_CHECK(cudaMallocHost(&c->count_host, sizeof(int32_t))) ||
        RT_CUDA_CHECK(cudaMalloc(&c->bn_partial,
                                 KCUDA__BN_PARTIALS * 3 * sizeof(float))))
        goto fail;
    c->ready = 1;
    return 0;
fail:
    kernels_cuda_free();
    return RT_ECUDA;
}

extern "C" void *kernels_cuda_stream(void)
{
    return (void *)kcuda__ctx.stream;
}

extern "C" void kernels_cuda_set_tf32(int allow)
{
    if (!kcuda__ready("kernels_cuda_set_tf32"))
        return;
    kcuda__ctx.tf32 = allow != 0;
    RT_CUBLAS_CHECK(cublasSetMathMode(kcuda__ctx.blas,
                                      allow ? CUBLAS_TF32_TENSOR_OP_MATH
                                            : CUBLAS_DEFAULT_MATH));
}

int kcuda__fmt_ok(kern_format_t f, const char *op)
{
    if ((f.dtype == KERN_F32 || f.dtype == KERN_F16 || f.dtype == KERN_BF16) &&
        (f.layout == KERN_NCHW || f.layout == KERN_NHWC))
        return 1;
    kcuda__report(RT_EINVAL, __FILE__, __LINE__, op,
                  "unknown storage format (dtype or layout)");
    return 0;
}

extern "C" int kernels_cuda_weight_scratch(size_t count)
{
    kcuda__ctx_t *c = &kcuda__ctx;
    if (!kcuda__ready("kernels_cuda_weight_scratch"))
        return RT_EINVAL;
    if (count <= c->wscratch_count)
        return 0;
    cudaFree(c->wcast);
    cudaFree(c->wgrad);
    c->wcast = c->wgrad = NULL;
    c->wscratch_count = 0;
    /* 4 bytes an element: fp32 NHWC convolutions reorder their weights too. */
    if (RT_CUDA_CHECK(cudaMalloc(&c->wcast, count * sizeof(float))) ||
        RT_CUDA_CHECK(cudaMalloc(&c->wgrad, count * sizeof(float))))
        return RT_ECUDA;
    c->wscratch_count = count;
    return 0;
}

void *kcuda__wgrad(size_t count, const char *op)
{
    if (count <= kcuda__ctx.wscratch_count)
        return kcuda__ctx.wgrad;
    kcuda__report(RT_ERANGE, __FILE__, __LINE__, op,
                  "a layer's weights exceed kernels_cuda_weight_scratch()");
    return NULL;
}

extern "C" int kernels_cuda_synchronize(void)
{
    if (!kcuda__ready("kernels_cuda_synchronize"))
        return kcuda__ctx.error;
    RT_CUDA_CHECK(cudaStreamSynchronize(kcuda__ctx.stream));
    /* A fault inside a kernel shows up here, not at its launch. */
    RT_CUDA_CHECK(cudaGetLastError());
    return kcuda__ctx.error;
}

extern "C" void *kernels_cuda_buffer_alloc(size_t bytes)
{
    if (!kcuda__ready("kernels_cuda_buffer_alloc"))
        return NULL;
    void *p = NULL;
    /* cudaMalloc aligns to at least 256 bytes. */
    if (RT_CUDA_CHECK(cudaMalloc(&p, bytes ? bytes : 1)))
        return NULL;
    if (RT_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, kcuda__ctx.stream)) ||
        RT_CUDA_CHECK(cudaStreamSynchronize(kcuda__ctx.stream))) {
        cudaFree(p);
        return NULL;
    }
    return p;
}

extern "C" void kernels_cuda_buffer_free(void *ptr)
{
    if (!ptr)
        return;
    /* cudaFree waits for the device; the stream may still use ptr. */
    RT_CUDA_CHECK(cudaFree(ptr));
}

extern "C" int kernels_cuda_copy_to_device(void *dst, const void *src,
                                           size_t bytes)
{
    if (!kcuda__ready("kernels_cuda_copy_to_device"))
        return RT_EINVAL;
    if (bytes == 0)
        return 0;
    if (RT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                      kcuda__ctx.stream)) ||
        RT_CUDA_CHECK(cudaStreamSynchronize(kcuda__ctx.stream)))
        return RT_ECUDA;
    return 0;
}

extern "C" int kernels_cuda_copy_to_host(void *dst, const void *src,
                                         size_t bytes)
{
    if (!kcuda__ready("kernels_cuda_copy_to_host"))
        return RT_EINVAL;
    if (bytes == 0)
        return 0;
    if (RT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost,
                                      kcuda__ctx.stream)) ||
        RT_CUDA_CHECK(cudaStreamSynchronize(kcuda__ctx.stream)))
        return RT_ECUDA;
    return 0;
}

extern "C" void kernels_cuda_zero(void *dst, size_t bytes)
{
    if (!kcuda__ready("kernels_cuda_zero") || bytes == 0)
        return;
    RT_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, kcuda__ctx.stream));
}

extern "C" void kernels_cuda_copy_device(void *dst, const void *src,
                                         size_t bytes)
{
    if (!kcuda__ready("kernels_cuda_copy_device") || bytes == 0)
        return;
    RT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice,
                                  kcuda__ctx.stream));
}

extern "C" void kernels_cuda_copy_to_device_async(void *dst, const void *src,
                                                  size_t bytes)
{
    if (!kcuda__ready("kernels_cuda_copy_to_device_async") || bytes == 0)
        return;
    RT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice,
                                  kcuda__ctx.stream));
}

extern "C" void *kernels_cuda_host_alloc(size_t bytes)
{
    if (!kcuda__ready("kernels_cuda_host_alloc"))
        return NULL;
    void *p = NULL;
    if (RT_CUDA_CHECK(cudaMallocHost(&p, bytes ? bytes : 1)))
        return NULL;
    memset(p, 0, bytes);
    return p;
}

extern "C" void kernels_cuda_host_free(void *ptr)
{
    if (ptr)
        RT_CUDA_CHECK(cudaFreeHost(ptr));
}

extern "C" void *kernels_cuda_event_create(void)
{
    if (!kcuda__ready("kernels_cuda_event_create"))
        return NULL;
    cudaEvent_t e = NULL;
    if (RT_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming)))
        return NULL;
    return (void *)e;
}

extern "C" void kernels_cuda_event_record(void *event)
{
    if (kcuda__ready("kernels_cuda_event_record"))
        RT_CUDA_CHECK(cudaEventRecord((cudaEvent_t)event, kcuda__ctx.stream));
}

extern "C" int kernels_cuda_event_wait(void *event)
{
    if (!kcuda__ready("kernels_cuda_event_wait"))
        return RT_EINVAL;
    return RT_CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)event));
}

extern "C" void kernels_cuda_event_destroy(void *event)
{
    if (event)
        (void)cudaEventDestroy((cudaEvent_t)event);
}

/* C = beta * C for the K == 0 case (BLAS semantics: beta == 0 writes zeros
 * without reading C, so NaN in C does not survive). */
__global__ static void kcuda__scale_matrix(float *C, int M, int N, int ldc,
                                           float beta)
{
    size_t total = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        float *p = C + (i / N) * (size_t)ldc + i % N;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

/* Row-major C = A*B is column-major C^T = B^T * A^T, and a row-major matrix
 * read as column-major is its transpose: so swap the operands (and M, N) and
 * keep each one's own transpose flag. */
void kcuda__sgemm(int trans_a, int trans_b, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta,
                  float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        size_t total = (size_t)M * N;
        kcuda__scale_matrix<<<kcuda__blocks(total, KCUDA__THREADS),
                              KCUDA__THREADS, 0, kcuda__ctx.stream>>>(
            C, M, N, ldc, beta);
        KCUDA__LAUNCHED("kcuda__scale_matrix");
        return;
    }
    RT_CUBLAS_CHECK(cublasSgemm(kcuda__ctx.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K,
                                &alpha, B, ldb, A, lda, &beta, C, ldc));
}

void kcuda__sgemm_batched(int trans_a, int trans_b, int M, int N, int K,
                          float alpha, const float *A, int lda,
                          long long stride_a, const float *B, int ldb,
                          long long stride_b, float beta, float *C, int ldc,
                          long long stride_c, int batch)
{
    if (M <= 0 || N <= 0 || K <= 0 || batch <= 0)
        return;
    RT_CUBLAS_CHECK(cublasSgemmStridedBatched(
        kcuda__ctx.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
        trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, ldb, stride_b,
        A, lda, stride_a, &beta, C, ldc, stride_c, batch));
}

static cudaDataType_t kcuda__data_type(kern_dtype_t t)
{
    return t == KERN_F16 ? CUDA_R_16F : t == KERN_BF16 ? CUDA_R_16BF : CUDA_R_32F;
}

void kcuda__gemm_ex(int trans_a, int trans_b, int M, int N, int K,
                    const void *A, kern_dtype_t ta, int lda, const void *B,
                    kern_dtype_t tb, int ldb, float beta, void *C,
                    kern_dtype_t tc, int ldc)
{
    if (M <= 0 || N <= 0 || K <= 0)
        return;
    float alpha = 1.0f;
    /* Operands swapped as in kcuda__sgemm (row-major as column-major). */
    RT_CUBLAS_CHECK(cublasGemmEx(
        kcuda__ctx.blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
        trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B,
        kcuda__data_type(tb), ldb, A, kcuda__data_type(ta), lda, &beta, C,
        kcuda__data_type(tc), ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}
