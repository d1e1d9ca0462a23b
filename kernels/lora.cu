// lora.cu — the LoRA path for a batch that mixes adapters (one adapter id per row, -1 = none),
// as a server applying several adapters at once needs (Punica's shrink/expand split):
//   lora_shrink:  u[i, :] = x[i, :] · A[ids[i]]ᵀ            A stacked [adapters, r, in]
//   lora_expand:  y[i, :] += scale[ids[i]] · u[i, :] · B[ids[i]]ᵀ   B stacked [adapters, out, r]
// The expand adds into the base GEMM's output in place: y is read and written once, and the
// rank-r intermediate u (r ≪ in, out) is all that goes between the two kernels. f32
// accumulation for every storage type; rows whose id is -1 get u = 0 and y unchanged. Ids live on
// the device, so the op layer cannot check them without a sync: every kernel reads an id outside
// 0..adapters as "no adapter" rather than reading outside the stacked weights.
//
// The backward, given dy and the saved u (x' = x ⊙ mask under LoRA dropout, else x):
//   lora_bwd_du:    du[i, :] = scale[id] · dy[i, :] · B[id]                         (a shrink over out)
//   lora_bwd_dx:    dx[i, :] += mask[i, :] ⊙ (du[i, :] · A[id])      in place on the base's dx
//   lora_bwd_outer: dB[id] = scale[id] · Σ_i dy[i]ᵀ u[i],  dA[id] = Σ_i du[i]ᵀ x'[i]
//                   per chunk of rows into a partial buffer, then lora_bwd_reduce sums the chunks
//                   in a fixed order, so the gradients do not depend on scheduling.
#include "rt_common.cuh"

// Accumulators per thread: r is handled RT_LORA_J columns at a time, so x (or dy) is read r/8
// times from L1 instead of r times, with no per-thread array sized by r.
#define RT_LORA_J 8

// The end of a row's group of J ranks from j0: each thread's partial sums added up over the block,
// and thread 0 stores scale · sum at out_row[j0 + j] (ranks past r skipped). The loop bound is
// uniform across the block, as rt_block_sum needs.
template <int J>
__device__ __forceinline__ void rt_lora_store_sums(const float (&acc)[J], float* scratch, float* __restrict__ out_row,
                                                   int j0, int r, float scale) {
    for (int j = 0; j < J && j0 + j < r; ++j) {
        const float sum = rt_block_sum(acc[j], scratch);
        if (threadIdx.x == 0) out_row[j0 + j] = scale * sum;
    }
}

// A block per row; out[row, j] = scale · Σ_k v[row, k] · m[j, k] where m[j, k] lies at
// m[j·js + k·ks] (the shrink: A [r, in], js = in, ks = 1, coalesced; the backward's du reads B
// by rows and has its own, lora_bwd_du_row below). Rows with id -1 get zeros.
template <typename T>
__device__ __forceinline__ void lora_reduce_row(const T* __restrict__ v, const T* __restrict__ m,
                                                const int* __restrict__ ids, const float* __restrict__ scales,
                                                float* __restrict__ out, int len, int r, int js, int ks,
                                                int adapters, float* scratch) {
    const long long row = blockIdx.x;
    const int id = ids[row] < adapters ? ids[row] : -1;
    const T* mm = m + (long long)(id < 0 ? 0 : id) * r * len;
    const float scale = id < 0 ? 0.0f : (scales ? scales[id] : 1.0f);
    for (int j0 = 0; j0 < r; j0 += RT_LORA_J) {
        float acc[RT_LORA_J];
#pragma unroll
        for (int jj = 0; jj < RT_LORA_J; ++jj) acc[jj] = 0.0f;
        if (id >= 0) {
            for (int k = threadIdx.x; k < len; k += blockDim.x) {
                const float g = rt_to_f32(v[row * len + k]);
#pragma unroll
                for (int jj = 0; jj < RT_LORA_J; ++jj)
                    if (j0 + jj < r) acc[jj] += g * rt_to_f32(mm[(long long)(j0 + jj) * js + (long long)k * ks]);
            }
        }
        rt_lora_store_sums(acc, scratch, out + row * r, j0, r, scale);
    }
}

