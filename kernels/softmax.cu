// softmax.cu — row softmax with a scale and an optional causal mask, one block per row.
//
// Rows belong to a stack of `rows x cols` matrices; with the causal mask row i sees columns
// j <= i + cols - rows (a KV cache of cols - rows earlier positions). Masked entries become 0.
// Max and sum are block reductions in f32; exponentials are recomputed in the write pass rather
// than stored, so any row length works with 32 floats of shared memory.
#include "rt_common.cuh"

template <typename T>
__device__ __forceinline__ void softmax_row(const T* __restrict__ x, T* __restrict__ out, int rows,
                                            int cols, float scale, int causal) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    T* orow = out + row * cols;
    int visible = cols;
    if (causal) {
        const int i = (int)(row % rows);
        visible = min(max(i + cols - rows + 1, 0), cols);
    }
    float m = -CUDART_INF_F;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) m = fmaxf(m, rt_to_f32(xr[j]) * scale);
    m = rt_block_max(m, scratch);
    float s = 0.0f;
    for (int j = threadIdx.x; j < visible; j += blockDim.x) s += expf(rt_to_f32(xr[j]) * scale - m);
    s = rt_block_sum(s, scratch);
    const float inv = 1.0f / s;
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        orow[j] = rt_from_f32<T>(j < visible ? expf(rt_to_f32(xr[j]) * scale - m) * inv : 0.0f);
}

#define RT_SOFTMAX_KERNEL(T, S)                                                                     \
    extern "C" __global__ void softmax_##S(const T* x, T* out, int rows, int cols, float scale,     \
                                           int causal) {                                           \
        softmax_row<T>(x, out, rows, cols, scale, causal);                                          \
    }

RT_SOFTMAX_KERNEL(float, f32)
RT_SOFTMAX_KERNEL(bf16_t, bf16)
RT_SOFTMAX_KERNEL(f16_t, f16)
