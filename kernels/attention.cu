// attention.cu — fused attention forward over the projections' layout: q [b, sq, hq, D],
// k/v [b, skv, hkv, D], out [b, sq, hq, D]; GQA (query head h reads kv head h / (hq / hkv));
// keys at positions >= len_b masked (len_b = key_lens[b] clamped into 0..skv, or skv); causal:
// query i sees keys j <= p = i + len_b - sq (its absolute position), so the last query aligns
// with the last valid key; a sliding window w > 0 (causal only) also hides keys j <= p - w
// (transformers' kv_idx > q_idx - sliding_window). A row that sees no key is written as zeros.
// f32 accumulation, online softmax (FlashAttention-2).
//
// Kernels, each stamped out for D in {32, 64, 80, 96, 128} and every float type:
//   attention_prefill_d<D>_<T>        a block per (query tile, q head, batch).
//     bf16/f16: 4 warps x 16 query rows; Q fragments stay in registers, K/V tiles of 64 keys are
//     staged in shared memory, S = Q·Kᵀ and O += P·V run on tensor cores (rt_mma m16n8k16); the
//     S accumulator's layout is exactly the A-fragment layout P needs, so P never leaves
//     registers. Tiles past the last key the tile's last query sees are skipped (causal), and
//     with a window so are the keys before the first one the tile's first query sees.
//     f32: plain FMA, 16 query rows per block, a lane per key (see attend_scalar).
//   attention_decode_split_d<D>_<T>   for a few queries (decode): the keys are split into chunks
//     across blocks so a small batch still fills the GPU; a block takes one chunk for up to 16
//     (query, head) rows of one kv head — the rows of a GQA group share each K/V tile — and
//     writes per row a partial (max, sum, unnormalised accumulator).
//   attention_decode_combine_d<D>_<T> merges the partials of each row (a block per row).
#include "rt_common.cuh"
#include "rt_async.cuh"
#include "rt_mma.cuh"

// Query i sees keys [rt_attn_first(...), rt_attn_visible(...)).
__device__ __forceinline__ int rt_attn_visible(int i, int sq, int len, int causal) {
    if (!causal) return len;
    const long long v = (long long)i + 1 + len - sq;
    return v < 0 ? 0 : (v > len ? len : (int)v);
}

// The first key query i sees: 0, or with a window w > 0 the w-th key back from its last.
__device__ __forceinline__ int rt_attn_first(int i, int sq, int len, int causal, int window) {
    const int end = rt_attn_visible(i, sq, len, causal);
    return causal && window > 0 && end > window ? end - window : 0;
}

__device__ __forceinline__ int rt_attn_len(const int* key_lens, int b, int skv) {
    if (!key_lens) return skv;
    const int l = key_lens[b];
    return l < 0 ? 0 : (l > skv ? skv : l);  // documented: the GPU clamps, the CPU rejects
}

// ---------------------------------------------------------------------------------------------
// Tensor-core prefill (bf16 / f16).
//
// Shared memory (dynamic, 4 · RT_ATTN_BK · (D + 8) · 2 bytes): four tiles of RT_ATTN_BK rows — K and V, two
// stages each — with a row stride of LD = D + 8 elements. D + 8 elements are an odd number of
// 16-byte units for every head dim, so any 8 consecutive rows at one column start in 8 distinct
// 16-byte bank groups: the 8 row addresses of an ldmatrix matrix, and the 8 rows a quarter-warp
// of the tile copy writes, are conflict free (an XOR swizzle needs a power-of-two row of 16-byte
// units, which D = 80 and 96 are not).
//
// Pipeline per block: Q (in stage 1's K buffer) and tile 0 are copied with cp.async as two
// commit groups; Q's fragments go to registers by ldmatrix. Per tile t: wait for tile t's group,
// one barrier (tile t visible to every warp, and every warp done with tile t - 1, whose stage
// tile t + 1 takes), issue tile t + 1's copies into the other stage, then S = Q·Kᵀ and O += P·V
// on tile t while they fly.

constexpr int RT_ATTN_BQ = 64;  // query rows per block: 4 warps x 16
constexpr int RT_ATTN_BK = 64;  // keys per shared-memory tile

// The (row, 16-byte chunk) a lane takes in unit u of a tile copy: a warp per unit of 8 rows x 4
// chunks, lane l at row 8·(u / CG) + l % 8, chunk 4·(u % CG) + l / 8 (CG = chunk groups per row).
// A quarter-warp covers one chunk of 8 consecutive rows (conflict free, see above) and the warp
// 64 contiguous bytes of each of 8 rows (whole 32-byte sectors: rows start 32-byte aligned).
template <int D> struct rt_attn_tile_map {
    static constexpr int C = D * 2 / 16;             // 16-byte chunks per row
    static constexpr int CG = (C + 3) / 4;           // groups of 4 chunks
    static constexpr int UNITS = RT_ATTN_BK / 8 * CG;  // a warp each
    __device__ __forceinline__ static int row(int u, int lane) { return u / CG * 8 + (lane & 7); }
    __device__ __forceinline__ static int chunk(int u, int lane) { return u % CG * 4 + (lane >> 3); }
};

