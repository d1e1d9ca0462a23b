//! Issue 17, item 7: `save_adapter` killed (SIGKILL) at random moments while it writes one
//! adapter and then another over the same PEFT folder leaves each file the old or the new one
//! (never half of one), a folder that loads, and — after the next successful save — no
//! temporaries.

mod writers;

use std::path::Path;

use ragtune_compute::Device;
use ragtune_trainer::LoraAdapter;
use ragtune_trainer::peft::{load_adapter, save_adapter};
use writers::*;

/// What the child does over and over, and the parent once per round.
fn save(adapter: &LoraAdapter, target: &Path) {
    save_adapter(adapter, target, "llama-gqa").unwrap();
}

#[test]
fn child_saves_adapters() {
    serve_adapter_writer("adapter", save);
}

#[test]
fn a_killed_adapter_save_leaves_old_or_new_and_no_leftovers() {
    check_adapter_writer("child_saves_adapters", "adapter", "adapter", 31, save, |model, target| {
        load_adapter(target, &model.config, &Device::Cpu)
    });
}
