"""Kernel entries per second in a flow step (tile evaluation fused with the product against the 9 gradient
columns) at N train points, next to this machine's float64 matmul rate; peak memory of one step at large N.

Usage: python benchmarks/bench_kernels.py [--n 10000] [--repeat 2] [--mem-n 50000] [--threads T]
       [--only KERNEL | --mem-only | --profile]   (one of the three at most)
--threads limits every step, the naive NumPy reference's BLAS too. The Delta kernel's rates are null (a gather of
each point's nearest train row: no N^2 work).
"""

from __future__ import annotations

import json
import os
import resource
import time
import tracemalloc

import numpy as np

import _args
from hpcflow.arguments import MAX_THREADS
from hpcflow.backend import default_threads
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.hermitian import pack
from hpcflow.kernels import make_kernel
from hpcflow.kernels.base import CACHE_EDGE
from hpcflow.metric import loss_and_grad
from hpcflow.geometry.measures import kappa

CASES = [
    ("gaussian", {"width": 30.0}),
    ("gaussian", {"width": 1.0}),
    ("gaussian", {"width": 0.1}),
    ("gaussian", {"width": 1 / 30}),
    ("gaussian", {"width": 1 / 30, "engine": "numpy"}),
    ("gaussian", {"width": 1.0, "form": "gauss"}),
    ("gaussian", {"width": 30.0, "method": "direct"}),
    ("gaussian", {"width": 1.0, "dtype": "float32"}),
    ("relu_ntk", {"w_std": 5.716, "b_std": 80.52}),
    ("relu_ntk", {"w_std": 1.414, "b_std": 0.01, "depth": 8}),
    ("relu_ntk", {"w_std": 1.414, "b_std": 0.01, "depth": 64}),
    ("cosine_ntk", {"sigma_w": 1.0}),
    ("delta", {}),
]


def matmul_gflops(n=2000, repeat=3):
    a, b = np.random.default_rng(0).random((2, n, n))
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeat))
    return 2 * n ** 3 / best / 1e9


def _timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _timed_both(fn):
    """(wall seconds, CPU seconds of this process, all threads)."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


def gradients(ps):
    v = pack(ps.g_fs)
    k = float(kappa(ps.eta(), ps.weights))
    return loss_and_grad(v, ps.omega2, ps.weights, k, loss="sigma", weighted=True)[1]


def entries_per_second(ps, grad, name, params, *, tile, threads, repeat, targets=None):
    """Train-on-train operator (symmetric kernels use each off-diagonal tile twice); `targets`: other points
    (test-on-train, no symmetry)."""
    kern = make_kernel(name, **params)
    t0 = time.perf_counter()
    op = kern.operator(ps.points if targets is None else targets.points, ps.points, tile=tile, threads=threads)
    setup = time.perf_counter() - t0
    op(grad)
    runs = [_timed_both(lambda: op(grad)) for _ in range(repeat)]
    best, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    n = len(ps)
    used = getattr(op, "threads", None) or threads or default_threads()
    label = name if targets is None else f"{name} (test x train, {len(targets)} test points)"
    dense = not getattr(kern, "nearest", False)  # the Delta kernel gathers each point's nearest row: no N^2 work
    return {"kernel": label, "params": kern.params(), "n": n, "step_seconds": best, "setup_seconds": setup,
            "entries_per_second": n * n / best if dense else None, "cpu_seconds": cpu, "threads": used,
            "entries_per_cpu_second_times_threads": n * n / cpu * used if dense else None}


def blas_threads() -> int:
    """Threads of NumPy's BLAS (the naive step's only parallel part)."""
    from threadpoolctl import threadpool_info

    return max([p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"] or [1])


def naive_row(ps, grad, *, threads, repeat):
    """The naive step's row: its best of `repeat` runs with NumPy's BLAS on `threads` threads (None: BLAS's
    default), as the other kernels' steps run on --threads."""
    from threadpoolctl import threadpool_limits

    n = len(ps)
    with threadpool_limits(limits=threads, user_api="blas"):  # limits=None: no change
        runs = [_timed_both(lambda: naive_step(ps, grad)) for _ in range(repeat)]
        used = blas_threads()
    best, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
    return {"kernel": "gaussian (naive NumPy tile, reference)", "n": n, "step_seconds": best,
            "entries_per_second": n ** 2 / best, "cpu_seconds": cpu, "threads": used,
            "entries_per_cpu_second_times_threads": n ** 2 / cpu * used}


