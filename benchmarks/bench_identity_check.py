"""Cost of the whole-set identity check (`hpcflow.parallel.replicated.identical_on_all` / `fingerprint`).

`kernel_flow` at R > 1 runs it once per call on every point set passed without global indices:
the ranks allgather their row counts and, where those agree, a blake2b digest of the set's points, g_FS, |Omega|^2
and weights (the quintic: 80 + 144 + 8 + 8 = 240 bytes per point). At R = 1 it returns at once, without hashing.
The arrays here have those dtypes and shapes (random values: the digest's cost does not depend on them). Prints
one JSON line per N: best-of-`--repeats` seconds of `fingerprint` alone and of `identical_on_all` (slowest
rank), bytes hashed per point, hash throughput. Usage:

    .venv/bin/python benchmarks/bench_identity_check.py [--sizes 100000 1000000] [--repeats 5]
    .venv/bin/mpiexec -n 2 .venv/bin/python benchmarks/bench_identity_check.py
"""

from __future__ import annotations

import json
import time
from functools import partial

import numpy as np

import _args
from hpcflow.parallel.replicated import fingerprint, identical_on_all


def whole_set(n: int, seed: int = 0) -> list[np.ndarray]:
    """Arrays of a quintic PointSet's flow fields (points, g_fs, omega2, weights) for n points, the same on every
    rank (one seed)."""
    rng = np.random.default_rng(seed)
    points = rng.normal(size=(n, 5)) + 1j * rng.normal(size=(n, 5))
    g_fs = rng.normal(size=(n, 3, 3)) + 1j * rng.normal(size=(n, 3, 3))
    return [points, g_fs, rng.uniform(size=n), rng.uniform(size=n)]


def best(fn, repeats: int, comm) -> float:
    """Smallest over repeats of the slowest rank's seconds for fn() (ranks start together)."""
    times = []
    for _ in range(repeats):
        comm.Barrier()
        t = time.perf_counter()
        fn()
        times.append(max(comm.allgather(time.perf_counter() - t)))
    return min(times)


def main(argv=None) -> None:
    ap = _args.parser(__doc__)  # every rank parses the same arguments: all refuse them together, rank 0 says why
    ap.add_argument("--sizes", type=_args.POSITIVE, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeats", type=_args.POSITIVE, default=5)
    a = ap.parse_args(argv)
    with _args.together() as c:  # one rank's exception ends every rank, none left in a collective
        measure(a, c)


def measure(a, c) -> None:
    """One JSON line per size (rank 0)."""
    for n in a.sizes:
        arrays = whole_set(n)
        nbytes = sum(x.nbytes for x in arrays)
        assert identical_on_all(arrays, comm=c)
        t_hash = best(partial(fingerprint, arrays), a.repeats, c)
        t_check = best(partial(identical_on_all, arrays, comm=c), a.repeats, c)
        if c.Get_rank() == 0:
            print(json.dumps({"n": n, "ranks": c.Get_size(), "bytes_per_point": nbytes // n,
                              "fingerprint_s": round(t_hash, 4), "identical_on_all_s": round(t_check, 4),
                              "hash_MB_per_s": round(nbytes / t_hash / 1e6, 1)}), flush=True)
        del arrays


if __name__ == "__main__":
    _args.run(main)
