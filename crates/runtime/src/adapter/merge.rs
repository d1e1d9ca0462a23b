//! Merging an adapter into its base: `W += scale · B A` for every adapted projection, written
//! as a Hugging Face folder that any loader (ragtune, transformers) reads as a plain model; and
//! writing a fully fine-tuned model the same way.

use std::path::Path;

use ragtune_compute::{DType, Device, Tensor, ops};
use safetensors::Dtype as StDtype;

use super::LoraAdapter;
use crate::error::{Result, RuntimeError};
use crate::llama::{LlamaModel, TensorName};
use crate::weights::Weights;

fn st_dtype(name: &str, dtype: DType) -> Result<StDtype> {
    Ok(match dtype {
        DType::F32 => StDtype::F32,
        DType::BF16 => StDtype::BF16,
        DType::F16 => StDtype::F16,
        DType::I32 => StDtype::I32,
        DType::U32 => StDtype::U32,
        DType::U8 => StDtype::U8,
        #[allow(unreachable_patterns)]
        other => {
            return Err(RuntimeError::input(format!("tensor `{name}` is {other}, which cannot be written")));
        }
    })
}

/// Write `model_dir`'s model with `adapter` merged into `out`: one `model.safetensors` (every
/// tensor in its original dtype; the merge is computed in f32 and rounded once) plus copies of
/// the folder's JSON, tokenizer and text files. `out` must be another folder; files are written
/// under temporary names and renamed.
pub fn merge_to_folder(model_dir: &Path, adapter: &LoraAdapter, out: &Path) -> Result<()> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(model_dir, out) {
        return Err(RuntimeError::input(format!(
            "--out {} is the model folder itself; write the merged model to another folder",
            out.display()
        )));
    }
    let weights = Weights::open_dir(model_dir, DType::F32, Device::Cpu)?;
    let scale = adapter.config.scale();
    let mut merged: std::collections::HashMap<String, Tensor> = std::collections::HashMap::new();
    for (l, t, m) in adapter.iter() {
        let name = TensorName::Weight(l, t).hf();
        let w = weights.raw(&name)?;
        let (a, b) = (m.a.to_device(&Device::Cpu)?, m.b.to_device(&Device::Cpu)?);
        let delta = ops::matmul_ex(&b, &a, ops::MatmulSpec { alpha: scale, ..Default::default() })?;
        if delta.shape() != w.shape() {
            return Err(RuntimeError::input(format!(
                "`{name}` is {:?} but the adapter's B·A is {:?}: the adapter belongs to another model",
                w.shape(),
                delta.shape()
            )));
        }
        let sum = ops::add(&ops::cast(w, DType::F32)?, &delta)?;
        merged.insert(name, ops::cast(&sum, w.dtype())?);
    }
    let mut names: Vec<&str> = weights.names().collect();
    names.sort_unstable();
    let tensors = names
        .iter()
        .map(|name| Ok((name.to_string(), merged.get(*name).map_or_else(|| weights.raw(name), Ok)?.clone())))
        .collect::<Result<Vec<_>>>()?;
    write_folder(&tensors, model_dir, out)
}

/// Write a fully trained `model` (f32) as a Hugging Face folder in `out`, with the config and
/// tokenizer files of `source_dir` (the folder it was loaded from); the tensors and their names
/// are [`LlamaModel::named_tensors`].
pub fn save_model_folder(model: &LlamaModel, source_dir: &Path, out: &Path) -> Result<()> {
    let tensors = model.named_tensors()?;
    let tensors = tensors.into_iter().map(|(n, t)| Ok((n, t.to_host()?))).collect::<Result<Vec<_>>>()?;
    write_folder(&tensors, source_dir, out)
}

/// `model.safetensors` of `tensors` plus copies of `source_dir`'s JSON, tokenizer and text
/// files, each written under a temporary name and renamed.
fn write_folder(tensors: &[(String, Tensor)], source_dir: &Path, out: &Path) -> Result<()> {
    let mut views = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let bytes = t
            .host_bytes()
            .ok_or_else(|| RuntimeError::input(format!("tensor `{name}` is not on the host")))?;
        let view =
            safetensors::tensor::TensorView::new(st_dtype(name, t.dtype())?, t.shape().to_vec(), bytes)
                .map_err(|e| RuntimeError::format(out.display(), format!("tensor `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let metadata = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
    let bytes = safetensors::serialize(views, metadata)
        .map_err(|e| RuntimeError::format(out.display(), format!("cannot serialise the model: {e}")))?;
    std::fs::create_dir_all(out).map_err(|e| RuntimeError::io(out, e))?;
    write_atomic(&out.join("model.safetensors"), &bytes)?;
    let entries = std::fs::read_dir(source_dir).map_err(|e| RuntimeError::io(source_dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| RuntimeError::io(source_dir, e))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        let keep = (name.ends_with(".json") && name != "model.safetensors.index.json")
            || name.ends_with(".txt")
            || name.ends_with(".model");
        if keep && path.is_file() {
            let data = std::fs::read(&path).map_err(|e| RuntimeError::io(&path, e))?;
            write_atomic(&out.join(&name), &data)?;
        }
    }
    Ok(())
}

/// Through ragtune's one atomic writer ([`ragtune_compute::atomic_file`]): a temporary file
/// beside `path`, fsynced and renamed over it; readers see the old file or the new one, and
/// the temporaries of killed writers are removed by the next successful write.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    ragtune_compute::atomic_file::write(path, bytes).map_err(|e| RuntimeError::io(path, e))
}
