/* CPU emulation of the CUDA runtime subset kernels/cuda uses, for the
 * gpu-emu test suite: the kernels/cuda .cu files are compiled by the host C++
 * compiler against this header (launches rewritten by translate.py) and run
 * on the CPU, so their indexing, reductions and chunking are tested on every
 * build that has CUDA, GPU or not. It is a logic check, not a GPU: no warps,
 * no memory model, one block at a time.
 *
 * Execution model: a launch runs its blocks one after another; a block's
 * threads run as fibers (ucontext) on one OS thread, switching only at
 * __syncthreads(), so __shared__ (a function-static here) is shared by the
 * block exactly as on a GPU. A barrier that not every live thread of the
 * block reaches is reported as an error, as is a launch with a configuration
 * a GPU would refuse. A kernel whose first block never waits at a barrier
 * runs its other blocks' threads as plain calls (fast), and a barrier met in
 * that mode is reported. */
#ifndef RINGTRAIN_CUDA_EMU_RUNTIME_H
#define RINGTRAIN_CUDA_EMU_RUNTIME_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>

#include "cuda_runtime_api.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static

struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1)
        : x(x_), y(y_), z(z_) {}
};


namespace emu {
extern dim3 thread_idx, block_idx, block_dim, grid_dim;
void syncthreads();
void run(dim3 grid, dim3 block, const std::function<void()> &body);

template <typename... P> struct launcher {
    dim3 grid, block;
    void (*kernel)(P...);
    template <typename... A> void operator()(A... args) const
    {
        void (*k)(P...) = kernel;
        run(grid, block, [=]() { k(args...); });
    }
};

template <typename... P, typename G, typename B>
launcher<P...> launch(void (*kernel)(P...), G grid, B block, size_t = 0,
                      cudaStream_t = nullptr)
{
    return launcher<P...>{dim3(grid), dim3(block), kernel};
}
} // namespace emu

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)
#define __syncthreads() ::emu::syncthreads()

/* One OS thread runs everything, so atomics are plain read-modify-writes. */
static inline float atomicAdd(float *p, float v)
{
    float old = *p;
    *p = old + v;
    return old;
}
static inline int atomicAdd(int *p, int v)
{
    int old = *p;
    *p = old + v;
    return old;
}
static inline float __fmul_rn(float a, float b)
{
    return a * b;
}

template <typename T> static inline cudaError_t cudaMalloc(T **ptr, size_t bytes)
{
    return cudaMalloc((void **)ptr, bytes);
}
template <typename T>
static inline cudaError_t cudaMallocHost(T **ptr, size_t bytes)
{
    return cudaMallocHost((void **)ptr, bytes);
}

#endif