def naive_step(ps, grad, width=1.0, tile=2048):
    """The straightforward NumPy Gaussian tile of the issue text: complex inner products by matmul, then
    arccos, exp and the product with the gradients (no fusion, no threads beyond BLAS)."""
    u = ps.points / np.linalg.norm(ps.points, axis=1, keepdims=True)
    out = np.empty_like(grad)
    for s in range(0, len(u), tile):
        c = np.abs(u[s:s + tile].conj() @ u.T)
        d = np.arccos(np.minimum(c, 1.0))
        out[s:s + tile] = np.exp(-d / (2 * width)) @ grad
    return out


def stage_profile(width=1.0, edge=512, repeat=40):
    """Best-of-`repeat` ns per entry of each stage of one symmetric Gaussian tile, one thread (robust to load)."""
    from threadpoolctl import threadpool_limits

    from hpcflow.geometry import projector_features
    from hpcflow.kernels.gaussian import horner

    x = Hypersurface.fermat(3).sample(2 * edge, seed=2).points
    f = np.ascontiguousarray(projector_features(x))
    f1, f2 = f[:edge], f[edge:]
    kern = make_kernel("gaussian", width=width)
    slow = make_kernel("gaussian", width=width, engine="numpy")
    direct = make_kernel("gaussian", width=width, method="direct")
    single = {m: make_kernel("gaussian", width=width, dtype="float32", method=m) for m in ("poly", "direct")}
    s1, s2 = single["poly"].features(x[:edge]), single["poly"].features(x[edge:])
    g = np.random.default_rng(0).random((edge, 9))
    a, b = np.empty((edge, edge)), np.empty((edge, edge))
    np.matmul(f1, f2.T, out=a)
    np.clip(a, 0, 1, out=a)
    np.sqrt(a, out=a)
    q = np.sqrt(1.0 - a) / (np.sqrt(2.0) + np.sqrt(1.0 + a))
    c2, c3 = np.empty_like(a), np.empty_like(a)

    def variable():  # the tile's path from c to q = tan(d/4)
        np.clip(a, 0, 1, out=c2)
        np.sqrt(c2, out=c2)
        np.subtract(1.0, c2, out=c3)
        np.add(c2, 1.0, out=c2)
        np.sqrt(c2, out=c2)
        np.add(c2, np.sqrt(2.0), out=c2)
        np.sqrt(c3, out=c3)
        np.divide(c3, c2, out=c3)

    stages = {
        "matmul c = F1 F2^T (k=25)": lambda: np.matmul(f1, f2.T, out=a),
        "clip, 3 sqrt, 1 division, 3 adds (q = tan(d/4))": variable,
        f"Horner degree {len(kern.coef) - 1}": lambda: horner(q, kern.coef, out=b),
        "K G + K^T G (9 columns)": lambda: (a @ g, a.T @ g),
        f"whole tile_block, engine {kern.engine}": lambda: kern.tile_block(f1, f2),
        "whole tile_block, engine numpy": lambda: slow.tile_block(f1, f2),
        "whole tile_block, method direct (arccos + exp)": lambda: direct.tile_block(f1, f2),
        "whole tile_block, float32 polynomial": lambda: single["poly"].tile_block(s1, s2),
        "whole tile_block, float32 method direct": lambda: single["direct"].tile_block(s1, s2),
        "reference: np.arccos": lambda: np.arccos(a, out=b),
        "reference: np.exp": lambda: np.exp(-a, out=b),
    }
    out = {}
    with threadpool_limits(limits=1, user_api="blas"):
        for name, fn in stages.items():
            fn()
            out[name] = min(_timed(fn) for _ in range(repeat)) / edge ** 2 * 1e9
    return {"width": width, "edge": edge, "ns_per_entry_one_thread_best_of": out}


