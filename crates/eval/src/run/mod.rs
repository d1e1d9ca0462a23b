//! Running the experiment: every arm answers the same questions, and what each costs is
//! measured on the way.
//!
//! Arms (ids as in the report): `base` (closed book), `rag` (top-k retrieved passages before the
//! question), `ft` (LoRA on the corpus, closed book), `ft-par` (LoRA on the corpus and its extra
//! paraphrases), `ft+rag` (the `ft` adapter with retrieved passages), `raft` (LoRA on question +
//! the gold passage + distractors → answer, then answering with retrieved passages). Adapters
//! are attached to the one base model in turn and detached after, so the base is loaded once.
//! Forgetting is the closed-book multiple-choice accuracy on the task's `old_questions` with
//! and without each adapter.
//!
//! Classification and house-format tasks ([`TaskKind`]) run `base`, `rag`, `ft` and `ft+rag`
//! with their own prompts ([`prompt::classify`], [`prompt::house`]): `rag` retrieves the k
//! nearest *training* examples as demonstrations, `ft` learns input → target from every
//! training example (closed-prompt → label or output, unpacked). A label is the
//! highest-likelihood one of the label set (nothing is generated); a house-format output is
//! generated greedily with a budget of the longest training output plus [`FORMAT_SLACK`] tokens.

pub mod answer;
pub mod memory;
pub mod seeds;
pub mod train;
pub mod tuning;
pub mod update;

use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ragtune_runtime::{LlamaModel, Tokenizer};
use ragtune_trainer::LoraAdapter;
use ragtune_trainer::data::Example;
use rand::SeedableRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::Arm;
use crate::embed::Embedder;
use crate::error::{EvalError, Result};
use crate::metrics;
use crate::prompt;
use crate::report::{ArmResult, Breakdown, Cost, Forgetting, ParaphrasePoint, QuestionOutcome, Scores};
use crate::retrieve::Retriever;
use crate::task::{Passage, QaItem, Task, TaskKind};
use answer::{Answer, answer, stop_tokens};
use memory::PeakMemory;
pub use train::LoraSettings;
use train::{Trained, answer_example, document_example, train_lora};
pub use tuning::{Tuning, TuningSettings};

/// Tokens a house-format output may run past the longest training output.
pub const FORMAT_SLACK: usize = 8;

/// What to run and how.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// The arms to run (reported in the order of [`Arm::ALL`]).
    pub arms: Vec<Arm>,
    /// Passages retrieved per question.
    pub rag_k: usize,
    /// Distractor passages per RAFT training example.
    pub raft_distractors: usize,
    /// Share of RAFT examples whose passages include the gold one (the rest: distractors only).
    pub raft_gold_share: f64,
    pub lora: LoraSettings,
    /// Free-answer budget (0: multiple choice only).
    pub max_new_tokens: usize,
    /// Bootstrap resamples for every interval.
    pub bootstrap: usize,
    pub seed: u64,
    /// Extra FT runs on the corpus plus the first `n` paraphrase rounds, for the
    /// accuracy-vs-paraphrases curve (0 and all rounds come from `ft` and `ft-par`).
    pub paraphrase_curve: Vec<usize>,
    /// No progress bars (tests).
    pub quiet: bool,
    /// The grids tried on the dev split ([`tuning`]); `None` or no dev questions: the settings
    /// above are used as they are.
    #[serde(default)]
    pub tuning: Option<TuningSettings>,
    /// Training seeds per fine-tuned arm ([`seeds`]); 1: one adapter, intervals over questions.
    #[serde(default = "one")]
    pub seeds: usize,
}

fn one() -> usize {
    1
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            arms: Arm::ALL.to_vec(),
            rag_k: 3,
            raft_distractors: 2,
            raft_gold_share: 0.8,
            lora: LoraSettings::default(),
            max_new_tokens: 12,
            bootstrap: 1000,
            seed: 0,
            paraphrase_curve: Vec::new(),
            quiet: false,
            tuning: None,
            seeds: 1,
        }
    }
}

/// What a run produced, before findings and run information are added.
pub struct RunOutput {
    pub arms: Vec<ArmResult>,
    pub paraphrase_curve: Vec<ParaphrasePoint>,
    /// What was tried on dev and chosen, when the run tuned.
    pub tuning: Option<Tuning>,
}

