r"""How many directions a fixed-kernel flow can move in 50 steps: the spectrum of K on a job's train points.

A flow step multiplies the error's component along the kernel's eigenvector i by about (1 - dt lambda_i); dt is
bounded by the largest eigenvalue (dt lambda_max < 2, else positivity or the loss breaks), so in 50 steps only
modes with lambda_i / lambda_max >~ 1/100 move. Prints, for each job, the number of eigenvalues of the train
kernel matrix above 10^-1, 10^-2, 10^-3 of the largest.

    python benchmarks/kernel_spectrum.py jobs/table1_relu.toml runs/tune_relu_wide/best.toml \
        runs/tune_gaussian_wide/best.toml [--seed 101]
"""

from __future__ import annotations

import json

import numpy as np

import _args
from hpcflow.errors import UserError
from hpcflow.experiments.common import sample_train_test
from hpcflow.experiments.flow_job import check_kernel
from hpcflow.jobs import registry


def flow_job(job: str, seed: int):
    """(cfg, kernel) of a flow job file at geometry seed `seed`; UserError naming the file for any other job."""
    _, cfg = registry.load(job, [f"geometry.seed={seed}"])
    if cfg.get("job", {}).get("kind") != "flow":
        raise UserError(f"{job}: [job].kind is {cfg.get('job', {}).get('kind')!r}, not 'flow'; pass a flow job file")
    return cfg, check_kernel(cfg["kernel"], job)


def spectrum_counts(job: str, seed: int) -> dict:
    cfg, kernel = flow_job(job, seed)
    _, train, _ = sample_train_test(cfg["geometry"])
    k = kernel.block(train.points, train.points)
    if getattr(kernel, "normalize", None) == "row":
        # D^-1 K is similar to the symmetric D^-1/2 K D^-1/2: real eigenvalues, but not those of its symmetric part
        ev = np.sort(np.linalg.eigvals(k).real)[::-1]
    else:
        ev = np.linalg.eigvalsh(0.5 * (k + k.T))[::-1]
    ratio = ev / ev[0]
    return {"job": job, "kernel": cfg["kernel"], "n_train": len(train),
            "modes_above": {f"{t:g}": int((ratio > t).sum()) for t in (1e-1, 1e-2, 1e-3)}}


def main(argv=None) -> None:
    from hpcflow.jobs.schema import SEED_MAX

    ap = _args.parser(__doc__)
    ap.add_argument("jobs", nargs="+", type=_args.file, help="flow job files (a study's best.toml too)")
    ap.add_argument("--seed", type=_args.whole(0, SEED_MAX), default=101, help="geometry seed of the train points")
    a = ap.parse_args(argv)
    for job in a.jobs:  # every job checked before the first spectrum
        try:
            flow_job(job, a.seed)
        except UserError as exc:
            ap.error(" ".join(str(exc).split()))
    for job in a.jobs:
        print(json.dumps(spectrum_counts(job, a.seed)), flush=True)


if __name__ == "__main__":
    _args.run(main)
