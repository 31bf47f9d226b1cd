"""The CuPy backend against NumPy: sampling and kernel-flow steps (eq. 3.5) at N train points, and their agreement.

Usage: python benchmarks/bench_gpu.py [--sizes 10000 40000] [--kernels gaussian relu_ntk] [--steps 3]
       [--sample 1000000] [--threads T]
Prints one JSON line per case: seconds per flow step (the kernel re-evaluated tile by tile every step,
cache_bytes = 0; the fastest of --steps steps), kernel entries per second (N_train^2 per step; null for Delta, a
gather with no N^2 work), and for CuPy the largest relative difference of the σ history from NumPy's (float64 both:
summation order only); then the sampler's seconds for --sample points with each backend, how many rows CuPy put in
another chart (a near-tie chosen the other way) and the largest relative difference of the other rows' points.
Without a usable GPU (`hpcflow.backend.gpu_available`) only the NumPy rows are printed.
"""

from __future__ import annotations

import json
import os
import time

import _args

#: kernel parameters, dt at 1000 train points (scaled with N for the weighted ultra-local loss) and loss, as in jobs/
KERNELS = {"gaussian": ({"width": 1 / 30, "normalize": "row"}, 6.5, "ultralocal"),
           "relu_ntk": ({"w_std": 5.716, "b_std": 80.52}, 0.1, "sigma"), "delta": ({}, 0.3162, "sigma")}


def flow_case(kernel_name: str, n: int, steps: int, backend: str, threads: int) -> dict:
    """`steps` steps of the flow of `kernel_name` on n train points (chart (0, 1), seed 0) with `backend`."""
    import numpy as np

    from hpcflow.backend import get_xp
    from hpcflow.flow import kernel_flow
    from hpcflow.geometry import Hypersurface
    from hpcflow.kernels import make_kernel

    params, dt, loss = KERNELS[kernel_name]
    train = Hypersurface.fermat(3).sample(n, seed=0, chart=(0, 1), threads=threads)
    kernel = make_kernel(kernel_name, **params)
    xp = get_xp(backend)
    t0 = time.perf_counter()
    res = kernel_flow(kernel, train, dt=dt * n / 1000 if loss == "ultralocal" else dt, steps=steps, loss=loss,
                      weighted=True, xp=xp, cache_bytes=0)
    wall = time.perf_counter() - t0
    step = float(np.min(res.history["step_seconds"]))
    return {"case": "flow", "kernel": kernel_name, "n_train": n, "backend": backend, "threads": threads,
            "steps": int(res.steps_taken), "best_step_seconds": step, "wall_seconds": wall,
            "entries_per_second": None if getattr(kernel, "nearest", False) else n * n / step,  # Delta: a gather
            "sigma_train": [float(s) for s in res.sigma_train]}


def sample_case(n: int, backend: str, threads: int):
    """Seconds to sample n points with `backend` (after one small warm-up call), and the points."""
    from hpcflow.geometry import Hypersurface

    X = Hypersurface.fermat(3)
    X.sample(1000, seed=1, threads=threads, backend=backend)
    t0 = time.perf_counter()
    ps = X.sample(n, seed=0, threads=threads, backend=backend)
    return time.perf_counter() - t0, ps


def main() -> None:
    import numpy as np

    from hpcflow.arguments import MAX_THREADS
    from hpcflow.backend import default_threads, gpu_available

    ap = _args.parser(__doc__)
    ap.add_argument("--sizes", type=_args.POSITIVE, nargs="+", default=[10_000, 40_000])
    ap.add_argument("--kernels", nargs="+", choices=sorted(KERNELS), default=["gaussian", "relu_ntk"])
    ap.add_argument("--steps", type=_args.whole(2, 1000), default=3)
    ap.add_argument("--sample", type=_args.NONNEGATIVE, default=1_000_000, help="points to sample (0 = skip)")
    ap.add_argument("--threads", type=_args.whole(1, MAX_THREADS), default=None, help="NumPy's threads")
    args = ap.parse_args()
    if args.threads:
        os.environ["HPCFLOW_THREADS"] = str(args.threads)  # the kernel tiles' threads (`default_threads`)
    threads = args.threads or default_threads()
    gpu = gpu_available()
    backends = ["numpy"] + (["cupy"] if gpu else [])
    print(json.dumps({"gpu": gpu, "threads": threads}), flush=True)
    for name in args.kernels:
        for n in args.sizes:
            rows = {b: flow_case(name, n, args.steps, b, threads) for b in backends}
            if gpu:
                a, b = (np.asarray(rows[k]["sigma_train"]) for k in ("numpy", "cupy"))
                rows["cupy"]["sigma_max_rel_diff_vs_numpy"] = float(np.max(np.abs(a - b) / np.abs(a)))
                rows["cupy"]["speedup_vs_numpy"] = rows["numpy"]["best_step_seconds"] / rows["cupy"]["best_step_seconds"]
            for r in rows.values():
                print(json.dumps(r), flush=True)
    if args.sample:
        got = {b: sample_case(args.sample, b, threads) for b in backends}
        for b, (sec, ps) in got.items():
            row = {"case": "sample", "backend": b, "n": args.sample, "threads": threads, "seconds": sec,
                   "points_per_second": args.sample / sec}
            if b == "cupy":  # rows in the same chart agree to roundoff; a near-tie chart may be chosen the other way
                ref = got["numpy"][1]
                same = np.all(ps.chart == ref.chart, axis=1)
                row["rows_in_another_chart"] = int((~same).sum())
                row["points_max_rel_diff_vs_numpy_same_chart"] = float(
                    np.max(np.abs(ps.points[same] - ref.points[same])) / np.max(np.abs(ref.points[same])))
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    _args.run(main)
