// rt_async.cuh — ldmatrix (shared memory -> mma fragments) and cp.async (global -> shared
// without a register round trip), for sm_80+.
//
// On a GPU each helper is the one PTX instruction of its name (inline asm). Under RAGTUNE_EMU
// each is emulated with the instruction's PTX ISA semantics:
//   * rt_ldmatrix_x{1,2,4}[_trans](r, row): a warp collective. Lanes 8i..8i+7 each give the
//     address of one 16-byte row (eight b16 elements) of matrix i (x1: lanes 0-7 only, x2: 0-15,
//     x4: all 32; other lanes' addresses are ignored, as PTX says). Lane t receives in r[i] the
//     two elements (row t/4, columns 2(t%4), 2(t%4)+1) of matrix i — or, with .trans, (rows
//     2(t%4), 2(t%4)+1, column t/4) — packed low element first: exactly the A/B fragment layout
//     of rt_mma.cuh. All 32 lanes must call it together; row addresses must be 16-byte aligned.
//   * rt_cp_async{4,8,16}(dst_smem, src): reads src now and queues the bytes for dst; they land
//     in shared memory only when a later rt_cp_async_wait<N>() / rt_cp_async_wait_all() says
//     their group is complete, so a kernel that reads dst too early sees the poisoned bytes
//     (NaN / -1), as it would see stale data on a GPU. rt_cp_async16_cg is the L2-only (.cg)
//     form; caching is not modelled. rt_cp_async_commit() closes the current group;
//     rt_cp_async_wait<N>() waits until at most the N most recent committed groups are pending.
//     Like on a GPU, the copies are visible to the issuing thread after the wait; other threads
//     need a __syncthreads() after it.
#pragma once

#include "rt_common.cuh"

#ifdef RAGTUNE_EMU
// One lane's part of an emulated ldmatrix: the row it read, the registers it receives.
struct rt_ldm_emu_lane {
    unsigned int row[4];
    unsigned int out[4];
};
template <int Num, bool Trans> inline void rt_ldm_emu_compute(void* const* lanes, void*) {
    for (int t = 0; t < 32; ++t) {
        rt_ldm_emu_lane* me = static_cast<rt_ldm_emu_lane*>(lanes[t]);
        for (int i = 0; i < Num; ++i) {
            if (!Trans) {
                // Row t/4 of matrix i, 32-bit word t%4 (elements 2(t%4), 2(t%4)+1).
                me->out[i] = static_cast<const rt_ldm_emu_lane*>(lanes[8 * i + t / 4])->row[t % 4];
            } else {
                // Column t/4 of matrix i: rows 2(t%4) (low half) and 2(t%4)+1 (high half).
                const int col = t / 4, r0 = 2 * (t % 4);
                auto elem = [&](int r) {
                    const unsigned int w = static_cast<const rt_ldm_emu_lane*>(lanes[8 * i + r])->row[col / 2];
                    return (col & 1) ? (w >> 16) : (w & 0xffffu);
                };
                me->out[i] = elem(r0) | (elem(r0 + 1) << 16);
            }
        }
    }
}
template <int Num, bool Trans> inline void rt_ldm_emu(unsigned int* r, const void* row) {
    rt_ldm_emu_lane me = {};
    const unsigned int lane = (threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y) & 31u;
    if (lane < 8u * Num) {
        if (reinterpret_cast<uintptr_t>(row) % 16 != 0) rt_emu_trap("ldmatrix: row address not 16-byte aligned");
        // One 16-byte shared load per lane that supplies a row, as the hardware reads them.
        RT_EMU_WIDE_LOAD(me.row, row, 16);
    }
    rt_emu_warp_exchange(Trans ? "ldmatrix.trans" : "ldmatrix", 0xffffffffu, &me, rt_ldm_emu_compute<Num, Trans>,
                         nullptr);
    for (int i = 0; i < Num; ++i) r[i] = me.out[i];
}
template <unsigned N> inline void rt_cp_async_emu(void* dst, const void* src) {
    unsigned char data[16];
    // Read now (one N-byte global load by this thread); written at the wait.
    RT_EMU_WIDE_LOAD(data, src, N);
    rt_emu_cp_async_push(dst, data, N);
}
inline void rt_cp_async_emu_wait(unsigned keep) {
    void* dst;
    unsigned char data[16];
    // The landing copies are this thread's shared stores (one per copy).
    while (unsigned n = rt_emu_cp_async_pop(keep, &dst, data)) {
        RT_EMU_WIDE_STORE(dst, data, n);
    }
}
#else
__device__ __forceinline__ unsigned int rt_smem_addr(const void* p) {
    return static_cast<unsigned int>(__cvta_generic_to_shared(p));
}
#endif

