//! The literature's claims (as the design note EXPERIMENT.md summarises them), checked against
//! one run. Each finding has a measured difference with its bootstrap 95% interval, a verdict,
//! and one sentence written from the numbers — whichever way they fall.
//!
//! Every interval is a cluster bootstrap ([`crate::metrics::cluster`]): questions written from
//! the same source passage (their first `sources` entry) are resampled together, since they
//! share what makes them easy or hard; a question without a source is a cluster of its own.
//! Arm-vs-arm findings on right/wrong scores also carry the exact McNemar test and the minimum
//! detectable effect at this number of questions ([`crate::metrics::paired`]), and say "too few
//! questions to tell" when the interval includes zero and the observed difference is below
//! what these questions could detect.
//!
//! How each difference is computed (accuracy = multiple-choice accuracy by option likelihood
//! when both sides have it, else exact match of the generated answers):
//! - arm vs arm (RAG vs FT, FT with paraphrases vs FT, FT+RAG vs RAG, RAFT vs RAG): the questions
//!   both arms answered, matched by id; per-question difference; paired cluster bootstrap
//!   ([`cluster_paired_difference`]) — the question's difficulty cancels;
//! - forgetting: FT's `forgetting.change` as the runner measured it (after − before on the same
//!   old questions, paired);
//! - popularity: per question, RAG's gain over the base model (RAG − base, paired by id); the
//!   questions are bucketed by [`popularity_label`]; the finding is the least popular bucket's
//!   mean gain minus the most popular bucket's, with a bootstrap that resamples each bucket's
//!   clusters independently, or together when a passage has questions in both
//!   ([`cluster_group_difference`]: different questions, nothing to pair);
//! - phrasing: FT's accuracy on seen-phrasing questions minus held-out ones, resampled per group.
//!
//! A verdict is `Some(true)` when the 95% interval excludes zero in the claimed direction,
//! `Some(false)` when it excludes zero the other way, `None` when it straddles zero. A finding
//! whose arms (or labels) are missing is left out: `ragtune compare` may run any subset of arms.

use std::collections::HashMap;

use super::format::{negated, percent, percent_number, points, signed_points};
use super::results::{ArmResult, Finding, Interval, ParaphrasePoint, QuestionOutcome, Scores};
use crate::config::Arm;
use crate::metrics::{
    ClusterKeys, MetricsError, PairedTest, cluster_count, cluster_group_difference, cluster_mean,
    cluster_paired_difference, paired_test, popularity_label,
};
use crate::task::QaItem;
use crate::world::names::capitalise;

/// Every finding this run can speak to, in a fixed order. `questions` are the evaluation
/// questions (for their phrasing and popularity labels and their source clusters, matched to
/// outcomes by id); `resamples` and `seed` drive every bootstrap.
pub fn findings(
    arms: &[ArmResult],
    curve: &[ParaphrasePoint],
    questions: &[QaItem],
    resamples: usize,
    seed: u64,
) -> Result<Vec<Finding>, MetricsError> {
    let ctx = Ctx { arms, keys: ClusterKeys::of(questions), resamples, seed };
    let mut out = Vec::new();
    for comparison in &COMPARISONS {
        if let Some(mut f) = ctx.compare(comparison)? {
            if comparison.id == "paraphrases-help-ft"
                && let Some(s) = curve_sentence(curve)
            {
                f.sentence = format!("{} {s}", f.sentence);
            }
            out.push(f);
        }
        // Forgetting belongs beside the other FT findings, after the arm comparisons on new facts.
        if comparison.id == "raft-beats-rag" {
            out.extend(forgetting(arms));
        }
    }
    out.extend(ctx.popularity(questions)?);
    out.extend(ctx.phrasing(questions)?);
    Ok(out)
}

/// A claim that arm `a` scores higher than arm `b`.
struct Comparison {
    id: &'static str,
    claim: &'static str,
    a: Arm,
    b: Arm,
    /// Ends the sentence when `a` is ahead.
    agree: &'static str,
    /// Ends the sentence when `a` is behind.
    disagree: &'static str,
}

