/* CPU emulation of the CUDA runtime and cuBLAS subsets that kernels/cuda
 * uses (declarations and the execution model: cuda_runtime.h beside this).
 *
 * Device memory is host memory with guard bytes on both sides of every
 * buffer; the guards of all live buffers are checked at each stream
 * synchronisation and at cudaFree, so a kernel writing out of bounds fails
 * the test that ran it. "The device" has 2 multiprocessors, so grid-stride
 * loops sized from the multiprocessor count wrap around. */
#include "cublas_v2.h"
#include "cuda_bf16.h"
#include "cuda_fp16.h"
#include "cuda_runtime.h"
#include "emu_internal.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include <atomic>
#include <map>
#include <mutex>
#include <vector>

namespace emu {
dim3 thread_idx, block_idx, block_dim, grid_dim;
}

static cudaError_t emu_last_error = cudaSuccess;

static void emu_fail(cudaError_t e, const char *what)
{
    fprintf(stderr, "cuda-emu: %s\n", what);
    if (emu_last_error == cudaSuccess)
        emu_last_error = e;
}

/* ---- fibers: one per thread of the block being run ------------------------
 * On x86-64 a fiber switch is six register pushes and a stack swap
 * (emu_switch below); glibc's swapcontext() also makes a signal-mask system
 * call per switch, which made a block reduction of 1024 threads cost
 * milliseconds. Elsewhere ucontext is used. */

enum { FIBER_READY, FIBER_AT_BARRIER, FIBER_DONE };

#define EMU_STACK_BYTES ((size_t)64 << 10)

typedef struct {
#if defined(__x86_64__)
    void *sp;
#else
    ucontext_t ctx;
#endif
    char *stack;
    int state;
    dim3 tid;
} emu_fiber_t;

static std::vector<emu_fiber_t> fibers;
static int current = -1; /* fiber running, -1: scheduler or plain calls */
static const std::function<void()> *body_now;
static bool barrier_seen;

#if defined(__x86_64__)
/* Saves the callee-saved registers on the current stack, stores the stack
 * pointer in *from, switches to `to` and restores the registers found there
 * (System V ABI: everything else is caller-saved). */
extern "C" void emu_switch(void **from, void *to);
__asm__(".text\n"
        ".globl emu_switch\n"
        ".type emu_switch, @function\n"
        "emu_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size emu_switch, .-emu_switch\n");

static void *scheduler_sp;

static void to_scheduler(void)
{
    emu_switch(&fibers[current].sp, scheduler_sp);
}

static void to_fiber(size_t i)
{
    emu_switch(&scheduler_sp, fibers[i].sp);
}

[[noreturn]] static void fiber_entry(void)
{
    (*body_now)();
    fibers[current].state = FIBER_DONE;
    to_scheduler();
    abort(); /* a finished fiber is never resumed */
}

static void fiber_prepare(emu_fiber_t *f)
{
    /* A stack that "returns" into fiber_entry with the alignment of a
     * called function (rsp = 8 mod 16), below six zeroed registers. */
    uintptr_t top = ((uintptr_t)(f->stack + EMU_STACK_BYTES)) & ~(uintptr_t)15;
    void **sp = (void **)(top - 8);
    *--sp = (void *)fiber_entry;
    for (int i = 0; i < 6; i++)
        *--sp = nullptr;
    f->sp = sp;
}
#else
static ucontext_t scheduler;

static void to_scheduler(void)
{
    swapcontext(&fibers[current].ctx, &scheduler);
}

static void to_fiber(size_t i)
{
    swapcontext(&scheduler, &fibers[i].ctx);
}

static void fiber_main(void)
{
    (*body_now)();
    fibers[current].state = FIBER_DONE;
    /* Returning resumes uc_link: the scheduler. */
}

static void fiber_prepare(emu_fiber_t *f)
{
    getcontext(&f->ctx);
    f->ctx.uc_stack.ss_sp = f->stack;
    f->ctx.uc_stack.ss_size = EMU_STACK_BYTES;
    f->ctx.uc_link = &scheduler;
    makecontext(&f->ctx, fiber_main, 0);
}
#endif

void emu::syncthreads()
{
    if (current < 0) {
        emu_fail(cudaErrorLaunchFailure,
                 "__syncthreads() in a kernel whose first block never waited "
                 "at a barrier (barriers must not depend on the block)");
        return;
    }
    barrier_seen = true;
    fibers[current].state = FIBER_AT_BARRIER;
    to_scheduler();
}

