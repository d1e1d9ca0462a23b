//! [`EmuBackend`]: the emulated GPU. "Device" memory is host memory with guard zones; kernels run
//! through [`crate::launch`]; `gemm` is the f64 reference loop.
//!
//! Every buffer sits between two 256-byte guard zones filled with a canary pattern, and fresh
//! allocations are filled with 0xFF bytes (NaN as f32, bf16 and f16), so a kernel that reads
//! memory nobody wrote produces NaNs instead of plausible zeros. After every launch all live
//! buffers' guards are checked: an out-of-bounds write is reported as [`ComputeError::Kernel`]
//! naming the kernel, the buffer and the offset of the first overwritten byte — the emulator's
//! answer to compute-sanitizer's memcheck when AddressSanitizer is not on. Pointer arguments
//! must point into a live buffer (or be null), as device pointers on a GPU must.
//!
//! Between [`EmuBackend::start_profiling`] and [`EmuBackend::take_profiles`] every launch runs on
//! the kernels' profiling copies ([`crate::profile_launch`]), with all live buffers as its
//! global memory, and its [`LaunchProfile`] is kept.

use std::alloc::{Layout, alloc, dealloc};
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use ragtune_compute::ComputeError;
use ragtune_compute::backend::{DeviceMemory, GemmCall, GpuBackend};
use ragtune_compute::launch::{Arg, KernelCall};
use ragtune_compute::memory_meter::{MemoryMeter, MemoryStats};

use crate::{EmuOptions, LaunchProfile, gemm};

/// Bytes of guard zone before and after each buffer.
const GUARD: usize = 256;
/// Buffers are aligned like cudaMalloc's (256 bytes), so vectorised kernels see real alignment.
const ALIGN: usize = 256;
/// What fresh allocations hold: NaN in every float format.
const POISON: u8 = 0xff;

/// The canary byte at position `i` of a guard zone: varies with `i`, so a kernel storing any
/// one repeated value out of bounds cannot match it by accident.
fn canary(i: usize) -> u8 {
    (i as u8).wrapping_mul(151) ^ 0x5a
}

/// One allocation: `[guard | data (len bytes) | guard]`.
pub struct EmuBuffer {
    id: u64,
    base: NonNull<u8>,
    len: usize,
    layout: Layout,
    /// The backend's meter, given this buffer's bytes back on drop.
    meter: Arc<MemoryMeter>,
}

// SAFETY: the buffer owns its allocation; access goes through raw addresses, like device memory.
unsafe impl Send for EmuBuffer {}
unsafe impl Sync for EmuBuffer {}

impl fmt::Debug for EmuBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmuBuffer(#{}, {} bytes at {:#x})", self.id, self.len, self.addr())
    }
}

impl EmuBuffer {
    fn new(id: u64, len: usize, meter: Arc<MemoryMeter>) -> Result<Self, ComputeError> {
        let oom = || ComputeError::Invalid { op: "alloc", detail: format!("cannot allocate {len} bytes") };
        let total = len.checked_add(2 * GUARD).ok_or_else(oom)?;
        let layout = Layout::from_size_align(total, ALIGN).map_err(|_| oom())?;
        // SAFETY: `layout` has a non-zero size (at least the two guards).
        let base = NonNull::new(unsafe { alloc(layout) }).ok_or_else(oom)?;
        meter.allocated(len);
        let buf = EmuBuffer { id, base, len, layout, meter };
        // SAFETY: all three regions lie inside the allocation.
        unsafe {
            std::ptr::write_bytes(buf.data_ptr(), POISON, len);
        }
        buf.restore_guards();
        Ok(buf)
    }

    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: GUARD < allocation size.
        unsafe { self.base.as_ptr().add(GUARD) }
    }

    /// Start addresses of the front and back guard zones (GUARD bytes each). Raw pointers: the
    /// zones are device memory kernels may have scribbled on, not Rust-owned data.
    fn guard_ptrs(&self) -> [*mut u8; 2] {
        // SAFETY: both zones lie inside the allocation.
        unsafe { [self.base.as_ptr(), self.data_ptr().add(self.len)] }
    }

    fn restore_guards(&self) {
        for g in self.guard_ptrs() {
            for i in 0..GUARD {
                // SAFETY: i < GUARD, inside the zone; launches are synchronous, nothing else writes.
                unsafe { g.add(i).write(canary(i)) };
            }
        }
    }

    /// The first overwritten guard byte, as an offset from the buffer's start (negative = before
    /// it), or None when both guards are intact.
    fn first_overwrite(&self) -> Option<i64> {
        let [front, back] = self.guard_ptrs();
        // SAFETY: i < GUARD, inside the zone.
        let bad = |g: *mut u8| (0..GUARD).find(|&i| unsafe { g.add(i).read() } != canary(i));
        if let Some(i) = bad(front) {
            return Some(i as i64 - GUARD as i64);
        }
        bad(back).map(|i| (self.len + i) as i64)
    }

    fn contains(&self, addr: u64, bytes: usize) -> bool {
        let start = self.addr();
        addr >= start && (addr - start) as usize <= self.len && bytes <= self.len - (addr - start) as usize
    }
}