// A block per row, a warp per 32 columns: dx[row, c] += mask[row, c] · Σ_j du[row, j] · A[id][j, c]
// (A [r, in]: coalesced along c). du's row is read 32 ranks at a time in one coalesced load and
// handed round the warp by shuffles, not re-read by every lane. A null `mask` means no mask; rows
// with id -1 (or past the bank) are left as they are.
template <typename T>
__device__ __forceinline__ void lora_bwd_dx_row(const float* __restrict__ du, const T* __restrict__ a,
                                                const int* __restrict__ ids, const T* __restrict__ mask,
                                                T* __restrict__ dx, int in, int r, int adapters) {
    const long long row = blockIdx.x;
    const int id = ids[row];
    if (id < 0 || id >= adapters) return;
    const int lane = threadIdx.x & 31;
    const float* dur = du + row * r;
    const T* aa = a + (long long)id * r * in;
    for (int cw = threadIdx.x - lane; cw < in; cw += blockDim.x) {  // the same trip count for a whole warp
        const int c = cw + lane;
        const bool live = c < in;
        float acc = 0.0f;
        for (int j0 = 0; j0 < r; j0 += 32) {
            const float dj = j0 + lane < r ? dur[j0 + lane] : 0.0f;
            const int n = min(32, r - j0);
            for (int j = 0; j < n; ++j) {
                const float w = __shfl_sync(RT_FULL_MASK, dj, j);
                if (live) acc += w * rt_to_f32(aa[(long long)(j0 + j) * in + c]);
            }
        }
        if (!live) continue;
        if (mask) acc *= rt_to_f32(mask[row * in + c]);
        dx[row * in + c] = rt_from_f32<T>(rt_to_f32(dx[row * in + c]) + acc);
    }
}

// B [out, r] is read by output column, but a column's r weights lie together (row c of B): a
// thread per column reading its own weights would touch a separate 32-byte sector per lane. So a
// warp stages B[c0 .. c0+32, j0 .. j0+16) — 16 rows x 16 ranks, consecutive lanes on consecutive
// addresses — in shared memory as f32, and each lane then reads its own column from there. The
// tile is row-major 32 x 16 with the rank index XOR-swizzled by (row >> 1) & 15: the staging
// stores (lanes 0-15 on an even row, 16-31 on the odd one) and the reads (a lane per row, one
// rank) then both fall on 32 distinct banks.
#define RT_LORA_TILE_J 16

__device__ __forceinline__ int rt_lora_tile_at(int row, int j) { return row * RT_LORA_TILE_J + (j ^ ((row >> 1) & 15)); }

template <typename T>
__device__ __forceinline__ void rt_lora_stage_bt(float* tile, const T* __restrict__ m, int c0, int j0, int cols, int r,
                                                 int lane) {
    for (int e = 0; e < 32 * RT_LORA_TILE_J / 32; ++e) {
        const int idx = e * 32 + lane, row = idx / RT_LORA_TILE_J, j = idx % RT_LORA_TILE_J;
        const int c = c0 + row, jr = j0 + j;
        tile[rt_lora_tile_at(row, j)] = c < cols && jr < r ? rt_to_f32(m[(long long)c * r + jr]) : 0.0f;
    }
    __syncwarp();
}

// A block per row, a warp per 32 output columns: y[row, c] += scale[id] · Σ_j u[row, j] ·
// B[id][c, j]. Rows with id -1 (or past the bank) are left as they are. Dynamic shared memory:
// 32 · RT_LORA_TILE_J floats per warp.
template <typename T>
__device__ __forceinline__ void lora_expand_row(const float* __restrict__ u, const T* __restrict__ b,
                                                const int* __restrict__ ids, const float* __restrict__ scales,
                                                T* __restrict__ y, int out, int r, int adapters) {
    RT_DYNAMIC_SHARED(float, tiles);
    const long long row = blockIdx.x;
    const int id = ids[row];
    if (id < 0 || id >= adapters) return;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const float s = scales ? scales[id] : 1.0f;
    const float* ur = u + row * r;
    const T* bb = b + (long long)id * out * r;
    float* tile = tiles + warp * 32 * RT_LORA_TILE_J;
    for (int c0 = warp * 32; c0 < out; c0 += warps * 32) {  // the same trip count for a whole warp
        float acc = 0.0f;
        for (int j0 = 0; j0 < r; j0 += RT_LORA_TILE_J) {
            rt_lora_stage_bt(tile, bb, c0, j0, out, r, lane);
            // u's 16 ranks in one coalesced load, then handed round the warp by shuffles.
            const float uj = j0 + (lane & 15) < r ? ur[j0 + (lane & 15)] : 0.0f;
            for (int j = 0; j < RT_LORA_TILE_J; ++j)
                acc += __shfl_sync(RT_FULL_MASK, uj, j) * tile[rt_lora_tile_at(lane, j)];
            __syncwarp();  // the tile is restaged next
        }
        const int c = c0 + lane;
        if (c < out) y[row * out + c] = rt_from_f32<T>(rt_to_f32(y[row * out + c]) + s * acc);
    }
}