/* Fiber stacks are kept from launch to launch (fresh ones would be faulted
 * in again every time) and freed at exit, before the leak checker looks. */
static void free_fibers(void)
{
    for (emu_fiber_t &f : fibers)
        free(f.stack);
    fibers.clear();
}

static void run_block_fibers(const std::vector<dim3> &tids)
{
    size_t count = tids.size();
    if (fibers.empty())
        atexit(free_fibers);
    if (fibers.size() < count)
        fibers.resize(count);
    for (size_t i = 0; i < count; i++) {
        emu_fiber_t *f = &fibers[i];
        if (!f->stack)
            f->stack = (char *)malloc(EMU_STACK_BYTES);
        fiber_prepare(f);
        f->state = FIBER_READY;
        f->tid = tids[i];
    }
    for (;;) {
        for (size_t i = 0; i < count; i++) {
            if (fibers[i].state != FIBER_READY)
                continue;
            current = (int)i;
            emu::thread_idx = fibers[i].tid;
            to_fiber(i);
            current = -1;
        }
        size_t waiting = 0, done = 0;
        for (size_t i = 0; i < count; i++) {
            waiting += fibers[i].state == FIBER_AT_BARRIER;
            done += fibers[i].state == FIBER_DONE;
        }
        if (waiting == 0)
            return;
        if (done > 0)
            emu_fail(cudaErrorLaunchFailure,
                     "__syncthreads() not reached by every thread of a block");
        for (size_t i = 0; i < count; i++)
            if (fibers[i].state == FIBER_AT_BARRIER)
                fibers[i].state = FIBER_READY;
    }
}

void emu::run(dim3 grid, dim3 block, const std::function<void()> &body)
{
    unsigned long long threads = (unsigned long long)block.x * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu ||
        grid.y > 65535 || grid.z > 65535 || threads == 0 || threads > 1024 ||
        block.z > 64) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "invalid launch configuration grid (%u, %u, %u) block (%u, "
                 "%u, %u)",
                 grid.x, grid.y, grid.z, block.x, block.y, block.z);
        emu_fail(cudaErrorInvalidConfiguration, msg);
        return;
    }
    std::vector<dim3> tids;
    for (unsigned z = 0; z < block.z; z++)
        for (unsigned y = 0; y < block.y; y++)
            for (unsigned x = 0; x < block.x; x++)
                tids.push_back(dim3(x, y, z));
    emu::block_dim = block;
    emu::grid_dim = grid;
    body_now = &body;
    barrier_seen = false;
    bool first = true, use_fibers = true;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                emu::block_idx = dim3(bx, by, bz);
                if (use_fibers) {
                    run_block_fibers(tids);
                } else {
                    for (const dim3 &t : tids) {
                        emu::thread_idx = t;
                        body();
                    }
                }
                if (first && !barrier_seen)
                    use_fibers = false;
                first = false;
            }
    body_now = nullptr;
}

/* ---- memory with guards --------------------------------------------------- */

#define EMU_GUARD 256
#define EMU_GUARD_BYTE 0xA5

/* user pointer -> bytes. Locked: the collectives' progress thread copies
 * (and checks copies) while the main thread runs kernels. */
static std::map<char *, size_t> live;
static std::recursive_mutex live_mu;

int cuda_emu_is_device(const void *ptr, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lock(live_mu);
    char *p = (char *)ptr;
    auto it = live.upper_bound(p);
    if (it == live.begin())
        return 0;
    --it;
    return p >= it->first && p + bytes <= it->first + it->second;
}

/* Whether [ptr, ptr + bytes) touches any device buffer (or its guards). */
static bool touches_device(const void *ptr, size_t bytes)
{
    std::lock_guard<std::recursive_mutex> lock(live_mu);
    char *p = (char *)ptr;
    /* Buffers do not overlap: only the last one starting below the end of
     * the range (guards included) can reach into it. */
    auto it = live.lower_bound(p + bytes + EMU_GUARD);
    if (it == live.begin())
        return false;
    --it;
    return it->first + it->second + EMU_GUARD > p;
}

static bool guards_intact(char *p, size_t bytes)
{
    for (size_t i = 0; i < EMU_GUARD; i++)
        if ((unsigned char)p[-1 - (long)i] != EMU_GUARD_BYTE ||
            (unsigned char)p[bytes + i] != EMU_GUARD_BYTE)
            return false;
    return true;
}

