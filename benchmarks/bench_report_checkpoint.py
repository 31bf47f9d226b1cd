"""Cost of `hpcflow report` on a flow run whose checkpoint.h5 holds N train rows: judging it, reading it, the report.

The checkpoint's judge (`analysis.rundir.completeness`, which asks `checkpoint.load_resume`, NaN/inf of every row
included), how often one report reads the checkpoint so (`load_resume` calls), and the whole report. The checkpoint
is a tiny run's, its train rows repeated to N (a kept --run: its own N).

Prints one JSON line on stdout (what the run and the report say goes to stderr). Usage (2.4 GB of disk per 10^7
rows, under --dir):

    .venv/bin/python benchmarks/bench_report_checkpoint.py [--n 10000000] [--dir /tmp] [--run KEPT_DIR]

--run KEPT_DIR keeps the run: a path that does not exist yet (its folders are made first) or an empty directory gets the
run made there (N train rows, 2.4 GB of disk per 10^7, left there when the benchmark ends: remove it yourself), and
the same path passed again measures that run without making it. Any other path is refused before any work.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time

import h5py
import numpy as np

import _args

#: the tiny run whose train rows are repeated: the printed Delta job, 60 points, 3 steps
JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "jobs", "table1_delta.toml")
SETS = ("geometry.n_train=60", "geometry.n_test=60", "flow.steps=3")
ROWS = ("g", "points", "weights", "omega2")
#: train rows when --n is not given and no kept run says
DEFAULT_N = 10**7


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


def kept_rows(ap, kept: str) -> int:
    """Train rows of the run this benchmark kept in `kept` (its checkpoint's n_train); refused in one line when
    `kept` holds no such run."""
    path = os.path.join(kept, "run", "checkpoint.h5")
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["n_train"])
    except (OSError, KeyError, TypeError, ValueError):
        ap.error(f"argument --run: {kept} holds no run this benchmark kept (no {path} with attribute n_train); "
                 "pass a new or empty directory (the run is made there) or one it kept")


def make_new(ap, path: str) -> None:
    """Make a new --run's directory before any work, refusing in one line a path that cannot be one (a file on the
    way, no permission), which would otherwise fail only after the run was made."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        ap.error(f"argument --run: {path} cannot be made ({exc.strerror}: {exc.filename}); pass a path of a new "
                 "directory, or an empty one, or one this benchmark kept")


def main() -> None:
    ap = _args.parser(__doc__)
    ap.add_argument("--n", type=_args.POSITIVE, default=None,
                    help=f"train rows (default {DEFAULT_N:.0e}; a kept --run's own)")
    ap.add_argument("--dir", type=_args.directory, default=None, help="where the temporary run and report go")
    ap.add_argument("--run", default=None, metavar="KEPT_DIR",
                    help="keep the run here: a new path or an empty directory gets it made (and left there, 2.4 GB "
                         "per 10^7 rows); a directory holding a run this benchmark kept is measured again")
    args = ap.parse_args()
    kept = args.run is not None and os.path.exists(args.run) and not (os.path.isdir(args.run)
                                                                       and not os.listdir(args.run))
    n = args.n or DEFAULT_N
    if args.run is not None and not kept:
        make_new(ap, args.run)
    if kept:
        n = kept_rows(ap, args.run)
        if args.n is not None and args.n != n:
            ap.error(f"argument --n: {args.n} rows, but the run kept in {args.run} holds {n}; drop --n (the kept "
                     "run's is used) or pass a new --run")
    import hpcflow.checkpoint
    from hpcflow.analysis import rundir
    from hpcflow.report.build import build_report

    # stdout is the JSON line alone: what the run and the report print goes to stderr
    with tempfile.TemporaryDirectory(dir=args.dir) as base, contextlib.redirect_stdout(sys.stderr):
        if kept:
            run = os.path.join(args.run, "run")
        else:
            run = big_run(base, n)
            if args.run:
                shutil.move(run, args.run)
                run = os.path.join(args.run, "run")
        t = time.perf_counter()
        complete, why = rundir.completeness(run)
        judge = time.perf_counter() - t
        if not complete:
            print(f"{ap.prog}: error: the run in {run} is not complete ({why}); pass a new --run", file=sys.stderr)
            raise SystemExit(2)
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
    print(json.dumps({"n_train": n, "completeness_s": round(judge, 2), "reads_per_report": len(reads),
                      "report_s": round(whole, 2)}))

if __name__ == "__main__":
    _args.run(main)