/// Check that every requested arm is known and has the data it needs.
pub fn check_arms(arms: &[Arm], task: &Task) -> Result<()> {
    if arms.is_empty() {
        return Err(EvalError::config(format!("no arms to run; choose from {}", Arm::list(&Arm::ALL))));
    }
    for &a in arms {
        if !task.kind.arms().contains(&a) {
            return Err(EvalError::config(format!(
                "arm `{a}` is for knowledge QA; a {} task runs {}",
                task.kind.id(),
                Arm::list(task.kind.arms())
            )));
        }
        if a.uses_paraphrases() && task.paraphrases.is_empty() {
            return Err(EvalError::config(format!(
                "arm `{a}` needs paraphrases of the corpus ([data] paraphrases = [...]); drop the arm or add them"
            )));
        }
        if a.uses_raft_train() && task.raft_train.is_empty() {
            return Err(EvalError::config(format!(
                "arm `{a}` needs question → answer training pairs with sources ([data] raft_train); drop the arm or add them"
            )));
        }
    }
    if task.questions.is_empty() {
        return Err(EvalError::config("the task has no questions to answer"));
    }
    if task.corpus.is_empty() {
        return Err(EvalError::config("the task has an empty corpus"));
    }
    Ok(())
}

struct Runner<'a> {
    model: &'a mut LlamaModel,
    tok: &'a Tokenizer,
    task: &'a Task,
    embedder: &'a dyn Embedder,
    settings: &'a RunSettings,
    workdir: PathBuf,
    stops: Vec<u32>,
    eos: u32,
    bars: MultiProgress,
    memory: PeakMemory,
    /// Tokens an answer may generate: the settings' budget for QA, none for classification
    /// (labels are scored), the longest training output plus [`FORMAT_SLACK`] for house format.
    answer_budget: usize,
    /// Passages (or demonstrations) retrieved per question: the settings' `rag_k`, or the one
    /// chosen on dev.
    rag_k: usize,
    /// Each dev question's passages at the largest k tried (tuning only).
    dev_hits: Vec<Vec<usize>>,
    /// The LoRA recipe each fine-tuned arm ended with (the tuned learning rate and epochs).
    recipes: Vec<(Arm, LoraSettings)>,
    tuning: Tuning,
    /// Per arm, the test outcomes of every extra training seed ([`seeds`]).
    seed_outcomes: Vec<(Arm, Vec<Vec<QuestionOutcome>>)>,
}

/// Retrieval for every question: passage indices and the time each search took.
struct Retrieved {
    passages: Vec<Vec<usize>>,
    ms: Vec<f64>,
    setup_seconds: f64,
    index_bytes: u64,
    /// Peaks while embedding, indexing and searching (the index is dropped after): the arms
    /// that answer with these passages report the larger of these and their own.
    peak_host_bytes: u64,
    peak_device_bytes: Option<u64>,
}

