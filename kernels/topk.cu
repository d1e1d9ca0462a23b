// topk.cu — exact similarity search fused with top-k selection.
//
// Three paths (the op picks one by nq, k and n):
//   fused     (k <= 128, many queries) topk_fused_*: a block owns 64 queries x a slice of the
//             base, so the base is read once per 64 queries; 64 x 64 score tiles are computed in
//             registers (bf16/f16 through the m16n8k16 tensor-core MMA, f32 with FMA), parked in
//             shared memory, and folded into each query's running top-k in shared memory.
//             Scores never reach global memory: only the k best per (query, slice) do, and
//             topk_merge combines the slices.
//   streaming (k <= 128, nq <= 8) topk_stream_*: blocks own base slices and read every row
//             once, scoring it against all queries (memory-bandwidth bound), then topk_merge.
//   ivf       (topk_ivf: lists are contiguous row ranges of one base) topk_ivf_*: one block per
//             (query, probed list) streams the list's rows once, keeps a top-k in shared
//             memory, and topk_merge combines the nprobe partial lists of each query.
//   radix     (any k, 129..) scores come from one GEMM (cuBLAS), topk_radix_keys turns them
//             into order-preserving u32 keys in place, and topk_radix_select finds each query's
//             k-th key with four 8-bit histogram passes, gathers the survivors and sorts only
//             them (bitonic) — never a sort of all n scores.
//
// One total order everywhere, the same as the CPU side (crates/compute/src/cpu/topk.rs): a
// candidate is the u64 ordered(key) << 32 | (0xffffffff - row), key = dot product or minus the
// squared distance max(|q|^2 + |b|^2 - 2 q.b, 0); larger is better and equal keys fall to the
// smaller row. 0 is "no candidate" (every real candidate is larger). The row filter (a u32
// bitmap, bit r = row r allowed) is applied where scores are made, so filtered rows never
// compete.
#include "rt_common.cuh"
#include "rt_mma.cuh"

typedef unsigned long long u64;

#define TK_FQ 64        // queries per fused block: four m16 MMA tiles
#define TK_BT 64        // base rows per fused tile
#define TK_DC 32        // dimensions per shared-memory chunk: two k16 MMA steps
#define TK_FTHREADS 256 // fused block: 8 warps
#define TK_SQ 8         // most queries of the streaming path
#define TK_SROWS 256    // rows per streaming chunk: 8 warps x 32
#define TK_STHREADS 256

