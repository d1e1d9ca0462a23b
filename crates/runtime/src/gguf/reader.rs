//! The GGUF container: header, typed metadata, tensor infos and the aligned data section.
//! Every read is bounds-checked, so a truncated or corrupt file is an error naming what was
//! being read, never a panic.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ragtune_compute::ByteOwner;

use super::quant::GgmlType;
use crate::error::{Result, RuntimeError};

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    String(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    /// The value as an unsigned integer, when it is a non-negative integer of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v.into()),
            GgufValue::F64(v) => Some(v),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// Where one tensor lies and how it is stored.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// GGUF order: `dims[0]` is the innermost (the row length); a PyTorch shape is the reverse.
    pub dims: Vec<u64>,
    pub kind: GgmlType,
    /// Bytes from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// The row-major (PyTorch) shape.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }

    /// The element count, or an error naming the tensor when its dims multiply past a u64 (a
    /// corrupt shape: the fuzzer's two dims of 2^40 overflowed, a panic in debug builds and a
    /// wrapped, wrong size in release). Every tensor of a parsed file has passed it.
    pub fn checked_numel(&self) -> Result<u64> {
        self.dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).ok_or_else(|| {
            RuntimeError::tensor(
                &self.name,
                format!("its dimensions {:?} hold more than 2^64 elements: the file is corrupt", self.dims),
            )
        })
    }

    /// The element count. Exact for every tensor of a parsed [`GgufFile`] (parsing refuses one
    /// whose count overflows, see [`Self::checked_numel`]); saturates at `u64::MAX` otherwise.
    pub fn numel(&self) -> u64 {
        self.dims.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).unwrap_or(u64::MAX)
    }
}

/// A parsed GGUF file; tensor bytes are borrowed from the held buffer (a memory map).
pub struct GgufFile {
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<TensorInfo>,
    pub alignment: u64,
    data_start: usize,
    bytes: Arc<dyn ByteOwner>,
    origin: String,
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    origin: &'a str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            RuntimeError::format(
                self.origin,
                format!(
                    "truncated: reading {what} needs {n} bytes at offset {}, the file has {}",
                    self.pos,
                    self.bytes.len()
                ),
            )
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(N, what)?.try_into().expect("length checked"))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let len = self.u64(what)?;
        let len = usize::try_from(len).ok().filter(|&l| l <= self.bytes.len()).ok_or_else(|| {
            RuntimeError::format(self.origin, format!("{what}: string length {len} is corrupt"))
        })?;
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| RuntimeError::format(self.origin, format!("{what} is not valid UTF-8")))
    }
    fn value(&mut self, kind: u32, what: &str, depth: usize) -> Result<GgufValue> {
        Ok(match kind {
            0 => GgufValue::U8(self.array::<1>(what)?[0]),
            1 => GgufValue::I8(self.array::<1>(what)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.array(what)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.array(what)?)),
            4 => GgufValue::U32(self.u32(what)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.array(what)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.array(what)?)),
            7 => GgufValue::Bool(self.array::<1>(what)?[0] != 0),
            8 => GgufValue::String(self.string(what)?),
            9 if depth == 0 => {
                let inner = self.u32(what)?;
                let count = self.u64(what)?;
                // Every element takes at least one byte: a larger count is corruption.
                if count > (self.bytes.len() - self.pos) as u64 {
                    return Err(RuntimeError::format(
                        self.origin,
                        format!("{what}: array length {count} is corrupt"),
                    ));
                }
                let mut items = Vec::with_capacity(count as usize);
                for _ in 0..count {
                    items.push(self.value(inner, what, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64(what)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.array(what)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.array(what)?)),
            other => {
                return Err(RuntimeError::format(
                    self.origin,
                    format!("{what}: unknown metadata value type {other} (or an array nested too deeply)"),
                ));
            }
        })
    }
}

impl GgufFile {
    /// Map and parse the file at `path`.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let bytes = crate::weights::map_file(path)?;
        GgufFile::parse(bytes, &path.display().to_string())
    }

    /// Parse a GGUF image held in `bytes`; `origin` names it in errors.
    pub fn parse(bytes: Arc<dyn ByteOwner>, origin: &str) -> Result<GgufFile> {
        let all: &[u8] = (*bytes).as_ref();
        let mut c = Cursor { bytes: all, pos: 0, origin };
        if c.take(4, "the magic")? != MAGIC {
            return Err(RuntimeError::format(origin, "not a GGUF file (the first 4 bytes are not `GGUF`)"));
        }
        let version = c.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(RuntimeError::format(
                origin,
                format!("GGUF version {version}; ragtune reads versions 2 and 3"),
            ));
        }
        let n_tensors = c.u64("the tensor count")?;
        let n_kv = c.u64("the metadata count")?;
        if n_tensors > all.len() as u64 || n_kv > all.len() as u64 {
            return Err(RuntimeError::format(origin, "corrupt header: counts exceed the file size"));
        }
        let mut metadata = BTreeMap::new();
        for i in 0..n_kv {
            let key = c.string(&format!("metadata key {i}"))?;
            let kind = c.u32(&format!("the type of `{key}`"))?;
            let value = c.value(kind, &format!("metadata `{key}`"), 0)?;
            metadata.insert(key, value);
        }
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for i in 0..n_tensors {
            let name = c.string(&format!("the name of tensor {i}"))?;
            let n_dims = c.u32(&format!("the rank of `{name}`"))?;
            if n_dims > 4 {
                return Err(RuntimeError::format(
                    origin,
                    format!("tensor `{name}` has {n_dims} dimensions; GGUF allows 4"),
                ));
            }
            let dims =
                (0..n_dims).map(|_| c.u64(&format!("the shape of `{name}`"))).collect::<Result<Vec<_>>>()?;
            let code = c.u32(&format!("the type of `{name}`"))?;
            let kind = GgmlType::from_code(code).ok_or_else(|| {
                RuntimeError::tensor(
                    &name,
                    format!("{origin}: unknown GGML tensor type {code}; {}", GgmlType::SUPPORTED),
                )
            })?;
            let offset = c.u64(&format!("the offset of `{name}`"))?;
            tensors.push(TensorInfo { name, dims, kind, offset });
        }
        let alignment = match metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(v) => v.as_u64().filter(|a| a.is_power_of_two()).ok_or_else(|| {
                RuntimeError::format(origin, format!("general.alignment {v:?} must be a power of two"))
            })?,
        };
        let data_start = (c.pos as u64).div_ceil(alignment) * alignment;
        let file = GgufFile {
            version,
            metadata,
            tensors,
            alignment,
            data_start: data_start as usize,
            bytes: bytes.clone(),
            origin: origin.to_string(),
        };
        for t in &file.tensors {
            file.tensor_bytes(t)?;
        }
        Ok(file)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The stored bytes of `info`, checked to lie inside the file.
    pub fn tensor_bytes(&self, info: &TensorInfo) -> Result<&[u8]> {
        let all: &[u8] = (*self.bytes).as_ref();
        let len =
            info.kind.bytes_for(info.checked_numel()?).map_err(|e| RuntimeError::tensor(&info.name, e))?;
        let start = (self.data_start as u64).checked_add(info.offset);
        let end = start.and_then(|s| s.checked_add(len));
        match (start, end) {
            (Some(s), Some(e)) if e <= all.len() as u64 => Ok(&all[s as usize..e as usize]),
            _ => Err(RuntimeError::tensor(
                &info.name,
                format!(
                    "{}: its {len} bytes at data offset {} run past the end of the file (truncated?)",
                    self.origin, info.offset
                ),
            )),
        }
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
