"""Optuna studies of a tiny flow job: two workers sharing a journal, reruns, failed, pruned and stale trials."""

from __future__ import annotations

import datetime
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
from hpcflow.tune.study import RECORD_WAIT, optimize
from hpcflow.tune.trial import trial_seeds
from jobtexts import GAUSSIAN_KERNEL

ROOT = Path(__file__).resolve().parents[1]

JOB = """
[job]
kind = "flow"
[geometry]
n_train = 100
n_test = 100
""" + GAUSSIAN_KERNEL + """[flow]
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
    assert _study(out).get_trials()[0].user_attrs["error"] == "RuntimeError: lost the node"
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


def test_a_running_trial_on_another_host_is_failed_by_its_heartbeat_never_by_its_age(tmp_path):
    """Three trials started two days ago on another node: a fresh heartbeat keeps its trial RUNNING; a heartbeat
    older than stale_seconds (default 600 s), or none (a trial of the older layout: its start counts), fails it."""
    import datetime
    import time

    job, out = _job(tmp_path), tmp_path / "study"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    s, dist = _study(out), {"flow.dt": optuna.distributions.FloatDistribution(0.01, 3.0, log=True)}
    started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
    for beat in (time.time(), time.time() - 700, None):
        attrs = {"host": "another-node", "pid": os.getpid(), **({} if beat is None else {"heartbeat": beat})}
        s.add_trial(optuna.trial.FrozenTrial(number=0, state=TrialState.RUNNING, value=None, datetime_start=started,
                                             datetime_complete=None, params={"flow.dt": 1.0}, distributions=dist,
                                             user_attrs=attrs, system_attrs={}, intermediate_values={}, trial_id=0))
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    trials = _study(out).get_trials()
    assert [t.state for t in trials[1:4]] == [TrialState.RUNNING, TrialState.FAIL, TrialState.FAIL]
    assert trials[2].user_attrs["failure"].startswith("worker gone (no heartbeat for 70")
    assert trials[3].user_attrs["failure"].startswith("worker gone (no heartbeat recorded; started 17")  # 172800 s


def test_a_worker_beats_while_its_trial_runs_so_another_host_never_fails_it(tmp_path, monkeypatch):
    """A trial that runs longer than stale_seconds keeps a fresh heartbeat (one every heartbeat_seconds)."""
    import time

    from hpcflow.tune import study as study_mod
    from hpcflow.tune.storage import recover_stale

    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nheartbeat_seconds = 1\nstale_seconds = 2'))
    out, real, seen = tmp_path / "study", study_mod.execute, {}

    def slow(job_, spec, trial=None, **kw):
        time.sleep(3.5)
        trial.set_user_attr("host", "another-node")  # as if its worker ran on another host
        s = _study(out)
        seen["age"] = time.time() - s.trials[spec["number"]].datetime_start.timestamp()
        seen["failed"] = recover_stale(s, s._storage, grace_seconds=2.0)  # what another worker does
        return real(job_, spec, trial, **kw)

    monkeypatch.setattr(study_mod, "execute", slow)
    assert optimize(str(job), trials=1, out=str(out), log=lambda *_: None)["counts"] == {"COMPLETE": 1}
    assert seen["failed"] == [] and seen["age"] > 3.4
    beats = [json.loads(x) for x in (out / "study.journal").read_text().splitlines()]
    assert sum(op.get("user_attr", {}).keys() == {"heartbeat"} for op in beats) >= 3  # start, then every second
    with pytest.raises(Exception, match=r"stale_seconds = 1.5 must be at least twice heartbeat_seconds = 1"):
        optimize(str(job), trials=1, out=str(out), overrides=["tune.stale_seconds=1.5"], log=lambda *_: None)


def test_best_toml_is_read_and_written_under_a_lock_so_an_older_view_never_wins(tmp_path, monkeypatch):
    """Worker A has read the study (best: trial 0) and is about to write best.toml when worker B, whose trial 1 is
    better, writes it: A's write must not be the last one from its older view."""
    import threading

    from hpcflow.jobs import output
    from hpcflow.tune.study import load, write_best

    job, out = _job(tmp_path), tmp_path / "study"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    tj, real, others = load(str(job)), output.write_text, []
    dist = {"flow.dt": optuna.distributions.FloatDistribution(0.01, 3.0, log=True),
            "kernel.form": optuna.distributions.CategoricalDistribution(["exp", "gauss"])}

    def write_while_another_worker_finishes(path, text, **kw):
        if not others:
            _study(out).add_trial(optuna.trial.create_trial(  # worker B's trial 1, better than trial 0
                value=_study(out).best_value + 1.0, params={"flow.dt": 0.5, "kernel.form": "gauss"},
                distributions=dist))
            others.append(threading.Thread(target=write_best, args=(_study(out), tj, str(out), "tiny")))
            others[0].start()
            others[0].join(timeout=1.0)  # B writes now unless a lock makes it wait for A
        real(path, text, **kw)

    monkeypatch.setattr(output, "write_text", write_while_another_worker_finishes)
    write_best(_study(out), tj, str(out), "tiny")  # A: its view holds trial 0 only
    others[0].join()
    assert "trial 1," in (out / "best.toml").read_text()  # the last write is B's, from the storage as it is now
    assert registry.load(out / "best.toml")[1]["flow"]["dt"] == 0.5 and not (out / "best.toml.lock").exists()


