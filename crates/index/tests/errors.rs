//! Bad input gets a typed error naming the problem, and the index is left exactly as it was.

mod common;

use common::*;
use ragtune_compute::{DType, Device, Tensor};
use ragtune_index::{FlatIndex, IndexError, IvfFlatIndex, IvfParams, Metric, SearchResult};

const DIM: usize = 6;

fn flat(metric: Metric) -> FlatIndex {
    let mut r = rng(9);
    let mut index = FlatIndex::new(DIM, metric, DType::F32, &Device::Cpu).unwrap();
    index.add(&tensor(&random_rows(&mut r, 40, DIM), DIM), &(100..140).collect::<Vec<u64>>()).unwrap();
    index
}

fn ivf() -> IvfFlatIndex {
    let mut r = rng(10);
    let mut p = IvfParams::new(4);
    p.nprobe = 4;
    IvfFlatIndex::build(
        &tensor(&random_rows(&mut r, 80, DIM), DIM),
        &(100..180).collect::<Vec<u64>>(),
        Metric::L2,
        DType::F32,
        &Device::Cpu,
        p,
    )
    .unwrap()
}

fn probe() -> Tensor {
    tensor(&random_rows(&mut rng(11), 3, DIM), DIM)
}

fn snapshot_flat(i: &FlatIndex) -> (Vec<u64>, Vec<SearchResult>) {
    (i.ids().to_vec(), i.search(&probe(), 50, None).unwrap())
}

fn snapshot_ivf(i: &IvfFlatIndex) -> (Vec<usize>, Vec<SearchResult>) {
    (i.list_sizes(), i.search(&probe(), 50, None).unwrap())
}

/// Every bad call: (what, the call).
type BadCall<T> = (&'static str, Box<dyn Fn(&mut T) -> Result<(), IndexError>>);

/// The bad calls both kinds of index share: adds, a remove of an unknown id, a search with k = 0.
fn bad_calls<T: 'static>(
    add: fn(&mut T, &Tensor, &[u64]) -> ragtune_index::Result<()>,
    remove: fn(&mut T, &[u64]) -> ragtune_index::Result<()>,
    search: fn(&T, &Tensor, usize) -> ragtune_index::Result<()>,
) -> Vec<BadCall<T>> {
    let good = random_rows(&mut rng(12), 3, DIM);
    let mut nan = good.clone();
    nan[DIM + 2] = f32::NAN;
    let mut inf = good.clone();
    inf[4] = f32::INFINITY;
    let wide = random_rows(&mut rng(13), 3, DIM + 1);
    vec![
        ("dimension mismatch", Box::new(move |i: &mut T| add(i, &tensor(&wide, DIM + 1), &[1, 2, 3]))),
        ("NaN", Box::new(move |i: &mut T| add(i, &tensor(&nan, DIM), &[1, 2, 3]))),
        ("inf", Box::new(move |i: &mut T| add(i, &tensor(&inf, DIM), &[1, 2, 3]))),
        ("duplicate in batch", {
            let g = good.clone();
            Box::new(move |i: &mut T| add(i, &tensor(&g, DIM), &[1, 2, 1]))
        }),
        ("duplicate with index", {
            let g = good.clone();
            Box::new(move |i: &mut T| add(i, &tensor(&g, DIM), &[1, 2, 105]))
        }),
        ("id count", {
            let g = good.clone();
            Box::new(move |i: &mut T| add(i, &tensor(&g, DIM), &[1, 2]))
        }),
        ("1-D vectors", {
            let g = good.clone();
            Box::new(move |i: &mut T| add(i, &Tensor::from_slice(&g, &[3 * DIM]).unwrap(), &[1, 2, 3]))
        }),
        ("remove unknown", Box::new(move |i: &mut T| remove(i, &[100, 999]))),
        ("k = 0", Box::new(move |i: &mut T| search(i, &probe(), 0))),
    ]
}

/// [`bad_calls`] for index type `T`: both kinds name their add, remove and search alike, with no
/// trait between them, so a macro passes the same three for each.
macro_rules! bad_calls {
    ($t:ty) => {
        bad_calls::<$t>(
            <$t>::add,
            |i, ids| i.remove(ids).map(|_| ()),
            |i, q, k| i.search(q, k, None).map(|_| ()),
        )
    };
}