// Starts the cp.async copies of rows [0, rows) of a tile (row r at src + r·stride) into dst (row
// stride LD); rows rows..RT_ATTN_BK-1 are zero-filled by plain stores (masked keys must hold
// finite values: P = 0 times garbage could be NaN). The caller commits and waits.
template <typename T, int D, int LD>
__device__ __forceinline__ void rt_attn_tile_async(T* dst, const T* src, long long stride, int rows) {
    typedef rt_attn_tile_map<D> map;
    const int lane = threadIdx.x & 31;
    for (int u = threadIdx.x >> 5; u < map::UNITS; u += blockDim.x >> 5) {
        const int r = map::row(u, lane), c = map::chunk(u, lane);
        if (c >= map::C) continue;
        T* to = dst + r * LD + c * 8;
        if (r < rows)
            rt_cp_async16(to, src + r * stride + c * 8);
        else
            *reinterpret_cast<uint4*>(to) = make_uint4(0u, 0u, 0u, 0u);
    }
}

template <typename T, int D>
__device__ __forceinline__ void rt_attn_prefill_mma(T* __restrict__ smem, const T* __restrict__ q,
                                                    const T* __restrict__ k, const T* __restrict__ v,
                                                    const int* __restrict__ key_lens, T* __restrict__ out, int sq,
                                                    int skv, int hq, int hkv, float scale, int causal, int window) {
    static_assert(sizeof(T) == 2, "the tensor-core prefill takes 16-bit elements");
    constexpr int LD = D + 8, TILE = RT_ATTN_BK * LD, KS = D / 16, NB = D / 8, SN = RT_ATTN_BK / 8;
    static_assert(NB % 2 == 0, "V fragments are loaded for two 8-dim blocks at a time");
    T* const kt[2] = {smem, smem + TILE};
    T* const vt[2] = {smem + 2 * TILE, smem + 3 * TILE};
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * RT_ATTN_BQ;
    const int hk = h / (hq / hkv);
    const int len = rt_attn_len(key_lens, b, skv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    const long long q_stride = (long long)hq * D, kv_stride = (long long)hkv * D;
    const T* qb = q + ((long long)b * sq * hq + h) * D;
    const T* kb = k + ((long long)b * skv * hkv + hk) * D;
    const T* vb = v + ((long long)b * skv * hkv + hk) * D;

    // This thread's two rows (g and g + 8 of the warp's 16) and the keys they see.
    const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
    int vis[2], lo[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        vis[r] = row[r] < sq ? rt_attn_visible(row[r], sq, len, causal) : 0;
        lo[r] = row[r] < sq ? rt_attn_first(row[r], sq, len, causal, window) : 0;
    }
    // Keys [kbeg, kend) cover every row of the tile: both ends grow with the query position.
    const int kend = rt_attn_visible(min(q0 + RT_ATTN_BQ, sq) - 1, sq, len, causal);
    const int kbeg = rt_attn_first(q0, sq, len, causal, window);
    const int tiles = kend > kbeg ? (kend - kbeg + RT_ATTN_BK - 1) / RT_ATTN_BK : 0;

    // Prologue: Q into stage 1's K buffer, tile 0 into stage 0 (two groups); Q's A fragments.
    rt_attn_tile_async<T, D, LD>(kt[1], qb + q0 * q_stride, q_stride, min(RT_ATTN_BQ, sq - q0));
    rt_cp_async_commit();
    if (tiles > 0) {
        const int rows = min(RT_ATTN_BK, kend - kbeg);
        rt_attn_tile_async<T, D, LD>(kt[0], kb + kbeg * kv_stride, kv_stride, rows);
        rt_attn_tile_async<T, D, LD>(vt[0], vb + kbeg * kv_stride, kv_stride, rows);
    }
    rt_cp_async_commit();
    rt_cp_async_wait<1>();
    __syncthreads();
    unsigned int qa[KS][4];
#pragma unroll
    for (int kk = 0; kk < KS; ++kk)
        rt_ldmatrix_x4(qa[kk], kt[1] + (warp * 16 + (lane & 15)) * LD + kk * 16 + (lane >> 4) * 8);

    float o[NB][4];
#pragma unroll
    for (int n = 0; n < NB; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
    float m[2] = {-CUDART_INF_F, -CUDART_INF_F}, l[2] = {0.0f, 0.0f};

    for (int tile = 0; tile < tiles; ++tile) {
        const int j0 = kbeg + tile * RT_ATTN_BK, cur = tile & 1;
        rt_cp_async_wait<0>();  // this thread's copies of tile `tile`
        // Every thread's copies of this tile are visible, and every warp is done with the
        // previous tile (and, at tile 0, with Q), whose stage the next tile's copies take.
        __syncthreads();
        if (tile + 1 < tiles) {
            const int j1 = j0 + RT_ATTN_BK, rows = min(RT_ATTN_BK, kend - j1);
            rt_attn_tile_async<T, D, LD>(kt[cur ^ 1], kb + j1 * kv_stride, kv_stride, rows);
            rt_attn_tile_async<T, D, LD>(vt[cur ^ 1], vb + j1 * kv_stride, kv_stride, rows);
        }
        rt_cp_async_commit();
        const T* ks = kt[cur];
        const T* vs = vt[cur];

        // S = Q·Kᵀ: B is Kᵀ (d x keys), i.e. K's rows read as N x K. One ldmatrix.x4 gives the
        // B fragments of two 8-key blocks (matrices: keys +0..7 / +8..15 x dims +0..7 / +8..15).
        float s[SN][4];
#pragma unroll
        for (int n = 0; n < SN; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KS; ++kk)
#pragma unroll
            for (int n = 0; n < SN; n += 2) {
                unsigned int bf[4];
                rt_ldmatrix_x4(bf, ks + (n * 8 + (lane & 7) + (lane >> 4) * 8) * LD + kk * 16 + ((lane >> 3) & 1) * 8);
                rt_mma_m16n8k16(s[n], qa[kk], bf, s[n], T());
                rt_mma_m16n8k16(s[n + 1], qa[kk], bf + 2, s[n + 1], T());
            }
        // Scale and mask; the running max per row (its 4 threads meet through shuffles).
        float mx[2] = {-CUDART_INF_F, -CUDART_INF_F};
#pragma unroll
        for (int n = 0; n < SN; ++n)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int r = i >> 1, col = j0 + n * 8 + 2 * t + (i & 1);
                s[n][i] = col >= lo[r] && col < vis[r] ? s[n][i] * scale : -CUDART_INF_F;
                mx[r] = fmaxf(mx[r], s[n][i]);
            }
        float base[2];
#pragma unroll
        for (int r = 0; r < 2; ++r) {
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(RT_FULL_MASK, mx[r], 1));
            mx[r] = fmaxf(mx[r], __shfl_xor_sync(RT_FULL_MASK, mx[r], 2));
            const float mn = fmaxf(m[r], mx[r]);
            // A row that has seen nothing yet keeps max −∞; subtract 0 then (exp(−∞) = 0).
            base[r] = mn == -CUDART_INF_F ? 0.0f : mn;
            const float corr = __expf(m[r] - base[r]);
            l[r] *= corr;
#pragma unroll
            for (int n = 0; n < NB; ++n) {
                o[n][2 * r] *= corr;
                o[n][2 * r + 1] *= corr;
            }
            m[r] = mn;
        }
        // P = exp(S − max), summed per thread (rows are completed across the 4 threads at the
        // end), then O += P·V with P's accumulator layout reused as the A fragment.
#pragma unroll
        for (int n = 0; n < SN; ++n)
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                s[n][i] = __expf(s[n][i] - base[i >> 1]);
                l[i >> 1] += s[n][i];
            }
#pragma unroll
        for (int kk = 0; kk < RT_ATTN_BK / 16; ++kk) {
            unsigned int pa[4];
            pa[0] = rt_mma_pack(rt_from_f32<T>(s[2 * kk][0]), rt_from_f32<T>(s[2 * kk][1]));
            pa[1] = rt_mma_pack(rt_from_f32<T>(s[2 * kk][2]), rt_from_f32<T>(s[2 * kk][3]));
            pa[2] = rt_mma_pack(rt_from_f32<T>(s[2 * kk + 1][0]), rt_from_f32<T>(s[2 * kk + 1][1]));
            pa[3] = rt_mma_pack(rt_from_f32<T>(s[2 * kk + 1][2]), rt_from_f32<T>(s[2 * kk + 1][3]));
            // B is V (keys x d), row-major: ldmatrix.trans gives its fragments, two 8-dim blocks
            // per x4 (matrices: keys +0..7 / +8..15 x dims +0..7 / +8..15).
#pragma unroll
            for (int n = 0; n < NB; n += 2) {
                unsigned int bf[4];
                rt_ldmatrix_x4_trans(bf, vs + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * LD + n * 8 + (lane >> 4) * 8);
                rt_mma_m16n8k16(o[n], pa, bf, o[n], T());
                rt_mma_m16n8k16(o[n + 1], pa, bf + 2, o[n + 1], T());
            }
        }
    }

    // The output tile goes through shared memory so that it leaves in whole 16-byte vectors per
    // row (written straight from the accumulator layout, each store would cover 4 bytes of every
    // 16): the K buffer of the stage the last tile did not use, which every warp finished reading
    // before the last tile's barrier and no copy targets.
    T* os = kt[tiles & 1];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
        l[r] += __shfl_xor_sync(RT_FULL_MASK, l[r], 1);
        l[r] += __shfl_xor_sync(RT_FULL_MASK, l[r], 2);
        const float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // no key seen: zeros
        T* srow = os + (warp * 16 + g + 8 * r) * LD;
