//! Where a model's ops run: on rayon's worker threads, with the thread that asked for the work
//! taking part in it.
//!
//! Every CPU op splits its work into rayon tasks. Called from a thread outside the pool (a
//! program's main thread), each op hands its tasks to the pool, wakes a worker, and puts the
//! caller to sleep until they are done: two context switches and a futex wake per op. A decode
//! step of a small model is hundreds of ops of a few microseconds each, so those hand-offs were
//! a large part of it: on a 2-core AMD EPYC (Zen 3, 2026-12-06) the demo's per-answer latency
//! of the base model fell from 4.9 ms to 2.5 ms, and the whole demo from 178 s to 150–165 s,
//! once the work ran inside the pool, where an op's first task runs on the calling worker and
//! the other worker steals the rest.
//!
//! [`in_pool`] runs a closure there: directly when the caller is already a worker of some rayon
//! pool (a test's one-thread pool included, so thread counts the caller chose are kept), else
//! inside one process-wide pool with the default thread count (`RAYON_NUM_THREADS`, or one per
//! logical CPU, as rayon's global pool). Model forwards, training steps and embedding call it
//! at their entry, so a library caller gets one hand-off per call, not per op; the CLI and the
//! bench runner run their whole command inside it.

use std::sync::OnceLock;

/// Stack of the pool's threads: a program's main thread gets 8 MiB on Linux, and whole commands
/// run here.
const STACK_BYTES: usize = 8 << 20;

static POOL: OnceLock<Result<rayon::ThreadPool, String>> = OnceLock::new();

/// Run `f` on a rayon worker thread (see the module doc). Falls back to running `f` on the
/// calling thread if the pool's threads cannot be started (the ops then use rayon's global pool
/// as before, only slower).
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .stack_size(STACK_BYTES)
            .thread_name(|i| format!("ragtune-cpu-{i}"))
            .build()
            .map_err(|e| e.to_string())
    });
    match pool {
        Ok(pool) => pool.install(f),
        Err(_) => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::in_pool;

    #[test]
    fn runs_on_a_worker_and_keeps_the_callers_pool() {
        assert_eq!(rayon::current_thread_index(), None);
        let (index, threads) = in_pool(|| (rayon::current_thread_index(), rayon::current_num_threads()));
        assert!(index.is_some(), "the closure ran outside any pool");
        assert_eq!(threads, rayon::ThreadPoolBuilder::new().build().unwrap().current_num_threads());
        // Inside a caller's own pool, the closure runs there, with that pool's thread count.
        let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
        let inner = one.install(|| in_pool(rayon::current_num_threads));
        assert_eq!(inner, 1);
        // A nested call runs in place.
        assert_eq!(in_pool(|| in_pool(|| 7)), 7);
    }
}
