//! Generate questions from a folder of documents and print statistics and samples:
//! `cargo run -p ragtune-eval --example qgen_readmes -- <folder> [samples] [model.gguf|model folder]`
//! (with a model, an instruct model writes the questions, on the first 40 passages).

use std::path::PathBuf;

use ragtune_eval::qgen::model::{ModelWriter, QuestionWriter, generate_with_writer};
use ragtune_eval::qgen::{GenerateSettings, Split, generate, split_by_source};
use ragtune_eval::userdata::{DEFAULT_MAX_WORDS, load_corpus_layout, load_corpus_with};

/// A writer that prints each reply when asked to.
struct Shown<'a>(ModelWriter<'a>, bool);

impl QuestionWriter for Shown<'_> {
    fn write(&mut self, sentence: &str, answer: &str) -> ragtune_eval::Result<String> {
        let reply = self.0.write(sentence, answer)?;
        if self.1 {
            println!("--- {answer:?} in {sentence:?}\n    -> {reply:?}");
        }
        Ok(reply)
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dir =
        PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!("usage: qgen_readmes <folder> [samples]"))?);
    let samples: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);
    let model = args.next().map(PathBuf::from);
    let corpus = load_corpus_with(&dir, DEFAULT_MAX_WORDS)?;
    let layout = load_corpus_layout(&dir, DEFAULT_MAX_WORDS)?;
    let start = std::time::Instant::now();
    let qs = match &model {
        None => generate(&layout, &GenerateSettings::default()),
        Some(path) => {
            let (m, tok) = ragtune_runtime::load_causal_lm(
                path,
                ragtune_compute::DType::F32,
                ragtune_compute::Device::Cpu,
            )?;
            let n = layout
                .len()
                .min(std::env::var("QGEN_PASSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(40));
            let mut writer = Shown(ModelWriter::new(&m, &tok), std::env::var("QGEN_SHOW").is_ok());
            let (qs, counts) = generate_with_writer(&layout[..n], &mut writer, &GenerateSettings::default())?;
            println!(
                "model-worded questions kept: {}, replies dropped (built-in question kept): {}",
                counts.kept, counts.dropped
            );
            qs
        }
    };
    println!("generated in {:.1} s", start.elapsed().as_secs_f64());
    let files: std::collections::BTreeSet<&str> =
        corpus.iter().map(|p| p.id.rsplit_once('#').map_or(p.id.as_str(), |(f, _)| f)).collect();
    let all_text: String = corpus.iter().map(|p| p.text.as_str()).collect::<Vec<_>>().join("\n");
    let in_corpus = qs.iter().filter(|q| all_text.contains(&q.answer)).count();
    let in_source = qs
        .iter()
        .filter(|q| corpus.iter().find(|p| p.id == q.sources[0]).is_some_and(|p| p.text.contains(&q.answer)))
        .count();
    let splits = split_by_source(&qs, &[], 0.3, 0);
    let dev = splits.iter().filter(|&&s| s == Split::Dev).count();
    println!(
        "{} files, {} passages -> {} questions; answers in the corpus: {in_corpus} ({:.0}%), in their source passage: {in_source}; dev {dev}, test {}",
        files.len(),
        corpus.len(),
        qs.len(),
        100.0 * in_corpus as f64 / qs.len().max(1) as f64,
        qs.len() - dev
    );
    let mut kinds = std::collections::BTreeMap::new();
    for q in &qs {
        let k = if q.question.starts_with("Fill in") { "cloze" } else { "wh" };
        *kinds.entry(k).or_insert(0) += 1;
    }
    println!("forms: {kinds:?}");
    for q in qs.iter().take(samples) {
        println!("- [{}] {}\n    answer: {}  choices: {:?}", q.sources[0], q.question, q.answer, q.choices);
    }
    Ok(())
}
