// cuda_emu.h — what NVRTC gives a kernel, as host C++, so kernels/*.cu run on a CPU.
//
// Force-included (`-include cuda_emu.h`) before every kernel translation unit, which is compiled
// with `-DRAGTUNE_EMU -x c++ -std=c++17`. It supplies the CUDA keywords, built-in variables,
// vector types, __half / __nv_bfloat16, math intrinsics, atomics and the synchronisation and warp
// primitives. The primitives call into the fiber scheduler (emu/runtime.cpp): every thread of a
// block is a fiber on one OS thread, and blocks run one after another, so
//   * `__shared__` is plain `static` storage in a per-file section: exactly one copy per running
//     block, filled with 0xFF bytes before every block (so reading what this block did not write
//     gives NaN / -1), and AddressSanitizer reports overruns of it as global-buffer-overflow with
//     file and line (the ASan build instruments those sections: -fsanitize-sections);
//   * atomics need no hardware atomicity: fibers switch only inside __syncthreads and warp
//     collectives, never in the middle of a read-modify-write;
//   * threadIdx & co. are macros reading the record of the fiber that runs right now.
//
// Deliberately NOT defined: __CUDA_ARCH__. Kernels test RAGTUNE_EMU instead, and keep anything
// that cannot be emulated (inline PTX) inside kernels/include/ helpers with an emulated twin.
#pragma once

#include <math.h>  // libstdc++'s math.h also puts std::isnan & co. in the global namespace
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <type_traits>

// ---------------------------------------------------------------------------------------------
// Keywords
// ---------------------------------------------------------------------------------------------
#ifdef RT_EMU_SCAN
// build.rs preprocesses each kernel with RT_EMU_SCAN to find kernel declarations: keep a marker.
#define __global__ __rt_emu_global__
#else
#define __global__
#endif
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __restrict__ __restrict
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// Every static __shared__ variable of a kernel file lives in that file's own linker section
// (RT_EMU_SHARED_SECTION, defined by the generated wrapper before it includes the file), so the
// scheduler can poison all of it before each block and measure how much of it a kernel uses:
// see `RtEmuKernel::shared_begin`.
#define __shared__ static __attribute__((section(RT_EMU_SHARED_SECTION)))
#define __constant__ static
#define __managed__
#define __grid_constant__

// ---------------------------------------------------------------------------------------------
// Built-in vector types (alignment as in vector_types.h)
// ---------------------------------------------------------------------------------------------
#define RT_EMU_VEC2(T, N, A) struct __attribute__((aligned(A))) N##2 { T x, y; }; \
    static inline N##2 make_##N##2(T x, T y) { N##2 v; v.x = x; v.y = y; return v; }
#define RT_EMU_VEC3(T, N) struct N##3 { T x, y, z; }; \
    static inline N##3 make_##N##3(T x, T y, T z) { N##3 v; v.x = x; v.y = y; v.z = z; return v; }
#define RT_EMU_VEC4(T, N, A) struct __attribute__((aligned(A))) N##4 { T x, y, z, w; }; \
    static inline N##4 make_##N##4(T x, T y, T z, T w) { N##4 v; v.x = x; v.y = y; v.z = z; v.w = w; return v; }
#define RT_EMU_VEC1(T, N) struct N##1 { T x; }; \
    static inline N##1 make_##N##1(T x) { N##1 v; v.x = x; return v; }

RT_EMU_VEC1(float, float) RT_EMU_VEC2(float, float, 8) RT_EMU_VEC3(float, float) RT_EMU_VEC4(float, float, 16)
RT_EMU_VEC1(double, double) RT_EMU_VEC2(double, double, 16) RT_EMU_VEC3(double, double) RT_EMU_VEC4(double, double, 16)
RT_EMU_VEC1(int, int) RT_EMU_VEC2(int, int, 8) RT_EMU_VEC3(int, int) RT_EMU_VEC4(int, int, 16)
RT_EMU_VEC1(unsigned int, uint) RT_EMU_VEC2(unsigned int, uint, 8) RT_EMU_VEC3(unsigned int, uint) RT_EMU_VEC4(unsigned int, uint, 16)
RT_EMU_VEC2(short, short, 4) RT_EMU_VEC4(short, short, 8)
RT_EMU_VEC2(unsigned short, ushort, 4) RT_EMU_VEC4(unsigned short, ushort, 8)
RT_EMU_VEC2(signed char, char, 2) RT_EMU_VEC4(signed char, char, 4)
RT_EMU_VEC2(unsigned char, uchar, 2) RT_EMU_VEC4(unsigned char, uchar, 4)
RT_EMU_VEC2(long long, longlong, 16) RT_EMU_VEC2(unsigned long long, ulonglong, 16)

struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int vx = 1, unsigned int vy = 1, unsigned int vz = 1) : x(vx), y(vy), z(vz) {}
    constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
    constexpr operator uint3() const { return uint3{x, y, z}; }
};

// ---------------------------------------------------------------------------------------------
// The scheduler's interface (emu/runtime.cpp)
// ---------------------------------------------------------------------------------------------
struct RtEmuThread;  // one fiber = one CUDA thread; first member is its threadIdx
extern RtEmuThread* rt_emu_current;
extern uint3 rt_emu_block_idx;
extern dim3 rt_emu_block_dim;
extern dim3 rt_emu_grid_dim;

