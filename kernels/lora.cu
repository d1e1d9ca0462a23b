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
#include "rt_async.cuh"
#include "rt_mma.cuh"

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

// ---------------------------------------------------------------------------------------------
// The grouped (SGMV) path for bf16 / f16 batches of many rows: rows are grouped by adapter, so a
// block multiplies up to 64 rows of one adapter by that adapter's weights on tensor cores
// (mma.sync m16n8k16, f32 accumulate), reading each weight once per 64 rows instead of once per
// row as the row kernels do.
//
// lora_segments (one block) builds the table both products launch over, in one int workspace:
//   seg   [adapters + 2]   rows of adapter a are order[seg[a] .. seg[a + 1]); bucket `adapters`
//                          holds the rows of no adapter (id -1 or past the bank), whose u the
//                          shrink must zero
//   cur   [adapters + 1]   placement cursors
//   order [rows]           row indices grouped by bucket
//   tiles [2 · max_tiles]  (bucket, first position in order) per tile of RT_SGMV_BM rows; -1 past
//                          the last tile. max_tiles = ceil(rows / BM) + min(adapters + 1, rows)
//                          bounds the count whatever the ids are (one partial tile per bucket).
// Rows are placed by atomics, so their order within a segment varies from run to run; nothing
// depends on it: every output row is its own dot products, summed in the same order whichever
// tile rows it shares.
#define RT_SGMV_BM 64  // rows per tile: 4 warps x 16
#define RT_SGMV_BK 64  // in-columns per shrink stage
#define RT_SGMV_BN 64  // out-columns per expand block

extern "C" __global__ void lora_segments_i32(const int* __restrict__ ids, int* __restrict__ work, int rows,
                                             int adapters, int max_tiles) {
    int* seg = work;
    int* cur = seg + adapters + 2;
    int* order = cur + adapters + 1;
    int* tiles = order + rows;
    for (int a = threadIdx.x; a <= adapters + 1; a += blockDim.x) seg[a] = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < rows; i += blockDim.x) {
        const int id = ids[i];
        atomicAdd(&seg[(id >= 0 && id < adapters ? id : adapters) + 1], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        // Prefix sums and the tile list: O(adapters + tiles), small next to the products.
        int n = 0;
        for (int a = 0; a <= adapters; ++a) {
            seg[a + 1] += seg[a];
            cur[a] = seg[a];
            for (int s = seg[a]; s < seg[a + 1]; s += RT_SGMV_BM, ++n) {
                tiles[2 * n] = a;
                tiles[2 * n + 1] = s;
            }
        }
        for (; n < max_tiles; ++n) tiles[2 * n] = -1;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < rows; i += blockDim.x) {
        const int id = ids[i];
        order[atomicAdd(&cur[id >= 0 && id < adapters ? id : adapters], 1)] = i;
    }
}

// This block's tile: its bucket (-1: no tile, the block has nothing to do; `adapters`: rows of
// no adapter), and the rows it takes staged in s_rows (BM entries, -1 past the segment's end).
// Uniform across the block.
__device__ __forceinline__ int rt_sgmv_tile(const int* __restrict__ work, int rows, int adapters, int* s_rows) {
    const int* seg = work;
    const int* order = seg + 2 * adapters + 3;
    const int* tiles = order + rows;
    const int adapter = tiles[2 * blockIdx.x];
    if (adapter < 0) return -1;
    const int first = tiles[2 * blockIdx.x + 1], n = min(RT_SGMV_BM, seg[adapter + 1] - first);
    for (int i = threadIdx.x; i < RT_SGMV_BM; i += blockDim.x) s_rows[i] = i < n ? order[first + i] : -1;
    __syncthreads();
    return adapter;
}

// Copies a rows x RT_SGMV_BK tile of row-major `src` (row i at src + rowoff(i) · ld, columns
// k0 ..) into `dst` (row stride LD elements): 16-byte cp.async copies when every row is 16-byte
// aligned (`vec`), element loads otherwise; columns past `cols` are zero. Rows with rowoff < 0
// (past the segment, or ranks past r) are not written: row i of an mma product depends on row i
// of A only (and column n on row n of the N x K operand), so what they hold reaches only
// outputs that are never stored, and skipping them saves the copies. Lanes take 8 consecutive
// 16-byte chunks of one row per quarter-warp: a whole 128-byte row segment (4 sectors) per
// quarter, conflict-free 16-byte stores. The caller commits and waits.
template <typename T, int LD, typename RowOff>
__device__ __forceinline__ void rt_sgmv_stage(T* dst, const T* __restrict__ src, RowOff rowoff, int rows, int k0,
                                              int cols, long long ld, bool vec) {
    constexpr int C = RT_SGMV_BK / 8;  // 16-byte chunks per tile row
    for (int e = threadIdx.x; e < rows * C; e += blockDim.x) {
        const int i = e / C, c = e % C, k = k0 + c * 8;
        const long long off = rowoff(i);
        T* to = dst + i * LD + c * 8;
        if (off < 0) continue;
        if (vec && k < cols) {
            rt_cp_async16(to, src + off * ld + k);
        } else if (k < cols) {
#pragma unroll
            for (int q = 0; q < 8; ++q) to[q] = k + q < cols ? src[off * ld + k + q] : rt_from_f32<T>(0.0f);
        } else {
            *reinterpret_cast<uint4*>(to) = make_uint4(0u, 0u, 0u, 0u);
        }
    }
}

