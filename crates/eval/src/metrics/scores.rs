//! From per-question outcomes to an arm's [`Scores`]: one call for the overall scores, one per
//! breakdown (phrasing, popularity), so the runner fills `ArmResult.overall`, `.by_phrasing`
//! and `.by_popularity` with one line each.

use super::MetricsError;
use super::bootstrap::bootstrap_mean;
use super::cluster::{ClusterKeys, cluster_mean};
use crate::report::{Breakdown, Interval, QuestionOutcome, Scores};

/// Multiple-choice accuracy, exact match and token F1 of `outcomes`, each with its bootstrap
/// 95% interval. A metric is taken over the questions that have it (its `n` says how many) and
/// is `None` when no question has it (no choices, or free answers switched off).
pub fn scores_of(outcomes: &[QuestionOutcome], resamples: usize, seed: u64) -> Result<Scores, MetricsError> {
    scores_with(outcomes, None, resamples, seed)
}

/// [`scores_of`] with cluster-bootstrap intervals ([`cluster_mean`]): `keys` names each
/// question's cluster (its source passage) by id.
pub fn clustered_scores_of(
    outcomes: &[QuestionOutcome],
    keys: &ClusterKeys,
    resamples: usize,
    seed: u64,
) -> Result<Scores, MetricsError> {
    scores_with(outcomes, Some(keys), resamples, seed)
}

fn scores_with(
    outcomes: &[QuestionOutcome],
    keys: Option<&ClusterKeys>,
    resamples: usize,
    seed: u64,
) -> Result<Scores, MetricsError> {
    let metric = |f: &dyn Fn(&QuestionOutcome) -> Option<f64>| -> (Vec<f64>, Vec<&str>) {
        outcomes.iter().filter_map(|o| Some((f(o)?, o.id.as_str()))).unzip()
    };
    let (mc, mc_ids) = metric(&|o| o.mc_correct.map(|c| f64::from(u8::from(c))));
    let (em, em_ids) = metric(&|o| o.exact_match);
    let (f1, f1_ids) = metric(&|o| o.token_f1);
    let (valid, valid_ids) = metric(&|o| o.format_valid.map(|v| f64::from(u8::from(v))));
    let (fields, fields_ids) = metric(&|o| o.field_match);
    let interval = |what: &str, values: &[f64], ids: Vec<&str>| match keys {
        None => interval_of(what, values, None, resamples, seed),
        Some(k) => interval_of(what, values, Some(&k.keys(ids)), resamples, seed),
    };
    Ok(Scores {
        mc_accuracy: interval("multiple-choice accuracy", &mc, mc_ids)?,
        exact_match: interval("exact match", &em, em_ids)?,
        token_f1: interval("token F1", &f1, f1_ids)?,
        macro_f1: macro_f1_of(outcomes, resamples, seed)?,
        format_valid: interval("format validity", &valid, valid_ids)?,
        field_match: interval("field exact match", &fields, fields_ids)?,
    })
}

/// Macro-F1 over the labels that occur or are predicted among `outcomes` (in order of first
/// appearance), with its bootstrap interval; `None` without classified outcomes.
fn macro_f1_of(
    outcomes: &[QuestionOutcome],
    resamples: usize,
    seed: u64,
) -> Result<Option<Interval>, MetricsError> {
    let (labels, pairs) = label_pairs(outcomes, &[]);
    if pairs.is_empty() {
        return Ok(None);
    }
    super::labels::bootstrap_macro_f1(&pairs, labels.len(), resamples, seed).map(Some)
}

/// The label set (`declared` first, in order, then any other label the outcomes name) and the
/// (gold, predicted) index pairs of the outcomes that have both, restricted to labels that occur
/// or are predicted: a declared label absent from both sides is dropped, as scikit-learn's
/// macro average drops it.
pub fn label_pairs(outcomes: &[QuestionOutcome], declared: &[String]) -> (Vec<String>, Vec<(usize, usize)>) {
    let both: Vec<(&str, &str)> = outcomes
        .iter()
        .filter_map(|o| Some((o.gold_label.as_deref()?, o.predicted_label.as_deref()?)))
        .collect();
    let mut labels: Vec<String> = Vec::new();
    let used = |l: &str| both.iter().any(|(g, p)| *g == l || *p == l);
    for l in declared.iter().map(String::as_str).chain(both.iter().flat_map(|(g, p)| [*g, *p])) {
        if used(l) && !labels.iter().any(|x| x == l) {
            labels.push(l.to_string());
        }
    }
    let index = |l: &str| labels.iter().position(|x| x == l).unwrap_or(0);
    let pairs = both.iter().map(|(g, p)| (index(g), index(p))).collect();
    (labels, pairs)
}

