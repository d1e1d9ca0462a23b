// rt_common.cuh — shared device helpers of ragtune's kernels: element types and their f32
// conversions, dynamic shared memory, warp and block reductions.
//
// The same source is compiled by NVRTC for a GPU and, in tests, as host C++ against the CPU
// emulation (RAGTUNE_EMU defined, emulation header forced in first). Anything that must differ
// between the two worlds lives here or in another kernels/include/ helper, never in a kernel.
#pragma once

#ifndef RAGTUNE_EMU
#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <math_constants.h>
#endif

typedef __nv_bfloat16 bf16_t;
typedef __half f16_t;

// Dynamic shared memory of the launch, as an array of T.
#ifdef RAGTUNE_EMU
#define RT_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(rt_emu_dynamic_shared())
#else
#define RT_DYNAMIC_SHARED(T, name) extern __shared__ __align__(16) unsigned char rt_dyn_smem_[]; \
    T* name = reinterpret_cast<T*>(rt_dyn_smem_)
#endif

// f32 <-> storage type. Rounding to nearest even, as cuda_bf16.h / cuda_fp16.h do.
__device__ __forceinline__ float rt_to_f32(float v) { return v; }
__device__ __forceinline__ float rt_to_f32(bf16_t v) { return __bfloat162float(v); }
__device__ __forceinline__ float rt_to_f32(f16_t v) { return __half2float(v); }
__device__ __forceinline__ float rt_to_f32(int v) { return (float)v; }
__device__ __forceinline__ float rt_to_f32(unsigned int v) { return (float)v; }
__device__ __forceinline__ float rt_to_f32(unsigned char v) { return (float)v; }

template <typename T> __device__ __forceinline__ T rt_from_f32(float v);
template <> __device__ __forceinline__ float rt_from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ bf16_t rt_from_f32<bf16_t>(float v) { return __float2bfloat16(v); }
template <> __device__ __forceinline__ f16_t rt_from_f32<f16_t>(float v) { return __float2half(v); }

#define RT_FULL_MASK 0xffffffffu

__device__ __forceinline__ float rt_warp_sum(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(RT_FULL_MASK, v, offset);
    return v;
}

__device__ __forceinline__ float rt_warp_max(float v) {
#pragma unroll
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(RT_FULL_MASK, v, offset));
    return v;
}

// Sum over the whole block; every thread gets the result. `scratch` holds >= 32 floats of shared
// memory. blockDim.x must be a multiple of 32. Safe to call twice in a row (it barriers first).
__device__ __forceinline__ float rt_block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = rt_warp_sum(v);
    __syncthreads();  // scratch may still be read by a previous call
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    return rt_warp_sum(v);
}

__device__ __forceinline__ float rt_block_max(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = rt_warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : -CUDART_INF_F;
    return rt_warp_max(v);
}