const COMPARISONS: [Comparison; 4] = [
    Comparison {
        id: "rag-beats-ft",
        claim: "Retrieval beats closed-book fine-tuning on new facts (Ovadia et al. 2023: 87.5% vs 50.4% \
                on current events with Mistral-7B).",
        a: Arm::Rag,
        b: Arm::Ft,
        agree: "as the literature reports",
        disagree: "the opposite of what the literature reports",
    },
    Comparison {
        id: "paraphrases-help-ft",
        claim: "Fine-tuning on paraphrases of the documents beats fine-tuning on the documents alone \
                (Ovadia et al. 2023: 50.4% → 58.8% with 10 paraphrases; Allen-Zhu & Li: knowledge is \
                extractable when it was seen in varied forms).",
        a: Arm::FtPar,
        b: Arm::Ft,
        agree: "so paraphrase augmentation helped, as the literature reports",
        disagree: "so paraphrase augmentation hurt here, unlike in the literature",
    },
    Comparison {
        id: "ft-rag-adds",
        claim: "The gains of fine-tuning and retrieval add up: FT+RAG beats RAG (Balaguer et al. 2024). \
                Ovadia et al. 2023 saw the opposite (81.0% vs 87.5%): fine-tuning can hurt the use of \
                retrieved context.",
        a: Arm::FtRag,
        b: Arm::Rag,
        agree: "so the gains added up, as Balaguer et al. report",
        disagree: "so fine-tuning hurt the use of retrieved context, as Ovadia et al. saw",
    },
    Comparison {
        id: "raft-beats-rag",
        claim: "Fine-tuning on questions with the golden document among distractors (RAFT) beats plain \
                RAG (Zhang et al. 2024).",
        a: Arm::Raft,
        b: Arm::Rag,
        agree: "as Zhang et al. report",
        disagree: "unlike in Zhang et al. (2024)",
    },
];

const CANNOT_TELL: &str = "the interval includes zero, so this run cannot tell";
const TOO_FEW: &str = "so there are too few questions to tell";

/// What is compared: option-likelihood accuracy, or exact match when there are no options.
#[derive(Clone, Copy, PartialEq)]
enum Metric {
    Choice,
    Exact,
}

impl Metric {
    fn of(self, o: &QuestionOutcome) -> Option<f64> {
        match self {
            Metric::Choice => o.mc_correct.map(|c| f64::from(u8::from(c))),
            Metric::Exact => o.exact_match,
        }
    }

    /// "91% (86–95%) of the 120 multiple-choice questions" — how a score reads in a sentence.
    fn phrase(self, iv: &Interval) -> String {
        match self {
            Metric::Choice => format!("{} of the {} multiple-choice questions", percent(iv), iv.n),
            Metric::Exact => format!("{} of the {} questions exactly", percent(iv), iv.n),
        }
    }
}

struct Ctx<'a> {
    arms: &'a [ArmResult],
    keys: ClusterKeys<'a>,
    resamples: usize,
    seed: u64,
}