#pragma unroll
        for (int n = 0; n < NB; ++n)
            *reinterpret_cast<unsigned int*>(srow + n * 8 + 2 * t) =
                rt_mma_pack(rt_from_f32<T>(o[n][2 * r] * inv), rt_from_f32<T>(o[n][2 * r + 1] * inv));
    }
    __syncthreads();
    typedef rt_attn_tile_map<D> map;
    for (int u = warp; u < map::UNITS; u += blockDim.x >> 5) {
        const int r = map::row(u, lane), c = map::chunk(u, lane);
        if (c >= map::C || q0 + r >= sq) continue;
        T* orow = out + (((long long)b * sq + q0 + r) * hq + h) * D;
        reinterpret_cast<uint4*>(orow)[c] = reinterpret_cast<const uint4*>(os + r * LD)[c];
    }
}

// ---------------------------------------------------------------------------------------------
// Scalar path (f32 prefill, and decode in every type): a block of 4 warps holds up to 16 rows
// (a row = one query position of one query head, all reading the same kv head); each warp owns
// 4 rows. Per key tile, lane j scores key j against a row (a dot product over shared memory,
// the K tile padded so the lanes' rows fall in distinct banks), the warp reduces max and sum by
// shuffles, and each lane accumulates its own dims (lane, lane + 32, ...) of P·V, the
// probabilities broadcast lane by lane.

