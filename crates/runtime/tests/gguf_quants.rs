//! GGUF block dequantisation against llama.cpp's own Python package: `make_gguf_quant_fixtures.py`
//! ran `gguf.quants.dequantize` on seeded random blocks (finite f16 scales) of every block type
//! ragtune reads; every f32 here must be bit-identical to gguf-py's. Types ragtune still lacks are
//! refused with errors that name them.

mod common;

use std::sync::Arc;

use common::fixtures;
use ragtune_runtime::gguf::quant::dequantize;
use ragtune_runtime::gguf::{GgmlType, GgufFile, GgufWriter};
use serde_json::Value;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn every_block_type_is_bit_identical_to_gguf_py() {
    let path = fixtures().join("gguf-quants/blocks.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let types = doc["types"].as_array().unwrap();
    let mut seen = Vec::new();
    for t in types {
        let name = t["type"].as_str().unwrap();
        let kind = GgmlType::from_code(t["code"].as_u64().unwrap() as u32).unwrap();
        assert_eq!(format!("{kind:?}"), name);
        let (elems, bytes) = kind.block();
        assert_eq!(
            (elems as u64, bytes as u64),
            (t["block_elems"].as_u64().unwrap(), t["block_bytes"].as_u64().unwrap())
        );
        let raw = hex(t["bytes_hex"].as_str().unwrap());
        let want: Vec<u32> = hex(t["f32_le_hex"].as_str().unwrap())
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let got = dequantize(kind, &raw).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), *w, "{name} element {i}: {g} vs gguf-py {}", f32::from_bits(*w));
        }
        // Random blocks give values spread over the range, not a constant.
        assert!(got.iter().any(|&v| v != got[0]), "{name}");
        seen.push(kind);
    }
    for kind in [GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q5_K] {
        assert!(seen.contains(&kind), "{kind:?} missing from the fixture");
    }
}

#[test]
fn unsupported_types_are_named() {
    // Q8_K is llama.cpp's intermediate for dot products, never a stored tensor type.
    let err = dequantize(GgmlType::Q8_K, &[0u8; 292]).unwrap_err();
    assert!(err.contains("Q8_K") && err.contains("not supported"), "{err}");
    let err = dequantize(GgmlType::Q5_K, &[0u8; 175]).unwrap_err();
    assert!(err.contains("175") && err.contains("Q5_K"), "{err}");
    // IQ2_XXS (GGML type 16): the file does not even parse, and the error names the tensor.
    let mut w = GgufWriter::new();
    w.tensor("blk.0.ffn_up.weight", &[1, 256], GgmlType::Q2_K, vec![0u8; 84]);
    let mut bytes = w.to_bytes();
    let at = bytes.windows(4).rposition(|b| b == 10u32.to_le_bytes()).unwrap();
    bytes[at..at + 4].copy_from_slice(&16u32.to_le_bytes());
    let err = GgufFile::parse(Arc::new(bytes), "iq.gguf").err().unwrap().to_string();
    assert!(err.contains("blk.0.ffn_up.weight") && err.contains("type 16"), "{err}");
}
