// profile.cpp — the emulated profiler: exact memory-access properties of a profiled launch.
//
// The profiling copy of each kernel file (build.rs) is compiled with gcc's kernel-address
// instrumentation and a call threshold of 0, so every load and store a kernel makes calls one of
// the __asan_{load,store}{1,2,4,8,16,N}_noabort functions below with its address. While a
// profiled launch runs, each access to memory the profiler knows is recorded with the thread
// that made it, its call site (the hook's return address) and how many times that thread has
// passed that site before. Known memory is shared (the kernel file's static __shared__ section
// or the launch's dynamic buffer) or global (the ranges the launch passed in: its buffers);
// everything else (fiber stacks, the emulator's own state) is ignored.
//
// At the end of every block the records are grouped by (warp, call site, n-th pass): the lanes
// of a warp executing one instruction together, i.e. one warp-wide access. Per group:
//   global: the distinct bytes the lanes touch, and the distinct 32-byte sectors those bytes lie
//           in (load efficiency = bytes / (32 x sectors), summed over the launch);
//   shared: the bank-conflict degree, the most distinct 4-byte words any one of the 32 banks
//           must deliver in one phase (a word several lanes read is broadcast, not a conflict).
//           Accesses wider than 4 bytes are served in phases, as the hardware does: 8-byte
//           accesses by half-warps, 16-byte ones by quarter-warps; the degree is the worst phase.
// Divergent lanes that pass a site a different number of times are grouped by pass count, so
// the grouping is exact for warp-uniform control flow, which is what the metrics are for.
//
// Not compiled into the AddressSanitizer build's hooks: libasan defines the same names.
#include "cuda_emu.h"
#include "profile.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

struct Event {
    uint32_t warp, lane, nth;
    uintptr_t site;
    uint64_t addr;
    uint32_t size;
    uint8_t shared, store;
};

struct Profiler {
    bool active = false;
    bool in_block = false;
    std::vector<std::pair<uint64_t, uint64_t>> global;  // sorted [begin, end)
    uint64_t static_begin = 0, static_end = 0, dyn_begin = 0, dyn_end = 0;
    std::vector<std::unordered_map<uintptr_t, uint32_t>> passes;  // per thread: site -> count
    std::vector<Event> events;
    RtEmuProfile totals = {};
};

// Per OS thread: a profiled launch runs its blocks (as fibers) on the thread that started the
// session, while other threads (parallel tests, other callers) may be running ordinary launches
// whose scheduler calls the same hooks; a process-wide state counted their ldmatrix and barriers
// into the session (CI saw 3 ldmatrix for a kernel that issues 1).
thread_local Profiler P;

bool in_global(uint64_t a, uint64_t n) {
    auto it = std::upper_bound(P.global.begin(), P.global.end(), std::make_pair(a, UINT64_MAX));
    if (it == P.global.begin()) return false;
    --it;
    return a >= it->first && a + n <= it->second;
}

// 0 = not tracked, 1 = global, 2 = shared.
int classify(uint64_t a, uint64_t n) {
    if (a >= P.static_begin && a + n <= P.static_end) return 2;
    if (a >= P.dyn_begin && a + n <= P.dyn_end) return 2;
    return in_global(a, n) ? 1 : 0;
}

void record(uintptr_t addr, size_t size, bool store, void* site) {
    if (!P.in_block || size == 0) return;
    int space = classify(addr, size);
    if (space == 0) return;
    unsigned t = rt_emu_current_linear();
    if (t >= P.passes.size()) return;
    uint32_t nth = P.passes[t][(uintptr_t)site]++;
    P.events.push_back(Event{t / 32, t % 32, nth, (uintptr_t)site, (uint64_t)addr, (uint32_t)size,
                             (uint8_t)(space == 2), (uint8_t)store});
}

// One warp-wide global access: distinct bytes and sectors.
void global_group(const Event* e, size_t n) {
    std::vector<std::pair<uint64_t, uint32_t>> sectors;  // (sector, byte mask)
    for (size_t i = 0; i < n; ++i) {
        for (uint64_t b = e[i].addr; b < e[i].addr + e[i].size; ++b) {
            uint64_t s = b >> 5;
            auto it = std::find_if(sectors.begin(), sectors.end(), [&](const auto& p) { return p.first == s; });
            if (it == sectors.end()) {
                sectors.push_back({s, 0});
                it = sectors.end() - 1;
            }
            it->second |= 1u << (b & 31);
        }
    }
    uint64_t bytes = 0;
    for (auto& s : sectors) bytes += __builtin_popcount(s.second);
    if (e[0].store) {
        P.totals.global_stores += 1;
        P.totals.global_store_bytes += bytes;
        P.totals.global_store_sector_bytes += 32 * sectors.size();
    } else {
        P.totals.global_loads += 1;
        P.totals.global_load_bytes += bytes;
        P.totals.global_load_sector_bytes += 32 * sectors.size();
    }
}