def peak_memory(n, tile, threads):
    """Seconds and memory of one Gaussian step at n points, after a warm-up step on a few of them (Numba compiles
    the same tile code there: its seconds are not timed, nor its allocations traced). "tile": the edge the operator
    uses (on a CPU --tile capped at hpcflow.kernels.base.CACHE_EDGE), "tile_asked" beside it where that differs."""
    ps = Hypersurface.fermat(3).sample(n, seed=1)
    grad = gradients(ps)
    kern = make_kernel("gaussian", width=1.0)
    few = min(n, tile + 1)  # a whole tile and a partial one
    kern.operator(ps.points[:few], ps.points[:few], tile=tile, threads=threads)(grad[:few])
    op = kern.operator(ps.points, ps.points, tile=tile, threads=threads)
    edge = getattr(op, "tile", tile)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    t = time.perf_counter()
    op(grad)
    wall = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"n": n, "tile": edge, **({"tile_asked": tile} if tile != edge else {}), "step_seconds": wall,
            "entries_per_second": n * n / wall,
            "tracemalloc_peak_MiB": peak / 2 ** 20, "dense_kernel_MiB": n * n * 8 / 2 ** 20,
            "ru_maxrss_MiB_before_step": rss_before,
            "ru_maxrss_MiB_after_step": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    ap = _args.parser(__doc__)
    ap.add_argument("--n", type=_args.POSITIVE, default=10_000)
    ap.add_argument("--repeat", type=_args.POSITIVE, default=2)
    ap.add_argument("--tile", type=_args.POSITIVE, default=2048,
                    help=f"tile edge asked of the operators (on a CPU they cap it at {CACHE_EDGE}; default 2048)")
    ap.add_argument("--threads", type=_args.whole(1, MAX_THREADS), default=None)
    ap.add_argument("--mem-n", type=_args.NONNEGATIVE, default=50_000, help="points of the peak-memory step (0 = skip)")
    mode = ap.add_mutually_exclusive_group()  # each names the only thing run: two of them, one would be ignored
    mode.add_argument("--only", default=None, choices=sorted({name for name, _ in CASES}),
                      help="run only this kernel name")
    mode.add_argument("--mem-only", action="store_true", help="only the peak-memory step at --mem-n")
    mode.add_argument("--profile", action="store_true", help="only the per-stage single-thread tile profile")
    args = ap.parse_args()
    if args.mem_only and not args.mem_n:
        ap.error("--mem-only with --mem-n 0 measures nothing; pass --mem-n N (points, >= 1)")
    if args.profile:
        print(json.dumps(stage_profile(), indent=1))
        return
    if args.mem_only:
        print(f"# load average at start: {os.getloadavg()}")
        print(json.dumps(peak_memory(args.mem_n, args.tile, args.threads)))
        return
    print(f"# cores available: {len(os.sched_getaffinity(0))}, threads: {args.threads or 'default'}")
    print(f"float64 matmul (2000^3): {matmul_gflops():.1f} GFLOP/s")
    print(f"# load average at start: {os.getloadavg()}")
    ps = Hypersurface.fermat(3).sample(args.n, seed=0)
    grad = gradients(ps)
    if not args.only:
        print(json.dumps(naive_row(ps, grad, threads=args.threads, repeat=args.repeat)))
    for name, params in CASES:
        if args.only and name != args.only:
            continue
        r = entries_per_second(ps, grad, name, params, tile=args.tile, threads=args.threads, repeat=args.repeat)
        print(json.dumps(r))
    if not args.only or args.only == "gaussian":
        test = Hypersurface.fermat(3).sample(args.n, seed=5)
        r = entries_per_second(ps, grad, "gaussian", {"width": 1.0}, tile=args.tile, threads=args.threads,
                               repeat=args.repeat, targets=test)
        print(json.dumps(r))
    print(f"float64 matmul (2000^3): {matmul_gflops():.1f} GFLOP/s (again, after the kernels)")
    print(f"# load average at end: {os.getloadavg()}")
    if args.mem_n:
        print(json.dumps(peak_memory(args.mem_n, args.tile, args.threads)))


if __name__ == "__main__":
    _args.run(main)