def test_quiet_draws_no_progress_bar_and_a_bad_hpcflow_quiet_is_still_refused(tmp_path, monkeypatch, capsys):
    import fcntl
    import select
    import struct
    import termios

    job = _job(tmp_path)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    terminal = os.fdopen(slave, "w")

    def tune(*args):
        monkeypatch.setattr(sys, "stderr", terminal)
        rc = main(["tune", str(job), "--trials", "1", *map(str, args)])
        terminal.flush()
        chunks = []
        while select.select([master], [], [], 0.2)[0]:
            chunks.append(os.read(master, 65536))
        return rc, b"".join(chunks).decode("utf-8", "replace")

    try:
        monkeypatch.delenv("HPCFLOW_QUIET", raising=False)  # restored after the test (--quiet sets it)
        rc, shown = tune("--out", tmp_path / "a")
        assert rc == 0 and "sampling" in shown  # on a terminal: bars
        rc, shown = tune("--out", tmp_path / "b", "--quiet")
        assert rc == 0 and shown == ""
        monkeypatch.setenv("HPCFLOW_QUIET", "yes")
        rc, shown = tune("--out", tmp_path / "c", "--quiet")
        assert rc == 2 and "HPCFLOW_QUIET='yes' must be 1" in shown and shown.strip().count("\n") == 0
        assert not (tmp_path / "c").exists()
    finally:
        terminal.close()
        os.close(master)


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


@pytest.mark.parametrize("rank", [0, 1])
def test_an_internal_error_of_one_rank_in_a_trial_ends_the_mpi_worker(tmp_path, rank):
    """Rank 0 used to record the failure and broadcast the next trial while the others waited in the failed
    trial's collectives: the ranks spun until SIGKILL, and the next trial's heartbeat kept it looking alive. The
    failing rank waits for the others once (abort_on_error's wait, RECORD_WAIT under `hpcflow tune`) and ends the
    worker when they do not come: it used to wait twice (5 s of its own, then abort_on_error's)."""
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: install the test extra (mpich wheel)"
    job, out = _job(tmp_path), tmp_path / "study"
    driver = ROOT / "tests" / "mpi" / "tune_driver.py"
    r = subprocess.run(["timeout", "60", mpiexec, "-n", "2", sys.executable, str(driver), str(rank), "tune", str(job),
                        "--trials", "2", "--out", str(out)], env=_env(), capture_output=True, text=True, timeout=90)
    ended = datetime.datetime.now()  # Optuna's trial times are local and naive
    assert r.returncode not in (0, 2, 3, 4, 124), r.stdout + r.stderr  # an internal error, not the timeout's 124
    assert f"injected failure on rank {rank}" in r.stdout + r.stderr
    assert not (out / "trials" / "0001").exists()  # no second trial was started
    seconds = (ended - _study(out).get_trials()[0].datetime_start).total_seconds()
    # one wait, RECORD_WAIT long, not two: two take at least 5 s + the wait; one took the wait + 0.1-0.4 s (at a
    # load of 8 on 2 cores), so the bound below leaves the process ends 4 s of slack on a loaded machine
    assert RECORD_WAIT <= seconds < 5.0 + RECORD_WAIT - 0.5, seconds
    state = _study(out).get_trials()[0].state
    if rank == 0:  # rank 0 recorded the failure before it ended the worker
        assert [t.state for t in _study(out).get_trials()] == [TrialState.FAIL]
        return
    assert state == TrialState.RUNNING  # the abort reached rank 0 first; the next command fails it (pid gone)
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--quiet"]) == 0
    assert [t.state for t in _study(out).get_trials()] == [TrialState.FAIL, TrialState.COMPLETE]