// f32 -> u32 preserving order; NaN counts as -inf and -0 as +0 (equal scores compare equal).
__device__ __forceinline__ unsigned int tk_ordered(float key) {
    if (key != key) key = -CUDART_INF_F;
    if (key == 0.0f) key = 0.0f;
    const unsigned int bits = __float_as_uint(key);
    return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
__device__ __forceinline__ float tk_unordered(unsigned int u) {
    return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}
__device__ __forceinline__ u64 tk_pack(float key, int row) {
    return ((u64)tk_ordered(key) << 32) | (u64)(0xffffffffu - (unsigned int)row);
}
__device__ __forceinline__ bool tk_allowed(const unsigned int* allow, int row) {
    return allow == nullptr || ((allow[row >> 5] >> (row & 31)) & 1u);
}
// Larger is better: the dot product, or minus the clamped squared distance.
__device__ __forceinline__ float tk_key(float dot, float qn, float bn, int l2) {
    return l2 ? -fmaxf(qn + bn - 2.0f * dot, 0.0f) : dot;
}
__device__ __forceinline__ unsigned int tk_lane() { return threadIdx.x & 31u; }

// Where element i of a candidate buffer lives. The bitonic steps of stride s < 16 have a
// half-warp (one phase of an 8-byte shared access) touch 16 elements of a 32-element span that
// share bit log2(s): they would fall on 8 of the 16 eight-byte bank pairs, 2 ways each.
// Reversing the low 4 bits in every odd 16-element block gives the other half the bank pairs the
// first half leaves free, for every such stride at once; runs of 16 aligned elements (strides
// >= 16, the final copy-out) stay a permutation of all 16. 2K is a power of two, so the slot
// stays in the buffer.
__device__ __forceinline__ int tk_slot(int i) { return i ^ (((i >> 4) & 1) * 15); }

// Compare-exchange pair i of a descending bitonic sort's (size, stride) stage: the one step the
// warp sort below (buffers in tk_slot order, `swizzled`) and the block sort of the radix path
// (plain order) share.
__device__ __forceinline__ void tk_bitonic_exchange(u64* buf, int i, int size, int stride, bool swizzled) {
    const int lo = 2 * stride * (i / stride) + (i % stride), hi = lo + stride;
    const bool desc = (lo & size) == 0;
    const int at_lo = swizzled ? tk_slot(lo) : lo, at_hi = swizzled ? tk_slot(hi) : hi;
    const u64 a = buf[at_lo], b = buf[at_hi];
    if ((a < b) == desc) {
        buf[at_lo] = b;
        buf[at_hi] = a;
    }
}

// Bitonic sort, descending, of buf[0..len) (len a power of two) by one warp, in tk_slot order.
__device__ __forceinline__ void tk_warp_sort(u64* buf, int len) {
    for (int size = 2; size <= len; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = (int)tk_lane(); i < len / 2; i += 32) tk_bitonic_exchange(buf, i, size, stride, true);
            __syncwarp();
        }
    }
}

// A query's running top-k, owned by one warp: buf[0..2K) (in tk_slot order) holds unsorted
// candidates (count of them), all better than thr; when it would overflow it is sorted and cut to the best K, and
// thr becomes the K-th. Count and thr live in shared memory between calls; within a call every
// lane holds the same copy.
struct TkState {
    int count;
    u64 thr;
};

// Offer one candidate per lane (0 = none). All 32 lanes call together.
__device__ __forceinline__ void tk_push(u64* buf, TkState& st, int K, u64 cand) {
    bool take = cand > st.thr;
    unsigned int m = __ballot_sync(RT_FULL_MASK, take);
    if (m == 0) return;
    if (st.count + __popc(m) > 2 * K) {
        for (int i = st.count + (int)tk_lane(); i < 2 * K; i += 32) buf[tk_slot(i)] = 0;
        __syncwarp();
        tk_warp_sort(buf, 2 * K);
        st.thr = buf[tk_slot(K - 1)];
        st.count = K;
        take = cand > st.thr;
        m = __ballot_sync(RT_FULL_MASK, take);
    }
    if (take) buf[tk_slot(st.count + __popc(m & ((1u << tk_lane()) - 1u)))] = cand;
    st.count += __popc(m);
    __syncwarp();
}

// Sort the buffer and write its best K (0-padded) to out[0..K).
__device__ __forceinline__ void tk_finish(u64* buf, const TkState& st, int K, u64* out) {
    for (int i = st.count + (int)tk_lane(); i < 2 * K; i += 32) buf[tk_slot(i)] = 0;
    __syncwarp();
    tk_warp_sort(buf, 2 * K);
    for (int i = (int)tk_lane(); i < K; i += 32) out[i] = buf[tk_slot(i)];
    __syncwarp();
}

