"""Start-up of a network process: seconds from a fresh interpreter to the first epoch, by phase.

Usage: python benchmarks/bench_nn_startup.py [--repeat 3]
Each repeat runs one fresh interpreter (a subprocess, as every `hpcflow nn` process and every MPI rank is) that
times, in order: `import torch`, the hpcflow.nn modules a job imports, building the compiled step of the 3x64
baseline network (hpcflow.nn.fast_step.ManualGradient: Numba's import and its cached loops), and the Trainer's
optimizer: its creation, first step and state dict (torch's own Optimizer.step and first add_param_group import
torch._dynamo, which hpcflow.nn avoids). Prints one JSON line per repeat and the median per phase, and whether
torch._dynamo was imported; a first run after a change also pays Numba's compile into __pycache__.
"""

from __future__ import annotations

import json
import os
import sys

import _args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, sys, time
t = [time.perf_counter()]
import torch
t.append(time.perf_counter())
from hpcflow.nn import experiment as ex, job  # noqa: F401  (the modules `hpcflow nn` imports)
from hpcflow.nn.fast_step import ManualGradient
from hpcflow.nn.replicas import GradientReducer
from hpcflow.nn.train import TrainConfig, make_optimizer
t.append(time.perf_counter())
torch.set_num_threads(1)
cfg = {k: f.default for k, f in job.SCHEMA["model"].items()}
cfg.update(depth=3, width=64, activation="relu", init="he", features="reim_abs2")
model = ex.build_model(10, cfg, 0)
red = GradientReducer(model, extra=3)
grad = ManualGradient.build(model, red.params, red.views, loss="ultralocal", detach_kappa=False)
t.append(time.perf_counter())
opt = make_optimizer(model, TrainConfig(lr=1e-3))
try:
    from hpcflow.nn.fast_step import optimizer_step
    step = optimizer_step(opt)
except ImportError:  # before hpcflow.nn.fast_step had it: the Trainer's first step was Optimizer.step
    step = None
step(1e-3) if step is not None else opt.step()
opt.state_dict()
t.append(time.perf_counter())
names = ("import_torch", "import_hpcflow_nn", "compiled_step", "optimizer")
print(json.dumps({n: t[i + 1] - t[i] for i, n in enumerate(names)} | {"compiled": grad.compiled is not None,
                 "dynamo": "torch._dynamo" in sys.modules}))
"""


def main(argv=None) -> None:
    import numpy as np

    ap = _args.parser(__doc__)
    ap.add_argument("--repeat", type=_args.POSITIVE, default=3)
    args = ap.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    rows = []
    for _ in range(args.repeat):
        res = _args.child([sys.executable, "-c", CHILD], "the start-up child", env=env, cwd=ROOT)
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    phases = [k for k in rows[0] if k not in ("compiled", "dynamo")]
    print(json.dumps({"median_seconds": {k: float(np.median([r[k] for r in rows])) for k in phases},
                      "median_total_seconds": float(np.median([sum(r[k] for k in phases) for r in rows]))}))


if __name__ == "__main__":
    _args.run(main)
