// elementwise.cu — add / mul with the second operand repeated over leading dimensions (bias,
// per-channel scale), and scaling by a scalar. Grid-stride loops, f32 arithmetic.
#include "rt_common.cuh"

#define RT_GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

#define RT_ELEMENTWISE_KERNELS(T, S)                                                                 \
    extern "C" __global__ void add_##S(const T* a, const T* b, T* out, long long n, long long bn) {  \
        RT_GRID_STRIDE(i, n) out[i] = rt_from_f32<T>(rt_to_f32(a[i]) + rt_to_f32(b[i % bn]));        \
    }                                                                                                \
    extern "C" __global__ void mul_##S(const T* a, const T* b, T* out, long long n, long long bn) {  \
        RT_GRID_STRIDE(i, n) out[i] = rt_from_f32<T>(rt_to_f32(a[i]) * rt_to_f32(b[i % bn]));        \
    }                                                                                                \
    extern "C" __global__ void scale_##S(const T* x, T* out, long long n, float s) {                 \
        RT_GRID_STRIDE(i, n) out[i] = rt_from_f32<T>(rt_to_f32(x[i]) * s);                           \
    }

RT_ELEMENTWISE_KERNELS(float, f32)
RT_ELEMENTWISE_KERNELS(bf16_t, bf16)
RT_ELEMENTWISE_KERNELS(f16_t, f16)