/// Run the requested arms on `task`. `workdir` receives the artifacts whose size the report
/// quotes (the index file, the adapters).
pub fn run(
    model: &mut LlamaModel,
    tok: &Tokenizer,
    task: &Task,
    embedder: &dyn Embedder,
    settings: &RunSettings,
    workdir: &Path,
) -> Result<RunOutput> {
    check_arms(&settings.arms, task)?;
    std::fs::create_dir_all(workdir).map_err(|e| EvalError::io(workdir, e))?;
    let eos =
        *model.config.eos_token_ids.first().ok_or_else(|| {
            EvalError::config("the model's config has no eos_token_id: answers could not end")
        })?;
    let stops = stop_tokens(model, tok)?;
    let bars = MultiProgress::with_draw_target(if settings.quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let memory = PeakMemory::new(&model.device);
    let answer_budget = match task.kind {
        TaskKind::Qa => settings.max_new_tokens,
        TaskKind::Classify => 0,
        TaskKind::Format => {
            let mut longest = 0;
            for p in &task.corpus {
                longest =
                    longest.max(tok.encode(&prompt::answer(p.target.as_deref().unwrap_or("")), false)?.len());
            }
            longest + FORMAT_SLACK
        }
    };
    let mut r = Runner {
        model,
        tok,
        task,
        embedder,
        settings,
        workdir: workdir.to_path_buf(),
        stops,
        eos,
        bars,
        memory,
        answer_budget,
        rag_k: settings.rag_k.max(1),
        dev_hits: Vec::new(),
        recipes: Vec::new(),
        tuning: Tuning::default(),
        seed_outcomes: Vec::new(),
    };
    r.run()
}

fn wants(settings: &RunSettings, arm: Arm) -> bool {
    settings.arms.contains(&arm)
}

impl Runner<'_> {
    fn run(&mut self) -> Result<RunOutput> {
        let s = self.settings;
        let mut arms = Vec::new();
        let retrieving = s.arms.iter().any(|a| a.retrieves());
        if self.tuning() {
            self.tune_retrieval(retrieving)?;
        }
        let retrieved = if retrieving { Some(self.retrieve()?) } else { None };
        let fine_tuning = s.arms.iter().any(|a| a.fine_tuned());
        let old_before = if fine_tuning && !self.task.old_questions.is_empty() {
            Some(self.old_accuracy("forgetting probe, base")?)
        } else {
            None
        };
        if wants(s, Arm::Base) {
            self.memory.reset();
            let (outcomes, cost) = self.evaluate(Arm::Base.as_str(), None)?;
            let desc = match self.task.kind {
                TaskKind::Qa => "closed book: the base model alone",
                TaskKind::Classify => "zero-shot: each label scored after an instruction listing the labels",
                TaskKind::Format => "zero-shot: an instruction naming the house format",
            };
            arms.push(self.arm(Arm::Base, desc, outcomes, cost, None)?);
        }
        if wants(s, Arm::Rag) {
            let ret = retrieved.as_ref().expect("retrieval ran");
            self.memory.reset();
            let (outcomes, mut cost) = self.evaluate(Arm::Rag.as_str(), Some(ret))?;
            cost.setup_seconds = ret.setup_seconds;
            cost.artifact_bytes = ret.index_bytes;
            let desc = match self.task.kind {
                TaskKind::Qa => format!("top-{} retrieved passages before the question", self.rag_k),
                _ => format!("the top-{} retrieved training examples as demonstrations", self.rag_k),
            };
            arms.push(self.arm(Arm::Rag, &desc, outcomes, cost, None)?);
        }
        let mut ft_scores = None;
        if wants(s, Arm::Ft) || wants(s, Arm::FtRag) {
            self.memory.reset();
            let (examples, pack) = match self.task.kind {
                TaskKind::Qa => (self.documents(0)?, true),
                _ => (self.labelled_examples(&self.task.corpus)?, false),
            };
            let trained = self.train_arm(Arm::Ft, examples.clone(), pack, &s.lora, false)?;
            if s.seeds > 1 {
                let mut evals: Vec<(Arm, Option<&Retrieved>)> = Vec::new();
                if wants(s, Arm::Ft) {
                    evals.push((Arm::Ft, None));
                }
                if wants(s, Arm::FtRag) {
                    evals.push((Arm::FtRag, retrieved.as_ref()));
                }
                self.extra_seeds(&examples, pack, &self.recipe(Arm::Ft), &evals)?;
            }
            let bytes = self.save_adapter(Arm::Ft, &trained.adapter)?;
            self.attach(&trained.adapter)?;
            let forgetting = self.forgetting(old_before.as_ref(), Arm::Ft)?;
            if wants(s, Arm::Ft) {
                let (outcomes, cost) = self.evaluate(Arm::Ft.as_str(), None)?;
                let cost = Cost {
                    setup_seconds: trained.seconds,
                    artifact_bytes: bytes,
                    train_tokens: trained.tokens,
                    ..cost
                };
                let recipe = self.recipe_text(Arm::Ft);
                let desc = match self.task.kind {
                    TaskKind::Qa => format!("LoRA r={} on the corpus, {recipe}; closed book", s.lora.r),
                    kind => format!(
                        "LoRA r={} on the {} training examples (input → {}), {recipe}; no demonstrations",
                        s.lora.r,
                        self.task.corpus.len(),
                        if kind == TaskKind::Classify { "label" } else { "output" },
                    ),
                };
                let arm = self.arm(Arm::Ft, &desc, outcomes, cost, forgetting.clone())?;
                ft_scores = Some(arm.overall.clone());
                arms.push(arm);
            }
            if wants(s, Arm::FtRag) {
                let ret = retrieved.as_ref().expect("retrieval ran");
                let (outcomes, cost) = self.evaluate(Arm::FtRag.as_str(), Some(ret))?;
                let cost = Cost {
                    setup_seconds: trained.seconds + ret.setup_seconds,
                    artifact_bytes: bytes + ret.index_bytes,
                    train_tokens: trained.tokens,
                    ..cost
                };
                let desc = match self.task.kind {
                    TaskKind::Qa => "the ft adapter, answering with retrieved passages".to_string(),
                    _ => format!("the ft adapter, with the top-{} retrieved training examples", self.rag_k),
                };
                arms.push(self.arm(Arm::FtRag, &desc, outcomes, cost, forgetting)?);
            }
            self.detach();
        }
        let rounds = self.task.paraphrases.len();
        let mut curve = Vec::new();
        // The paraphrase curve is knowledge QA's (labelled tasks have no paraphrase rounds).
        if let Some(scores) = ft_scores.as_ref().filter(|_| self.task.kind == TaskKind::Qa) {
            curve.push(ParaphrasePoint { paraphrases: 0, scores: scores.clone() });
        }
        if wants(s, Arm::FtPar) {
            let mut extra: Vec<usize> =
                s.paraphrase_curve.iter().copied().filter(|&n| n > 0 && n < rounds).collect();
            extra.sort_unstable();
            extra.dedup();
            for n in extra {
                let docs = self.documents(n)?;
                let trained = self.train(&format!("ft, {n} paraphrases"), docs, true, s.lora.epochs)?;
                self.attach(&trained.adapter)?;
                let (outcomes, _) = self.evaluate(&format!("ft, {n} paraphrases"), None)?;
                self.detach();
                curve.push(ParaphrasePoint { paraphrases: n, scores: self.scores(&outcomes)? });
            }
            self.memory.reset();
            let docs = self.documents(rounds)?;
            let trained = self.train_arm(Arm::FtPar, docs.clone(), true, &s.lora, false)?;
            if s.seeds > 1 {
                self.extra_seeds(&docs, true, &self.recipe(Arm::FtPar), &[(Arm::FtPar, None)])?;
            }
            let bytes = self.save_adapter(Arm::FtPar, &trained.adapter)?;
            self.attach(&trained.adapter)?;
            let forgetting = self.forgetting(old_before.as_ref(), Arm::FtPar)?;
            let (outcomes, cost) = self.evaluate(Arm::FtPar.as_str(), None)?;
            self.detach();
            let cost = Cost {
                setup_seconds: trained.seconds,
                artifact_bytes: bytes,
                train_tokens: trained.tokens,
                ..cost
            };
            let desc = format!(
                "LoRA r={} on the corpus + {rounds} paraphrase rounds, {}; closed book",
                s.lora.r,
                self.recipe_text(Arm::FtPar)
            );
            let arm = self.arm(Arm::FtPar, &desc, outcomes, cost, forgetting)?;
            curve.push(ParaphrasePoint { paraphrases: rounds, scores: arm.overall.clone() });
            arms.push(arm);
        }
        if wants(s, Arm::Raft) {
            let ret = retrieved.as_ref().expect("retrieval ran");
            self.memory.reset();
            let examples = self.raft_examples()?;
            // RAFT's examples are the retrieval prompts the adapter reads at answer time, which
            // fit the model's context there: they are cut at that context, not at max_seq, so
            // that no passage text the adapter must learn to read is dropped.
            let raft = LoraSettings {
                epochs: s.lora.raft_epochs,
                max_seq: self.model.max_context(),
                ..s.lora.clone()
            };
            let trained = self.train_arm(Arm::Raft, examples.clone(), false, &raft, true)?;
            if s.seeds > 1 {
                self.extra_seeds(&examples, false, &self.recipe(Arm::Raft), &[(Arm::Raft, Some(ret))])?;
            }
            let bytes = self.save_adapter(Arm::Raft, &trained.adapter)?;
            self.attach(&trained.adapter)?;
            let forgetting = self.forgetting(old_before.as_ref(), Arm::Raft)?;
            let (outcomes, cost) = self.evaluate(Arm::Raft.as_str(), Some(ret))?;
            self.detach();
            let cost = Cost {
                setup_seconds: trained.seconds + ret.setup_seconds,
                artifact_bytes: bytes + ret.index_bytes,
                train_tokens: trained.tokens,
                ..cost
            };
            let desc = format!(
                "LoRA on question + gold passage + {} distractors → answer ({}); answers with retrieved passages",
                s.raft_distractors,
                self.recipe_text(Arm::Raft)
            );
            arms.push(self.arm(Arm::Raft, &desc, outcomes, cost, forgetting)?);
        }
        self.measure_updates(&mut arms)?;
        curve.sort_by_key(|p| p.paraphrases);
        arms.sort_by_key(ArmResult::as_arm);
        let tuning = self.tuning().then(|| std::mem::take(&mut self.tuning));
        Ok(RunOutput { arms, paraphrase_curve: curve, tuning })
    }

    fn bar(&self, len: usize, label: &str) -> ProgressBar {
        let bar = self.bars.add(ProgressBar::new(len as u64));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} {msg} ({eta})")
                .expect("a valid progress template")
                .progress_chars("=> "),
        );
        bar.set_prefix(label.to_string());
        bar
    }

    /// Index the corpus and retrieve for every question, one search per question (so each
    /// question's retrieval time is its own).
    fn retrieve(&mut self) -> Result<Retrieved> {
        let bar = self.bar(self.task.questions.len(), "retrieval");
        self.memory.reset();
        let start = Instant::now();
        let retriever = Retriever::build(self.embedder, &self.task.corpus, &self.model.device)?;
        let setup_seconds = start.elapsed().as_secs_f64();
        let index_bytes = retriever.save(&self.workdir.join("corpus.rtidx"))?;
        let k = self.rag_k;
        let (mut passages, mut ms) = (Vec::new(), Vec::new());
        for q in &self.task.questions {
            let t = Instant::now();
            let hits = retriever.search(self.embedder, &[q.question.as_str()], k)?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            passages.push(hits.into_iter().next().unwrap_or_default().into_iter().map(|(i, _)| i).collect());
            bar.inc(1);
        }
        drop(retriever);
        bar.finish_and_clear();
        Ok(Retrieved {
            passages,
            ms,
            setup_seconds,
            index_bytes,
            peak_host_bytes: self.memory.peak(),
            peak_device_bytes: self.memory.device_peak(),
        })
    }

    /// Answer every question, closed book or with the retrieved passages.
    fn evaluate(
        &mut self,
        label: &str,
        retrieved: Option<&Retrieved>,
    ) -> Result<(Vec<QuestionOutcome>, Cost)> {
        let questions = &self.task.questions;
        let bar = self.bar(questions.len(), label);
        let mut outcomes = Vec::with_capacity(questions.len());
        let (mut prefill, mut decode, mut retrieval, mut tokens) = (0.0, 0.0, 0.0, 0usize);
        let mut latencies = Vec::with_capacity(questions.len());
        for (i, q) in questions.iter().enumerate() {
            let mut latency = 0.0;
            let (text, gold_found) = match retrieved {
                None => (self.prompt(q, &[]), None),
                Some(r) => {
                    retrieval += r.ms[i];
                    latency += r.ms[i];
                    let found = (!q.sources.is_empty())
                        .then(|| r.passages[i].iter().any(|&p| q.sources.contains(&self.task.corpus[p].id)));
                    (self.prompt(q, &r.passages[i]), found)
                }
            };
            let a: Answer = answer(self.model, self.tok, &text, &q.choices, self.answer_budget, &self.stops)?;
            prefill += a.prefill_ms;
            decode += a.decode_ms;
            latencies.push(latency + a.prefill_ms + a.decode_ms);
            tokens += a.prompt_tokens + a.generated_tokens;
            outcomes.push(outcome(self.task, q, &a, gold_found));
            bar.inc(1);
        }
        bar.finish_and_clear();
        let n = questions.len().max(1) as f64;
        let (mut peak_host_bytes, mut peak_device_bytes) = (self.memory.peak(), self.memory.device_peak());
        if let Some(r) = retrieved {
            peak_host_bytes = peak_host_bytes.max(r.peak_host_bytes);
            peak_device_bytes = peak_device_bytes.max(r.peak_device_bytes);
        }
        let cost = Cost {
            peak_host_bytes,
            peak_device_bytes,
            latency_ms: (retrieval + prefill + decode) / n,
            retrieval_ms: retrieval / n,
            prefill_ms: prefill / n,
            decode_ms: decode / n,
            tokens_per_answer: tokens as f64 / n,
            latency_p50_ms: update::percentile(&latencies, 0.50),
            latency_p95_ms: update::percentile(&latencies, 0.95),
            ..Cost::default()
        };
        Ok((outcomes, cost))
    }

    /// Closed-book multiple-choice correctness on the old questions (1.0 / 0.0 per question).
    fn old_accuracy(&mut self, label: &str) -> Result<Vec<f64>> {
        let old = &self.task.old_questions;
        let bar = self.bar(old.len(), label);
        let mut correct = Vec::with_capacity(old.len());
        for q in old {
            if q.choices.is_empty() {
                bar.inc(1);
                continue;
            }
            let a =
                answer(self.model, self.tok, &prompt::closed_book(&q.question), &q.choices, 0, &self.stops)?;
            correct.push(f64::from(u8::from(a.choice == q.correct)));
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(correct)
    }

    fn forgetting(&mut self, before: Option<&Vec<f64>>, arm: Arm) -> Result<Option<Forgetting>> {
        let Some(before) = before.filter(|b| !b.is_empty()) else { return Ok(None) };
        let after = self.old_accuracy(&format!("forgetting probe, {arm}"))?;
        let (n, seed) = (self.settings.bootstrap, self.settings.seed);
        Ok(Some(Forgetting {
            before: metrics::bootstrap_mean(before, n, seed)?,
            after: metrics::bootstrap_mean(&after, n, seed)?,
            change: metrics::paired_difference(&after, before, n, seed)?,
        }))
    }

    /// The prompt for `q` with the corpus passages `shown` (retrieved passages for QA,
    /// demonstrations for the labelled tasks; none: closed book / zero-shot).
    fn prompt(&self, q: &QaItem, shown: &[usize]) -> String {
        let corpus = &self.task.corpus;
        let demos: Vec<(&str, &str)> = shown
            .iter()
            .map(|&p| (corpus[p].text.as_str(), corpus[p].target.as_deref().unwrap_or("")))
            .collect();
        match (self.task.kind, &self.task.format) {
            (TaskKind::Classify, _) => prompt::classify(&self.task.labels, &demos, &q.question),
            (TaskKind::Format, Some(format)) => {
                prompt::house(&metrics::house::describe(format), &demos, &q.question)
            }
            _ if shown.is_empty() => prompt::closed_book(&q.question),
            _ => {
                let texts: Vec<&str> = demos.iter().map(|(t, _)| *t).collect();
                prompt::with_passages(&texts, &q.question)
            }
        }
    }

    /// Labelled training examples (classification, house format): the zero-shot prompt of each
    /// passage's text → its target.
    fn labelled_examples(&self, passages: &[Passage]) -> Result<Vec<Example>> {
        passages
            .iter()
            .map(|p| {
                let q = QaItem { id: p.id.clone(), question: p.text.clone(), ..QaItem::default() };
                let target = p.target.as_deref().unwrap_or_default();
                answer_example(self.tok, &self.prompt(&q, &[]), &prompt::answer(target), self.eos)
            })
            .collect()
    }

    /// The corpus plus the first `rounds` paraphrase rounds, as document examples.
    fn documents(&self, rounds: usize) -> Result<Vec<Example>> {
        let extra = self.task.paraphrases.iter().take(rounds).flatten();
        self.task.corpus.iter().chain(extra).map(|p| document_example(self.tok, &p.text, self.eos)).collect()
    }

    /// RAFT: each training question with its gold passage (in `raft_gold_share` of them) and
    /// distractors drawn from the rest of the corpus, shuffled, → the answer.
    fn raft_examples(&self) -> Result<Vec<Example>> {
        let s = self.settings;
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed ^ 0x5241_4654);
        let corpus = &self.task.corpus;
        let mut out = Vec::with_capacity(self.task.raft_train.len());
        for q in &self.task.raft_train {
            let gold: Vec<usize> = corpus
                .iter()
                .enumerate()
                .filter(|(_, p)| q.sources.contains(&p.id))
                .map(|(i, _)| i)
                .collect();
            let others: Vec<usize> = (0..corpus.len()).filter(|i| !gold.contains(i)).collect();
            let mut picked: Vec<usize> =
                others.choose_multiple(&mut rng, s.raft_distractors).copied().collect();
            let keep_gold = rand::Rng::random_bool(&mut rng, s.raft_gold_share.clamp(0.0, 1.0));
            match gold.choose(&mut rng) {
                Some(&g) if keep_gold => picked.push(g),
                _ => picked.extend(others.choose(&mut rng).copied()),
            }
            picked.shuffle(&mut rng);
            let texts: Vec<&str> = picked.iter().map(|&i| corpus[i].text.as_str()).collect();
            let text = prompt::with_passages(&texts, &q.question);
            out.push(answer_example(self.tok, &text, &prompt::answer(&q.answer), self.eos)?);
        }
        Ok(out)
    }

    fn train(&mut self, label: &str, examples: Vec<Example>, pack: bool, epochs: usize) -> Result<Trained> {
        let lora = LoraSettings { epochs, ..self.settings.lora.clone() };
        self.train_with(label, examples, pack, &lora)
    }

    /// Train an arm: over the dev grid when tuning ([`tuning`]; `with_passages`: dev questions
    /// are answered with their retrieved passages), else with `lora` as it is. The recipe it
    /// ends with is kept for its update and its description.
    fn train_arm(
        &mut self,
        arm: Arm,
        examples: Vec<Example>,
        pack: bool,
        lora: &LoraSettings,
        with_passages: bool,
    ) -> Result<Trained> {
        if !self.tuning() {
            self.recipes.push((arm, lora.clone()));
            return self.train_with(arm.as_str(), examples, pack, lora);
        }
        let (hits, k) = (self.dev_hits.clone(), self.rag_k);
        let shown = move |i: usize| -> Vec<usize> {
            if with_passages {
                hits.get(i).map(|h| h.iter().take(k).copied().collect()).unwrap_or_default()
            } else {
                Vec::new()
            }
        };
        let (trained, record) = self.train_tuned(arm, examples, pack, lora, &shown)?;
        let recipe = LoraSettings { lr: record.chosen_lr, epochs: record.chosen_epoch, ..lora.clone() };
        self.recipes.push((arm, recipe));
        self.tuning.arms.push(record);
        Ok(trained)
    }

    /// The recipe `arm` trained with (the configured one when it did not train).
    fn recipe(&self, arm: Arm) -> LoraSettings {
        self.recipes
            .iter()
            .find(|(a, _)| *a == arm)
            .map(|(_, l)| l.clone())
            .unwrap_or_else(|| self.settings.lora.clone())
    }

    /// "8 epochs" or "lr 1e-3, 3 epochs (chosen on dev)".
    fn recipe_text(&self, arm: Arm) -> String {
        let r = self.recipe(arm);
        if self.tuning.arms.iter().any(|t| t.arm == arm) {
            format!("lr {:e}, {} epochs (chosen on dev)", r.lr, r.epochs)
        } else {
            format!("{} epochs", r.epochs)
        }
    }

    /// Tuning's first step: retrieve for the dev questions at the largest k of the grid and,
    /// when a retrieving arm runs, choose k on dev.
    fn tune_retrieval(&mut self, retrieving: bool) -> Result<()> {
        let grid = self.settings.tuning.as_ref().map(|t| t.rag_k.clone()).unwrap_or_default();
        self.tuning.metric = self.dev_metric().to_string();
        self.tuning.dev_questions = self.task.dev_questions.len();
        let k_max =
            grid.iter().copied().chain([self.rag_k]).max().unwrap_or(1).min(self.task.corpus.len()).max(1);
        if retrieving {
            let retriever = Retriever::build(self.embedder, &self.task.corpus, &self.model.device)?;
            let mut hits = Vec::with_capacity(self.task.dev_questions.len());
            for q in &self.task.dev_questions {
                let found = retriever.search(self.embedder, &[q.question.as_str()], k_max)?;
                hits.push(found.into_iter().next().unwrap_or_default().into_iter().map(|(i, _)| i).collect());
            }
            self.dev_hits = hits;
        }
        if retrieving && !grid.is_empty() {
            let trials = self.tune_k(&self.dev_hits.clone(), &grid)?;
            let best = trials.iter().min_by(|a, b| b.dev_score.total_cmp(&a.dev_score).then(a.k.cmp(&b.k)));
            if let Some(best) = best {
                self.rag_k = best.k;
                self.tuning.rag_k = Some(best.k);
            }
            self.tuning.rag = trials;
        }
        Ok(())
    }

    fn train_with(
        &mut self,
        label: &str,
        examples: Vec<Example>,
        pack: bool,
        lora: &LoraSettings,
    ) -> Result<Trained> {
        let bar = self.bar(0, &format!("training {label}"));
        let trained = train_lora(self.model, examples, pack, lora.epochs, lora, |step, total, loss| {
            bar.set_length(total as u64);
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.3}"));
        })?;
        bar.finish_and_clear();
        Ok(trained)
    }

    fn save_adapter(&self, arm: Arm, adapter: &LoraAdapter) -> Result<u64> {
        let dir = self.workdir.join(format!("adapter-{arm}"));
        ragtune_trainer::peft::save_adapter(adapter, &dir, "ragtune-demo-base")?;
        let mut bytes = 0;
        for entry in std::fs::read_dir(&dir).map_err(|e| EvalError::io(&dir, e))? {
            let entry = entry.map_err(|e| EvalError::io(&dir, e))?;
            bytes += entry.metadata().map_err(|e| EvalError::io(&entry.path(), e))?.len();
        }
        Ok(bytes)
    }

    fn attach(&mut self, adapter: &LoraAdapter) -> Result<()> {
        adapter.attach(self.model)?;
        Ok(())
    }

    fn detach(&mut self) {
        ragtune_runtime::adapter::detach(self.model);
    }

    fn scores(&self, outcomes: &[QuestionOutcome]) -> Result<Scores> {
        let keys = metrics::ClusterKeys::of(&self.task.questions);
        Ok(metrics::clustered_scores_of(outcomes, &keys, self.settings.bootstrap, self.settings.seed)?)
    }

    fn arm(
        &self,
        id: Arm,
        description: &str,
        outcomes: Vec<QuestionOutcome>,
        cost: Cost,
        forgetting: Option<Forgetting>,
    ) -> Result<ArmResult> {
        let (n, seed) = (self.settings.bootstrap, self.settings.seed);
        let (overall, seed_means) = self.seeded_scores(id, &outcomes, self.scores(&outcomes)?)?;
        let qs = &self.task.questions;
        let phrasing: Vec<String> = qs.iter().map(|q| q.phrasing.clone().unwrap_or_default()).collect();
        let popularity: Vec<String> =
            qs.iter().map(|q| q.popularity.map(metrics::popularity_label).unwrap_or_default()).collect();
        let by = |labels: &[String]| -> Result<Vec<Breakdown>> {
            if labels.iter().all(String::is_empty) {
                Ok(Vec::new())
            } else {
                let keys = metrics::ClusterKeys::of(qs);
                Ok(metrics::clustered_breakdown(&outcomes, labels, &keys, n, seed)?)
            }
        };
        let found: Vec<f64> =
            outcomes.iter().filter_map(|o| o.retrieved_gold).map(|g| f64::from(u8::from(g))).collect();
        Ok(ArmResult {
            id: id.to_string(),
            description: description.to_string(),
            overall: overall.clone(),
            seed_means,
            by_phrasing: by(&phrasing)?,
            by_popularity: {
                // "1 document", "2–3 documents", "4+ documents": in the order of their counts.
                let mut b = by(&popularity)?;
                b.sort_by_key(|g| {
                    g.label.chars().take_while(char::is_ascii_digit).collect::<String>().parse::<u32>().ok()
                });
                b
            },
            retrieval_recall: if found.is_empty() {
                None
            } else {
                let keys = metrics::ClusterKeys::of(qs);
                let ids = outcomes.iter().filter(|o| o.retrieved_gold.is_some()).map(|o| o.id.as_str());
                Some(metrics::cluster_mean(&found, &keys.keys(ids), n, seed)?)
            },
            forgetting,
            cost,
            classes: match self.task.kind {
                TaskKind::Classify => {
                    let (labels, pairs) = metrics::scores::label_pairs(&outcomes, &self.task.labels);
                    (!pairs.is_empty())
                        .then(|| metrics::class_report(&pairs, &labels, n, seed))
                        .transpose()?
                }
                _ => None,
            },
            outcomes,
        })
    }
}

fn outcome(task: &Task, q: &QaItem, a: &Answer, retrieved_gold: Option<bool>) -> QuestionOutcome {
    let classified = task.kind == TaskKind::Classify;
    let house = match (&task.format, &a.text) {
        (Some(format), Some(text)) if task.kind == TaskKind::Format => {
            Some(metrics::house::score_output(format, text, &q.answer))
        }
        _ => None,
    };
    QuestionOutcome {
        gold_label: classified.then(|| q.answer.clone()),
        predicted_label: if classified { a.choice.and_then(|c| q.choices.get(c).cloned()) } else { None },
        format_valid: house.map(|(valid, _)| valid),
        field_match: house.map(|(_, share)| share),
        id: q.id.clone(),
        mc_correct: if q.choices.is_empty() { None } else { Some(a.choice == q.correct) },
        exact_match: a.text.as_ref().map(|t| metrics::exact_match(t, &q.answer)),
        token_f1: a.text.as_ref().map(|t| metrics::token_f1(t, &q.answer)),
        generated: a.text.clone(),
        retrieved_gold,
        cluster: q.sources.first().cloned(),
    }
}
