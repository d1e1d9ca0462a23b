//! The device checks on the kernel emulator (`ragtune-kernel-emu`, the CPU emulation of CUDA)
//! against the CPU, from the one list the GPU bundle runs too (`ragtune_tests::device_checks`):
//! tiny random models, the indexes and training steps, named `emulated_<group>_<name>`. They
//! prove in `cargo test` that every check of the bundle's `gpu_device_checks` runs and passes on
//! a correct device. One random thread schedule each: the parity suites already run every
//! kernel under several, and these checks are about what the crates do with the kernels.

use std::sync::Arc;

use ragtune_compute::Device;
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use ragtune_tests::device_checks;

fn emulated() -> Device {
    Device::from_backend(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Random(0xd1ce) })))
}

macro_rules! emulated_checks {
    ($(($group:ident, $name:ident, $check:ident $(, $arg:expr)*)),* $(,)?) => {
        paste::paste! { $(
            #[test]
            fn [<emulated_ $group _ $name>]() {
                device_checks::[<$group _ $name>](&emulated());
            }
        )* }
    };
}

ragtune_tests::for_each_device_check!(emulated_checks);
