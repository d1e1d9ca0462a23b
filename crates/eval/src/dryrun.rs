//! `ragtune compare --dry-run`: before anything runs, the number of questions, the training
//! tokens of every fine-tuned arm, and an estimated wall time from a short measured
//! calibration on the config's own model and device — a few answers (closed book and with
//! `k` retrieved passages, options scored and the free answer generated, as the run does) and
//! three training steps. Nothing is written.
//!
//! The estimate: answers × their measured time per arm (and the forgetting probe before and
//! after each adapter), plus training tokens × the measured seconds per training token, plus
//! one update per arm (training on 10% of the corpus for the fine-tuned arms). It ignores what
//! is cheap next to those (indexing, the bootstrap) and assumes the machine is otherwise idle.

use std::path::Path;
use std::time::Instant;

use ragtune_trainer::data::{Example, pack};
use serde::Serialize;

use crate::config::{Arm, ExperimentConfig};
use crate::error::{EvalError, Result};
use crate::prompt;
use crate::run::answer::{answer, stop_tokens};
use crate::run::train::{document_example, train_lora};
use crate::run::{self, update::UPDATE_SHARE};

/// One arm's share of the estimate.
#[derive(Clone, Debug, Serialize)]
pub struct ArmEstimate {
    pub arm: Arm,
    /// Tokens the arm's set-up training processes (batches × padded length), 0 without
    /// training; ft+rag shows ft's (its adapter).
    pub train_tokens: u64,
    /// Answering, training and one update (seconds); ft+rag's training is counted under ft
    /// when both run.
    pub seconds: f64,
}

/// What `--dry-run` prints.
#[derive(Clone, Debug, Serialize)]
pub struct DryRun {
    pub questions: usize,
    pub corpus_passages: usize,
    /// Measured: one answer closed book and one with the retrieved passages (ms), and one
    /// training token (seconds).
    pub closed_book_answer_ms: f64,
    pub rag_answer_ms: f64,
    pub train_seconds_per_token: f64,
    pub arms: Vec<ArmEstimate>,
    /// Loading and calibration excluded.
    pub estimated_seconds: f64,
}

/// Tokens a training run over `rows` (each of `len` tokens, at most `max_seq`) processes in
/// `epochs` passes of `batch` rows: whole batches, padded to the longest row.
fn train_tokens(rows: usize, len: usize, epochs: usize, batch: usize) -> u64 {
    let steps = (rows * epochs.max(1)).div_ceil(batch.max(1));
    (steps * batch.max(1) * len) as u64
}

