//! Scratch: MiniLM texts/s, the old unsorted path (chunks of `batch` in input order through
//! `embed_ids`) against `BertEmbedder::embed`, alternating; outputs compared first.
//! The texts are the `embed` suite's.
//!     embed_speed MODEL_DIR [TEXTS] [BATCH] [ROUNDS]
//! ROUNDS 0 runs only `embed`, three times (for a profile of the current path alone).
use std::time::Instant;

use ragtune_bench::suites::embed::texts;
use ragtune_compute::{DType, Device};
use ragtune_runtime::bert::BertEmbedder;

fn old_embed(e: &BertEmbedder, texts: &[&str], batch: usize) -> Vec<Vec<f32>> {
    let mut out = Vec::new();
    for chunk in texts.chunks(batch) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|t| e.tokenize(t).unwrap()).collect();
        let refs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        out.extend(e.model.embed_ids(&refs).unwrap());
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let n: usize = args.get(2).map_or(2000, |s| s.parse().unwrap());
    let batch: usize = args.get(3).map_or(32, |s| s.parse().unwrap());
    let rounds: usize = args.get(4).map_or(3, |s| s.parse().unwrap());
    let e = BertEmbedder::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
    let owned = texts(n);
    let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
    if rounds == 0 {
        for _ in 0..3 {
            let t = Instant::now();
            std::hint::black_box(e.embed(&refs, batch).unwrap());
            println!("embed: {:.1} texts/s", n as f64 / t.elapsed().as_secs_f64());
        }
        return;
    }
    let a = old_embed(&e, &refs, batch);
    let b = e.embed(&refs, batch).unwrap();
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()).fold(0f32, f32::max))
        .fold(0f32, f32::max);
    println!("{n} texts, batch {batch}: max |old - new| = {worst:.2e}");
    assert!(worst < 1e-4, "outputs differ");
    let (mut told, mut tnew) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for j in 0..2 {
            let t = Instant::now();
            if (j + round) % 2 == 0 {
                std::hint::black_box(old_embed(&e, &refs, batch));
                told.push(t.elapsed().as_secs_f64());
            } else {
                std::hint::black_box(e.embed(&refs, batch).unwrap());
                tnew.push(t.elapsed().as_secs_f64());
            }
        }
    }
    told.sort_by(f64::total_cmp);
    tnew.sort_by(f64::total_cmp);
    let (o, w) = (told[told.len() / 2], tnew[tnew.len() / 2]);
    println!("old {:.1} texts/s, new {:.1} texts/s, new/old {:.2}×", n as f64 / o, n as f64 / w, o / w);
}
