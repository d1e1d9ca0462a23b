//! Training checkpoints: everything a run needs to continue exactly where it stopped — the
//! adapter (a PEFT folder, usable as is), the AdamW moments, the step count and the settings
//! that decide the data order and the schedule.
//!
//! Layout of a checkpoint folder:
//! - `adapter/`: `adapter_config.json` + `adapter_model.safetensors` (see [`crate::peft`]);
//! - `optimizer.safetensors`: `<module key>.lora_{A,B}.exp_avg` / `.exp_avg_sq`, f32;
//! - `trainer_state.json`: magic `ragtune-checkpoint`, version 1, the step, the run's settings
//!   and the SHA-256 of both safetensors files, checked on load.
//!
//! A checkpoint is written into `<dir>.tmp` and renamed over `<dir>` only when complete, so a
//! crash (or a NaN stopping the run) leaves the previous checkpoint intact. Replacing an existing
//! `<dir>` takes two renames (`<dir>` → `<dir>.old`, then `<dir>.tmp` → `<dir>`); a run killed
//! between them leaves no `<dir>` and the previous checkpoint whole in `<dir>.old`.
//! [`load_checkpoint`] of `<dir>` then reads `<dir>.old` and says so ([`Checkpoint::recovered`]),
//! and the next successful save puts `<dir>.old` back as `<dir>`.

use std::path::{Path, PathBuf};

use ragtune_compute::{Device, Tensor, atomic_file};
use ragtune_runtime::LlamaConfig;
use ragtune_runtime::adapter::peft::f32_safetensors;
use safetensors::{Dtype as StDtype, SafeTensors};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::error::{Result, TrainError};
use crate::lora::LoraAdapter;
use crate::peft::{WEIGHTS_FILE, load_adapter, save_adapter};

const MAGIC: &str = "ragtune-checkpoint";
const VERSION: u64 = 1;
const STATE_FILE: &str = "trainer_state.json";
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// A loaded checkpoint.
pub struct Checkpoint {
    pub adapter: LoraAdapter,
    /// `(mA, vA, mB, vB)` per module, in [`LoraAdapter::iter`] order.
    pub moments: Vec<[Tensor; 4]>,
    /// Updates applied so far.
    pub step: u64,
    /// The run's settings as saved (seed, batch size, ...): a resumed run must use the same.
    pub settings: Value,
    /// Set when the folder asked for was missing and its `.old` side was read instead (a save
    /// killed between its two renames): what happened, for the caller to show.
    pub recovered: Option<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Write a checkpoint of `adapter` with its `moments` after `step` updates to `dir`; `settings`
/// (a JSON object) is stored for [`load_checkpoint`]'s caller to compare.
pub fn save_checkpoint(
    dir: &Path,
    adapter: &LoraAdapter,
    moments: &[[Tensor; 4]],
    step: u64,
    settings: &Value,
    base_model: &str,
) -> Result<()> {
    let tmp = sibling(dir, "tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    }
    save_adapter(adapter, &tmp.join("adapter"), base_model)?;
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for ((l, t, _), m) in adapter.iter().zip(moments) {
        let prefix = LoraAdapter::peft_prefix(l, t);
        for (name, tensor) in [
            ("lora_A.exp_avg", &m[0]),
            ("lora_A.exp_avg_sq", &m[1]),
            ("lora_B.exp_avg", &m[2]),
            ("lora_B.exp_avg_sq", &m[3]),
        ] {
            let bytes = tensor.to_vec::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect();
            named.push((format!("{prefix}.{name}"), tensor.shape().to_vec(), bytes));
        }
    }
    let optimizer = f32_safetensors(&named, None, "the optimizer state")
        .map_err(|message| TrainError::format(tmp.display(), message))?;
    let opt_path = tmp.join(OPTIMIZER_FILE);
    atomic_file::write(&opt_path, &optimizer).map_err(|e| TrainError::io(&opt_path, e))?;
    let weights_path = tmp.join("adapter").join(WEIGHTS_FILE);
    let weights = std::fs::read(&weights_path).map_err(|e| TrainError::io(&weights_path, e))?;
    let state = json!({
        "magic": MAGIC,
        "version": VERSION,
        "step": step,
        "settings": settings,
        "sha256": { "optimizer": sha256_hex(&optimizer), "adapter": sha256_hex(&weights) },
    });
    let state_path = tmp.join(STATE_FILE);
    atomic_file::write(&state_path, serde_json::to_string_pretty(&state).unwrap_or_default().as_bytes())
        .map_err(|e| TrainError::io(&state_path, e))?;
    // Swap in the complete folder: the old checkpoint is only removed once the new one is in place.
    let old = sibling(dir, "old");
    if dir.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
        }
        std::fs::rename(dir, &old).map_err(|e| TrainError::io(dir, e))?;
    }
    std::fs::rename(&tmp, dir).map_err(|e| TrainError::io(dir, e))?;
    atomic_file::sync_dir(dir);
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| TrainError::io(&old, e))?;
    }
    remove_stale_checkpoints(dir);
    Ok(())
}

