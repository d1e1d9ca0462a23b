// runtime.cpp — the fiber scheduler that gives emulated kernels CUDA's execution semantics.
//
// One launch = blocks run one after another on the calling OS thread; the threads of a block are
// fibers with small reusable stacks (on x86-64 a hand-written switch of the callee-saved
// registers; elsewhere ucontext, whose swapcontext also saves the signal mask with a system call
// per switch and made the kernel tests spend a third of their time in the kernel). A fiber runs
// until it reaches a block barrier or a warp collective, where it deposits what it contributes and
// yields. Warp collectives complete as soon as the last lane named in the mask arrives (that lane
// computes every participant's result by the PTX rules); a barrier completes when every live fiber
// of the block waits at it. When nothing can run and the block is not finished, the kernel is
// wrong (a fiber exited while others wait at a barrier, a mask names a lane that never arrives,
// lanes disagree on a mask): the block is abandoned and the launch returns a message — never a
// hang, never an abort.
//
// The order in which runnable fibers are resumed is the launch's Schedule (forward, reverse,
// seeded random), so code that depends on an ordering CUDA does not promise (a missing
// __syncthreads) computes different results under different schedules. The same Schedule orders
// the blocks (forward, reverse, a seeded shuffle): CUDA promises no order between blocks either.
//
// Shared memory, static and dynamic, is filled with 0xFF bytes before every block (NaN in every
// float type, -1 in every integer), so a kernel reading shared memory its block did not write
// computes visibly wrong results instead of the zeros or the previous block's data. The static
// footprint is measured after the first block as the bytes of the kernel file's __shared__
// section that no longer hold the poison (a lower bound: bytes never written, or written with
// 0xFF, are not counted) and checked against the per-block limits the launch passes in.
//
// Launches are serialised by a process-wide mutex: static __shared__ storage is one plain static
// per kernel, which is only "one copy per block" while one block runs at a time.
#include "cuda_emu.h"
#include "profile.h"

#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <exception>
#include <mutex>
#include <numeric>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define RT_EMU_ASAN 1
#else
#define RT_EMU_ASAN 0
#endif

RtEmuThread* rt_emu_current = nullptr;
uint3 rt_emu_block_idx = {0, 0, 0};
dim3 rt_emu_block_dim;
dim3 rt_emu_grid_dim;

namespace {

enum State { RUNNABLE, AT_BARRIER, AT_WARP, EXITED };

// Fiber stacks: sized for kernels with sizeable per-thread arrays (and ASan's larger frames).
constexpr size_t kStackSize = 256 * 1024;

void fiber_main();

#if defined(__x86_64__)
// A suspended context is its stack pointer; everything else the SysV ABI asks a callee to keep
// (rbx, rbp, r12-r15, the SSE control/status word and the x87 control word) is pushed on the
// suspended stack itself. No signal mask: fibers never change it.
struct FiberContext {
    void* sp = nullptr;
};

extern "C" void rt_emu_switch_stack(void** save_sp, void* load_sp);
asm(R"(
    .text
    .p2align 4
    .globl rt_emu_switch_stack
    .hidden rt_emu_switch_stack
    .type rt_emu_switch_stack, @function
rt_emu_switch_stack:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size rt_emu_switch_stack, .-rt_emu_switch_stack
)");

void context_switch(FiberContext* save, FiberContext* load) { rt_emu_switch_stack(&save->sp, load->sp); }

// A fresh context on `stack` whose first switch "returns" into fiber_main, laid out as the
// switch pops it: control words, six registers, the return address, then a null return address
// for fiber_main itself (it never returns).
void context_init(FiberContext* c, char* stack, size_t size) {
    auto* top = reinterpret_cast<uint64_t*>(reinterpret_cast<uintptr_t>(stack + size) & ~uintptr_t(15));
    // fiber_main's (null) return address, at 8 mod 16 as a call would leave it.
    uint64_t* sp = top - 1;
    sp[0] = 0;
    *--sp = reinterpret_cast<uint64_t>(&fiber_main);
    for (int i = 0; i < 6; ++i) *--sp = 0;  // rbp, rbx, r12-r15
    uint32_t mxcsr;
    uint16_t fpucw;
    asm volatile("stmxcsr %0" : "=m"(mxcsr));
    asm volatile("fnstcw %0" : "=m"(fpucw));
    *--sp = uint64_t(mxcsr) | uint64_t(fpucw) << 32;
    c->sp = sp;
}
#else
struct FiberContext {
    ucontext_t uc;
};

void context_switch(FiberContext* save, FiberContext* load) { swapcontext(&save->uc, &load->uc); }

// Out of line: getcontext "returns twice" in the compiler's eyes, which would make it assume the
// caller's locals may be clobbered (we never resume this context; makecontext replaces it).
__attribute__((noinline)) void context_init(FiberContext* c, char* stack, size_t size) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = size;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, fiber_main, 0);
}
#endif

}  // namespace

