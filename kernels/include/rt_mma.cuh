// rt_mma.cuh — warp-level tensor-core MMA (m16n8k16, bf16/f16 inputs, f32 accumulate) and
// helpers that load its operand fragments from row-major shared-memory tiles.
//
// On a GPU (sm_80+) rt_mma_m16n8k16_* is one `mma.sync.aligned.m16n8k16.row.col.f32.{bf16,f16}`
// instruction. Under RAGTUNE_EMU it is a warp collective: every lane deposits its registers, the
// last lane to arrive gathers the 16x16 A, 16x8 B and 16x8 C tiles by the PTX ISA's per-lane
// fragment layout, computes D = A·B + C in f32 and scatters D back by the same layout — so a
// kernel that puts the wrong values in the wrong lane's registers is wrong here too.
//
// Fragment layout (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating point type"), with
// g = lane >> 2 (groupID) and t = lane % 4 (threadID_in_group); each 32-bit register packs two
// 16-bit elements, the lower-indexed one in the low half:
//   A (16x16, row-major): a[0] = A[g][2t..2t+1]     a[1] = A[g+8][2t..2t+1]
//                         a[2] = A[g][2t+8..2t+9]   a[3] = A[g+8][2t+8..2t+9]
//   B (16x8, K x N):      b[0] = B[2t..2t+1][g]     b[1] = B[2t+8..2t+9][g]
//   C, D (16x8, f32):     c[0] = C[g][2t]  c[1] = C[g][2t+1]  c[2] = C[g+8][2t]  c[3] = C[g+8][2t+1]
// All 32 lanes of the warp must call each function together (warp-uniform control flow).
#pragma once

#include "rt_common.cuh"

// The lane of the calling thread in its warp (threadIdx linearised, 32 per warp).
__device__ __forceinline__ unsigned int rt_mma_lane() {
    return (threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y) & 31u;
}

__device__ __forceinline__ unsigned int rt_mma_pack(bf16_t lo, bf16_t hi) {
    return (unsigned int)__bfloat16_as_ushort(lo) | ((unsigned int)__bfloat16_as_ushort(hi) << 16);
}
__device__ __forceinline__ unsigned int rt_mma_pack(f16_t lo, f16_t hi) {
    return (unsigned int)__half_as_ushort(lo) | ((unsigned int)__half_as_ushort(hi) << 16);
}

#ifdef RAGTUNE_EMU
// The emulated instruction. `Bf16` picks how the 16-bit halves are decoded.
struct rt_mma_emu_regs {
    const unsigned int* a;
    const unsigned int* b;
    const float* c;
    float* d;
};
template <bool Bf16> inline float rt_mma_emu_decode(unsigned int bits16) {
    return Bf16 ? __bfloat162float(__ushort_as_bfloat16((unsigned short)bits16))
                : __half2float(__ushort_as_half((unsigned short)bits16));
}
template <bool Bf16> inline void rt_mma_emu_compute(void* const* lanes, void*) {
    float A[16][16], B[16][8], C[16][8];
    for (int lane = 0; lane < 32; ++lane) {
        const rt_mma_emu_regs* r = static_cast<const rt_mma_emu_regs*>(lanes[lane]);
        const int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; ++i) {  // a[i]: rows g / g+8, columns 2t / 2t+8
            const int row = g + 8 * (i & 1), col = 2 * t + 8 * (i >> 1);
            A[row][col] = rt_mma_emu_decode<Bf16>(r->a[i] & 0xffffu);
            A[row][col + 1] = rt_mma_emu_decode<Bf16>(r->a[i] >> 16);
        }
        for (int i = 0; i < 2; ++i) {  // b[i]: k rows 2t / 2t+8, column g
            const int k = 2 * t + 8 * i;
            B[k][g] = rt_mma_emu_decode<Bf16>(r->b[i] & 0xffffu);
            B[k + 1][g] = rt_mma_emu_decode<Bf16>(r->b[i] >> 16);
        }
        for (int i = 0; i < 4; ++i) C[g + 8 * (i >> 1)][2 * t + (i & 1)] = r->c[i];
    }
    // Every lane's inputs are read before any output is written: d may alias c.
    for (int lane = 0; lane < 32; ++lane) {
        const rt_mma_emu_regs* r = static_cast<const rt_mma_emu_regs*>(lanes[lane]);
        const int g = lane >> 2, t = lane & 3;
        for (int i = 0; i < 4; ++i) {
            const int row = g + 8 * (i >> 1), col = 2 * t + (i & 1);
            float acc = C[row][col];
            for (int k = 0; k < 16; ++k) acc = fmaf(A[row][k], B[k][col], acc);
            r->d[i] = acc;
        }
    }
}
#endif