// ---- fused path ---------------------------------------------------------------------------
// A block owns 64 queries (four m16 MMA tiles) and a slice of the base, which it walks in
// 64-row tiles: each base row it reads is scored against all 64 queries, so the base is read
// once per 64 queries (and the 64 x d query block once per tile, from L2). Everything lives in
// dynamic shared memory (laid out by tk_fused_layout; the launch opts in above 48 KiB):
//   qs [64][TK_DC + pad], bs [64][TK_DC + pad]  the current chunk of queries and base rows
//   scores [64][sld] f32                        the 64 x 64 score tile
//   states [64]                                 each query's TkState
//   bufs [64][2K] u64                           each query's candidate buffer
template <typename T> struct TkFused {
    static constexpr bool kMma = sizeof(T) == 2;
    // Row padding of qs/bs: bf16/f16 rows of 40 elements (20 words) put the eight MMA fragment
    // rows g = 0..7 of a load on banks 20g mod 32 = {0, 20, 8, 28, 16, 4, 24, 12} (+ t: free);
    // f32 rows of 33 words put lane-indexed rows on 32 different banks.
    static constexpr int kLd = TK_DC + (kMma ? 8 : 1);
    // The score tile's row stride: the MMA path stores (2t, 2t + 1) pairs as 8-byte words from
    // rows g, g + 1, ..; 72 words put a half-warp's rows g = 0..3 on banks 8g + 2t: all 32 banks.
    // The f32 path stores a warp's 32 consecutive columns of one row: any stride will do.
    static constexpr int kSld = kMma ? TK_BT + 8 : TK_BT;
    static constexpr int kTileBytes = TK_FQ * kLd * (int)sizeof(T);
    static constexpr int kScoresOff = 2 * kTileBytes;
    static constexpr int kStatesOff = kScoresOff + TK_FQ * kSld * 4;
    static constexpr int kBufsOff = kStatesOff + TK_FQ * (int)sizeof(TkState);
};

// One 64 x 64 tile step over TK_DC dimensions, from the row-major shared tiles qs [64][kLd] and
// bs [64][kLd]. f32: warp w's lane accumulates queries w + 8i (i < 8) against columns
// lane + 32j (j < 2) with FMA (query reads are broadcasts, base reads one row per lane).
__device__ __forceinline__ void tk_tile(float acc[16], const float* qs, const float* bs, int nq_left, int tid) {
    constexpr int ld = TkFused<float>::kLd;
    const int w = tid >> 5, lane = tid & 31;
    (void)nq_left;
    for (int c = 0; c < TK_DC; ++c) {
        float qv[8], bv[2];
        for (int i = 0; i < 8; ++i) qv[i] = qs[(w + 8 * i) * ld + c];
        for (int j = 0; j < 2; ++j) bv[j] = bs[(lane + 32 * j) * ld + c];
        for (int i = 0; i < 8; ++i)
            for (int j = 0; j < 2; ++j) acc[i * 2 + j] = fmaf(qv[i], bv[j], acc[i * 2 + j]);
    }
}
// bf16/f16: warp w owns queries 16 (w & 3).. against columns 32 (w >> 2).., four n8 tensor-core
// MMAs per k16 step; acc[4t..4t+4) is the 16 x 8 accumulator of columns 8t.. in the MMA's D
// layout. A warp whose 16 queries are all past the batch's end skips the MMAs.
template <typename T>
__device__ __forceinline__ void tk_tile(float acc[16], const T* qs, const T* bs, int nq_left, int tid) {
    constexpr int ld = TkFused<T>::kLd;
    const int w = tid >> 5, mt = w & 3, nh = w >> 2;
    if (16 * mt >= nq_left) return;  // warp-uniform
    for (int ks = 0; ks < TK_DC; ks += 16) {
        unsigned int a[4];
        rt_mma_load_a(a, qs + (16 * mt) * ld + ks, ld);
        for (int t = 0; t < 4; ++t) {
            unsigned int b[2];
            rt_mma_load_b_nk(b, bs + (32 * nh + 8 * t) * ld + ks, ld);
            rt_mma_m16n8k16(acc + 4 * t, a, b, acc + 4 * t, T());
        }
    }
}

