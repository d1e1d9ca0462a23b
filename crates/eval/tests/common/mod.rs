//! Helpers shared by the eval integration tests (each `tests/*.rs` is its own crate and says
//! `mod common;`): a temporary folder per test, and the miniature world and built-in base model
//! the end-to-end runs train on.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ragtune_compute::{DType, Device};
use ragtune_eval::builtin;
use ragtune_eval::world::{World, WorldConfig};
use ragtune_runtime::{LlamaModel, Tokenizer, load_causal_lm};

/// A fresh folder for one test, unique to it (tests run concurrently), removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("ragtune-eval-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// Write `contents` to `rel` (creating folders) and return its path.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A miniature world with `new_people` new people (what the experiment's questions are about),
/// small enough to train on in seconds.
pub fn small_world(new_people: usize) -> World {
    World::generate(WorldConfig {
        old_people: 12,
        old_orgs: 4,
        new_people,
        new_orgs: 4,
        reading_people: 4,
        reading_orgs: 4,
        places: 8,
        ..WorldConfig::default()
    })
}

/// The built-in base model, written into `dir` and loaded on the CPU in f32.
pub fn builtin_model(dir: &Path) -> (LlamaModel, Tokenizer) {
    let model_dir = builtin::write_builtin(dir).unwrap();
    load_causal_lm(&model_dir, DType::F32, Device::Cpu).unwrap()
}
