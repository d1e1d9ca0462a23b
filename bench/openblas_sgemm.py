"""OpenBLAS SGEMM through NumPy: the CPU matmul peer of `cargo xtask bench gemm`.

    openblas_sgemm.py REPEATS M,N,K [M,N,K ...]
    openblas_sgemm.py --serve

For each shape: C = A @ B on float32 row-major operands (uniform in [-1, 1), seeded), checked first
against a float64 product on 16 rows (relative error), then timed: one warm-up, REPEATS timed
calls, the median. Prints one JSON object:
{"numpy": version, "blas": "OpenBLAS 0.3.x ...", "core": "SkylakeX", "threads": n,
 "shapes": [{"m": .., "n": .., "k": .., "median_s": .., "rel_err": ..}, ...]}

`--serve` lets the bench alternate its timings with ragtune's in one run: it prints the header
object (no "shapes") and then answers one JSON line per command line on stdin:
  `shape M,N,K` -> {"m": .., "n": .., "k": .., "rel_err": ..} (makes, checks and warms the product)
  `time R`      -> {"times": [R seconds]} (R timed calls of the current shape)
  `quit`        -> exits.
Thread count: set OPENBLAS_NUM_THREADS before starting Python (the bench sets it to ragtune's).
"""

import ctypes
import glob
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


def core_name():
    """The kernel set OpenBLAS picked on this CPU (OPENBLAS_CORETYPE overrides it), if it says."""
    libs = os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*")
    for path in glob.glob(libs):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for sym in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            f = getattr(lib, sym, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return f().decode()
    return "unknown"


def make(rng, m, n, k):
    a = rng.uniform(-1, 1, (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (k, n)).astype(np.float32)
    c = a @ b
    rows = np.linspace(0, m - 1, min(16, m)).astype(int)
    want = a[rows].astype(np.float64) @ b.astype(np.float64)
    rel = float(np.linalg.norm(c[rows] - want) / max(np.linalg.norm(want), 1e-300))
    return a, b, c, rel


def timed(a, b, c, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t)
    return times


def header():
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS", "0")) or os.cpu_count()
    return {"numpy": np.__version__, "blas": blas_name(), "core": core_name(), "threads": threads}


def serve():
    rng = np.random.default_rng(2024)
    print(json.dumps(header()), flush=True)
    a = b = c = None
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "shape":
            m, n, k = (int(x) for x in arg.split(","))
            a, b, c, rel = make(rng, m, n, k)
            np.matmul(a, b, out=c)
            print(json.dumps({"m": m, "n": n, "k": k, "rel_err": rel}), flush=True)
        elif cmd == "time" and a is not None:
            print(json.dumps({"times": timed(a, b, c, int(arg))}), flush=True)
        elif cmd == "quit":
            return
        else:
            print(json.dumps({"error": f"unknown command {line.strip()!r}"}), flush=True)


def main():
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    repeats = int(sys.argv[1])
    rng = np.random.default_rng(2024)
    out = []
    for spec in sys.argv[2:]:
        m, n, k = (int(x) for x in spec.split(","))
        a, b, c, rel = make(rng, m, n, k)
        times = sorted(timed(a, b, c, repeats))
        out.append({"m": m, "n": n, "k": k, "median_s": times[len(times) // 2], "rel_err": rel})
    print(json.dumps({**header(), "shapes": out}))


if __name__ == "__main__":
    main()