// Park a thread's accumulators in the score tile (the layouts of the two tk_tile variants).
__device__ __forceinline__ void tk_park(float* scores, const float acc[16], int tid, float) {
    constexpr int sld = TkFused<float>::kSld;
    const int w = tid >> 5, lane = tid & 31;
    for (int i = 0; i < 8; ++i)
        for (int j = 0; j < 2; ++j) scores[(w + 8 * i) * sld + lane + 32 * j] = acc[i * 2 + j];
}
template <typename T>
__device__ __forceinline__ void tk_park(float* scores, const float acc[16], int tid, T) {
    constexpr int sld = TkFused<T>::kSld;
    const int w = tid >> 5, lane = tid & 31, mt = w & 3, nh = w >> 2;
    const int g = lane >> 2, t2 = 2 * (lane & 3);
    for (int t = 0; t < 4; ++t) {
        const int col = 32 * nh + 8 * t + t2;
        for (int h = 0; h < 2; ++h) {  // rows g and g + 8: acc[4t + 2h], acc[4t + 2h + 1]
            const u64 pair = (u64)__float_as_uint(acc[4 * t + 2 * h]) |
                             ((u64)__float_as_uint(acc[4 * t + 2 * h + 1]) << 32);
            *reinterpret_cast<u64*>(scores + (16 * mt + g + 8 * h) * sld + col) = pair;
        }
    }
}

// grid (ceil(nq/64), splits), 256 threads, dynamic shared memory TkFused<T>::kBufsOff +
// 64 * 2K * 8 bytes. Block (x, y) scores queries 64x.. against base rows
// [y * rows_per_split, ...) tile by tile.
template <typename T>
__device__ __forceinline__ void topk_fused(const T* __restrict__ q, const T* __restrict__ base,
                                           const float* __restrict__ qn, const float* __restrict__ bn,
                                           const unsigned int* __restrict__ allow, u64* __restrict__ cand,
                                           int nq, int n, int d, int K, int l2, int rows_per_split) {
    typedef TkFused<T> L;
    RT_DYNAMIC_SHARED(unsigned char, smem);
    T* qs = reinterpret_cast<T*>(smem);
    T* bs = reinterpret_cast<T*>(smem + L::kTileBytes);
    float* scores = reinterpret_cast<float*>(smem + L::kScoresOff);
    TkState* states = reinterpret_cast<TkState*>(smem + L::kStatesOff);
    u64* bufs = reinterpret_cast<u64*>(smem + L::kBufsOff);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int q0 = blockIdx.x * TK_FQ, nq_left = nq - q0;
    const int r_begin = blockIdx.y * rows_per_split, r_end = min(n, r_begin + rows_per_split);
    if (tid < TK_FQ) {
        states[tid].count = 0;
        states[tid].thr = 0;
    }
    const T zero = rt_from_f32<T>(0.0f);
    for (int r0 = r_begin; r0 < r_end; r0 += TK_BT) {
        float acc[16];
        for (int i = 0; i < 16; ++i) acc[i] = 0.0f;
        for (int k0 = 0; k0 < d; k0 += TK_DC) {
            __syncthreads();  // the previous chunk's tiles (and the previous tile's scores) are read
            // A warp copies one 32-element row chunk per step: 64 (bf16/f16) or 128 (f32)
            // contiguous bytes.
            for (int i = tid; i < TK_FQ * TK_DC; i += TK_FTHREADS) {
                const int r = i / TK_DC, c = i % TK_DC;
                qs[r * L::kLd + c] = (r < nq_left && k0 + c < d) ? q[(long long)(q0 + r) * d + k0 + c] : zero;
            }
            for (int i = tid; i < TK_BT * TK_DC; i += TK_FTHREADS) {
                const int r = i / TK_DC, c = i % TK_DC;
                bs[r * L::kLd + c] = (r0 + r < r_end && k0 + c < d) ? base[(long long)(r0 + r) * d + k0 + c] : zero;
            }
            __syncthreads();
            tk_tile(acc, qs, bs, nq_left, tid);
        }
        tk_park(scores, acc, tid, T());
        __syncthreads();
        // Warp w folds the tile into the top-k of queries w, w + 8, .., w + 56.
        for (int qi = warp; qi < TK_FQ; qi += TK_FTHREADS / 32) {
            if (qi >= nq_left) break;
            TkState st = states[qi];
            u64* buf = bufs + (size_t)qi * 2 * K;
            const float qnorm = l2 ? qn[q0 + qi] : 0.0f;
            for (int g = 0; g < TK_BT; g += 32) {
                const int row = r0 + g + lane;
                u64 c = 0;
                if (row < r_end && tk_allowed(allow, row))
                    c = tk_pack(tk_key(scores[qi * L::kSld + g + lane], qnorm, l2 ? bn[row] : 0.0f, l2), row);
                tk_push(buf, st, K, c);
            }
            if (lane == 0) states[qi] = st;
            __syncwarp();
        }
        // The next tile's first barrier orders these reads of `scores` before its writes.
    }
    __syncthreads();
    for (int qi = warp; qi < TK_FQ; qi += TK_FTHREADS / 32) {
        if (qi >= nq_left) break;
        const TkState st = states[qi];
        tk_finish(bufs + (size_t)qi * 2 * K, st, K, cand + ((size_t)(q0 + qi) * gridDim.y + blockIdx.y) * K);
    }
}

