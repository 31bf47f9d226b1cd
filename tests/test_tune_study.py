"""Optuna studies of a tiny flow job: two workers sharing a journal, reruns, failed, pruned and stale trials."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from hpcflow.cli import main
from hpcflow.jobs import registry
from hpcflow.tune.study import optimize
from hpcflow.tune.trial import trial_seeds

ROOT = Path(__file__).resolve().parents[1]

JOB = """
[job]
kind = "flow"
[geometry]
n_train = 100
n_test = 100
[kernel]
name = "gaussian"
form = "exp"
width = 0.0333333333333333
normalize = "row"
[flow]
dt = 1.0
steps = 4
loss = "ultralocal"
[tune]
sampler = "random"
seed = 11
pruner = "none"
[tune.space]
"flow.dt" = {low = 0.01, high = 3.0, log = true}
"kernel.form" = {choices = ["exp", "gauss"]}
"""


def _job(tmp_path, text=JOB, name="tiny.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def _study(out, name="tiny"):
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(out / "study.journal"))))


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def test_two_local_workers_share_one_journal_then_a_rerun_adds_trials(tmp_path, monkeypatch):
    job, out = _job(tmp_path), tmp_path / "study"
    for k, v in _env().items():
        monkeypatch.setenv(k, v)
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", str(job), "--executor", "local", "--command",
                        "tune", "--trials", "5", "--array", "2", "--out", str(out), "--wait"],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("local job ") == 2
    trials = _study(out).get_trials()
    assert len(trials) == 5 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({(t.user_attrs["host"], t.user_attrs["pid"]) for t in trials}) == 2  # two worker processes
    points = []
    for t in trials:
        assert t.user_attrs["run_dir"] == f"trials/{t.number:04d}"  # relative to the study directory
        run = out / t.user_attrs["run_dir"]
        assert tuple(t.user_attrs["seeds"]) == trial_seeds(11, t.number)
        summary = json.loads((run / "summary.json").read_text())
        with h5py.File(run / "checkpoint.h5", "r") as f:
            assert f.attrs["kind"] == "hpcflow.flow_checkpoint" and f.attrs["step"] == summary["checkpoint_step"] == 4
            st = f["history/sigma_test"][:]
            points += [f["train/points"][:], f["test/points"][:]]
        assert summary["status"] == "finished" and summary["config"]["flow"]["dt"] == t.params["flow.dt"]
        assert t.value == pytest.approx(math.log(st[0] / st[-1]), rel=1e-12)  # objective = log test gain
    rows = np.concatenate(points)  # 10 point sets: no point shared between any two of them
    assert len({r.tobytes() for r in rows}) == len(rows) == 1000
    seeds = [s for t in trials for s in t.user_attrs["seeds"]]
    assert len(set(seeds)) == 10

    best = _study(out).best_trial
    cfg_best = registry.load(out / "best.toml")[1]
    from hpcflow.tune.space import overrides

    assert cfg_best == registry.load(job, overrides(best.params))[1]  # runnable, with the best parameters

    result = optimize(str(job), trials=2, out=str(out), log=lambda *_: None)  # rerun: adds trials
    assert result["counts"] == {"COMPLETE": 7}
    assert sorted(t.number for t in _study(out).get_trials()) == list(range(7))


def test_a_raising_trial_is_failed_retried_and_the_study_goes_on(tmp_path, monkeypatch):
    """An internal error in a trial (not bad input, which recurs) is retried on new points while retries allow."""
    from hpcflow.tune import study as study_mod

    out = tmp_path / "study"
    job = _job(tmp_path, JOB.replace("pruner = \"none\"", "pruner = \"none\"\nretries = 1"))
    real, calls = study_mod.run_trial, []

    def fails_twice(*args, **kwargs):
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("lost the node")
        return real(*args, **kwargs)

    monkeypatch.setattr(study_mod, "run_trial", fails_twice)
    lines = []
    r = optimize(str(job), trials=1, out=str(out), study_name="tiny", log=lines.append)
    assert r["counts"] == {"FAIL": 1, "WAITING": 1} and r["best"] is None and not (out / "best.toml").exists()
    assert "RuntimeError: lost the node" in lines[0] and r["bugs"] == 1
    r = optimize(str(job), trials=1, out=str(out), study_name="tiny", log=lines.append)
    retried = _study(out).get_trials()[1]  # the queued retry of trial 0: same parameters, new points
    assert retried.state == TrialState.FAIL and retried.user_attrs["retry_of"] == 0
    assert retried.params == _study(out).get_trials()[0].params
    assert r["counts"] == {"FAIL": 2}  # its one retry is spent: not queued again
    r = optimize(str(job), trials=1, out=str(out), log=lines.append)  # the study is still usable
    assert r["counts"] == {"FAIL": 2, "COMPLETE": 1} and (out / "best.toml").exists()


def test_a_trial_worse_than_the_median_is_pruned(tmp_path):
    out = tmp_path / "study"
    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "median"\npruner_startup_trials = 1\n'
                                     'pruner_warmup_steps = 0'))
    out.mkdir()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(out / "study.journal")))
    study = optuna.create_study(study_name="tiny", storage=storage, direction="maximize")
    study.enqueue_trial({"flow.dt": 1.0, "kernel.form": "exp"})
    study.enqueue_trial({"flow.dt": 0.01, "kernel.form": "exp"})  # a hundred times smaller steps: less gain
    r = optimize(str(job), trials=2, out=str(out), log=lambda *_: None)
    assert r["counts"] == {"COMPLETE": 1, "PRUNED": 1}
    pruned = _study(out).get_trials()[1]
    assert pruned.state == TrialState.PRUNED and list(pruned.intermediate_values) == [1]
    summary = json.loads((out / pruned.user_attrs["run_dir"] / "summary.json").read_text())
    assert summary["status"] == "stopped" and summary["checkpoint_step"] == 1  # stopped at the first step


def test_a_worker_marks_trials_of_dead_workers_failed(tmp_path):
    """A worker that died (its pid is gone) left its trial RUNNING; the next worker fails it and queues it again."""
    job, out = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 1')), tmp_path / "study"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    code = ("import sys, optuna; from optuna.storages import JournalStorage; "
            "from optuna.storages.journal import JournalFileBackend; from hpcflow.tune.storage import mark_worker; "
            "s = optuna.load_study(study_name='tiny', storage=JournalStorage(JournalFileBackend(sys.argv[1]))); "
            "t = s.ask({'flow.dt': optuna.distributions.FloatDistribution(0.01, 3.0, log=True)}); mark_worker(t)")
    subprocess.run([sys.executable, "-c", code, str(out / "study.journal")], env=_env(), check=True, timeout=60)
    assert _study(out).get_trials()[1].state == TrialState.RUNNING  # the process is gone, the trial is not
    r = optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    trials = _study(out).get_trials()
    assert trials[1].state == TrialState.FAIL and "worker gone" in trials[1].user_attrs["failure"]
    assert trials[2].user_attrs["retry_of"] == 1 and trials[2].params["flow.dt"] == trials[1].params["flow.dt"]
    assert r["counts"] == {"COMPLETE": 2, "FAIL": 1}


def test_a_running_trial_older_than_the_grace_period_is_failed(tmp_path):
    job, out = _job(tmp_path), tmp_path / "study"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    t = _study(out).ask()
    t.set_user_attr("host", "another-node")  # a live worker elsewhere: only its age can tell
    t.set_user_attr("pid", os.getpid())
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    assert _study(out).get_trials()[1].state == TrialState.RUNNING  # younger than the default grace (1 day)
    optimize(str(job), trials=1, out=str(out), overrides=["tune.stale_seconds=1e-3"], log=lambda *_: None)
    assert [t.state for t in _study(out).get_trials()] == [TrialState.COMPLETE, TrialState.FAIL] + \
        [TrialState.COMPLETE] * 2


@pytest.mark.parametrize("ranks", [2, 3])
def test_tune_under_mpiexec_talks_to_storage_from_rank_0_only(tmp_path, ranks):
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: install the test extra (mpich wheel)"
    job, out = _job(tmp_path), tmp_path / "study"
    r = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, "-m", "hpcflow", "tune", str(job), "--trials", "2",
                        "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    trials = _study(out).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2  # 2 trials, not 2 per rank
    assert r.stdout.count("best trial") == 1
    for t in trials:
        summary = json.loads((out / t.user_attrs["run_dir"] / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["ranks"] == ranks
        points = [p["points"] for p in summary["per_rank"]]  # the trial's flow is divided, not replicated
        assert sum(points) == summary["n_train"] and max(points) < summary["n_train"]


def test_an_existing_study_with_another_direction_or_name_is_refused(tmp_path, capsys):
    job, out = _job(tmp_path), tmp_path / "study"
    assert main(["tune", str(job), "--trials", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--set", "tune.objective=sigma_test"]) == 2
    assert "is to maximize" in capsys.readouterr().err
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--study", "other"]) == 2
    assert "holds the trials of study 'tiny'" in capsys.readouterr().err  # its trials/NNNN would clash
    assert len(_study(out).get_trials()) == 1
    run = tmp_path / "run"
    assert main(["run", str(job), "--out", str(run)]) == 0
    assert main(["tune", str(job), "--trials", "1", "--out", str(run)]) == 2
    assert "is not a study directory" in capsys.readouterr().err and not (run / "trials").exists()


def test_an_sqlalchemy_url_works_with_a_heartbeat_and_bad_storage_is_exit_2(tmp_path, capsys):
    job, url = _job(tmp_path), f"sqlite:///{tmp_path / 'study.db'}"
    r = optimize(str(job), trials=2, out=str(tmp_path / "s"), storage=url, log=lambda *_: None)
    assert r["counts"] == {"COMPLETE": 2}
    from hpcflow.tune.storage import open_storage

    storage = open_storage(url, str(tmp_path), heartbeat=7)
    assert storage.get_heartbeat_interval() == 7  # Optuna fails trials whose heartbeat stops
    assert len(optuna.load_study(study_name="tiny", storage=storage).trials) == 2
    for bad in ("nosuch://db", str(job / "x.journal")):  # a file is no directory
        assert main(["tune", str(job), "--trials", "1", "--out", str(tmp_path / "t"), "--storage", bad]) == 2
        err = capsys.readouterr().err
        assert f"--storage {bad}: cannot open it" in err and err.count("\n") == 1
    assert not (tmp_path / "t").exists()