static bool check_all_guards(void)
{
    std::lock_guard<std::recursive_mutex> lock(live_mu);
    bool ok = true;
    for (auto &kv : live)
        if (!guards_intact(kv.first, kv.second)) {
            char msg[160];
            snprintf(msg, sizeof msg,
                     "a kernel wrote outside the device buffer %p (%zu bytes)",
                     (void *)kv.first, kv.second);
            emu_fail(cudaErrorLaunchFailure, msg);
            ok = false;
        }
    return ok;
}

cudaError_t cudaMalloc(void **ptr, size_t bytes)
{
    size_t rounded = (bytes + 255) & ~(size_t)255;
    char *base = (char *)aligned_alloc(256, rounded + 2 * EMU_GUARD);
    if (!base)
        return cudaErrorMemoryAllocation;
    char *p = base + EMU_GUARD;
    memset(base, EMU_GUARD_BYTE, EMU_GUARD);
    /* Uninitialised device memory: a recognisable NaN pattern. */
    memset(p, 0xFF, rounded);
    memset(p + bytes, EMU_GUARD_BYTE, rounded - bytes + EMU_GUARD);
    std::lock_guard<std::recursive_mutex> lock(live_mu);
    live[p] = bytes;
    *ptr = p;
    return cudaSuccess;
}

cudaError_t cudaFree(void *ptr)
{
    if (!ptr)
        return cudaSuccess;
    std::lock_guard<std::recursive_mutex> lock(live_mu);
    auto it = live.find((char *)ptr);
    if (it == live.end())
        return cudaErrorInvalidValue;
    bool ok = guards_intact(it->first, it->second);
    if (!ok)
        emu_fail(cudaErrorLaunchFailure,
                 "a kernel wrote outside a device buffer (found at cudaFree)");
    live.erase(it);
    free((char *)ptr - EMU_GUARD);
    return ok ? cudaSuccess : cudaErrorLaunchFailure;
}

cudaError_t cudaMallocHost(void **ptr, size_t bytes)
{
    *ptr = calloc(1, bytes ? bytes : 1);
    return *ptr ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFreeHost(void *ptr)
{
    free(ptr);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *ptr, int value, size_t bytes, cudaStream_t)
{
    memset(ptr, value, bytes);
    return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes,
                            cudaMemcpyKind kind, cudaStream_t)
{
    if (bytes == 0)
        return cudaSuccess;
    bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
    bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
    if ((dst_dev ? !cuda_emu_is_device(dst, bytes) : touches_device(dst, bytes)) ||
        (src_dev ? !cuda_emu_is_device(src, bytes) : touches_device(src, bytes))) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "cudaMemcpyAsync kind %d: %p <- %p (%zu bytes): a side is not "
                 "the memory its kind says", (int)kind, dst, (const void *)src, bytes);
        emu_fail(cudaErrorInvalidValue, msg);
        return cudaErrorInvalidValue;
    }
    memmove(dst, src, bytes);
    return cudaSuccess;
}

/* ---- runtime -------------------------------------------------------------- */

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorNotReady:
        return "device not ready";
    default:
        return "unspecified launch failure";
    }
}

cudaError_t cudaGetLastError(void)
{
    cudaError_t e = emu_last_error;
    emu_last_error = cudaSuccess;
    return e;
}

static int emu_device_count(void)
{
    const char *env = getenv("CUDA_EMU_DEVICES");
    int n = env ? atoi(env) : 1;
    return n >= 0 && n <= 64 ? n : 1;
}

static thread_local int emu_device;

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = emu_device_count();
    return *count > 0 ? cudaSuccess : cudaErrorNoDevice;
}

cudaError_t cudaSetDevice(int device)
{
    if (device < 0 || device >= emu_device_count())
        return cudaErrorInvalidDevice;
    emu_device = device;
    return cudaSuccess;
}

cudaError_t cudaGetDevice(int *device)
{
    *device = emu_device;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr, int)
{
    *value = 2;
    return cudaSuccess;
}

/* A stream is idle except while held (cuda_emu_stream_hold: the NCCL
 * emulation's hung collective): then an event recorded on it stays
 * unfinished until the hold ends, as behind a kernel that never returns. */
struct emu_stream {
    std::atomic<int> held;
};

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned)
{
    *stream = new emu_stream();
    (*stream)->held = 0;
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    delete stream;
    return cudaSuccess;
}