// acc[n] += rows warp·16 .. +16 of `mk` (M x K, row stride LD) · the N x K tile `nk`ᵀ, columns
// k0 .. k0 + 16, for n-tiles 0 .. NT. Fragments by ldmatrix: A's four 8x8 matrices from lanes'
// rows (lane & 15) at column halves (lane >> 4); the N x K operand's matrices (n, k), (n, k + 8),
// (n + 8, k), (n + 8, k + 8) give two n-tiles' B fragments per ldmatrix.x4.
template <typename T, int NT, int LD>
__device__ __forceinline__ void rt_sgmv_mma_k16(float (&acc)[NT][4], const T* mk, const T* nk, int k0) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    unsigned int af[4];
    rt_ldmatrix_x4(af, mk + (warp * 16 + (lane & 15)) * LD + k0 + (lane >> 4) * 8);
#pragma unroll
    for (int n = 0; n < NT; n += 2) {
        unsigned int bf[4];
        rt_ldmatrix_x4(bf, nk + (n * 8 + (lane & 7) + (lane >> 4) * 8) * LD + k0 + ((lane >> 3) & 1) * 8);
        rt_mma_m16n8k16(acc[n], af, bf, acc[n], T());
        rt_mma_m16n8k16(acc[n + 1], af, bf + 2, acc[n + 1], T());
    }
}

// u[row, :r] = x[row, :] · A[adapter]ᵀ for the tile's rows, RP = r rounded up to 16 (≤ 64).
// Dynamic shared memory: two stages of (BM + RP) rows x LD elements, LD = BK + 8 (an odd number
// of 16-byte units: ldmatrix's 8 row addresses fall in 8 distinct bank groups). Stage t + 1's
// copies fly while stage t is multiplied.
template <typename T, int RP>
__device__ __forceinline__ void lora_sgmv_shrink_tile(T* smem, int* s_rows, const T* __restrict__ x,
                                                      const T* __restrict__ a, const int* __restrict__ work,
                                                      float* __restrict__ u, int rows, int in, int r,
                                                      int adapters) {
    constexpr int LD = RT_SGMV_BK + 8, NT = RP / 8, STAGE = (RT_SGMV_BM + RP) * LD;
    const int adapter = rt_sgmv_tile(work, rows, adapters, s_rows);
    if (adapter < 0) return;
    if (adapter == adapters) {  // rows of no adapter: u = 0, as the row kernel gives them
        for (int e = threadIdx.x; e < RT_SGMV_BM * r; e += blockDim.x)
            if (s_rows[e / r] >= 0) u[(long long)s_rows[e / r] * r + e % r] = 0.0f;
        return;
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const T* aa = a + (long long)adapter * r * in;
    const bool vec = in % 8 == 0 && (reinterpret_cast<size_t>(x) | reinterpret_cast<size_t>(a)) % 16 == 0;
    auto xrow = [&](int i) { return (long long)s_rows[i]; };
    auto arow = [&](int i) { return i < r ? (long long)i : -1LL; };
    auto stage = [&](int s, int k0) {
        T* xs = smem + s * STAGE;
        rt_sgmv_stage<T, LD>(xs, x, xrow, RT_SGMV_BM, k0, in, in, vec);
        rt_sgmv_stage<T, LD>(xs + RT_SGMV_BM * LD, aa, arow, RP, k0, in, in, vec);
        rt_cp_async_commit();
    };
    float acc[NT][4] = {};
    const int steps = (in + RT_SGMV_BK - 1) / RT_SGMV_BK;
    stage(0, 0);
    for (int t = 0; t < steps; ++t) {
        // Stage t + 1 goes into the buffer stage t - 1 used: every warp finished it at the
        // barrier ending the last iteration.
        if (t + 1 < steps) stage((t + 1) & 1, (t + 1) * RT_SGMV_BK);
        else rt_cp_async_commit();  // an empty group keeps the wait count uniform
        rt_cp_async_wait<1>();
        __syncthreads();  // stage t landed for every thread's copies
        const T* xs = smem + (t & 1) * STAGE;
        const T* as = xs + RT_SGMV_BM * LD;
#pragma unroll
        for (int kk = 0; kk < RT_SGMV_BK / 16; ++kk) rt_sgmv_mma_k16<T, NT, LD>(acc, xs, as, kk * 16);
        __syncthreads();  // every warp is done with stage t before stage t + 2 overwrites it
    }
    const int g = lane >> 2, tq = lane & 3;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const int row = s_rows[warp * 16 + g + 8 * h];
        if (row < 0) continue;
        float* ur = u + (long long)row * r;
#pragma unroll
        for (int n = 0; n < NT; ++n) {
            const int col = n * 8 + 2 * tq;
            if (col + 1 < r && r % 2 == 0) {
                *reinterpret_cast<float2*>(ur + col) = make_float2(acc[n][2 * h], acc[n][2 * h + 1]);
            } else {
                if (col < r) ur[col] = acc[n][2 * h];
                if (col + 1 < r) ur[col + 1] = acc[n][2 * h + 1];
            }
        }
    }
}