constexpr int RT_ATTN_SK = 32;  // keys per tile: one per lane
constexpr int RT_ATTN_SR = 16;  // rows per block
constexpr int RT_ATTN_RPW = 4;  // rows per warp

template <int D> struct rt_attn_scalar_smem {
    float qs[RT_ATTN_SR][D];  // pre-scaled query rows
    float ks[RT_ATTN_SK][D + 1];
    float vs[RT_ATTN_SK][D];
    long long row_q[RT_ATTN_SR];  // element offset of the row's query (and output); -1: no row
    int row_lo[RT_ATTN_SR];       // keys [row_lo, row_vis) visible
    int row_vis[RT_ATTN_SR];
};

// The running state of this warp's rows over keys [kbeg, kend) of kv rows at kb (stride between
// positions kv_stride). The caller filled qs, row_q and row_vis and passed a barrier.
template <typename T, int D>
__device__ __forceinline__ void rt_attn_scalar(rt_attn_scalar_smem<D>& sm, const T* __restrict__ kb,
                                               const T* __restrict__ vb, long long kv_stride, int kbeg,
                                               int kend, float m[RT_ATTN_RPW], float l[RT_ATTN_RPW],
                                               float acc[RT_ATTN_RPW][(D + 31) / 32]) {
    constexpr int DL = (D + 31) / 32;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int rr = 0; rr < RT_ATTN_RPW; ++rr) {
        m[rr] = -CUDART_INF_F;
        l[rr] = 0.0f;
        for (int c = 0; c < DL; ++c) acc[rr][c] = 0.0f;
    }
    for (int j0 = kbeg; j0 < kend; j0 += RT_ATTN_SK) {
        const int n = min(RT_ATTN_SK, kend - j0);
        for (int idx = threadIdx.x; idx < RT_ATTN_SK * D; idx += blockDim.x) {
            const int j = idx / D, dd = idx % D;
            const long long at = (j0 + j) * kv_stride + dd;
            sm.ks[j][dd] = j < n ? rt_to_f32(kb[at]) : 0.0f;
            sm.vs[j][dd] = j < n ? rt_to_f32(vb[at]) : 0.0f;
        }
        __syncthreads();
        for (int rr = 0; rr < RT_ATTN_RPW; ++rr) {
            const int r = warp * RT_ATTN_RPW + rr;
            if (sm.row_q[r] < 0) continue;  // warp-uniform
            float s = -CUDART_INF_F;
            if (lane < n && j0 + lane >= sm.row_lo[r] && j0 + lane < sm.row_vis[r]) {
                float dot = 0.0f;
#pragma unroll 8
                for (int dd = 0; dd < D; ++dd) dot = fmaf(sm.qs[r][dd], sm.ks[lane][dd], dot);
                s = dot;
            }
            const float mn = fmaxf(m[rr], rt_warp_max(s));
            if (mn == -CUDART_INF_F) continue;  // nothing visible yet (uniform: a warp reduction)
            const float corr = expf(m[rr] - mn);
            const float p = expf(s - mn);
            l[rr] = l[rr] * corr + rt_warp_sum(p);
            for (int c = 0; c < DL; ++c) acc[rr][c] *= corr;
            for (int j = 0; j < n; ++j) {
                const float pj = __shfl_sync(RT_FULL_MASK, p, j);
#pragma unroll
                for (int c = 0; c < DL; ++c)
                    if (lane + 32 * c < D) acc[rr][c] = fmaf(pj, sm.vs[j][lane + 32 * c], acc[rr][c]);
            }
            m[rr] = mn;
        }
        __syncthreads();  // the next tile overwrites ks / vs
    }
}