impl Drop for EmuBuffer {
    fn drop(&mut self) {
        self.meter.freed(self.len);
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.base.as_ptr(), self.layout) }
    }
}

impl DeviceMemory for EmuBuffer {
    fn addr(&self) -> u64 {
        self.data_ptr() as u64
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// A [`GpuBackend`] that runs `kernels/*.cu` on the CPU emulator.
pub struct EmuBackend {
    opts: EmuOptions,
    next_id: AtomicU64,
    /// Every buffer handed out; dead entries are pruned as we go.
    buffers: Mutex<Vec<Weak<EmuBuffer>>>,
    meter: Arc<MemoryMeter>,
    /// Some while profiling: the launches profiled so far.
    profiles: Mutex<Option<Vec<LaunchProfile>>>,
}

impl fmt::Debug for EmuBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmuBackend({:?})", self.opts)
    }
}

impl Default for EmuBackend {
    fn default() -> Self {
        EmuBackend::new(EmuOptions::default())
    }
}

impl EmuBackend {
    pub fn new(opts: EmuOptions) -> Self {
        EmuBackend {
            opts,
            next_id: AtomicU64::new(1),
            buffers: Mutex::new(Vec::new()),
            meter: Arc::new(MemoryMeter::new()),
            profiles: Mutex::new(None),
        }
    }

    /// From now on, profile every launch (see [`crate::profile_launch`]); restarts an ongoing
    /// session with an empty list.
    pub fn start_profiling(&self) {
        *self.profiles.lock().unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
    }

    /// Stops profiling and returns the profiles of the launches since
    /// [`start_profiling`](Self::start_profiling), in launch order (empty if it was not called).
    pub fn take_profiles(&self) -> Vec<LaunchProfile> {
        self.profiles.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default()
    }

    pub fn options(&self) -> EmuOptions {
        self.opts
    }

    fn live(&self) -> MutexGuard<'_, Vec<Weak<EmuBuffer>>> {
        // A panic elsewhere cannot leave the list inconsistent (pushes and retains only).
        self.buffers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn live_buffers(&self) -> Vec<Arc<EmuBuffer>> {
        let mut list = self.live();
        list.retain(|w| w.strong_count() > 0);
        list.iter().filter_map(Weak::upgrade).collect()
    }

    fn new_buffer(&self, len: usize) -> Result<Arc<EmuBuffer>, ComputeError> {
        let buf =
            Arc::new(EmuBuffer::new(self.next_id.fetch_add(1, Ordering::Relaxed), len, self.meter.clone())?);
        let mut list = self.live();
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(&buf));
        Ok(buf)
    }

    /// The live buffer holding `[addr, addr + bytes)`, or an error naming `what`.
    fn owner(
        &self,
        op: &'static str,
        what: &str,
        addr: u64,
        bytes: usize,
    ) -> Result<Arc<EmuBuffer>, ComputeError> {
        self.live_buffers().into_iter().find(|b| b.contains(addr, bytes)).ok_or_else(|| {
            ComputeError::Invalid {
                op,
                detail: format!(
                    "{what}: {bytes} bytes at {addr:#x} do not lie inside one live buffer of this EmuBackend \
                 (out of bounds, freed, or not device memory)"
                ),
            }
        })
    }

    /// Checks (and re-arms) every live buffer's guards; reports all overwritten ones.
    fn check_guards(&self, function: &str) -> Result<(), ComputeError> {
        let mut faults = Vec::new();
        for b in self.live_buffers() {
            if let Some(off) = b.first_overwrite() {
                let place = if off < 0 {
                    format!("{} bytes before its start", -off)
                } else {
                    format!("{} bytes past its end", off as usize - b.len)
                };
                faults.push(format!(
                    "out-of-bounds write to buffer #{} ({} bytes at {:#x}): first overwritten guard byte at \
                     offset {off} ({place})",
                    b.id,
                    b.len,
                    b.addr()
                ));
                b.restore_guards();
            }
        }
        if faults.is_empty() {
            Ok(())
        } else {
            Err(ComputeError::Kernel { function: function.to_string(), detail: faults.join("; ") })
        }
    }
}