impl Ctx<'_> {
    fn arm(&self, arm: Arm) -> Option<&ArmResult> {
        self.arms.iter().find(|a| a.is(arm))
    }

    /// The cluster of each question id, in order.
    fn keys<'b>(&'b self, ids: impl IntoIterator<Item = &'b str>) -> Vec<&'b str> {
        self.keys.keys(ids)
    }

    fn mean(&self, values: &[f64], keys: &[&str]) -> Result<Interval, MetricsError> {
        cluster_mean(values, keys, self.resamples, self.seed)
    }

    fn compare(&self, c: &Comparison) -> Result<Option<Finding>, MetricsError> {
        let (Some(a), Some(b)) = (self.arm(c.a), self.arm(c.b)) else { return Ok(None) };
        let Some((metric, pairs)) = paired(a, b) else { return Ok(None) };
        let (va, vb): (Vec<f64>, Vec<f64>) = pairs.iter().map(|(_, x, y)| (*x, *y)).unzip();
        let keys = self.keys(pairs.iter().map(|(id, _, _)| *id));
        let (ia, ib) = (self.mean(&va, &keys)?, self.mean(&vb, &keys)?);
        let d = cluster_paired_difference(&va, &vb, &keys, self.resamples, self.seed)?;
        let test = paired_test(&va, &vb, &keys);
        let clusters = cluster_count(&keys);
        let holds = verdict(&d);
        let (name_a, name_b) = (capitalise(c.a.prose_name()), c.b.prose_name().to_string());
        let scores = format!("{name_a} answered {}, {name_b} {}", metric.phrase(&ia), percent(&ib));
        let tail = match (holds, test) {
            (Some(true), _) => format!("{name_a} is ahead by {}, {}", points(&d), c.agree),
            (Some(false), _) => format!("{name_a} is behind by {}, {}", points(&negated(&d)), c.disagree),
            (None, Some(t)) if too_few(&t, &d) => format!(
                "a difference of {}; the interval includes zero and the difference is below the {} these \
                 questions can detect (80% power), {TOO_FEW}",
                points(&d),
                mde_points(t.min_detectable)
            ),
            (None, _) => format!("a difference of {}; {CANNOT_TELL}", points(&d)),
        };
        let mut sentence = format!("{scores}: {tail}.");
        if let Some(t) = &test {
            sentence.push(' ');
            sentence.push_str(&test_sentence(&name_a, &name_b, t, !(holds.is_none() && too_few(t, &d))));
        }
        if let Some(s) = cluster_sentence(d.n, clusters) {
            sentence.push(' ');
            sentence.push_str(&s);
        }
        Ok(Some(Finding {
            id: c.id.into(),
            claim: c.claim.into(),
            difference: Some(d),
            holds,
            sentence,
            paired_test: test,
            clusters: Some(clusters),
        }))
    }

    fn popularity(&self, questions: &[QaItem]) -> Result<Option<Finding>, MetricsError> {
        let (Some(rag), Some(base)) = (self.arm(Arm::Rag), self.arm(Arm::Base)) else { return Ok(None) };
        let Some((metric, pairs)) = paired(rag, base) else { return Ok(None) };
        let popularity: HashMap<&str, usize> =
            questions.iter().filter_map(|q| Some((q.id.as_str(), q.popularity?))).collect();
        // Buckets keyed by label, ordered by the least popularity seen in them: (label, least
        // popularity, gains, the gains' question ids).
        let mut buckets: Vec<(String, usize, Vec<f64>, Vec<&str>)> = Vec::new();
        for (id, r, b) in &pairs {
            let Some(&p) = popularity.get(id) else { continue };
            let label = popularity_label(p);
            match buckets.iter_mut().find(|(l, _, _, _)| *l == label) {
                Some((_, least, gains, ids)) => {
                    *least = (*least).min(p);
                    gains.push(r - b);
                    ids.push(id);
                }
                None => buckets.push((label, p, vec![r - b], vec![id])),
            }
        }
        buckets.sort_by_key(|(_, least, _, _)| *least);
        let (Some(rare), Some(popular)) = (buckets.first(), buckets.last()) else { return Ok(None) };
        if buckets.len() < 2 {
            return Ok(None);
        }
        let (k_rare, k_popular) = (self.keys(rare.3.iter().copied()), self.keys(popular.3.iter().copied()));
        let (g_rare, g_popular) = (self.mean(&rare.2, &k_rare)?, self.mean(&popular.2, &k_popular)?);
        let d =
            cluster_group_difference(&rare.2, &k_rare, &popular.2, &k_popular, self.resamples, self.seed)?;
        let clusters = cluster_count(&[k_rare.as_slice(), k_popular.as_slice()].concat());
        let holds = verdict(&d);
        let what = match metric {
            Metric::Choice => "multiple-choice accuracy",
            Metric::Exact => "exact match",
        };
        let scores = format!(
            "RAG's gain over the base model in {what} was {} on the {} questions about entities mentioned in \
             {} and {} on the {} about entities mentioned in {}",
            signed_points(&g_rare),
            g_rare.n,
            rare.0,
            signed_points(&g_popular),
            g_popular.n,
            popular.0
        );
        let tail = match holds {
            Some(true) => format!(
                "the gain is larger for the rarer entities by {}, as Soudani et al. report",
                points(&d)
            ),
            Some(false) => format!(
                "the gain is smaller for the rarer entities by {}, unlike in Soudani et al. (2024)",
                points(&negated(&d))
            ),
            None => format!("a difference of {}; {CANNOT_TELL}", points(&d)),
        };
        Ok(Some(subgroup_finding(
            "rag-helps-rare-entities-most",
            "Retrieval helps most for unpopular entities: its gain over the base model is larger \
             for rarely mentioned entities (Soudani et al. 2024).",
            d,
            holds,
            format!("{scores}: {tail}."),
            clusters,
        )))
    }

    fn phrasing(&self, questions: &[QaItem]) -> Result<Option<Finding>, MetricsError> {
        let Some(ft) = self.arm(Arm::Ft) else { return Ok(None) };
        let phrasing: HashMap<&str, &str> =
            questions.iter().filter_map(|q| Some((q.id.as_str(), q.phrasing.as_deref()?))).collect();
        let metric =
            if ft.outcomes.iter().any(|o| o.mc_correct.is_some()) { Metric::Choice } else { Metric::Exact };
        let (mut seen, mut held_out) = (Vec::new(), Vec::new());
        let (mut seen_ids, mut held_ids) = (Vec::new(), Vec::new());
        for o in &ft.outcomes {
            let Some(v) = metric.of(o) else { continue };
            match phrasing.get(o.id.as_str()) {
                Some(&"seen") => {
                    seen.push(v);
                    seen_ids.push(o.id.as_str());
                }
                Some(&"held-out") => {
                    held_out.push(v);
                    held_ids.push(o.id.as_str());
                }
                _ => {}
            }
        }
        if seen.is_empty() || held_out.is_empty() {
            return Ok(None);
        }
        let (k_seen, k_held) = (self.keys(seen_ids), self.keys(held_ids));
        let (i_seen, i_held) = (self.mean(&seen, &k_seen)?, self.mean(&held_out, &k_held)?);
        let d = cluster_group_difference(&seen, &k_seen, &held_out, &k_held, self.resamples, self.seed)?;
        let clusters = cluster_count(&[k_seen.as_slice(), k_held.as_slice()].concat());
        let holds = verdict(&d);
        let scores = match metric {
            Metric::Choice => format!(
                "Closed-book FT answered {} of the {} multiple-choice questions in seen phrasings and {} of the {} in \
                 held-out phrasings",
                percent(&i_seen),
                i_seen.n,
                percent(&i_held),
                i_held.n
            ),
            Metric::Exact => format!(
                "Closed-book FT answered {} of the {} questions in seen phrasings exactly and {} of the {} in held-out \
                 phrasings",
                percent(&i_seen),
                i_seen.n,
                percent(&i_held),
                i_held.n
            ),
        };
        let tail = match holds {
            Some(true) => format!(
                "a drop of {} on phrasings it never saw, as the literature leads one to expect",
                points(&d)
            ),
            Some(false) => {
                format!("held-out phrasings did better by {}, unlike in the literature", points(&negated(&d)))
            }
            None => format!("a difference of {}; {CANNOT_TELL}", points(&d)),
        };
        Ok(Some(subgroup_finding(
            "ft-held-out-phrasing-drop",
            "Knowledge learnt by fine-tuning is hard to extract in forms not seen in training: accuracy \
             drops on held-out question phrasings (after Allen-Zhu & Li, Physics of Language Models 3.1).",
            d,
            holds,
            format!("{scores}: {tail}."),
            clusters,
        )))
    }
}

