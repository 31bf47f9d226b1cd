"""A trial stopped by a signal (a Slurm preemption) is continued by the retry the next `hpcflow tune` runs: the same
point seeds, from the preempted trial's checkpoint, with the steps done reported to the pruner first."""

from __future__ import annotations

import json
import math
import os
import signal

import numpy as np
from optuna.trial import TrialState

from hpcflow.checkpoint import load_resume
from hpcflow.cli import main
from hpcflow.tune import objective
from hpcflow.tune.trial import trial_seeds
from test_leg_commit import _head
from test_tune_records import JOB, _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)

STEPS = 8


def _preempted_study(tmp_path, capsys, monkeypatch, at=3):
    """`hpcflow tune --trials 2` stopped by SIGTERM during step `at` of trial 0 (exit 4): (job, out)."""
    job, out = _job(tmp_path, JOB.replace("steps = 3", f"steps = {STEPS}")), tmp_path / "s"
    real = objective.Tracker.step

    def step_then_sigterm(self, info, sigma0):  # the flow stops at the next step boundary, its checkpoint written
        if info["step"] == at:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, info, sigma0)

    monkeypatch.setattr(objective.Tracker, "step", step_then_sigterm)
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out)
    monkeypatch.setattr(objective.Tracker, "step", real)
    assert rc == 4 and "signal received during trial 0" in io.err, io.err
    return job, out


def _uninterrupted(tmp_path, capsys, out):
    """The preempted trial run whole by `hpcflow run` on its job.toml (its parameters and point seeds)."""
    ref = tmp_path / "ref"
    capsys.readouterr()
    assert main(["run", str(out / "trials" / "0000" / "job.toml"), "--out", str(ref)]) == 0
    return load_resume(str(ref / "checkpoint.h5"))