// One warp-wide shared access: its bank-conflict degree.
void shared_group(const Event* e, size_t n) {
    uint32_t widest = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; ++i) {
        widest = std::max(widest, e[i].size);
        bytes += e[i].size;
    }
    const uint32_t lanes_per_phase = widest <= 4 ? 32 : widest <= 8 ? 16 : 8;
    uint32_t ways = 1;
    for (uint32_t phase = 0; phase < 32 / lanes_per_phase; ++phase) {
        std::vector<uint64_t> words;
        for (size_t i = 0; i < n; ++i) {
            if (e[i].lane / lanes_per_phase != phase) continue;
            for (uint64_t w = e[i].addr >> 2; w <= (e[i].addr + e[i].size - 1) >> 2; ++w) words.push_back(w);
        }
        std::sort(words.begin(), words.end());
        words.erase(std::unique(words.begin(), words.end()), words.end());
        uint32_t per_bank[32] = {};
        for (uint64_t w : words) ways = std::max(ways, ++per_bank[w & 31]);
    }
    P.totals.shared_accesses += 1;
    P.totals.shared_ways_sum += ways;
    (e[0].store ? P.totals.shared_store_bytes : P.totals.shared_load_bytes) += bytes;
}

}  // namespace

// --- the instrumentation hooks ----------------------------------------------------------------
#if !defined(__SANITIZE_ADDRESS__)
#define RT_EMU_HOOK(N)                                                                                     \
    extern "C" __attribute__((noinline)) void __asan_load##N##_noabort(uintptr_t a) {                      \
        if (P.active) record(a, N, false, __builtin_return_address(0));                                    \
    }                                                                                                      \
    extern "C" __attribute__((noinline)) void __asan_store##N##_noabort(uintptr_t a) {                     \
        if (P.active) record(a, N, true, __builtin_return_address(0));                                     \
    }
RT_EMU_HOOK(1)
RT_EMU_HOOK(2)
RT_EMU_HOOK(4)
RT_EMU_HOOK(8)
RT_EMU_HOOK(16)
#undef RT_EMU_HOOK
extern "C" __attribute__((noinline)) void __asan_loadN_noabort(uintptr_t a, size_t n) {
    if (P.active) record(a, n, false, __builtin_return_address(0));
}
extern "C" __attribute__((noinline)) void __asan_storeN_noabort(uintptr_t a, size_t n) {
    if (P.active) record(a, n, true, __builtin_return_address(0));
}
extern "C" void __asan_handle_no_return() {}
#endif

// --- what the kernels' emulated intrinsics report ---------------------------------------------
void rt_emu_prof_atomic(const void* p) {
    if (P.active && P.in_block && in_global((uintptr_t)p, 1)) P.totals.global_atomics += 1;
}

void rt_emu_prof_cp_async(unsigned bytes) {
    if (P.active && P.in_block) P.totals.cp_async_bytes += bytes;
}

// --- what the scheduler reports ---------------------------------------------------------------
void rt_emu_prof_block_begin(unsigned nthreads, const unsigned char* static_begin, size_t static_size,
                             const unsigned char* dyn, size_t dyn_size) {
    if (!P.active) return;
    P.in_block = true;
    P.static_begin = (uintptr_t)static_begin;
    P.static_end = P.static_begin + static_size;
    P.dyn_begin = (uintptr_t)dyn;
    P.dyn_end = P.dyn_begin + dyn_size;
    P.passes.assign(nthreads, {});
    P.events.clear();
}

void rt_emu_prof_block_end() {
    if (!P.active || !P.in_block) return;
    P.in_block = false;
    auto& ev = P.events;
    std::sort(ev.begin(), ev.end(), [](const Event& a, const Event& b) {
        return std::tie(a.warp, a.site, a.nth, a.store, a.shared, a.lane) <
               std::tie(b.warp, b.site, b.nth, b.store, b.shared, b.lane);
    });
    for (size_t i = 0; i < ev.size();) {
        size_t j = i + 1;
        while (j < ev.size() && ev[j].warp == ev[i].warp && ev[j].site == ev[i].site && ev[j].nth == ev[i].nth &&
               ev[j].store == ev[i].store && ev[j].shared == ev[i].shared)
            ++j;
        if (ev[i].shared)
            shared_group(&ev[i], j - i);
        else
            global_group(&ev[i], j - i);
        i = j;
    }
    ev.clear();
}

void rt_emu_prof_barrier() {
    if (P.active && P.in_block) P.totals.barriers += 1;
}

void rt_emu_prof_warp_instruction(const char* name) {
    if (!P.active || !P.in_block) return;
    if (strncmp(name, "mma", 3) == 0) P.totals.mma += 1;
    if (strncmp(name, "ldmatrix", 8) == 0) P.totals.ldmatrix += 1;
}

// --- the Rust-facing entry points (src/profile.rs; sessions are per thread) ---------------------

// Starts recording: `ranges` holds `n` (address, length) pairs, the launch's global memory.
extern "C" void rt_emu_prof_start(const uint64_t* ranges, size_t n) {
    P = Profiler{};
    for (size_t i = 0; i < n; ++i) P.global.push_back({ranges[2 * i], ranges[2 * i] + ranges[2 * i + 1]});
    std::sort(P.global.begin(), P.global.end());
    P.active = true;
}

// Stops recording and returns the totals.
extern "C" void rt_emu_prof_stop(RtEmuProfile* out) {
    *out = P.totals;
    P = Profiler{};
}
