// emu_semantics.cu — test-only kernels that exercise one CUDA primitive each, so the emulator's
// semantics can be checked against hand-computed expectations (tests/semantics.rs).
#include <cuda_bf16.h>  // resolves to emu/include/ stand-ins under RAGTUNE_EMU
#include <math_constants.h>

#include "rt_common.cuh"

__device__ __forceinline__ unsigned int linear_tid() {
    return threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y;
}

// out[t] = the shuffle's result for thread t. mode: 0 idx, 1 up, 2 down, 3 xor.
extern "C" __global__ void emu_shfl(const int* in, int* out, int mode, int arg, int width) {
    const unsigned int t = linear_tid();
    const int v = in[t];
    int r;
    switch (mode) {
        case 0: r = __shfl_sync(RT_FULL_MASK, v, arg, width); break;
        case 1: r = __shfl_up_sync(RT_FULL_MASK, v, (unsigned)arg, width); break;
        case 2: r = __shfl_down_sync(RT_FULL_MASK, v, (unsigned)arg, width); break;
        default: r = __shfl_xor_sync(RT_FULL_MASK, v, arg, width); break;
    }
    out[t] = r;
}

// Each lane reads lane (lane * 7 + 3) % 32: per-lane source lanes, and a double (8-byte) payload.
extern "C" __global__ void emu_shfl_permute(const double* in, double* out) {
    const unsigned int t = linear_tid();
    out[t] = __shfl_sync(RT_FULL_MASK, in[t], (int)((t % 32) * 7 + 3) % 32);
}

// Half-warps shuffle under their own masks (divergent but well-formed).
extern "C" __global__ void emu_shfl_half_masks(const float* in, float* out) {
    const unsigned int t = linear_tid(), lane = t % 32;
    if (lane < 16) out[t] = __shfl_xor_sync(0x0000ffffu, in[t], 1);
    else out[t] = __shfl_down_sync(0xffff0000u, in[t], 2);
}

// out[5w+0..4] = ballot, any, all, __activemask (converged), __activemask inside a branch only
// lane 0 takes, of warp w; pred[t] is thread t's predicate. Threads >= n return at once.
extern "C" __global__ void emu_vote(const int* pred, unsigned int* out, int n) {
    const unsigned int t = linear_tid();
    if ((int)t >= n) return;
    const unsigned int active = __activemask();
    const unsigned int b = __ballot_sync(active, pred[t]);
    const int any = __any_sync(active, pred[t]);
    const int all = __all_sync(active, pred[t]);
    __syncwarp(active);
    if (t % 32 == 0) {
        out[5 * (t / 32) + 0] = b;
        out[5 * (t / 32) + 1] = (unsigned)any;
        out[5 * (t / 32) + 2] = (unsigned)all;
        out[5 * (t / 32) + 3] = active;
        out[5 * (t / 32) + 4] = __activemask();
    }
}

// out[3t..3t+2] = __match_any_sync, __reduce_add_sync, __reduce_max_sync (signed) of in[t].
extern "C" __global__ void emu_match_reduce(const int* in, unsigned int* out) {
    const unsigned int t = linear_tid();
    out[3 * t + 0] = __match_any_sync(RT_FULL_MASK, in[t]);
    out[3 * t + 1] = (unsigned)__reduce_add_sync(RT_FULL_MASK, in[t]);
    out[3 * t + 2] = (unsigned)__reduce_max_sync(RT_FULL_MASK, in[t]);
}

// out[t] = (__syncthreads_count, __syncthreads_and, __syncthreads_or) of pred over the block.
extern "C" __global__ void emu_sync_votes(const int* pred, int* out) {
    const unsigned int t = linear_tid();
    const int c = __syncthreads_count(pred[t]);
    const int a = __syncthreads_and(pred[t]);
    const int o = __syncthreads_or(pred[t]);
    out[3 * t] = c;
    out[3 * t + 1] = a;
    out[3 * t + 2] = o;
}