template <typename T, int D>
__device__ __forceinline__ void rt_attn_fill_row(rt_attn_scalar_smem<D>& sm, int r, const T* __restrict__ q,
                                                 long long at, int lo, int vis, float scale) {
    if (threadIdx.x == 0) {
        sm.row_q[r] = at;
        sm.row_lo[r] = lo;
        sm.row_vis[r] = vis;
    }
    for (int dd = threadIdx.x; dd < D; dd += blockDim.x) sm.qs[r][dd] = at < 0 ? 0.0f : rt_to_f32(q[at + dd]) * scale;
}

// Runs keys [kbeg, kend) of kv head `hk` (batch `b`) over the staged rows, then hands each live
// row's running max, sum and unnormalised accumulator (its lane's DL dims) to `emit(at, lane, m,
// l, acc)`. Prefill normalises into out; the split decode writes partials for the combine.
template <typename T, int D, typename Emit>
__device__ __forceinline__ void rt_attn_scalar_rows(rt_attn_scalar_smem<D>& sm, const T* __restrict__ k,
                                                    const T* __restrict__ v, int b, int skv, int hkv, int hk,
                                                    int kbeg, int kend, Emit emit) {
    constexpr int DL = (D + 31) / 32;
    const long long kv_stride = (long long)hkv * D;
    const long long kv0 = ((long long)b * skv * hkv + hk) * D;
    float m[RT_ATTN_RPW], l[RT_ATTN_RPW], acc[RT_ATTN_RPW][DL];
    rt_attn_scalar<T, D>(sm, k + kv0, v + kv0, kv_stride, kbeg, kend, m, l, acc);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int rr = 0; rr < RT_ATTN_RPW; ++rr) {
        const long long at = sm.row_q[warp * RT_ATTN_RPW + rr];
        if (at < 0) continue;
        emit(at, lane, m[rr], l[rr], acc[rr]);
    }
}

template <typename T, int D>
__device__ __forceinline__ void rt_attn_prefill_scalar(rt_attn_scalar_smem<D>& sm, const T* __restrict__ q, const T* __restrict__ k,
                                                       const T* __restrict__ v, const int* __restrict__ key_lens,
                                                       T* __restrict__ out, int sq, int skv, int hq, int hkv,
                                                       float scale, int causal, int window) {
    constexpr int DL = (D + 31) / 32;
    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * RT_ATTN_SR;
    const int hk = h / (hq / hkv);
    const int len = rt_attn_len(key_lens, b, skv);
    for (int r = 0; r < RT_ATTN_SR; ++r) {
        const int i = q0 + r;
        const long long at = i < sq ? (((long long)b * sq + i) * hq + h) * D : -1;
        const bool live = i < sq;
        rt_attn_fill_row<T, D>(sm, r, q, at, live ? rt_attn_first(i, sq, len, causal, window) : 0,
                               live ? rt_attn_visible(i, sq, len, causal) : 0, scale);
    }
    __syncthreads();
    const int kend = rt_attn_visible(min(q0 + RT_ATTN_SR, sq) - 1, sq, len, causal);
    const int kbeg = rt_attn_first(q0, sq, len, causal, window);
    rt_attn_scalar_rows<T, D>(sm, k, v, b, skv, hkv, hk, kbeg, kend,
                              [&](long long at, int lane, float, float l, const float* acc) {
                                  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
                                  for (int c = 0; c < DL; ++c)
                                      if (lane + 32 * c < D) out[at + lane + 32 * c] = rt_from_f32<T>(acc[c] * inv);
                              });
}

// ---------------------------------------------------------------------------------------------
// Split-KV decode. Grid: (splits, hkv x row chunks, batch). Row r of kv head hk is query
// position r / group of query head hk·group + r % group. Partial p of row R (R = the row's index
// in out, (b·sq + i)·hq + h) lives at pmax/psum[R·splits + p], pacc[(R·splits + p)·D ...].

