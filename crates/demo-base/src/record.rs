//! `TRAINING.md`: how the committed base model was made (the command, seed, token budget,
//! machine, wall time), what it was trained on, its loss curve, and what it can do.

use std::fmt::Write;

use crate::Built;

fn pct(a: &Option<super::Accuracy>) -> String {
    a.map_or("—".into(), |a| format!("{:.1}% ({}/{})", 100.0 * a.rate(), a.correct, a.total))
}

/// The text of `TRAINING.md` for `built`, made by `command` on `machine`.
pub fn training_md(built: &Built, command: &str, machine: &str) -> String {
    let o = &built.options;
    let s = &o.shape;
    let t = &o.train;
    let m = &built.mixture;
    let log = &built.log;
    let mut md = String::new();
    let _ = writeln!(md, "# The built-in base model\n");
    let _ = writeln!(
        md,
        "A Llama-family model pretrained from scratch by ragtune's own trainer (full mode) on the Old \
         population of the demo world (seed {}): its documents, closed-book questions about it, and \
         passage → answer reading examples. Regenerate it with:\n\n```\n{command}\n```\n",
        o.world.seed
    );
    let _ = writeln!(md, "## Run\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| seed | {} |", o.seed);
    let _ =
        writeln!(md, "| training tokens | {} ({} steps of {} × {}) |", log.tokens, log.steps, t.batch, t.seq);
    let _ = writeln!(
        md,
        "| training time | {:.0} s ({:.0} tokens/s) |",
        log.seconds,
        log.tokens as f64 / log.seconds.max(1e-9)
    );
    let _ = writeln!(md, "| whole build (data, tokenizer, validation) | {:.0} s |", built.seconds);
    let _ = writeln!(md, "| machine | {machine} |");
    let _ = writeln!(
        md,
        "| model | llama, hidden {}, {} layers, {} heads ({} KV) × {}, MLP {}, vocab {}, context {}, tied embeddings; {:.2}M parameters |",
        s.hidden,
        s.layers,
        s.heads,
        s.kv_heads,
        s.head_dim,
        s.intermediate,
        built.vocab,
        s.max_positions,
        built.params as f64 / 1e6
    );
    let _ = writeln!(md, "| stored as | {} |", if o.bf16 { "bf16" } else { "f32" });
    let _ = writeln!(
        md,
        "| optimiser | AdamW (weight decay {}), lr {} with {:.0}% warmup then cosine to 0, clipping {} |",
        t.weight_decay,
        t.lr,
        100.0 * t.warmup,
        t.clip
    );
    let _ = writeln!(md, "| final loss (mean of the last 1% of steps) | {:.4} |\n", log.final_loss);
    let _ = writeln!(md, "## Mixture\n");
    let _ = writeln!(md, "| kind | examples | tokens |\n|---|---|---|");
    let _ = writeln!(
        md,
        "| Old documents ({} passes, each with another paraphrase round) | {} | {} |",
        m.doc_epochs, m.documents.0, m.documents.1
    );
    let _ = writeln!(
        md,
        "| documents of throw-away entities (copying names from the context) | {} | {} |",
        m.throwaway_documents.0, m.throwaway_documents.1
    );
    let _ = writeln!(
        md,
        "| Old closed-book QA ({} passes; {} per fact, seen phrasings; every {}th entity left out) | {} | {} |",
        m.qa_epochs, o.mixture.qa_per_fact, o.mixture.qa_holdout_every, m.closed_book.0, m.closed_book.1
    );
    let _ = writeln!(
        md,
        "| reading (1–2 gold + 0–{} distractors; {:.0}% over Old entities, the rest over {} throw-away entities) | {} | {} |\n",
        o.mixture.max_distractors,
        100.0 * o.mixture.old_reading_share,
        m.reading_entities,
        m.reading.0,
        m.reading.1
    );
    let _ = writeln!(
        md,
        "Shuffled together and packed whole into {} rows of {} tokens ({:.1}% filled). Documents \
         train on every token, QA on the answer and `</s>` only, reading examples on {}.\n",
        m.rows,
        t.seq,
        100.0 * m.fill,
        if o.mixture.reading_loss_everywhere { "every token" } else { "the answer and `</s>` only" }
    );
    let _ = writeln!(md, "## Validation\n");
    let _ = writeln!(
        md,
        "Multiple choice: the option with the highest log-likelihood of ` option</s>`. Exact match: \
         greedy generation up to `</s>` or a newline, trimmed. Measured on the weights as stored.\n"
    );
    let _ = writeln!(md, "| what | multiple choice | exact match |\n|---|---|---|");
    for v in &built.validation {
        let _ = writeln!(md, "| {} | {} | {} |", v.what, pct(&v.choice), pct(&v.exact));
    }
    let _ = writeln!(md, "\n## Loss\n\n| step | mean loss since the previous line |\n|---|---|");
    let stride = (log.curve.len() / 20).max(1);
    for (i, (step, loss)) in log.curve.iter().enumerate() {
        if i % stride == 0 || i + 1 == log.curve.len() {
            let _ = writeln!(md, "| {step} | {loss:.4} |");
        }
    }
    md
}
