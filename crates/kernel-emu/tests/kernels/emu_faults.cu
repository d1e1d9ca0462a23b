// emu_faults.cu — test-only kernels with deliberate bugs (and their correct twins), so the tests
// can prove the emulator catches what a GPU would silently get wrong (tests/faults.rs).
#include "rt_common.cuh"

// Classic shared-memory tree reduction, correct: out[block] = sum of the block's 128 inputs.
extern "C" __global__ void fault_block_sum_ok(const float* in, float* out) {
    __shared__ float s[128];
    const unsigned int t = threadIdx.x;
    s[t] = in[blockIdx.x * blockDim.x + t];
    __syncthreads();
    for (unsigned int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// The same reduction with the barrier after the initial store missing: a thread may read
// s[t + stride] before its owner wrote it.
extern "C" __global__ void fault_block_sum_racy(const float* in, float* out) {
    __shared__ float s[128];
    const unsigned int t = threadIdx.x;
    s[t] = in[blockIdx.x * blockDim.x + t];
    for (unsigned int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (t < stride) s[t] += s[t + stride];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

// Two block reductions in a row through one scratch array, the pattern of rt_block_sum. With
// `lead_barrier` = 0 the barrier that protects the scratch from the second reduction's writes is
// skipped: a warp that runs ahead overwrites scratch[w] before a slower warp has read the first
// reduction's value from it. Every thread writes both sums, so any thread's wrong read shows.
__device__ float fault_scratch_sum(float v, float* scratch, int lead_barrier) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = rt_warp_sum(v);
    if (lead_barrier) __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return rt_warp_sum(v);
}

extern "C" __global__ void fault_scratch_reuse(const float* in, float* out, int lead_barrier) {
    __shared__ float scratch[32];
    const long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const float a = fault_scratch_sum(in[i], scratch, lead_barrier);
    const float b = fault_scratch_sum(2.0f * in[i], scratch, lead_barrier);
    out[2 * i] = a;
    out[2 * i + 1] = b;
}

// Off-by-one bound: writes y[n].
extern "C" __global__ void fault_oob_write(float* y, int n) {
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i <= n) y[i] = 1.0f;
}

// Negative index: writes y[-1] from thread 0.
extern "C" __global__ void fault_underflow_write(float* y, int n) {
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) y[i] = 2.0f;
    if (i == 0) y[-1] = 3.0f;
}

// Early return before a barrier the other threads still reach.
extern "C" __global__ void fault_exit_before_barrier(float* y, int n) {
    __shared__ float s[64];
    const int i = (int)threadIdx.x;
    if (i >= n) return;
    s[i] = (float)i;
    __syncthreads();
    y[i] = s[n - 1 - i];
}

// Early return, then a full-mask warp reduction: the mask names lanes that have exited.
extern "C" __global__ void fault_shfl_exited_lane(const float* x, float* y, int n) {
    const int i = (int)threadIdx.x;
    if (i >= n) return;
    const float s = rt_warp_sum(x[i]);
    if (i == 0) y[0] = s;
}

// A shuffle whose mask does not contain the calling lane.
extern "C" __global__ void fault_shfl_not_in_own_mask(float* y) {
    y[threadIdx.x] = __shfl_sync(0x1u, 1.0f, 0);
}

// Lanes 0..15 shuffle with a half mask, but read lane 20, which is outside it.
extern "C" __global__ void fault_shfl_source_outside_mask(float* y) {
    if (threadIdx.x < 16) y[threadIdx.x] = __shfl_sync(0x0000ffffu, 1.0f, 20);
}

// Half the block waits at __syncthreads, the other half at a full-mask ballot: a deadlock on a GPU.
extern "C" __global__ void fault_barrier_vs_collective(unsigned int* y) {
    if (threadIdx.x % 32 < 16) __syncthreads();
    else y[threadIdx.x] = __ballot_sync(RT_FULL_MASK, 1);
}

// __trap() aborts the launch with an error.
extern "C" __global__ void fault_trap(float* y) {
    if (threadIdx.x == 3) __trap();
    y[threadIdx.x] = 1.0f;
}

// Overruns a static __shared__ array by one element: caught by the AddressSanitizer build only
// (tests/faults.rs runs it when RAGTUNE_EMU_SANITIZE=address is set at test time).
extern "C" __global__ void fault_shared_overrun(float* y, int n) {
    __shared__ float s[32];
    const int i = (int)threadIdx.x;
    s[i + n] = 1.0f;
    __syncthreads();
    y[i] = s[i];
}

// Overruns dynamic shared memory by one element (launch it with blockDim.x floats): caught by the
// AddressSanitizer build as a heap-buffer-overflow.
extern "C" __global__ void fault_dynamic_shared_overrun(float* y) {
    RT_DYNAMIC_SHARED(float, buf);
    buf[threadIdx.x + 1] = 1.0f;
    __syncthreads();
    y[threadIdx.x] = buf[threadIdx.x];
}