#[test]
fn flat_bad_input_is_refused_and_nothing_changes() {
    let mut index = flat(Metric::InnerProduct);
    let before = snapshot_flat(&index);
    let mut calls = bad_calls!(FlatIndex);
    calls.push((
        "query dim",
        Box::new(|i: &mut FlatIndex| i.search(&tensor(&[1.0; DIM + 1], DIM + 1), 3, None).map(|_| ())),
    ));
    calls.push((
        "NaN query",
        Box::new(|i: &mut FlatIndex| {
            let mut q = vec![0.5f32; DIM];
            q[1] = f32::NAN;
            i.search(&tensor(&q, DIM), 3, None).map(|_| ())
        }),
    ));
    for (what, call) in &calls {
        let err = call(&mut index).expect_err(what);
        let text = err.to_string();
        match *what {
            "dimension mismatch" | "query dim" => {
                assert!(matches!(err, IndexError::Dimension { .. }), "{text}")
            }
            "NaN" | "inf" | "NaN query" => assert!(matches!(err, IndexError::NonFinite { .. }), "{text}"),
            "duplicate in batch" => {
                assert!(matches!(err, IndexError::DuplicateIdInBatch { id: 1, .. }), "{text}")
            }
            "duplicate with index" => {
                assert!(matches!(err, IndexError::IdExists { id: 105, row: 2 }), "{text}")
            }
            "remove unknown" => assert!(matches!(err, IndexError::UnknownIds { count: 1, .. }), "{text}"),
            "k = 0" => assert!(matches!(err, IndexError::ZeroK), "{text}"),
            _ => {}
        }
        assert_eq!(snapshot_flat(&index), before, "{what} changed the index");
    }
    // The messages name the problem and the fix.
    let e = calls[1].1(&mut index).unwrap_err().to_string();
    assert!(e.contains("row 1 (id 2)") && e.contains("NaN") && e.contains("finite"), "{e}");
    let e = calls[0].1(&mut index).unwrap_err().to_string();
    assert!(e.contains("dimension 7") && e.contains("[n, 6]"), "{e}");
}

#[test]
fn cosine_refuses_zero_vectors() {
    let mut index = flat(Metric::Cosine);
    let before = snapshot_flat(&index);
    let mut rows = random_rows(&mut rng(14), 2, DIM);
    rows[DIM..].fill(0.0);
    let err = index.add(&tensor(&rows, DIM), &[1, 2]).unwrap_err();
    assert!(matches!(err, IndexError::ZeroVector { row: 1, id: Some(2), .. }), "{err}");
    assert_eq!(snapshot_flat(&index), before);
}

#[test]
fn ivf_bad_input_is_refused_and_nothing_changes() {
    let mut index = ivf();
    let before = snapshot_ivf(&index);
    let mut calls = bad_calls!(IvfFlatIndex);
    calls.push((
        "nprobe = 0",
        Box::new(|i: &mut IvfFlatIndex| i.search_nprobe(&probe(), 3, 0, None).map(|_| ())),
    ));
    calls.push(("retrain", Box::new(|i: &mut IvfFlatIndex| i.train(&probe()))));
    for (what, call) in &calls {
        call(&mut index).expect_err(what);
        assert_eq!(snapshot_ivf(&index), before, "{what} changed the index");
    }
}

#[test]
fn bad_construction_is_refused() {
    assert!(FlatIndex::new(0, Metric::L2, DType::F32, &Device::Cpu).is_err());
    let e = FlatIndex::new(4, Metric::L2, DType::I32, &Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("f32, f16 or bf16"), "{e}");
    assert!(IvfFlatIndex::new(4, Metric::L2, DType::F32, &Device::Cpu, IvfParams::new(0)).is_err());
    let mut untrained =
        IvfFlatIndex::new(4, Metric::L2, DType::F32, &Device::Cpu, IvfParams::new(2)).unwrap();
    let v = tensor(&[1.0, 2.0, 3.0, 4.0], 4);
    assert!(matches!(untrained.add(&v, &[1]), Err(IndexError::NotTrained)));
    assert!(matches!(untrained.search(&v, 1, None), Err(IndexError::NotTrained)));
    // Fewer training vectors than lists.
    let e = untrained.train(&v).unwrap_err().to_string();
    assert!(e.contains("lower nlist"), "{e}");
}
