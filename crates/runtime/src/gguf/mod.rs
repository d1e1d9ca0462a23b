//! GGUF files: the container ([`reader`]), tensor types and dequantisation ([`quant`]),
//! encoders and a writer for making files ([`encode`], [`writer`]), the tokenizer from metadata
//! ([`tokenizer`]; SentencePiece ones in [`spm`]), and the Llama-family model loader ([`model`]).

pub mod encode;
pub mod model;
pub mod quant;
pub mod reader;
pub mod spm;
pub mod tokenizer;
pub mod writer;

pub use model::load_gguf;
pub use quant::GgmlType;
pub use reader::{GgufFile, GgufValue, TensorInfo};
pub use writer::GgufWriter;
