//! Rotary position embedding parameters: the inverse frequencies handed to `ops::rope`, with
//! Hugging Face's default, linear and llama3 (Llama 3.1) frequency scaling, and llama.cpp's
//! per-frequency factors (a GGUF file's `rope_freqs.weight`, how it stores llama3 scaling).

/// How the rotary frequencies are rescaled for contexts longer than the model was trained on.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor` (equivalently, every frequency).
    Linear {
        factor: f64,
    },
    /// Llama 3.1: low frequencies divided by `factor`, high ones kept, a smooth ramp between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// llama.cpp's frequency factors: frequency `i` divided by `factors[i]` (one per rotated
    /// pair, `rotary_dim / 2` of them; the loader checks the length).
    Factors(Vec<f32>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct RopeConfig {
    pub theta: f64,
    pub scaling: RopeScaling,
    /// How many leading dimensions of each head rotate (the whole head for the Llama family).
    pub rotary_dim: usize,
}

impl RopeConfig {
    /// `rotary_dim / 2` inverse frequencies, computed in f32 the way transformers does
    /// (`1 / theta^(2i/dim)` on float32 tensors), so the angles match its reference bit for bit
    /// as far as `powf` allows.
    pub fn inv_freq(&self) -> Vec<f32> {
        let dim = self.rotary_dim;
        let base = self.theta as f32;
        let plain = (0..dim / 2).map(|i| 1.0 / base.powf((2 * i) as f32 / dim as f32));
        match self.scaling {
            RopeScaling::None => plain.collect(),
            RopeScaling::Linear { factor } => plain.map(|f| f / factor as f32).collect(),
            RopeScaling::Factors(ref factors) => plain.zip(factors).map(|(f, r)| f / r).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let (factor, low, high, old) =
                    (factor as f32, low_freq_factor as f32, high_freq_factor as f32, old as f32);
                let low_freq_wavelen = old / low;
                let high_freq_wavelen = old / high;
                plain
                    .map(|f| {
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        if wavelen < high_freq_wavelen {
                            f
                        } else if wavelen > low_freq_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        }
    }
}