struct RtEmuThread {
    uint3 tid;  // first member: rt_emu_thread_idx() reads it through the opaque pointer
    unsigned linear = 0, warp = 0, lane = 0;
    State state = RUNNABLE;
    FiberContext ctx;
    char* stack = nullptr;  // usable stack (a PROT_NONE guard page sits below it)
    void* asan_fake_stack = nullptr;
    // __syncthreads_{count,and,or}
    int bar_mode = 0, bar_pred = 0, bar_result = 0;
    // the pending warp collective
    int op = 0;
    const char* op_name = "";
    unsigned mask = 0;
    uint64_t value = 0;
    int arg = 0, width = 32;
    bool is_signed = false;
    uint64_t result = 0;
    void (*xfn)(void* const*, void*) = nullptr;
    void* xctx = nullptr;
    // cp.async copies issued and not yet completed; group -1 = not committed yet.
    struct CpAsync {
        void* dst;
        unsigned char data[16];
        unsigned n;
        long group;
    };
    std::vector<CpAsync> cp_pending;
    long cp_groups = 0;  // groups committed so far
};

namespace {

struct Launch {
    const RtEmuKernel* kernel = nullptr;
    void** args = nullptr;
    unsigned nthreads = 0;
    std::vector<RtEmuThread> threads;
    FiberContext sched_ctx;
    void* sched_fake_stack = nullptr;
    const void* sched_stack_bottom = nullptr;
    size_t sched_stack_size = 0;
    unsigned char* dyn = nullptr;
    size_t dyn_size = 0;
    unsigned char* static_begin = nullptr;  // the kernel file's static __shared__ section
    size_t static_size = 0;
    bool failed = false;
    std::string error;
    int schedule = 0;  // 0 forward, 1 reverse, 2 random
    uint64_t rng = 0;
    unsigned long long clock = 0;
};

Launch g;  // the one launch in flight (guarded by launch_mutex)
std::mutex launch_mutex;
std::vector<char*> stack_pool;  // reused across blocks and launches

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, f);
    vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

std::string where(const RtEmuThread* t) {
    return fmt("block (%u,%u,%u) thread (%u,%u,%u) [warp %u lane %u]", rt_emu_block_idx.x, rt_emu_block_idx.y,
               rt_emu_block_idx.z, t->tid.x, t->tid.y, t->tid.z, t->warp, t->lane);
}

