"""Peak memory estimate (hpcflow.resources) vs measured peak RSS, one fresh process per case.

    python benchmarks/bench_memory_estimate.py [--quick | --only CASE [CASE ...]]

Each case loads a job file with --set overrides, runs it into a temporary directory in a child process and
prints the estimate, the child's peak RSS (VmHWM) and their ratio (> 1: the estimate is conservative).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

import _args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, tempfile
from hpcflow.jobs import registry
from hpcflow.resources import estimate, peak_rss
job, overrides = sys.argv[1], json.loads(sys.argv[2])
module, cfg = registry.load(job, overrides, memory_check=False)
est = estimate(cfg)
with tempfile.TemporaryDirectory() as out:
    module.run(cfg, out)
print(json.dumps({"estimate": est.bytes, "peak": peak_rss()}))
"""

SAMPLE_CHILD = r"""
import json, sys
from hpcflow.geometry import Hypersurface
from hpcflow.resources import estimate, peak_rss
n, dim, chart = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3])
est = estimate({"sample": {"n": n, "dim": dim, "chart": chart, "threads": None}}, "sample")
Hypersurface.fermat(dim).sample(n, seed=0, chart=chart)
print(json.dumps({"estimate": est.bytes, "peak": peak_rss()}))
"""

FLOW = ["flow.steps=2", "kernel.name=\"gaussian\"", "kernel.width=0.0333", "kernel.normalize=\"row\""]
#: the quickstart job is clustered (4 clusters, halo 0.3): the unclustered cases switch its clustering off
UNCLUSTERED = ["clustering.method=\"none\""]
#: the halo cases (12000 / 4000 points, 240 clusters): (label, [clustering].halo_cutoff); pi/2: every train point
HALOS = [("pi/2", 1.5707963267948966), ("0.3", 0.3), ("0.1", 0.1), ("0.6", 0.6)]


def _halo_case(label, cutoff):
    """The case of one halo cutoff (`HALOS`)."""
    return (f"flow 12000/4000, 240 clusters, halo {label}", "jobs/quickstart.toml",
            ["geometry.n_train=12000", "geometry.n_test=4000", "clustering.n_clusters=240",
             "clustering.batch_size=1000", f"clustering.halo_cutoff={cutoff!r}", "flow.steps=1"])


CASES = [
    ("sample N=1e5 all charts", "sample", (100_000, 3, None)),
    ("sample N=1e5 chart (0,1)", "sample", (100_000, 3, [0, 1])),
    ("sample N=4e5 all charts", "sample", (400_000, 3, None)),
    ("sample N=2e3 dim=8", "sample", (2_000, 8, None)),
    ("flow 1000/1000 (quickstart)", "jobs/quickstart.toml", ["flow.steps=2"]),
    ("flow 4000/4000 gaussian, unclustered", "jobs/quickstart.toml",
     ["geometry.n_train=4000", "geometry.n_test=4000"] + FLOW + UNCLUSTERED),
    ("flow 12000/12000 gaussian, unclustered (streamed)", "jobs/quickstart.toml",
     ["geometry.n_train=12000", "geometry.n_test=12000"] + FLOW + UNCLUSTERED),
    ("flow 4000 batched clusters", "jobs/quickstart.toml",
     ["geometry.n_train=4000", "geometry.n_test=4000", "clustering.method=\"batched\"", "clustering.n_clusters=4",
      "clustering.batch_size=1000"] + FLOW),
    *[_halo_case(label, cutoff) for label, cutoff in HALOS],
    ("clustering N=1000 (Fig. 2)", "jobs/fig2_clustering.toml", []),
    ("clustering N=3000", "jobs/fig2_clustering.toml", ["points.n_points=3000", "clustering.batch_size=600"]),
    ("distance_scaling N<=1e5", "jobs/distance_scaling.toml",
     ["scaling.n_points=[1000, 100000]", "scaling.queries=2000", "scaling.fit_from=0"]),
    ("nn smoke, 1 epoch", "jobs/nn_smoke.toml", ["training.epochs=1", "width_sweep.epochs=1", "kernel_flow.steps=2"]),
    ("nn 3x64 N=1e5, 1 epoch", "jobs/nn_baseline.toml", ["training.epochs=1", "training.batch_size=1000"]),
    ("nn width sweep to 1024, 1 epoch each", "jobs/nn_width_sweep.toml",
     ["training.epochs=1", "width_sweep.widths=[64, 1024]", "width_sweep.epochs=1", "kernel_flow.steps=2"]),
    ("nn 3x2048 N=2e4, batch 4000, 1 epoch", "jobs/nn_baseline.toml",
     ["geometry.n_train=20000", "geometry.n_val=4000", "model.width=2048", "training.epochs=1",
      "training.batch_size=4000"]),
    ("nn 3x256 GELU float32 N=2e4, batch 4096, 1 epoch", "jobs/nn_baseline.toml",
     ["geometry.n_train=20000", "geometry.n_val=4000", "model.width=256", "model.activation=\"gelu\"",
      "model.dtype=\"float32\"", "training.epochs=1", "training.batch_size=4096"]),
]
#: the cases of --quick, by label (indices into CASES shifted as cases were inserted); each one is in CASES
QUICK = ("sample N=1e5 all charts", "flow 1000/1000 (quickstart)", "clustering N=1000 (Fig. 2)", "nn smoke, 1 epoch")
if not set(QUICK) <= {label for label, _, _ in CASES}:
    raise RuntimeError(f"QUICK names no case {sorted(set(QUICK) - {label for label, _, _ in CASES})}")


def selected(quick: bool = False, only=None) -> list:
    """The cases to run, in CASES's order: QUICK's with `quick`, those labelled in `only` with it, else all."""
    return [case for case in CASES if (not quick or case[0] in QUICK) and (not only or case[0] in only)]


def run_case(label, target, args) -> dict:
    env = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_IGNORE_MEMORY_CHECK="1")
    if target == "sample":
        cmd = [sys.executable, "-c", SAMPLE_CHILD, str(args[0]), str(args[1]), json.dumps(args[2])]
    else:
        cmd = [sys.executable, "-c", CHILD, os.path.join(ROOT, target), json.dumps(args)]
    with tempfile.TemporaryDirectory() as cwd:
        out = _args.child(cmd, f"the case {label!r}", cwd=cwd, env=env, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    labels = [label for label, _, _ in CASES]
    ap = _args.parser(__doc__)
    which = ap.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="four small cases only: " + "; ".join(QUICK))
    which.add_argument("--only", nargs="+", metavar="CASE", help="only the cases of these labels (as printed)")
    args = ap.parse_args()
    unknown = [c for c in args.only or () if c not in labels]
    if unknown:
        ap.error(f"argument --only: no case {unknown[0]!r}; the cases: {'; '.join(labels)}")
    print(f"{'case':50s} {'estimate MiB':>12s} {'peak RSS MiB':>12s} {'ratio':>6s}")
    for label, target, case_args in selected(args.quick, args.only):
        r = run_case(label, target, case_args)
        print(f"{label:50s} {r['estimate'] / 2**20:12.0f} {r['peak'] / 2**20:12.0f} {r['estimate'] / r['peak']:6.2f}",
              flush=True)


if __name__ == "__main__":
    _args.run(main)
