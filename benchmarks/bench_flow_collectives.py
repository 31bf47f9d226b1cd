"""Collectives and wall time per step of a small kernel flow on R ranks, where the step's many tiny collectives
(global sums, stop decisions, the checkpoint writer's flags) cost more than its kernel work.

The flow: exact mode, Gaussian kernel (width 0.3, blocks cached), N train and N/3 test points of the Fermat
quintic, kappa differentiated, with a callback and a CheckpointWriter as `hpcflow run` has them (the writer
never due: no file written). Per step: the collectives each rank calls (by name, counted by a proxy around the
communicator over the steady steps) and the wall time between two callback calls on rank 0 (median, and mean over
all steps). Counted from callback to callback: a step's collectives from the on_step hook of one step to the
callback of the next.

Usage: python benchmarks/bench_flow_collectives.py [--ranks 2] [--n 300] [--steps 300] [--repeat 3]
Prints one JSON line per repeat (the `worker` subcommand is what it starts under mpiexec).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

import _args

#: fewest steps: the steady steps counted are 3 .. steps, one at least
MIN_STEPS = 3
#: fewest train points: N/3 test points, at least one
MIN_N = 3


class CountingComm:
    """A communicator that counts the calls of its communication methods (anything but Get_*) by name."""

    def __init__(self, comm):
        self._comm, self.calls = comm, collections.Counter()

    def __getattr__(self, name):
        attr = getattr(self._comm, name)
        if callable(attr) and not name.startswith("Get_"):
            self.calls[name] += 1
        return attr


def worker(n: int, steps: int) -> None:
    from hpcflow.checkpoint import CheckpointWriter
    from hpcflow.flow import kernel_flow
    from hpcflow.geometry import Hypersurface
    from hpcflow.kernels import make_kernel
    from hpcflow.parallel import comm as pcomm
    from hpcflow.parallel.decompose import share

    world = pcomm.resolve()
    c = CountingComm(world)
    r, size = world.Get_rank(), world.Get_size()
    X = Hypersurface.fermat(3)
    train = X.sample(n, seed=1, chart=(0, 1)).subset(np.arange(*share(n, size, r)))
    test = X.sample(n // 3, seed=2, chart=(0, 1)).subset(np.arange(*share(n // 3, size, r)))
    folder = world.bcast(tempfile.mkdtemp() if r == 0 else None)
    writer = CheckpointWriter(os.path.join(folder, "checkpoint.h5"), {}, every=None, seconds=1e9, comm=c)
    marks = []

    def callback(info):
        marks.append((time.perf_counter(), sum(c.calls.values()), dict(c.calls)))
        return False

    world.Barrier()
    t0 = time.perf_counter()
    res = kernel_flow(make_kernel("gaussian", width=0.3), train, test, dt=0.05, steps=steps, comm=c,
                      callback=callback, on_step=writer)
    wall = time.perf_counter() - t0
    writer.restore_signals()
    if r == 0:
        shutil.rmtree(folder, ignore_errors=True)
        times = np.diff([m[0] for m in marks])
        first, last = marks[1], marks[-1]  # steady steps: 3 .. steps
        per_step = {k: (last[2].get(k, 0) - first[2].get(k, 0)) / (steps - 2) for k in last[2]}
        print(json.dumps({"ranks": size, "n_train": n, "n_test": n // 3, "steps": res.steps_taken,
                          "collectives_per_step": round((last[1] - first[1]) / (steps - 2), 2),
                          "by_name": {k: round(v, 2) for k, v in sorted(per_step.items()) if v},
                          "step_us_median": round(float(np.median(times)) * 1e6, 1),
                          "step_us_mean": round(float(np.mean(times)) * 1e6, 1),
                          "flow_wall_s": round(wall, 3)}), flush=True)


def main() -> None:
    ap = _args.parser(__doc__)
    ap.add_argument("--ranks", type=_args.ranks, default=2)
    ap.add_argument("--n", type=_args.whole(MIN_N), default=300, help=f"train points (>= {MIN_N}: N/3 test points)")
    ap.add_argument("--steps", type=_args.whole(MIN_STEPS), default=300,
                    help=f"flow steps (>= {MIN_STEPS}: collectives are counted over steps 3 .. steps)")
    ap.add_argument("--repeat", type=_args.POSITIVE, default=3)
    args = ap.parse_args()
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or "mpiexec"
    env = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
    for _ in range(args.repeat):
        out = _args.child([mpiexec, "-n", str(args.ranks), sys.executable, __file__, "worker", str(args.n),
                           str(args.steps)], f"the flow at {args.ranks} ranks", env=env).stdout
        print(out, end="", flush=True)


def run_worker(n: int, steps: int) -> None:
    """The `worker` that `main` starts under mpiexec."""
    with _args.together():  # one rank's exception ends every rank, none left in a collective
        worker(n, steps)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        _args.run(run_worker, int(sys.argv[2]), int(sys.argv[3]))
    else:
        _args.run(main)