char* stack_for(size_t i) {
    while (stack_pool.size() <= i) {
        long page = sysconf(_SC_PAGESIZE);
        void* m = mmap(nullptr, kStackSize + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return nullptr;
        mprotect(m, page, PROT_NONE);  // a fiber overflowing its stack faults instead of corrupting
        stack_pool.push_back(static_cast<char*>(m) + page);
    }
    return stack_pool[i];
}

// --- context switches, annotated for AddressSanitizer so it tracks the fiber stacks ----------
void switch_to_fiber(RtEmuThread* t) {
    rt_emu_current = t;
#if RT_EMU_ASAN
    __sanitizer_start_switch_fiber(&g.sched_fake_stack, t->stack, kStackSize);
#endif
    context_switch(&g.sched_ctx, &t->ctx);
#if RT_EMU_ASAN
    __sanitizer_finish_switch_fiber(g.sched_fake_stack, nullptr, nullptr);
#endif
}

// Back to the scheduler. `final` = this fiber will never be resumed (exited or failed).
void switch_to_scheduler(RtEmuThread* t, bool final) {
#if RT_EMU_ASAN
    __sanitizer_start_switch_fiber(final ? nullptr : &t->asan_fake_stack, g.sched_stack_bottom, g.sched_stack_size);
#else
    (void)final;
#endif
    context_switch(&t->ctx, &g.sched_ctx);
#if RT_EMU_ASAN
    __sanitizer_finish_switch_fiber(t->asan_fake_stack, nullptr, nullptr);
#endif
    rt_emu_current = t;
}

// Records the first fault of the launch and abandons the calling fiber (it is never resumed).
// printf-style on purpose: nothing owning heap memory may be alive in the fiber's frames when
// it is abandoned, or it leaks (LeakSanitizer would say so).
[[noreturn]] void fail(RtEmuThread* t, const char* f, ...) __attribute__((format(printf, 2, 3)));
[[noreturn]] void fail(RtEmuThread* t, const char* f, ...) {
    if (!g.failed) {
        char msg[1024];
        va_list ap;
        va_start(ap, f);
        vsnprintf(msg, sizeof msg, f, ap);
        va_end(ap);
        g.failed = true;
        g.error = where(t) + ": " + msg;  // temporaries die at the end of this statement
    }
    switch_to_scheduler(t, true);
    abort();  // unreachable: a failed fiber is never resumed
}

void fiber_main() {
    RtEmuThread* t = rt_emu_current;
#if RT_EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &g.sched_stack_bottom, &g.sched_stack_size);
#endif
    char what[256] = "";
    bool threw = false;
    try {
        g.kernel->trampoline(g.args);
    } catch (const std::exception& e) {
        threw = true;
        snprintf(what, sizeof what, "%s", e.what());
    } catch (...) {
        threw = true;
    }
    // Outside the handler, so the exception object is freed before the fiber is abandoned.
    if (threw) fail(t, "a C++ exception escaped the kernel: %s", what);
    t->state = EXITED;
    switch_to_scheduler(t, true);
    abort();  // unreachable
}

uint64_t next_random() {  // xorshift64*
    g.rng ^= g.rng >> 12;
    g.rng ^= g.rng << 25;
    g.rng ^= g.rng >> 27;
    return g.rng * 0x2545F4914F6CDD1Dull;
}

const char* state_name(State s) {
    switch (s) {
        case RUNNABLE: return "running";
        case AT_BARRIER: return "waiting at __syncthreads()";
        case AT_WARP: return "waiting at a warp collective";
        case EXITED: return "exited";
    }
    return "?";
}

// --- warp collectives -----------------------------------------------------------------------

// The lane shfl reads, by the PTX ISA's shfl.sync rules (CUDA passes c = ((32-width)<<8)|0x1f,
// and 0 as the clamp for .up): returns -1 when the source is out of range (own value).
int shfl_source(int op, unsigned lane, int b, int width) {
    unsigned segmask = (unsigned)(32 - width) & 0x1f;
    unsigned bval = (unsigned)b & 0x1f;
    unsigned cval = op == RT_EMU_SHFL_UP ? 0u : 0x1fu;
    int min_lane = (int)(lane & segmask);
    int max_lane = (int)((lane & segmask) | (cval & ~segmask));
    int j;
    bool ok;
    switch (op) {
        case RT_EMU_SHFL_UP: j = (int)lane - (int)bval; ok = j >= max_lane; break;
        case RT_EMU_SHFL_DOWN: j = (int)lane + (int)bval; ok = j <= max_lane; break;
        case RT_EMU_SHFL_XOR: j = (int)(lane ^ bval); ok = j <= max_lane; break;
        default: j = min_lane | (int)(bval & ~segmask); ok = j <= max_lane; break;
    }
    return ok ? j : -1;
}

RtEmuThread* lane_thread(unsigned warp, unsigned lane) {
    unsigned lin = warp * 32 + lane;
    return lin < g.nthreads ? &g.threads[lin] : nullptr;
}

// Called by the lane that arrives: if every lane named in its mask waits at the same collective
// with the same mask, compute everyone's result, wake them, and return true.
bool try_complete(RtEmuThread* t) {
    RtEmuThread* lanes[32] = {};
    for (unsigned k = 0; k < 32; ++k) {
        if (!(t->mask >> k & 1u)) continue;
        RtEmuThread* u = lane_thread(t->warp, k);
        if (!u)
            fail(t, "%s(mask=0x%08x) names lane %u, which does not exist (the block has %u threads)", t->op_name,
                        t->mask, k, g.nthreads);
        if (u->state == EXITED)
            fail(t, "%s(mask=0x%08x) names lane %u, which has already exited", t->op_name, t->mask, k);
        if (u->state != AT_WARP || u->op != t->op || u->mask != t->mask) return false;
        lanes[k] = u;
    }
    const unsigned mask = t->mask;
    if (t->op == RT_EMU_GATHER) {
        void* regs[32] = {};
        for (unsigned k = 0; k < 32; ++k)
            if (lanes[k]) regs[k] = reinterpret_cast<void*>(lanes[k]->value);
        rt_emu_prof_warp_instruction(t->op_name);
        t->xfn(regs, t->xctx);
    }
    uint64_t ballot = 0;
    for (unsigned k = 0; k < 32; ++k)
        if (lanes[k] && lanes[k]->value) ballot |= 1ull << k;
    for (unsigned k = 0; k < 32; ++k) {
        RtEmuThread* u = lanes[k];
        if (!u) continue;
        uint64_t r = 0;
        switch (u->op) {
            case RT_EMU_SHFL_IDX:
            case RT_EMU_SHFL_UP:
            case RT_EMU_SHFL_DOWN:
            case RT_EMU_SHFL_XOR: {
                int j = shfl_source(u->op, k, u->arg, u->width);
                if (j < 0 || j == (int)k) {
                    r = u->value;
                } else if (!(mask >> j & 1u)) {
                    fail(t, "%s(mask=0x%08x): lane %u reads lane %d, which is not in the mask (its value is "
                                "undefined on a GPU)",
                                u->op_name, mask, k, j);
                } else {
                    r = lanes[j]->value;
                }
                break;
            }
            case RT_EMU_BALLOT: r = ballot; break;
            case RT_EMU_ANY: r = ballot != 0; break;
            case RT_EMU_ALL: r = ballot == mask; break;
            case RT_EMU_MATCH_ANY:
            case RT_EMU_MATCH_ALL: {
                uint64_t same = 0;
                for (unsigned q = 0; q < 32; ++q)
                    if (lanes[q] && lanes[q]->value == u->value) same |= 1ull << q;
                r = (u->op == RT_EMU_MATCH_ANY || same == mask) ? same : 0;
                break;
            }
            case RT_EMU_REDUCE_ADD:
            case RT_EMU_REDUCE_MIN:
            case RT_EMU_REDUCE_MAX:
            case RT_EMU_REDUCE_AND:
            case RT_EMU_REDUCE_OR:
            case RT_EMU_REDUCE_XOR: {
                bool first = true;
                uint32_t acc = 0;
                for (unsigned q = 0; q < 32; ++q) {
                    if (!lanes[q]) continue;
                    uint32_t v = (uint32_t)lanes[q]->value;
                    if (first) { acc = v; first = false; continue; }
                    switch (u->op) {
                        case RT_EMU_REDUCE_ADD: acc += v; break;
                        case RT_EMU_REDUCE_AND: acc &= v; break;
                        case RT_EMU_REDUCE_OR: acc |= v; break;
                        case RT_EMU_REDUCE_XOR: acc ^= v; break;
                        case RT_EMU_REDUCE_MIN:
                            acc = u->is_signed ? (uint32_t)std::min((int32_t)acc, (int32_t)v) : std::min(acc, v);
                            break;
                        default:
                            acc = u->is_signed ? (uint32_t)std::max((int32_t)acc, (int32_t)v) : std::max(acc, v);
                            break;
                    }
                }
                r = acc;
                break;
            }
            default: break;  // __syncwarp, gather: a rendezvous only
        }
        u->result = r;
    }
    for (unsigned k = 0; k < 32; ++k)
        if (lanes[k]) lanes[k]->state = RUNNABLE;
    return true;
}

bool is_pow2_width(int w) { return w >= 1 && w <= 32 && (w & (w - 1)) == 0; }

// Everything is blocked: say why, as precisely as possible.
std::string diagnose_stall() {
    unsigned exited = 0, at_barrier = 0;
    const RtEmuThread* first_exited = nullptr;
    for (auto& t : g.threads) {
        if (t.state == EXITED) { ++exited; if (!first_exited) first_exited = &t; }
        if (t.state == AT_BARRIER) ++at_barrier;
    }
    for (auto& t : g.threads) {
        if (t.state != AT_WARP) continue;
        for (unsigned k = 0; k < 32; ++k) {
            if (!(t.mask >> k & 1u)) continue;
            RtEmuThread* u = lane_thread(t.warp, k);
            if (!u) continue;  // reported on arrival
            if (u->state == AT_WARP && u->op == t.op && u->mask == t.mask) continue;
            std::string other = u->state == AT_WARP ? fmt("waiting at %s(mask=0x%08x)", u->op_name, u->mask)
                                                    : std::string(state_name(u->state));
            return where(&t) + fmt(": waits at %s(mask=0x%08x), but lane %u, named in the mask, is %s — "
                                   "it never arrives",
                                   t.op_name, t.mask, k, other.c_str());
        }
    }
    if (exited > 0 && at_barrier > 0)
        return where(first_exited) + fmt(": returned while %u other thread(s) of the block wait at __syncthreads() "
                                         "(every thread of the block must reach each barrier)",
                                         at_barrier);
    return "the block stalled for an unknown reason";
}

// __activemask() callers, once nothing can run: each gets the set of its warp's lanes that wait
// in __activemask() too. Returns whether any were woken.
bool resolve_activemask() {
    bool woke = false;
    for (auto& t : g.threads) {
        if (t.state != AT_WARP || t.op != RT_EMU_ACTIVEMASK) continue;
        unsigned m = 0;
        for (unsigned k = 0; k < 32; ++k) {
            RtEmuThread* u = lane_thread(t.warp, k);
            if (u && u->state == AT_WARP && u->op == RT_EMU_ACTIVEMASK) m |= 1u << k;
        }
        for (unsigned k = 0; k < 32; ++k) {
            if (!(m >> k & 1u)) continue;
            RtEmuThread* u = lane_thread(t.warp, k);
            u->result = m;
            u->state = RUNNABLE;
        }
        woke = true;
    }
    return woke;
}

void init_fiber(RtEmuThread& t) {
    t.state = RUNNABLE;
    t.asan_fake_stack = nullptr;
    t.cp_pending.clear();
    t.cp_groups = 0;
#if RT_EMU_ASAN
    // Frames of a fiber abandoned mid-call (a fault, or the final switch out of fiber_main) left
    // their redzones poisoned; a new fiber on this stack must not trip over them.
    __asan_unpoison_memory_region(t.stack, kStackSize);
#endif
    context_init(&t.ctx, t.stack, kStackSize);
}

// Static shared memory is poisoned and measured outside AddressSanitizer's view: in the ASan
// build the section holds redzones between the variables, whose shadow says "never touch" but
// whose bytes are ordinary memory. Volatile, so the loop is not turned into an (intercepted)
// memset call.
__attribute__((no_sanitize_address, noinline)) void poison_static(unsigned char* p, size_t n) {
    volatile unsigned char* v = p;
    for (size_t i = 0; i < n; ++i) v[i] = 0xff;
}

__attribute__((no_sanitize_address, noinline)) size_t static_bytes_written(const unsigned char* p, size_t n) {
    const volatile unsigned char* v = p;
    size_t written = 0;
    for (size_t i = 0; i < n; ++i) written += v[i] != 0xff;
    return written;
}

std::string run_block() {
    // Fresh fibers for this block's threads.
    for (unsigned i = 0; i < g.nthreads; ++i) init_fiber(g.threads[i]);
    // Shared memory starts as NaN bytes in every block, like nothing a kernel may rely on.
    if (g.dyn_size) memset(g.dyn, 0xff, g.dyn_size);
    if (g.static_size) poison_static(g.static_begin, g.static_size);
    rt_emu_prof_block_begin(g.nthreads, g.static_begin, g.static_size, g.dyn, g.dyn_size);

    // The schedule is a priority order over the block's threads, drawn anew for every barrier
    // interval. Scheduling is depth-first: after each switch the highest-priority runnable thread
    // runs next, so the first warp in the order runs all the way to the next __syncthreads()
    // before any other warp moves. That is the ordering a missing barrier between warps cannot
    // survive (one warp reads shared memory before, or long after, the others write it), while
    // a round-robin over all threads would keep warps in lockstep and hide it.
    std::vector<unsigned> order(g.nthreads);
    auto draw_order = [&]() {
        for (unsigned i = 0; i < g.nthreads; ++i) order[i] = i;
        if (g.schedule == 1) {
            for (unsigned i = 0; i < g.nthreads; ++i) order[i] = g.nthreads - 1 - i;
        } else if (g.schedule == 2) {
            for (unsigned i = g.nthreads; i > 1; --i) std::swap(order[i - 1], order[next_random() % i]);
        }
    };
    draw_order();
    // Threads before `settled` in the order are waiting at the barrier or have exited: neither can
    // become runnable before the interval ends, so scans start after them.
    unsigned settled = 0;
    for (;;) {
        bool ran = false;
        for (unsigned p = settled; p < g.nthreads; ++p) {
            RtEmuThread& t = g.threads[order[p]];
            if (t.state != RUNNABLE) {
                if (p == settled && (t.state == AT_BARRIER || t.state == EXITED)) ++settled;
                continue;
            }
            ran = true;
            switch_to_fiber(&t);
            if (g.failed) return g.error;
            break;  // depth-first: rescan from the highest-priority thread
        }
        if (ran) continue;
        // Quiescent: finished, a barrier to release, or a stuck kernel.
        unsigned exited = 0, at_barrier = 0, at_warp = 0;
        for (auto& t : g.threads) {
            exited += t.state == EXITED;
            at_barrier += t.state == AT_BARRIER;
            at_warp += t.state == AT_WARP;
        }
        if (exited == g.nthreads) {
            rt_emu_prof_block_end();
            return "";
        }
        if (resolve_activemask()) continue;
        if (at_warp == 0 && exited == 0) {
            rt_emu_prof_barrier();
            int count = 0;
            for (auto& t : g.threads) count += t.bar_pred != 0;
            for (auto& t : g.threads) {
                t.bar_result = t.bar_mode == 1 ? count
                             : t.bar_mode == 2 ? (count == (int)g.nthreads)
                             : t.bar_mode == 3 ? (count > 0) : 0;
                t.state = RUNNABLE;
            }
            draw_order();
            settled = 0;
            continue;
        }
        return diagnose_stall();
    }
}

}  // namespace

