//! A LoRA layer (base GEMM, then the shrink and expand kernels of kernels/lora.cu) against the
//! plain base GEMM — the trainer issue's bar is a LoRA layer within 5% of it — and against the
//! unfused way (three GEMMs and an add), on one device in one run, checked first.
//!
//! FLOPs of the LoRA layer: 2·rows·in·out + 2·rows·r·(in + out).

use ragtune_compute::ops::{self, MatmulSpec};
use ragtune_compute::{DType, Device, Tensor};

use crate::gpu::plan::CHECK_ROWS;
use crate::gpu::rows::{json_row, markdown_table};
use crate::gpu::timing::Timing;
use crate::random_scaled;
use crate::report::Ceilings;
use ragtune_tests::rel_err;

/// One measured shape.
#[derive(Clone, Debug)]
pub struct LoraRow {
    pub rows: usize,
    pub inp: usize,
    pub out: usize,
    pub r: usize,
    pub adapters: usize,
    pub dtype: DType,
    /// The backward (base dx GEMM + `ops::lora_backward`, peers: the dx GEMM alone and the
    /// unfused GEMMs for one adapter) instead of the forward.
    pub backward: bool,
    pub lora_ms: f64,
    pub base_ms: f64,
    pub unfused_ms: f64,
    pub rel_err: f64,
}

/// A LoRA layer's shape: `(rows, in, out, rank, adapters)`.
pub type LayerShape = (usize, usize, usize, usize, usize);

#[derive(Clone)]
struct Layer {
    x: Tensor,
    w: Tensor,
    a: Tensor,
    b: Tensor,
    ids: Tensor,
    scales: Vec<f32>,
}

impl Layer {
    /// Random weights on `device`; rows cycle through the adapters, whose scales differ.
    fn random(device: &Device, seed: u64, (rows, inp, out, r, adapters): LayerShape, dtype: DType) -> Layer {
        let dev = |t: Tensor| t.to_device(device).unwrap();
        Layer {
            x: dev(random_scaled(seed, &[rows, inp], dtype, 1.0)),
            w: dev(random_scaled(seed + 1, &[out, inp], dtype, 0.05)),
            a: dev(random_scaled(seed + 2, &[adapters, r, inp], dtype, 0.05)),
            b: dev(random_scaled(seed + 3, &[adapters, out, r], dtype, 0.05)),
            ids: cycled_ids(device, rows, adapters),
            scales: (0..adapters).map(|i| 2.0 / (i + 1) as f32).collect(),
        }
    }

    fn lora(&self) -> Tensor {
        let mut y = ops::linear(&self.x, &self.w).unwrap();
        let u = ops::lora_shrink(&self.x, &self.a, &self.ids).unwrap();
        ops::lora_expand(&mut y, &u, &self.b, &self.ids, &self.scales).unwrap();
        y
    }

    /// Adapter 0 on every row as three GEMMs and an add; `a0` `[r, in]` and `b0` `[out, r]` are
    /// its matrices (see [`first`]).
    fn unfused(&self, a0: &Tensor, b0: &Tensor) -> Tensor {
        let y = ops::linear(&self.x, &self.w).unwrap();
        let u = ops::matmul_ex(&self.x, a0, MatmulSpec { trans_b: true, ..Default::default() }).unwrap();
        let spec = MatmulSpec { trans_b: true, alpha: self.scales[0], ..Default::default() };
        ops::add(&y, &ops::matmul_ex(&u, b0, spec).unwrap()).unwrap()
    }
}

/// A random layer on `device` drawn from `seed`, and the same layer with every row on adapter 0.
fn random_layers(device: &Device, seed: u64, shape: LayerShape, dtype: DType) -> (Layer, Layer) {
    let layer = Layer::random(device, seed, shape, dtype);
    let one = Layer { ids: cycled_ids(device, shape.0, 1), ..layer.clone() };
    (layer, one)
}

/// Adapter ids `i % adapters` for rows `0..rows`, on `device`.
fn cycled_ids(device: &Device, rows: usize, adapters: usize) -> Tensor {
    let ids: Vec<i32> = (0..rows).map(|i| (i % adapters) as i32).collect();
    Tensor::from_slice(&ids, &[rows]).unwrap().to_device(device).unwrap()
}

/// `layer` cut to its first `rows` rows (the CPU reference's share of a large layer).
fn first_rows(layer: &Layer, rows: usize, adapters: usize) -> Layer {
    let inp = layer.x.shape()[1];
    Layer {
        x: first(&layer.x, &[rows, inp]),
        ids: cycled_ids(&layer.x.device(), rows, adapters),
        ..layer.clone()
    }
}