// A 16-bit element from its bits (the inverse of one half of rt_mma_pack).
template <typename T> __device__ __forceinline__ T rt_sgmv_unpack(unsigned int bits);
template <> __device__ __forceinline__ bf16_t rt_sgmv_unpack<bf16_t>(unsigned int bits) {
    return __ushort_as_bfloat16((unsigned short)bits);
}
template <> __device__ __forceinline__ f16_t rt_sgmv_unpack<f16_t>(unsigned int bits) {
    return __ushort_as_half((unsigned short)bits);
}

// y[row, c0 .. c0 + BN) += scale[adapter] · u[row, :r] · B[adapter][c, :r]ᵀ for the tile's rows.
// u is f32; the tensor cores take it as hi + lo, two values of T (hi = T(u), lo = T(u - hi)),
// so the products keep ~16 of u's 24 bits instead of T's 8 or 11 and the result matches the row
// kernel's f32 arithmetic to about 2^-17 relative (f16: for |u| < 65504, the f16 range). K = r
// is small: the extra mma is cheaper than any f32 path. The f32 products go through shared
// memory so that a warp reads and writes 128 contiguous bytes of one row of y (2 elements a lane).
// Dynamic shared memory: max(3 · BM · LDK · sizeof(T), BM · LDY · 4) bytes, LDK = RP + 8,
// LDY = BN + 4.
template <typename T, int RP>
__device__ __forceinline__ void lora_sgmv_expand_tile(T* smem, int* s_rows, const float* __restrict__ u,
                                                      const T* __restrict__ b, const int* __restrict__ work,
                                                      const float* __restrict__ scales, T* __restrict__ y,
                                                      int rows, int out, int r, int adapters) {
    constexpr int LDK = RP + 8, NT = RT_SGMV_BN / 8, LDY = RT_SGMV_BN + 4;
    static_assert(RT_SGMV_BN == 64, "the product tile's column order below assumes 64 columns");
    const int adapter = rt_sgmv_tile(work, rows, adapters, s_rows);
    if (adapter < 0 || adapter == adapters) return;  // rows of no adapter keep their y
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int c0 = blockIdx.y * RT_SGMV_BN;
    const T* bb = b + (long long)adapter * out * r;
    T* uh = smem;
    T* ul = uh + RT_SGMV_BM * LDK;
    T* bs = ul + RT_SGMV_BM * LDK;
    // u's rows (hi and lo) and B's rows c0 .. c0 + BN: contiguous runs of r elements, read in
    // consecutive order by consecutive threads.
    for (int e = threadIdx.x; e < RT_SGMV_BM * RP; e += blockDim.x) {
        const int i = e / RP, j = e % RP, row = s_rows[i];
        const float v = row >= 0 && j < r ? u[(long long)row * r + j] : 0.0f;
        const T hi = rt_from_f32<T>(v);
        uh[i * LDK + j] = hi;
        ul[i * LDK + j] = rt_from_f32<T>(v - rt_to_f32(hi));
    }
    for (int e = threadIdx.x; e < RT_SGMV_BN * RP; e += blockDim.x) {
        const int c = e / RP, j = e % RP;
        bs[c * LDK + j] = c0 + c < out && j < r ? bb[(long long)(c0 + c) * r + j] : rt_from_f32<T>(0.0f);
    }
    __syncthreads();
    float acc[NT][4] = {};
#pragma unroll
    for (int kk = 0; kk < RP / 16; ++kk) {
        rt_sgmv_mma_k16<T, NT, LDK>(acc, uh, bs, kk * 16);
        rt_sgmv_mma_k16<T, NT, LDK>(acc, ul, bs, kk * 16);
    }
    __syncthreads();  // the operand tiles are read: ys takes their place
    float* ys = reinterpret_cast<float*>(smem);
    const float s = scales ? scales[adapter] : 1.0f;
    const int g = lane >> 2, tq = lane & 3;
    // Column c of a product row lives at (c & 1) · 32 + c / 2: lane l's two columns 2l, 2l + 1
    // are then words l and 32 + l (two conflict-free 4-byte loads). The accumulator stores put
    // rows g = 0..7 at 4g + tq + 4n (mod 32) with LDY = 68: conflict free too.
#pragma unroll
    for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            float* yrow = ys + (warp * 16 + g + 8 * h) * LDY + n * 4 + tq;
            yrow[0] = s * acc[n][2 * h];
            yrow[32] = s * acc[n][2 * h + 1];
        }
    __syncthreads();
    // y += products, 2 columns per lane: a warp covers 128 contiguous bytes of one row of y.
    const bool vec = out % 2 == 0 && reinterpret_cast<size_t>(y) % 4 == 0;
    for (int e = threadIdx.x; e < RT_SGMV_BM * (RT_SGMV_BN / 2); e += blockDim.x) {
        const int i = e / (RT_SGMV_BN / 2), l = e % (RT_SGMV_BN / 2), c = c0 + 2 * l, row = s_rows[i];
        if (row < 0 || c >= out) continue;
        T* yr = y + (long long)row * out + c;
        const float d0 = ys[i * LDY + l], d1 = ys[i * LDY + 32 + l];
        if (vec) {
            const unsigned int w = *reinterpret_cast<const unsigned int*>(yr);
            *reinterpret_cast<unsigned int*>(yr) =
                rt_mma_pack(rt_from_f32<T>(rt_to_f32(rt_sgmv_unpack<T>(w & 0xffffu)) + d0),
                            rt_from_f32<T>(rt_to_f32(rt_sgmv_unpack<T>(w >> 16)) + d1));
        } else {
            yr[0] = rt_from_f32<T>(rt_to_f32(yr[0]) + d0);
            if (c + 1 < out) yr[1] = rt_from_f32<T>(rt_to_f32(yr[1]) + d1);
        }
    }
}

