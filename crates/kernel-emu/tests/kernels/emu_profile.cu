// Test kernels with known memory-access patterns, for the emulated profiler (tests/profile.rs),
// and users of kernels/include/rt_async.cuh (ldmatrix, cp.async).
#include "rt_common.cuh"
#include "rt_async.cuh"

// Coalesced: lane i reads and writes element i (every byte of every sector used).
extern "C" __global__ void prof_copy(const float* x, float* y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[i];
}

// Lane i reads element i * stride: stride 2 uses half of each sector, stride >= 8 one float in 32.
extern "C" __global__ void prof_strided_read(const float* x, float* y, int stride, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = x[(long)i * stride];
}

// One warp stages a 32x32 tile row by row (conflict free), then reads it column by column:
// lane l reads word l * (32 + pad) + c, so with pad 0 every lane hits bank c (32-way); pad 1
// spreads them over all banks (1-way).
extern "C" __global__ void prof_smem_columns(const float* x, float* y, int pad) {
    __shared__ float tile[32 * 33];
    const int lane = threadIdx.x, pitch = 32 + pad;
    for (int r = 0; r < 32; ++r) tile[r * pitch + lane] = x[r * 32 + lane];
    __syncthreads();
    for (int c = 0; c < 32; ++c) y[c * 32 + lane] = tile[lane * pitch + c];
}

// Every lane reads the same shared word (a broadcast, conflict free) after lane 0 wrote it.
// The index is a parameter (0): gcc does not instrument a constant-index access it can prove in
// bounds of a static array, so the profiler would not see `v[0]`.
extern "C" __global__ void prof_smem_broadcast(const float* x, float* y, int at) {
    __shared__ float v[4];
    if (threadIdx.x == 0) v[at] = x[at];
    __syncthreads();
    y[threadIdx.x] = v[at];
}

// Every thread adds 1 to a counter `reps` times: blocks x threads x reps global atomics.
extern "C" __global__ void prof_atomics(int* counter, int reps) {
    for (int r = 0; r < reps; ++r) atomicAdd(counter, 1);
}

// `k` block barriers per block.
extern "C" __global__ void prof_barriers(int* out, int k) {
    for (int r = 0; r < k; ++r) __syncthreads();
    if (threadIdx.x == 0) out[blockIdx.x] = k;
}

// A 16x16 row-major bf16 tile in shared memory, loaded as four 8x8 matrices with ldmatrix.x4
// (lanes 0-7 give the rows of the top-left matrix, 8-15 bottom-left, 16-23 top-right, 24-31
// bottom-right: the A-fragment order of rt_mma.cuh) or .x4.trans; out[lane * 4 + i] = r[i].
extern "C" __global__ void prof_ldmatrix_x4(const unsigned short* tile, unsigned int* out, int trans) {
    __shared__ __align__(16) unsigned short s[16 * 16];
    const int lane = threadIdx.x;
    for (int i = lane; i < 256; i += 32) s[i] = tile[i];
    __syncthreads();
    const int m = lane / 8, row = (m & 1) * 8 + lane % 8, col = (m >> 1) * 8;
    unsigned int r[4];
    if (trans)
        rt_ldmatrix_x4_trans(r, &s[row * 16 + col]);
    else
        rt_ldmatrix_x4(r, &s[row * 16 + col]);
    for (int i = 0; i < 4; ++i) out[lane * 4 + i] = r[i];
}

// ldmatrix.x1 and .x2: lanes 0-7 (and 8-15) give the rows; out[lane * 2 + i] = r[i] (r[1] of
// x1 left 0).
extern "C" __global__ void prof_ldmatrix_x1_x2(const unsigned short* tile, unsigned int* out, int num) {
    __shared__ __align__(16) unsigned short s[16 * 8];
    const int lane = threadIdx.x;
    for (int i = lane; i < 128; i += 32) s[i] = tile[i];
    __syncthreads();
    unsigned int r[2] = {0, 0};
    const void* row = &s[(lane % 16) * 8];
    if (num == 1)
        rt_ldmatrix_x1(r, row);
    else
        rt_ldmatrix_x2(r, row);
    for (int i = 0; i < 2; ++i) out[lane * 2 + i] = r[i];
}

// cp.async of `bytes` per copy in two groups: group 0 copies x[0..32), group 1 x[32..64) (the
// lanes needed to cover 32 floats issue one copy each). seen[0..64) = shared memory after
// wait_group<1> (group 0 has landed; group 1 may still be in flight, and the emulator keeps it
// so: its slots still hold -2), seen[64..128) after wait_all.
extern "C" __global__ void prof_cp_async(const float* x, float* seen, int bytes) {
    __shared__ __align__(16) float s[64];
    const int lane = threadIdx.x;
    s[lane] = -2.0f;
    s[lane + 32] = -2.0f;
    __syncthreads();
    const int per = bytes / 4;  // floats per copy
    for (int base = 0; base < 64; base += 32) {
        if (lane * per < 32) {
            float* dst = &s[base + lane * per];
            const float* src = &x[base + lane * per];
            if (bytes == 16) rt_cp_async16(dst, src);
            if (bytes == 8) rt_cp_async8(dst, src);
            if (bytes == 4) rt_cp_async4(dst, src);
        }
        rt_cp_async_commit();
    }
    rt_cp_async_wait<1>();
    __syncthreads();
    seen[lane] = s[lane];
    seen[lane + 32] = s[lane + 32];
    __syncthreads();
    rt_cp_async_wait_all();
    __syncthreads();
    seen[64 + lane] = s[lane];
    seen[96 + lane] = s[lane + 32];
}
