"""Cost of `hpcflow report` on a flow run whose checkpoint.h5 holds N train rows: the checkpoint's judge
(`analysis.rundir.completeness`, which asks `checkpoint.load_resume`, NaN/inf of every row included), how often one
report reads the checkpoint so (`load_resume` calls), and the whole report. The checkpoint is a tiny run's, its train rows repeated to N.

Prints one JSON line. Usage (2.4 GB of disk per 10^7 rows, under --dir):

    .venv/bin/python benchmarks/bench_report_checkpoint.py [--n 10000000] [--dir /tmp] [--run KEPT_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

import h5py
import numpy as np

#: the tiny run whose train rows are repeated: the printed Delta job, 60 points, 3 steps
JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "jobs", "table1_delta.toml")
SETS = ("geometry.n_train=60", "geometry.n_test=60", "flow.steps=3")
ROWS = ("g", "points", "weights", "omega2")


def big_run(base: str, n: int) -> str:
    """A finished tiny flow run with its train rows repeated to n (n_train and summary.json say n)."""
    from hpcflow.cli import main

    run = os.path.join(base, "run")
    assert main(["run", JOB, "--out", run, "--quiet", *(x for s in SETS for x in ("--set", s))]) == 0
    with h5py.File(os.path.join(run, "checkpoint.h5"), "a") as f:
        for name in ROWS:
            small = f[f"train/{name}"][()]
            del f[f"train/{name}"]
            ds = f.create_dataset(f"train/{name}", shape=(n, *small.shape[1:]), dtype=small.dtype)
            for lo in range(0, n, 2 ** 18):
                hi = min(n, lo + 2 ** 18)
                ds[lo:hi] = small[np.arange(lo, hi) % len(small)]
        f.attrs["n_train"] = n
    path = os.path.join(run, "summary.json")
    with open(path) as fh:
        summary = json.load(fh)
    with open(path, "w") as fh:
        json.dump({**summary, "n_train": n}, fh)
    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10 ** 7)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--run", default=None, help="a run this benchmark made before (kept: pass it again)")
    args = ap.parse_args()
    import hpcflow.checkpoint
    from hpcflow.analysis import rundir
    from hpcflow.report.build import build_report

    with tempfile.TemporaryDirectory(dir=args.dir) as base:
        run = args.run or big_run(base, args.n)
        if args.run and not os.path.isdir(run):
            os.makedirs(run)
            shutil.move(big_run(base, args.n), run)
            run = os.path.join(run, "run")
        elif args.run:
            run = os.path.join(run, "run")
        t = time.perf_counter()
        assert rundir.completeness(run) == (True, "")
        judge = time.perf_counter() - t
        reads, load = [], hpcflow.checkpoint.load_resume

        def counted(path, **kw):
            reads.append(path)
            return load(path, **kw)

        hpcflow.checkpoint.load_resume = counted  # (counted here only)
        try:
            t = time.perf_counter()
            build_report([run], os.path.join(base, "report"))
            whole = time.perf_counter() - t
        finally:
            hpcflow.checkpoint.load_resume = load
    print(json.dumps({"n_train": args.n, "completeness_s": round(judge, 2), "reads_per_report": len(reads),
                      "report_s": round(whole, 2)}))


if __name__ == "__main__":
    main()
