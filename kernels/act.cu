// act.cu — activations: SiLU (x * sigmoid(x)), exact GELU (0.5 x (1 + erf(x / sqrt 2))) and the
// fused SwiGLU gate silu(gate) * up of Llama's MLP (one pass over both inputs).
// f32 arithmetic with the full-precision expf/erff (no fast-math), to match the CPU side.
#include "rt_common.cuh"

__device__ __forceinline__ float rt_silu(float x) { return x / (1.0f + expf(-x)); }
__device__ __forceinline__ float rt_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }

#define RT_ACT_KERNELS(T, S)                                                                        \
    extern "C" __global__ void silu_##S(const T* x, T* out, long long n) {                          \
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;                 \
             i += (long long)gridDim.x * blockDim.x)                                                \
            out[i] = rt_from_f32<T>(rt_silu(rt_to_f32(x[i])));                                      \
    }                                                                                               \
    extern "C" __global__ void gelu_##S(const T* x, T* out, long long n) {                          \
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;                 \
             i += (long long)gridDim.x * blockDim.x)                                                \
            out[i] = rt_from_f32<T>(rt_gelu(rt_to_f32(x[i])));                                      \
    }                                                                                               \
    extern "C" __global__ void swiglu_##S(const T* gate, const T* up, T* out, long long n) {        \
        for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;                 \
             i += (long long)gridDim.x * blockDim.x)                                                \
            out[i] = rt_from_f32<T>(rt_silu(rt_to_f32(gate[i])) * rt_to_f32(up[i]));                \
    }

RT_ACT_KERNELS(float, f32)
RT_ACT_KERNELS(bf16_t, bf16)
RT_ACT_KERNELS(f16_t, f16)

// Training: the gradients of silu(gate) * up (f32; the CPU side is cpu/backward.rs):
// dgate = dy * up * s * (1 + g * (1 - s)) with s = sigmoid(g), dup = dy * silu(g).
extern "C" __global__ void swiglu_backward_f32(const float* gate, const float* up, const float* dy, float* dgate,
                                               float* dup, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float g = gate[i], u = up[i], d = dy[i];
        const float s = 1.0f / (1.0f + expf(-g));
        dgate[i] = d * u * s * (1.0f + g * (1.0f - s));
        dup[i] = d * g * s;
    }
}