// A block per row: du[row, j] = scale[id] · Σ_c dy[row, c] · B[id][c, j], B staged tile by tile
// as for the expand (a warp per 32 columns, 16 ranks at a time), each lane summing its column's
// share of 16 ranks before the block adds them up. Rows with id -1 (or past the bank) get zeros.
// Dynamic shared memory: 32 · RT_LORA_TILE_J floats per warp.
template <typename T>
__device__ __forceinline__ void lora_bwd_du_row(const T* __restrict__ dy, const T* __restrict__ b,
                                                const int* __restrict__ ids, const float* __restrict__ scales,
                                                float* __restrict__ du, int out, int r, int adapters,
                                                float* scratch) {
    RT_DYNAMIC_SHARED(float, tiles);
    const long long row = blockIdx.x;
    const int id = ids[row] < adapters ? ids[row] : -1;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
    const float scale = id < 0 ? 0.0f : (scales ? scales[id] : 1.0f);
    const T* bb = b + (long long)(id < 0 ? 0 : id) * out * r;
    float* tile = tiles + warp * 32 * RT_LORA_TILE_J;
    for (int j0 = 0; j0 < r; j0 += RT_LORA_TILE_J) {
        float acc[RT_LORA_TILE_J];
#pragma unroll
        for (int j = 0; j < RT_LORA_TILE_J; ++j) acc[j] = 0.0f;
        if (id >= 0) {
            for (int c0 = warp * 32; c0 < out; c0 += warps * 32) {  // the same trip count for a whole warp
                rt_lora_stage_bt(tile, bb, c0, j0, out, r, lane);
                const float g = c0 + lane < out ? rt_to_f32(dy[row * out + c0 + lane]) : 0.0f;
#pragma unroll
                for (int j = 0; j < RT_LORA_TILE_J; ++j) acc[j] += g * tile[rt_lora_tile_at(lane, j)];
                __syncwarp();  // the tile is restaged next
            }
        }
        rt_lora_store_sums(acc, scratch, du + row * r, j0, r, scale);
    }
}

// Per chunk of `chunk_rows` rows and adapter: g[c, j] = scale · Σ_i p[i, c] · mask[i, c] · q[i, j]
// over the chunk's rows with that adapter. Grid: x over columns (a thread per column), y over
// groups of RT_LORA_J ranks, z over (chunk, adapter). The block's partial lands at
// partial[(chunk · adapters + adapter) · cols · r + (transposed ? j · cols + c : c · r + j)]:
// dB [out, r] from (p = dy, q = u), dA [r, in] from (p = x, mask, q = du).
template <typename T>
__device__ __forceinline__ void lora_bwd_outer_block(const T* __restrict__ p, const T* __restrict__ mask,
                                                     const float* __restrict__ q, const int* __restrict__ ids,
                                                     const float* __restrict__ scales, float* __restrict__ partial,
                                                     int rows, int cols, int r, int adapters, int chunk_rows,
                                                     int transposed, int* s_ids, float (*s_q)[RT_LORA_J]) {
    // Every thread reads the same ids[i] and q[i, j0 .. j0+8) for a row: staged 32 rows at a time
    // by the whole block (s_ids [32], s_q [32][RT_LORA_J] in shared memory) in coalesced loads
    // instead of as broadcast loads of one float per sector.
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    const bool live = c < cols;  // no early return: every thread helps stage and meets the barriers
    const int j0 = blockIdx.y * RT_LORA_J;
    const int chunk = blockIdx.z / adapters, adapter = blockIdx.z % adapters;
    const int first = chunk * chunk_rows, last = min(rows, first + chunk_rows);
    float acc[RT_LORA_J];
#pragma unroll
    for (int jj = 0; jj < RT_LORA_J; ++jj) acc[jj] = 0.0f;
    for (int i0 = first; i0 < last; i0 += 32) {
        const int n = min(32, last - i0);
        __syncthreads();  // the previous rows are read
        for (int e = threadIdx.x; e < 32; e += blockDim.x) s_ids[e] = e < n ? ids[i0 + e] : -1;
        for (int e = threadIdx.x; e < 32 * RT_LORA_J; e += blockDim.x) {
            const int ii = e / RT_LORA_J, jj = e % RT_LORA_J;
            s_q[ii][jj] = ii < n && j0 + jj < r ? q[(long long)(i0 + ii) * r + j0 + jj] : 0.0f;
        }
        __syncthreads();
        if (!live) continue;
        for (int ii = 0; ii < n; ++ii) {
            if (s_ids[ii] != adapter) continue;  // the same row for every thread: no divergence
            const long long i = i0 + ii;
            float g = rt_to_f32(p[i * cols + c]);
            if (mask) g *= rt_to_f32(mask[i * cols + c]);
#pragma unroll
            for (int jj = 0; jj < RT_LORA_J; ++jj) acc[jj] += g * s_q[ii][jj];
        }
    }
    if (!live) return;
    const float scale = scales ? scales[adapter] : 1.0f;
    float* out = partial + (long long)blockIdx.z * cols * r;
#pragma unroll
    for (int jj = 0; jj < RT_LORA_J; ++jj) {
        if (j0 + jj >= r) break;
        const long long at = transposed ? (long long)(j0 + jj) * cols + c : (long long)c * r + j0 + jj;
        out[at] = scale * acc[jj];
    }
}