static inline const uint3& rt_emu_thread_idx() { return *reinterpret_cast<const uint3*>(rt_emu_current); }

#define threadIdx (rt_emu_thread_idx())
#define blockIdx (static_cast<const uint3&>(rt_emu_block_idx))
#define blockDim (static_cast<const dim3&>(rt_emu_block_dim))
#define gridDim (static_cast<const dim3&>(rt_emu_grid_dim))
#define warpSize 32

enum RtEmuWarpOp {
    RT_EMU_SYNCWARP = 0,
    RT_EMU_SHFL_IDX,
    RT_EMU_SHFL_UP,
    RT_EMU_SHFL_DOWN,
    RT_EMU_SHFL_XOR,
    RT_EMU_BALLOT,
    RT_EMU_ANY,
    RT_EMU_ALL,
    RT_EMU_MATCH_ANY,
    RT_EMU_MATCH_ALL,
    RT_EMU_REDUCE_ADD,
    RT_EMU_REDUCE_MIN,
    RT_EMU_REDUCE_MAX,
    RT_EMU_REDUCE_AND,
    RT_EMU_REDUCE_OR,
    RT_EMU_REDUCE_XOR,
    RT_EMU_GATHER,      // rt_emu_warp_exchange: the last lane runs a function over all lanes' data
    RT_EMU_ACTIVEMASK,  // __activemask: resolved when the whole block is blocked (see runtime.cpp)
};

// Block barrier; `mode` 0 = plain, 1 = count, 2 = and, 3 = or of `pred` over the block.
int rt_emu_syncthreads_op(int mode, int pred);
// A warp collective: deposit `value`, wait until every lane named in `mask` has arrived, return
// what CUDA semantics say this lane reads. `arg` = srcLane / delta / laneMask; `width` as CUDA's.
uint64_t rt_emu_warp_op(int op, const char* name, unsigned mask, uint64_t value, int arg, int width,
                        bool is_signed);
// For tensor-core emulation: a collective over all 32 lanes in which every lane deposits a
// pointer to its registers; inside `fn` (run once, by the last lane to arrive), `lanes[i]` is
// lane i's pointer. Returns after `fn` ran.
void rt_emu_warp_exchange(const char* name, unsigned mask, void* mine, void (*fn)(void* const* lanes, void* ctx),
                          void* ctx);
// __activemask(): the lanes of the warp that reach this call together. Emulated as a rendezvous
// that resolves once no fiber of the block can run: lanes that exited or wait elsewhere are not
// active, exactly the lanes a GPU would find converged with the caller.
unsigned rt_emu_active_mask();
void* rt_emu_dynamic_shared();
// cp.async (kernels/include/rt_async.cuh): queue `n` bytes (already read from global memory) for
// `dst`; commit the queued copies as one group; hand back, one at a time, the copies that
// `cp.async.wait_group keep` must complete (returns their size, 0 when none is left).
void rt_emu_cp_async_push(void* dst, const void* data, unsigned n);
void rt_emu_cp_async_commit();
unsigned rt_emu_cp_async_pop(unsigned keep, void** dst, void* data);
// The profiler (emu/profile.cpp): a thread's atomic on `p`; bytes moved by cp.async.
void rt_emu_prof_atomic(const void* p);
void rt_emu_prof_cp_async(unsigned bytes);
// A wide access the emulated instruction makes as one (ldmatrix's 16-byte rows, cp.async): the
// profiling copy reports it as one n-byte load of `src` / store to `dst` (the compiler would
// split a plain struct copy into pieces), then copies with no instrumentation.
#ifdef RT_EMU_PROFILE
extern "C" void __asan_loadN_noabort(uintptr_t, size_t);
extern "C" void __asan_storeN_noabort(uintptr_t, size_t);
__attribute__((no_sanitize_address, noinline, unused)) static void rt_emu_raw_copy(void* dst, const void* src, size_t n) {
    memcpy(dst, src, n);
}
#define RT_EMU_WIDE_LOAD(dst, src, n) \
    (__asan_loadN_noabort((uintptr_t)(src), (n)), rt_emu_raw_copy((dst), (src), (n)))
#define RT_EMU_WIDE_STORE(dst, src, n) \
    (__asan_storeN_noabort((uintptr_t)(dst), (n)), rt_emu_raw_copy((dst), (src), (n)))
#else
#define RT_EMU_WIDE_LOAD(dst, src, n) memcpy((dst), (src), (n))
#define RT_EMU_WIDE_STORE(dst, src, n) memcpy((dst), (src), (n))
#endif
[[noreturn]] void rt_emu_trap(const char* what);
unsigned long long rt_emu_clock();

// ---------------------------------------------------------------------------------------------
// Bit casts and integer intrinsics
// ---------------------------------------------------------------------------------------------
template <typename To, typename From> static inline To rt_emu_bits(const From& v) {
    static_assert(sizeof(To) == sizeof(From), "bit cast between different sizes");
    To out;
    memcpy(&out, &v, sizeof(To));
    return out;
}
static inline int __float_as_int(float v) { return rt_emu_bits<int>(v); }
static inline unsigned int __float_as_uint(float v) { return rt_emu_bits<unsigned int>(v); }
static inline float __int_as_float(int v) { return rt_emu_bits<float>(v); }
static inline float __uint_as_float(unsigned int v) { return rt_emu_bits<float>(v); }
static inline long long __double_as_longlong(double v) { return rt_emu_bits<long long>(v); }
static inline double __longlong_as_double(long long v) { return rt_emu_bits<double>(v); }

