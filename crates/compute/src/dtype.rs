//! Element types of tensors and their host representations.

use std::fmt;

use half::{bf16, f16};

/// The element type of a tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    BF16,
    F16,
    I32,
    U32,
    U8,
}

impl DType {
    pub const ALL: [DType; 6] = [DType::F32, DType::BF16, DType::F16, DType::I32, DType::U32, DType::U8];
    /// The floating-point types the numeric ops accept.
    pub const FLOATS: [DType; 3] = [DType::F32, DType::BF16, DType::F16];

    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::BF16 | DType::F16 => 2,
            DType::U8 => 1,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::BF16 | DType::F16)
    }

    /// The suffix kernels carry for this type (`rms_norm_bf16`).
    pub fn kernel_suffix(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
            DType::I32 => "i32",
            DType::U32 => "u32",
            DType::U8 => "u8",
        }
    }

    /// Parse `f32`, `bf16`, `f16`, `i32`, `u32`, `u8` (also `float32`, `bfloat16`, `float16`).
    pub fn parse(s: &str) -> Option<DType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => DType::F32,
            "bf16" | "bfloat16" => DType::BF16,
            "f16" | "float16" | "half" => DType::F16,
            "i32" | "int32" => DType::I32,
            "u32" | "uint32" => DType::U32,
            "u8" | "uint8" => DType::U8,
            _ => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kernel_suffix())
    }
}

/// A Rust type that is the host representation of a [`DType`].
pub trait Element: bytemuck::Pod + Copy + Send + Sync + PartialEq + fmt::Debug + 'static {
    const DTYPE: DType;
    fn to_f32(self) -> f32;
    fn from_f32(v: f32) -> Self;
    fn to_f64(self) -> f64 {
        self.to_f32() as f64
    }
}

/// A floating-point element (f32, bf16, f16): what the numeric ops compute on.
pub trait FloatElement: Element {}
impl FloatElement for f32 {}
impl FloatElement for bf16 {}
impl FloatElement for f16 {}

impl Element for f32 {
    const DTYPE: DType = DType::F32;
    fn to_f32(self) -> f32 {
        self
    }
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f64(self) -> f64 {
        self as f64
    }
}
/// The 16-bit float element types, converted by the `half` crate (round to nearest even).
macro_rules! half_element {
    ($($t:ident => $d:ident),*) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            fn to_f32(self) -> f32 {
                $t::to_f32(self)
            }
            fn from_f32(v: f32) -> Self {
                $t::from_f32(v)
            }
        }
    )*};
}
half_element!(bf16 => BF16, f16 => F16);
/// The integer element types: values convert as Rust's `as` does (saturating from floats).
macro_rules! integer_element {
    ($($t:ty => $d:ident),*) => {$(
        impl Element for $t {
            const DTYPE: DType = DType::$d;
            fn to_f32(self) -> f32 {
                self as f32
            }
            fn from_f32(v: f32) -> Self {
                v as $t
            }
            fn to_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
integer_element!(i32 => I32, u32 => U32, u8 => U8);