// One kernel per type; RP (r rounded up to 16) picks the instantiation, so the accumulators stay
// in registers. r > 64 never comes here (gpu/lora.rs keeps it on the row kernels).
// Launch: grid max_tiles (x expand: ceil(out / BN) in y), 128 threads, the dynamic shared memory
// above for RP = 64 (the largest). Static shared memory is declared here, not in the templates
// (see RT_LORA_KERNELS).
#define RT_SGMV_DISPATCH(FN, T, ...)                         \
    switch ((r + 15) / 16) {                                 \
        case 1: FN<T, 16>(__VA_ARGS__); break;               \
        case 2: FN<T, 32>(__VA_ARGS__); break;               \
        case 3: FN<T, 48>(__VA_ARGS__); break;               \
        default: FN<T, 64>(__VA_ARGS__); break;              \
    }
#define RT_SGMV_KERNELS(T, S)                                                                               \
    extern "C" __global__ void lora_sgmv_shrink_##S(const T* x, const T* a, const int* work, float* u,       \
                                                    int rows, int in, int r, int adapters) {                \
        __shared__ int s_rows[RT_SGMV_BM];                                                                  \
        RT_DYNAMIC_SHARED(T, smem);                                                                         \
        RT_SGMV_DISPATCH(lora_sgmv_shrink_tile, T, smem, s_rows, x, a, work, u, rows, in, r, adapters)      \
    }                                                                                                       \
    extern "C" __global__ void lora_sgmv_expand_##S(const float* u, const T* b, const int* work,            \
                                                    const float* scales, T* y, int rows, int out, int r,    \
                                                    int adapters) {                                         \
        __shared__ int s_rows[RT_SGMV_BM];                                                                  \
        RT_DYNAMIC_SHARED(T, smem);                                                                         \
        RT_SGMV_DISPATCH(lora_sgmv_expand_tile, T, smem, s_rows, u, b, work, scales, y, rows, out, r,       \
                         adapters)                                                                          \
    }

RT_SGMV_KERNELS(bf16_t, bf16)
RT_SGMV_KERNELS(f16_t, f16)