static inline int __popc(unsigned int x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
static inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __ffsll(long long x) { return __builtin_ffsll(x); }
static inline unsigned int __brev(unsigned int x) {
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
    return __builtin_bswap32(x);
}
static inline unsigned long long __brevll(unsigned long long x) {
    return ((unsigned long long)__brev((unsigned)x) << 32) | __brev((unsigned)(x >> 32));
}
static inline unsigned int __umulhi(unsigned int a, unsigned int b) { return (unsigned)(((unsigned long long)a * b) >> 32); }
static inline int __mulhi(int a, int b) { return (int)(((long long)a * b) >> 32); }
static inline unsigned long long __umul64hi(unsigned long long a, unsigned long long b) {
    return (unsigned long long)(((unsigned __int128)a * b) >> 64);
}
static inline int __mul24(int a, int b) { return (int)(((long long)(a << 8 >> 8)) * (b << 8 >> 8)); }
static inline unsigned int __umul24(unsigned a, unsigned b) { return (a & 0xffffffu) * (b & 0xffffffu); }
static inline unsigned int __byte_perm(unsigned int x, unsigned int y, unsigned int s) {
    unsigned long long v = ((unsigned long long)y << 32) | x;
    unsigned int r = 0;
    for (int i = 0; i < 4; ++i) r |= (unsigned)((v >> (8 * ((s >> (4 * i)) & 7))) & 0xff) << (8 * i);
    return r;
}
static inline unsigned int __funnelshift_l(unsigned lo, unsigned hi, unsigned s) {
    unsigned long long v = ((unsigned long long)hi << 32) | lo;
    return (unsigned)((v << (s & 31)) >> 32);
}
static inline unsigned int __funnelshift_r(unsigned lo, unsigned hi, unsigned s) {
    unsigned long long v = ((unsigned long long)hi << 32) | lo;
    return (unsigned)(v >> (s & 31));
}

// min / max overloads CUDA provides in the global namespace (math_functions.hpp), mixed-sign
// forms included so `min(i, n)` with int/unsigned is not ambiguous.
#define RT_EMU_MINMAX(A, B, R) \
    static inline R min(A a, B b) { return (R)a < (R)b ? (R)a : (R)b; } \
    static inline R max(A a, B b) { return (R)a > (R)b ? (R)a : (R)b; }
RT_EMU_MINMAX(int, int, int)
RT_EMU_MINMAX(unsigned int, unsigned int, unsigned int)
RT_EMU_MINMAX(int, unsigned int, unsigned int)
RT_EMU_MINMAX(unsigned int, int, unsigned int)
RT_EMU_MINMAX(long, long, long)
RT_EMU_MINMAX(unsigned long, unsigned long, unsigned long)
RT_EMU_MINMAX(long, unsigned long, unsigned long)
RT_EMU_MINMAX(unsigned long, long, unsigned long)
RT_EMU_MINMAX(long long, long long, long long)
RT_EMU_MINMAX(unsigned long long, unsigned long long, unsigned long long)
RT_EMU_MINMAX(long long, unsigned long long, unsigned long long)
RT_EMU_MINMAX(unsigned long long, long long, unsigned long long)
#undef RT_EMU_MINMAX
static inline float min(float a, float b) { return fminf(a, b); }
static inline float max(float a, float b) { return fmaxf(a, b); }
static inline double min(double a, double b) { return fmin(a, b); }
static inline double max(double a, double b) { return fmax(a, b); }
static inline double min(float a, double b) { return fmin(a, b); }
static inline double max(float a, double b) { return fmax(a, b); }
static inline double min(double a, float b) { return fmin(a, b); }
static inline double max(double a, float b) { return fmax(a, b); }

// ---------------------------------------------------------------------------------------------
// Math: the CUDA spellings that host libm lacks. Fast-math intrinsics are computed exactly here;
// parity tests must allow for the GPU's approximations, not the other way round.
// ---------------------------------------------------------------------------------------------
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float rcbrtf(float x) { return 1.0f / cbrtf(x); }
// glibc already declares __expf, __logf, exp10f... (its own exact versions) with external
// linkage, so those CUDA spellings are macros onto the exact libm functions.
#define __expf(x) expf(x)
#define __exp10f(x) exp10f(x)
#define __logf(x) logf(x)
#define __log2f(x) log2f(x)
#define __log10f(x) log10f(x)
#define __powf(a, b) powf(a, b)
#define __sinf(x) sinf(x)
#define __cosf(x) cosf(x)
#define __tanf(x) tanf(x)
#define __sincosf(x, s, c) sincosf(x, s, c)
static inline float __fdividef(float a, float b) { return a / b; }
static inline float fdividef(float a, float b) { return a / b; }
static inline float __frcp_rn(float x) { return 1.0f / x; }
static inline float __fsqrt_rn(float x) { return sqrtf(x); }
static inline float __frsqrt_rn(float x) { return 1.0f / sqrtf(x); }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fmaf_rn(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __fmaf_rz(float a, float b, float c) { return fmaf(a, b, c); }
static inline float __saturatef(float x) { return x != x ? 0.0f : fminf(fmaxf(x, 0.0f), 1.0f); }
static inline float normcdff(float x) { return 0.5f * erfcf(-x * 0.70710678118654752f); }
static inline int __float2int_rn(float x) { return (int)nearbyintf(x); }
static inline int __float2int_rz(float x) { return (int)x; }
static inline int __float2int_rd(float x) { return (int)floorf(x); }
static inline int __float2int_ru(float x) { return (int)ceilf(x); }
static inline unsigned int __float2uint_rn(float x) { return (unsigned)nearbyintf(x); }
static inline unsigned int __float2uint_rz(float x) { return (unsigned)x; }
static inline float __int2float_rn(int x) { return (float)x; }
static inline float __uint2float_rn(unsigned x) { return (float)x; }
static inline float __ll2float_rn(long long x) { return (float)x; }

// <math_constants.h>
#define CUDART_INF_F __builtin_bit_cast(float, 0x7f800000u)
#define CUDART_NAN_F __builtin_bit_cast(float, 0x7fffffffu)
#define CUDART_MIN_DENORM_F __builtin_bit_cast(float, 0x00000001u)
#define CUDART_MAX_NORMAL_F __builtin_bit_cast(float, 0x7f7fffffu)
#define CUDART_NEG_ZERO_F __builtin_bit_cast(float, 0x80000000u)
#define CUDART_ZERO_F 0.0f
#define CUDART_ONE_F 1.0f
#define CUDART_SQRT_HALF_F 0.707106781f
#define CUDART_SQRT_2_F 1.414213562f
#define CUDART_PI_F 3.141592654f
#define CUDART_L2E_F 1.442695041f
#define CUDART_LN2_F 0.693147181f
#define CUDART_INF __builtin_bit_cast(double, 0x7ff0000000000000ull)
#define CUDART_NAN __builtin_bit_cast(double, 0xfff8000000000000ull)
#define CUDART_PI 3.1415926535897931e+0

// ---------------------------------------------------------------------------------------------
// __half and __nv_bfloat16: 16-bit storage, conversions rounding to nearest even exactly like the
// host paths of cuda_fp16.hpp / cuda_bf16.hpp (NaN becomes the canonical 0x7fff), arithmetic done
// in f32 and rounded back, as sm_80+ hardware does for a single operation.
// ---------------------------------------------------------------------------------------------
static inline unsigned short rt_emu_f32_to_bf16_bits(float f) {
    unsigned int u = rt_emu_bits<unsigned int>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
    unsigned int lsb = (u >> 16) & 1u;
    return (unsigned short)((u + 0x7fffu + lsb) >> 16);
}
static inline unsigned short rt_emu_f32_to_bf16_bits_rz(float f) {
    unsigned int u = rt_emu_bits<unsigned int>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fffu;
    return (unsigned short)(u >> 16);
}
static inline float rt_emu_bf16_bits_to_f32(unsigned short h) { return rt_emu_bits<float>((unsigned int)h << 16); }

static inline unsigned short rt_emu_f32_to_f16_bits(float f) {
    unsigned int x = rt_emu_bits<unsigned int>(f);
    unsigned int sign = (x >> 16) & 0x8000u;
    unsigned int ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return 0x7fffu;                  // NaN (canonical, as cuda_fp16.hpp)
    if (ax >= 0x477ff000u) return (unsigned short)(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (ax < 0x33000001u) return (unsigned short)sign;      // <= 2^-25: rounds to (signed) zero
    int exp = (int)(ax >> 23) - 127;
    unsigned int mant = (ax & 0x7fffffu) | 0x800000u;
    unsigned int shift, base;
    if (exp < -14) {  // subnormal half: value = mant * 2^(exp-23), unit 2^-24
        shift = (unsigned)(-exp - 14 + 13);
        base = 0;
    } else {
        shift = 13;
        base = (unsigned)(exp + 15) << 10;
        mant &= 0x7fffffu;
    }
    unsigned int q = mant >> shift;
    unsigned int rem = mant & ((1u << shift) - 1u);
    unsigned int half = 1u << (shift - 1);
    unsigned int r = base + q;  // carries from the mantissa into the exponent are correct
    if (rem > half || (rem == half && (q & 1u))) r += 1;
    return (unsigned short)(sign | r);
}
static inline float rt_emu_f16_bits_to_f32(unsigned short h) {
    unsigned int sign = (unsigned)(h & 0x8000u) << 16;
    unsigned int e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    unsigned int out;
    if (e == 0x1f) out = sign | 0x7f800000u | (m << 13);
    else if (e != 0) out = sign | ((e + 112u) << 23) | (m << 13);
    else if (m == 0) out = sign;
    else return (h & 0x8000u) ? -(float)m * 5.9604644775390625e-08f : (float)m * 5.9604644775390625e-08f;
    return rt_emu_bits<float>(out);
}

struct __nv_bfloat16_raw { unsigned short x; };
struct __half_raw { unsigned short x; };

// The 16-bit float types: the bits, conversions to and from float (round to nearest even) and
// from the raw struct, as cuda_bf16.h / cuda_fp16.h define them.
#define RT_EMU_16BIT_FLOAT(T, RAW, TO_BITS, FROM_BITS)                          \
    struct __align__(2) T {                                                     \
        unsigned short __x;                                                     \
        T() = default;                                                          \
        constexpr T(const RAW& r) : __x(r.x) {}                                 \
        T(float f) : __x(TO_BITS(f)) {}                                         \
        T(double f) : __x(TO_BITS((float)f)) {}                                 \
        T(int v) : __x(TO_BITS((float)v)) {}                                    \
        T(unsigned int v) : __x(TO_BITS((float)v)) {}                           \
        T& operator=(const RAW& r) { __x = r.x; return *this; }                 \
        T& operator=(float f) { __x = TO_BITS(f); return *this; }               \
        operator float() const { return FROM_BITS(__x); }                       \
        operator RAW() const { return RAW{__x}; }                               \
    };
RT_EMU_16BIT_FLOAT(__nv_bfloat16, __nv_bfloat16_raw, rt_emu_f32_to_bf16_bits, rt_emu_bf16_bits_to_f32)
RT_EMU_16BIT_FLOAT(__half, __half_raw, rt_emu_f32_to_f16_bits, rt_emu_f16_bits_to_f32)
typedef __half half;
typedef __nv_bfloat16 nv_bfloat16;

struct __align__(4) __nv_bfloat162 { __nv_bfloat16 x, y; };
struct __align__(4) __half2 { __half x, y; };
typedef __half2 half2;
typedef __nv_bfloat162 nv_bfloat162;

static inline float __bfloat162float(__nv_bfloat16 v) { return rt_emu_bf16_bits_to_f32(v.__x); }
static inline __nv_bfloat16 rt_emu_bf16_from_bits(unsigned short b) { return __nv_bfloat16(__nv_bfloat16_raw{b}); }
static inline __nv_bfloat16 __float2bfloat16(float f) { return rt_emu_bf16_from_bits(rt_emu_f32_to_bf16_bits(f)); }
static inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __float2bfloat16(f); }
static inline __nv_bfloat16 __float2bfloat16_rz(float f) { return rt_emu_bf16_from_bits(rt_emu_f32_to_bf16_bits_rz(f)); }
static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 v) { return v.__x; }
static inline short __bfloat16_as_short(__nv_bfloat16 v) { return (short)v.__x; }
static inline __nv_bfloat16 __ushort_as_bfloat16(unsigned short b) { return rt_emu_bf16_from_bits(b); }
static inline __nv_bfloat16 __short_as_bfloat16(short b) { return rt_emu_bf16_from_bits((unsigned short)b); }

static inline float __half2float(__half v) { return rt_emu_f16_bits_to_f32(v.__x); }
static inline __half rt_emu_f16_from_bits(unsigned short b) { return __half(__half_raw{b}); }
static inline __half __float2half(float f) { return rt_emu_f16_from_bits(rt_emu_f32_to_f16_bits(f)); }
static inline __half __float2half_rn(float f) { return __float2half(f); }
static inline unsigned short __half_as_ushort(__half v) { return v.__x; }
static inline short __half_as_short(__half v) { return (short)v.__x; }
static inline __half __ushort_as_half(unsigned short b) { return rt_emu_f16_from_bits(b); }
static inline __half __short_as_half(short b) { return rt_emu_f16_from_bits((unsigned short)b); }

// Pair constructors and accessors. CUDA names them after the pair type (`P`: bfloat162, half2) or
// the element type (`S`: bfloat16, half) but they do the same for both; one macro stamps both out.
#define RT_EMU_H16_PAIR(T2, T, P, S, TO_F, FROM_F)                                                        \
    static inline T2 __floats2##P##_rn(float a, float b) { return T2{FROM_F(a), FROM_F(b)}; }              \
    static inline T2 __float22##P##_rn(float2 v) { return __floats2##P##_rn(v.x, v.y); }                   \
    static inline T2 __float2##P##_rn(float a) { return __floats2##P##_rn(a, a); }                         \
    static inline T2 __halves2##P(T a, T b) { return T2{a, b}; }                                           \
    static inline float2 __##P##2float2(T2 v) { return make_float2(TO_F(v.x), TO_F(v.y)); }                \
    static inline float __low2float(T2 v) { return TO_F(v.x); }                                           \
    static inline float __high2float(T2 v) { return TO_F(v.y); }                                          \
    static inline T __low2##S(T2 v) { return v.x; }                                                        \
    static inline T __high2##S(T2 v) { return v.y; }
RT_EMU_H16_PAIR(__nv_bfloat162, __nv_bfloat16, bfloat162, bfloat16, __bfloat162float, __float2bfloat16)
RT_EMU_H16_PAIR(__half2, __half, half2, half, __half2float, __float2half)
#undef RT_EMU_H16_PAIR

// Arithmetic, comparisons and intrinsics on the 16-bit types. CUDA overloads the same names
// (__hadd, __hmax, hexp...) for both types; one macro stamps both sets out.
#define RT_EMU_H16_OPS(T, TO_F, FROM_F, INF_BITS)                                                         \
    static inline T operator+(const T& a, const T& b) { return FROM_F(TO_F(a) + TO_F(b)); }                 \
    static inline T operator-(const T& a, const T& b) { return FROM_F(TO_F(a) - TO_F(b)); }                 \
    static inline T operator*(const T& a, const T& b) { return FROM_F(TO_F(a) * TO_F(b)); }                 \
    static inline T operator/(const T& a, const T& b) { return FROM_F(TO_F(a) / TO_F(b)); }                 \
    static inline T operator-(const T& a) { T r = a; r.__x ^= 0x8000u; return r; }                         \
    static inline T operator+(const T& a) { return a; }                                                     \
    static inline T& operator+=(T& a, const T& b) { a = a + b; return a; }                                  \
    static inline T& operator-=(T& a, const T& b) { a = a - b; return a; }                                  \
    static inline T& operator*=(T& a, const T& b) { a = a * b; return a; }                                  \
    static inline T& operator/=(T& a, const T& b) { a = a / b; return a; }                                  \
    static inline bool operator==(const T& a, const T& b) { return TO_F(a) == TO_F(b); }                   \
    static inline bool operator!=(const T& a, const T& b) { return TO_F(a) != TO_F(b); }                   \
    static inline bool operator<(const T& a, const T& b) { return TO_F(a) < TO_F(b); }                     \
    static inline bool operator<=(const T& a, const T& b) { return TO_F(a) <= TO_F(b); }                   \
    static inline bool operator>(const T& a, const T& b) { return TO_F(a) > TO_F(b); }                     \
    static inline bool operator>=(const T& a, const T& b) { return TO_F(a) >= TO_F(b); }                   \
    static inline T __hadd(T a, T b) { return a + b; }                                                      \
    static inline T __hsub(T a, T b) { return a - b; }                                                      \
    static inline T __hmul(T a, T b) { return a * b; }                                                      \
    static inline T __hdiv(T a, T b) { return a / b; }                                                      \
    static inline T __hneg(T a) { return -a; }                                                              \
    static inline T __hfma(T a, T b, T c) { return FROM_F(fmaf(TO_F(a), TO_F(b), TO_F(c))); }              \
    static inline T __hmax(T a, T b) { return FROM_F(fmaxf(TO_F(a), TO_F(b))); }                           \
    static inline T __hmin(T a, T b) { return FROM_F(fminf(TO_F(a), TO_F(b))); }                           \
    static inline bool __heq(T a, T b) { return a == b; }                                                   \
    static inline bool __hlt(T a, T b) { return a < b; }                                                    \
    static inline bool __hgt(T a, T b) { return a > b; }                                                    \
    static inline bool __hisnan(T a) { return (a.__x & 0x7fffu) > (INF_BITS); }                            \
    static inline int __hisinf(T a) { return (a.__x & 0x7fffu) == (INF_BITS) ? ((a.__x & 0x8000u) ? -1 : 1) : 0; } \
    static inline T __habs(T a) { T r = a; r.__x &= 0x7fffu; return r; }                                   \
    static inline T hexp(T a) { return FROM_F(expf(TO_F(a))); }                                             \
    static inline T hlog(T a) { return FROM_F(logf(TO_F(a))); }                                             \
    static inline T hsqrt(T a) { return FROM_F(sqrtf(TO_F(a))); }                                           \
    static inline T hrsqrt(T a) { return FROM_F(1.0f / sqrtf(TO_F(a))); }
RT_EMU_H16_OPS(__half, __half2float, __float2half, 0x7c00u)
RT_EMU_H16_OPS(__nv_bfloat16, __bfloat162float, __float2bfloat16, 0x7f80u)
#undef RT_EMU_H16_OPS

// ---------------------------------------------------------------------------------------------
// Memory access and atomics. Fibers switch only at barriers and warp collectives, so a plain
// read-modify-write is atomic here; each returns the old value like CUDA's.
// ---------------------------------------------------------------------------------------------
template <typename T> static inline T __ldg(const T* p) { return *p; }
template <typename T> static inline T __ldcg(const T* p) { return *p; }
template <typename T> static inline T __ldca(const T* p) { return *p; }
template <typename T> static inline T __ldcs(const T* p) { return *p; }
template <typename T> static inline T __ldlu(const T* p) { return *p; }
template <typename T> static inline T __ldcv(const T* p) { return *p; }
template <typename T> static inline void __stcg(T* p, T v) { *p = v; }
template <typename T> static inline void __stcs(T* p, T v) { *p = v; }
template <typename T> static inline void __stwb(T* p, T v) { *p = v; }
template <typename T> static inline void __stwt(T* p, T v) { *p = v; }

#ifdef RT_EMU_PROFILE
// The profiling copy counts atomics instead of recording their read and write as plain accesses
// (the attribute keeps gcc's access instrumentation out of them).
#define RT_EMU_ATOMIC_ATTR __attribute__((no_sanitize_address, noinline))
#define RT_EMU_ATOMIC_NOTE(p) rt_emu_prof_atomic(p)
#else
#define RT_EMU_ATOMIC_ATTR
#define RT_EMU_ATOMIC_NOTE(p) ((void)0)
#endif
#define RT_EMU_ATOMIC(NAME, T, EXPR) \
    RT_EMU_ATOMIC_ATTR static inline T NAME(T* p, T v) { RT_EMU_ATOMIC_NOTE(p); T old = *p; *p = (EXPR); return old; }
RT_EMU_ATOMIC(atomicAdd, int, old + v)
RT_EMU_ATOMIC(atomicAdd, unsigned int, old + v)
RT_EMU_ATOMIC(atomicAdd, unsigned long long, old + v)
RT_EMU_ATOMIC(atomicAdd, float, old + v)
RT_EMU_ATOMIC(atomicAdd, double, old + v)
RT_EMU_ATOMIC(atomicAdd, __half, old + v)
RT_EMU_ATOMIC(atomicAdd, __nv_bfloat16, old + v)
RT_EMU_ATOMIC(atomicSub, int, old - v)
RT_EMU_ATOMIC(atomicSub, unsigned int, old - v)
RT_EMU_ATOMIC(atomicExch, int, v)
RT_EMU_ATOMIC(atomicExch, unsigned int, v)
RT_EMU_ATOMIC(atomicExch, unsigned long long, v)
RT_EMU_ATOMIC(atomicExch, float, v)
RT_EMU_ATOMIC(atomicMax, int, old > v ? old : v)
RT_EMU_ATOMIC(atomicMax, unsigned int, old > v ? old : v)
RT_EMU_ATOMIC(atomicMax, long long, old > v ? old : v)
RT_EMU_ATOMIC(atomicMax, unsigned long long, old > v ? old : v)
RT_EMU_ATOMIC(atomicMin, int, old < v ? old : v)
RT_EMU_ATOMIC(atomicMin, unsigned int, old < v ? old : v)
RT_EMU_ATOMIC(atomicMin, long long, old < v ? old : v)
RT_EMU_ATOMIC(atomicMin, unsigned long long, old < v ? old : v)
RT_EMU_ATOMIC(atomicAnd, int, old & v)
RT_EMU_ATOMIC(atomicAnd, unsigned int, old & v)
RT_EMU_ATOMIC(atomicAnd, unsigned long long, old & v)
RT_EMU_ATOMIC(atomicOr, int, old | v)
RT_EMU_ATOMIC(atomicOr, unsigned int, old | v)
RT_EMU_ATOMIC(atomicOr, unsigned long long, old | v)
RT_EMU_ATOMIC(atomicXor, int, old ^ v)
RT_EMU_ATOMIC(atomicXor, unsigned int, old ^ v)
RT_EMU_ATOMIC(atomicXor, unsigned long long, old ^ v)
RT_EMU_ATOMIC(atomicInc, unsigned int, old >= v ? 0u : old + 1u)
RT_EMU_ATOMIC(atomicDec, unsigned int, (old == 0u || old > v) ? v : old - 1u)
#undef RT_EMU_ATOMIC
#define RT_EMU_CAS(T) \
    RT_EMU_ATOMIC_ATTR static inline T atomicCAS(T* p, T compare, T v) { \
        RT_EMU_ATOMIC_NOTE(p); T old = *p; if (old == compare) *p = v; return old; }
RT_EMU_CAS(int)
RT_EMU_CAS(unsigned int)
RT_EMU_CAS(unsigned long long)
RT_EMU_CAS(unsigned short)
#undef RT_EMU_CAS
#define atomicAdd_block atomicAdd
#define atomicAdd_system atomicAdd
#define atomicMax_block atomicMax
#define atomicMin_block atomicMin
#define atomicCAS_block atomicCAS
#define atomicExch_block atomicExch

// ---------------------------------------------------------------------------------------------
// Synchronisation and warp collectives
// ---------------------------------------------------------------------------------------------
static inline void __syncthreads() { rt_emu_syncthreads_op(0, 0); }
static inline int __syncthreads_count(int pred) { return rt_emu_syncthreads_op(1, pred); }
static inline int __syncthreads_and(int pred) { return rt_emu_syncthreads_op(2, pred); }
static inline int __syncthreads_or(int pred) { return rt_emu_syncthreads_op(3, pred); }
static inline void __threadfence() {}
static inline void __threadfence_block() {}
static inline void __threadfence_system() {}
static inline void __nanosleep(unsigned int) {}
static inline void __trap() { rt_emu_trap("__trap() called"); }
static inline void __brkpt() { rt_emu_trap("__brkpt() called"); }
static inline long long clock64() { return (long long)rt_emu_clock(); }
static inline unsigned int __activemask() { return rt_emu_active_mask(); }
static inline unsigned int __lanemask_lt() {
    unsigned lane = (threadIdx.x + threadIdx.y * blockDim.x + threadIdx.z * blockDim.x * blockDim.y) & 31u;
    return (1u << lane) - 1u;
}
static inline void __syncwarp(unsigned int mask = 0xffffffffu) { rt_emu_warp_op(RT_EMU_SYNCWARP, "__syncwarp", mask, 0, 0, 32, false); }

template <typename T> static inline uint64_t rt_emu_to_word(const T& v) {
    static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes per lane");
    uint64_t w = 0;
    memcpy(&w, &v, sizeof(T));
    return w;
}
template <typename T> static inline T rt_emu_from_word(uint64_t w) {
    T v;
    memcpy(&v, &w, sizeof(T));
    return v;
}
template <typename T> static inline T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32) {
    return rt_emu_from_word<T>(rt_emu_warp_op(RT_EMU_SHFL_IDX, "__shfl_sync", mask, rt_emu_to_word(var), src_lane, width, false));
}
template <typename T> static inline T __shfl_up_sync(unsigned mask, T var, unsigned int delta, int width = 32) {
    return rt_emu_from_word<T>(rt_emu_warp_op(RT_EMU_SHFL_UP, "__shfl_up_sync", mask, rt_emu_to_word(var), (int)delta, width, false));
}
template <typename T> static inline T __shfl_down_sync(unsigned mask, T var, unsigned int delta, int width = 32) {
    return rt_emu_from_word<T>(rt_emu_warp_op(RT_EMU_SHFL_DOWN, "__shfl_down_sync", mask, rt_emu_to_word(var), (int)delta, width, false));
}
template <typename T> static inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32) {
    return rt_emu_from_word<T>(rt_emu_warp_op(RT_EMU_SHFL_XOR, "__shfl_xor_sync", mask, rt_emu_to_word(var), lane_mask, width, false));
}
static inline unsigned int __ballot_sync(unsigned mask, int pred) {
    return (unsigned)rt_emu_warp_op(RT_EMU_BALLOT, "__ballot_sync", mask, pred != 0, 0, 32, false);
}
static inline int __any_sync(unsigned mask, int pred) {
    return (int)rt_emu_warp_op(RT_EMU_ANY, "__any_sync", mask, pred != 0, 0, 32, false);
}
static inline int __all_sync(unsigned mask, int pred) {
    return (int)rt_emu_warp_op(RT_EMU_ALL, "__all_sync", mask, pred != 0, 0, 32, false);
}
static inline int __uni_sync(unsigned mask, int pred) {
    unsigned b = __ballot_sync(mask, pred);
    return b == 0 || b == mask;
}
template <typename T> static inline unsigned int __match_any_sync(unsigned mask, T value) {
    return (unsigned)rt_emu_warp_op(RT_EMU_MATCH_ANY, "__match_any_sync", mask, rt_emu_to_word(value), 0, 32, false);
}
template <typename T> static inline unsigned int __match_all_sync(unsigned mask, T value, int* pred) {
    uint64_t r = rt_emu_warp_op(RT_EMU_MATCH_ALL, "__match_all_sync", mask, rt_emu_to_word(value), 0, 32, false);
    *pred = r != 0;
    return (unsigned)r;
}
#define RT_EMU_REDUCE(NAME, OP, T, SIGNED) \
    static inline T NAME(unsigned mask, T value) { \
        return (T)rt_emu_warp_op(OP, #NAME, mask, (uint64_t)(uint32_t)value, 0, 32, SIGNED); \
    }
RT_EMU_REDUCE(__reduce_add_sync, RT_EMU_REDUCE_ADD, unsigned, false)
RT_EMU_REDUCE(__reduce_add_sync, RT_EMU_REDUCE_ADD, int, true)
RT_EMU_REDUCE(__reduce_min_sync, RT_EMU_REDUCE_MIN, unsigned, false)
RT_EMU_REDUCE(__reduce_min_sync, RT_EMU_REDUCE_MIN, int, true)
RT_EMU_REDUCE(__reduce_max_sync, RT_EMU_REDUCE_MAX, unsigned, false)
RT_EMU_REDUCE(__reduce_max_sync, RT_EMU_REDUCE_MAX, int, true)
RT_EMU_REDUCE(__reduce_and_sync, RT_EMU_REDUCE_AND, unsigned, false)
RT_EMU_REDUCE(__reduce_or_sync, RT_EMU_REDUCE_OR, unsigned, false)
RT_EMU_REDUCE(__reduce_xor_sync, RT_EMU_REDUCE_XOR, unsigned, false)
#undef RT_EMU_REDUCE

// ---------------------------------------------------------------------------------------------
// Trampolines: build.rs generates `name__emu(void** args)` = `rt_emu_invoke(name, args)`, which
// calls the kernel with `*(Pi*)args[i]`, exactly how cuLaunchKernel reads its argument array.
// rt_emu_param_info describes each parameter (size and kind) so the Rust side can reject an
// argument list that would be misread on a GPU.
// ---------------------------------------------------------------------------------------------
#include <utility>
template <typename... P, size_t... I>
static inline void rt_emu_invoke_impl(void (*f)(P...), void** args, std::index_sequence<I...>) {
    (void)args;  // unused by kernels without parameters
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<P>>*>(args[I])...);
}
template <typename... P> static inline void rt_emu_invoke(void (*f)(P...), void** args) {
    rt_emu_invoke_impl(f, args, std::index_sequence_for<P...>{});
}
// Kind codes: 'p' pointer, 'f' floating point, 'i' signed integer, 'u' unsigned integer /
// bool / enum, 's' anything else (a struct by value).
template <typename P> constexpr char rt_emu_kind() {
    using T = std::remove_cv_t<std::remove_reference_t<P>>;
    return std::is_pointer<T>::value ? 'p'
         : std::is_floating_point<T>::value ? 'f'
         : (std::is_integral<T>::value && std::is_signed<T>::value) ? 'i'
         : (std::is_integral<T>::value || std::is_enum<T>::value) ? 'u'
         : 's';
}
struct RtEmuParam { unsigned int size; char kind; };
template <typename F> struct RtEmuSig;
template <typename... P> struct RtEmuSig<void(P...)> {
    static constexpr unsigned count = sizeof...(P);
    static constexpr RtEmuParam list[sizeof...(P) + 1] = {{(unsigned)sizeof(P), rt_emu_kind<P>()}..., {0, 0}};
    // "... [with F = void(const float*, float*, int)]": the signature as the compiler spells it.
    static const char* signature() { return __PRETTY_FUNCTION__; }
};

struct RtEmuKernel {
    const char* name;
    const char* family;
    void (*trampoline)(void**);
    unsigned int param_count;
    const RtEmuParam* params;
    const char* (*signature)();
    // The kernel file's static __shared__ section ([begin, end), both null when it has none).
    unsigned char* shared_begin;
    unsigned char* shared_end;
};
