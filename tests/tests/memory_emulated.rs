//! The device memory meter on the CPU emulation of the kernels (a fresh backend per test, so the
//! counts are this test's alone).

use std::sync::Arc;

use ragtune_compute::Device;
use ragtune_kernel_emu::EmuBackend;
use ragtune_tests::memory;

#[test]
fn emulated_memory_meter_counts_tensors() {
    memory::meter_counts_tensors(&Device::from_backend(Arc::new(EmuBackend::default())));
}
