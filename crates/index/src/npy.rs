//! NumPy `.npy` files: vectors in (`<f4`, `<f2`), ids in (`<i8`, `<u8`, `<i4`), ids out (`<i8`)
//! and scores out (`<f4`), all in C order.
//!
//! The format: the magic `\x93NUMPY`, a major and minor version, the header length (u16 in
//! version 1, u32 in versions 2 and 3), a Python dict literal
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (n, d), }` padded with spaces and a newline
//! so the data starts on a 64-byte boundary, then the raw little-endian data. Anything else —
//! Fortran order, big-endian or other dtypes, a truncated body — is an error that names the file
//! and says how to re-save it with NumPy.

use std::fs;
use std::io::Write;
use std::path::Path;

use ragtune_compute::{DType, Tensor};

use crate::atomic::write_atomically;
use crate::error::{IndexError, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// The element types ragtune reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NpyDType {
    /// `<f4`
    F32,
    /// `<f2`
    F16,
    /// `<i8`
    I64,
    /// `<u8`
    U64,
    /// `<i4`
    I32,
}

impl NpyDType {
    fn from_descr(descr: &str) -> Option<NpyDType> {
        // `=` is "native order", little-endian on every machine ragtune runs on; `|` is for
        // single-byte types only, which we do not read.
        let d = descr.strip_prefix('<').or_else(|| descr.strip_prefix('='))?;
        Some(match d {
            "f4" => NpyDType::F32,
            "f2" => NpyDType::F16,
            "i8" => NpyDType::I64,
            "u8" => NpyDType::U64,
            "i4" => NpyDType::I32,
            _ => return None,
        })
    }

    pub fn descr(self) -> &'static str {
        match self {
            NpyDType::F32 => "<f4",
            NpyDType::F16 => "<f2",
            NpyDType::I64 => "<i8",
            NpyDType::U64 => "<u8",
            NpyDType::I32 => "<i4",
        }
    }

    pub fn size(self) -> usize {
        match self {
            NpyDType::F16 => 2,
            NpyDType::F32 | NpyDType::I32 => 4,
            NpyDType::I64 | NpyDType::U64 => 8,
        }
    }
}

/// A parsed `.npy` file: shape, element type and the little-endian data bytes.
#[derive(Clone, Debug)]
pub struct NpyArray {
    pub shape: Vec<usize>,
    pub dtype: NpyDType,
    pub data: Vec<u8>,
}

/// Read a `.npy` file of any dtype this module knows.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|e| IndexError::io(path, e))?;
    parse(path, bytes)
}

/// Read a 2-D `[n, dim]` array of vectors (`<f4` or `<f2`) as a host tensor of f32 or f16.
pub fn read_vectors(path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let a = read(path)?;
    let dtype = match a.dtype {
        NpyDType::F32 => DType::F32,
        NpyDType::F16 => DType::F16,
        other => {
            return Err(bad(
                path,
                format!(
                    "vectors must be float32 ('<f4') or float16 ('<f2'), this file holds '{}': re-save it with \
                     np.save(path, arr.astype(np.float32))",
                    other.descr()
                ),
            ));
        }
    };
    if a.shape.len() != 2 {
        return Err(bad(
            path,
            format!(
                "vectors must be a 2-D array [n, dim], this file has shape {:?}: re-save it with \
                 np.save(path, arr.reshape(-1, dim))",
                a.shape
            ),
        ));
    }
    if a.shape[1] == 0 {
        return Err(bad(
            path,
            format!(
                "vectors have shape {:?}: a vector needs at least 1 dimension (dim = 0 holds no values); \
                 save the embeddings themselves, [n, dim] with dim >= 1",
                a.shape
            ),
        ));
    }
    Ok(Tensor::from_bytes(&a.data, dtype, &a.shape)?)
}

/// Read a 1-D array of ids (`<i8`, `<u8` or `<i4`, none negative).
pub fn read_ids(path: impl AsRef<Path>) -> Result<Vec<u64>> {
    let path = path.as_ref();
    let a = read(path)?;
    if a.shape.len() != 1 {
        return Err(bad(
            path,
            format!(
                "ids must be a 1-D array [n], this file has shape {:?}: re-save it with np.save(path, ids.ravel())",
                a.shape
            ),
        ));
    }
    let signed: Vec<i64> = match a.dtype {
        NpyDType::I64 => bytemuck::pod_collect_to_vec::<u8, i64>(&a.data),
        NpyDType::I32 => {
            bytemuck::pod_collect_to_vec::<u8, i32>(&a.data).into_iter().map(i64::from).collect()
        }
        NpyDType::U64 => return Ok(bytemuck::pod_collect_to_vec::<u8, u64>(&a.data)),
        other => {
            return Err(bad(
                path,
                format!(
                    "ids must be integers ('<i8', '<u8' or '<i4'), this file holds '{}': re-save it with \
                     np.save(path, ids.astype(np.int64))",
                    other.descr()
                ),
            ));
        }
    };
    signed
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            u64::try_from(v)
                .map_err(|_| bad(path, format!("id at position {i} is negative ({v}): ids must be >= 0")))
        })
        .collect()
}

/// Write `data` with `shape` as `<f4` atomically.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<()> {
    write(path.as_ref(), NpyDType::F32, shape, bytemuck::cast_slice(data))
}

/// Write `data` with `shape` as `<i8` atomically.
pub fn write_i64(path: impl AsRef<Path>, shape: &[usize], data: &[i64]) -> Result<()> {
    write(path.as_ref(), NpyDType::I64, shape, bytemuck::cast_slice(data))
}

/// Write `data` (little-endian bytes of `dtype`) with `shape` as a version 1.0 `.npy`, atomically.
pub fn write(path: &Path, dtype: NpyDType, shape: &[usize], data: &[u8]) -> Result<()> {
    let numel: usize = shape.iter().product();
    if numel * dtype.size() != data.len() {
        return Err(IndexError::invalid(
            "npy::write",
            format!(
                "shape {shape:?} of {} needs {} bytes, got {}",
                dtype.descr(),
                numel * dtype.size(),
                data.len()
            ),
        ));
    }
    let header = header_text(dtype, shape);
    write_atomically(path, |w| {
        w.write_all(MAGIC)?;
        w.write_all(&[1, 0])?;
        w.write_all(&(header.len() as u16).to_le_bytes())?;
        w.write_all(header.as_bytes())?;
        w.write_all(data)
    })
}

/// The dict literal padded so magic + version + length + header is a multiple of 64 bytes.
fn header_text(dtype: NpyDType, shape: &[usize]) -> String {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut h = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {dims}, }}", dtype.descr());
    let unpadded = MAGIC.len() + 2 + 2 + h.len() + 1;
    h.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    h.push('\n');
    h
}

fn bad(path: &Path, detail: impl Into<String>) -> IndexError {
    IndexError::file(path, detail)
}

fn parse(path: &Path, bytes: Vec<u8>) -> Result<NpyArray> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad(path, "not a NumPy .npy file (no \\x93NUMPY magic): save the array with np.save"));
    }
    let major = bytes[6];
    let (header_len, start) = match major {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => {
            (u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize, 12)
        }
        _ => {
            return Err(bad(
                path,
                format!("unsupported .npy version {major}.{}: re-save with np.save", bytes[7]),
            ));
        }
    };
    let header = bytes
        .get(start..start + header_len)
        .ok_or_else(|| bad(path, "the .npy header is truncated: the file is incomplete, write it again"))?;
    let header = std::str::from_utf8(header).map_err(|_| bad(path, "the .npy header is not text"))?;
    let dict =
        parse_dict(header).map_err(|e| bad(path, format!("cannot read the .npy header {header:?}: {e}")))?;
    let descr = dict.descr.ok_or_else(|| bad(path, "the .npy header has no 'descr'"))?;
    let shape = dict.shape.ok_or_else(|| bad(path, "the .npy header has no 'shape'"))?;
    if dict.fortran_order {
        return Err(bad(
            path,
            "the array is stored in Fortran (column-major) order; ragtune reads C order: re-save it with \
             np.save(path, np.ascontiguousarray(arr))",
        ));
    }
    let dtype = NpyDType::from_descr(&descr).ok_or_else(|| {
        bad(
            path,
            format!(
                "unsupported dtype '{descr}': vectors must be '<f4' or '<f2' and ids '<i8'; convert with \
                 arr.astype(np.float32) or ids.astype(np.int64) before np.save"
            ),
        )
    })?;
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or_else(|| bad(path, format!("shape {shape:?} is too large")))?;
    let body = bytes.len() - (start + header_len).min(bytes.len());
    if body < numel {
        return Err(bad(
            path,
            format!(
                "truncated: shape {shape:?} of '{descr}' needs {numel} data bytes but the file holds {body}: \
                 the file is incomplete, write it again"
            ),
        ));
    }
    if body > numel {
        return Err(bad(
            path,
            format!("{} bytes follow the {numel} data bytes of shape {shape:?}", body - numel),
        ));
    }
    let mut data = bytes;
    data.drain(..start + header_len);
    Ok(NpyArray { shape, dtype, data })
}

#[derive(Default)]
struct HeaderDict {
    descr: Option<String>,
    fortran_order: bool,
    shape: Option<Vec<usize>>,
}

/// Parse the header's Python dict literal: string keys mapping to a string, a bool or a tuple of
/// integers. Enough for every header NumPy writes; anything else is an error, not a guess.
fn parse_dict(text: &str) -> Result<HeaderDict, String> {
    let mut p = Parser { s: text.trim().as_bytes(), i: 0 };
    let mut dict = HeaderDict::default();
    p.expect(b'{')?;
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        p.expect(b':')?;
        p.skip_ws();
        match key.as_str() {
            "descr" => dict.descr = Some(p.string()?),
            "fortran_order" => dict.fortran_order = p.boolean()?,
            "shape" => dict.shape = Some(p.tuple()?),
            other => return Err(format!("unknown key '{other}'")),
        }
        p.skip_ws();
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    Ok(dict)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.eat(c) { Ok(()) } else { Err(format!("expected '{}' at byte {}", c as char, self.i)) }
    }
    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = *self.s.get(self.i).ok_or("unexpected end")?;
        if quote != b'\'' && quote != b'"' {
            return Err(format!("expected a string at byte {}", self.i));
        }
        let start = self.i + 1;
        let len = self.s[start..].iter().position(|&c| c == quote).ok_or("unterminated string")?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }
    fn boolean(&mut self) -> Result<bool, String> {
        for (word, value) in [("True", true), ("False", false)] {
            if self.s[self.i..].starts_with(word.as_bytes()) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(format!("expected True or False at byte {}", self.i))
    }
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            let start = self.i;
            while self.s.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
                self.i += 1;
            }
            // NumPy 1.x on Windows wrote `10L`; accept the suffix.
            let digits = std::str::from_utf8(&self.s[start..self.i]).expect("ascii digits");
            let _ = self.eat(b'L');
            dims.push(digits.parse().map_err(|_| format!("expected a dimension at byte {start}"))?);
            if !self.eat(b',') {
                self.expect(b')')?;
                return Ok(dims);
            }
        }
    }
}
