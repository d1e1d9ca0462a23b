//! [`QMatrix`]: GGUF quant blocks repacked into flat arrays the dot kernels stream. The block
//! layouts read here are llama.cpp's (`ggml-common.h`); the repacking changes where values live,
//! never what they are: [`QMatrix::dequantize_row`] reproduces the GGUF dequantizer's f32
//! values bit for bit, in the same rounding order (checked against the runtime's dequantizer in
//! `crates/runtime/tests/quant_stored.rs`).

use half::f16;

use super::QK;

/// The GGUF block type a [`QMatrix`] was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum QuantKind {
    Q8_0,
    Q4_0,
    Q4_1,
    Q4_K,
    Q6_K,
}

impl QuantKind {
    /// (weights per block, bytes per block) as stored in a GGUF file.
    pub fn block(self) -> (usize, usize) {
        match self {
            QuantKind::Q8_0 => (32, 34),
            QuantKind::Q4_0 => (32, 18),
            QuantKind::Q4_1 => (32, 20),
            QuantKind::Q4_K => (256, 144),
            QuantKind::Q6_K => (256, 210),
        }
    }

    /// How the kernels see this type once repacked.
    pub fn layout(self) -> Layout {
        match self {
            QuantKind::Q8_0 => Layout::I8,
            QuantKind::Q4_0 | QuantKind::Q4_1 | QuantKind::Q4_K => Layout::Nib,
            QuantKind::Q6_K => Layout::I8Half,
        }
    }
}

/// The repacked forms (see the table in the module docs of `quant`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// 16 bytes per 32 weights: byte j holds weight j (low nibble) and j + 16 (high nibble);
    /// w = d·q + m with one (d, m) per 32.
    Nib,
    /// 32 i8 per 32 weights; w = d·q with one d per 32.
    I8,
    /// 32 i8 per 32 weights; w = d·q with one d per 16.
    I8Half,
}

impl Layout {
    /// Bytes of quants per 32 weights.
    pub fn quant_bytes(self) -> usize {
        if self == Layout::Nib { QK / 2 } else { QK }
    }
    /// Scales per 32 weights.
    pub fn scales(self) -> usize {
        if self == Layout::I8Half { 2 } else { 1 }
    }
}

/// A `[rows, cols]` weight matrix of quant blocks, row-major; `cols` is a multiple of 32.
#[derive(Clone, Debug)]
pub struct QMatrix {
    pub kind: QuantKind,
    pub rows: usize,
    pub cols: usize,
    /// Scales, `rows · cols/32 · layout.scales()` of them.
    pub(crate) d: Vec<f32>,
    /// Offsets of the `Nib` layout (one per 32); empty otherwise.
    pub(crate) m: Vec<f32>,
    /// Quants, `rows · cols/32 · layout.quant_bytes()` bytes.
    pub(crate) qs: Vec<u8>,
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([b[at], b[at + 1]]).to_f32()
}

/// Packs 32 values below 16 as the `Nib` layout's 16 bytes.
fn pack_nibbles(q: &[u8; 32], out: &mut Vec<u8>) {
    out.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
}

/// The (scale, min) pair `j` of a Q4_K block's 12 packed bytes (llama.cpp's `get_scale_min_k4`).
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

impl QMatrix {
    /// Repack `bytes` (a GGUF tensor of `kind` with `rows` rows of `cols` weights) or say why
    /// they do not fit.
    pub fn from_gguf(kind: QuantKind, rows: usize, cols: usize, bytes: &[u8]) -> Result<QMatrix, String> {
        let (per, size) = kind.block();
        if cols == 0 || !cols.is_multiple_of(per) {
            return Err(format!("rows of {cols} weights are not whole {kind:?} blocks of {per}"));
        }
        let want = rows.checked_mul(cols / per).and_then(|b| b.checked_mul(size));
        if want != Some(bytes.len()) {
            return Err(format!(
                "{} bytes hold {kind:?} blocks for {rows} × {cols} weights only if they are {} bytes",
                bytes.len(),
                want.map_or("too many".to_string(), |w| w.to_string())
            ));
        }
        let layout = kind.layout();
        let blocks32 = rows * cols / QK;
        let mut d = Vec::with_capacity(blocks32 * layout.scales());
        let mut m = Vec::with_capacity(if layout == Layout::Nib { blocks32 } else { 0 });
        let mut qs = Vec::with_capacity(blocks32 * layout.quant_bytes());
        for b in bytes.chunks_exact(size) {
            match kind {
                QuantKind::Q8_0 => {
                    d.push(f16_at(b, 0));
                    qs.extend_from_slice(&b[2..34]);
                }
                QuantKind::Q4_0 | QuantKind::Q4_1 => {
                    let scale = f16_at(b, 0);
                    d.push(scale);
                    // Q4_0 is (q − 8)·d: the offset −8d is exact (a power-of-two multiple).
                    m.push(if kind == QuantKind::Q4_0 { -8.0 * scale } else { f16_at(b, 2) });
                    let at = if kind == QuantKind::Q4_0 { 2 } else { 4 };
                    qs.extend_from_slice(&b[at..at + 16]);
                }
                QuantKind::Q4_K => {
                    let (dd, dmin) = (f16_at(b, 0), f16_at(b, 2));
                    let (scales, q) = (&b[4..16], &b[16..144]);
                    // Chunk c of 32 bytes: low nibbles are sub-block 2c, high nibbles 2c + 1.
                    for c in 0..4 {
                        for half in 0..2 {
                            let (sc, mn) = scale_min_k4(2 * c + half, scales);
                            d.push(dd * sc as f32);
                            m.push(-(dmin * mn as f32));
                            let mut vals = [0u8; 32];
                            for (l, v) in vals.iter_mut().enumerate() {
                                *v = (q[32 * c + l] >> (4 * half)) & 0xF;
                            }
                            pack_nibbles(&vals, &mut qs);
                        }
                    }
                }
                QuantKind::Q6_K => {
                    let dd = f16_at(b, 208);
                    let mut vals = [0i8; 256];
                    for n in 0..2 {
                        let ql = &b[64 * n..64 * n + 64];
                        let qh = &b[128 + 32 * n..128 + 32 * n + 32];
                        for l in 0..32 {
                            let e = 128 * n + l;
                            vals[e] = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
                            vals[e + 32] = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
                            vals[e + 64] = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
                            vals[e + 96] = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
                        }
                    }
                    d.extend(b[192..208].iter().map(|&s| dd * (s as i8) as f32));
                    qs.extend(vals.iter().map(|&v| v as u8));
                }
            }
        }
        Ok(QMatrix { kind, rows, cols, d, m, qs })
    }