#: rank 0's delay before it records the failure: none, and beyond abort_on_error's ABORT_WAIT but within RECORD_WAIT
#: (the wait `hpcflow tune` passes it; a delay within ABORT_WAIT, which the old immediate Abort also cut off, is
#: covered by it)
@pytest.mark.parametrize("record_delay", [0.0, 4.0])
def test_an_error_of_every_rank_at_once_in_a_trial_ends_the_mpi_worker_and_is_recorded_once(tmp_path, capsys,
                                                                                             record_delay):
    """Every rank raises in the same trial (an error of the trial's own code): the worker ends in bounded time with
    an internal error's status, and only after rank 0 has recorded trial 0 as failed with its error and queued its
    parameters again. Each rank used to Abort at once: rank 1's Abort ended rank 0 while it was recording (always
    with rank 0's writes delayed by 2 s, a slow shared file system), leaving the trial RUNNING until the next
    command failed it as "worker gone", its error in stderr only, and rank 0's buffered stdout lost; a delay of 4 s
    outlasted abort_on_error's ABORT_WAIT of 3 s the same way, until `hpcflow tune` waited RECORD_WAIT."""
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: install the test extra (mpich wheel)"
    job, out = _job(tmp_path), tmp_path / "study"
    driver = ROOT / "tests" / "mpi" / "tune_driver.py"
    env = {k: v for k, v in _env().items() if k != "PYTHONUNBUFFERED"}  # stdout block-buffered, as in a batch job
    r = subprocess.run(["timeout", "60", mpiexec, "-n", "2", sys.executable, str(driver), "all", "--record-delay",
                        str(record_delay), "tune", str(job), "--trials", "2", "--out", str(out), "--set",
                        "tune.retries=1"], env=env, capture_output=True, text=True, timeout=90)
    assert r.returncode not in (0, 2, 3, 4, 124), r.stdout + r.stderr  # an internal error, not the timeout's 124
    assert "injected failure on rank 1" in r.stderr  # rank 1's own error is reported, not only rank 0's
    assert sorted(os.listdir(out / "trials")) == ["0000"] and not (out / "trials" / "0000" / "summary.json").exists()
    assert "best trial" not in r.stdout and not (out / "best.toml").exists()
    trials = _study(out).get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING], r.stdout + r.stderr
    failed, queued = trials  # recorded by rank 0, once, with the error it raised; its parameters queued again
    assert failed.user_attrs["error"] == "RuntimeError: injected failure on rank 0"
    assert r.stdout.count("hpcflow tune: trial 0 failed: RuntimeError: injected failure on rank 0") == 1
    assert queued.user_attrs == {"attempt": 1, "retry_of": 0}
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--quiet"]) == 0  # the study goes on
    assert "stale" not in capsys.readouterr().out  # nothing left RUNNING for the next command to fail
    failed, retried = _study(out).get_trials()
    assert [failed.state, retried.state] == [TrialState.FAIL, TrialState.COMPLETE]
    assert retried.params == failed.params  # the parameters queued again, run by the next command


def test_an_existing_study_with_another_direction_or_name_is_refused(tmp_path, capsys):
    job, out = _job(tmp_path), tmp_path / "study"
    assert main(["tune", str(job), "--trials", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--set", "tune.objective=sigma_test"]) == 2
    err = capsys.readouterr().err  # the setting the user changed, not the direction it implies
    assert "[tune].objective = 'sigma_test', not 'log_gain_test'" in err and "direction" not in err
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--set", "tune.direction=minimize"]) == 2
    assert "is to maximize, but [tune].direction is 'minimize'" in capsys.readouterr().err
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