fn interval_of(
    what: &str,
    values: &[f64],
    keys: Option<&[&str]>,
    resamples: usize,
    seed: u64,
) -> Result<Option<Interval>, MetricsError> {
    if values.is_empty() {
        return Ok(None);
    }
    match keys {
        None => bootstrap_mean(values, resamples, seed),
        Some(k) => cluster_mean(values, k, resamples, seed),
    }
    .map(Some)
    .map_err(|e| with_context(e, what))
}

fn with_context(e: MetricsError, what: &str) -> MetricsError {
    match e {
        MetricsError::Empty { what: w } => MetricsError::Empty { what: format!("{what} ({w})") },
        MetricsError::ZeroResamples { what: w } => {
            MetricsError::ZeroResamples { what: format!("{what} ({w})") }
        }
        MetricsError::NonFinite { what: w, index, value } => {
            MetricsError::NonFinite { what: format!("{what} ({w}), question"), index, value }
        }
        MetricsError::LengthMismatch { what: w, left, right } => {
            MetricsError::LengthMismatch { what: format!("{what} ({w})"), left, right }
        }
    }
}

/// [`scores_of`] per group: `labels[i]` is the group of `outcomes[i]` ("seen", "held-out",
/// "1 document", …). One [`Breakdown`] per distinct label, in the order labels first appear;
/// an empty label marks a question without one, which no group includes.
pub fn breakdown(
    outcomes: &[QuestionOutcome],
    labels: &[String],
    resamples: usize,
    seed: u64,
) -> Result<Vec<Breakdown>, MetricsError> {
    breakdown_with(outcomes, labels, None, resamples, seed)
}

/// [`breakdown`] with cluster-bootstrap intervals, as [`clustered_scores_of`].
pub fn clustered_breakdown(
    outcomes: &[QuestionOutcome],
    labels: &[String],
    keys: &ClusterKeys,
    resamples: usize,
    seed: u64,
) -> Result<Vec<Breakdown>, MetricsError> {
    breakdown_with(outcomes, labels, Some(keys), resamples, seed)
}

fn breakdown_with(
    outcomes: &[QuestionOutcome],
    labels: &[String],
    keys: Option<&ClusterKeys>,
    resamples: usize,
    seed: u64,
) -> Result<Vec<Breakdown>, MetricsError> {
    if outcomes.len() != labels.len() {
        return Err(MetricsError::LengthMismatch {
            what: "breakdown: outcomes vs labels".into(),
            left: outcomes.len(),
            right: labels.len(),
        });
    }
    let mut order: Vec<&str> = Vec::new();
    for l in labels {
        if !l.is_empty() && !order.contains(&l.as_str()) {
            order.push(l);
        }
    }
    order
        .into_iter()
        .map(|label| {
            let group: Vec<QuestionOutcome> =
                outcomes.iter().zip(labels).filter(|(_, l)| *l == label).map(|(o, _)| o.clone()).collect();
            let scores = scores_with(&group, keys, resamples, seed).map_err(|e| with_context(e, label))?;
            Ok(Breakdown { label: label.to_string(), scores })
        })
        .collect()
}