    pub fn layout(&self) -> Layout {
        self.kind.layout()
    }

    /// 32-weight blocks per row.
    pub fn blocks_per_row(&self) -> usize {
        self.cols / QK
    }

    /// Bytes the repacked matrix occupies (what a decode step reads).
    pub fn size_bytes(&self) -> usize {
        4 * (self.d.len() + self.m.len()) + self.qs.len()
    }

    /// Row `r`'s scales, offsets (empty unless `Nib`) and quants.
    #[inline]
    pub(crate) fn row(&self, r: usize) -> (&[f32], &[f32], &[u8]) {
        let (nb, l) = (self.blocks_per_row(), self.layout());
        let d = &self.d[r * nb * l.scales()..(r + 1) * nb * l.scales()];
        let m = if l == Layout::Nib { &self.m[r * nb..(r + 1) * nb] } else { &self.m[..0] };
        (d, m, &self.qs[r * nb * l.quant_bytes()..(r + 1) * nb * l.quant_bytes()])
    }

    /// The rows `order[0], order[1], …` as a new matrix (llama.cpp's Q/K row permutation is
    /// undone this way; rows are whole blocks, so this moves blocks without touching them).
    pub fn select_rows(&self, order: &[usize]) -> Result<QMatrix, String> {
        if let Some(&bad) = order.iter().find(|&&r| r >= self.rows) {
            return Err(format!("row {bad} of a matrix of {} rows", self.rows));
        }
        let mut out = QMatrix {
            kind: self.kind,
            rows: order.len(),
            cols: self.cols,
            d: Vec::new(),
            m: Vec::new(),
            qs: Vec::new(),
        };
        for &r in order {
            let (d, m, q) = self.row(r);
            out.d.extend_from_slice(d);
            out.m.extend_from_slice(m);
            out.qs.extend_from_slice(q);
        }
        Ok(out)
    }

    /// Row `r` as f32, the values (and rounding order) of the GGUF dequantizer.
    pub fn dequantize_row(&self, r: usize, out: &mut [f32]) {
        let (d, m, q) = self.row(r);
        let layout = self.layout();
        for (b, y) in out[..self.cols].chunks_exact_mut(QK).enumerate() {
            match layout {
                Layout::Nib => {
                    let q = &q[16 * b..16 * b + 16];
                    let (lo, hi) = y.split_at_mut(16);
                    // Loops per type (not a branch per weight): this runs for every prefill tile.
                    if self.kind == QuantKind::Q4_0 {
                        // As the GGUF dequantizer rounds it: one product.
                        for j in 0..16 {
                            lo[j] = ((q[j] & 0xF) as i32 - 8) as f32 * d[b];
                            hi[j] = ((q[j] >> 4) as i32 - 8) as f32 * d[b];
                        }
                    } else {
                        for j in 0..16 {
                            lo[j] = (q[j] & 0xF) as f32 * d[b] + m[b];
                            hi[j] = (q[j] >> 4) as f32 * d[b] + m[b];
                        }
                    }
                }
                Layout::I8 => {
                    for (j, y) in y.iter_mut().enumerate() {
                        *y = q[QK * b + j] as i8 as f32 * d[b];
                    }
                }
                Layout::I8Half => {
                    for (j, y) in y.iter_mut().enumerate() {
                        *y = d[2 * b + j / 16] * q[QK * b + j] as i8 as f32;
                    }
                }
            }
        }
    }

    /// The whole matrix as f32 (tests and small tools; the product path dequantizes tiles).
    pub fn dequantize(&self) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
            self.dequantize_row(r, row);
        }
        out
    }
}
