//! Typed handles of every kernel in `kernels/`, generated at build time.
//!
//! `build/main.rs` reads each `kernels/<family>.cu`, expands the macros that stamp kernels out
//! per element type and head dimension, and writes one module per family with a [`Kernel`]
//! constant per `extern "C" __global__` function — `kernels::norm::RMS_NORM_F32` — and the
//! groups a launch chooses from at run time: [`ByDtype`] (`kernels::norm::RMS_NORM.of(dtype)`)
//! and [`ByHeadDim`] (`kernels::attention::ATTENTION_PREFILL.of(64, dtype)`). Every launch of
//! ragtune's ops goes through these, so a misspelt family or kernel does not compile, and a
//! dtype or head dimension without a stamped-out variant is an error naming both, before
//! anything reaches a GPU.

use crate::{ComputeError, DType, Result};

/// One `extern "C" __global__` function of one family (`kernels/<family>.cu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Kernel {
    family: &'static str,
    name: &'static str,
}

impl Kernel {
    /// The generated constants below are the handles of `kernels/`. Outside it — the emulator's
    /// own test kernels — a handle is made from the two names directly.
    pub const fn new(family: &'static str, name: &'static str) -> Kernel {
        Kernel { family, name }
    }
    /// The family: the file stem of `kernels/<family>.cu`.
    pub const fn family(self) -> &'static str {
        self.family
    }
    /// The `extern "C"` function name, as NVRTC's module and the emulator's registry know it.
    pub const fn name(self) -> &'static str {
        self.name
    }
}

/// A kernel stamped out once per element type: `<stem>_f32`, `<stem>_bf16`, ...
#[derive(Clone, Copy, Debug)]
pub struct ByDtype {
    stem: &'static str,
    variants: &'static [(DType, Kernel)],
}

impl ByDtype {
    pub const fn new(stem: &'static str, variants: &'static [(DType, Kernel)]) -> ByDtype {
        ByDtype { stem, variants }
    }
    /// The variant for `dtype`; an error naming the kernel and the types it has otherwise.
    pub fn of(&self, dtype: DType) -> Result<Kernel> {
        match self.variants.iter().find(|(d, _)| *d == dtype) {
            Some(&(_, k)) => Ok(k),
            None => Err(ComputeError::dtype(
                "kernel",
                format!("{} has no {dtype:?} variant (it has {:?})", self.stem, self.dtypes()),
            )),
        }
    }
    /// The element types this kernel is stamped out for.
    pub fn dtypes(&self) -> Vec<DType> {
        self.variants.iter().map(|&(d, _)| d).collect()
    }
}

/// A kernel specialised per head dimension and element type: `<stem>_d<dim>_<dtype>`.
#[derive(Clone, Copy, Debug)]
pub struct ByHeadDim {
    stem: &'static str,
    variants: &'static [(u32, ByDtype)],
}

impl ByHeadDim {
    pub const fn new(stem: &'static str, variants: &'static [(u32, ByDtype)]) -> ByHeadDim {
        ByHeadDim { stem, variants }
    }
    /// The variant for `head_dim` and `dtype`; an error naming what exists otherwise.
    pub fn of(&self, head_dim: usize, dtype: DType) -> Result<Kernel> {
        match self.variants.iter().find(|(d, _)| *d as usize == head_dim) {
            Some((_, by)) => by.of(dtype),
            None => Err(ComputeError::invalid(
                "kernel",
                format!("{} has no head dimension {head_dim} (it has {:?})", self.stem, self.head_dims()),
            )),
        }
    }
    /// The head dimensions this kernel is specialised for, ascending.
    pub fn head_dims(&self) -> Vec<usize> {
        self.variants.iter().map(|&(d, _)| d as usize).collect()
    }
}

include!(concat!(env!("OUT_DIR"), "/kernel_handles.rs"));

/// Every kernel of `kernels/`, as one list.
pub fn all() -> impl Iterator<Item = Kernel> {
    ALL.iter().flat_map(|family| family.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_carry_their_family_and_name() {
        assert_eq!((norm::RMS_NORM_F32.family(), norm::RMS_NORM_F32.name()), ("norm", "rms_norm_f32"));
        assert_eq!(norm::RMS_NORM.of(DType::BF16).unwrap().name(), "rms_norm_bf16");
        assert_eq!(
            attention::ATTENTION_PREFILL.of(64, DType::F16).unwrap().name(),
            "attention_prefill_d64_f16"
        );
        assert_eq!(cast::CAST_BF16.of(DType::U8).unwrap().name(), "cast_bf16_u8");
    }

    #[test]
    fn a_missing_variant_is_an_error_naming_what_exists() {
        let e = norm::RMS_NORM.of(DType::U8).unwrap_err().to_string();
        assert!(e.contains("rms_norm has no U8 variant") && e.contains("F32"), "{e}");
        let e = attention::ATTENTION_PREFILL.of(48, DType::F32).unwrap_err().to_string();
        assert!(e.contains("no head dimension 48") && e.contains("64"), "{e}");
        // A cast to its own type is a copy, not a kernel.
        assert!(cast::CAST_F32.of(DType::F32).is_err());
    }

    #[test]
    fn the_gpu_attention_path_knows_exactly_the_stamped_out_head_dims() {
        let dims = crate::gpu::attention::HEAD_DIMS.to_vec();
        for k in [
            attention::ATTENTION_PREFILL,
            attention::ATTENTION_DECODE_SPLIT,
            attention::ATTENTION_DECODE_COMBINE,
        ] {
            assert_eq!(k.head_dims(), dims);
        }
    }

    #[test]
    fn every_family_file_has_a_module_and_every_name_is_unique() {
        let families: Vec<&str> = crate::kernel_sources::families().iter().map(|f| f.family).collect();
        let listed: Vec<&str> = ALL.iter().map(|k| k[0].family()).collect();
        assert_eq!(listed, families);
        let mut names: Vec<&str> = all().map(Kernel::name).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "two families define the same kernel name");
    }
}