// ---- streaming path -----------------------------------------------------------------------
// grid (splits), 256 threads, dynamic shared memory nq * 2K u64 (nq <= 8). Each warp scores
// one row at a time against every query (lanes stride the dimension), so each base row is read
// once; |b|^2 comes from the same loads.
template <typename T>
__device__ __forceinline__ void topk_stream(const T* __restrict__ q, const T* __restrict__ base,
                                            const float* __restrict__ qn, const unsigned int* __restrict__ allow,
                                            u64* __restrict__ cand, int nq, int n, int d, int K, int l2,
                                            int rows_per_split) {
    __shared__ float scores[TK_SQ][TK_SROWS];
    __shared__ TkState states[TK_SQ];
    RT_DYNAMIC_SHARED(u64, bufs);
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int r_begin = blockIdx.x * rows_per_split, r_end = min(n, r_begin + rows_per_split);
    if (tid < TK_SQ) {
        states[tid].count = 0;
        states[tid].thr = 0;
    }
    for (int r0 = r_begin; r0 < r_end; r0 += TK_SROWS) {
        __syncthreads();  // the previous chunk's scores are consumed
        for (int i = 0; i < 32; ++i) {
            const int local = warp * 32 + i, row = r0 + local;
            if (row >= r_end) break;  // warp-uniform
            float dots[TK_SQ], bb = 0.0f;
            for (int j = 0; j < TK_SQ; ++j) dots[j] = 0.0f;
            const T* br = base + (long long)row * d;
            for (int c = lane; c < d; c += 32) {
                const float bv = rt_to_f32(br[c]);
                bb = fmaf(bv, bv, bb);
                for (int j = 0; j < TK_SQ; ++j)
                    if (j < nq) dots[j] = fmaf(rt_to_f32(q[(long long)j * d + c]), bv, dots[j]);
            }
            bb = rt_warp_sum(bb);
            for (int j = 0; j < TK_SQ; ++j) {
                if (j >= nq) break;
                const float dot = rt_warp_sum(dots[j]);
                if (lane == 0) scores[j][local] = tk_key(dot, l2 ? qn[j] : 0.0f, bb, l2);
            }
        }
        __syncthreads();
        if (warp < nq) {
            TkState st = states[warp];
            u64* buf = bufs + (size_t)warp * 2 * K;
            for (int g = 0; g < TK_SROWS; g += 32) {
                const int row = r0 + g + lane;
                u64 c = 0;
                if (row < r_end && tk_allowed(allow, row)) c = tk_pack(scores[warp][g + lane], row);
                tk_push(buf, st, K, c);
            }
            if (lane == 0) states[warp] = st;
            __syncwarp();
        }
    }
    __syncthreads();
    if (warp < nq)
        tk_finish(bufs + (size_t)warp * 2 * K, states[warp], K, cand + ((size_t)warp * gridDim.x + blockIdx.x) * K);
}