template <typename T, int D>
__device__ __forceinline__ void rt_attn_decode_split(rt_attn_scalar_smem<D>& sm, const T* __restrict__ q,
                                                     const T* __restrict__ k, const T* __restrict__ v, const int* __restrict__ key_lens,
                                                     float* __restrict__ pmax, float* __restrict__ psum,
                                                     float* __restrict__ pacc, int sq, int skv, int hq, int hkv,
                                                     float scale, int causal, int window, int keys_per_split,
                                                     int chunks) {
    constexpr int DL = (D + 31) / 32;
    const int split = blockIdx.x, splits = gridDim.x, b = blockIdx.z;
    const int hk = blockIdx.y / chunks, r0 = (blockIdx.y % chunks) * RT_ATTN_SR;
    const int group = hq / hkv;
    const int len = rt_attn_len(key_lens, b, skv);
    // Keys [klo, kvis) cover every row of the block; the host sized the splits so that they
    // cover kvis - klo (at most the window plus sq - 1 keys when there is a window).
    int klo = skv, kvis = 0;
    for (int r = 0; r < RT_ATTN_SR; ++r) {
        const int rg = r0 + r, i = rg / group, h = hk * group + rg % group;
        const bool live = rg < group * sq;
        const int vis = live ? rt_attn_visible(i, sq, len, causal) : 0;
        const int lo = live ? rt_attn_first(i, sq, len, causal, window) : 0;
        kvis = max(kvis, vis);
        if (live) klo = min(klo, lo);
        rt_attn_fill_row<T, D>(sm, r, q, live ? (((long long)b * sq + i) * hq + h) * D : -1, lo, vis, scale);
    }
    __syncthreads();
    const int kbeg = min(klo, kvis) + split * keys_per_split, kend = min(kbeg + keys_per_split, kvis);
    rt_attn_scalar_rows<T, D>(sm, k, v, b, skv, hkv, hk, kbeg, kend,
                              [&](long long at, int lane, float m, float l, const float* acc) {
                                  const long long slot = (at / D) * splits + split;  // at / D: the row's index in out
                                  if (lane == 0) {
                                      pmax[slot] = m;
                                      psum[slot] = l;
                                  }
                                  for (int c = 0; c < DL; ++c)
                                      if (lane + 32 * c < D) pacc[slot * D + lane + 32 * c] = acc[c];
                              });
}

// A block per output row; thread d combines dim d over the splits:
// out = Σ_p acc_p · e^(m_p − M) / Σ_p l_p · e^(m_p − M), M = max_p m_p (zeros when no split saw a key).
template <typename T, int D>
__device__ __forceinline__ void rt_attn_decode_combine(const float* __restrict__ pmax, const float* __restrict__ psum,
                                                       const float* __restrict__ pacc, T* __restrict__ out,
                                                       int splits) {
    const long long row = blockIdx.x;
    const float* mrow = pmax + row * splits;
    float mx = -CUDART_INF_F;
    for (int p = 0; p < splits; ++p) mx = fmaxf(mx, mrow[p]);
    for (int dd = threadIdx.x; dd < D; dd += blockDim.x) {
        float num = 0.0f, den = 0.0f;
        if (mx != -CUDART_INF_F) {
            for (int p = 0; p < splits; ++p) {
                const float w = mrow[p] == -CUDART_INF_F ? 0.0f : expf(mrow[p] - mx);
                den += psum[row * splits + p] * w;
                num += pacc[(row * splits + p) * D + dd] * w;
            }
        }
        out[row * D + dd] = rt_from_f32<T>(den > 0.0f ? num / den : 0.0f);
    }
}

// ---------------------------------------------------------------------------------------------

// Static __shared__ storage is declared in the extern "C" kernels, never inside the templates:
// gcc ignores the section attribute the emulator gives __shared__ for a template's static
// locals (they go to COMDAT .bss sections), which left them unpoisoned, unmeasured and invisible
// to the profiler. The tensor-core prefill takes dynamic shared memory.

#define RT_ATTN_ARGS_IN(T) const T *q, const T *k, const T *v, const int *key_lens
#define RT_ATTN_DECODE_KERNELS(T, S, D)                                                                     \
    extern "C" __global__ void __launch_bounds__(128)                                                       \
        attention_decode_split_d##D##_##S(RT_ATTN_ARGS_IN(T), float* pmax, float* psum, float* pacc, int sq, \
                                          int skv, int hq, int hkv, float scale, int causal, int window,    \
                                          int keys_per_split, int chunks) {                                 \
        __shared__ rt_attn_scalar_smem<D> sm;                                                               \
        rt_attn_decode_split<T, D>(sm, q, k, v, key_lens, pmax, psum, pacc, sq, skv, hq, hkv, scale, causal, \
                                   window, keys_per_split, chunks);                                         \
    }                                                                                                       \
    extern "C" __global__ void __launch_bounds__(128)                                                       \
        attention_decode_combine_d##D##_##S(const float* pmax, const float* psum, const float* pacc, T* out, \
                                            int splits) {                                                   \
        rt_attn_decode_combine<T, D>(pmax, psum, pacc, out, splits);                                        \
    }

#define RT_ATTN_PREFILL_ARGS(T) \
    RT_ATTN_ARGS_IN(T), T *out, int sq, int skv, int hq, int hkv, float scale, int causal, int window
#define RT_ATTN_KERNELS_SCALAR(T, S, D)                                                                 \
    extern "C" __global__ void __launch_bounds__(128)                                                  \
        attention_prefill_d##D##_##S(RT_ATTN_PREFILL_ARGS(T)) {                                         \
        __shared__ rt_attn_scalar_smem<D> sm;                                                          \
        rt_attn_prefill_scalar<T, D>(sm, q, k, v, key_lens, out, sq, skv, hq, hkv, scale, causal, window); \
    }                                                                                                  \
    RT_ATTN_DECODE_KERNELS(T, S, D)