void cuda_emu_stream_hold(cudaStream_t stream, int held)
{
    if (stream)
        stream->held = held;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    if (stream && stream->held) {
        emu_fail(cudaErrorLaunchFailure, "cudaStreamSynchronize on a stream whose work "
                                         "never finishes (a hung collective): a real "
                                         "program would block here forever");
        return cudaErrorLaunchFailure;
    }
    /* Work ran at launch; report what a GPU would report here. */
    if (!check_all_guards())
        return cudaErrorLaunchFailure;
    return cudaSuccess;
}

cudaError_t cudaStreamQuery(cudaStream_t stream)
{
    return stream && stream->held ? cudaErrorNotReady : cudaSuccess;
}

/* Work is done when it is queued, so an event completes when recorded,
 * unless its stream is held. */
struct emu_event {
    std::atomic<emu_stream *> behind; /* a held stream it waits for, or NULL */
};

cudaError_t cudaEventCreateWithFlags(cudaEvent_t *event, unsigned)
{
    *event = new emu_event();
    (*event)->behind = nullptr;
    return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event)
{
    delete event;
    return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream)
{
    if (!event)
        return cudaErrorInvalidValue;
    event->behind = stream && stream->held ? stream : nullptr;
    return cudaSuccess;
}

static bool event_pending(cudaEvent_t event)
{
    emu_stream *s = event->behind;
    return s && s->held;
}

cudaError_t cudaEventQuery(cudaEvent_t event)
{
    if (!event)
        return cudaErrorInvalidValue;
    return event_pending(event) ? cudaErrorNotReady : cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event)
{
    if (!event)
        return cudaErrorInvalidValue;
    if (event_pending(event)) {
        emu_fail(cudaErrorLaunchFailure, "cudaEventSynchronize on work that never "
                                         "finishes (a hung collective)");
        return cudaErrorLaunchFailure;
    }
    return cudaSuccess;
}

/* Later work on the waiting stream runs at once here (the emulation does
 * not model one stream blocked behind another). */
cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned)
{
    return event ? cudaSuccess : cudaErrorInvalidValue;
}

/* ---- cuBLAS --------------------------------------------------------------- */

struct emu_blas {
    cublasMath_t math;
};

const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS:
        return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED:
        return "the library was not initialized";
    default:
        return "an invalid value was used as an argument";
    }
}

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    *handle = new emu_blas{CUBLAS_DEFAULT_MATH};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t)
{
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void *, size_t)
{
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    h->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

float emu_to_tf32(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u)
        u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&v, &u, sizeof v);
    return v;
}

static cublasStatus_t gemm_one(cublasHandle_t h, cublasOperation_t ta,
                               cublasOperation_t tb, int m, int n, int k,
                               float alpha, const float *A, int lda,
                               const float *B, int ldb, float beta, float *C,
                               int ldc)
{
    if (m == 0 || n == 0)
        return CUBLAS_STATUS_SUCCESS;
    if (k == 0) {
        for (int j = 0; j < n; j++)
            for (int i = 0; i < m; i++) {
                float *c = C + (size_t)j * ldc + i;
                *c = beta == 0.0f ? 0.0f : beta * *c;
            }
        return CUBLAS_STATUS_SUCCESS;
    }
    std::vector<float> a32, b32;
    if (h->math == CUBLAS_TF32_TENSOR_OP_MATH) {
        a32.assign(A, A + (size_t)lda * (ta == CUBLAS_OP_N ? k : m));
        b32.assign(B, B + (size_t)ldb * (tb == CUBLAS_OP_N ? n : k));
        for (float &v : a32)
            v = emu_to_tf32(v);
        for (float &v : b32)
            v = emu_to_tf32(v);
        A = a32.data();
        B = b32.data();
    }
    cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, alpha,
                A, lda, B, ldb, beta, C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

static bool gemm_args_ok(cublasOperation_t ta, cublasOperation_t tb, int m,
                         int n, int k, int lda, int ldb, int ldc)
{
    int rows_a = ta == CUBLAS_OP_N ? m : k;
    int rows_b = tb == CUBLAS_OP_N ? k : n;
    return m >= 0 && n >= 0 && k >= 0 && lda >= (rows_a > 1 ? rows_a : 1) &&
           ldb >= (rows_b > 1 ? rows_b : 1) && ldc >= (m > 1 ? m : 1);
}

cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta,
                           cublasOperation_t tb, int m, int n, int k,
                           const float *alpha, const float *A, int lda,
                           const float *B, int ldb, const float *beta,
                           float *C, int ldc)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!gemm_args_ok(ta, tb, m, n, k, lda, ldb, ldc))
        return CUBLAS_STATUS_INVALID_VALUE;
    return gemm_one(h, ta, tb, m, n, k, *alpha, A, lda, B, ldb, *beta, C, ldc);
}