// ---- ivf path ------------------------------------------------------------------------------
// grid (nq, nprobe) (queries on x: grid y stops at 65,535), 256 threads, dynamic shared memory
// (all of it dynamic, so the emulator's profiler and poisoning see it): the 2K-u64 candidate
// buffer, the block's TkState, 256 f32 chunk scores, then the query as d f32 (widened once).
// Block (q, p) searches list probes[q][p]: base rows
// [offsets[l], offsets[l + 1]), contiguous, clamped to [0, n) so bad offsets cannot read out of
// bounds; a probe outside [0, nlist) searches nothing. As in the streaming path each warp scores
// one row at a time (lanes stride the dimension: a warp's loads are one contiguous run of the
// row), |b|^2 from the same loads; warp 0 folds each 256-row chunk into the block's top-k, and
// the block writes its best K (0-padded) to cand[(q * nprobe + p) * K] for topk_merge.
template <typename T>
__device__ __forceinline__ void topk_ivf(const T* __restrict__ q, const T* __restrict__ base,
                                         const float* __restrict__ qn, const int* __restrict__ offsets,
                                         const int* __restrict__ probes, const unsigned int* __restrict__ allow,
                                         u64* __restrict__ cand, int n, int nlist, int d, int nprobe, int K,
                                         int l2) {
    RT_DYNAMIC_SHARED(unsigned char, smem);
    u64* buf = reinterpret_cast<u64*>(smem);
    TkState& state = *reinterpret_cast<TkState*>(smem + (size_t)2 * K * sizeof(u64));
    float* scores = reinterpret_cast<float*>(smem + (size_t)2 * K * sizeof(u64) + sizeof(TkState));
    float* qs = scores + TK_SROWS;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int qi = blockIdx.x, p = blockIdx.y;
    const int list = probes[(size_t)qi * nprobe + p];
    int r_begin = 0, r_end = 0;
    if (list >= 0 && list < nlist) {
        r_begin = max(0, min(n, offsets[list]));
        r_end = max(r_begin, min(n, offsets[list + 1]));
    }
    for (int c = tid; c < d; c += blockDim.x) qs[c] = rt_to_f32(q[(long long)qi * d + c]);
    if (tid == 0) {
        state.count = 0;
        state.thr = 0;
    }
    const float qnorm = l2 ? qn[qi] : 0.0f;
    for (int r0 = r_begin; r0 < r_end; r0 += TK_SROWS) {
        __syncthreads();  // the query is staged; the previous chunk's scores are consumed
        for (int i = 0; i < 32; ++i) {
            const int local = warp * 32 + i, row = r0 + local;
            if (row >= r_end) break;  // warp-uniform
            float dot = 0.0f, bb = 0.0f;
            const T* br = base + (long long)row * d;
            for (int c = lane; c < d; c += 32) {
                const float bv = rt_to_f32(br[c]);
                bb = fmaf(bv, bv, bb);
                dot = fmaf(qs[c], bv, dot);
            }
            dot = rt_warp_sum(dot);
            bb = rt_warp_sum(bb);
            if (lane == 0) scores[local] = tk_key(dot, qnorm, bb, l2);
        }
        __syncthreads();
        if (warp == 0) {
            TkState st = state;
            for (int g = 0; g < TK_SROWS; g += 32) {
                const int row = r0 + g + lane;
                u64 c = 0;
                if (row < r_end && tk_allowed(allow, row)) c = tk_pack(scores[g + lane], row);
                tk_push(buf, st, K, c);
            }
            if (lane == 0) state = st;
            __syncwarp();
        }
    }
    __syncthreads();
    if (warp == 0) tk_finish(buf, state, K, cand + ((size_t)qi * nprobe + p) * K);
}

