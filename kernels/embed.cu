// embed.cu — embedding lookup: out[i] = table[ids[i]] for a [vocab, d] table. A block per id
// (grid-stride over ids), threads over the row. An id outside [0, vocab) writes a zero row and
// records the smallest such position in *bad (atomicMin; the op initialises it to INT_MAX and
// reads it back to report the error — the same error the CPU side gives).
#include "rt_common.cuh"

template <typename T>
__device__ __forceinline__ void embedding_rows(const T* __restrict__ table, const int* __restrict__ ids,
                                               T* __restrict__ out, int* __restrict__ bad, int n, int d,
                                               int vocab) {
    for (int i = blockIdx.x; i < n; i += gridDim.x) {
        const int id = ids[i];
        const bool ok = id >= 0 && id < vocab;
        if (!ok && threadIdx.x == 0) atomicMin(bad, i);
        const T* src = table + (long long)id * d;
        T* dst = out + (long long)i * d;
        for (int j = threadIdx.x; j < d; j += blockDim.x) dst[j] = ok ? src[j] : rt_from_f32<T>(0.0f);
    }
}

#define RT_EMBED_KERNELS(T, S)                                                                       \
    extern "C" __global__ void embedding_##S(const T* table, const int* ids, T* out, int* bad, int n, \
                                             int d, int vocab) {                                     \
        embedding_rows<T>(table, ids, out, bad, n, d, vocab);                                        \
    }

RT_EMBED_KERNELS(float, f32)
RT_EMBED_KERNELS(bf16_t, bf16)
RT_EMBED_KERNELS(f16_t, f16)

// Training: the table's gradient, dtable[ids[i]] += dy[i] (f32, dtable zeroed by the op, ids
// checked on the host). A block per id, threads over the row; atomics sum repeated ids.
extern "C" __global__ void embedding_backward_f32(const int* __restrict__ ids, const float* __restrict__ dy,
                                                  float* __restrict__ dtable, int n, int d) {
    for (int i = blockIdx.x; i < n; i += gridDim.x) {
        float* dst = dtable + (long long)ids[i] * d;
        const float* src = dy + (long long)i * d;
        for (int j = threadIdx.x; j < d; j += blockDim.x) atomicAdd(&dst[j], src[j]);
    }
}
