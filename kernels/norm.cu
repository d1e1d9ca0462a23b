// norm.cu — RMSNorm and LayerNorm over the last dimension, one block per row.
//
// Each thread strides over the row; statistics are reduced with warp shuffles and one shared
// scratch array, in f32 whatever the storage type. Rows are read twice (statistics, then the
// output) — they are short enough to stay in L1/L2, and it keeps registers free for any width.
#include "rt_common.cuh"

// The sum of squares of one row, reduced across the block: every thread gets it.
template <typename T>
__device__ __forceinline__ float rt_row_sumsq(const T* __restrict__ xr, int cols, float* scratch) {
    float ss = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float v = rt_to_f32(xr[j]);
        ss += v * v;
    }
    return rt_block_sum(ss, scratch);
}

template <typename T>
__device__ __forceinline__ void rms_norm_row(const T* __restrict__ x, const T* __restrict__ w,
                                             T* __restrict__ out, int cols, float eps, float* scratch) {
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    T* orow = out + row * cols;
    const float inv = rsqrtf(rt_row_sumsq(xr, cols, scratch) / (float)cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x)
        orow[j] = rt_from_f32<T>(rt_to_f32(xr[j]) * inv * rt_to_f32(w[j]));
}

template <typename T>
__device__ __forceinline__ void layer_norm_row(const T* __restrict__ x, const T* __restrict__ w,
                                               const T* __restrict__ b, T* __restrict__ out, int cols,
                                               float eps, float* scratch) {
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    T* orow = out + row * cols;
    // Work with d = x - x[0]: for a row like 1e4 +- 0.1, x - mean in f32 would lose the digits the
    // spread lives in, while d is exact and d - mean(d) keeps them.
    const float pivot = rt_to_f32(xr[0]);
    float s = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) s += rt_to_f32(xr[j]) - pivot;
    const float mean = rt_block_sum(s, scratch) / (float)cols;
    float sq = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float d = (rt_to_f32(xr[j]) - pivot) - mean;
        sq += d * d;
    }
    const float inv = rsqrtf(rt_block_sum(sq, scratch) / (float)cols + eps);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        const float bias = b ? rt_to_f32(b[j]) : 0.0f;
        orow[j] = rt_from_f32<T>(((rt_to_f32(xr[j]) - pivot) - mean) * inv * rt_to_f32(w[j]) + bias);
    }
}

// x / max(||x||, 1e-12): unit rows for cosine similarity; an all-zero row stays zero.
template <typename T>
__device__ __forceinline__ void l2_normalize_row(const T* __restrict__ x, T* __restrict__ out, int cols,
                                                 float* scratch) {
    const long long row = blockIdx.x;
    const T* xr = x + row * cols;
    T* orow = out + row * cols;
    const float inv = 1.0f / fmaxf(sqrtf(rt_row_sumsq(xr, cols, scratch)), 1e-12f);
    for (int j = threadIdx.x; j < cols; j += blockDim.x) orow[j] = rt_from_f32<T>(rt_to_f32(xr[j]) * inv);
}

// out[r] = sum of squares of row r, one warp per row (8 rows per 256-thread block): the |x|^2
// terms of squared-L2 search and k-means, computed once per call instead of per tile.
template <typename T>
__device__ __forceinline__ void row_sqnorm_rows(const T* __restrict__ x, float* __restrict__ out, int rows,
                                                int cols) {
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= rows) return;  // whole warps leave together
    const T* xr = x + row * cols;
    float ss = 0.0f;
    for (int j = threadIdx.x & 31; j < cols; j += 32) {
        const float v = rt_to_f32(xr[j]);
        ss = fmaf(v, v, ss);
    }
    ss = rt_warp_sum(ss);
    if ((threadIdx.x & 31) == 0) out[row] = ss;
}

// Static __shared__ storage (the reductions' scratch) is declared in the extern "C" kernels and
// handed to the templates, so the emulator's profiler sees it (see lora.cu).
#define RT_NORM_KERNELS(T, S)                                                                       \
    extern "C" __global__ void rms_norm_##S(const T* x, const T* w, T* out, int cols, float eps) {  \
        __shared__ float scratch[32];                                                               \
        rms_norm_row<T>(x, w, out, cols, eps, scratch);                                             \
    }                                                                                               \
    extern "C" __global__ void layer_norm_##S(const T* x, const T* w, const T* b, T* out, int cols, \
                                              float eps) {                                          \
        __shared__ float scratch[32];                                                               \
        layer_norm_row<T>(x, w, b, out, cols, eps, scratch);                                        \
    }                                                                                               \
    extern "C" __global__ void l2_normalize_##S(const T* x, T* out, int cols) {                     \
        __shared__ float scratch[32];                                                               \
        l2_normalize_row<T>(x, out, cols, scratch);                                                 \
    }                                                                                               \
    extern "C" __global__ void row_sqnorm_##S(const T* x, float* out, int rows, int cols) {         \
        row_sqnorm_rows<T>(x, out, rows, cols);                                                     \
    }

RT_NORM_KERNELS(float, f32)
RT_NORM_KERNELS(bf16_t, bf16)
RT_NORM_KERNELS(f16_t, f16)

// Training: the gradients of RMSNorm, one block per row (f32; the CPU side is cpu/backward.rs).
// With inv = 1 / sqrt(mean(x^2) + eps): dx = inv * dy * w - inv^3 / cols * x * sum(dy * w * x);
// the weight's gradient sum over rows of dy * x * inv is accumulated into dw (zeroed by the op)
// with atomics.
extern "C" __global__ void rms_norm_backward_f32(const float* __restrict__ x, const float* __restrict__ w,
                                                 const float* __restrict__ dy, float* __restrict__ dx,
                                                 float* __restrict__ dw, int cols, float eps) {
    __shared__ float scratch[32];
    const long long row = blockIdx.x;
    const float* xr = x + row * cols;
    const float* gr = dy + row * cols;
    float* out = dx + row * cols;
    float ss = 0.0f, gx = 0.0f;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        ss += xr[j] * xr[j];
        gx += gr[j] * w[j] * xr[j];
    }
    ss = rt_block_sum(ss, scratch);
    gx = rt_block_sum(gx, scratch);
    const float inv = 1.0f / sqrtf(ss / (float)cols + eps);
    const float c = inv * inv * inv * gx / (float)cols;
    for (int j = threadIdx.x; j < cols; j += blockDim.x) {
        out[j] = inv * gr[j] * w[j] - c * xr[j];
        atomicAdd(&dw[j], gr[j] * xr[j] * inv);
    }
}