def test_a_preempted_trial_is_continued_from_its_checkpoint_by_the_next_command(tmp_path, capsys, monkeypatch):
    job, out = _preempted_study(tmp_path, capsys, monkeypatch)
    trials = _journal(out / "study.journal").trials
    first = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    done = first["checkpoint_step"]
    assert first["status"] == "preempted" and 1 <= done < STEPS
    assert trials[1].state == TrialState.WAITING
    assert trials[1].user_attrs["continues"] == 0 and trials[1].user_attrs["seeds"] == trials[0].user_attrs["seeds"]

    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 0, io.err
    assert "trial 1 continues preempted trial 0" in io.out
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]  # no third trial
    t = trials[1]
    assert t.params == trials[0].params
    assert t.user_attrs["seeds"] == trials[0].user_attrs["seeds"] != list(trial_seeds(5, 1))
    summary = json.loads((out / "trials" / "0001" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["resumed"] is True and summary["checkpoint_step"] == STEPS
    assert summary["seeds"] == trials[0].user_attrs["seeds"] and len(summary["legs"]) == 2
    assert all(set(g) == {"from_step", "to_step", "ranks", "wall_seconds", "hpcflow_version", "threads",  # no
                          "blas_kernel", "backend", "git_commit"} for g in summary["legs"])  # status: an nn trial's
    assert [g["backend"] for g in summary["legs"]] == ["numpy", "numpy"]  # (no GPU here)
    assert [g["git_commit"] for g in summary["legs"]] == [_head()] * 2  # both legs ran the code under test

    ref = _uninterrupted(tmp_path, capsys, out)
    got = load_resume(str(out / "trials" / "0001" / "checkpoint.h5"))
    assert ref.step == got.step == STEPS
    np.testing.assert_array_equal(got.sigma_train, ref.sigma_train)  # bitwise: a resume continues exactly
    np.testing.assert_array_equal(got.sigma_test, ref.sigma_test)
    # the pruner saw the whole curve: the steps of trial 0 reported before the rest, each the objective there
    assert sorted(t.intermediate_values) == list(range(1, STEPS + 1))
    for k, v in t.intermediate_values.items():
        assert v == math.log(ref.sigma_test[0] / ref.sigma_test[k])
    assert t.value == math.log(ref.sigma_test[0] / ref.sigma_test[STEPS])
    best = _journal(out / "study.journal").best_trial.number
    assert best == 1 and "trial 1" in (out / "best.toml").read_text()
    # the preempted trial's directory is kept as it was
    assert json.loads((out / "trials" / "0000" / "summary.json").read_text()) == first
    assert load_resume(str(out / "trials" / "0000" / "checkpoint.h5")).step == done


def test_a_continued_trial_preempted_again_is_continued_again(tmp_path, capsys, monkeypatch):
    job, out = _preempted_study(tmp_path, capsys, monkeypatch, at=2)
    real = objective.Tracker.step

    def step_then_sigterm(self, info, sigma0):
        if info["step"] == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, info, sigma0)

    monkeypatch.setattr(objective.Tracker, "step", step_then_sigterm)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    monkeypatch.setattr(objective.Tracker, "step", real)
    assert rc == 4 and "signal received during trial 1" in io.err
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[2].user_attrs["continues"] == 1 and trials[2].user_attrs["seeds"] == trials[0].user_attrs["seeds"]
    ref = _uninterrupted(tmp_path, capsys, out)
    got = load_resume(str(out / "trials" / "0002" / "checkpoint.h5"))
    np.testing.assert_array_equal(got.sigma_test, ref.sigma_test)
    assert len(got.legs) == 3


def test_a_damaged_checkpoint_starts_the_retry_afresh_with_the_same_seeds(tmp_path, capsys, monkeypatch):
    job, out = _preempted_study(tmp_path, capsys, monkeypatch)
    ref = _uninterrupted(tmp_path, capsys, out)
    (out / "trials" / "0000" / "checkpoint.h5").write_bytes(b"not a checkpoint")
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 0, io.err
    notes = [line for line in io.out.splitlines() if "starts afresh" in line]
    assert len(notes) == 1 and "trial 1:" in notes[0] and "checkpoint.h5" in notes[0]
    assert "--force" not in notes[0] and "--out" not in notes[0]  # hpcflow run's fix: tune starts the trial afresh
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    summary = json.loads((out / "trials" / "0001" / "summary.json").read_text())
    assert summary["resumed"] is False and summary["seeds"] == trials[0].user_attrs["seeds"]
    got = load_resume(str(out / "trials" / "0001" / "checkpoint.h5"))
    np.testing.assert_array_equal(got.sigma_test, ref.sigma_test)


def test_a_missing_checkpoint_starts_the_retry_afresh(tmp_path, capsys, monkeypatch):
    job, out = _preempted_study(tmp_path, capsys, monkeypatch)
    (out / "trials" / "0000" / "checkpoint.h5").unlink()
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 0, io.err
    assert "trial 1: no checkpoint of preempted trial 0 found" in io.out
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert json.loads((out / "trials" / "0001" / "summary.json").read_text())["resumed"] is False


def test_a_preempted_nn_trial_is_continued_from_its_checkpoint(tmp_path, capsys, monkeypatch):
    import h5py

    from test_tune_nn import JOB as NN_JOB

    job = _job(tmp_path, NN_JOB.replace("epochs = 3", "epochs = 5"), name="nn_tiny.toml")
    out, real, sent = tmp_path / "s", objective.value, []

    def value_then_sigterm(name, sigma_train, sigma_test):  # after epoch 2: training stops at its next boundary
        if len(sigma_train) == 3 and not sent:
            sent.append(os.kill(os.getpid(), signal.SIGTERM))
        return real(name, sigma_train, sigma_test)

    monkeypatch.setattr(objective, "value", value_then_sigterm)
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out)
    monkeypatch.setattr(objective, "value", real)
    assert rc == 4 and "signal received during trial 0" in io.err, io.err
    first = json.loads((out / "trials" / "0000" / "summary.json").read_text())
    assert first["status"] == "preempted" and first["resumed"] is False
    seeds = _journal(out / "study.journal", "nn_tiny").trials[0].user_attrs["seeds"]
    assert first["seeds"] == seeds and first["kind"] == "nn" and first["wall_seconds"] > 0  # a trial's keys, as a
    assert first["overrides"] and all("=" in o for o in first["overrides"])  # preempted flow trial's summary has
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 0 and "trial 1 continues preempted trial 0" in io.out, io.out + io.err
    summary = json.loads((out / "trials" / "0001" / "summary.json").read_text())
    assert summary["resumed"] is True and summary["status"] == "finished"  # as a flow trial's (README)
    # the legs: the preempted run's epochs, then this one's; an nn leg also says how it ended (docs/outputs.md)
    assert [(g["from_step"], g["to_step"], g["status"]) for g in summary["legs"]] == [
        (0, first["checkpoint_step"], "preempted"), (first["checkpoint_step"], 5, "finished")]
    flow_keys = {"from_step", "to_step", "ranks", "wall_seconds", "hpcflow_version"}
    assert all(set(g) == flow_keys | {"status", "threads", "blas_kernel", "backend", "git_commit"}  # nn: its
               for g in summary["legs"])  # threads too
    assert [g["git_commit"] for g in summary["legs"]] == [_head()] * 2  # both legs ran the code under test
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[1].user_attrs["seeds"] == trials[0].user_attrs["seeds"]
    ref = tmp_path / "ref"
    assert main(["nn", str(out / "trials" / "0000" / "job.toml"), "--out", str(ref)]) == 0
    with h5py.File(ref / "nn.h5") as a, h5py.File(out / "trials" / "0001" / "nn.h5") as b:
        want, got = a["history/sigma_val"][()], b["history/sigma_val"][()]
    assert len(want) == 6
    np.testing.assert_array_equal(got, want)
    assert sorted(trials[1].intermediate_values) == list(range(1, 6))
    assert [trials[1].intermediate_values[k] for k in range(1, 6)] == list(want[1:])
    assert trials[1].value == want[-1]
