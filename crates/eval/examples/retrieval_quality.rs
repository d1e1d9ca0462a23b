//! Retrieval quality and cost of the hashed embedder on the synthetic world: recall@1 and
//! recall@3 of the New population's questions (a hit: any of the question's source documents
//! among the top k), for several widths and family weights, on worlds of about 100, 1,000 and
//! 5,000 documents; with fit, embedding and search times and the index file's size. The numbers
//! in `embed/hashed.rs`'s module doc come from this.
//!
//! The world's questions name their entity in full, which makes retrieval easy, so the same
//! questions are also asked with a typo in every name (the middle letter of each capitalised
//! word after the first dropped: "Where was Tida Marow born?" for Tilda Marrow): the column `r@1 typo`.
//!
//! `cargo run --profile test -p ragtune-eval --example retrieval_quality [-- --quick]`

use std::time::Instant;

use ragtune_compute::Device;
use ragtune_eval::embed::{HashedConfig, HashedEmbedder};
use ragtune_eval::retrieve::Retriever;
use ragtune_eval::world::{DemoTaskOptions, World, WorldConfig, demo_task};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scales: &[usize] = if quick { &[1] } else { &[1, 10, 50] };
    let out_dir = std::env::temp_dir().join(format!("ragtune-retrieval-quality-{}", std::process::id()));
    std::fs::create_dir_all(&out_dir)?;
    println!(
        "| docs | questions | config | recall@1 | recall@3 | r@1 seen | r@1 held-out | r@1 typo | fit s | embed s | search ms/q | index MB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &scale in scales {
        let d = WorldConfig::default();
        let world = World::generate(WorldConfig {
            new_people: d.new_people * scale,
            new_orgs: d.new_orgs * scale,
            places: d.places * scale.min(10),
            ..d
        });
        let task = demo_task(&world, &DemoTaskOptions { paraphrase_rounds: 0, ..DemoTaskOptions::default() });
        let texts: Vec<&str> = task.corpus.iter().map(|p| p.text.as_str()).collect();
        let base = HashedConfig::default();
        let dims: &[usize] = if scale == 1 {
            &[1 << 10, 1 << 12, 1 << 13, 1 << 14, 1 << 16]
        } else {
            &[1 << 12, 1 << 13, 1 << 14]
        };
        let mut configs: Vec<(String, HashedConfig)> = dims
            .iter()
            .copied()
            .map(|dim| (format!("dim {dim}"), HashedConfig { dim, ..base.clone() }))
            .collect();
        if scale == 1 {
            configs.extend([
                (
                    "words only".to_string(),
                    HashedConfig { bigram_weight: 0.0, char_weight: 0.0, ..base.clone() },
                ),
                ("no bigrams".to_string(), HashedConfig { bigram_weight: 0.0, ..base.clone() }),
                ("no char n-grams".to_string(), HashedConfig { char_weight: 0.0, ..base.clone() }),
                ("bigrams 1.0".to_string(), HashedConfig { bigram_weight: 1.0, ..base.clone() }),
                ("chars 1.0".to_string(), HashedConfig { char_weight: 1.0, ..base.clone() }),
                ("chars 2.0".to_string(), HashedConfig { char_weight: 2.0, ..base.clone() }),
                ("char 2-4".to_string(), HashedConfig { char_ngrams: (2, 4), ..base.clone() }),
                ("char 3-6".to_string(), HashedConfig { char_ngrams: (3, 6), ..base.clone() }),
            ]);
        }
        for (name, config) in configs {
            let t = Instant::now();
            let e = HashedEmbedder::fit(&texts, config)?;
            let fit = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let r = Retriever::build(&e, &task.corpus, &Device::Cpu)?;
            let embed = t.elapsed().as_secs_f64();
            let questions: Vec<&str> = task.questions.iter().map(|q| q.question.as_str()).collect();
            let t = Instant::now();
            let hits = r.search(&e, &questions, 3)?;
            let search_ms = t.elapsed().as_secs_f64() * 1e3 / questions.len() as f64;
            let bytes = r.save(&out_dir.join("index.rtidx"))?;
            let typos: Vec<String> = questions.iter().map(|q| with_typos(q)).collect();
            let typos: Vec<&str> = typos.iter().map(String::as_str).collect();
            let typo_hits = r.search(&e, &typos, 1)?;
            let typo_r1 = task
                .questions
                .iter()
                .zip(&typo_hits)
                .filter(|(q, h)| h.iter().any(|&(i, _)| q.sources.contains(&task.corpus[i].id)))
                .count();
            let (mut r1, mut r3, mut seen, mut seen_n, mut held, mut held_n) = (0, 0, 0, 0, 0, 0);
            for (q, h) in task.questions.iter().zip(&hits) {
                let is_gold = |&(i, _): &(usize, f32)| q.sources.contains(&task.corpus[i].id);
                let top1 = h.iter().take(1).any(is_gold);
                r1 += usize::from(top1);
                r3 += usize::from(h.iter().any(is_gold));
                if q.phrasing.as_deref() == Some("seen") {
                    (seen, seen_n) = (seen + usize::from(top1), seen_n + 1);
                } else {
                    (held, held_n) = (held + usize::from(top1), held_n + 1);
                }
            }
            let n = task.questions.len() as f64;
            println!(
                "| {} | {} | {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} | {fit:.3} | {embed:.3} | {search_ms:.3} | {:.1} |",
                task.corpus.len(),
                task.questions.len(),
                r1 as f64 / n,
                r3 as f64 / n,
                seen as f64 / seen_n.max(1) as f64,
                held as f64 / held_n.max(1) as f64,
                typo_r1 as f64 / n,
                bytes as f64 / 1e6,
            );
        }
    }
    std::fs::remove_dir_all(&out_dir)?;
    Ok(())
}

/// `q` with the middle letter of every capitalised word after the first removed.
fn with_typos(q: &str) -> String {
    let words: Vec<String> = q
        .split(' ')
        .enumerate()
        .map(|(i, w)| {
            let chars: Vec<char> = w.chars().collect();
            let letters = chars.iter().filter(|c| c.is_alphabetic()).count();
            if i > 0 && chars.first().is_some_and(|c| c.is_uppercase()) && letters >= 4 {
                let mid = letters / 2;
                chars.iter().enumerate().filter(|&(j, _)| j != mid).map(|(_, c)| c).collect()
            } else {
                w.to_string()
            }
        })
        .collect();
    words.join(" ")
}
