//! `ragtune doctor` on a machine without a GPU (CI's kind): it names the CPU and its SIMD
//! features, says why each CUDA library is absent and why `auto` chose the CPU, skips the
//! kernel compiles and the self-test with the reason, and exits 0 (nothing present is broken).

mod common;

use common::command;

fn doctor(args: &[&str]) -> std::process::Output {
    command()
        .arg("doctor")
        .args(args)
        // NVRTC absent on purpose (a folder that does not exist): no compile of every family in
        // a test, and the same result whether or not `cargo xtask kernels` fetched the wheels.
        .env("RAGTUNE_NVRTC_LIB_DIR", "/nonexistent/ragtune-doctor-test")
        .env_remove("RAGTUNE_DEVICE")
        .output()
        .expect("run ragtune doctor")
}

fn has_cuda_driver() -> bool {
    ["/usr/lib/x86_64-linux-gnu/libcuda.so.1", "/usr/lib64/libcuda.so.1", "/usr/lib/libcuda.so.1"]
        .iter()
        .any(|p| std::path::Path::new(p).exists())
}

#[test]
fn doctor_json_describes_a_machine_without_a_gpu() {
    if has_cuda_driver() {
        eprintln!("a CUDA driver is installed here: this test describes machines without one");
        return;
    }
    let out = doctor(&["--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cpu = r["cpu"]["model"].as_str().unwrap();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    assert!(cpuinfo.is_empty() || cpuinfo.contains(cpu), "cpu {cpu:?} is not /proc/cpuinfo's");
    assert!(r["cpu"]["threads"].as_u64().unwrap() >= 1);
    #[cfg(target_arch = "x86_64")]
    {
        let features: Vec<&str> =
            r["cpu"]["features"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
        assert_eq!(features.contains(&"avx2"), std::is_x86_feature_detected!("avx2"));
        assert_eq!(features.contains(&"avx512f"), std::is_x86_feature_detected!("avx512f"));
    }
    assert!(r["driver"]["absent"].as_str().unwrap().contains("libcuda"), "{r}");
    assert!(r["nvrtc"]["absent"].as_str().unwrap().contains("RAGTUNE_NVRTC_LIB_DIR"), "{r}");
    assert!(r["cublas"]["absent"].is_string(), "{r}");
    assert!(r["auto"]["device"].as_str().unwrap().starts_with("cpu"), "{r}");
    assert!(r["auto"]["cpu_reason"].as_str().unwrap().contains("libcuda"), "{r}");
    assert!(r["kernels"]["skipped"].as_str().unwrap().contains("NVRTC"), "{r}");
    assert!(r["selftest"]["skipped"].as_str().unwrap().contains("no usable GPU"), "{r}");
    assert_eq!(r["ok"], true);
}

#[test]
fn doctor_text_has_a_line_per_layer_and_refuses_the_cpu() {
    if has_cuda_driver() {
        return;
    }
    let out = doctor(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    for head in ["cpu ", "driver ", "nvrtc ", "cublas ", "auto ", "kernels ", "self-test "] {
        assert!(text.lines().any(|l| l.starts_with(head)), "no `{head}` line in:\n{text}");
    }
    assert!(text.contains("auto       cpu — "), "{text}");

    let out = doctor(&["--device", "cpu"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--device cpu") && err.contains("cuda:N"), "{err}");
}
