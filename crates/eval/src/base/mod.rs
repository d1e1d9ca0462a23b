//! The built-in base model of the experiment: a small Llama pretrained from scratch by
//! ragtune's own trainer (full mode). This first part holds the pieces that do not depend on the
//! world: [`tokenizer`] (byte-level BPE trained with the `tokenizers` crate), [`pretrain`]
//! (seeded initialisation, whole-example packing, the training loop) and [`save`] (the Hugging
//! Face folder). The mixture, validation and the build follow once the world lands.

pub mod pretrain;
pub mod save;
pub mod tokenizer;
