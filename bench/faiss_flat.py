"""FAISS's exact CPU search (IndexFlatIP) on the data `cargo xtask bench index` wrote, plus the
exact reference both engines are scored against.

    faiss_flat.py BASE.npy QUERIES.npy K OUT_DIR [REPEATS]

Writes OUT_DIR/faiss_ids.npy (int64 [nq, K]) and OUT_DIR/exact_ids.npy (int64 [nq, K]: the top K by
inner product computed in float64 with NumPy, ties to the smaller id), and prints one JSON line:
{"qps": median QPS over REPEATS timed searches after one warm-up, "threads": ..., "faiss": version}.
Thread count: set OMP_NUM_THREADS (xtask sets it to ragtune's thread count).
"""

import json
import os
import sys
import time

import faiss
import numpy as np


def exact_topk(base, queries, k, chunk=100):
    base64 = base.astype(np.float64)
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    for start in range(0, queries.shape[0], chunk):
        scores = queries[start : start + chunk].astype(np.float64) @ base64.T
        for i, row in enumerate(scores):
            # lexsort: last key first; best score first, then the smaller id.
            cand = np.argpartition(-row, k)[: k * 4] if row.shape[0] > k * 4 else np.arange(row.shape[0])
            order = np.lexsort((cand, -row[cand]))
            out[start + i] = cand[order[:k]]
    return out


def main():
    base_path, query_path, k, out_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    repeats = int(sys.argv[5]) if len(sys.argv) > 5 else 5
    base = np.load(base_path)
    queries = np.load(query_path)
    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
    faiss.omp_set_num_threads(threads)

    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    index.search(queries, k)  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _, ids = index.search(queries, k)
        times.append(time.perf_counter() - t)
    times.sort()
    np.save(os.path.join(out_dir, "faiss_ids.npy"), ids.astype(np.int64))
    np.save(os.path.join(out_dir, "exact_ids.npy"), exact_topk(base, queries, k))
    print(json.dumps({"qps": queries.shape[0] / times[len(times) // 2], "threads": threads, "faiss": faiss.__version__}))


if __name__ == "__main__":
    main()
