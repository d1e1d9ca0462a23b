// tc_matmul.cu — test-only tensor-core matmul built on kernels/include/rt_mma.cuh: proves the
// fragment layout (load helpers + emulated mma.sync) against an f64 reference (tests/mma.rs).
//
// C[M,N] (f32) = A[M,K] · B, with B given as K x N (`_kn`) or as N x K (`_nk`, a weight matrix).
// Block tile 32 x 16 x 16, four warps, each owning one 16 x 8 accumulator tile. Edges are
// zero-padded in shared memory, so any M, N, K works.
#include "rt_mma.cuh"

#define TC_BM 32
#define TC_BN 16
#define TC_BK 16
#define TC_PAD 8  // row padding of the shared tiles (keeps rows 16-byte aligned on a GPU)

template <typename T, bool BNK>
__device__ __forceinline__ void tc_matmul(const T* __restrict__ a, const T* __restrict__ b, float* __restrict__ c,
                                          int m, int n, int k) {
    __shared__ T as[TC_BM][TC_BK + TC_PAD];
    __shared__ T bs[BNK ? TC_BN : TC_BK][(BNK ? TC_BK : TC_BN) + TC_PAD];
    const int tid = (int)threadIdx.x, warp = tid / 32;
    const int row0 = (int)blockIdx.y * TC_BM, col0 = (int)blockIdx.x * TC_BN;
    const int wm = (warp / 2) * 16, wn = (warp % 2) * 8;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int k0 = 0; k0 < k; k0 += TC_BK) {
        for (int e = tid; e < TC_BM * TC_BK; e += blockDim.x) {
            const int r = e / TC_BK, kk = e % TC_BK;
            const bool in = row0 + r < m && k0 + kk < k;
            as[r][kk] = in ? a[(size_t)(row0 + r) * k + k0 + kk] : rt_from_f32<T>(0.0f);
        }
        for (int e = tid; e < TC_BK * TC_BN; e += blockDim.x) {
            if (BNK) {
                const int nn = e / TC_BK, kk = e % TC_BK;
                const bool in = col0 + nn < n && k0 + kk < k;
                bs[nn][kk] = in ? b[(size_t)(col0 + nn) * k + k0 + kk] : rt_from_f32<T>(0.0f);
            } else {
                const int kk = e / TC_BN, nn = e % TC_BN;
                const bool in = col0 + nn < n && k0 + kk < k;
                bs[kk][nn] = in ? b[(size_t)(k0 + kk) * n + col0 + nn] : rt_from_f32<T>(0.0f);
            }
        }
        __syncthreads();
        unsigned int af[4], bf[2];
        rt_mma_load_a(af, &as[wm][0], TC_BK + TC_PAD);
        if (BNK) rt_mma_load_b_nk(bf, &bs[wn][0], TC_BK + TC_PAD);
        else rt_mma_load_b(bf, &bs[0][wn], TC_BN + TC_PAD);
        rt_mma_m16n8k16(acc, af, bf, acc, T());
        __syncthreads();
    }
    for (int i = 0; i < 4; ++i) {
        const int r = row0 + wm + rt_mma_d_row(i), col = col0 + wn + rt_mma_d_col(i);
        if (r < m && col < n) c[(size_t)r * n + col] = acc[i];
    }
}

// One entry point per element type (S names it) and B layout (kn: [k, n], nk: [n, k]).
#define TC_MATMUL_ENTRY(T, S, L, B_NK)                                                               \
    extern "C" __global__ void __launch_bounds__(128)                                                \
        tc_matmul_##S##_##L(const T* a, const T* b, float* c, int m, int n, int k) {                 \
        tc_matmul<T, B_NK>(a, b, c, m, n, k);                                                        \
    }
TC_MATMUL_ENTRY(bf16_t, bf16, kn, false)
TC_MATMUL_ENTRY(bf16_t, bf16, nk, true)
TC_MATMUL_ENTRY(f16_t, f16, kn, false)
TC_MATMUL_ENTRY(f16_t, f16, nk, true)

// One bare instruction: lane l's registers come from a[4l..4l+3], b[2l..2l+1], c[4l..4l+3] and
// its result goes to d[4l..4l+3], so the test can check the PTX fragment tables directly.
extern "C" __global__ void tc_mma_raw_bf16(const unsigned int* a, const unsigned int* b, const float* c, float* d) {
    const unsigned int l = threadIdx.x;
    float out[4];
    rt_mma_m16n8k16_bf16(out, a + 4 * l, b + 2 * l, c + 4 * l);
    for (int i = 0; i < 4; ++i) d[4 * l + i] = out[i];
}
