// lora.cu — the LoRA path for a batch that mixes adapters (one adapter id per row, -1 = none),
// as a server applying several adapters at once needs (Punica's shrink/expand split):
//   lora_shrink:  u[i, :] = x[i, :] · A[ids[i]]ᵀ            A stacked [adapters, r, in]
//   lora_expand:  y[i, :] += scale[ids[i]] · u[i, :] · B[ids[i]]ᵀ   B stacked [adapters, out, r]
// The expand adds into the base GEMM's output in place: y is read and written once, and the
// rank-r intermediate u (r ≪ in, out) is all that goes between the two kernels. f32
// accumulation for every storage type; rows whose id is -1 get u = 0 and y unchanged.
#include "rt_common.cuh"

// A block per row; the block reduces each of the r dot products over `in`.
template <typename T>
__device__ __forceinline__ void lora_shrink_row(const T* __restrict__ x, const T* __restrict__ a,
                                                const int* __restrict__ ids, float* __restrict__ u, int in,
                                                int r) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const int id = ids[row];
    for (int j = 0; j < r; ++j) {
        float s = 0.0f;
        if (id >= 0) {
            const T* aj = a + ((long long)id * r + j) * in;
            for (int k = threadIdx.x; k < in; k += blockDim.x) s += rt_to_f32(x[row * in + k]) * rt_to_f32(aj[k]);
        }
        s = rt_block_sum(s, scratch);
        if (threadIdx.x == 0) u[row * r + j] = s;
    }
}

// A block per row, threads over the outputs; each output is an r-long dot product.
template <typename T>
__device__ __forceinline__ void lora_expand_row(const float* __restrict__ u, const T* __restrict__ b,
                                                const int* __restrict__ ids, const float* __restrict__ scales,
                                                T* __restrict__ y, int out, int r) {
    const long long row = blockIdx.x;
    const int id = ids[row];
    if (id < 0) return;
    const float s = scales[id];
    const float* ur = u + row * r;
    for (int o = threadIdx.x; o < out; o += blockDim.x) {
        const T* bo = b + ((long long)id * out + o) * r;
        float acc = 0.0f;
        for (int j = 0; j < r; ++j) acc += ur[j] * rt_to_f32(bo[j]);
        y[row * out + o] = rt_from_f32<T>(rt_to_f32(y[row * out + o]) + s * acc);
    }
}

#define RT_LORA_KERNELS(T, S)                                                                          \
    extern "C" __global__ void lora_shrink_##S(const T* x, const T* a, const int* ids, float* u, int in, \
                                               int r) {                                                \
        lora_shrink_row<T>(x, a, ids, u, in, r);                                                       \
    }                                                                                                  \
    extern "C" __global__ void lora_expand_##S(const float* u, const T* b, const int* ids,              \
                                               const float* scales, T* y, int out, int r) {            \
        lora_expand_row<T>(u, b, ids, scales, y, out, r);                                              \
    }

RT_LORA_KERNELS(float, f32)
RT_LORA_KERNELS(bf16_t, bf16)
RT_LORA_KERNELS(f16_t, f16)
