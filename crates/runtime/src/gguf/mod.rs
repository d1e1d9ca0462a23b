//! GGUF files: the container ([`reader`]), tensor types and dequantisation ([`quant`]),
//! encoders and a writer for making files ([`encode`], [`writer`]), the tokenizer from metadata
//! ([`tokenizer`]; SentencePiece ones in [`spm`]), and the Llama-family model loader ([`model`];
//! at the file's stored precision, quant blocks kept for the CPU, in [`stored`]).

pub mod encode;
pub mod model;
pub mod quant;
pub mod reader;
pub mod spm;
pub mod stored;
pub mod tokenizer;
pub mod writer;

pub use model::load_gguf;
pub use quant::GgmlType;
pub use reader::{GgufFile, GgufValue, TensorInfo};
pub use stored::load_gguf_stored;
pub use writer::GgufWriter;
