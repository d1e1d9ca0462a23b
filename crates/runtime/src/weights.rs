//! Named weights for a model: from a Hugging Face folder's safetensors (one file, or shards
//! listed by `model.safetensors.index.json`), memory-mapped and viewed without copying, or from
//! tensors another loader made (GGUF). [`Weights::get`] checks a tensor's shape, converts it to
//! the dtype the model runs in and moves it to the device.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use ragtune_compute::{ByteOwner, DType, Device, Tensor, ops, safetensors_io};
use safetensors::SafeTensors;
use serde_json::Value;

use crate::error::{Result, RuntimeError};

/// A model's tensors on the host plus where and how they should run.
pub struct Weights {
    tensors: HashMap<String, Tensor>,
    /// Tensors present in a file but of a dtype ragtune cannot read (I64 buffers and such):
    /// an error only when a model asks for one.
    unreadable: HashMap<String, String>,
    origin: String,
    pub dtype: DType,
    pub device: Device,
}

/// Map a whole file read-only. The map stays alive while any tensor viewing it does.
pub(crate) fn map_file(path: &Path) -> Result<Arc<dyn ByteOwner>> {
    let file = File::open(path).map_err(|e| RuntimeError::io(path, e))?;
    // SAFETY: the map is read-only; like every mmap-based loader we rely on the file not being
    // truncated or rewritten while the model is loaded.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| RuntimeError::io(path, e))?;
    Ok(Arc::new(map))
}

impl Weights {
    /// Tensors made elsewhere (host tensors of any float dtype), converted on [`Weights::get`].
    pub fn from_tensors(
        tensors: HashMap<String, Tensor>,
        origin: &str,
        dtype: DType,
        device: Device,
    ) -> Self {
        Weights { tensors, unreadable: HashMap::new(), origin: origin.to_string(), dtype, device }
    }

    /// The safetensors weights of a model folder: `model.safetensors`, or the shards named by
    /// `model.safetensors.index.json`.
    pub fn open_dir(dir: &Path, dtype: DType, device: Device) -> Result<Self> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let mut weights = Weights {
            tensors: HashMap::new(),
            unreadable: HashMap::new(),
            origin: String::new(),
            dtype,
            device,
        };
        if single.is_file() {
            weights.origin = single.display().to_string();
            weights.add_file(&single)?;
            return Ok(weights);
        }
        if !index.is_file() {
            return Err(RuntimeError::format(
                dir.display(),
                "no model.safetensors or model.safetensors.index.json in this folder \
                 (ragtune reads safetensors weights; convert .bin checkpoints first)",
            ));
        }
        weights.origin = index.display().to_string();
        let map = read_weight_map(&index)?;
        let shards: BTreeSet<&String> = map.values().collect();
        for shard in shards {
            weights.add_file(&dir.join(shard))?;
        }
        for (name, shard) in &map {
            if !weights.tensors.contains_key(name) && !weights.unreadable.contains_key(name) {
                return Err(RuntimeError::tensor(
                    name,
                    format!("{} lists it in {shard}, but that shard does not hold it", index.display()),
                ));
            }
        }
        Ok(weights)
    }

    fn add_file(&mut self, path: &Path) -> Result<()> {
        let owner = map_file(path)?;
        let bytes: &[u8] = (*owner).as_ref();
        let st = SafeTensors::deserialize(bytes).map_err(|e| {
            RuntimeError::format(path.display(), format!("not a valid safetensors file: {e}"))
        })?;
        for (name, view) in st.tensors() {
            match safetensors_io::tensor_from_view(&owner, &name, &view) {
                Ok(t) => {
                    self.tensors.insert(name, t);
                }
                Err(e) => {
                    self.unreadable.insert(name, format!("{}: {e}", path.display()));
                }
            }
        }
        Ok(())
    }

    /// The file (or index) the weights came from, for error messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// Every readable tensor name (for prefix detection and error messages).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// The host tensor as stored, without conversion.
    pub fn raw(&self, name: &str) -> Result<&Tensor> {
        if let Some(t) = self.tensors.get(name) {
            return Ok(t);
        }
        Err(match self.unreadable.get(name) {
            Some(why) => RuntimeError::tensor(name, why.clone()),
            None => RuntimeError::tensor(name, format!("missing from {}", self.origin)),
        })
    }

    /// `name` with shape `shape`, in the model's dtype, on the model's device.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let t = self.raw(name)?;
        if t.shape() != shape {
            return Err(RuntimeError::tensor(
                name,
                format!("has shape {:?} in {}, but the config implies {shape:?}", t.shape(), self.origin),
            ));
        }
        if !t.dtype().is_float() {
            return Err(RuntimeError::tensor(
                name,
                format!("is {}; weights must be F32, BF16 or F16", t.dtype()),
            ));
        }
        Ok(ops::cast(t, self.dtype)?.to_device(&self.device)?)
    }

    /// Like [`Weights::get`], but `None` when the file does not hold the tensor.
    pub fn get_opt(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.contains(name) { self.get(name, shape).map(Some) } else { Ok(None) }
    }
}

fn read_weight_map(index: &Path) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(index).map_err(|e| RuntimeError::io(index, e))?;
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| RuntimeError::format(index.display(), format!("not valid JSON: {e}")))?;
    let map = value.get("weight_map").and_then(Value::as_object).ok_or_else(|| {
        RuntimeError::format(index.display(), "has no `weight_map` object of tensor name -> shard file")
    })?;
    map.iter()
        .map(|(name, file)| {
            let file = file.as_str().filter(|f| !f.contains("..") && !Path::new(f).is_absolute());
            match file {
                Some(f) => Ok((name.clone(), f.to_string())),
                None => Err(RuntimeError::format(
                    index.display(),
                    format!("weight_map entry for `{name}` must be a file name inside the folder"),
                )),
            }
        })
        .collect()
}
