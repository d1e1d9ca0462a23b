//! Issue 17, item 7: `merge_to_folder` killed (SIGKILL) at random moments while it merges one
//! adapter and then another into the same output folder leaves each file the old merge's or the
//! new one's (never half of one), a model that loads, and — after the next successful merge —
//! no temporaries.

mod writers;

use std::path::Path;

use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use ragtune_tests::kill;
use ragtune_trainer::merge::merge_to_folder;
use writers::*;

#[test]
fn child_merges() {
    kill::serve("merge", |_| {
        let model = model();
        let versions = [adapter(&model, 1), adapter(&model, 2)];
        move |target: &Path, new: bool| {
            merge_to_folder(&model_dir(), &versions[new as usize], target).unwrap()
        }
    });
}

#[test]
fn a_killed_merge_leaves_old_or_new_and_no_leftovers() {
    let model = model();
    let versions = [adapter(&model, 1), adapter(&model, 2)];
    let target = scratch("merge").join("merged");
    kill::check_writer(
        "child_merges",
        "merge",
        &target,
        33,
        |new| merge_to_folder(&model_dir(), &versions[new as usize], &target).unwrap(),
        |round| {
            let loaded = LlamaModel::from_dir(&target, DType::F32, Device::Cpu);
            assert!(loaded.is_ok(), "round {round}: {:?}", loaded.err());
        },
    );
    std::fs::remove_dir_all(target.parent().unwrap()).unwrap();
}