/// The popularity bucket of a question whose subject `popularity` corpus documents mention.
/// 0 (an entity the corpus never mentions) gets a bucket of its own rather than being hidden
/// in "1 document".
pub fn popularity_label(popularity: usize) -> String {
    match popularity {
        0 => "0 documents",
        1 => "1 document",
        2..=3 => "2–3 documents",
        _ => "4+ documents",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(id: &str, mc: Option<bool>, em: Option<f64>, f1: Option<f64>) -> QuestionOutcome {
        QuestionOutcome { id: id.into(), mc_correct: mc, exact_match: em, token_f1: f1, ..Default::default() }
    }

    #[test]
    fn scores_average_each_metric_over_the_questions_that_have_it() {
        let outcomes = vec![
            outcome("q1", Some(true), Some(1.0), Some(1.0)),
            outcome("q2", Some(false), Some(0.0), Some(0.5)),
            outcome("q3", Some(true), None, None),
            outcome("q4", None, Some(0.0), Some(0.0)),
        ];
        let s = scores_of(&outcomes, 200, 1).unwrap();
        let mc = s.mc_accuracy.unwrap();
        assert_eq!((mc.n, mc.mean), (3, 2.0 / 3.0));
        let em = s.exact_match.unwrap();
        assert_eq!((em.n, em.mean), (3, 1.0 / 3.0));
        let f1 = s.token_f1.unwrap();
        assert_eq!((f1.n, f1.mean), (3, 0.5));
        for iv in [mc, em, f1] {
            assert!(iv.lo <= iv.mean && iv.mean <= iv.hi && iv.lo >= 0.0 && iv.hi <= 1.0, "{iv:?}");
        }

        let mc_only = vec![outcome("q1", Some(true), None, None)];
        let s = scores_of(&mc_only, 200, 1).unwrap();
        assert!(s.exact_match.is_none() && s.token_f1.is_none() && s.mc_accuracy.is_some());
        assert_eq!(scores_of(&[], 200, 1).unwrap(), Scores::default());
    }

    #[test]
    fn a_nan_score_is_an_error_naming_the_metric() {
        let err = scores_of(&[outcome("q1", None, Some(1.0), Some(f64::NAN))], 10, 0).unwrap_err();
        assert!(err.to_string().contains("token F1"), "{err}");
    }

    #[test]
    fn breakdown_groups_by_label_in_first_seen_order_and_skips_unlabelled() {
        let outcomes: Vec<QuestionOutcome> =
            (0..6).map(|i| outcome(&format!("q{i}"), Some(i % 2 == 0), None, None)).collect();
        let labels: Vec<String> =
            ["held-out", "seen", "held-out", "", "seen", "held-out"].iter().map(|s| s.to_string()).collect();
        let b = breakdown(&outcomes, &labels, 200, 1).unwrap();
        assert_eq!(b.iter().map(|b| b.label.as_str()).collect::<Vec<_>>(), ["held-out", "seen"]);
        // held-out: q0 ✓, q2 ✓, q5 ✗ → 2/3; seen: q1 ✗, q4 ✓ → 1/2; q3 has no label.
        let held = b[0].scores.mc_accuracy.unwrap();
        assert_eq!((held.n, held.mean), (3, 2.0 / 3.0));
        let seen = b[1].scores.mc_accuracy.unwrap();
        assert_eq!((seen.n, seen.mean), (2, 0.5));

        let err = breakdown(&outcomes, &labels[..5], 200, 1).unwrap_err();
        assert!(matches!(err, MetricsError::LengthMismatch { left: 6, right: 5, .. }));
    }

    #[test]
    fn clustered_scores_resample_source_passages() {
        // 40 passages, 5 questions each with the same outcome: the clustered interval is that of
        // 40 values (wider than the question-level one), the mean and n are the same.
        let outcomes: Vec<QuestionOutcome> =
            (0..200).map(|i| outcome(&format!("q{i}"), Some((i / 5) % 3 != 0), None, None)).collect();
        let questions: Vec<crate::task::QaItem> = (0..200)
            .map(|i| crate::task::QaItem {
                id: format!("q{i}"),
                question: String::new(),
                answer: String::new(),
                choices: Vec::new(),
                correct: None,
                sources: vec![format!("doc-{}", i / 5)],
                phrasing: None,
                popularity: None,
            })
            .collect();
        let keys = ClusterKeys::of(&questions);
        let plain = scores_of(&outcomes, 2000, 1).unwrap().mc_accuracy.unwrap();
        let clustered = clustered_scores_of(&outcomes, &keys, 2000, 1).unwrap().mc_accuracy.unwrap();
        assert_eq!((plain.mean, plain.n), (clustered.mean, clustered.n));
        assert!(clustered.hi - clustered.lo > 1.8 * (plain.hi - plain.lo), "{clustered:?} vs {plain:?}");
        let labels: Vec<String> = (0..200).map(|i| if i < 100 { "a" } else { "b" }.to_string()).collect();
        let b = clustered_breakdown(&outcomes, &labels, &keys, 500, 1).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].scores.mc_accuracy.unwrap().n, 100);
    }

    #[test]
    fn popularity_buckets() {
        let labels: Vec<String> = [0, 1, 2, 3, 4, 9].iter().map(|&p| popularity_label(p)).collect();
        assert_eq!(
            labels,
            ["0 documents", "1 document", "2–3 documents", "2–3 documents", "4+ documents", "4+ documents"]
        );
    }
}
