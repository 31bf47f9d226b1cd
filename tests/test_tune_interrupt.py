"""A second Ctrl-C during a trial (the first one's stop still being honoured) interrupts the worker at once (exit
130); the trial is recorded as failed with `failure` = "interrupted" and queued again, and the same command continues
it from its last whole checkpoint, to the result the trial would have had uninterrupted."""

from __future__ import annotations

import json
import os
import signal

from optuna.trial import TrialState

from hpcflow.cli import main
from hpcflow.tune import objective
from test_tune_records import JOB, _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)

STEPS, AT = 12, 5
SPACE = '"flow.dt" = {low = 0.01, high = 3.0, log = true}'


def test_a_second_ctrl_c_in_a_trial_queues_it_to_be_continued(tmp_path, capsys, monkeypatch):
    assert SPACE in JOB
    job = _job(tmp_path, JOB.replace("steps = 3", f"steps = {STEPS}").replace(SPACE, '"flow.dt" = {choices = [0.5]}')
               + "[checkpoint]\nevery = 2\n")
    out = tmp_path / "s"
    real, sent = objective.Tracker.step, []

    def ctrl_c_twice(self, info, sigma0):  # at step AT: Ctrl-C, and again before the first is honoured
        if info["step"] == AT and not sent:
            sent.append(signal.getsignal(signal.SIGINT))
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real(self, info, sigma0)

    monkeypatch.setattr(objective.Tracker, "step", ctrl_c_twice)
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out)
    assert callable(sent[0])  # a handler of the run's held the first Ctrl-C
    assert rc == 130 and io.err == "hpcflow tune: interrupted\n", io.err
    assert (f"hpcflow tune: trial 0 interrupted (run directory {out}/trials/0000); its parameters are queued again, "
            "to continue from its last checkpoint") in io.out, io.out
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]  # (it was failed with no reason, lost)
    assert trials[0].user_attrs["failure"] == "interrupted" and trials[1].user_attrs["continues"] == 0
    monkeypatch.setattr(objective.Tracker, "step", real)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")
    assert rc == 0 and f"trial 1 continues trial 0 (interrupted) from {out}/trials/0000/checkpoint.h5" in io.out, io.out
    continued = json.loads((out / "trials" / "0001" / "summary.json").read_text())
    legs = [(g["from_step"], g["to_step"]) for g in continued["legs"]]
    assert continued["status"] == "finished" and len(legs) == 2 and 0 < legs[0][1] < AT + 1 and legs[1][1] == STEPS
    # the trial's own job, run afresh without an interrupt: the continued trial's result bit for bit
    assert main(["run", str(out / "trials" / "0000" / "job.toml"), "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    whole = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert continued["sigma_test_final"] == whole["sigma_test_final"]
    assert continued["sigma_train_final"] == whole["sigma_train_final"]
    assert _journal(out / "study.journal").trials[1].value == objective.from_summary("log_gain_test", whole)