// d = A·B + c for one 16x8x16 tile held in the warp's registers (layout above). d may alias c.
// The bf16 and f16 instructions differ only in the input type's name in the PTX (and, emulated,
// in how the halves decode), so one macro stamps out both: rt_mma_m16n8k16_bf16 and _f16.
#ifdef RAGTUNE_EMU
#define RT_MMA_M16N8K16_DEFINE(TY, IS_BF16)                                                                \
    __device__ __forceinline__ void rt_mma_m16n8k16_##TY(float d[4], const unsigned int a[4],               \
                                                         const unsigned int b[2], const float c[4]) {       \
        rt_mma_emu_regs regs = {a, b, c, d};                                                                \
        rt_emu_warp_exchange("mma.sync.m16n8k16." #TY, 0xffffffffu, &regs, rt_mma_emu_compute<IS_BF16>,     \
                             nullptr);                                                                      \
    }
#else
#define RT_MMA_M16N8K16_DEFINE(TY, IS_BF16)                                                                 \
    __device__ __forceinline__ void rt_mma_m16n8k16_##TY(float d[4], const unsigned int a[4],               \
                                                         const unsigned int b[2], const float c[4]) {       \
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32." #TY "." #TY ".f32 "                           \
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"                          \
                     : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                       \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]),         \
                       "f"(c[1]), "f"(c[2]), "f"(c[3]));                                                    \
    }
#endif
RT_MMA_M16N8K16_DEFINE(bf16, true)
RT_MMA_M16N8K16_DEFINE(f16, false)
#undef RT_MMA_M16N8K16_DEFINE

// Overloads by element type, for templated kernels.
__device__ __forceinline__ void rt_mma_m16n8k16(float d[4], const unsigned int a[4], const unsigned int b[2],
                                                const float c[4], bf16_t) {
    rt_mma_m16n8k16_bf16(d, a, b, c);
}
__device__ __forceinline__ void rt_mma_m16n8k16(float d[4], const unsigned int a[4], const unsigned int b[2],
                                                const float c[4], f16_t) {
    rt_mma_m16n8k16_f16(d, a, b, c);
}

// A fragment from a row-major 16x16 tile at `tile` with row stride `ld` elements.
template <typename T>
__device__ __forceinline__ void rt_mma_load_a(unsigned int a[4], const T* tile, int ld) {
    const int lane = (int)rt_mma_lane(), g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; ++i) {
        const T* p = tile + (g + 8 * (i & 1)) * ld + 2 * t + 8 * (i >> 1);
        a[i] = rt_mma_pack(p[0], p[1]);
    }
}

// B fragment from a row-major 16x8 (K x N) tile at `tile` with row stride `ld` elements.
template <typename T>
__device__ __forceinline__ void rt_mma_load_b(unsigned int b[2], const T* tile, int ld) {
    const int lane = (int)rt_mma_lane(), g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 2; ++i) {
        const int k = 2 * t + 8 * i;
        b[i] = rt_mma_pack(tile[k * ld + g], tile[(k + 1) * ld + g]);
    }
}

// B fragment from a row-major 8x16 (N x K) tile — B stored transposed, like a weight matrix
// W[n][k] — at `tile` with row stride `ld` elements.
template <typename T>
__device__ __forceinline__ void rt_mma_load_b_nk(unsigned int b[2], const T* tile, int ld) {
    const int lane = (int)rt_mma_lane(), g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 2; ++i) {
        const T* p = tile + g * ld + 2 * t + 8 * i;
        b[i] = rt_mma_pack(p[0], p[1]);
    }
}

// Row and column (in the 16x8 tile) of this lane's accumulator element i (0..3).
__device__ __forceinline__ int rt_mma_d_row(int i) { return (int)(rt_mma_lane() >> 2) + 8 * (i >> 1); }
__device__ __forceinline__ int rt_mma_d_col(int i) { return 2 * (int)(rt_mma_lane() & 3u) + (i & 1); }
