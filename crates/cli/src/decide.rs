//! `ragtune decide`: the report's "What to choose", recomputed from a finished run's
//! `report.json` with other traffic, update rate, price, latency budget, horizon or accuracy
//! floor — without re-running any arm. Inputs not given keep the values the report's decision
//! was computed with (or the defaults, for a report without one).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use ragtune_eval::decision;
use ragtune_eval::report::ExperimentReport;

#[derive(clap::Args)]
pub struct DecideArgs {
    /// A finished run's report.json (from `ragtune demo` or `ragtune compare`).
    #[arg(long)]
    report: PathBuf,
    /// Questions answered per month in production.
    #[arg(long, allow_negative_numbers = true)]
    queries_per_month: Option<f64>,
    /// Knowledge updates per month (each re-indexes or re-trains on the changed passages).
    #[arg(long, allow_negative_numbers = true)]
    updates_per_month: Option<f64>,
    /// What an hour of the machine the run measured costs.
    #[arg(long, allow_negative_numbers = true)]
    price_per_hour: Option<f64>,
    /// The most an answer may take at the 95th percentile (milliseconds).
    #[arg(long, allow_negative_numbers = true)]
    latency_budget_ms: Option<f64>,
    /// Months the choice is costed over.
    #[arg(long, allow_negative_numbers = true)]
    horizon_months: Option<f64>,
    /// The lowest acceptable accuracy on the main metric, a fraction (0.8 for 80%).
    #[arg(long, allow_negative_numbers = true)]
    min_accuracy: Option<f64>,
}

pub fn run(args: DecideArgs, json: bool) -> Result<()> {
    let path = &args.report;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("--report {}: cannot read it", path.display()))?;
    let report: ExperimentReport = serde_json::from_str(&text).with_context(|| {
        format!(
            "--report {}: not a ragtune report.json (from `ragtune demo` or `ragtune compare`)",
            path.display()
        )
    })?;
    let stored = report.decision.as_ref();
    let mut inputs = stored.map(|d| d.inputs.clone()).unwrap_or_default();
    let set = |slot: &mut f64, v: Option<f64>| {
        if let Some(v) = v {
            *slot = v;
        }
    };
    set(&mut inputs.queries_per_month, args.queries_per_month);
    set(&mut inputs.updates_per_month, args.updates_per_month);
    set(&mut inputs.price_per_hour, args.price_per_hour);
    set(&mut inputs.latency_budget_ms, args.latency_budget_ms);
    set(&mut inputs.horizon_months, args.horizon_months);
    if args.min_accuracy.is_some() {
        inputs.min_accuracy = args.min_accuracy;
    }
    if let Err(e) = inputs.check() {
        let flag = format!("--{}", e.field.replace('_', "-"));
        // A value from the report rather than a flag: say where it came from.
        let given = match e.field {
            "queries_per_month" => args.queries_per_month.is_some(),
            "updates_per_month" => args.updates_per_month.is_some(),
            "price_per_hour" => args.price_per_hour.is_some(),
            "latency_budget_ms" => args.latency_budget_ms.is_some(),
            "horizon_months" => args.horizon_months.is_some(),
            _ => args.min_accuracy.is_some(),
        };
        if given {
            bail!("{flag} {}", e.detail);
        }
        bail!("{}: the stored decision's {} {} (override it with {flag})", path.display(), e.field, e.detail);
    }
    let (resamples, seed) = stored.map_or((1000, 0), |d| (d.resamples, d.seed));
    let decision = decision::decide(&report, &inputs, resamples, seed)
        .with_context(|| format!("deciding from {}", path.display()))?;
    if json {
        println!("{}", serde_json::to_string(&decision)?);
    } else {
        print!("{}", decision::text::markdown(&decision));
    }
    Ok(())
}
