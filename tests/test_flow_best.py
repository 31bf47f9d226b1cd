"""A flow's best sigma (checkpoint.h5 @best, @since_best; summary.json's *_best keys) is the smallest of its history
read from the file, with or without [flow].early_stop, and after an interrupted run is resumed, from a checkpoint
of this version or from one whose @best is the step-0 sigma (what a run without early_stop used to store)."""

import json
import os
import shutil
import signal

import h5py
import numpy as np
import pytest

from hpcflow import checkpoint as ckpt
from hpcflow import cli
from hpcflow.flow import kernel_flow
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import make_kernel
from test_flow_state import RecordedResume

STEPS, STOP = 10, 8  # sigma_test of this job is lowest at step 7, between step 0 and the last step


def _job(tmp_path, n_test=40, early_stop=None):
    job = tmp_path / f"job_{n_test}_{early_stop}.toml"
    job.write_text(f'[job]\nkind = "flow"\n[geometry]\nchart = [0, 1]\nn_train = 120\nn_test = {n_test}\nseed = 4\n'
                   '[kernel]\nname = "gaussian"\nform = "exp"\nwidth = 0.05\nnormalize = "row"\n'
                   f'[flow]\ndt = 6.5\nsteps = {STEPS}\nloss = "ultralocal"\n'
                   + ("" if early_stop is None else f"early_stop = {early_stop}\n"))
    return job


def _run(*argv):
    assert cli.main(["run", *map(str, argv)]) == 0


def _check_best(out, n_test):
    """@best, @since_best and the summary's best keys against the history in checkpoint.h5; the history."""
    with h5py.File(os.path.join(out, "checkpoint.h5"), "r") as f:
        sigma = f["history/sigma_test" if n_test else "history/sigma_train"][()]
        best, since_best, step = (f.attrs[k] for k in ("best", "since_best", "step"))
    first = int(np.flatnonzero(sigma == sigma.min())[0])
    assert 0 < first and len(sigma) == step + 1 == STEPS + 1  # step 0 is not the best: the check means something
    assert (best, since_best) == (sigma.min(), step - first)
    summary = json.loads(open(os.path.join(out, "summary.json")).read())
    if n_test:
        assert (summary["sigma_test_best"], summary["step_test_best"]) == (sigma.min(), first)
        np.testing.assert_allclose(summary["gain_test_best"], sigma[0] / sigma.min(), rtol=1e-15)
    return sigma


@pytest.mark.parametrize("n_test, early_stop", [(40, None), (40, 50), (0, None)])
def test_best_is_the_smallest_sigma_of_the_history(tmp_path, n_test, early_stop):
    _run(_job(tmp_path, n_test, early_stop), "--out", tmp_path / "out")
    _check_best(tmp_path / "out", n_test)


def test_a_resumed_run_has_the_best_of_its_whole_history(tmp_path, monkeypatch):
    """Preempted at step STOP (SIGTERM, as Slurm sends it), after the best step; then resumed as it is, and from a
    copy whose @best / @since_best are σ_test at step 0 / 0 (the values a run without early_stop used to write)."""
    job, out, old = _job(tmp_path), tmp_path / "out", tmp_path / "old"
    _run(job, "--out", tmp_path / "whole")
    whole = _check_best(tmp_path / "whole", 40)
    call = ckpt.CheckpointWriter.__call__

    def preempt(self, view):
        if view.step == STOP:
            os.kill(os.getpid(), signal.SIGTERM)
        return call(self, view)

    with monkeypatch.context() as m:
        m.setattr(ckpt.CheckpointWriter, "__call__", preempt)
        assert cli.main(["run", str(job), "--out", str(out)]) == 4
    shutil.copytree(out, old)
    with h5py.File(old / "checkpoint.h5", "r+") as f:
        assert f.attrs["step"] == STOP
        f.attrs["best"], f.attrs["since_best"] = f["history/sigma_test"][0], 0
    for d in (out, old):
        _run(job, "--out", d, "--resume")
        np.testing.assert_array_equal(_check_best(d, 40), whole)


def test_an_api_resume_with_early_stop_stops_at_once_after_that_many_steps_without_improvement():
    """A flow run without early_stop and continued with it stops at once when its history already went that many
    steps without a new best, saying so (an early stop, as its uninterrupted run would have made earlier)."""
    X = Hypersurface.fermat(3)
    train, test = X.sample(120, seed=4, chart=(0, 1)), X.sample(40, seed=5, chart=(0, 1))
    kernel, kw = make_kernel("gaussian", width=0.05, form="exp", normalize="row"), dict(dt=6.5, loss="ultralocal")
    views = []
    part = kernel_flow(kernel, train, test, steps=STOP, on_step=views.append, **kw)
    se = list(part.sigma_test)
    since = STOP - se.index(min(se))
    assert (views[-1].best, views[-1].since_best) == (min(se), since) and since >= 1
    rest = kernel_flow(kernel, train, test, steps=STEPS, early_stop=since, resume=RecordedResume(views[-1]), **kw)
    assert rest.steps_taken == STOP and rest.stop_kind == "early_stop" and "early stop" in rest.stopped
    np.testing.assert_array_equal(rest.sigma_test, part.sigma_test)
