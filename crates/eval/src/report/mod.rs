//! Results of a run as data ([`results`]), and what is rendered from them.

pub mod results;

pub use results::*;
