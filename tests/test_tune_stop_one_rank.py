"""`hpcflow tune` under `mpiexec -n 2` where a stop request reaches one rank only (`kill -TERM` of one rank's process)
between trials, or at a trial's last step (where the flow finishes and the request goes on to the worker): every rank
stops before the next trial together, each with exit status 4, trial 0 complete, no trial 1 drawn and best.toml
written (README: "between trials it stops before the next one, also with best.toml and status 4"); likewise between
two finished nn trials whose nn.h5 the worker writes again from their checkpoint.pt before it adds trials. A request
to rank 1 alone used to start the next trial and preempt it (FAIL and its parameters queued again); one to rank 0
alone left rank 1 with status 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from optuna.trial import TrialState

from hpcflow.cli import main
from test_parallel import each_rank_status, rank_statuses
from test_tune_nn import JOB as NN_JOB
from test_tune_records import JOB, _job, _journal  # tests/ is on sys.path (pytest's default import mode)

ROOT = Path(__file__).resolve().parents[1]
DRIVERS = {"between trials": (str(ROOT / "tests" / "mpi" / "tune_between_driver.py"), "{rank} {sig}"),
           "last step": (str(ROOT / "tests" / "mpi" / "flow_stop_driver.py"), "3 {rank}:{sig}")}  # steps = 3
ENV = dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def _two_ranks(statuses, cmd):
    """`cmd` under `mpiexec -n 2`, bounded by `timeout`; (the run, each rank's exit status)."""
    r = subprocess.run(["timeout", "60", *each_rank_status(statuses, 2, cmd)], env=ENV, capture_output=True,
                       text=True, timeout=90)
    assert r.returncode != 124, r.stdout + r.stderr  # not ended by the timeout: no rank waits in a collective
    return r, rank_statuses(statuses, 2)


@pytest.mark.parametrize("where, rank, sig", [("between trials", 1, "SIGTERM"), ("between trials", 0, "SIGUSR1"),
                                              ("last step", 1, "SIGUSR1"), ("last step", 0, "SIGTERM")])
def test_a_stop_request_to_one_rank_stops_every_rank_before_the_next_trial(tmp_path, where, rank, sig):
    assert "steps = 3\n" in JOB
    job, out, statuses = _job(tmp_path), tmp_path / "s", tmp_path / "statuses"
    driver, at = DRIVERS[where]
    cmd = [sys.executable, driver, *at.format(rank=rank, sig=sig).split(), "tune", str(job), "--trials", "3", "--out",
           str(out), "--quiet"]
    r, ranks = _two_ranks(statuses, cmd)
    assert ranks == [4, 4], r.stdout + r.stderr
    assert r.stderr.count("signal received between trials") == 1, r.stderr  # rank 0 says it, once
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE], [(t.state, t.user_attrs) for t in trials]
    assert json.loads((out / "trials" / "0000" / "summary.json").read_text())["status"] == "finished"
    assert sorted(os.listdir(out / "trials")) == ["0000"]
    best = tomllib.loads((out / "best.toml").read_text())
    assert best["flow"]["dt"] == trials[0].params["flow.dt"]


@pytest.mark.parametrize("rank", [0, 1])
def test_a_stop_request_to_one_rank_between_two_nn_h5_mends_stops_every_rank_before_the_next(tmp_path, rank):
    job, out, sets = _job(tmp_path, NN_JOB, name="nn_tiny.toml"), tmp_path / "s", ["--set", "training.epochs=2"]
    assert main(["tune", str(job), "--trials", "2", "--out", str(out), "--quiet", *sets]) == 0  # one rank
    dirs = [out / "trials" / "0000", out / "trials" / "0001"]
    for d in dirs:
        os.remove(d / "nn.h5")  # both finished trials' nn.h5 are written again by the next worker, one after the other
    driver = str(ROOT / "tests" / "mpi" / "tune_between_driver.py")
    r, ranks = _two_ranks(tmp_path / "statuses", [sys.executable, driver, str(rank), "SIGTERM", "tune", str(job),
                                                  "--trials", "1", "--out", str(out), "--quiet", *sets])
    assert ranks == [4, 4], r.stdout + r.stderr
    assert r.stderr.count("signal received between trials") == 1, r.stderr
    assert r.stdout.count("wrote its nn.h5 again") == 1, r.stdout
    assert sorted((d / "nn.h5").exists() for d in dirs) == [False, True]  # the first mend done, not the second
    trials = _journal(out / "study.journal", "nn_tiny").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # no trial added
