//! Every kernel of `kernels/*.cu`, run on the CPU emulation of CUDA (`ragtune-kernel-emu`), against
//! the CPU side of its op — under three thread schedules, so a missing barrier shows up — and a
//! check that every emulated kernel is one the op layer launches (none is left untested).

use std::sync::Arc;

use ragtune_compute::Device;
use ragtune_kernel_emu::{EmuBackend, EmuOptions, Schedule};
use ragtune_tests::{parity, rng};

const SCHEDULES: [Schedule; 3] = [Schedule::Forward, Schedule::Reverse, Schedule::Random(0x5eed)];

fn emulated(schedule: Schedule) -> Device {
    Device::from_backend(Arc::new(EmuBackend::new(EmuOptions { schedule })))
}

#[test]
fn emulated_matmul_matches_cpu() {
    // The emulated device's GEMM is the emulator's f64 loop (cuBLAS has no CPU form): this checks
    // the op layer's batch, stride and transpose bookkeeping for the GPU side.
    parity::matmul(&emulated(Schedule::Forward), &mut rng(21));
}

#[test]
fn emulated_adamw_kernel_matches_cpu() {
    for s in SCHEDULES {
        parity::adamw(&emulated(s), &mut rng(31));
    }
}

#[test]
fn emulated_cross_entropy_kernel_matches_cpu() {
    for s in SCHEDULES {
        parity::cross_entropy(&emulated(s), &mut rng(32));
    }
}

#[test]
fn emulated_backward_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::backward(&emulated(s), &mut rng(33));
        parity::attention_backward(&emulated(s), &mut rng(34));
    }
}

#[test]
fn emulated_lora_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::lora(&emulated(s), &mut rng(35));
    }
}

#[test]
fn emulated_norm_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::norms(&emulated(s), &mut rng(22));
    }
}

#[test]
fn emulated_l2_normalize_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::l2_normalize(&emulated(s), &mut rng(26));
    }
}

#[test]
fn emulated_topk_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::topk(&emulated(s), &mut rng(27));
    }
}

#[test]
fn emulated_kmeans_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::kmeans(&emulated(s), &mut rng(28));
    }
}

#[test]
fn emulated_softmax_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::softmax(&emulated(s), &mut rng(23));
    }
}

#[test]
fn emulated_elementwise_and_act_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::elementwise(&emulated(s), &mut rng(24));
    }
}

#[test]
fn emulated_cast_kernels_match_cpu_exactly() {
    parity::cast(&emulated(Schedule::Random(7)), &mut rng(25));
}

#[test]
fn emulated_attention_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::attention(&emulated(s), &mut rng(31));
    }
}

#[test]
fn emulated_sliding_window_attention_kernels_match_cpu() {
    for s in SCHEDULES {
        parity::sliding_window_attention(&emulated(s), &mut rng(36));
    }
}

#[test]
fn emulated_rope_embed_swiglu_kernels_and_copy_match_cpu() {
    for s in SCHEDULES {
        parity::rope(&emulated(s), &mut rng(32));
        parity::embedding(&emulated(s), &mut rng(33));
        parity::swiglu(&emulated(s), &mut rng(34));
        parity::copy_into(&emulated(s), &mut rng(35));
    }
}

/// Every kernel built from kernels/*.cu is launched by some op in the suites above: the
/// list below is what the op layer names, and a new kernel must be added to a suite and here.
#[test]
fn every_emulated_kernel_is_covered_by_the_parity_suite() {
    let floats = ["f32", "bf16", "f16"];
    let all = ["f32", "bf16", "f16", "i32", "u32", "u8"];
    let mut expected: Vec<String> = Vec::new();
    for s in floats {
        for op in ["rms_norm", "layer_norm", "l2_normalize", "softmax", "add", "mul", "scale", "silu", "gelu"]
        {
            expected.push(format!("{op}_{s}"));
        }
    }
    for s in floats {
        for op in [
            "row_sqnorm",
            "topk_fused",
            "topk_stream",
            "kmeans_assign",
            "kmeans_update_sum",
            "kmeans_update_finish",
        ] {
            expected.push(format!("{op}_{s}"));
        }
    }
    for k in ["topk_merge", "topk_radix_keys", "topk_radix_select", "kmeans_update_zero"] {
        expected.push(k.to_string());
    }
    // The runtime's families: the SwiGLU gate, rope, embedding, attention (prefill, split-KV
    // decode and its combine, per specialised head dim).
    for s in floats {
        for op in ["swiglu", "rope", "embedding"] {
            expected.push(format!("{op}_{s}"));
        }
        for d in [32, 64, 80, 96, 128] {
            for kernel in ["attention_prefill", "attention_decode_split", "attention_decode_combine"] {
                expected.push(format!("{kernel}_d{d}_{s}"));
            }
        }
    }
    // The trainer's fused optimizer and loss, and the multi-adapter LoRA path.
    expected.extend(["adamw_f32".to_string(), "cross_entropy_f32".to_string()]);
    for s in floats {
        for k in ["lora_shrink", "lora_expand", "lora_bwd_du", "lora_bwd_dx", "lora_bwd_outer"] {
            expected.push(format!("{k}_{s}"));
        }
    }
    expected.push("lora_bwd_reduce_f32".to_string());
    for k in
        ["rms_norm_backward_f32", "swiglu_backward_f32", "embedding_backward_f32", "attention_backward_f32"]
    {
        expected.push(k.to_string());
    }
    for a in all {
        for b in all {
            if a != b {
                expected.push(format!("cast_{a}_{b}"));
            }
        }
    }
    // Only kernels of kernels/*.cu: the emulator also holds its own test kernels.
    let families: Vec<&str> = ragtune_compute::kernel_sources::families().iter().map(|f| f.family).collect();
    let mut built: Vec<String> = ragtune_kernel_emu::kernels()
        .into_iter()
        .filter(|k| ragtune_kernel_emu::kernel_family(k).is_some_and(|f| families.contains(&f)))
        .map(String::from)
        .collect();
    built.sort();
    expected.sort();
    assert_eq!(built, expected, "kernels in kernels/*.cu vs kernels the parity suite launches");
}