/// Closed-book FT's change in accuracy on old facts, as the runner measured it.
fn forgetting(arms: &[ArmResult]) -> Option<Finding> {
    let f = arms.iter().find(|a| a.is(Arm::Ft))?.forgetting.as_ref()?;
    let d = f.change;
    // The claim is a drop, so it holds when the change is below zero.
    let holds = verdict(&d).map(|up| !up);
    let scores = format!(
        "On {} questions about facts the base model already knew, closed-book accuracy went from {} before \
         fine-tuning to {} after",
        f.before.n,
        percent(&f.before),
        percent(&f.after)
    );
    let tail = match holds {
        Some(true) => format!(
            "a change of {}, so fine-tuning eroded old knowledge, as the literature reports",
            points(&d)
        ),
        Some(false) => {
            format!("a change of {}, so old knowledge improved, unlike in the literature", points(&d))
        }
        None => format!("a change of {}; {CANNOT_TELL}", points(&d)),
    };
    Some(Finding {
        id: "ft-forgets-old-facts".into(),
        claim: "Fine-tuning on facts the model did not know makes it worse on facts it knew (Gekhman et al. 2024)."
            .into(),
        difference: Some(d),
        holds,
        sentence: format!("{scores}: {tail}."),
        paired_test: None,
        clusters: None,
    })
}

/// The observed difference is below what these questions can detect (the verdict also needs
/// the interval to include zero).
fn too_few(t: &PairedTest, d: &Interval) -> bool {
    t.min_detectable > d.mean.abs()
}

/// "Exact McNemar test: p = 0.021 (9 questions only RAG got right, 1 only closed-book FT); the
/// minimum detectable difference at 80% power is 12 points." (the last part with `mde`).
fn test_sentence(name_a: &str, name_b: &str, t: &PairedTest, mde: bool) -> String {
    let question = |n: usize| if n == 1 { "question" } else { "questions" };
    let mut s = format!(
        "Exact McNemar test: {} ({} {} only {name_a} got right, {} only {name_b})",
        p_value(t.p_value),
        t.only_first,
        question(t.only_first),
        t.only_second
    );
    if mde {
        s.push_str(&format!(
            "; the minimum detectable difference at 80% power is {}",
            mde_points(t.min_detectable)
        ));
    }
    s.push('.');
    s
}

