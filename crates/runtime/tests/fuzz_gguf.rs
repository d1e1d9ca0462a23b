//! Issue 17, item 7: mutation tests of the GGUF reader. A small valid file — a one-layer llama
//! with a byte-level BPE vocabulary, its weights in F32, F16, Q8_0 and Q4_K (written with
//! `gguf::encode::quantize`) — is mutated where GGUF keeps its structure: the tensor and
//! metadata counts, each tensor's rank, dims, type code and data offset, metadata value types,
//! the vocabulary's array length and the alignment; plus plain byte edits. `load_gguf` must
//! give a model or an error: never a panic, an abort or more than 1 GiB.

use ragtune_compute::{DType, Device};
use ragtune_runtime::gguf::encode::quantize;
use ragtune_runtime::gguf::{GgmlType, GgufValue, GgufWriter, load_gguf};
use ragtune_tests::fuzz::mutate::{HUGE, pick, put_le};
use ragtune_tests::fuzz::{CountingAlloc, file, fuzz, mutate};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

const HIDDEN: usize = 32;
const FFN: usize = 256;
const TOKENS: &[&str] = &["<s>", "</s>", "a", "b", "c", "Ġ", "ab", "abc", "Ġa"];

/// The file and the byte positions of its mutable fields.
struct Layout {
    bytes: Vec<u8>,
    /// Each tensor's (rank field, dims, type code, offset) positions.
    tensors: Vec<(usize, Vec<usize>, usize, usize)>,
    /// Positions of the metadata value-type fields and of the token array's length.
    value_types: Vec<usize>,
    tokens_len: usize,
}

fn weights(n: usize, seed: u64) -> Vec<f32> {
    (0..n).map(|i| (((i as u64 * 2654435761 + seed) % 1000) as f32 / 1000.0 - 0.5) * 0.2).collect()
}

fn find(bytes: &[u8], needle: &[u8]) -> usize {
    bytes.windows(needle.len()).position(|w| w == needle).expect("the field is in the file")
}