impl GpuBackend for EmuBackend {
    fn describe(&self) -> String {
        format!("CPU emulation of kernels/*.cu (schedule {})", self.opts.schedule)
    }

    fn alloc(&self, bytes: usize) -> Result<Arc<dyn DeviceMemory>, ComputeError> {
        Ok(self.new_buffer(bytes)?)
    }

    fn upload(&self, src: &[u8]) -> Result<Arc<dyn DeviceMemory>, ComputeError> {
        let buf = self.new_buffer(src.len())?;
        // SAFETY: the buffer has exactly src.len() data bytes.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), buf.data_ptr(), src.len()) };
        Ok(buf)
    }

    fn download(&self, src: &dyn DeviceMemory, dst: &mut [u8]) -> Result<(), ComputeError> {
        if dst.len() > src.len() {
            return Err(ComputeError::Shape {
                op: "download",
                detail: format!("{} bytes requested from a buffer of {} bytes", dst.len(), src.len()),
            });
        }
        let _owner = self.owner("download", "source", src.addr(), dst.len())?;
        // SAFETY: `_owner` (kept alive) holds the whole range.
        unsafe { std::ptr::copy_nonoverlapping(src.addr() as *const u8, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn copy(&self, src: u64, dst: u64, bytes: usize) -> Result<(), ComputeError> {
        let _keep =
            [self.owner("copy", "source", src, bytes)?, self.owner("copy", "destination", dst, bytes)?];
        // SAFETY: both ranges lie inside live buffers held by `_keep` (`ptr::copy` tolerates overlap).
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, bytes) };
        Ok(())
    }

    fn launch(&self, call: &KernelCall) -> Result<(), ComputeError> {
        // Keep every buffer an argument points into alive for the launch, and refuse pointers a
        // GPU would fault on.
        let mut _keep = Vec::new();
        for (i, arg) in call.args.iter().enumerate() {
            if let Arg::Ptr(p) = *arg
                && p != 0
            {
                _keep.push(self.owner("launch", &format!("{} argument {i}", call.kernel.name()), p, 0)?);
            }
        }
        // The CUDA backend opts a kernel in to more than 48 KiB of dynamic shared memory right
        // before such a launch (cuFuncSetAttribute); so does this backend, through the same
        // emulated attribute a raw `launch` checks.
        if call.dims.shared_bytes > crate::DYNAMIC_SHARED_DEFAULT_BYTES
            && crate::has_kernel(call.kernel.name())
            && call.dims.shared_bytes <= crate::MAX_SHARED_BYTES_PER_BLOCK
        {
            crate::set_max_dynamic_shared_bytes(call.kernel.name(), call.dims.shared_bytes)?;
        }
        let profiling = self.profiles.lock().unwrap_or_else(|e| e.into_inner()).is_some();
        let result = if profiling {
            let global: Vec<(u64, usize)> = self.live_buffers().iter().map(|b| (b.addr(), b.len)).collect();
            crate::profile_launch(call, &self.opts, &global).map(|p| {
                if let Some(list) = self.profiles.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                    list.push(p);
                }
            })
        } else {
            crate::launch(call, &self.opts)
        };
        let guards = self.check_guards(call.kernel.name());
        result.and(guards)
    }

    fn max_shared_bytes_per_block(&self) -> usize {
        crate::MAX_SHARED_BYTES_PER_BLOCK as usize
    }

    fn gemm(&self, call: &GemmCall) -> Result<(), ComputeError> {
        let (a, b, c) = gemm::extents(call)?;
        let _keep = [
            self.owner("gemm", "A", call.a, a)?,
            self.owner("gemm", "B", call.b, b)?,
            self.owner("gemm", "C", call.c, c)?,
        ];
        // SAFETY: every operand's extent lies inside a live buffer held by `_keep`.
        unsafe { gemm::reference_gemm(call) }
    }

    fn synchronize(&self) -> Result<(), ComputeError> {
        Ok(())
    }

    fn memory_stats(&self) -> MemoryStats {
        self.meter.stats()
    }

    fn reset_peak_memory(&self) {
        self.meter.reset_peak();
    }
}
