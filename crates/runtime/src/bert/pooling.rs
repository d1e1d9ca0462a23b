//! How token states become one sentence vector, read from a sentence-transformers folder:
//! `modules.json` names a Pooling module (its `config.json` picks mean or CLS) and possibly a
//! Normalize module. A plain Hugging Face folder gets the common default: mean, then L2.

use std::path::Path;

use serde_json::Value;

use crate::config::Fields;
use crate::error::{Result, RuntimeError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolingMode {
    /// Mean over the non-padding tokens.
    Mean,
    /// The first token's state (`[CLS]`).
    Cls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pooling {
    pub mode: PoolingMode,
    /// L2-normalise the pooled vector.
    pub normalize: bool,
}

impl Default for Pooling {
    fn default() -> Self {
        Pooling { mode: PoolingMode::Mean, normalize: true }
    }
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| RuntimeError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| RuntimeError::format(path.display(), format!("not valid JSON: {e}")))
}

impl Pooling {
    /// The pooling a model folder asks for.
    pub fn from_dir(dir: &Path) -> Result<Pooling> {
        let modules_path = dir.join("modules.json");
        if !modules_path.is_file() {
            return Ok(Pooling::default());
        }
        let modules = read_json(&modules_path)?;
        let modules = modules
            .as_array()
            .ok_or_else(|| RuntimeError::format(modules_path.display(), "must hold a list of modules"))?;
        let kind = |m: &Value| m.get("type").and_then(Value::as_str).unwrap_or_default().to_string();
        let normalize = modules.iter().any(|m| kind(m).ends_with(".Normalize"));
        let Some(pool) = modules.iter().find(|m| kind(m).ends_with(".Pooling")) else {
            return Ok(Pooling { mode: PoolingMode::Mean, normalize });
        };
        let sub = pool.get("path").and_then(Value::as_str).unwrap_or("1_Pooling");
        let config_path = dir.join(sub).join("config.json");
        let config = read_json(&config_path)?;
        let obj = config
            .as_object()
            .ok_or_else(|| RuntimeError::format(config_path.display(), "must hold a JSON object"))?;
        let origin = config_path.display().to_string();
        let f = Fields { obj, origin: &origin };
        let on = |name: &str| f.opt_bool(name).map(|v| v.unwrap_or(false));
        for other in [
            "pooling_mode_max_tokens",
            "pooling_mode_mean_sqrt_len_tokens",
            "pooling_mode_weightedmean_tokens",
            "pooling_mode_lasttoken",
        ] {
            if on(other)? {
                return Err(f.err(other, "is not supported; ragtune pools by mean or CLS token"));
            }
        }
        let mode = match (on("pooling_mode_cls_token")?, on("pooling_mode_mean_tokens")?) {
            (true, true) => {
                return Err(f.err(
                    "pooling_mode_cls_token",
                    "CLS and mean pooling together (a concatenation) is not supported; choose one",
                ));
            }
            (true, false) => PoolingMode::Cls,
            _ => PoolingMode::Mean,
        };
        Ok(Pooling { mode, normalize })
    }
}
