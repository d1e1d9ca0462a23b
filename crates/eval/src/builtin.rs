//! The built-in base model of the experiment, compiled in: the files `cargo xtask demo-base`
//! (the `ragtune-demo-base` crate) wrote under `crates/eval/assets/demo-base/`, so the demo runs
//! from any directory without the recipe that built them.

use std::path::{Path, PathBuf};

use crate::error::{EvalError, Result};

/// The built-in model's special token ids (`<pad>`, `<s>`, `</s>`): fixed by its tokenizer.
pub const PAD_ID: u32 = 0;
pub const BOS_ID: u32 = 1;
pub const EOS_ID: u32 = 2;

/// The committed model's files, compiled in: `(file name, bytes)`.
pub fn builtin_files() -> [(&'static str, &'static [u8]); 6] {
    macro_rules! asset {
        ($name:literal) => {
            ($name, include_bytes!(concat!("../assets/demo-base/", $name)).as_slice())
        };
    }
    [
        asset!("config.json"),
        asset!("generation_config.json"),
        asset!("model.safetensors"),
        asset!("tokenizer.json"),
        asset!("tokenizer_config.json"),
        asset!("TRAINING.md"),
    ]
}

/// Write the built-in model into `dir` (created if needed; files already there with the same
/// bytes are left alone) and return `dir`, ready for `load_causal_lm`.
pub fn write_builtin(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    for (name, bytes) in builtin_files() {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            continue;
        }
        ragtune_compute::atomic_file::write(&path, bytes).map_err(|e| EvalError::io(&path, e))?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt;
    use ragtune_compute::{DType, Device};
    use ragtune_runtime::{GenerateOptions, generate, load_causal_lm};

    #[test]
    fn write_builtin_writes_a_loadable_model() {
        let dir = std::env::temp_dir().join(format!("ragtune-builtin-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(write_builtin(&dir).unwrap(), dir);
        // A second call finds the same bytes and leaves them.
        write_builtin(&dir).unwrap();
        for (name, bytes) in builtin_files() {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), bytes, "{name}");
        }
        let (model, tok) = load_causal_lm(&dir, DType::F32, Device::Cpu).unwrap();
        assert_eq!(model.config.eos_token_ids, vec![EOS_ID]);
        assert_eq!(tok.token_to_id("<s>"), Some(BOS_ID));
        let prompt = tok.encode(&prompt::closed_book("Where was Kesh Dunmere born?"), true).unwrap();
        let out = generate(&model, &[prompt], &GenerateOptions::for_model(&model, 4), |_, _| Ok(())).unwrap();
        assert!(!out[0].tokens.is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
