//! `ragtune index build|search|info` end to end through the built binary: flat and IVF builds,
//! outputs equal to the library's search, `--json`, and clear errors with a non-zero exit.

mod common;

use std::path::{Path, PathBuf};

use common::{command, dir, fails, ok, p};
use ragtune_compute::{DType, Device, Tensor};
use ragtune_index::{FlatIndex, Metric, npy};

/// Deterministic pseudo-random rows in [-1, 1).
fn rows(n: usize, dim: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n * dim)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `n` × `dim` of [`rows`] from `seed`, written to `path` as an f32 `.npy`.
fn write_rows(path: &Path, n: usize, dim: usize, seed: u64) {
    npy::write_f32(path, &[n, dim], &rows(n, dim, seed)).unwrap();
}

/// `.npy` files of `dim`-wide [`rows`] in `d`, one per `(file name, n, seed)`, written in order;
/// returns their paths.
fn write_files<const N: usize>(d: &Path, dim: usize, files: [(&str, usize, u64); N]) -> [PathBuf; N] {
    files.map(|(name, n, seed)| {
        let path = d.join(name);
        write_rows(&path, n, dim, seed);
        path
    })
}

/// A folder of its own for one test inside the binary's shared `index` scratch folder.
fn case_dir(name: &str) -> PathBuf {
    let d = dir("index").join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `index build --vectors V --metric M --device cpu --out OUT`, then `extra`.
fn build_args<'a>(vectors: &'a Path, metric: &'a str, out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["index", "build", "--vectors", p(vectors), "--metric", metric, "--device", "cpu"];
    args.extend(["--out", p(out)]);
    args.extend_from_slice(extra);
    args
}

/// `index search --index I --queries Q --k K --device cpu --out-ids IDS --out-scores SCORES`,
/// then `extra`.
fn search_args<'a>(
    index: &'a Path,
    queries: &'a Path,
    k: &'a str,
    (ids, scores): (&'a Path, &'a Path),
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["index", "search", "--index", p(index), "--queries", p(queries), "--k", k];
    args.extend(["--device", "cpu", "--out-ids", p(ids), "--out-scores", p(scores)]);
    args.extend_from_slice(extra);
    args
}

