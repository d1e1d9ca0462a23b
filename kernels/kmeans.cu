// kmeans.cu — the two steps of Lloyd's k-means.
//
// kmeans_assign_*: fused distance + argmin. A block owns 64 points and walks the centroids in
// tiles of 64; the 64 x 64 dot products are built in registers (4 x 4 per thread, FMA) from
// shared-memory chunks of 16 dimensions, turned into clamped squared distances with the
// precomputed norms (|p|^2 + |c|^2 - 2 p.c, the same formula as the CPU side and topk.cu), and
// each point's thread folds its row of the tile into its running minimum in centroid order, so
// ties go to the smaller index. No distance reaches global memory.
// kmeans_update_*: per-cluster sums with f32 atomics (zeroed first), then a divide by the count,
// or the old centroid for an empty cluster.
#include "rt_common.cuh"

#define KM_TILE 64  // points per block, centroids per tile
#define KM_DC 16    // dimensions per shared-memory chunk
#define KM_THREADS 256

template <typename T>
__device__ __forceinline__ void kmeans_assign_impl(const T* __restrict__ points, const T* __restrict__ cents,
                                                   const float* __restrict__ pn, const float* __restrict__ cn,
                                                   int* __restrict__ assign, float* __restrict__ dist, int n,
                                                   int c, int d) {
    __shared__ float ps[KM_TILE][KM_DC + 1];
    __shared__ float cs[KM_TILE][KM_DC + 1];
    __shared__ float dd[KM_TILE][KM_TILE + 1];
    const int tid = threadIdx.x, p0 = blockIdx.x * KM_TILE;
    const int pr = (tid >> 4) * 4, cc = (tid & 15) * 4;  // this thread's 4 x 4 of the tile
    float best = CUDART_INF_F;
    int best_idx = 0;
    for (int c0 = 0; c0 < c; c0 += KM_TILE) {
        float acc[4][4];
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) acc[i][j] = 0.0f;
        for (int k0 = 0; k0 < d; k0 += KM_DC) {
            __syncthreads();  // the previous chunk (and the previous tile's dd) is consumed
            for (int i = tid; i < KM_TILE * KM_DC; i += KM_THREADS) {
                const int r = i / KM_DC, k = i % KM_DC;
                ps[r][k] = (p0 + r < n && k0 + k < d) ? rt_to_f32(points[(long long)(p0 + r) * d + k0 + k]) : 0.0f;
                cs[r][k] = (c0 + r < c && k0 + k < d) ? rt_to_f32(cents[(long long)(c0 + r) * d + k0 + k]) : 0.0f;
            }
            __syncthreads();
            for (int k = 0; k < KM_DC; ++k)
                for (int i = 0; i < 4; ++i)
                    for (int j = 0; j < 4; ++j) acc[i][j] = fmaf(ps[pr + i][k], cs[cc + j][k], acc[i][j]);
        }
        __syncthreads();  // (d == 0: no chunk barrier ran) the previous tile's dd is consumed
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 4; ++j) {
                const int p = p0 + pr + i, ci = c0 + cc + j;
                dd[pr + i][cc + j] = (p < n && ci < c) ? fmaxf(pn[p] + cn[ci] - 2.0f * acc[i][j], 0.0f) : 0.0f;
            }
        __syncthreads();
        if (tid < KM_TILE) {
            const int cols = min(KM_TILE, c - c0);
            for (int j = 0; j < cols; ++j) {
                const float v = dd[tid][j];
                if (v < best) {  // strict: an equal distance keeps the smaller index
                    best = v;
                    best_idx = c0 + j;
                }
            }
        }
    }
    if (tid < KM_TILE && p0 + tid < n) {
        assign[p0 + tid] = best_idx;
        dist[p0 + tid] = best;
    }
}

template <typename T>
__device__ __forceinline__ void kmeans_update_sum_impl(const T* __restrict__ points, const int* __restrict__ assign,
                                                       float* __restrict__ sums, int* __restrict__ counts, int n,
                                                       int c, int d) {
    const int width = d > 0 ? d : 1;  // zero-length points still count
    const long long total = (long long)n * width;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int p = (int)(i / width), j = (int)(i % width);
        const int a = assign[p];
        if (a < 0 || a >= c) continue;  // unassigned (-1) or out of range: skipped, like the CPU
        if (d > 0) atomicAdd(&sums[(long long)a * d + j], rt_to_f32(points[i]));
        if (j == 0) atomicAdd(&counts[a], 1);
    }
}

extern "C" __global__ void kmeans_update_zero(float* sums, int* counts, int c, int d) {
    const long long sum_len = (long long)c * d, total = sum_len > c ? sum_len : c;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        if (i < sum_len) sums[i] = 0.0f;
        if (i < c) counts[i] = 0;
    }
}

template <typename T>
__device__ __forceinline__ void kmeans_update_finish_impl(const T* __restrict__ old, float* __restrict__ sums,
                                                          const int* __restrict__ counts, int c, int d) {
    const long long total = (long long)c * d;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int count = counts[i / d];
        // A division, not a multiply by 1/count: the CPU side divides too.
        sums[i] = count > 0 ? sums[i] / (float)count : rt_to_f32(old[i]);
    }
}

#define RT_KMEANS_KERNELS(T, S)                                                                        \
    extern "C" __global__ void kmeans_assign_##S(const T* points, const T* cents, const float* pn,     \
                                                 const float* cn, int* assign, float* dist, int n, int c, \
                                                 int d) {                                              \
        kmeans_assign_impl<T>(points, cents, pn, cn, assign, dist, n, c, d);                           \
    }                                                                                                  \
    extern "C" __global__ void kmeans_update_sum_##S(const T* points, const int* assign, float* sums,  \
                                                     int* counts, int n, int c, int d) {               \
        kmeans_update_sum_impl<T>(points, assign, sums, counts, n, c, d);                              \
    }                                                                                                  \
    extern "C" __global__ void kmeans_update_finish_##S(const T* old, float* sums, const int* counts,  \
                                                        int c, int d) {                                \
        kmeans_update_finish_impl<T>(old, sums, counts, c, d);                                         \
    }

RT_KMEANS_KERNELS(float, f32)
RT_KMEANS_KERNELS(bf16_t, bf16)
RT_KMEANS_KERNELS(f16_t, f16)
