//! ragtune-eval: the RAG-vs-fine-tuning experiment.
//!
//! - [`builtin`]: the built-in base model's files, compiled in (the `ragtune-demo-base` crate
//!   holds the recipe that built them);
//! - [`world`]: a synthetic knowledge world, deterministic by seed — fictional people,
//!   organisations and places; documents in several phrasings; free-answer and multiple-choice
//!   questions with seen and held-out phrasings; entities of different popularity;
//! - [`qgen`]: questions generated from a user's documents, and the dev/test split;
//! - [`prompt`]: the text formats the base model was trained on and the arms use;
//! - [`metrics`]: exact match, token F1, recall@k, bootstrap intervals;
//! - [`report`]: the results as data, `report.md`, `report.json` and SVG charts;
//! - [`decision`]: from the measurements to "choose this, because": costs over a horizon, a
//!   recommendation with its reasons, the break-even volume.

pub mod builtin;
pub mod config;
pub mod decision;
pub mod dryrun;
pub mod embed;
pub mod error;
pub mod experiment;
pub mod export;
pub mod labelled;
pub mod machine;
pub mod metrics;
pub mod prompt;
pub mod qgen;
pub mod report;
pub mod retrieve;
pub mod run;
pub mod task;
pub mod userdata;
pub mod world;

pub use error::{EvalError, Result};
pub use task::{Passage, QaItem, Task};