#[test]
fn build_search_info_flat_matches_the_library() {
    let d = dir("index");
    let (n, dim, nq) = (500, 24, 7);
    let base = rows(n, dim, 1);
    let queries = rows(nq, dim, 2);
    let ids: Vec<i64> = (0..n as i64).map(|i| 1000 + 3 * i).collect();
    let (vf, idf, qf) = (d.join("v.npy"), d.join("ids.npy"), d.join("q.npy"));
    npy::write_f32(&vf, &[n, dim], &base).unwrap();
    npy::write_i64(&idf, &[n], &ids).unwrap();
    npy::write_f32(&qf, &[nq, dim], &queries).unwrap();
    let index = d.join("flat.rtx");
    let out = ok(&build_args(&vf, "cosine", &index, &["--ids", p(&idf)]));
    assert!(out.contains("built flat index of 500 24-d vectors"), "{out}");
    let (oi, os) = (d.join("out-ids.npy"), d.join("out-scores.npy"));
    let out = ok(&search_args(&index, &qf, "10", (&oi, &os), &[]));
    assert!(out.contains("searched 7 queries"), "{out}");
    let got_ids = npy::read(&oi).unwrap();
    assert_eq!((got_ids.shape.clone(), got_ids.dtype), (vec![nq, 10], npy::NpyDType::I64));
    let got_ids: Vec<i64> = bytemuck::pod_collect_to_vec(&got_ids.data);
    let got_scores = npy::read_vectors(&os).unwrap().to_vec::<f32>().unwrap();

    let mut lib = FlatIndex::new(dim, Metric::Cosine, DType::F32, &Device::Cpu).unwrap();
    let uids: Vec<u64> = ids.iter().map(|&i| i as u64).collect();
    lib.add(&Tensor::from_slice(&base, &[n, dim]).unwrap(), &uids).unwrap();
    let want = lib.search(&Tensor::from_slice(&queries, &[nq, dim]).unwrap(), 10, None).unwrap();
    for (q, w) in want.iter().enumerate() {
        let wi: Vec<i64> = w.ids.iter().map(|&i| i as i64).collect();
        assert_eq!(&got_ids[q * 10..(q + 1) * 10], &wi[..]);
        assert_eq!(&got_scores[q * 10..(q + 1) * 10], &w.scores[..]);
    }

    let info = ok(&["index", "info", p(&index)]);
    assert!(
        info.contains("checksum ok") && info.contains("cosine") && info.contains("vectors 500"),
        "{info}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&["index", "info", p(&index), "--json"])).unwrap();
    assert_eq!(json["count"], 500);
    assert_eq!(json["kind"], "flat");
    assert_eq!(json["dim"], 24);

    // k > len gives len columns.
    ok(&search_args(&index, &qf, "900", (&oi, &os), &[]));
    assert_eq!(npy::read(&oi).unwrap().shape, vec![nq, n]);
}

#[test]
fn ivf_build_and_search_with_json() {
    let d = dir("index");
    let (n, dim) = (2000, 16);
    let [vf, qf] = write_files(&d, dim, [("iv.npy", n, 3), ("iq.npy", 5, 4)]);
    let index = d.join("ivf.rtx");
    let ivf = ["--kind", "ivf", "--nlist", "16", "--dtype", "f16", "--json"];
    let out = ok(&build_args(&vf, "l2", &index, &ivf));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (json["kind"].as_str(), json["nlist"].as_u64(), json["nprobe"].as_u64()),
        (Some("ivf"), Some(16), Some(2))
    );
    let (oi, os) = (d.join("iv-ids.npy"), d.join("iv-scores.npy"));
    let out = ok(&search_args(&index, &qf, "5", (&oi, &os), &["--nprobe", "16", "--json"]));
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["queries"], 5);
    let scores = npy::read_vectors(&os).unwrap().to_vec::<f32>().unwrap();
    assert!(scores.chunks(5).all(|r| r.windows(2).all(|w| w[0] <= w[1])), "l2 scores ascend");
    let info: serde_json::Value = serde_json::from_str(&ok(&["index", "info", p(&index), "--json"])).unwrap();
    assert_eq!((info["dtype"].as_str(), info["nlist"].as_u64()), (Some("f16"), Some(16)));
}

#[test]
fn bad_input_fails_with_a_clear_message() {
    let d = dir("index");
    let vf = d.join("e.npy");
    write_rows(&vf, 4, 3, 5);
    let idx = d.join("e.rtx");
    let e = fails(&["index", "build", "--vectors", p(&vf), "--metric", "hamming", "--out", p(&idx)]);
    assert!(e.contains("use ip, cosine or l2"), "{e}");
    let e =
        fails(&["index", "build", "--vectors", p(&d.join("nope.npy")), "--metric", "ip", "--out", p(&idx)]);
    assert!(e.contains("nope.npy"), "{e}");
    let mut nan = rows(4, 3, 5);
    nan[5] = f32::NAN;
    npy::write_f32(&vf, &[4, 3], &nan).unwrap();
    let e = fails(&build_args(&vf, "ip", &idx, &[]));
    assert!(e.contains("NaN") && e.contains("row 1"), "{e}");
    assert!(!idx.exists(), "no index is written when the build fails");
    write_rows(&vf, 4, 3, 5);
    ok(&build_args(&vf, "ip", &idx, &[]));
    let (a, b) = (d.join("a.npy"), d.join("b.npy"));
    let e = fails(&search_args(&idx, &vf, "0", (&a, &b), &[]));
    assert!(e.contains("k must be at least 1"), "{e}");
    let bytes = std::fs::read(&idx).unwrap();
    std::fs::write(&idx, &bytes[..bytes.len() - 7]).unwrap();
    let e = fails(&["index", "info", p(&idx)]);
    assert!(e.contains("e.rtx") && e.contains("truncated"), "{e}");
}