/// A GGUF string as laid out in the file: u64 length, then the bytes.
fn gguf_str(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

fn tiny_model() -> Layout {
    let s = |v: &str| GgufValue::String(v.into());
    let u = |v: usize| GgufValue::U32(v as u32);
    let mut w = GgufWriter::new();
    w.metadata("general.architecture", s("llama"))
        .metadata("llama.context_length", u(64))
        .metadata("llama.embedding_length", u(HIDDEN))
        .metadata("llama.block_count", u(1))
        .metadata("llama.feed_forward_length", u(FFN))
        .metadata("llama.attention.head_count", u(4))
        .metadata("llama.attention.head_count_kv", u(2))
        .metadata("llama.rope.freq_base", GgufValue::F32(10000.0))
        .metadata("llama.attention.layer_norm_rms_epsilon", GgufValue::F32(1e-5))
        .metadata("tokenizer.ggml.model", s("gpt2"))
        .metadata("tokenizer.ggml.pre", s("llama-bpe"))
        .metadata("tokenizer.ggml.tokens", GgufValue::Array(TOKENS.iter().map(|t| s(t)).collect()))
        .metadata(
            "tokenizer.ggml.token_type",
            GgufValue::Array((0..TOKENS.len()).map(|i| GgufValue::I32(if i < 2 { 3 } else { 1 })).collect()),
        )
        .metadata("tokenizer.ggml.merges", GgufValue::Array(vec![s("a b"), s("ab c"), s("Ġ a")]))
        .metadata("tokenizer.ggml.bos_token_id", u(0))
        .metadata("tokenizer.ggml.eos_token_id", u(1));
    let kv = 2 * HIDDEN / 4;
    let v = TOKENS.len();
    let tensors: Vec<(&str, Vec<usize>, GgmlType)> = vec![
        ("token_embd.weight", vec![v, HIDDEN], GgmlType::F16),
        ("output_norm.weight", vec![HIDDEN], GgmlType::F32),
        ("output.weight", vec![v, HIDDEN], GgmlType::Q8_0),
        ("blk.0.attn_norm.weight", vec![HIDDEN], GgmlType::F32),
        ("blk.0.attn_q.weight", vec![HIDDEN, HIDDEN], GgmlType::Q8_0),
        ("blk.0.attn_k.weight", vec![kv, HIDDEN], GgmlType::F32),
        ("blk.0.attn_v.weight", vec![kv, HIDDEN], GgmlType::F32),
        ("blk.0.attn_output.weight", vec![HIDDEN, HIDDEN], GgmlType::F16),
        ("blk.0.ffn_norm.weight", vec![HIDDEN], GgmlType::F32),
        ("blk.0.ffn_gate.weight", vec![FFN, HIDDEN], GgmlType::F32),
        ("blk.0.ffn_up.weight", vec![FFN, HIDDEN], GgmlType::F32),
        // 256 values a row: one Q4_K super-block.
        ("blk.0.ffn_down.weight", vec![HIDDEN, FFN], GgmlType::Q4_K),
    ];
    for (i, (name, shape, kind)) in tensors.iter().enumerate() {
        let data = weights(shape.iter().product(), i as u64);
        w.tensor(name, shape, *kind, quantize(*kind, &data).expect("the encoder takes whole blocks"));
    }
    let bytes = w.to_bytes();
    let fields = tensors
        .iter()
        .map(|(name, shape, _)| {
            let rank = find(&bytes, &gguf_str(name)) + 8 + name.len();
            let dims: Vec<usize> = (0..shape.len()).map(|d| rank + 4 + 8 * d).collect();
            let kind = rank + 4 + 8 * shape.len();
            (rank, dims, kind, kind + 4)
        })
        .collect();
    let value_types = ["llama.block_count", "llama.embedding_length", "tokenizer.ggml.tokens"]
        .iter()
        .map(|k| find(&bytes, &gguf_str(k)) + 8 + k.len())
        .collect();
    // tokens: key, type (9 = array), inner type (u32), then the u64 length.
    let tokens_len = find(&bytes, &gguf_str("tokenizer.ggml.tokens")) + 8 + 21 + 8;
    Layout { bytes, tensors: fields, value_types, tokens_len }
}

/// One structural edit (a [`HUGE`] number or a small wrong one over a counted field), or byte
/// edits anywhere.
fn mutate_gguf(rng: &mut ChaCha8Rng, l: &Layout) -> Vec<u8> {
    let mut b = l.bytes.clone();
    let number = if rng.random() { *pick(rng, HUGE) } else { rng.random_range(0..40) };
    let (rank, dims, kind, offset) = pick(rng, &l.tensors).clone();
    match rng.random_range(0..9) {
        0 => put_le(&mut b, 8 * rng.random_range(1..3), number, 8),
        1 => put_le(&mut b, rank, number, 4),
        // Any size: dims whose product overflows a u64 are refused by name (see
        // huge_dims_are_an_error_not_an_overflow below).
        2 => put_le(&mut b, *pick(rng, &dims), number, 8),
        3 => put_le(&mut b, kind, number, 4),
        4 => put_le(&mut b, offset, number, 8),
        5 => put_le(&mut b, *pick(rng, &l.value_types), number, 4),
        6 => put_le(&mut b, l.tokens_len, number, 8),
        _ => b = mutate::bytes(rng, &l.bytes, 64),
    }
    b
}

#[test]
fn the_unmutated_file_loads() {
    let l = tiny_model();
    let path = std::env::temp_dir().join(format!("ragtune-fuzz-gguf-base-{}.gguf", std::process::id()));
    std::fs::write(&path, &l.bytes).unwrap();
    let (model, tokenizer) = load_gguf(&path, DType::F32, Device::Cpu).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(model.config.hidden_size, HIDDEN);
    assert_eq!(tokenizer.encode("abc", false).unwrap(), [7], "the merges made one token");
}

#[test]
fn fuzz_gguf() {
    let l = tiny_model();
    fuzz(
        "gguf",
        23,
        |rng| file("model.gguf", mutate_gguf(rng, &l)),
        |dir| load_gguf(&dir.join("model.gguf"), DType::F32, Device::Cpu),
    );
}

/// The reproducer the fuzzer found (seed 23, case 56): two dims of 2^40 make the element count
/// overflow in `TensorInfo::numel` (crates/runtime/src/gguf/reader.rs), a panic in debug builds
/// and a wrapped, wrong size in release; now an error naming the tensor
/// (`TensorInfo::checked_numel`, checked for every tensor when the file is parsed).
#[test]
fn huge_dims_are_an_error_not_an_overflow() {
    let mut l = tiny_model();
    let (_, dims, _, _) = l.tensors[2].clone();
    for at in dims {
        put_le(&mut l.bytes, at, 1 << 40, 8);
    }
    let path = std::env::temp_dir().join(format!("ragtune-fuzz-gguf-dims-{}.gguf", std::process::id()));
    std::fs::write(&path, &l.bytes).unwrap();
    let result = std::panic::catch_unwind(|| load_gguf(&path, DType::F32, Device::Cpu).map(drop));
    std::fs::remove_file(&path).ok();
    let e = result.expect("no panic").expect_err("2^80 elements cannot load").to_string();
    assert!(e.contains("output.weight"), "{e}");
}
