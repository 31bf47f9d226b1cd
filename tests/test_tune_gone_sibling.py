"""A live worker without --max-trials fails (and, as [tune] retries allow, retries) the trial of a sibling worker
killed mid-study before its own next trial, not only the next command."""

from __future__ import annotations

import datetime
import socket
import subprocess
import sys

import optuna
from optuna.trial import TrialState

from hpcflow.tune.study import optimize
from test_tune_records import JOB, _job, _journal  # tests/ is on sys.path (pytest's default import mode)


def _dead_pid() -> int:
    """The pid of a process of this host that has ended."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_worker_without_max_trials_fails_and_retries_a_killed_siblings_trial_between_its_trials(tmp_path):
    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 1'))
    out, pid, lines = tmp_path / "s", _dead_pid(), []

    def log(line):
        lines.append(line)
        if line.startswith("hpcflow tune: trial 0 "):  # a sibling worker, killed since, left trial 1 RUNNING
            started = datetime.datetime.now(datetime.timezone.utc)
            _journal(out / "study.journal").add_trial(optuna.trial.FrozenTrial(
                number=0, state=TrialState.RUNNING, value=None, datetime_start=started, datetime_complete=None,
                params={"flow.dt": 0.5},
                distributions={"flow.dt": optuna.distributions.FloatDistribution(0.01, 3.0, log=True)},
                user_attrs={"host": socket.gethostname(), "pid": pid, "run_dir": "trials/0001"}, system_attrs={},
                intermediate_values={}, trial_id=0))

    r = optimize(str(job), trials=2, out=str(out), log=log)
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE], lines
    assert trials[1].user_attrs["failure"].startswith("worker gone (its process ended")
    assert trials[2].params == {"flow.dt": 0.5} and trials[2].user_attrs["retry_of"] == 1  # its retry ran second
    assert r["ran"] == 2 and r["counts"] == {"COMPLETE": 2, "FAIL": 1}
    assert any("marked stale RUNNING trials [1] as failed" in line for line in lines)
