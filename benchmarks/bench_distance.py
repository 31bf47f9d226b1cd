"""Cost of the FS distance entry points (`hpcflow.geometry.distance`) on random points of P^4.

Cases: the tiled matrix `fs_distance` (N x N and N1 x N2), `fs_distance_paired` and `projector_features` on 2e5
rows, and `normalize` alone (the O(N n) pass every one of them starts with). With `--baseline DIR` the same cases
also run on DIR's hpcflow/geometry/distance.py (another checkout), interleaved with this tree's in one process (each
case called once on both sides untimed, then each side timed first every other repeat), so a before/after ratio
holds on a busy machine and does not depend on which side runs first. Prints one JSON line per case:
best-of-`--repeats` seconds. Usage:

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_distance.py [--repeats 9] [--baseline /path/to/checkout]
"""

from __future__ import annotations

import importlib.util
import json
import os
import time

import numpy as np

import _args
import hpcflow.geometry.distance as tree

#: the module of a checkout that --baseline times
BASELINE_MODULE = os.path.join("hpcflow", "geometry", "distance.py")


def load_baseline(root: str):
    """DIR/hpcflow/geometry/distance.py as a module of its own (its imports resolve to this tree's hpcflow)."""
    spec = importlib.util.spec_from_file_location("baseline_distance", os.path.join(root, BASELINE_MODULE))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> None:
    p = _args.parser(__doc__)
    p.add_argument("--repeats", type=_args.POSITIVE, default=9)
    p.add_argument("--baseline", type=_args.directory, default=None,
                   help="a checkout whose distance module is timed alongside")
    args = p.parse_args(argv)
    if args.baseline and not os.path.isfile(os.path.join(args.baseline, BASELINE_MODULE)):
        p.error(f"argument --baseline: {args.baseline} has no {BASELINE_MODULE}; pass the root of an hpcflow checkout")
    rng = np.random.default_rng(0)
    z = rng.normal(size=(200_000, 5)) + 1j * rng.normal(size=(200_000, 5))
    cases = {"fs_distance 4000x4000": lambda m: m.fs_distance(z[:4000]),
             "fs_distance 1000x20000": lambda m: m.fs_distance(z[:1000], z[:20000]),
             "fs_distance_paired 2e5": lambda m: m.fs_distance_paired(z, z[::-1]),
             "projector_features 2e5": lambda m: m.projector_features(z),
             "normalize 2e5": lambda m: m.normalize(z)}
    modules = {"tree": tree, **({"baseline": load_baseline(args.baseline)} if args.baseline else {})}
    for name, fn in cases.items():
        best = dict.fromkeys(modules, np.inf)
        for m in modules.values():  # untimed: the first call of a case pays for both sides (page faults, caches)
            fn(m)
        for i in range(args.repeats):
            for tag, m in sorted(modules.items(), reverse=i % 2 == 1):  # each side first every other repeat
                t = time.perf_counter()
                fn(m)
                best[tag] = min(best[tag], time.perf_counter() - t)
        out = {"case": name, **{f"{tag}_s": round(s, 5) for tag, s in best.items()}}
        if "baseline" in best:
            out["ratio"] = round(best["tree"] / best["baseline"], 3)
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    _args.run(main)