// --- the kernel-facing primitives (declared in cuda_emu.h) -----------------------------------

int rt_emu_syncthreads_op(int mode, int pred) {
    RtEmuThread* t = rt_emu_current;
    t->bar_mode = mode;
    t->bar_pred = pred;
    t->state = AT_BARRIER;
    switch_to_scheduler(t, false);
    return t->bar_result;
}

uint64_t rt_emu_warp_op(int op, const char* name, unsigned mask, uint64_t value, int arg, int width, bool is_signed) {
    RtEmuThread* t = rt_emu_current;
    if (!(mask >> t->lane & 1u))
        fail(t, "%s(mask=0x%08x) called by lane %u, which is not in its own mask", name, mask, t->lane);
    if (op >= RT_EMU_SHFL_IDX && op <= RT_EMU_SHFL_XOR && !is_pow2_width(width))
        fail(t, "%s: width %d is not a power of two in [1, 32]", name, width);
    t->op = op;
    t->op_name = name;
    t->mask = mask;
    t->value = value;
    t->arg = arg;
    t->width = width;
    t->is_signed = is_signed;
    t->state = AT_WARP;
    if (!try_complete(t)) switch_to_scheduler(t, false);
    return t->result;
}

void rt_emu_warp_exchange(const char* name, unsigned mask, void* mine, void (*fn)(void* const*, void*), void* ctx) {
    RtEmuThread* t = rt_emu_current;
    t->xfn = fn;
    t->xctx = ctx;
    rt_emu_warp_op(RT_EMU_GATHER, name, mask, reinterpret_cast<uint64_t>(mine), 0, 32, false);
}