/// Issue 17: the sizes a user types never panic and never size an allocation beyond the data.
#[test]
fn huge_sizes_are_clamped_or_refused_by_name() {
    let d = case_dir("huge");
    let (n, dim) = (200, 8);
    let [vf, qf] = write_files(&d, dim, [("v.npy", n, 11), ("q.npy", 3, 12)]);
    let (oi, os) = (d.join("oi.npy"), d.join("os.npy"));
    for metric in ["ip", "cosine", "l2"] {
        for kind in ["flat", "ivf"] {
            let idx = d.join(format!("{metric}-{kind}.rtx"));
            ok(&build_args(&vf, metric, &idx, &["--kind", kind]));
            for k in ["18446744073709551615", "9223372036854775807", "1000000000"] {
                ok(&search_args(&idx, &qf, k, (&oi, &os), &[]));
                let ids = npy::read(&oi).unwrap();
                assert_eq!(ids.shape, vec![3, n], "{metric} {kind} k {k}: clamped to the index size");
            }
        }
    }
    let idx = d.join("ivf.rtx");
    for nlist in ["18446744073709551615", "1000000", "201", "0"] {
        let e = fails(&build_args(&vf, "l2", &idx, &["--kind", "ivf", "--nlist", nlist]));
        assert!(e.contains(&format!("--nlist {nlist}")) && e.contains("200"), "{e}");
        assert!(!e.contains("panicked"), "{e}");
    }
    let flat = d.join("l2-flat.rtx");
    let e = fails(&search_args(&flat, &qf, "3", (&oi, &os), &["--nprobe", "0"]));
    assert!(e.contains("--nprobe 0"), "{e}");
}

#[test]
fn duplicate_ids_and_empty_rows_name_their_file() {
    let d = case_dir("blame");
    let (vf, idf, zf) = (d.join("v.npy"), d.join("ids.npy"), d.join("zero.npy"));
    write_rows(&vf, 10, 4, 13);
    npy::write_i64(&idf, &[10], &[0, 1, 2, 3, 4, 5, 6, 7, 8, 3]).unwrap();
    npy::write_f32(&zf, &[200, 0], &[]).unwrap();
    let idx = d.join("x.rtx");
    let e = fails(&build_args(&vf, "ip", &idx, &["--ids", p(&idf)]));
    assert!(e.contains("--ids") && e.contains("ids.npy") && e.contains("id 3"), "{e}");
    let e = fails(&build_args(&zf, "ip", &idx, &[]));
    assert!(e.contains("zero.npy") && e.contains("[200, 0]"), "{e}");
}

/// Issue 17: `index build` killed (SIGKILL) at random points leaves the old index or the new one,
/// never a torn file, and the next successful build removes the killed builds' temporaries.
#[test]
fn a_killed_build_leaves_old_or_new_and_no_leftovers() {
    let d = case_dir("kill");
    let (n, dim) = (40_000, 64);
    let [va, vb] = write_files(&d, dim, [("a.npy", n, 21), ("b.npy", n, 22)]);
    let out = d.join("k.rtx");
    let (build_a, build_b) = (build_args(&va, "l2", &out, &[]), build_args(&vb, "l2", &out, &[]));
    ok(&build_a);
    let old = std::fs::read(&out).unwrap();
    let started = std::time::Instant::now();
    ok(&build_b);
    let full = started.elapsed();
    let new = std::fs::read(&out).unwrap();
    assert_ne!(old, new);
    std::fs::write(&out, &old).unwrap();
    let mut seed = 0x5eed_u64;
    for round in 0..8 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let at = full.mul_f64((seed >> 11) as f64 / (1u64 << 53) as f64 * 1.2);
        let mut child = command().args(&build_b).stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(at);
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        let now = std::fs::read(&out).unwrap();
        assert!(now == old || now == new, "round {round}: killed after {at:?}, the index is torn");
        // Whatever it is, it loads.
        ok(&["index", "info", p(&out)]);
        std::fs::write(&out, &old).unwrap();
    }
    ok(&build_b);
    assert_eq!(std::fs::read(&out).unwrap(), new);
    let leftovers: Vec<String> = std::fs::read_dir(&d)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".k.rtx."))
        .collect();
    if cfg!(target_os = "linux") {
        assert!(leftovers.is_empty(), "temporaries of killed builds stay behind: {leftovers:?}");
    }
    std::fs::remove_dir_all(&d).unwrap();
}
