// Test-only kernels for the emulator's strictness (tests/strict.rs): shared memory poisoned per
// block, the hardware's shared-memory limits, and blocks in a shuffled order.
#include "rt_common.cuh"

// Half the block writes s[], everyone reads it: the unwritten half must read as poison (0xFF
// bytes = NaN), not zeros.
extern "C" __global__ void strict_read_unwritten(float* y) {
    __shared__ float s[64];
    const unsigned t = threadIdx.x;
    if (t < 32) s[t] = 1.0f;
    __syncthreads();
    y[blockIdx.x * 64 + t] = s[t];
}

// Only block 0 writes carry[0]; every block reads it. Relying on a previous block's shared
// memory is wrong on a GPU (blocks run anywhere, in any order): every other block sees poison.
extern "C" __global__ void strict_carry_over(int* y) {
    __shared__ int carry[1];
    if (blockIdx.x == 0 && threadIdx.x == 0) carry[0] = 42;
    __syncthreads();
    if (threadIdx.x == 0) y[blockIdx.x] = carry[0];
}

// Exactly 48 KiB of static shared memory: allowed on every GPU.
extern "C" __global__ void strict_static_48k(float* y) {
    __shared__ float s[12288];
    for (unsigned i = threadIdx.x; i < 12288; i += blockDim.x) s[i] = (float)i;
    __syncthreads();
    y[threadIdx.x] = s[12287 - threadIdx.x];
}

// 52 KiB of static shared memory: ptxas refuses it ("uses too much shared data").
extern "C" __global__ void strict_static_52k(float* y) {
    __shared__ float s[13312];
    for (unsigned i = threadIdx.x; i < 13312; i += blockDim.x) s[i] = (float)i;
    __syncthreads();
    y[threadIdx.x] = s[13311 - threadIdx.x];
}

// Dynamic shared memory of any size: y[t] = the last float of the launch's dynamic shared memory
// (written by thread 0), so a test sees the whole requested size was usable.
extern "C" __global__ void strict_dynamic(float* y, int nfloats) {
    RT_DYNAMIC_SHARED(float, buf);
    if (threadIdx.x == 0) buf[nfloats - 1] = 7.0f;
    __syncthreads();
    y[threadIdx.x] = buf[nfloats - 1];
}

// Records the order blocks ran in: order[k] = the linear index of the k-th block to run.
extern "C" __global__ void strict_block_order(unsigned* order, unsigned* counter) {
    if (threadIdx.x == 0) {
        const unsigned k = atomicAdd(counter, 1u);
        order[k] = blockIdx.x + gridDim.x * blockIdx.y;
    }
}
