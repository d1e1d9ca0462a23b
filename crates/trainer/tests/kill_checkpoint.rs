//! Issue 17, item 7: `save_checkpoint` killed (SIGKILL) at random moments while it writes
//! step 1 and step 2 alternately to the same checkpoint folder. Afterwards the checkpoint loads
//! (its checksums pass) as step 1 or step 2 with that step's adapter; or, when the kill fell
//! between the swap's two renames, the folder is absent, its `.old` side holds a complete
//! previous checkpoint, and loading the folder reads that side and says so. The next successful
//! save leaves no `.tmp`/`.old` folder or temporary, and puts back a `.old` of another step.

mod writers;

use std::path::Path;
use std::time::Instant;

use ragtune_compute::{Device, Tensor};
use ragtune_runtime::LlamaModel;
use ragtune_tests::kill;
use ragtune_trainer::LoraAdapter;
use ragtune_trainer::checkpoint::{load_checkpoint, save_checkpoint};
use serde_json::json;
use writers::*;

/// AdamW moments shaped like `adapter`'s modules, all `v`.
fn moments(adapter: &LoraAdapter, v: f32) -> Vec<[Tensor; 4]> {
    let fill = |t: &Tensor| Tensor::from_slice(&vec![v; t.numel()], t.shape()).unwrap();
    adapter.iter().map(|(_, _, m)| [fill(&m.a), fill(&m.a), fill(&m.b), fill(&m.b)]).collect()
}

fn save(target: &Path, adapter: &LoraAdapter, step: u64) {
    let m = moments(adapter, step as f32);
    save_checkpoint(target, adapter, &m, step, &json!({"seed": 0}), "llama-gqa").unwrap();
}

/// The first module's B, which tells the two adapters apart.
fn first_b(adapter: &LoraAdapter) -> Vec<f32> {
    adapter.iter().next().unwrap().2.b.to_vec_f32().unwrap()
}

#[test]
fn child_saves_checkpoints() {
    kill::serve("checkpoint", |_| {
        let versions = two_adapters(&model());
        move |target: &Path, new: bool| save(target, &versions[new as usize], 1 + new as u64)
    });
}

/// The step of the checkpoint in `dir`, checked against the adapter saved with that step, and
/// the recovery note when it was read from `dir`'s `.old` side.
fn loaded(dir: &Path, model: &LlamaModel, expected: &[Vec<f32>; 2]) -> (u64, Option<String>) {
    let c = load_checkpoint(dir, &model.config, &Device::Cpu).unwrap();
    assert!(c.step == 1 || c.step == 2, "step {}", c.step);
    assert_eq!(first_b(&c.adapter), expected[c.step as usize - 1], "step {}'s adapter", c.step);
    (c.step, c.recovered)
}

fn loaded_step(dir: &Path, model: &LlamaModel, expected: &[Vec<f32>; 2]) -> u64 {
    let (step, recovered) = loaded(dir, model, expected);
    assert_eq!(recovered, None, "{} exists, so it is read as is", dir.display());
    step
}

#[test]
fn a_killed_checkpoint_save_leaves_a_complete_checkpoint_and_no_leftovers() {
    let model = model();
    let target = scratch("checkpoint").join("checkpoint-1");
    let (a, b) = (adapter(&model, 1), adapter(&model, 2));
    let expected = [first_b(&a), first_b(&b)];
    let started = Instant::now();
    save(&target, &a, 1);
    let one_save = started.elapsed();
    let side = target.with_file_name("checkpoint-1.old");
    let (mut steps, mut between) = ([0; 3], 0);
    kill::rounds("child_saves_checkpoints", "checkpoint", &target, 10, 32, one_save * 4, |round| {
        if target.exists() {
            steps[loaded_step(&target, &model, &expected) as usize] += 1;
        } else {
            // Killed between `rename(dir, dir.old)` and `rename(dir.tmp, dir)`: the previous
            // checkpoint is whole in the side folder, and resuming from `target` reads it, saying
            // so. It stays there: the next round's child save (or the last save below) cleans it.
            assert!(side.exists(), "round {round}: the checkpoint and its .old side are both gone");
            let (_, recovered) = loaded(&target, &model, &expected);
            let note = recovered.expect("a checkpoint read from the .old side says so");
            assert!(note.contains("checkpoint-1.old") && note.contains("is missing"), "{note}");
            between += 1;
        }
    });
    println!("kills: {} left step 1, {} step 2, {between} between the swap's renames", steps[1], steps[2]);
    assert!(steps[2] + between > 0, "no kill landed after the child's first save: the test measured nothing");
    save(&target, &a, 1);
    assert_eq!(loaded_step(&target, &model, &expected), 1);
    assert_eq!(kill::leftovers(&target), Vec::<String>::new(), "temporaries stay behind");
    std::fs::remove_dir_all(target.parent().unwrap()).unwrap();
}

/// The state a kill between the swap's renames leaves, made by hand for a checkpoint that the
/// run then moves past: `--resume checkpoint-1` reads `checkpoint-1.old` and says so; a missing
/// folder's error names the latest complete checkpoint; the next save (of step 2) renames the
/// `.old` back to `checkpoint-1`, whole.
#[test]
fn a_checkpoint_left_in_its_old_side_is_resumed_and_put_back_by_the_next_save() {
    let model = model();
    let dir = scratch("checkpoint-gap");
    let (a, b) = (adapter(&model, 1), adapter(&model, 2));
    let expected = [first_b(&a), first_b(&b)];
    let one = dir.join("checkpoint-1");
    save(&one, &a, 1);
    std::fs::rename(&one, dir.join("checkpoint-1.old")).unwrap();

    let (step, recovered) = loaded(&one, &model, &expected);
    assert_eq!(step, 1);
    let note = recovered.expect("read from the .old side, and said so");
    assert!(note.contains("checkpoint-1.old") && note.contains("step 1"), "{note}");

    save(&dir.join("checkpoint-2"), &b, 2);
    assert!(!dir.join("checkpoint-1.old").exists(), "the next save puts the .old side back");
    assert_eq!(loaded_step(&one, &model, &expected), 1, "checkpoint-1 is whole again");
    assert_eq!(loaded_step(&dir.join("checkpoint-2"), &model, &expected), 2);
    assert_eq!(kill::leftovers(&one), Vec::<String>::new(), "temporaries stay behind");

    let err =
        load_checkpoint(&dir.join("checkpoint-3"), &model.config, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("checkpoint-3 does not exist") && err.contains("checkpoint-2: pass that"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
