//! Issue 17, item 7: `save_adapter` killed (SIGKILL) at random moments while it writes one
//! adapter and then another over the same PEFT folder leaves each file the old or the new one
//! (never half of one), a folder that loads, and — after the next successful save — no
//! temporaries.

mod writers;

use std::path::Path;

use ragtune_compute::Device;
use ragtune_tests::kill;
use ragtune_trainer::peft::{load_adapter, save_adapter};
use writers::*;

#[test]
fn child_saves_adapters() {
    kill::serve("adapter", |_| {
        let model = model();
        let versions = [adapter(&model, 1), adapter(&model, 2)];
        move |target: &Path, new: bool| save_adapter(&versions[new as usize], target, "llama-gqa").unwrap()
    });
}

#[test]
fn a_killed_adapter_save_leaves_old_or_new_and_no_leftovers() {
    let model = model();
    let versions = [adapter(&model, 1), adapter(&model, 2)];
    let target = scratch("adapter").join("adapter");
    kill::check_writer(
        "child_saves_adapters",
        "adapter",
        &target,
        31,
        |new| save_adapter(&versions[new as usize], &target, "llama-gqa").unwrap(),
        |round| {
            let loaded = load_adapter(&target, &model.config, &Device::Cpu);
            assert!(loaded.is_ok(), "round {round}: {:?}", loaded.err());
        },
    );
    std::fs::remove_dir_all(target.parent().unwrap()).unwrap();
}