cublasStatus_t cublasSgemmStridedBatched(
    cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
    int k, const float *alpha, const float *A, int lda, long long stride_a,
    const float *B, int ldb, long long stride_b, const float *beta, float *C,
    int ldc, long long stride_c, int batch)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!gemm_args_ok(ta, tb, m, n, k, lda, ldb, ldc) || batch < 0)
        return CUBLAS_STATUS_INVALID_VALUE;
    for (int i = 0; i < batch; i++)
        gemm_one(h, ta, tb, m, n, k, *alpha, A + i * stride_a, lda,
                 B + i * stride_b, ldb, *beta, C + i * stride_c, ldc);
    return CUBLAS_STATUS_SUCCESS;
}

static bool ex_type_ok(cudaDataType_t t)
{
    return t == CUDA_R_32F || t == CUDA_R_16F || t == CUDA_R_16BF;
}

float emu_load(emu_elem_t t, const void *p, size_t i)
{
    if (t == EMU_F16)
        return __half2float(((const __half *)p)[i]);
    if (t == EMU_BF16)
        return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    return ((const float *)p)[i];
}

void emu_store(emu_elem_t t, void *p, size_t i, float v)
{
    if (t == EMU_F16)
        ((__half *)p)[i] = __float2half_rn(v);
    else if (t == EMU_BF16)
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v);
    else
        ((float *)p)[i] = v;
}

static emu_elem_t ex_elem(cudaDataType_t t)
{
    return t == CUDA_R_16F ? EMU_F16 : t == CUDA_R_16BF ? EMU_BF16 : EMU_F32;
}

static float ex_load(cudaDataType_t t, const void *p, size_t i)
{
    return emu_load(ex_elem(t), p, i);
}

/* A (column-major, ld columns of `rows`) as a dense fp32 copy. */
static std::vector<float> ex_dense(cudaDataType_t t, const void *p, int rows,
                                   int cols, int ld)
{
    std::vector<float> out((size_t)rows * cols);
    for (int j = 0; j < cols; j++)
        for (int i = 0; i < rows; i++)
            out[(size_t)j * rows + i] = ex_load(t, p, (size_t)j * ld + i);
    return out;
}

cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta,
                            cublasOperation_t tb, int m, int n, int k,
                            const void *alpha, const void *A,
                            cudaDataType_t Atype, int lda, const void *B,
                            cudaDataType_t Btype, int ldb, const void *beta,
                            void *C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    /* cuBLAS takes A and B of one type, and C of that type or fp32. */
    if (!gemm_args_ok(ta, tb, m, n, k, lda, ldb, ldc) || compute != CUBLAS_COMPUTE_32F ||
        !ex_type_ok(Atype) || Atype != Btype || !ex_type_ok(Ctype) ||
        (Ctype != Atype && Ctype != CUDA_R_32F))
        return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0)
        return CUBLAS_STATUS_SUCCESS;
    int rows_a = ta == CUBLAS_OP_N ? m : k, rows_b = tb == CUBLAS_OP_N ? k : n;
    std::vector<float> a = ex_dense(Atype, A, rows_a, ta == CUBLAS_OP_N ? k : m, lda);
    std::vector<float> b = ex_dense(Btype, B, rows_b, tb == CUBLAS_OP_N ? n : k, ldb);
    std::vector<float> c((size_t)m * n);
    float al = *(const float *)alpha, be = *(const float *)beta;
    if (k > 0)
        cblas_sgemm(CblasColMajor, ta == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                    tb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, m, n, k, 1.0f,
                    a.data(), rows_a, b.data(), rows_b, 0.0f, c.data(), m);
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            size_t at = (size_t)j * ldc + i;
            float v = al * c[(size_t)j * m + i];
            if (be != 0.0f)
                v += be * ex_load(Ctype, C, at);
            emu_store(ex_elem(Ctype), C, at, v);
        }
    return CUBLAS_STATUS_SUCCESS;
}
