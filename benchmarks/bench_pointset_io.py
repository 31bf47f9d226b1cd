"""PointSet.save and PointSet.load times (CPU and wall, best of --repeat) on quintic sets, with all their checks.

"save sampled" saves the set `Hypersurface.sample` returned; "save arrays" saves the same rows built from user
arrays (PointSet(...)), which are checked in full, as `load` checks a file. Usage:
    .venv/bin/python benchmarks/bench_pointset_io.py [--sizes 100000 1000000] [--repeat 3] [--dir DIR]
"""

import os
import tempfile
import time

import _args
from hpcflow.geometry import Hypersurface, PointSet

FIELDS = ("points", "weights", "omega2", "g_fs", "chart")


def best(fn, repeat: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of fn(i), the smallest of `repeat` calls each."""
    cpu = wall = float("inf")
    for i in range(repeat):
        c, w = time.process_time(), time.perf_counter()
        fn(i)
        cpu, wall = min(cpu, time.process_time() - c), min(wall, time.perf_counter() - w)
    return cpu, wall


def main():
    ap = _args.parser(__doc__)
    ap.add_argument("--sizes", type=_args.POSITIVE, nargs="+", default=[100_000, 1_000_000],
                    help="points per set (whole numbers; 1e5 is read as 100000)")
    ap.add_argument("--repeat", type=_args.POSITIVE, default=3)
    ap.add_argument("--dir", type=_args.directory, default=None,
                    help="where to write the files (default: a temporary directory)")
    args = ap.parse_args()
    X = Hypersurface.fermat(3)
    print(f"{'N':>9} {'operation':>13} {'CPU s':>7} {'wall s':>7}")
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        for n in args.sizes:
            ps = X.sample(n, seed=0)
            arrays = PointSet(X, *(getattr(ps, f) for f in FIELDS), n_dropped=ps.n_dropped, seed=ps.seed)
            path = lambda tag, i: os.path.join(d, f"{n}-{tag}-{i}.h5")  # noqa: E731
            rows = {"save sampled": best(lambda i: ps.save(path("s", i)), args.repeat),
                    "save arrays": best(lambda i: arrays.save(path("a", i)), args.repeat),
                    "load": best(lambda i: PointSet.load(path("s", i)), args.repeat)}
            for what, (cpu, wall) in rows.items():
                print(f"{n:>9} {what:>13} {cpu:>7.3f} {wall:>7.3f}")


if __name__ == "__main__":
    _args.run(main)
