//! `.npy` reading and writing: round trips, the header variants NumPy writes, and clear errors
//! for Fortran order, other dtypes, wrong ranks and truncated files.

mod common;

use common::temp_path;
use ragtune_compute::DType;
use ragtune_index::npy;

/// A hand-made .npy (version 1.0) with `header` and `data`.
fn raw(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(data);
    out
}

#[test]
fn round_trips() {
    let p = temp_path("scores.npy");
    let v: Vec<f32> = (0..12).map(|i| i as f32 * 0.5 - 1.0).collect();
    npy::write_f32(&p, &[3, 4], &v).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0, "data starts on a 64-byte boundary");
    let t = npy::read_vectors(&p).unwrap();
    assert_eq!((t.shape(), t.dtype()), (&[3usize, 4][..], DType::F32));
    assert_eq!(t.to_vec::<f32>().unwrap(), v);

    let p = temp_path("ids.npy");
    npy::write_i64(&p, &[2, 3], &[1, 2, 3, 4, 5, -1]).unwrap();
    let a = npy::read(&p).unwrap();
    assert_eq!((a.shape, a.dtype), (vec![2, 3], npy::NpyDType::I64));
    npy::write_i64(&p, &[3], &[7, 8, 9]).unwrap();
    assert_eq!(npy::read_ids(&p).unwrap(), vec![7, 8, 9]);
}

#[test]
fn reads_f16_and_numpy_header_variants() {
    let p = temp_path("f16.npy");
    let data: Vec<u8> =
        [1.0f32, -2.0, 0.5, 4.0].iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
    std::fs::write(&p, raw("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2), }", &data)).unwrap();
    let t = npy::read_vectors(&p).unwrap();
    assert_eq!(t.dtype(), DType::F16);
    assert_eq!(t.to_vec_f32().unwrap(), vec![1.0, -2.0, 0.5, 4.0]);
    // Double quotes, no trailing comma, keys in another order.
    let data: Vec<u8> = [3i64, 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&p, raw(r#"{"shape": (2,), "fortran_order": False, "descr": "<i8"}"#, &data)).unwrap();
    assert_eq!(npy::read_ids(&p).unwrap(), vec![3, 4]);
}

#[test]
fn bad_files_name_the_file_and_the_fix() {
    let p = temp_path("bad.npy");
    let name = p.display().to_string();
    let f4 = vec![0u8; 16];
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (raw("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", &f4), "np.ascontiguousarray"),
        (raw("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }", &f4), "astype(np.float32)"),
        (raw("{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", &f4), "unsupported dtype '>f4'"),
        (raw("{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }", &f4), "truncated"),
        (raw("{'descr': '<f4', 'fortran_order': False, 'shape': (16,), }", &[0u8; 64]), "2-D array"),
        (raw("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", &f4), "float32"),
        (b"PK\x03\x04 not npy".to_vec(), "np.save"),
    ];
    for (bytes, want) in cases {
        std::fs::write(&p, &bytes).unwrap();
        let e = npy::read_vectors(&p).unwrap_err().to_string();
        assert!(e.contains(&name) && e.contains(want), "want {want:?} in: {e}");
    }
    let neg: Vec<u8> = [-3i64].iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&p, raw("{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", &neg)).unwrap();
    assert!(npy::read_ids(&p).unwrap_err().to_string().contains("negative"));
}