/// Check, then time, one LoRA layer of rank `r` with `adapters` adapters (rows cycle through them;
/// the unfused peer is run with one adapter, as it can only apply one), timed with `t`.
pub fn measure(t: &mut Timing, shape: LayerShape, dtype: DType) -> LoraRow {
    let (rows, inp, out, r, adapters) = shape;
    // Checked on one adapter against the unfused GEMMs on this device, at full size; and with
    // all adapters against the CPU on the first CHECK_ROWS rows (rows are independent).
    let (layer, one) = random_layers(t.device, 9, shape, dtype);
    let (a0, b0) = (first(&layer.a, &[r, inp]), first(&layer.b, &[out, r]));
    let err_unfused = rel_err(&one.lora().to_vec_f32().unwrap(), &values(&one.unfused(&a0, &b0)));
    let head = first_rows(&layer, rows.min(CHECK_ROWS), adapters);
    let want = values(&host_layer(&head).lora());
    let err = rel_err(&head.lora().to_vec_f32().unwrap(), &want).max(err_unfused);
    let tol = if dtype == DType::F32 { 1e-4 } else { 2e-2 };
    assert!(err <= tol, "LoRA layer differs from its references by {err:.2e} ({dtype})");
    let lora_ms = t.median_ms(|| {
        layer.lora();
    });
    let base_ms = t.median_ms(|| {
        ops::linear(&layer.x, &layer.w).unwrap();
    });
    let unfused_ms = t.median_ms(|| {
        one.unfused(&a0, &b0);
    });
    LoraRow {
        rows,
        inp,
        out,
        r,
        adapters,
        dtype,
        backward: false,
        lora_ms,
        base_ms,
        unfused_ms,
        rel_err: err,
    }
}

/// The first elements of `stacked` (its first adapter, or its first rows) as `shape`, on its
/// device.
fn first(stacked: &Tensor, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let host = stacked.to_host().unwrap().to_vec_f32().unwrap();
    let t = ops::cast(&Tensor::from_slice(&host[..n], shape).unwrap(), stacked.dtype()).unwrap();
    t.to_device(&stacked.device()).unwrap()
}

fn host_layer(l: &Layer) -> Layer {
    let h = |t: &Tensor| t.to_host().unwrap();
    Layer { x: h(&l.x), w: h(&l.w), a: h(&l.a), b: h(&l.b), ids: h(&l.ids), scales: l.scales.clone() }
}

impl LoraRow {
    /// The base GEMM plus the rank-r products (two forward, four backward).
    pub fn flops(&self) -> f64 {
        let rank_products = if self.backward { 2 } else { 1 };
        2.0 * self.rows as f64 * (self.inp * self.out + rank_products * self.r * (self.inp + self.out)) as f64
    }

    /// The row in `cargo xtask bench`'s JSON format: the base GEMM (the bar) and the unfused
    /// GEMMs as peers.
    pub fn json_row(&self, ceilings: &Ceilings, repeats: usize) -> String {
        let passes = if self.backward { 2 } else { 1 };
        let bytes =
            ((self.rows * (self.inp + self.out) * passes + self.inp * self.out) * self.dtype.size()) as f64;
        let (name, base, unfused) = if self.backward {
            (
                "LoRA backward (base dx GEMM + lora_backward)",
                "base dx GEMM alone",
                "unfused LoRA backward GEMMs",
            )
        } else {
            (
                "LoRA layer (base GEMM + shrink + expand)",
                "base GEMM alone (bar: LoRA ≤ 1.05×)",
                "unfused LoRA GEMMs",
            )
        };
        json_row(
            "lora",
            name,
            &format!(
                "rows={} in={} out={} r={} adapters={} {}",
                self.rows, self.inp, self.out, self.r, self.adapters, self.dtype
            ),
            (self.lora_ms / 1e3, repeats),
            (self.flops(), bytes),
            ceilings,
            &[(base, self.base_ms / 1e3), (unfused, self.unfused_ms / 1e3)],
            &format!("vs CPU and unfused: rel err {:.1e}", self.rel_err),
        )
    }
}

/// A Markdown table of rows, with LoRA/base (the bar, forward) and unfused/LoRA.
pub fn table(device: &Device, rows: &[LoraRow]) -> String {
    let backward = rows.first().is_some_and(|r| r.backward);
    let (what, base) = if backward { ("LoRA backward", "base dx") } else { ("LoRA layer", "base GEMM") };
    let bar = if backward { "" } else { " (bar ≤ 1.05)" };
    let header = format!(
        "| rows | in | out | r | adapters | dtype | LoRA ms | {base} ms | LoRA/base{bar} | unfused ms | rel err |"
    );
    let lines = rows.iter().map(|r| {
        let LoraRow { rows, inp, out, r: rank, adapters, dtype, lora_ms, base_ms, unfused_ms, rel_err, .. } = r;
        let ratio = lora_ms / base_ms;
        format!(
            "| {rows} | {inp} | {out} | {rank} | {adapters} | {dtype} | {lora_ms:.3} | {base_ms:.3} | {ratio:.3} | {unfused_ms:.3} | {rel_err:.1e} |"
        )
    });
    markdown_table(&format!("{what} on {device}"), &header, lines)
}

