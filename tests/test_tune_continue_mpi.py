"""A trial preempted under `mpiexec -n 2` (SIGTERM to rank 1 alone, at a flow step) is continued from its checkpoint
by the next `hpcflow tune` command, at 2 ranks and at 1, with the histories of the uninterrupted 1-rank `hpcflow run`
of its job.toml (HPCFLOW_THREADS=1 for all)."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from optuna.trial import TrialState

from hpcflow.checkpoint import load_resume
from roundoff import gamma
from test_parallel import mpiexec
from test_tune_continue import _uninterrupted
from test_tune_records import JOB, _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)

ROOT = Path(__file__).resolve().parents[1]
DRIVER = str(ROOT / "tests" / "mpi" / "flow_stop_driver.py")
N_TRAIN, STEPS, AT = 60, 8, 3
ENV = dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def _mpi(ranks, *args):
    return subprocess.run(["timeout", "120", mpiexec(), "-n", str(ranks), sys.executable, *args], env=ENV,
                          capture_output=True, text=True, timeout=150)


def test_a_trial_preempted_at_two_ranks_is_continued_at_two_ranks_and_at_one(tmp_path, capsys, monkeypatch):
    job, out, again = _job(tmp_path, JOB.replace("steps = 3", f"steps = {STEPS}")), tmp_path / "s", tmp_path / "s1"
    # rank 1 alone receives SIGTERM at step AT: the trial stops there on both ranks, its checkpoint written
    p = _mpi(2, DRIVER, str(AT), "1", "tune", str(job), "--trials", "2", "--out", str(out), "--quiet")
    assert p.returncode == 4 and "signal received during trial 0" in p.stderr, p.stdout + p.stderr
    first = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    assert first["status"] == "preempted" and first["ranks"] == 2 and first["checkpoint_step"] == AT
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].user_attrs["continues"] == 0 and trials[1].user_attrs["seeds"] == trials[0].user_attrs["seeds"]
    shutil.copytree(out, again)  # the same preempted study, continued by a 1-rank command below

    p = _mpi(2, "-m", "hpcflow", "tune", str(job), "--trials", "1", "--out", str(out))
    assert p.returncode == 0 and "trial 1 continues preempted trial 0" in p.stdout, p.stdout + p.stderr
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    rc, io = _tune(capsys, job, "--trials", "1", "--out", again)
    assert rc == 0 and "trial 1 continues preempted trial 0" in io.out, io.out + io.err
    ref = _uninterrupted(tmp_path, capsys, out)  # `hpcflow run` of trial 0's job.toml, 1 rank
    assert ref.step == STEPS
    # another rank count sums the rows' terms in another order: each step's sums of N_TRAIN terms round within
    # gamma(N_TRAIN) of the exact ones, relative to sigma, accumulated over the steps
    tol = STEPS * gamma(N_TRAIN)
    done = load_resume(str(out / "trials" / "0000" / "checkpoint.h5"))
    assert done.step == AT

    for study, ranks in ((out, 2), (again, 1)):
        trials = _journal(study / "study.journal").trials
        assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE], study  # no third trial
        t = trials[1]
        assert t.params == trials[0].params and t.user_attrs["seeds"] == trials[0].user_attrs["seeds"]
        summary = json.loads((study / "trials" / "0001" / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["resumed"] is True and summary["ranks"] == ranks
        assert [(g["from_step"], g["to_step"], g["ranks"]) for g in summary["legs"]] == [(0, AT, 2), (AT, STEPS, ranks)]
        got = load_resume(str(study / "trials" / "0001" / "checkpoint.h5"))
        assert got.step == STEPS
        for name in ("sigma_train", "sigma_test"):
            g, d, r = (np.asarray(getattr(s, name)) for s in (got, done, ref))
            np.testing.assert_array_equal(g[:AT + 1], d[:AT + 1], err_msg=name)  # the preempted steps, carried over
            np.testing.assert_allclose(g, r, rtol=0, atol=tol * r[0], err_msg=f"{name} at {ranks} ranks")
        # the pruner saw the whole curve: the steps of trial 0 reported before the rest, each the objective there
        assert sorted(t.intermediate_values) == list(range(1, STEPS + 1))
        for k, v in t.intermediate_values.items():
            assert v == math.log(got.sigma_test[0] / got.sigma_test[k])
        assert json.loads((study / "trials" / "0000" / "summary.json").read_text()) == first  # kept as it was
