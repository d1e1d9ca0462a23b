//! Every kernel of `kernels/*.cu`, run on the CPU emulation of CUDA (`ragtune-kernel-emu`), against
//! the CPU side of its op — under three thread schedules, so a missing barrier shows up — from the
//! one list of parity suites (`ragtune_tests::suites`) that the GPU bundle runs too, and a check
//! that the list launches every kernel built (none is left untested).

use std::sync::Arc;

use ragtune_compute::Device;
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use ragtune_tests::instrumented::Instrumented;
use ragtune_tests::suites::SUITES;
use ragtune_tests::{parity, rng};

fn emulated(schedule: Schedule) -> Device {
    Device::from_backend(Arc::new(EmuBackend::new(EmuOptions { schedule })))
}

/// One test per entry of the parity list, `emulated_<family>_<name>`, under the schedules the
/// entry asks for; the forward schedule of every entry runs in the coverage test below.
///
/// Under AddressSanitizer (CI's second pass over these binaries) they return at once: the
/// coverage test already runs every suite there, and what ASan checks — the addresses a kernel
/// touches — the schedules do not change; the plain pass runs them.
macro_rules! emulated_suites {
    ($(($family:ident, $name:ident, $check:ident, $seed:literal, $schedules:ident)),* $(,)?) => {
        paste::paste! { $(
            #[test]
            fn [<emulated_ $family _ $name>]() {
                if ragtune_kernel_emu::sanitizer().is_some() {
                    return;
                }
                for s in schedules!($schedules) {
                    parity::$check(&emulated(s), &mut rng($seed));
                }
            }
        )* }
    };
}

macro_rules! schedules {
    (all) => {
        [Schedule::Reverse, Schedule::Random(0x5eed)]
    };
    (one) => {
        [Schedule::Random(7)]
    };
}

ragtune_tests::for_each_parity_suite!(emulated_suites);

/// Every suite of the list under the forward schedule on a device that records what it launches:
/// the kernels launched must be exactly the kernels built from kernels/*.cu — none left
/// untested, none launched that the build does not know.
#[test]
fn the_parity_list_launches_every_kernel_built() {
    let recorder =
        Arc::new(Instrumented::new(Arc::new(EmuBackend::new(EmuOptions { schedule: Schedule::Forward }))));
    let device = Device::from_backend(recorder.clone());
    for suite in SUITES {
        (suite.check)(&device, &mut rng(suite.seed));
    }
    let launched = recorder.launched();
    let mut built: Vec<&str> = ragtune_compute::kernels::all().map(|k| k.name()).collect();
    built.sort();
    let missing: Vec<&&str> = built.iter().filter(|k| !launched.contains(k)).collect();
    let unknown: Vec<&&str> = launched.iter().filter(|k| !built.contains(k)).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "kernels no parity suite launches: {missing:?}; launched but not built from kernels/: {unknown:?}"
    );
}

/// The typed handles `ragtune-compute` generates from kernels/ (its build script reads the
/// sources without a C compiler) name exactly the kernels the emulator compiled from the same
/// files with the real C preprocessor, each in its family.
#[test]
fn generated_kernel_handles_match_the_emulators_registry() {
    let families: Vec<&str> = ragtune_compute::kernel_sources::families().iter().map(|f| f.family).collect();
    let mut built: Vec<(String, String)> = ragtune_kernel_emu::kernels()
        .into_iter()
        .filter_map(|k| {
            let family = ragtune_kernel_emu::kernel_family(k)?;
            families.contains(&family).then(|| (family.to_string(), k.to_string()))
        })
        .collect();
    let mut handles: Vec<(String, String)> =
        ragtune_compute::kernels::all().map(|k| (k.family().to_string(), k.name().to_string())).collect();
    built.sort();
    handles.sort();
    assert_eq!(handles, built);
}
