//! The device memory meter, checked through tensors and an op on a kernel device (the CPU
//! emulation, or a real GPU): what a tensor uploads is counted to the byte, an op's output and
//! scratch raise the peak, dropping gives the bytes back, and a reset starts the peak afresh.
//! Run it alone in its process: other work on the same device would move the counts.

use ragtune_compute::{Device, Tensor, ops};

pub fn meter_counts_tensors(device: &Device) {
    let before = device.memory_stats().expect("a kernel device reports its memory");
    device.reset_peak_memory();
    assert_eq!(device.memory_stats().unwrap().peak, before.in_use, "a reset starts from what is live");

    let (m, k, n) = (1000, 256, 64);
    let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32).collect();
    let a = Tensor::from_slice(&a, &[m, k]).unwrap().to_device(device).unwrap();
    let b = Tensor::from_slice(&b, &[k, n]).unwrap().to_device(device).unwrap();
    let inputs = (4 * (m * k + k * n)) as u64;
    let loaded = device.memory_stats().unwrap();
    assert_eq!(loaded.in_use, before.in_use + inputs, "two uploads of {inputs} bytes in all");
    assert!(loaded.allocations >= before.allocations + 2);

    let c = ops::matmul(&a, &b).unwrap();
    let out = (4 * m * n) as u64;
    let with_output = device.memory_stats().unwrap();
    assert!(with_output.in_use >= before.in_use + inputs + out, "the output's {out} bytes are live");
    let host = c.to_host().unwrap();
    assert_eq!(host.shape(), &[m, n]);
    drop((c, host));
    let after_op = device.memory_stats().unwrap();
    assert_eq!(after_op.in_use, before.in_use + inputs, "the output and any scratch were given back");
    assert!(after_op.peak >= before.in_use + inputs + out, "the peak saw the output: {after_op:?}");

    drop((a, b));
    let done = device.memory_stats().unwrap();
    assert_eq!(done.in_use, before.in_use, "every byte came back");
    assert!(done.peak >= after_op.peak);
    device.reset_peak_memory();
    assert_eq!(device.memory_stats().unwrap().peak, before.in_use);
    assert!(Device::cpu().memory_stats().is_none(), "the CPU has no device memory of its own");
}