/// "Intervals resample the 40 source passages of the 120 questions together." — only when
/// some passage has more than one question (otherwise the bootstrap is over questions).
fn cluster_sentence(questions: usize, clusters: usize) -> Option<String> {
    (clusters < questions).then(|| {
        format!(
            "Intervals resample the {clusters} source passages of the {questions} questions, each with all its \
             questions."
        )
    })
}

/// A finding on a difference between two subgroups of the questions (no paired test): the
/// sentence ends with what the clusters mean for it.
fn subgroup_finding(
    id: &str,
    claim: &str,
    d: Interval,
    holds: Option<bool>,
    sentence: String,
    clusters: usize,
) -> Finding {
    Finding {
        id: id.into(),
        claim: claim.into(),
        difference: Some(d),
        holds,
        sentence: with_clusters(sentence, d.n, clusters),
        paired_test: None,
        clusters: Some(clusters),
    }
}

fn with_clusters(sentence: String, questions: usize, clusters: usize) -> String {
    match cluster_sentence(questions, clusters) {
        Some(s) => format!("{sentence} {s}"),
        None => sentence,
    }
}

/// `p = 0.021`, `p = 0.0034`, `p < 0.001`, `p = 1`.
fn p_value(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".into()
    } else if p >= 0.995 {
        "p = 1".into()
    } else {
        let d = if p >= 0.1 {
            2
        } else if p >= 0.01 {
            3
        } else {
            4
        };
        format!("p = {p:.d$}")
    }
}

/// A minimum detectable effect (a fraction) in points: whole points from 2 up, one decimal below.
fn mde_points(mde: f64) -> String {
    let d = if mde >= 0.02 { 0 } else { 1 };
    let n = percent_number(mde, d);
    format!("{n} {}", if n == "1" { "point" } else { "points" })
}

/// "Along the paraphrase curve, …" from its first to its last point, when it has two.
fn curve_sentence(curve: &[ParaphrasePoint]) -> Option<String> {
    let choice = |s: &Scores| s.mc_accuracy.map(|iv| (iv, "multiple-choice accuracy"));
    let exact = |s: &Scores| s.exact_match.map(|iv| (iv, "exact match"));
    let mut points: Vec<(usize, Interval, &str)> =
        curve.iter().filter_map(|p| choice(&p.scores).map(|(iv, w)| (p.paraphrases, iv, w))).collect();
    if points.len() < 2 {
        points =
            curve.iter().filter_map(|p| exact(&p.scores).map(|(iv, w)| (p.paraphrases, iv, w))).collect();
    }
    points.sort_by_key(|p| p.0);
    let (first, last) = (points.first()?, points.last()?);
    if points.len() < 2 || first.0 == last.0 {
        return None;
    }
    Some(format!(
        "Along the paraphrase curve, FT's {} went from {} with {} extra paraphrase{} per document to {} with {}.",
        first.2,
        percent(&first.1),
        first.0,
        if first.0 == 1 { "" } else { "s" },
        percent(&last.1),
        last.0
    ))
}

/// A question's id with its score under each of two arms.
type Pair<'a> = (&'a str, f64, f64);

/// The questions both arms scored, matched by id, with the metric they share: multiple choice
/// when any pair has it, else exact match. `None` when they share no scored question.
fn paired<'a>(a: &'a ArmResult, b: &ArmResult) -> Option<(Metric, Vec<Pair<'a>>)> {
    let mut by_id: HashMap<&str, &QuestionOutcome> = HashMap::new();
    for o in &b.outcomes {
        by_id.entry(o.id.as_str()).or_insert(o);
    }
    [Metric::Choice, Metric::Exact].into_iter().find_map(|metric| {
        let pairs: Vec<Pair> = a
            .outcomes
            .iter()
            .filter_map(|o| Some((o.id.as_str(), metric.of(o)?, metric.of(by_id.get(o.id.as_str())?)?)))
            .collect();
        (!pairs.is_empty()).then_some((metric, pairs))
    })
}