unsigned rt_emu_active_mask() {
    RtEmuThread* t = rt_emu_current;
    t->op = RT_EMU_ACTIVEMASK;
    t->op_name = "__activemask";
    t->mask = 0;
    t->state = AT_WARP;
    switch_to_scheduler(t, false);
    return (unsigned)t->result;
}

void* rt_emu_dynamic_shared() { return g.dyn; }

unsigned rt_emu_current_linear() { return rt_emu_current ? rt_emu_current->linear : ~0u; }

void rt_emu_cp_async_push(void* dst, const void* data, unsigned n) {
    RtEmuThread* t = rt_emu_current;
    if (n != 4 && n != 8 && n != 16) fail(t, "cp.async of %u bytes (must be 4, 8 or 16)", n);
    if ((uintptr_t)dst % n != 0) fail(t, "cp.async: shared address %p is not aligned to %u bytes", dst, n);
    RtEmuThread::CpAsync c{dst, {}, n, -1};
    memcpy(c.data, data, n);
    t->cp_pending.push_back(c);
    rt_emu_prof_cp_async(n);
}

void rt_emu_cp_async_commit() {
    RtEmuThread* t = rt_emu_current;
    for (auto& c : t->cp_pending)
        if (c.group < 0) c.group = t->cp_groups;
    t->cp_groups += 1;
}

