// rope.cu — rotary position embedding, Hugging Face's "rotate_half" layout. x [rows = b·s, heads,
// d]; within the first rot = 2·half dims of a head, dim j < half pairs with j + half and turns by
// the angle positions[row] · inv_freq[j]:
//   out[j]        = x[j] · cos − x[j + half] · sin
//   out[j + half] = x[j + half] · cos + x[j] · sin
// dims from rot on pass through. The angle is an f32 product, as transformers computes it, and
// sincosf is the accurate (range-reduced) one: positions reach tens of thousands of radians.
// One thread per output element in a grid-stride loop: the op is bound by memory, and each
// thread's sincosf hides behind its loads.
#include "rt_common.cuh"

template <typename T>
__device__ __forceinline__ void rope_elements(const T* __restrict__ x, const int* __restrict__ positions,
                                              const float* __restrict__ inv_freq, T* __restrict__ out,
                                              int heads, int d, int half, long long n) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        const int j = (int)(e % d);
        if (j >= 2 * half) {
            out[e] = x[e];
            continue;
        }
        const long long row = e / d / heads;
        const int pair = j < half ? j : j - half;
        float s, c;
        sincosf((float)positions[row] * inv_freq[pair], &s, &c);
        const float self = rt_to_f32(x[e]);
        // The partner element: x[j + half] for the first half (subtracted), x[j − half] (added).
        const float other = j < half ? -rt_to_f32(x[e + half]) : rt_to_f32(x[e - half]);
        out[e] = rt_from_f32<T>(self * c + other * s);
    }
}

#define RT_ROPE_KERNELS(T, S)                                                                        \
    extern "C" __global__ void rope_##S(const T* x, const int* positions, const float* inv_freq, T* out, \
                                        int heads, int d, int half, long long n) {                   \
        rope_elements<T>(x, positions, inv_freq, out, heads, d, half, n);                            \
    }

RT_ROPE_KERNELS(float, f32)
RT_ROPE_KERNELS(bf16_t, bf16)
RT_ROPE_KERNELS(f16_t, f16)