// Launch: 4 · RT_ATTN_BK · (D + 8) · 2 bytes of dynamic shared memory (gpu/attention.rs).
#define RT_ATTN_KERNELS_MMA(T, S, D)                                                                    \
    extern "C" __global__ void __launch_bounds__(128)                                                  \
        attention_prefill_d##D##_##S(RT_ATTN_PREFILL_ARGS(T)) {                                         \
        RT_DYNAMIC_SHARED(T, smem);                                                                    \
        rt_attn_prefill_mma<T, D>(smem, q, k, v, key_lens, out, sq, skv, hq, hkv, scale, causal, window); \
    }                                                                                                  \
    RT_ATTN_DECODE_KERNELS(T, S, D)

#define RT_ATTN_ALL_D(KERNELS, T, S) \
    KERNELS(T, S, 32)                \
    KERNELS(T, S, 64)                \
    KERNELS(T, S, 80)                \
    KERNELS(T, S, 96)                \
    KERNELS(T, S, 128)

RT_ATTN_ALL_D(RT_ATTN_KERNELS_SCALAR, float, f32)
RT_ATTN_ALL_D(RT_ATTN_KERNELS_MMA, bf16_t, bf16)
RT_ATTN_ALL_D(RT_ATTN_KERNELS_MMA, f16_t, f16)

// Training: the gradients of the forward above (same layout, GQA, key_lens, causal alignment and
// sliding window), recomputing the probabilities from q and k, in two kernels that own their
// outputs — no atomics, so the result is also the same bit for bit from run to run:
//   attention_backward_dq_f32   a block per query row r = (batch, position, head). One pass over
//     the visible keys gives the row's log-sum-exp L and D = sum_j p_j (dO · v_j) (online, as the
//     forward's softmax); a second gives dq = scale · sum_j ds_j k_j with
//     ds_j = p_j (dO · v_j - D). L and D go to `stats` for the second kernel.
//   attention_backward_dkv_f32  a block per key row (batch, key, kv head): over the query rows
//     that see the key (every head of its GQA group), dk = scale · sum ds q and dv = sum p dO.
// In both, the block's own two rows (q and dO, or k and v) are staged in shared memory, and a
// warp takes one (query, key) pair at a time with its lanes splitting the head dim, so the other
// rows are read as contiguous 128-byte warp accesses; a lane accumulates the dims it owns (shared
// memory, one row per warp: any head dim works) and the warps' rows are summed at the end.
// f32 only: training keeps activations in f32.
#define RT_ATTN_BWD_WARPS 4

__device__ __forceinline__ float rt_attn_warp_dot(const float* a, const float* b, int d, int lane) {
    float s = 0.0f;
    for (int t = lane; t < d; t += 32) s += a[t] * b[t];
    return rt_warp_sum(s);
}

// Adds the per-warp accumulator rows acc[w * d ...] and writes the sum to out[0..d).
__device__ __forceinline__ void rt_attn_bwd_store(const float* acc, float* out, int d) {
    __syncthreads();
    for (int t = threadIdx.x; t < d; t += blockDim.x) {
        float sum = 0.0f;
        for (int w = 0; w < RT_ATTN_BWD_WARPS; ++w) sum += acc[w * d + t];
        out[t] = sum;
    }
}

// Copies the block's own rows a and b (d floats each) to shared memory at to and to + d.
__device__ __forceinline__ void rt_attn_bwd_stage(const float* a, const float* b, float* to, int d) {
    for (int t = threadIdx.x; t < d; t += blockDim.x) {
        to[t] = a[t];
        to[d + t] = b[t];
    }
    __syncthreads();
}