// ---- merge: per query (one warp), the best kk of splits x K candidates -> rows and scores ----
// grid (nq), 32 threads, dynamic shared memory 2K u64.
extern "C" __global__ void topk_merge(const u64* cand, int* rows, float* scores, int splits, int K, int kk,
                                      int l2) {
    RT_DYNAMIC_SHARED(u64, buf);
    const int qi = blockIdx.x, lane = threadIdx.x;
    const u64* c = cand + (size_t)qi * splits * K;
    TkState st;
    st.count = 0;
    st.thr = 0;
    const int total = splits * K;
    for (int g = 0; g < total; g += 32) tk_push(buf, st, K, g + lane < total ? c[g + lane] : 0);
    for (int i = st.count + lane; i < 2 * K; i += 32) buf[tk_slot(i)] = 0;
    __syncwarp();
    tk_warp_sort(buf, 2 * K);
    for (int j = lane; j < kk; j += 32) {
        const u64 p = buf[tk_slot(j)];
        const float key = tk_unordered((unsigned int)(p >> 32));
        rows[(size_t)qi * kk + j] = p ? (int)(0xffffffffu - (unsigned int)p) : -1;
        scores[(size_t)qi * kk + j] = p ? (l2 ? 0.0f - key : key) : (l2 ? CUDART_INF_F : -CUDART_INF_F);
    }
}

// ---- radix path ---------------------------------------------------------------------------
// Dot products (f32, [nq, n], from a GEMM) -> ordered u32 keys in place; filtered rows get 0,
// below every real key.
extern "C" __global__ void topk_radix_keys(float* dots, const float* qn, const float* bn,
                                           const unsigned int* allow, int nq, int n, int l2) {
    const long long total = (long long)nq * n;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < total;
         i += (long long)gridDim.x * blockDim.x) {
        const int qi = (int)(i / n), row = (int)(i % n);
        const float key = tk_key(dots[i], l2 ? qn[qi] : 0.0f, l2 ? bn[row] : 0.0f, l2);
        reinterpret_cast<unsigned int*>(dots)[i] = tk_allowed(allow, row) ? tk_ordered(key) : 0u;
    }
}