/// Above zero → `Some(true)`, below → `Some(false)`, straddling (or touching) zero → `None`.
fn verdict(d: &Interval) -> Option<bool> {
    if d.lo > 0.0 {
        Some(true)
    } else if d.hi < 0.0 {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::results::Forgetting;

    /// An arm whose question `i` is right exactly when `right(i)`.
    fn arm(id: &str, n: usize, right: impl Fn(usize) -> bool) -> ArmResult {
        ArmResult {
            id: id.into(),
            outcomes: (0..n)
                .map(|i| QuestionOutcome {
                    id: format!("q{i}"),
                    mc_correct: Some(right(i)),
                    ..Default::default()
                })
                .collect(),
            ..ArmResult::default()
        }
    }

    fn question(i: usize, phrasing: &str, popularity: usize) -> QaItem {
        QaItem {
            id: format!("q{i}"),
            question: String::new(),
            answer: String::new(),
            choices: vec!["a".into(), "b".into()],
            correct: Some(0),
            sources: Vec::new(),
            phrasing: Some(phrasing.into()),
            popularity: Some(popularity),
        }
    }

    fn find<'a>(fs: &'a [Finding], id: &str) -> &'a Finding {
        fs.iter().find(|f| f.id == id).unwrap_or_else(|| panic!("no finding {id} in {fs:#?}"))
    }

    #[test]
    fn rag_clearly_winning_losing_or_tying_gives_true_false_none() {
        // 200 questions: RAG right on 90 %, FT on 30 % → the claim holds.
        let wins = [arm("rag", 200, |i| i % 10 != 0), arm("ft", 200, |i| i % 10 < 3)];
        let fs = findings(&wins, &[], &[], 1000, 7).unwrap();
        let f = find(&fs, "rag-beats-ft");
        assert_eq!(f.holds, Some(true));
        let d = f.difference.unwrap();
        assert!((d.mean - 0.6).abs() < 1e-12 && d.lo > 0.5 && d.hi < 0.7, "{d:?}");
        assert!(f.sentence.starts_with("RAG answered 90% ("), "{}", f.sentence);
        assert!(f.sentence.contains("closed-book FT 30% ("), "{}", f.sentence);
        assert!(
            f.sentence.contains("RAG is ahead by 60 points")
                && f.sentence.contains("as the literature reports")
        );
        // 200 questions: RAG alone right on i mod 10 in 3..=9 (140), FT alone on i mod 10 = 0 (20).
        let t = f.paired_test.unwrap();
        assert_eq!(
            (t.only_first, t.only_second, t.p_value),
            (140, 20, crate::metrics::mcnemar_exact(140, 20))
        );
        assert!(
            f.sentence.contains(
                "Exact McNemar test: p < 0.001 (140 questions only RAG got right, 20 only closed-book FT); the \
                 minimum detectable difference at 80% power is"
            ),
            "{}",
            f.sentence
        );
        assert_eq!(f.clusters, Some(200));
        assert!(!f.sentence.contains("source passages"), "no sources, no clusters to mention");

        let loses = [arm("rag", 200, |i| i % 10 < 3), arm("ft", 200, |i| i % 10 != 0)];
        let f = find(&findings(&loses, &[], &[], 1000, 7).unwrap(), "rag-beats-ft").clone();
        assert_eq!(f.holds, Some(false));
        assert!(
            f.sentence.contains("RAG is behind by 60 points") && f.sentence.contains("the opposite"),
            "{}",
            f.sentence
        );

        // The same 50 % accuracy, on different questions: a difference of 0, interval across 0.
        let ties = [arm("rag", 200, |i| i % 2 == 0), arm("ft", 200, |i| i % 2 == 1)];
        let f = find(&findings(&ties, &[], &[], 1000, 7).unwrap(), "rag-beats-ft").clone();
        assert_eq!(f.holds, None);
        let d = f.difference.unwrap();
        assert!(d.lo < 0.0 && d.hi > 0.0 && d.mean == 0.0, "{d:?}");
        // ψ = 1, n = 200: the MDE (Connor) is 20 points, above the observed 0.
        let t = f.paired_test.unwrap();
        assert_eq!((t.only_first, t.only_second, t.p_value), (100, 100, 1.0));
        assert!((t.min_detectable - crate::metrics::min_detectable_effect(200, 200, 1.0)).abs() < 1e-15);
        assert!(
            f.sentence.contains(
                "the interval includes zero and the difference is below the 20 points these questions can detect \
                 (80% power), so there are too few questions to tell. Exact McNemar test: p = 1 (100 questions \
                 only RAG got right, 100 only closed-book FT)."
            ),
            "{}",
            f.sentence
        );
    }

    #[test]
    fn questions_from_one_passage_are_resampled_together() {
        // 240 questions, 4 per passage, the outcome shared within a passage: 60 independent
        // pieces of evidence. The clustered interval is about √4 = 2 times the width of the
        // question-level one (paired_difference) and the sentence names the passages.
        let qs: Vec<QaItem> = (0..240)
            .map(|i| QaItem { sources: vec![format!("doc-{}", i / 4)], ..question(i, "seen", 1) })
            .collect();
        let arms = [arm("rag", 240, |i| (i / 4) % 5 != 0), arm("ft", 240, |i| (i / 4) % 5 < 2)];
        let f = find(&findings(&arms, &[], &qs, 2000, 4).unwrap(), "rag-beats-ft").clone();
        let d = f.difference.unwrap();
        let (va, vb): (Vec<f64>, Vec<f64>) = arms[0]
            .outcomes
            .iter()
            .zip(&arms[1].outcomes)
            .map(|(a, b)| {
                (f64::from(u8::from(a.mc_correct.unwrap())), f64::from(u8::from(b.mc_correct.unwrap())))
            })
            .unzip();
        let plain = crate::metrics::paired_difference(&va, &vb, 2000, 4).unwrap();
        let ratio = (d.hi - d.lo) / (plain.hi - plain.lo);
        assert!((1.7..2.4).contains(&ratio), "{d:?} vs {plain:?}");
        assert_eq!((f.clusters, d.n), (Some(60), 240));
        assert!(
            f.sentence.ends_with(
                "Intervals resample the 60 source passages of the 240 questions, each with all its questions."
            ),
            "{}",
            f.sentence
        );
        // The design effect (4) enters the MDE: that of 60 independent questions.
        let t = f.paired_test.unwrap();
        let discordant = t.only_first + t.only_second;
        assert!(
            (t.min_detectable - crate::metrics::min_detectable_effect(60, discordant / 4, 1.0)).abs() < 1e-9
        );
    }

    #[test]
    fn comparisons_pair_questions_by_id_and_fall_back_to_exact_match() {
        // FT's outcomes in reverse order and without q0: pairing by id still matches q1..q9.
        let mut rag = arm("rag", 10, |_| true);
        let mut ft = arm("ft", 10, |_| false);
        for a in [&mut rag, &mut ft] {
            for o in &mut a.outcomes {
                o.exact_match = o.mc_correct.map(|c| f64::from(u8::from(c)));
                o.mc_correct = None;
            }
        }
        ft.outcomes.reverse();
        ft.outcomes.retain(|o| o.id != "q0");
        let fs = findings(&[rag, ft], &[], &[], 500, 1).unwrap();
        let f = find(&fs, "rag-beats-ft");
        let d = f.difference.unwrap();
        assert_eq!((d.n, d.mean, d.lo, d.hi), (9, 1.0, 1.0, 1.0));
        assert!(f.sentence.contains("of the 9 questions exactly"), "{}", f.sentence);
    }

    #[test]
    fn missing_arms_are_skipped_quietly() {
        let fs = findings(&[arm("rag", 50, |_| true)], &[], &[], 200, 1).unwrap();
        assert!(fs.is_empty(), "{fs:#?}");
        // Arms without a shared scored question say nothing either.
        let (rag, mut ft) = (arm("rag", 5, |_| true), arm("ft", 5, |_| true));
        ft.outcomes.iter_mut().for_each(|o| o.mc_correct = None);
        assert!(findings(&[rag, ft], &[], &[], 200, 1).unwrap().is_empty());
    }

    #[test]
    fn forgetting_holds_when_the_change_is_below_zero() {
        let iv = |mean: f64, lo: f64, hi: f64| Interval { mean, lo, hi, n: 200 };
        let mut ft = arm("ft", 10, |_| true);
        ft.forgetting = Some(Forgetting {
            before: iv(0.72, 0.66, 0.78),
            after: iv(0.65, 0.58, 0.71),
            change: iv(-0.07, -0.11, -0.03),
        });
        let f = find(&findings(&[ft.clone()], &[], &[], 200, 1).unwrap(), "ft-forgets-old-facts").clone();
        assert_eq!(f.holds, Some(true));
        assert!(
            f.sentence.contains("from 72% (66–78%) before fine-tuning to 65% (58–71%) after"),
            "{}",
            f.sentence
        );
        assert!(
            f.sentence.contains("a change of −7 points (−11 to −3), so fine-tuning eroded"),
            "{}",
            f.sentence
        );
        ft.forgetting.as_mut().unwrap().change = iv(-0.01, -0.04, 0.02);
        assert_eq!(find(&findings(&[ft], &[], &[], 200, 1).unwrap(), "ft-forgets-old-facts").holds, None);
    }

    #[test]
    fn rag_gain_by_popularity_compares_the_rarest_and_most_popular_buckets() {
        // 300 questions: popularity 1, 2, 5 in turn. Base knows nothing; RAG answers all rare
        // ones (gain 100 points) but only every other popular one (gain 50 points).
        let qs: Vec<QaItem> = (0..300).map(|i| question(i, "seen", [1, 2, 5][i % 3])).collect();
        let base = arm("base", 300, |_| false);
        let rag = arm("rag", 300, |i| i % 3 != 2 || (i / 3) % 2 == 0);
        let fs = findings(&[base.clone(), rag], &[], &qs, 1000, 3).unwrap();
        let f = find(&fs, "rag-helps-rare-entities-most");
        assert_eq!(f.holds, Some(true));
        let d = f.difference.unwrap();
        assert!((d.mean - 0.5).abs() < 1e-12 && d.n == 200, "{d:?}");
        assert!(
            f.sentence.contains("+100 points") && f.sentence.contains("mentioned in 1 document"),
            "{}",
            f.sentence
        );
        assert!(
            f.sentence.contains("+50 points") && f.sentence.contains("mentioned in 4+ documents"),
            "{}",
            f.sentence
        );

        // The same gain everywhere: no verdict.
        let flat = arm("rag", 300, |i| (i / 3) % 2 == 0);
        let f = find(&findings(&[base, flat], &[], &qs, 1000, 3).unwrap(), "rag-helps-rare-entities-most")
            .clone();
        assert_eq!(f.holds, None, "{f:#?}");
    }

    #[test]
    fn held_out_phrasings_drop_is_a_two_group_difference() {
        // Even questions seen (FT right on all), odd held out (right on a quarter).
        let qs: Vec<QaItem> =
            (0..200).map(|i| question(i, if i % 2 == 0 { "seen" } else { "held-out" }, 1)).collect();
        let ft = arm("ft", 200, |i| i % 2 == 0 || i % 8 == 1);
        let f = find(&findings(&[ft], &[], &qs, 1000, 3).unwrap(), "ft-held-out-phrasing-drop").clone();
        assert_eq!(f.holds, Some(true));
        assert!((f.difference.unwrap().mean - 0.75).abs() < 1e-12);
        assert!(
            f.sentence.contains("100% (100–100%) of the 100 multiple-choice questions in seen phrasings"),
            "{}",
            f.sentence
        );
        assert!(f.sentence.contains("a drop of 75 points"), "{}", f.sentence);
        // Without labels there is nothing to say.
        let ft = arm("ft", 200, |i| i % 2 == 0);
        assert!(
            findings(&[ft], &[], &[], 1000, 3).unwrap().iter().all(|f| f.id != "ft-held-out-phrasing-drop")
        );
    }

    #[test]
    fn the_paraphrase_finding_describes_the_curve() {
        let iv = |mean: f64| Interval { mean, lo: mean - 0.05, hi: mean + 0.05, n: 100 };
        let point = |k: usize, m: f64| ParaphrasePoint {
            paraphrases: k,
            scores: Scores { mc_accuracy: Some(iv(m)), ..Scores::default() },
        };
        let curve = [point(4, 0.58), point(0, 0.31), point(1, 0.40)];
        let arms = [arm("ft-par", 100, |i| i % 10 < 6), arm("ft", 100, |i| i % 10 < 3)];
        let f = find(&findings(&arms, &curve, &[], 500, 2).unwrap(), "paraphrases-help-ft").clone();
        assert_eq!(f.holds, Some(true));
        assert!(
            f.sentence.ends_with(
                "Along the paraphrase curve, FT's multiple-choice accuracy went from 31% (26–36%) with 0 extra \
                 paraphrases per document to 58% (53–63%) with 4."
            ),
            "{}",
            f.sentence
        );
    }

    #[test]
    fn the_same_seed_gives_the_same_findings() {
        let arms = [
            arm("rag", 120, |i| i % 3 != 0),
            arm("ft", 120, |i| i % 4 == 0),
            arm("ft+rag", 120, |i| i % 5 != 0),
        ];
        assert_eq!(findings(&arms, &[], &[], 300, 9).unwrap(), findings(&arms, &[], &[], 300, 9).unwrap());
        assert!(findings(&arms, &[], &[], 0, 9).is_err(), "zero resamples is an error");
    }
}
