"""The line that continues a stopped `hpcflow submit --command tune` adds only the trials still wanted: the study
ends with the --trials that were asked, the preempted trial continued among them (not one trial more)."""

from __future__ import annotations

import os
import shlex
import signal
from types import SimpleNamespace

import pytest
from optuna.trial import TrialState

from hpcflow.cli import build_parser, main
from hpcflow.submit import executor
from hpcflow.tune import objective
from test_tune_records import JOB, _job, _journal  # tests/ is on sys.path (pytest's default import mode)


class _Ran:
    """A job that ran its command in this process and ended with `status`."""

    def __init__(self, folder, job_id, status):
        self.job_id, self.status, self.state = job_id, status, "FINISHED"
        self.paths = SimpleNamespace(folder=folder, stderr=folder / f"{job_id}_0_log.err",
                                     stdout=folder / f"{job_id}_0_log.out")
        self.paths.stderr.write_text("")

    def done(self):
        return True

    def results(self):
        return [self.status]


def _in_process(tmp_path, monkeypatch, stop_trial=None):
    """executor.submit runs each worker's `hpcflow tune` in this process; with `stop_trial`, a SIGTERM during step 3
    of the `stop_trial`-th trial that this process starts (0-based), as a preemption sends it."""
    real = objective.Tracker.step
    started = []

    def step(self, info, sigma0):
        if self not in started:
            started.append(self)
        if stop_trial is not None and info["step"] == 3 and started.index(self) == stop_trial:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, info, sigma0)

    def submit(ex, task, argvs):
        monkeypatch.setattr(objective.Tracker, "step", step)
        try:
            return [_Ran(tmp_path, str(70 + i), main(argv)) for i, argv in enumerate(argvs)]
        finally:
            monkeypatch.setattr(objective.Tracker, "step", real)

    monkeypatch.setattr(executor, "submit", submit)


def _finished(out):
    return [t.number for t in _journal(out / "study.journal").trials if t.state == TrialState.COMPLETE]


@pytest.mark.parametrize("earlier", [0, 1])
def test_the_continue_line_of_a_preempted_tune_adds_only_the_trials_still_wanted(tmp_path, monkeypatch, capsys,
                                                                                 earlier):
    """`--trials 2`, the first trial finished and the second preempted: continued, the study holds 2 more finished
    trials than before the submission (`earlier`, from a tune before it), not 3."""
    job, out = _job(tmp_path, JOB.replace("steps = 3", "steps = 8")), tmp_path / "s"
    if earlier:
        assert main(["tune", str(job), "--out", str(out), "--trials", str(earlier), "--quiet"]) == 0
    argv = ["submit", str(job), "--out", str(out), "--executor", "local", "--command", "tune", "--trials", "2",
            "--logs", str(tmp_path / "logs"), "--wait", "--quiet"]
    _in_process(tmp_path, monkeypatch, stop_trial=1)  # trial 0 finishes, trial 1 is preempted
    assert main(argv) == 4
    said = capsys.readouterr().out
    assert len(_finished(out)) == earlier + 1, said
    line = next(x for x in said.splitlines() if "continue it with: " in x)
    again = shlex.split(line.split("continue it with: ", 1)[1])
    assert again[:2] == ["hpcflow", "submit"] and build_parser().parse_args(again[1:]).trials == 2, again

    _in_process(tmp_path, monkeypatch)
    assert main(again[1:]) == 0, capsys.readouterr()
    assert len(_finished(out)) == earlier + 2  # the continued trial the second, not a third


def test_max_trials_is_passed_to_every_tune_worker_and_refused_without_command_tune(tmp_path, capsys):
    job = _job(tmp_path)
    base = ["submit", str(job), "--out", str(tmp_path / "s"), "--executor", "local", "--check"]
    assert main([*base, "--command", "tune", "--trials", "4", "--array", "2", "--max-trials", "3"]) == 0
    said = capsys.readouterr().out
    worker = shlex.split(said.split(": ", 2)[2].split(";")[0])
    assert worker[worker.index("--max-trials") + 1] == "3", said
    assert main([*base, "--max-trials", "3"]) == 2
    assert "--max-trials 3 is an option of --command tune" in capsys.readouterr().err