/// The backward's inputs on one device.
struct BackwardInputs {
    layer: Layer,
    dy: Tensor,
    u: Tensor,
}

impl BackwardInputs {
    /// dx of the frozen base plus the adapters': `(dx, dA, dB)`.
    fn lora(&self) -> (Tensor, Tensor, Tensor) {
        let l = &self.layer;
        let (mut dx, _) = ops::linear_backward(None, &l.w, &self.dy).unwrap();
        let args = ops::LoraBackward {
            x: &l.x,
            mask: None,
            dy: &self.dy,
            u: &self.u,
            a: &l.a,
            b: &l.b,
            ids: &l.ids,
            scales: &l.scales,
        };
        let (da, db) = ops::lora_backward(&args, &mut dx).unwrap();
        (dx, da, db)
    }

    /// Adapter 0 on every row, unfused: `(dx, dA, dB)`.
    fn unfused(&self, a0: &Tensor, b0: &Tensor) -> (Tensor, Tensor, Tensor) {
        let l = &self.layer;
        let (dx, _) = ops::linear_backward(None, &l.w, &self.dy).unwrap();
        let z = ops::cast(&ops::scale(&self.u, l.scales[0]).unwrap(), l.x.dtype()).unwrap();
        let (dz, db) = ops::linear_backward(Some(&z), b0, &self.dy).unwrap();
        let du = ops::scale(&dz, l.scales[0]).unwrap();
        let (dxl, da) = ops::linear_backward(Some(&l.x), a0, &du).unwrap();
        (ops::add(&dx, &dxl).unwrap(), da.unwrap(), db.unwrap())
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec_f32().unwrap().into_iter().map(f64::from).collect()
}

/// Check, then time (with `t`), the backward of one LoRA layer of rank `r` with `adapters`
/// adapters.
pub fn measure_backward(t: &mut Timing, shape: LayerShape, dtype: DType) -> LoraRow {
    let (rows, inp, out, r, adapters) = shape;
    let (layer, one_layer) = random_layers(t.device, 10, shape, dtype);
    let dy = random_scaled(14, &[rows, out], dtype, 1.0).to_device(t.device).unwrap();
    let u = ops::lora_shrink(&layer.x, &layer.a, &layer.ids).unwrap();
    let all = BackwardInputs { layer: layer.clone(), dy: dy.clone(), u };
    // Checked with all adapters against the CPU on the first CHECK_ROWS rows (a backward of its
    // own: dA and dB sum over the rows), and with one adapter against the unfused GEMMs at full
    // size.
    let head_rows = rows.min(CHECK_ROWS);
    let head = first_rows(&layer, head_rows, adapters);
    let head_u = ops::lora_shrink(&head.x, &head.a, &head.ids).unwrap();
    let head = BackwardInputs { dy: first(&dy, &[head_rows, out]), layer: head, u: head_u };
    let host = BackwardInputs {
        layer: host_layer(&head.layer),
        dy: head.dy.to_host().unwrap(),
        u: head.u.to_host().unwrap(),
    };
    let (got, want) = (head.lora(), host.lora());
    let mut err = [(&got.0, &want.0), (&got.1, &want.1), (&got.2, &want.2)]
        .iter()
        .map(|(a, b)| rel_err(&a.to_vec_f32().unwrap(), &values(b)))
        .fold(0.0, f64::max);
    let one_u = ops::lora_shrink(&one_layer.x, &one_layer.a, &one_layer.ids).unwrap();
    let one = BackwardInputs { layer: one_layer, dy, u: one_u };
    let (a0, b0) = (first(&layer.a, &[r, inp]), first(&layer.b, &[out, r]));
    let (fused, unfused) = (one.lora(), one.unfused(&a0, &b0));
    err = err.max(rel_err(&fused.0.to_vec_f32().unwrap(), &values(&unfused.0)));
    let tol = if dtype == DType::F32 { 1e-4 } else { 2e-2 };
    assert!(err <= tol, "LoRA backward differs from its references by {err:.2e} ({dtype})");
    let lora_ms = t.median_ms(|| {
        all.lora();
    });
    let base_ms = t.median_ms(|| {
        ops::linear_backward(None, &layer.w, &all.dy).unwrap();
    });
    let unfused_ms = t.median_ms(|| {
        one.unfused(&a0, &b0);
    });
    LoraRow { rows, inp, out, r, adapters, dtype, backward: true, lora_ms, base_ms, unfused_ms, rel_err: err }
}