// Launch: RT_ATTN_BWD_WARPS * 32 threads, (RT_ATTN_BWD_WARPS + 2) * d floats of dynamic shared
// memory.
extern "C" __global__ void attention_backward_dq_f32(const float* __restrict__ q, const float* __restrict__ k,
                                                     const float* __restrict__ v, const float* __restrict__ dout,
                                                     float* __restrict__ dq, float* __restrict__ stats,
                                                     const int* __restrict__ key_lens, int sq, int skv, int hq,
                                                     int hkv, int d, int causal, float scale, int window) {
    __shared__ float scratch[32];
    RT_DYNAMIC_SHARED(float, acc);
    const long long r = blockIdx.x;  // ((b * sq) + i) * hq + h
    const int h = (int)(r % hq);
    const int i = (int)((r / hq) % sq);
    const int b = (int)(r / ((long long)hq * sq));
    const int hk = h / (hq / hkv);
    const int len = rt_attn_len(key_lens, b, skv);
    const int n = rt_attn_visible(i, sq, len, causal), j0 = rt_attn_first(i, sq, len, causal, window);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float* qi = acc + RT_ATTN_BWD_WARPS * d;
    const float* doi = qi + d;
    rt_attn_bwd_stage(q + r * d, dout + r * d, acc + RT_ATTN_BWD_WARPS * d, d);
    const long long kv0 = ((long long)b * skv) * hkv + hk;  // row of key 0 of this kv head
    // Pass 1, online over this warp's keys: running max m, sum l of exp(s - m), and
    // dsum = sum exp(s - m) (dO · v_j).
    float m = -CUDART_INF_F, l = 0.0f, dsum = 0.0f;
    for (int j = j0 + warp; j < n; j += RT_ATTN_BWD_WARPS) {
        const long long at = (kv0 + (long long)j * hkv) * d;
        const float s = scale * rt_attn_warp_dot(qi, k + at, d, lane);
        const float dp = rt_attn_warp_dot(doi, v + at, d, lane);
        const float mn = fmaxf(m, s);
        const float c = expf(m - mn), e = expf(s - mn);
        l = l * c + e;
        dsum = dsum * c + e * dp;
        m = mn;
    }
    const float big_m = rt_block_max(m, scratch);
    // Every lane of a warp holds its warp's (m, l, dsum): lane 0 speaks for it. A warp that saw
    // no key adds 0.
    const float c = lane != 0 || m == -CUDART_INF_F ? 0.0f : expf(m - big_m);
    const float big_l = rt_block_sum(l * c, scratch);
    const float big_d = n > j0 ? rt_block_sum(dsum * c, scratch) / big_l : 0.0f;
    const float lse = n > j0 ? big_m + logf(big_l) : CUDART_INF_F;  // +inf: p = 0 for every key
    if (threadIdx.x == 0) {
        stats[2 * r] = lse;
        stats[2 * r + 1] = big_d;
    }
    // Pass 2: dq over the same keys, each warp into its own accumulator row.
    float* mine = acc + warp * d;
    for (int t = lane; t < d; t += 32) mine[t] = 0.0f;
    for (int j = j0 + warp; j < n; j += RT_ATTN_BWD_WARPS) {
        const long long at = (kv0 + (long long)j * hkv) * d;
        const float p = expf(scale * rt_attn_warp_dot(qi, k + at, d, lane) - lse);
        const float ds = p * (rt_attn_warp_dot(doi, v + at, d, lane) - big_d) * scale;
        for (int t = lane; t < d; t += 32) mine[t] += ds * k[at + t];
    }
    rt_attn_bwd_store(acc, dq + r * d, d);
}

// Launch: RT_ATTN_BWD_WARPS * 32 threads, (2 * RT_ATTN_BWD_WARPS + 2) * d floats of dynamic
// shared memory; `stats` as attention_backward_dq_f32 wrote it.
extern "C" __global__ void attention_backward_dkv_f32(const float* __restrict__ q, const float* __restrict__ k,
                                                      const float* __restrict__ v, const float* __restrict__ dout,
                                                      const float* __restrict__ stats, float* __restrict__ dk,
                                                      float* __restrict__ dv, const int* __restrict__ key_lens,
                                                      int sq, int skv, int hq, int hkv, int d, int causal,
                                                      float scale, int window) {
    RT_DYNAMIC_SHARED(float, acc);
    const long long row = blockIdx.x;  // ((b * skv) + j) * hkv + hk
    const int hk = (int)(row % hkv);
    const int j = (int)((row / hkv) % skv);
    const int b = (int)(row / ((long long)hkv * skv));
    const int group = hq / hkv;
    const int len = rt_attn_len(key_lens, b, skv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const float* kj = acc + 2 * RT_ATTN_BWD_WARPS * d;
    const float* vj = kj + d;
    rt_attn_bwd_stage(k + row * d, v + row * d, acc + 2 * RT_ATTN_BWD_WARPS * d, d);
    float* dk_acc = acc + warp * d;
    float* dv_acc = acc + (RT_ATTN_BWD_WARPS + warp) * d;
    for (int t = lane; t < d; t += 32) dk_acc[t] = dv_acc[t] = 0.0f;
    // The query rows of this kv head's group, position-major; a row takes part when key j lies in
    // its visible range (the condition is the same for every lane, so warps never diverge).
    for (int g = warp; g < sq * group; g += RT_ATTN_BWD_WARPS) {
        const int i = g / group, h = hk * group + g % group;
        const int n = rt_attn_visible(i, sq, len, causal), j0 = rt_attn_first(i, sq, len, causal, window);
        if (j < j0 || j >= n) continue;
        const long long r = ((long long)b * sq + i) * hq + h;
        const float* qi = q + r * d;
        const float* doi = dout + r * d;
        const float p = expf(scale * rt_attn_warp_dot(qi, kj, d, lane) - stats[2 * r]);
        const float ds = p * (rt_attn_warp_dot(doi, vj, d, lane) - stats[2 * r + 1]) * scale;
        for (int t = lane; t < d; t += 32) {
            dk_acc[t] += ds * qi[t];
            dv_acc[t] += p * doi[t];
        }
    }
    rt_attn_bwd_store(acc, dk + row * d, d);
    rt_attn_bwd_store(acc + RT_ATTN_BWD_WARPS * d, dv + row * d, d);
}
