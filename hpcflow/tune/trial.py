"""One trial: the job's kernel flow (or, for an nn job, its network training) on fresh points, as a run directory.

Points come from seeds spawned from the study seed and the trial number (`trial_seeds`), so every trial sees
new points (reusing points lets the optimiser fit them, paper sec. 3.2) and the study is reproducible.
The run directory holds job.toml (the trial's validated job with its seeds: `hpcflow run` on it reruns the
trial), checkpoint.h5 and, written last, summary.json (layout of `hpcflow run`; an nn trial's
that of `hpcflow nn`: nn.h5, model.pt, checkpoint.pt). Under MPI the trial's flow is divided over the ranks like
any `hpcflow run`, and an nn trial trains data parallel like `hpcflow nn` (rank 0 alone talks to the storage).
"""

from __future__ import annotations

import os
import time

import numpy as np

from hpcflow.experiments import flow_job
from hpcflow.experiments.common import sample_train_test
from hpcflow.jobs.output import read_summary


NOT_POSITIVE_DEFINITE = "not_positive_definite"  # summary.json status of an nn trial pruned for its metric


def trial_seeds(study_seed: int, number: int) -> tuple[int, int]:
    """(train seed, test seed): two 62-bit integers from SeedSequence(study_seed, spawn_key=(number,)), below the
    job files' SEED_MAX so that the trial's job.toml holds them as [geometry] seed and test_seed."""
    state = np.random.SeedSequence(study_seed, spawn_key=(number,)).generate_state(2, dtype=np.uint64)
    return int(state[0] >> np.uint64(2)), int(state[1] >> np.uint64(2))


def trial_points(geo: dict, seeds: tuple[int, int]):
    """(train, test) PointSets of a [geometry] section, drawn from the two seeds; test is None if n_test = 0."""
    _, train, _ = sample_train_test({**geo, "seed": seeds[0], "n_test": 0})
    if geo["n_test"] == 0:
        return train, None
    _, test, _ = sample_train_test({**geo, "seed": seeds[1], "n_train": geo["n_test"], "n_test": 0})
    return train, test


def run_trial(cfg: dict, run_dir: str, *, seeds: tuple[int, int], on_step=None, comm=None, overrides=(),
              resume: bool = False, on_resume=None, note=None, afresh: bool = True) -> dict:
    """Run validated job `cfg` on points from `seeds` into `run_dir`; return the summary (with `seeds` and
    `overrides`: the --set values that, with the seeds, make `cfg` of the study's job file, as `hpcflow run`
    records its own).

    A flow job's trial is its own distributed flow (`hpcflow.experiments.flow_job.run`: points sampled in
    shares, clusters or rows divided over the ranks of `comm`, checkpoints in run_dir); on_step(info, sigma0) is
    called after every step on every rank (info: the kernel_flow callback dict; sigma0: the FS sigma of (train,
    test)). An nn job's trial trains its network data parallel (`hpcflow.nn.job.run`; train and validation
    points from seeds[0]); on_step(epoch, sigma_train, sigma_val, val_not_positive_definite) is called after every
    epoch on every rank with the histories so far (entry 0: the untrained network). Returning True stops the flow or the training
    (status "stopped"); a diverged run's summary is returned with its status. An nn trial that trained to its
    last epoch with a metric not positive definite at some validation points has status "not_positive_definite"
    (the study prunes it, as a diverged one).

    resume: continue the checkpoint in run_dir (a preempted trial's, copied there), as `hpcflow run --resume` (`hpcflow
    nn --resume`) would; on_resume(sigma_train, sigma_test) is called first on every rank with its histories (entry 0:
    the FS sigma, or the untrained network's; one entry per step or epoch done; an nn trial's also with its
    val_not_positive_definite counts, `history`). A checkpoint that is damaged or does
    not fit the job is removed and the trial starts afresh, said in one line through note(text) (rank 0); not
    `afresh`, it is refused (UserError) and kept (`resumed`).
    """
    from hpcflow import __version__
    from hpcflow.errors import NumericalStop, Preempted
    from hpcflow.jobs.output import write_text
    from hpcflow.jobs.toml_out import dumps
    from hpcflow.parallel.comm import resolve

    c = resolve(comm)
    t0 = time.perf_counter()
    kind = cfg["job"]["kind"]
    geometry = {**cfg["geometry"], "seed": seeds[0]}
    if kind != "nn":  # an nn trial draws its train and validation points from seeds[0]
        geometry["test_seed"] = seeds[1]
    cfg = {**cfg, "geometry": geometry}
    if c.Get_rank() == 0:
        os.makedirs(run_dir, exist_ok=True)
    command = "hpcflow nn" if kind == "nn" else "hpcflow run"
    write_text(os.path.join(run_dir, "job.toml"), dumps(cfg, header=(
        f"hpcflow {__version__}: the validated job of this tune trial, its parameters and point seeds filled in;\n"
        f"{command} on this file reruns the trial")), comm=c)
    c.Barrier()
    state = resumed(cfg, run_dir, comm=c, note=note, afresh=afresh) if resume else None
    if state is not None and on_resume is not None:
        on_resume(*history(state))
    try:
        if kind == "nn":
            from hpcflow.nn import job as nn_job

            summary = nn_job.run(cfg, run_dir, comm=c, log=lambda *_: None, on_epoch=on_step, resume=state,
                                 info={"resumed": state is not None})  # as `hpcflow nn` (a flow's: flow_job.run)
            if summary.get("status") == "finished" and (summary.get("val_not_positive_definite_final") or 0) > 0:
                summary["status"] = NOT_POSITIVE_DEFINITE  # the study prunes it, as a diverged trial
        else:
            callback = None if on_step is None else (
                lambda info: bool(on_step(info, (info["sigma_train_initial"], info["sigma_test_initial"]))))
            summary = flow_job.run(cfg, run_dir, comm=c, callback=callback,  # test points: [geometry].test_seed
                                   resume=False if state is None else state)
    except NumericalStop as exc:  # diverged: its outputs are written; the trial reports it, the study goes on
        summary = exc.summary
    except Preempted as exc:  # a flow's checkpoint is written and its summary (status "preempted") is carried here
        preempted = getattr(exc, "summary", None)
        if preempted is None and kind == "nn":  # an nn trial wrote its own (rank 0): the trial's keys added to it
            preempted = read_summary(run_dir) if c.Get_rank() == 0 else {}
        if preempted is not None:
            _write_summary(run_dir, dict(preempted), kind, seeds, overrides, t0, c)
        raise
    return _write_summary(run_dir, summary, kind, seeds, overrides, t0, c)