// One block (256 threads) per query: the kk-th largest key by four 8-bit histogram passes over
// the query's keys, then the survivors (keys above it, and the smallest rows among keys equal to
// it) gathered into scratch (cap = next power of two >= kk, 0-padded), bitonic-sorted there,
// and written out. Handles any kk <= n.
extern "C" __global__ void topk_radix_select(const unsigned int* keys, u64* scratch, int* rows, float* scores,
                                             int n, int kk, int cap, int l2) {
    __shared__ unsigned int hist[256];
    __shared__ unsigned int s_prefix, s_need, s_above, s_taken;
    __shared__ unsigned int warp_counts[TK_STHREADS / 32];
    const int tid = threadIdx.x, qi = blockIdx.x;
    const unsigned int* kq = keys + (size_t)qi * n;
    u64* out = scratch + (size_t)qi * cap;
    for (int i = tid; i < cap; i += blockDim.x) out[i] = 0;
    unsigned int prefix = 0, mask = 0, need = (unsigned int)kk;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = tid; i < 256; i += blockDim.x) hist[i] = 0;
        __syncthreads();
        for (int i = tid; i < n; i += blockDim.x) {
            const unsigned int u = kq[i];
            if ((u & mask) == prefix) atomicAdd(&hist[(u >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (tid == 0) {
            // From the top bin down, the bin where the count reaches `need`.
            unsigned int above = 0, bin = 0;
            for (int b = 255; b >= 0; --b) {
                if (above + hist[b] >= need) {
                    bin = (unsigned int)b;
                    break;
                }
                above += hist[b];
            }
            s_prefix = prefix | (bin << shift);
            s_need = need - above;
        }
        __syncthreads();
        prefix = s_prefix;
        need = s_need;
        mask |= 255u << shift;
    }
    // prefix = the kk-th key; need = how many keys equal to it make the cut.
    const unsigned int kth = prefix;
    if (tid == 0) {
        s_above = 0;
        s_taken = 0;
    }
    __syncthreads();
    for (int i = tid; i < n; i += blockDim.x) {
        const unsigned int u = kq[i];
        if (u > kth) out[atomicAdd(&s_above, 1u)] = ((u64)u << 32) | (u64)(0xffffffffu - (unsigned int)i);
    }
    __syncthreads();
    const unsigned int above = s_above;
    // Keys equal to the k-th, smallest rows first: an ordered block-wide scan. A k-th key of 0
    // means the filter left fewer than kk rows: nothing equal to it may be returned.
    if (kth != 0) {
        for (int r0 = 0; r0 < n && s_taken < need; r0 += blockDim.x) {
            const int i = r0 + tid;
            const bool eq = i < n && kq[i] == kth;
            const unsigned int ballot = __ballot_sync(RT_FULL_MASK, eq);
            const int warp = tid >> 5, lane = tid & 31;
            if (lane == 0) warp_counts[warp] = __popc(ballot);
            __syncthreads();
            unsigned int before = s_taken;
            for (int w = 0; w < warp; ++w) before += warp_counts[w];
            before += __popc(ballot & ((1u << lane) - 1u));
            if (eq && before < need) out[above + before] = ((u64)kth << 32) | (u64)(0xffffffffu - (unsigned int)i);
            __syncthreads();
            if (tid == 0) {
                unsigned int total = 0;
                for (int w = 0; w < (int)(blockDim.x >> 5); ++w) total += warp_counts[w];
                s_taken += total;
            }
            __syncthreads();
        }
    }
    __syncthreads();
    // Bitonic sort of the cap survivors, descending, in global memory (block barriers between
    // stages make each stage's writes visible to the next).
    for (int size = 2; size <= cap; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = tid; i < cap / 2; i += blockDim.x) tk_bitonic_exchange(out, i, size, stride, false);
            __syncthreads();
        }
    }
    for (int j = tid; j < kk; j += blockDim.x) {
        const u64 p = out[j];
        const float key = tk_unordered((unsigned int)(p >> 32));
        rows[(size_t)qi * kk + j] = p ? (int)(0xffffffffu - (unsigned int)p) : -1;
        scores[(size_t)qi * kk + j] = p ? (l2 ? 0.0f - key : key) : (l2 ? CUDART_INF_F : -CUDART_INF_F);
    }
}

#define RT_TOPK_KERNELS(T, S)                                                                        \
    extern "C" __global__ void topk_fused_##S(const T* q, const T* base, const float* qn, const float* bn, \
                                              const unsigned int* allow, u64* cand, int nq, int n, int d,  \
                                              int K, int l2, int rows_per_split) {                         \
        topk_fused<T>(q, base, qn, bn, allow, cand, nq, n, d, K, l2, rows_per_split);                 \
    }                                                                                                \
    extern "C" __global__ void topk_stream_##S(const T* q, const T* base, const float* qn,            \
                                               const unsigned int* allow, u64* cand, int nq, int n, int d, \
                                               int K, int l2, int rows_per_split) {                        \
        topk_stream<T>(q, base, qn, allow, cand, nq, n, d, K, l2, rows_per_split);                         \
    }                                                                                                \
    extern "C" __global__ void topk_ivf_##S(const T* q, const T* base, const float* qn, const int* offsets, \
                                            const int* probes, const unsigned int* allow, u64* cand, int n, \
                                            int nlist, int d, int nprobe, int K, int l2) {                  \
        topk_ivf<T>(q, base, qn, offsets, probes, allow, cand, n, nlist, d, nprobe, K, l2);                 \
    }

RT_TOPK_KERNELS(float, f32)
RT_TOPK_KERNELS(bf16_t, bf16)
RT_TOPK_KERNELS(f16_t, f16)