// Every thread records its built-ins: 12 ints per thread of the whole grid.
extern "C" __global__ void emu_builtins(int* out) {
    const unsigned int block = blockIdx.x + blockIdx.y * gridDim.x + blockIdx.z * gridDim.x * gridDim.y;
    const unsigned int t = block * blockDim.x * blockDim.y * blockDim.z + linear_tid();
    int* o = out + 12 * t;
    o[0] = threadIdx.x; o[1] = threadIdx.y; o[2] = threadIdx.z;
    o[3] = blockIdx.x; o[4] = blockIdx.y; o[5] = blockIdx.z;
    o[6] = blockDim.x; o[7] = blockDim.y; o[8] = blockDim.z;
    o[9] = gridDim.x; o[10] = gridDim.y; o[11] = warpSize;
}

// Dynamic shared memory: fresh contents (as u32) per block, then a block-reversal through it.
extern "C" __global__ void emu_dynamic_shared(const float* in, float* out, unsigned int* fresh) {
    RT_DYNAMIC_SHARED(float, buf);
    const unsigned int t = threadIdx.x, n = blockDim.x, base = blockIdx.x * n;
    fresh[base + t] = __float_as_uint(buf[t]);
    __syncthreads();
    buf[t] = in[base + t];
    __syncthreads();
    out[base + t] = buf[n - 1 - t];
}

// Atomics from every thread of every block: counters[0] += 1, [1] = max(tid), [2] = min, float sum.
extern "C" __global__ void emu_atomics(unsigned int* counters, int* minmax, float* sum) {
    const int g = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    atomicAdd(&counters[0], 1u);
    atomicOr(&counters[1], 1u << (g % 32));
    atomicMax(&minmax[0], g);
    atomicMin(&minmax[1], g);
    atomicAdd(sum, 0.5f);
    atomicCAS(&counters[2], 0u, (unsigned)g + 100u);  // only the first thread's CAS succeeds
}

// bf16 / f16 conversions: in f32 -> bits of bf16, bits of f16, and the f32 values back.
extern "C" __global__ void emu_convert(const float* in, unsigned short* bf, unsigned short* hf, float* back,
                                       int n) {
    const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i >= n) return;
    const bf16_t b = __float2bfloat16(in[i]);
    const f16_t h = __float2half(in[i]);
    bf[i] = __bfloat16_as_ushort(b);
    hf[i] = __half_as_ushort(h);
    back[2 * i] = __bfloat162float(b);
    back[2 * i + 1] = __half2float(h);
}

// The shared block reduction of rt_common.cuh: out[block] = sum and max of the block's inputs.
extern "C" __global__ void emu_block_reduce(const float* in, float* out) {
    __shared__ float scratch[32];
    const float v = in[blockIdx.x * blockDim.x + threadIdx.x];
    const float s = rt_block_sum(v, scratch);
    const float m = rt_block_max(v, scratch);
    if (threadIdx.x == 0) {
        out[2 * blockIdx.x] = s;
        out[2 * blockIdx.x + 1] = m;
    }
}

// Every scalar parameter type the Rust Arg enum can carry, echoed back.
extern "C" __global__ void emu_args(long long* out, int a, unsigned int b, long long c, unsigned long long d,
                                    float e) {
    out[0] = a;
    out[1] = b;
    out[2] = c;
    out[3] = (long long)d;
    out[4] = __float_as_int(e);
}

// A kernel stamped out by a macro: the build must see it through the preprocessor.
#define EMU_SCALE_KERNEL(T, SUFFIX)                                                                  \
    extern "C" __global__ void emu_scale_##SUFFIX(const T* x, T* y, float s, int n) {               \
        const int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);                                  \
        if (i < n) y[i] = rt_from_f32<T>(rt_to_f32(x[i]) * s);                                      \
    }
EMU_SCALE_KERNEL(float, f32)
EMU_SCALE_KERNEL(bf16_t, bf16)
EMU_SCALE_KERNEL(f16_t, f16)

// Declared inside an extern "C" block rather than with extern "C" on the definition.
extern "C" {
__global__ void emu_in_c_block(int* out) { out[threadIdx.x] = (int)threadIdx.x * 2; }
}