/// Estimate the run `config_path` describes (see the module doc).
pub fn dry_run(config_path: &Path) -> Result<DryRun> {
    let config = ExperimentConfig::from_file(config_path)?;
    let task = config.task()?;
    let settings = config.run_settings();
    run::check_arms(&settings.arms, &task)?;
    let device = config.model.device()?;
    let (model, tok) = ragtune_runtime::loader::load_causal_lm_as(
        &config.model.path,
        config.model.dtype.precision(&device),
        device,
    )?;
    let eos =
        *model.config.eos_token_ids.first().ok_or_else(|| {
            EvalError::config("the model's config has no eos_token_id: answers could not end")
        })?;
    let stops = stop_tokens(&model, &tok)?;
    let lora = &settings.lora;
    let max_seq = lora.max_seq.min(model.max_context()).max(2);

    // Calibration: up to eight questions each way, the first two a warm-up, the median kept.
    let probe: Vec<_> = task.questions.iter().take(8).collect();
    let k = settings.rag_k.max(1).min(task.corpus.len());
    let time_answers = |with_passages: bool| -> Result<f64> {
        let mut times = Vec::new();
        for q in &probe {
            let text = if with_passages {
                let texts: Vec<&str> = task.corpus.iter().take(k).map(|p| p.text.as_str()).collect();
                prompt::with_passages(&texts, &q.question)
            } else {
                prompt::closed_book(&q.question)
            };
            let start = Instant::now();
            answer(&model, &tok, &text, &q.choices, settings.max_new_tokens, &stops)?;
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
        if times.len() > 2 {
            times.drain(..2);
        }
        Ok(crate::run::update::percentile(&times, 0.5).unwrap_or(0.0))
    };
    let closed_ms = time_answers(false)?;
    let retrieving = settings.arms.iter().any(|a| a.retrieves());
    let rag_ms = if retrieving { time_answers(true)? } else { 0.0 };

    // Documents, packed as the run packs them.
    let docs = |rounds: usize| -> Result<Vec<Example>> {
        let extra = task.paraphrases.iter().take(rounds).flatten();
        task.corpus.iter().chain(extra).map(|p| document_example(&tok, &p.text, eos)).collect()
    };
    let corpus_rows = pack(&docs(0)?, max_seq);
    // Training: three steps; the first (which also sets the trainer up) is not counted.
    let per_token = {
        let batch = lora.batch_size.max(1);
        let rows: Vec<Example> = corpus_rows.iter().cycle().take(3 * batch).cloned().collect();
        let len = rows.iter().map(|r| r.ids.len()).max().unwrap_or(1);
        let mut ends = Vec::new();
        let trained = train_lora(&model, rows, false, 1, lora, |_, _, _| ends.push(Instant::now()))?;
        match (ends.first(), ends.last()) {
            (Some(first), Some(last)) if ends.len() > 1 => {
                last.duration_since(*first).as_secs_f64() / ((ends.len() - 1) * batch * len) as f64
            }
            _ => trained.seconds / trained.tokens.max(1) as f64,
        }
    };
    let doc_tokens = |rows: &[Example], epochs: usize| {
        let len = rows.iter().map(|r| r.ids.len()).max().unwrap_or(0);
        train_tokens(rows.len(), len, epochs, lora.batch_size)
    };
    let update_rows = ((corpus_rows.len() as f64 * UPDATE_SHARE).ceil() as usize).max(1);

    let n = task.questions.len() as f64;
    let old = task.old_questions.iter().filter(|q| !q.choices.is_empty()).count() as f64;
    // ft+rag uses ft's adapter: trained (and updated) once, counted under ft when both run.
    let shares_ft = |a: Arm| a == Arm::FtRag && settings.arms.contains(&Arm::Ft);
    let mut arms = Vec::new();
    let ft_tokens = doc_tokens(&corpus_rows, lora.epochs);
    let ft_update = train_tokens(update_rows, max_seq, lora.epochs, lora.batch_size);
    for &arm in &settings.arms {
        // Set-up training tokens, other training tokens (the update, the paraphrase curve),
        // answering time.
        let (tokens, update, answers_ms) = match arm {
            Arm::Base => (0, 0, n * closed_ms),
            Arm::Rag => (0, 0, n * rag_ms),
            Arm::Ft => (ft_tokens, ft_update, (n + old) * closed_ms),
            Arm::FtRag if shares_ft(arm) => (ft_tokens, 0, n * rag_ms),
            Arm::FtRag => (ft_tokens, ft_update, n * rag_ms + old * closed_ms),
            Arm::FtPar => {
                let rows = pack(&docs(task.paraphrases.len())?, max_seq);
                let tokens = doc_tokens(&rows, lora.epochs);
                // The paraphrase curve's extra runs: trained and answered, timed with this arm.
                let mut extra = 0;
                let mut answered = n + old;
                for &c in &settings.paraphrase_curve {
                    if c > 0 && c < task.paraphrases.len() {
                        extra += doc_tokens(&pack(&docs(c)?, max_seq), lora.epochs);
                        answered += n;
                    }
                }
                let update = ((rows.len() as f64 * UPDATE_SHARE).ceil() as usize).max(1);
                (
                    tokens,
                    extra + train_tokens(update, max_seq, lora.epochs, lora.batch_size),
                    answered * closed_ms,
                )
            }
            Arm::Raft => {
                // Question + gold and distractor passages → answer, cut at the model's context.
                let mean_passage = corpus_rows.iter().map(|r| r.ids.len()).sum::<usize>() as f64
                    / task.corpus.len().max(1) as f64;
                let len = ((settings.raft_distractors + 1) as f64 * mean_passage + 32.0)
                    .min(model.max_context() as f64) as usize;
                (
                    train_tokens(task.raft_train.len(), len, lora.raft_epochs, lora.batch_size),
                    0,
                    n * rag_ms + old * closed_ms,
                )
            }
        };
        // ft+rag's training is ft's when both run: its time is counted under ft.
        let trained = if shares_ft(arm) { 0 } else { tokens + update };
        let seconds = answers_ms / 1e3 + trained as f64 * per_token;
        arms.push(ArmEstimate { arm, train_tokens: tokens, seconds });
    }
    let forgetting_before = if arms.iter().any(|a| a.train_tokens > 0) { old * closed_ms / 1e3 } else { 0.0 };
    let estimated_seconds = arms.iter().map(|a| a.seconds).sum::<f64>() + forgetting_before;
    Ok(DryRun {
        questions: task.questions.len(),
        corpus_passages: task.corpus.len(),
        closed_book_answer_ms: closed_ms,
        rag_answer_ms: rag_ms,
        train_seconds_per_token: per_token,
        arms,
        estimated_seconds,
    })
}
