"""OpenBLAS SGEMM through NumPy: the CPU matmul peer of `cargo xtask bench gemm`.

    openblas_sgemm.py REPEATS M,N,K [M,N,K ...]

For each shape: C = A @ B on float32 row-major operands (uniform in [-1, 1), seeded), checked first
against a float64 product on 16 rows (relative error), then timed: one warm-up, REPEATS timed
calls, the median. Prints one JSON object:
{"numpy": version, "blas": "OpenBLAS 0.3.x ...", "threads": n,
 "shapes": [{"m": .., "n": .., "k": .., "median_s": .., "rel_err": ..}, ...]}
Thread count: set OPENBLAS_NUM_THREADS before starting Python (the bench sets it to ragtune's).
"""

import json
import os
import sys
import time

import numpy as np


def blas_name():
    # numpy >= 2 describes its BLAS in show_config(mode="dicts"); older ones do not.
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - only a label
        return "unknown BLAS"


def main():
    repeats = int(sys.argv[1])
    rng = np.random.default_rng(2024)
    out = []
    for spec in sys.argv[2:]:
        m, n, k = (int(x) for x in spec.split(","))
        a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
        b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
        c = a @ b
        rows = np.linspace(0, m - 1, min(16, m)).astype(int)
        want = a[rows].astype(np.float64) @ b.astype(np.float64)
        rel = float(np.linalg.norm(c[rows] - want) / max(np.linalg.norm(want), 1e-300))
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            np.matmul(a, b, out=c)
            times.append(time.perf_counter() - t)
        times.sort()
        out.append({"m": m, "n": n, "k": k, "median_s": times[len(times) // 2], "rel_err": rel})
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "0")) or os.cpu_count()
    print(json.dumps({"numpy": np.__version__, "blas": blas_name(), "threads": threads, "shapes": out}))


if __name__ == "__main__":
    main()