// --- ldmatrix and cp.async ----------------------------------------------------------------------
// The variants differ only in the PTX's shape/cache words and operand lists (and, emulated, in
// the template arguments), so one macro per instruction stamps them out.
#ifdef RAGTUNE_EMU
#define RT_LDMATRIX_DEFINE(NAME, NUM, TRANS, SHAPE, OPERANDS, ...)                                        \
    __device__ __forceinline__ void NAME(unsigned int r[NUM], const void* row) { rt_ldm_emu<NUM, TRANS>(r, row); }
#define RT_CP_ASYNC_DEFINE(NAME, CACHE, BYTES)                                                              \
    __device__ __forceinline__ void NAME(void* dst_smem, const void* src) { rt_cp_async_emu<BYTES>(dst_smem, src); }
#else
#define RT_LDMATRIX_DEFINE(NAME, NUM, TRANS, SHAPE, OPERANDS, ...)                                        \
    __device__ __forceinline__ void NAME(unsigned int r[NUM], const void* row) {                            \
        asm volatile("ldmatrix.sync.aligned.m8n8." SHAPE ".shared.b16 " OPERANDS ";\n"                      \
                     : __VA_ARGS__                                                                          \
                     : "r"(rt_smem_addr(row)));                                                             \
    }
#define RT_CP_ASYNC_DEFINE(NAME, CACHE, BYTES)                                                              \
    __device__ __forceinline__ void NAME(void* dst_smem, const void* src) {                                 \
        asm volatile("cp.async." #CACHE ".shared.global [%0], [%1], " #BYTES ";\n" ::"r"(rt_smem_addr(dst_smem)), \
                     "l"(src)                                                                               \
                     : "memory");                                                                           \
    }
#endif
RT_LDMATRIX_DEFINE(rt_ldmatrix_x1, 1, false, "x1", "{%0}, [%1]", "=r"(r[0]))
RT_LDMATRIX_DEFINE(rt_ldmatrix_x2, 2, false, "x2", "{%0, %1}, [%2]", "=r"(r[0]), "=r"(r[1]))
RT_LDMATRIX_DEFINE(rt_ldmatrix_x4, 4, false, "x4", "{%0, %1, %2, %3}, [%4]", "=r"(r[0]), "=r"(r[1]), "=r"(r[2]),
                   "=r"(r[3]))
RT_LDMATRIX_DEFINE(rt_ldmatrix_x1_trans, 1, true, "x1.trans", "{%0}, [%1]", "=r"(r[0]))
RT_LDMATRIX_DEFINE(rt_ldmatrix_x2_trans, 2, true, "x2.trans", "{%0, %1}, [%2]", "=r"(r[0]), "=r"(r[1]))
RT_LDMATRIX_DEFINE(rt_ldmatrix_x4_trans, 4, true, "x4.trans", "{%0, %1, %2, %3}, [%4]", "=r"(r[0]), "=r"(r[1]),
                   "=r"(r[2]), "=r"(r[3]))
RT_CP_ASYNC_DEFINE(rt_cp_async4, ca, 4)
RT_CP_ASYNC_DEFINE(rt_cp_async8, ca, 8)
RT_CP_ASYNC_DEFINE(rt_cp_async16, ca, 16)
// The L2-only form (.cg: bypasses L1; 16 bytes only, as PTX requires).
RT_CP_ASYNC_DEFINE(rt_cp_async16_cg, cg, 16)
#undef RT_LDMATRIX_DEFINE
#undef RT_CP_ASYNC_DEFINE

__device__ __forceinline__ void rt_cp_async_commit() {
#ifdef RAGTUNE_EMU
    rt_emu_cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N> __device__ __forceinline__ void rt_cp_async_wait() {
    static_assert(N >= 0 && N <= 7, "cp.async.wait_group takes 0..7 here");
#ifdef RAGTUNE_EMU
    rt_cp_async_emu_wait((unsigned)N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}
// Every copy this thread issued, committed or not (cp.async.wait_all = commit + wait_group 0).
__device__ __forceinline__ void rt_cp_async_wait_all() {
#ifdef RAGTUNE_EMU
    rt_emu_cp_async_commit();
    rt_cp_async_emu_wait(0u);
#else
    asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}