/// `(stem, n)` of a checkpoint folder name `stem<n>` (`checkpoint-12` → `("checkpoint-", 12)`).
fn numbered(name: &str) -> Option<(&str, u64)> {
    let digits = name.len() - name.bytes().rev().take_while(u8::is_ascii_digit).count();
    let n = name[digits..].parse().ok()?;
    Some((&name[..digits], n))
}

/// After a successful checkpoint: tidy what killed runs left beside it — remove `stem<n>.tmp`
/// folders (unfinished) and `stem<n>.old` folders whose `stem<n>` is complete, and rename a
/// complete `stem<n>.old` whose `stem<n>` is missing (killed between the swap's renames) back to
/// `stem<n>`, the checkpoint it is. Best effort.
fn remove_stale_checkpoints(dir: &Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name().and_then(|n| n.to_str())) else { return };
    let Some((stem, _)) = numbered(name) else { return };
    let Ok(entries) = std::fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let stale = match file_name.rsplit_once('.') {
            Some((base, "tmp")) => numbered(base).is_some_and(|(s, _)| s == stem),
            Some((base, "old")) if numbered(base).is_some_and(|(s, _)| s == stem) => {
                let base = parent.join(base);
                if !base.exists() && entry.path().join(STATE_FILE).is_file() {
                    let _ = std::fs::rename(entry.path(), &base);
                    false
                } else {
                    base.join(STATE_FILE).is_file()
                }
            }
            _ => false,
        };
        if stale && entry.path().is_dir() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The complete checkpoint beside `dir` with the highest step (`stem<n>` holding a state file).
