//! The emulator is as strict as the hardware about shared memory and block order (test kernels
//! in tests/kernels/emu_strict.cu): shared memory a block did not write reads as poison (0xFF
//! bytes), never zeros or a previous block's data; static shared memory over 48 KiB and dynamic
//! shared memory over 48 KiB without the opt-in are refused naming the kernel; blocks run in a
//! seeded shuffled order under `Schedule::Random`.

mod common;

use common::{kernel_fault, ptr, run};
use ragtune_compute::ComputeError;
use ragtune_compute::launch::LaunchDims;
use ragtune_kernel_emu::{
    DYNAMIC_SHARED_DEFAULT_BYTES, MAX_SHARED_BYTES_PER_BLOCK, STATIC_SHARED_LIMIT_BYTES, Schedule,
    set_max_dynamic_shared_bytes,
};

const FAM: &str = "emu_strict";

#[test]
fn shared_memory_not_written_by_the_block_reads_as_poison() {
    for schedule in Schedule::STANDARD {
        let mut y = vec![0f32; 3 * 64];
        run(FAM, "strict_read_unwritten", LaunchDims::linear(3, 64, 0), vec![ptr(&mut y)], schedule).unwrap();
        for (i, v) in y.iter().enumerate() {
            if i % 64 < 32 {
                assert_eq!(*v, 1.0, "element {i} (written) under {schedule}");
            } else {
                // 0xFFFFFFFF: a NaN, so it poisons any arithmetic downstream.
                assert_eq!(v.to_bits(), u32::MAX, "element {i} (never written) under {schedule}: {v}");
            }
        }
    }
}

#[test]
fn a_previous_blocks_shared_memory_is_not_carried_over() {
    for schedule in Schedule::STANDARD {
        let mut y = vec![0i32; 8];
        run(FAM, "strict_carry_over", LaunchDims::linear(8, 32, 0), vec![ptr(&mut y)], schedule).unwrap();
        assert_eq!(y[0], 42, "under {schedule}");
        assert!(
            y[1..].iter().all(|&v| v == -1),
            "blocks 1.. saw block 0's shared memory under {schedule}: {y:?}"
        );
    }
}

#[test]
fn static_shared_memory_up_to_48_kib_is_accepted() {
    let mut y = vec![0f32; 128];
    run(FAM, "strict_static_48k", LaunchDims::linear(2, 128, 0), vec![ptr(&mut y)], Schedule::Random(4))
        .unwrap();
    assert!(y.iter().enumerate().all(|(t, &v)| v == (12287 - t) as f32));
}

#[test]
fn static_shared_memory_over_48_kib_is_refused_naming_the_kernel() {
    let mut y = vec![0f32; 128];
    let r =
        run(FAM, "strict_static_52k", LaunchDims::linear(2, 128, 0), vec![ptr(&mut y)], Schedule::Forward);
    let msg = kernel_fault(r, "strict_static_52k");
    assert!(msg.contains("`strict_static_52k`"), "{msg}");
    // The footprint is measured as the bytes the block wrote that no longer hold the poison: a
    // lower bound (a written byte can be 0xFF), close to the 52 KiB declared.
    let used: u32 = msg
        .split("at least ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the footprint is named: {msg}"));
    assert!(used > STATIC_SHARED_LIMIT_BYTES && used <= 13312 * 4, "{msg}");
    assert!(msg.contains(&STATIC_SHARED_LIMIT_BYTES.to_string()), "the limit is named: {msg}");
}

fn dynamic(bytes: u32) -> Result<Vec<f32>, ComputeError> {
    let mut y = vec![0f32; 32];
    let args = vec![ptr(&mut y), ragtune_compute::launch::Arg::I32((bytes / 4) as i32)];
    run(FAM, "strict_dynamic", LaunchDims::linear(2, 32, bytes), args, Schedule::Random(2))?;
    Ok(y)
}

#[test]
fn dynamic_shared_memory_over_48_kib_needs_the_opt_in() {
    // Up to 48 KiB needs nothing.
    assert!(dynamic(DYNAMIC_SHARED_DEFAULT_BYTES).unwrap().iter().all(|&v| v == 7.0));
    // 64 KiB without the opt-in: refused, naming the kernel, the size and the fix.
    let bytes = 64 * 1024;
    let err = dynamic(bytes).unwrap_err().to_string();
    assert!(err.contains("strict_dynamic"), "{err}");
    assert!(err.contains(&bytes.to_string()), "{err}");
    assert!(err.contains("MAX_DYNAMIC_SHARED_SIZE_BYTES"), "{err}");
    // Opted in (what the CUDA backend does before such a launch): accepted and usable to the end.
    set_max_dynamic_shared_bytes("strict_dynamic", bytes).unwrap();
    assert!(dynamic(bytes).unwrap().iter().all(|&v| v == 7.0));
    // Over the device maximum: refused even with an opt-in, and the opt-in itself refused.
    let over = MAX_SHARED_BYTES_PER_BLOCK + 4;
    assert!(set_max_dynamic_shared_bytes("strict_dynamic", over).is_err());
    let err = dynamic(over).unwrap_err().to_string();
    assert!(err.contains(&MAX_SHARED_BYTES_PER_BLOCK.to_string()), "{err}");
}

#[test]
fn blocks_run_in_a_shuffled_order_each_exactly_once() {
    let (gx, gy) = (16u32, 4u32);
    let n = (gx * gy) as usize;
    let dims = LaunchDims { grid: (gx, gy, 1), block: (32, 1, 1), shared_bytes: 0 };
    let order_of = |schedule| {
        let (mut order, mut counter) = (vec![u32::MAX; n], vec![0u32; 1]);
        run(FAM, "strict_block_order", dims, vec![ptr(&mut order), ptr(&mut counter)], schedule).unwrap();
        assert_eq!(counter[0] as usize, n, "under {schedule}");
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n as u32).collect::<Vec<_>>(), "every block exactly once under {schedule}");
        order
    };
    assert_eq!(order_of(Schedule::Forward), (0..n as u32).collect::<Vec<_>>());
    assert_eq!(order_of(Schedule::Reverse), (0..n as u32).rev().collect::<Vec<_>>());
    let shuffled = order_of(Schedule::Random(7));
    let ascents = shuffled.windows(2).filter(|w| w[0] < w[1]).count();
    assert!(ascents > 0 && ascents < n - 1, "not monotone: {shuffled:?}");
    // Deterministic for a seed, different for another.
    assert_eq!(order_of(Schedule::Random(7)), shuffled);
    assert_ne!(order_of(Schedule::Random(8)), shuffled);
}
