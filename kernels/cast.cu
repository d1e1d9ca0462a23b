// cast.cu — dtype conversion, one kernel per (from, to) pair.
//
// Semantics match crates/compute/src/cpu/cast.rs: values pass through double (exact for every
// source type); float targets round through f32 to nearest even; integer targets truncate toward
// zero and saturate at their range, NaN -> 0 (Rust's `as`).
#include "rt_common.cuh"

__device__ __forceinline__ double rt_load_f64(float v) { return (double)v; }
__device__ __forceinline__ double rt_load_f64(bf16_t v) { return (double)__bfloat162float(v); }
__device__ __forceinline__ double rt_load_f64(f16_t v) { return (double)__half2float(v); }
__device__ __forceinline__ double rt_load_f64(int v) { return (double)v; }
__device__ __forceinline__ double rt_load_f64(unsigned int v) { return (double)v; }
__device__ __forceinline__ double rt_load_f64(unsigned char v) { return (double)v; }

template <typename D> __device__ __forceinline__ D rt_store(double v);
template <> __device__ __forceinline__ float rt_store<float>(double v) { return (float)v; }
template <> __device__ __forceinline__ bf16_t rt_store<bf16_t>(double v) { return __float2bfloat16((float)v); }
template <> __device__ __forceinline__ f16_t rt_store<f16_t>(double v) { return __float2half((float)v); }
template <> __device__ __forceinline__ int rt_store<int>(double v) {
    return v != v ? 0 : v <= -2147483648.0 ? (int)(-2147483647 - 1) : v >= 2147483647.0 ? 2147483647 : (int)v;
}
template <> __device__ __forceinline__ unsigned int rt_store<unsigned int>(double v) {
    return v != v ? 0u : v <= 0.0 ? 0u : v >= 4294967295.0 ? 4294967295u : (unsigned int)v;
}
template <> __device__ __forceinline__ unsigned char rt_store<unsigned char>(double v) {
    return v != v ? (unsigned char)0 : v <= 0.0 ? (unsigned char)0 : v >= 255.0 ? (unsigned char)255 : (unsigned char)v;
}

#define RT_CAST_KERNEL(ST, S, DT, D)                                                                \
    extern "C" __global__ void cast_##S##_##D(const ST* x, DT* out, long long n) {                  \
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;                 \
             i += (long long)gridDim.x * blockDim.x)                                                \
            out[i] = rt_store<DT>(rt_load_f64(x[i]));                                               \
    }

// Every ordered pair of distinct types: a source type and the five others.
#define RT_CAST_FROM(ST, S, A, AS, B, BS, C, CS, D, DS, E, ES) \
    RT_CAST_KERNEL(ST, S, A, AS)                                 \
    RT_CAST_KERNEL(ST, S, B, BS)                                 \
    RT_CAST_KERNEL(ST, S, C, CS)                                 \
    RT_CAST_KERNEL(ST, S, D, DS)                                 \
    RT_CAST_KERNEL(ST, S, E, ES)

RT_CAST_FROM(float, f32, bf16_t, bf16, f16_t, f16, int, i32, unsigned int, u32, unsigned char, u8)
RT_CAST_FROM(bf16_t, bf16, float, f32, f16_t, f16, int, i32, unsigned int, u32, unsigned char, u8)
RT_CAST_FROM(f16_t, f16, float, f32, bf16_t, bf16, int, i32, unsigned int, u32, unsigned char, u8)
RT_CAST_FROM(int, i32, float, f32, bf16_t, bf16, f16_t, f16, unsigned int, u32, unsigned char, u8)
RT_CAST_FROM(unsigned int, u32, float, f32, bf16_t, bf16, f16_t, f16, int, i32, unsigned char, u8)
RT_CAST_FROM(unsigned char, u8, float, f32, bf16_t, bf16, f16_t, f16, int, i32, unsigned int, u32)
