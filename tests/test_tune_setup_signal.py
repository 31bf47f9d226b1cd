"""A stop request received while a trial is set up (its points sampled, before its flow's checkpoint writer takes the
signals) stops that trial before its flow's first step, with the checkpoint of step 0, from which the next `hpcflow
tune` continues it (it was stopped after its first step, and before that after the whole trial)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpcflow.experiments import flow_job
from test_tune_records import JOB, _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)


def test_a_signal_during_a_trials_setup_stops_it_before_its_first_step(tmp_path, capsys, monkeypatch):
    steps = 40  # dt = 0.5, a space of one value: the worker's sampler seed takes its pid, and a drawn dt near 3
    space = '"flow.dt" = {low = 0.01, high = 3.0, log = true}'  # diverges before the retry's step 40
    assert space in JOB
    job = _job(tmp_path, JOB.replace("steps = 3", f"steps = {steps}").replace(space, '"flow.dt" = {choices = [0.5]}'))
    out = tmp_path / "s"
    real, sent = flow_job.distribute, []

    def sample_then_sigterm(*a, **kw):  # the trial's points are being drawn: no checkpoint writer yet
        if not sent:
            sent.append(signal.getsignal(signal.SIGTERM))
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **kw)

    monkeypatch.setattr(flow_job, "distribute", sample_then_sigterm)
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out)
    assert callable(sent[0])  # the worker's own handler held the signal when it came
    assert rc == 4 and io.err.count("\n") == 1 and "signal received during trial 0" in io.err, io.err
    summary = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == 0
    trials = _journal(out / "study.journal").trials
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["failure"] == "preempted"
    assert [t.state for t in trials[1:]] == [TrialState.WAITING]  # its parameters queued again; trial 1 never ran
    assert not (out / "trials" / "0001").exists()
    monkeypatch.setattr(flow_job, "distribute", real)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)  # the retry continues it from step 0
    assert rc == 0 and "trial 1 continues preempted trial 0" in io.out, io.err
    summary = json.loads((out / "trials" / "0001" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["checkpoint_step"] == steps
    assert [(g["from_step"], g["to_step"]) for g in summary["legs"]] == [(0, 0), (0, steps)]
    assert _journal(out / "study.journal").trials[1].params == {"flow.dt": 0.5}


@pytest.mark.parametrize("rank", [0, 1])
def test_two_ranks_a_signal_to_one_rank_during_setup_stops_the_trial_on_both(tmp_path, rank):
    """The request of one rank (rank 1's too, which used to be lost: both trials ran, exit 0) ends the trial before its
    first step on every rank together."""
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: install the test extra (mpich wheel)"
    job, out = _job(tmp_path, JOB.replace("steps = 3", "steps = 40")), tmp_path / "s"
    driver = Path(__file__).resolve().parent / "mpi" / "tune_signal_driver.py"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1")
    r = subprocess.run(["timeout", "60", mpiexec, "-n", "2", sys.executable, str(driver), str(rank), "tune", str(job),
                        "--trials", "2", "--out", str(out), "--quiet"], env=env, capture_output=True, text=True,
                       timeout=90)
    assert r.returncode == 4, r.stdout + r.stderr
    assert "signal received during trial 0" in r.stderr
    summary = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == 0 and summary["ranks"] == 2
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
