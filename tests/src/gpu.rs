//! Access to a real GPU for tests: skipped with a printed reason where none is usable, and a
//! failure instead when `RAGTUNE_REQUIRE_GPU=1` (the GPU check bundle sets it, so a GPU machine
//! that cannot run the tests never reports success). The bundle also sets RAGTUNE_POISON_ALLOCS=1,
//! so device outputs start as NaN and an element a kernel never writes fails its check.

use ragtune_compute::Device;

/// The CUDA device to test on, or `None` after printing why the test is skipped.
pub fn cuda_or_skip(test: &str) -> Option<Device> {
    match Device::cuda(0) {
        Ok(d) => Some(d),
        Err(e) => {
            if std::env::var("RAGTUNE_REQUIRE_GPU").is_ok_and(|v| v == "1") {
                panic!("{test}: RAGTUNE_REQUIRE_GPU=1 but no GPU is usable: {e}");
            }
            println!("SKIPPED {test}: no GPU is usable: {e}");
            None
        }
    }
}
