//! The flags several subcommands share, parsed once by clap into types: `--device`
//! ([`DeviceArg`]), `--dtype` of the commands that need dense weights ([`FloatDtype`]) and of
//! `ragtune generate` ([`WeightPrecision`]). A bad value fails while the command line is
//! parsed, with clap's message naming the flag and the accepted values.

use std::fmt;
use std::str::FromStr;

use anyhow::{Context, Result};
use clap::ValueEnum;
use clap::builder::PossibleValue;
use ragtune_compute::{DType, Device};
use ragtune_runtime::loader::Precision;

/// `--device`: `auto` (a GPU when usable, else the CPU), `cpu`, `cuda` or `cuda:N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceArg {
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceArg {
    type Err = String;

    /// The spellings [`Device::parse_spec`] knows (any case, `gpu` for `cuda`), plus `auto`.
    fn from_str(s: &str) -> std::result::Result<DeviceArg, String> {
        if s.trim().eq_ignore_ascii_case("auto") {
            return Ok(DeviceArg::Auto);
        }
        match Device::parse_spec(s) {
            Ok(None) => Ok(DeviceArg::Cpu),
            Ok(Some(n)) => Ok(DeviceArg::Cuda(n)),
            Err(_) => Err(format!("unknown device `{s}`: use auto, cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for DeviceArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceArg::Auto => f.write_str("auto"),
            DeviceArg::Cpu => f.write_str("cpu"),
            DeviceArg::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl DeviceArg {
    /// The device; under `auto`, says on stderr why the CPU was chosen (unless `json`). An
    /// explicit GPU that cannot be opened is an error naming the flag.
    pub fn open(self, json: bool) -> Result<Device> {
        match self {
            DeviceArg::Auto => {
                let choice = Device::auto();
                if let (Some(why), false) = (&choice.cpu_reason, json) {
                    eprintln!("running on the CPU: {why}");
                }
                Ok(choice.device)
            }
            DeviceArg::Cpu => Ok(Device::Cpu),
            DeviceArg::Cuda(n) => Device::cuda(n).with_context(|| format!("--device {self}")),
        }
    }

    /// The GPU it names: `auto` means the first one; `None` for `cpu`.
    pub fn gpu_ordinal(self) -> Option<usize> {
        match self {
            DeviceArg::Auto => Some(0),
            DeviceArg::Cpu => None,
            DeviceArg::Cuda(n) => Some(n),
        }
    }
}

/// `--dtype` of the commands that need dense weights (training, embedding, index storage).
/// `auto` is the device's choice ([`Device::default_weight_dtype`]: bf16 on a GPU, f32 on the
/// CPU), resolved once the device is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FloatDtype {
    Auto,
    #[value(alias = "float32", alias = "float")]
    F32,
    #[value(alias = "bfloat16")]
    Bf16,
    #[value(alias = "float16", alias = "half")]
    F16,
}

impl FloatDtype {
    /// `--dtype` for a command that needs dense weights: `stored` (a GGUF's quantized blocks,
    /// for `ragtune generate`) is refused with the reason.
    pub fn parse_dense(s: &str) -> std::result::Result<FloatDtype, String> {
        match WeightPrecision::from_str(s, true) {
            Ok(WeightPrecision::Stored | WeightPrecision::StoredQ8) => Err(format!(
                "`{s}` keeps quantized weights for inference (ragtune generate); this command needs dense \
                 weights: use auto, f32, bf16 or f16"
            )),
            _ => FloatDtype::from_str(s, true)
                .map_err(|_| format!("unknown dtype `{s}`: use auto, f32, bf16 or f16")),
        }
    }

    /// The dtype on `device`: `auto` is the device's default.
    pub fn resolve(self, device: &Device) -> DType {
        match self {
            FloatDtype::Auto => device.default_weight_dtype(),
            FloatDtype::F32 => DType::F32,
            FloatDtype::Bf16 => DType::BF16,
            FloatDtype::F16 => DType::F16,
        }
    }
}

/// `--dtype` of `ragtune generate`: a float dtype ([`FloatDtype`]'s spellings), or a GGUF's
/// quantized blocks kept as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightPrecision {
    Float(FloatDtype),
    Stored,
    StoredQ8,
}

impl ValueEnum for WeightPrecision {
    fn value_variants<'a>() -> &'a [Self] {
        use FloatDtype::*;
        &[
            WeightPrecision::Float(Auto),
            WeightPrecision::Float(F32),
            WeightPrecision::Float(Bf16),
            WeightPrecision::Float(F16),
            WeightPrecision::Stored,
            WeightPrecision::StoredQ8,
        ]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        match self {
            WeightPrecision::Float(d) => d.to_possible_value(),
            WeightPrecision::Stored => Some(PossibleValue::new("stored")),
            WeightPrecision::StoredQ8 => Some(PossibleValue::new("stored-q8")),
        }
    }
}

impl WeightPrecision {
    /// How the runtime loads the weights on `device` (`auto`: the device's default dtype).
    pub fn precision(self, device: &Device) -> Precision {
        match self {
            WeightPrecision::Float(d) => Precision::Dtype(d.resolve(device)),
            WeightPrecision::Stored => Precision::Stored,
            WeightPrecision::StoredQ8 => Precision::StoredQ8,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_specs_parse_as_the_compute_crate_reads_them() {
        for (spec, want) in [
            ("auto", DeviceArg::Auto),
            (" AUTO ", DeviceArg::Auto),
            ("cpu", DeviceArg::Cpu),
            ("cuda", DeviceArg::Cuda(0)),
            ("gpu", DeviceArg::Cuda(0)),
            ("cuda:3", DeviceArg::Cuda(3)),
        ] {
            assert_eq!(spec.parse::<DeviceArg>(), Ok(want), "{spec}");
            // The compute crate agrees on the GPU ordinal (auto: the first GPU).
            assert_eq!(Device::parse_spec(spec).unwrap(), want.gpu_ordinal(), "{spec}");
        }
        let e = "tpu".parse::<DeviceArg>().unwrap_err();
        assert!(e.contains("`tpu`") && ["auto", "cpu", "cuda:N"].iter().all(|v| e.contains(v)), "{e}");
    }

    #[test]
    fn dtypes_map_to_the_runtime_types_and_accept_the_compute_crates_aliases() {
        for spec in ["f32", "float32", "F16", "half", "bf16", "bfloat16"] {
            let want = DType::parse(spec).unwrap();
            assert_eq!(FloatDtype::parse_dense(spec).unwrap().resolve(&Device::Cpu), want, "{spec}");
            assert_eq!(
                WeightPrecision::from_str(spec, true).unwrap().precision(&Device::Cpu),
                Precision::parse(spec).unwrap(),
                "{spec}"
            );
        }
        for spec in ["stored", "stored-q8"] {
            assert_eq!(
                WeightPrecision::from_str(spec, true).unwrap().precision(&Device::Cpu),
                Precision::parse(spec).unwrap()
            );
            let e = FloatDtype::parse_dense(spec).unwrap_err();
            assert!(e.contains("ragtune generate") && e.contains("f32, bf16 or f16"), "{e}");
        }
        assert!(FloatDtype::parse_dense("i32").unwrap_err().contains("auto, f32, bf16 or f16"));
        // `auto` is the device's choice: f32 on the CPU (bf16 on a GPU, tested with the emulator
        // in tests/tests/tensors.rs).
        let auto = FloatDtype::parse_dense("auto").unwrap();
        assert_eq!(auto.resolve(&Device::Cpu), Device::Cpu.default_weight_dtype());
        assert_eq!(auto.resolve(&Device::Cpu), DType::F32);
        let auto = WeightPrecision::from_str("AUTO", true).unwrap();
        assert_eq!(auto.precision(&Device::Cpu), Precision::Dtype(DType::F32));
    }
}