// out[e] = Σ_chunk partial[chunk · n + e], chunks in order (deterministic).
extern "C" __global__ void lora_bwd_reduce_f32(const float* partial, float* out, int chunks, long long n) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int c = 0; c < chunks; ++c) s += partial[(long long)c * n + e];
        out[e] = s;
    }
}

// Static __shared__ storage is declared in the extern "C" kernels and handed to the templates:
// gcc ignores the section attribute the emulator gives __shared__ for a template's static
// locals, so shared memory declared inside a template would be invisible to the profiler.
#define RT_LORA_KERNELS(T, S)                                                                                \
    extern "C" __global__ void lora_shrink_##S(const T* x, const T* a, const int* ids, float* u, int in,     \
                                               int r, int adapters) {                                        \
        __shared__ float scratch[32];                                                                        \
        lora_reduce_row<T>(x, a, ids, nullptr, u, in, r, in, 1, adapters, scratch);                          \
    }                                                                                                        \
    extern "C" __global__ void lora_expand_##S(const float* u, const T* b, const int* ids,                   \
                                               const float* scales, T* y, int out, int r,                    \
                                               int adapters) {                                               \
        lora_expand_row<T>(u, b, ids, scales, y, out, r, adapters);                                          \
    }                                                                                                        \
    extern "C" __global__ void lora_bwd_du_##S(const T* dy, const T* b, const int* ids, const float* scales, \
                                               float* du, int out, int r, int adapters) {                    \
        __shared__ float scratch[32];                                                                        \
        lora_bwd_du_row<T>(dy, b, ids, scales, du, out, r, adapters, scratch);                               \
    }                                                                                                        \
    extern "C" __global__ void lora_bwd_dx_##S(const float* du, const T* a, const int* ids, const T* mask,   \
                                               T* dx, int in, int r, int adapters) {                         \
        lora_bwd_dx_row<T>(du, a, ids, mask, dx, in, r, adapters);                                           \
    }                                                                                                        \
    extern "C" __global__ void lora_bwd_outer_##S(const T* p, const T* mask, const float* q, const int* ids, \
                                                  const float* scales, float* partial, int rows, int cols,   \
                                                  int r, int adapters, int chunk_rows, int transposed) {     \
        __shared__ int s_ids[32];                                                                            \
        __shared__ float s_q[32][RT_LORA_J];                                                                 \
        lora_bwd_outer_block<T>(p, mask, q, ids, scales, partial, rows, cols, r, adapters, chunk_rows,       \
                                transposed, s_ids, s_q);                                                     \
    }

RT_LORA_KERNELS(float, f32)
RT_LORA_KERNELS(bf16_t, bf16)
RT_LORA_KERNELS(f16_t, f16)
