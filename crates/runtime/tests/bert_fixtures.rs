//! The BERT embedder against sentence-transformers' recorded outputs (f32, rel-err ≤ 1e-4).

mod common;

use common::{fixtures, manifest, read_npy, rel_err, unpadded};
use ragtune_compute::{DType, Device};
use ragtune_runtime::{BertEmbedder, PoolingMode};

#[test]
fn bert_matches_sentence_transformers() {
    let m = manifest();
    let case = &m["models"]["bert-mini"];
    let tol = m["tolerances"]["embeddings_rel_err"].as_f64().unwrap();
    let dir = fixtures().join("bert-mini/model");
    let emb = BertEmbedder::from_dir(&dir, DType::F32, Device::Cpu).unwrap();
    assert_eq!(emb.model.pooling.mode, PoolingMode::Mean);
    assert!(emb.model.pooling.normalize);

    let sentences: Vec<&str> =
        case["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let expected_ids = unpadded(case);
    for (s, want) in sentences.iter().zip(&expected_ids) {
        assert_eq!(&emb.tokenize(s).unwrap(), want, "{s:?}");
    }

    let refs: Vec<&[u32]> = expected_ids.iter().map(Vec::as_slice).collect();
    let hidden = emb.model.hidden_states(&refs).unwrap().to_vec_f32().unwrap();
    let (shape, reference) = read_npy(&fixtures().join(case["last_hidden_state"].as_str().unwrap()));
    let (s, h) = (shape[1], shape[2]);
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for (b, seq) in expected_ids.iter().enumerate() {
        for t in 0..seq.len() {
            ours.extend_from_slice(&hidden[(b * s + t) * h..(b * s + t + 1) * h]);
            theirs.extend_from_slice(&reference[(b * s + t) * h..(b * s + t + 1) * h]);
        }
    }
    let err = rel_err(&ours, &theirs);
    assert!(err <= tol, "last hidden state rel err {err:.2e}");

    let vectors = emb.embed(&sentences, 2).unwrap();
    let flat: Vec<f32> = vectors.concat();
    let (_, reference) = read_npy(&fixtures().join(case["embeddings"].as_str().unwrap()));
    let err = rel_err(&flat, &reference);
    assert!(err <= tol, "embeddings rel err {err:.2e}");
}
