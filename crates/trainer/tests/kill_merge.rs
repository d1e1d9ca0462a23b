//! Issue 17, item 7: `merge_to_folder` killed (SIGKILL) at random moments while it merges one
//! adapter and then another into the same output folder leaves each file the old merge's or the
//! new one's (never half of one), a model that loads, and — after the next successful merge —
//! no temporaries.

mod writers;

use std::path::Path;

use ragtune_compute::{DType, Device};
use ragtune_runtime::LlamaModel;
use ragtune_trainer::LoraAdapter;
use ragtune_trainer::merge::merge_to_folder;
use writers::*;

/// What the child does over and over, and the parent once per round.
fn merge(adapter: &LoraAdapter, target: &Path) {
    merge_to_folder(&model_dir(), adapter, target).unwrap();
}

#[test]
fn child_merges() {
    serve_adapter_writer("merge", merge);
}

#[test]
fn a_killed_merge_leaves_old_or_new_and_no_leftovers() {
    check_adapter_writer("child_merges", "merge", "merged", 33, merge, |_, target| {
        LlamaModel::from_dir(target, DType::F32, Device::Cpu)
    });
}