def checkpoint_name(kind: str) -> str:
    """The checkpoint file a trial of job kind `kind` continues from (`hpcflow run --resume`, `hpcflow nn --resume`)."""
    if kind == "nn":
        from hpcflow.nn.files import CHECKPOINT

        return CHECKPOINT
    return "checkpoint.h5"


def resumed(cfg: dict, run_dir: str, *, comm, note=None, afresh: bool = True):
    """The checked state of the checkpoint in run_dir that job `cfg` continues (a flow's FlowResume, as `hpcflow run
    --resume` reads it; an nn job's checkpoint dict, as `hpcflow nn --resume`, whose nn.h5 a resume writes again),
    or None when it is damaged or does not fit the job: then it is removed (the trial starts afresh) and note(one
    line) says why, on rank 0; not `afresh` (a finished trial's nn.h5 written again): the refusal is raised, the
    checkpoint kept. Collective."""
    from hpcflow.errors import UserError
    from hpcflow.parallel.comm import arguments_together

    path = os.path.join(run_dir, checkpoint_name(cfg["job"]["kind"]))
    try:
        if cfg["job"]["kind"] == "nn":
            return arguments_together(lambda: _nn_resume(cfg, path), comm=comm)
        return flow_job.resume_state(cfg, run_dir, comm=comm)
    except UserError as exc:  # every rank alike (arguments_together)
        if not afresh:
            raise
        if comm.Get_rank() == 0:
            if os.path.exists(path):
                os.remove(path)
            if note is not None:
                note(f"{without_restart(' '.join(str(exc).split()))[:300]}; the trial starts afresh with the same "
                     "parameters and seeds")
        comm.Barrier()
        return None


def without_restart(text: str) -> str:
    """A checkpoint refusal of `hpcflow run --resume` / `hpcflow nn --resume` without its advice to start the run
    again with --force or in a new --out: a tune trial starts afresh by itself, and tune has no --force."""
    from hpcflow.checkpoint import RESTART as FLOW
    from hpcflow.nn.checkpoint import RESTART as NN

    for advice in {FLOW, NN}:
        for sep in (", or ", "; ", ", ", " or ", " "):
            text = text.replace(sep + advice, "")
    return text


def _nn_resume(cfg: dict, path: str) -> dict:
    from hpcflow.nn import job as nn_job
    from hpcflow.nn.checkpoint import check_train_layout, load_checkpoint

    state = load_checkpoint(path)
    nn_job.check_resume(cfg, state, path, nn_h5_redone=True)  # a trial's resume redoes what follows training
    check_train_layout(state, path, **nn_job.checkpoint_layout(cfg))
    return state


def history(state) -> tuple:
    """(sigma_train, sigma_test) histories of a checkpoint state (`resumed`): entry 0 the FS sigma (the untrained
    network's; sigma_test is then sigma_val), then one entry per step (epoch) done; an nn checkpoint's third: its
    val_not_positive_definite counts (-1 each where the checkpoint predates them)."""
    if isinstance(state, dict):  # an nn checkpoint
        h = state["train"]["history"]
        counts = h.get("val_not_positive_definite")
        counts = [-1] * len(h["sigma_val"]) if counts is None else [int(x) for x in counts]
        return [float(x) for x in h["sigma_train"]], [float(x) for x in h["sigma_val"]], counts
    n = int(state.step) + 1
    return [float(x) for x in state.sigma_train[:n]], [float(x) for x in state.sigma_test[:n]]


def _write_summary(run_dir, summary: dict, kind, seeds, overrides, t0, comm) -> dict:
    """run_dir/summary.json, written last (the run directory is complete), with the trial's kind, seeds, --set
    values and wall time added (and counted in wall_seconds_total, as `hpcflow run` does); returns the summary."""
    from hpcflow.checkpoint import run_total
    from hpcflow.jobs.output import write_json

    wall = time.perf_counter() - t0
    summary.update(kind=kind, seeds=list(seeds), overrides=list(overrides), wall_seconds=wall)
    if "wall_seconds_total" in summary:
        summary["wall_seconds_total"] = run_total(summary.get("legs") or [], wall)
    write_json(os.path.join(run_dir, "summary.json"), summary, comm=comm)
    return summary