fn latest_complete(dir: &Path, stem: &str) -> Option<PathBuf> {
    let parent = dir.parent()?;
    std::fs::read_dir(parent)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (s, n) = numbered(&name)?;
            (s == stem && e.path().join(STATE_FILE).is_file()).then(|| (n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

/// A `--resume` folder that is the unfinished (`.tmp`) or set-aside (`.old`) side of a
/// checkpoint swap, as an error that says so and names the checkpoint to resume from.
fn refuse_side_folder(dir: &Path) -> Result<()> {
    let Some(name) = dir.file_name().and_then(|n| n.to_str()) else { return Ok(()) };
    let Some((base, kind)) = name.rsplit_once('.') else { return Ok(()) };
    let what = match kind {
        "tmp" => "an unfinished checkpoint, written when a run was killed",
        "old" => {
            "a previous checkpoint set aside while the next one was swapped in (the run was killed then)"
        }
        _ => return Ok(()),
    };
    let Some((stem, _)) = numbered(base) else { return Ok(()) };
    let fix = match latest_complete(dir, stem) {
        Some(p) => format!("resume from {} or delete it", p.display()),
        None => "no complete checkpoint is beside it: delete it and train from the start".to_string(),
    };
    Err(TrainError::format(dir.display(), format!("{what}; {fix}")))
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.as_os_str().to_owned();
    name.push(format!(".{suffix}"));
    PathBuf::from(name)
}

/// A missing `--resume` folder, as an error that says what is beside it and what to pass.
fn missing(dir: &Path) -> TrainError {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut what = format!("{name} does not exist");
    if sibling(dir, "tmp").exists() {
        what.push_str(&format!(
            "; {name}.tmp beside it is an unfinished checkpoint (the run was killed while writing it)"
        ));
    }
    let fix = match numbered(&name).and_then(|(stem, _)| latest_complete(dir, stem)) {
        Some(p) => format!("the latest complete checkpoint beside it is {}: pass that", p.display()),
        None => "no complete checkpoint is beside it: check the path, or train from the start".to_string(),
    };
    TrainError::format(dir.display(), format!("{what}; {fix}"))
}

/// Read a checkpoint written by [`save_checkpoint`] for `model`, checking its magic, version and
/// checksums. When `dir` is missing but `<dir>.old` holds a complete checkpoint (a save killed
/// between its two renames), that one is read and [`Checkpoint::recovered`] says so.
pub fn load_checkpoint(dir: &Path, model: &LlamaConfig, device: &Device) -> Result<Checkpoint> {
    refuse_side_folder(dir)?;
    if dir.exists() {
        return read_checkpoint(dir, model, device);
    }
    let old = sibling(dir, "old");
    if !old.join(STATE_FILE).is_file() {
        return Err(missing(dir));
    }
    let mut ck = read_checkpoint(&old, model, device)?;
    ck.recovered = Some(format!(
        "{} is missing: a save was killed between its two renames, leaving the checkpoint it was \
         replacing whole in {}; resuming from that one (step {}); the next checkpoint saved beside \
         it renames it back",
        dir.display(),
        old.display(),
        ck.step
    ));
    Ok(ck)
}

fn read_checkpoint(dir: &Path, model: &LlamaConfig, device: &Device) -> Result<Checkpoint> {
    let state_path = dir.join(STATE_FILE);
    let origin = state_path.display().to_string();
    let text = std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?;
    let state: Value = serde_json::from_str(&text)
        .map_err(|e| TrainError::format(&origin, format!("not valid JSON: {e}")))?;
    if state["magic"] != MAGIC {
        return Err(TrainError::format(
            &origin,
            format!("not a ragtune checkpoint (magic is not `{MAGIC}`)"),
        ));
    }
    if state["version"].as_u64() != Some(VERSION) {
        return Err(TrainError::format(
            &origin,
            format!(
                "checkpoint version {} is not {VERSION}; it was written by another ragtune",
                state["version"]
            ),
        ));
    }
    let step =
        state["step"].as_u64().ok_or_else(|| TrainError::format(&origin, "field `step` is missing"))?;
    let opt_path = dir.join(OPTIMIZER_FILE);
    let optimizer = std::fs::read(&opt_path).map_err(|e| TrainError::io(&opt_path, e))?;
    let weights_path = dir.join("adapter").join(WEIGHTS_FILE);
    let weights = std::fs::read(&weights_path).map_err(|e| TrainError::io(&weights_path, e))?;
    for (what, bytes, path) in [("optimizer", &optimizer, &opt_path), ("adapter", &weights, &weights_path)] {
        if state["sha256"][what].as_str() != Some(sha256_hex(bytes).as_str()) {
            return Err(TrainError::format(
                path.display(),
                "checksum mismatch: the file was changed or truncated after the checkpoint was written",
            ));
        }
    }
    let adapter = load_adapter(&dir.join("adapter"), model, device)?;
    let st = SafeTensors::deserialize(&optimizer)
        .map_err(|e| TrainError::format(opt_path.display(), format!("not a valid safetensors file: {e}")))?;
    let get = |name: String, like: &Tensor| -> Result<Tensor> {
        let view = st.tensor(&name).map_err(|_| {
            TrainError::format(
                opt_path.display(),
                format!("tensor `{name}` is missing: the optimizer state does not match the adapter"),
            )
        })?;
        if view.dtype() != StDtype::F32 || view.shape() != like.shape() {
            return Err(TrainError::format(
                opt_path.display(),
                format!(
                    "tensor `{name}` must be F32 {:?}, found {:?} {:?}",
                    like.shape(),
                    view.dtype(),
                    view.shape()
                ),
            ));
        }
        let values: Vec<f32> =
            view.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Tensor::from_slice(&values, like.shape())?.to_device(device)?)
    };
    let moments = adapter
        .iter()
        .map(|(l, t, m)| {
            let p = LoraAdapter::peft_prefix(l, t);
            Ok([
                get(format!("{p}.lora_A.exp_avg"), &m.a)?,
                get(format!("{p}.lora_A.exp_avg_sq"), &m.a)?,
                get(format!("{p}.lora_B.exp_avg"), &m.b)?,
                get(format!("{p}.lora_B.exp_avg_sq"), &m.b)?,
            ])
        })
        .collect::<Result<_>>()?;
    Ok(Checkpoint { adapter, moments, step, settings: state["settings"].clone(), recovered: None })
}