// cp.async.wait_group `keep`: every committed group but the `keep` most recent must be complete.
unsigned rt_emu_cp_async_pop(unsigned keep, void** dst, void* data) {
    RtEmuThread* t = rt_emu_current;
    const long limit = t->cp_groups - (long)keep;  // groups below this complete now
    for (size_t i = 0; i < t->cp_pending.size(); ++i) {
        const auto c = t->cp_pending[i];
        if (c.group < 0 || c.group >= limit) continue;
        t->cp_pending.erase(t->cp_pending.begin() + (long)i);
        *dst = c.dst;
        memcpy(data, c.data, c.n);
        return c.n;
    }
    return 0;
}

void rt_emu_trap(const char* what) { fail(rt_emu_current, "%s", what); }

unsigned long long rt_emu_clock() { return ++g.clock; }

// --- the Rust-facing entry point --------------------------------------------------------------

// Runs `kernel` over the grid. schedule: 0 forward, 1 reverse, 2 random(seed). Returns 0, or 1
// with a NUL-terminated message in `err`.
// static_limit: the most static shared memory a block may use (48 KiB on every GPU);
// block_limit: the most static + dynamic shared memory a block may use (the device's maximum).
extern "C" int rt_emu_run(const RtEmuKernel* kernel, void** args, const unsigned* grid, const unsigned* block,
                          unsigned shared_bytes, int schedule, uint64_t seed, unsigned static_limit,
                          unsigned block_limit, char* err, size_t err_len) {
    std::lock_guard<std::mutex> lock(launch_mutex);
    auto report = [&](const std::string& msg) {
        snprintf(err, err_len, "%s", msg.c_str());
        return 1;
    };
    try {
        const unsigned n = block[0] * block[1] * block[2];
        if (n == 0 || n > 1024) return report(fmt("block of %u threads (must be 1..=1024)", n));
        g.kernel = kernel;
        g.args = args;
        g.nthreads = n;
        g.failed = false;
        g.error.clear();
        g.clock = 0;
        if (g.threads.size() < n) g.threads.resize(n);
        for (unsigned i = 0; i < n; ++i) {
            RtEmuThread& t = g.threads[i];
            t.tid = uint3{i % block[0], (i / block[0]) % block[1], i / (block[0] * block[1])};
            t.linear = i;
            t.warp = i / 32;
            t.lane = i % 32;
            t.stack = stack_for(i);
            if (!t.stack) return report("could not map fiber stacks");
        }
        // Threads beyond n keep their records from earlier launches but are never scheduled.
        g.threads.resize(n);
        g.dyn_size = shared_bytes;
        // Exactly the launch's size (even 0), so AddressSanitizer sees any access past it.
        g.dyn = static_cast<unsigned char*>(malloc(shared_bytes));
        if (!g.dyn && shared_bytes) return report("could not allocate dynamic shared memory");
        g.static_begin = kernel->shared_begin;
        g.static_size = kernel->shared_begin && kernel->shared_end > kernel->shared_begin
                            ? (size_t)(kernel->shared_end - kernel->shared_begin)
                            : 0;
        rt_emu_grid_dim = dim3(grid[0], grid[1], grid[2]);
        rt_emu_block_dim = dim3(block[0], block[1], block[2]);
        const uint64_t nblocks = (uint64_t)grid[0] * grid[1] * grid[2];
        // The order the blocks run in: forward, reverse, or a seeded shuffle (Fisher-Yates). A
        // grid too large to list is walked by a seeded affine bijection i -> (a*i + c) mod n.
        std::vector<uint64_t> order;
        uint64_t stride = 1, offset = 0;
        if (schedule == 2 && nblocks <= (1ull << 22)) {
            order.resize(nblocks);
            for (uint64_t i = 0; i < nblocks; ++i) order[i] = i;
            g.rng = (seed ^ 0xB10C5EEDull) | 1;
            for (uint64_t i = nblocks; i > 1; --i) std::swap(order[i - 1], order[next_random() % i]);
        } else if (schedule == 2) {
            g.rng = (seed ^ 0xB10C5EEDull) | 1;
            offset = next_random() % nblocks;
            do stride = next_random() % nblocks | 1; while (std::gcd(stride, nblocks) != 1);
        }
        std::string error;
        for (uint64_t i = 0; i < nblocks && error.empty(); ++i) {
            uint64_t block_id = schedule == 1   ? nblocks - 1 - i
                                : !order.empty() ? order[i]
                                                 : (uint64_t)(((unsigned __int128)stride * i + offset) % nblocks);
            unsigned x = (unsigned)(block_id % grid[0]);
            unsigned y = (unsigned)(block_id / grid[0] % grid[1]);
            unsigned z = (unsigned)(block_id / ((uint64_t)grid[0] * grid[1]));
            rt_emu_block_idx = uint3{x, y, z};
            g.schedule = schedule;
            // Each block gets its own stream (never 0, which xorshift cannot leave).
            g.rng = (seed ^ (block_id * 0x9E3779B97F4A7C15ull)) | 1;
            error = run_block();
            if (i == 0 && error.empty() && g.static_size) {
                // What the hardware would have refused at compile or launch time.
                size_t used = static_bytes_written(g.static_begin, g.static_size);
                if (used > static_limit)
                    error = fmt("kernel `%s` uses at least %zu bytes of static __shared__ memory per block; the "
                                "limit is %u (48 KiB) on every GPU: shrink its tiles, or move them to dynamic "
                                "shared memory (RT_DYNAMIC_SHARED) with the MaxDynamicSharedMemorySize opt-in",
                                kernel->name, used, static_limit);
                else if (used + shared_bytes > block_limit)
                    error = fmt("kernel `%s` uses %zu bytes of static plus %u bytes of dynamic shared memory "
                                "per block, over the device maximum of %u: shrink its tiles",
                                kernel->name, used, shared_bytes, block_limit);
            }
        }
        free(g.dyn);
        g.dyn = nullptr;
        rt_emu_current = nullptr;
        if (!error.empty()) return report(error);
        return 0;
    } catch (const std::exception& e) {
        return report(std::string("emulator failure: ") + e.what());
    } catch (...) {
        return report("emulator failure");
    }
}
