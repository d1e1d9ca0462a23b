// profile.h — what the scheduler (runtime.cpp) tells the profiler (profile.cpp) about a launch.
//
// The profiling copy of every kernel file is built with gcc's kernel-address instrumentation, so
// each load and store of a kernel calls __asan_{load,store}N_noabort (defined in profile.cpp).
// The profiler keeps those only while a profiled launch runs, attributes each to the fiber that
// runs (its lane and warp) and the call site, and, at the end of every block, groups them into
// warp-wide accesses: see profile.cpp for the metrics.
#pragma once

#include <stddef.h>
#include <stdint.h>

// Per-launch totals, read by the Rust side (src/profile.rs mirrors this layout).
struct RtEmuProfile {
    uint64_t global_loads;               // warp-wide global load instructions
    uint64_t global_load_bytes;          // distinct bytes the lanes of each of them read, summed
    uint64_t global_load_sector_bytes;   // 32 x the distinct 32-byte sectors each touched, summed
    uint64_t global_stores;
    uint64_t global_store_bytes;
    uint64_t global_store_sector_bytes;
    uint64_t shared_accesses;            // warp-wide shared loads and stores
    uint64_t shared_ways_sum;            // sum over them of the bank-conflict degree
    uint64_t shared_load_bytes;
    uint64_t shared_store_bytes;
    uint64_t global_atomics;             // per thread
    uint64_t barriers;                   // block-wide barriers completed, over all blocks
    uint64_t mma;                        // warp-wide mma instructions
    uint64_t ldmatrix;                   // warp-wide ldmatrix instructions
    uint64_t cp_async_bytes;             // bytes copied global -> shared by cp.async
};

// Called by the scheduler (all no-ops unless a profiled launch runs).
void rt_emu_prof_block_begin(unsigned nthreads, const unsigned char* static_begin, size_t static_size,
                             const unsigned char* dyn, size_t dyn_size);
void rt_emu_prof_block_end();
void rt_emu_prof_barrier();
void rt_emu_prof_warp_instruction(const char* name);
// The calling fiber's linear thread index in its block (runtime.cpp).
unsigned rt_emu_current_linear();
