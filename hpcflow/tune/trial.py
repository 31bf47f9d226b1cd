"""One trial: the job's kernel flow on fresh train and test points, written as a run directory.

Points come from seeds spawned from the study seed and the trial number (`trial_seeds`), so every trial sees
new points (reusing points lets the optimiser fit them, paper sec. 3.2) and the study is reproducible.
The run directory holds checkpoint.h5 and, written last, summary.json (layout of `hpcflow run`). Under MPI every
rank samples the trial's whole point sets and runs the whole flow (identical on all ranks; rank 0 writes): the
trial is replicated, not divided over the ranks.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from hpcflow.experiments import flow_job
from hpcflow.experiments.common import sample_train_test


def trial_seeds(study_seed: int, number: int) -> tuple[int, int]:
    """(train seed, test seed): two 63-bit integers from SeedSequence(study_seed, spawn_key=(number,))."""
    state = np.random.SeedSequence(study_seed, spawn_key=(number,)).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(1)), int(state[1] >> np.uint64(1))


def trial_points(geo: dict, seeds: tuple[int, int]):
    """(train, test) PointSets of a [geometry] section, drawn from the two seeds; test is None if n_test = 0."""
    _, train, _ = sample_train_test({**geo, "seed": seeds[0], "n_test": 0})
    if geo["n_test"] == 0:
        return train, None
    _, test, _ = sample_train_test({**geo, "seed": seeds[1], "n_train": geo["n_test"], "n_test": 0})
    return train, test


def _blocks(cfg, train, test):
    cl = cfg["clustering"]
    if cl.get("method") is None:
        return None
    from hpcflow.cluster import flow_blocks

    return flow_blocks(train.points, None if test is None else test.points, method=cl["method"],
                       n_clusters=cl["n_clusters"], batch_size=cl["batch_size"], seed=cl["seed"],
                       merge=cl.get("merge", "nearest"), halo_cutoff=cl["halo_cutoff"])


def _status(res, has_test: bool) -> str:
    finals = [res.sigma_train[-1]] + ([res.sigma_test[-1]] if has_test else [])
    if not all(math.isfinite(x) for x in finals):
        return "diverged"
    return "stopped" if res.stopped else "finished"


def run_trial(cfg: dict, run_dir: str, *, seeds: tuple[int, int], on_step=None, comm=None) -> dict:
    """Run the flow of validated job `cfg` on points from `seeds` into `run_dir`; return the summary.

    on_step(info, sigma0) is called after every step (info: the kernel_flow callback dict; sigma0: the FS
    sigma of (train, test)); returning True stops the flow (status "stopped").
    """
    from hpcflow.flow import kernel_flow
    from hpcflow.jobs.output import write_hdf5, write_json
    from hpcflow.parallel.comm import SerialComm, size

    t0 = time.perf_counter()
    fl = cfg["flow"]
    kernel = flow_job.check_kernel(cfg["kernel"], "job")
    train, test = trial_points(cfg["geometry"], seeds)
    sigma0 = (train.sigma(), test.sigma() if test is not None else float("nan"))
    callback = None if on_step is None else (lambda info: bool(on_step(info, sigma0)))
    res = kernel_flow(kernel, train, test, dt=fl["dt"], steps=fl["steps"], loss=fl["loss"], weighted=fl["weighted"],
                      tile=fl["tile"], blocks=_blocks(cfg, train, test), max_halvings=fl["max_halvings"],
                      clip=fl["clip"], early_stop=fl["early_stop"], kappa_gradient=fl["kappa_gradient"],
                      callback=callback, comm=SerialComm())  # whole sets on every rank: not a divided flow
    status = _status(res, test is not None)
    data = {"history/sigma_train": res.sigma_train, "history/sigma_test": res.sigma_test,
            "history/dt": res.dt_history}
    for name, ps, g in (("train", train, res.g_train), ("test", test, res.g_test)):
        if ps is not None:
            data.update({f"{name}/points": ps.points, f"{name}/weights": ps.weights, f"{name}/omega2": ps.omega2,
                         f"{name}/g": g})
    os.makedirs(run_dir, exist_ok=True)
    write_hdf5(os.path.join(run_dir, "checkpoint.h5"), data, comm=comm,
               attrs={"kind": "hpcflow.flow_checkpoint", "step": int(res.steps_taken), "config": cfg,
                      "status": status, "seeds": list(seeds)})
    summary = flow_job.flow_summary(res, len(train), 0 if test is None else len(test))
    summary.update(status=status, checkpoint_step=int(res.steps_taken), ranks=size(comm), kind="flow",
                   kernel=cfg["kernel"]["name"], config=cfg, seeds=list(seeds),
                   wall_seconds=time.perf_counter() - t0)
    write_json(os.path.join(run_dir, "summary.json"), summary, comm=comm)  # last: the run directory is complete
    return summary
