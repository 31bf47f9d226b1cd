"""A database storage (sqlite here) fails trials left RUNNING by a gone worker as a journal does: a worker on this
host whose process ended at once, one on another host once Optuna's heartbeat is older than its grace period (never
by hpcflow's own `heartbeat` user attribute, which no worker refreshes in a database); also where the worker stops
at --max-trials without drawing a trial, which is where Optuna itself never looks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import optuna
from optuna.trial import TrialState

from hpcflow.tune.study import optimize
from test_tune_records import JOB, _job  # tests/ is on sys.path (pytest's default import mode)

DT = optuna.distributions.FloatDistribution(0.01, 3.0, log=True)


def _running(url, *, host, pid, user_heartbeat=None):
    """A RUNNING trial of the study in `url` as a worker on `host` with `pid` leaves it (its Optuna heartbeat now)."""
    storage = optuna.storages.RDBStorage(url, heartbeat_interval=60)
    t = optuna.load_study(study_name="tiny", storage=storage).ask({"flow.dt": DT})
    t.set_user_attr("host", host)
    t.set_user_attr("pid", pid)
    if user_heartbeat is not None:
        t.set_user_attr("heartbeat", user_heartbeat)
    storage.record_heartbeat(t._trial_id)
    return t


def _trials(url):
    return optuna.load_study(study_name="tiny", storage=url).trials


def test_a_dead_workers_trial_in_sqlite_is_failed_and_requeued_before_the_cap_is_counted(tmp_path):
    import socket

    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 1'))
    out, url = tmp_path / "s", f"sqlite:///{tmp_path / 'q.db'}"
    optimize(str(job), trials=1, out=str(out), storage=url, log=lambda *_: None)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a worker killed while it ran trial 1: its pid is gone
    dead = _running(url, host=socket.gethostname(), pid=ended.pid)
    r = optimize(str(job), trials=1, out=str(out), storage=url, max_trials=2, log=lambda *_: None)
    trials = _trials(url)
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs["failure"] == "worker gone (its process ended)"
    assert r["ran"] == 1 and [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert trials[2].params == dead.params and trials[2].user_attrs["retry_of"] == 1  # its parameters ran again


def test_sqlite_trials_of_other_hosts_are_failed_by_optunas_stale_heartbeat_only(tmp_path):
    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 1'))
    out, db = tmp_path / "s", tmp_path / "q.db"
    url = f"sqlite:///{db}"
    optimize(str(job), trials=1, out=str(out), storage=url, log=lambda *_: None)
    gone = _running(url, host="node-a", pid=1)
    _running(url, host="node-b", pid=1, user_heartbeat=0.0)  # alive; hpcflow's attribute of 1970 is no sign
    with sqlite3.connect(db) as con:  # node-a's worker was killed an hour ago: its Optuna heartbeat stopped then
        con.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour') WHERE trial_id = ?",
                    (gone._trial_id,))
    r = optimize(str(job), trials=2, out=str(out), storage=url, max_trials=3, log=lambda *_: None)
    trials = _trials(url)
    assert trials[1].state == TrialState.FAIL and trials[2].state == TrialState.RUNNING
    # Optuna's retry callback queued trial 1's parameters; they ran, and the study then held 3 counted trials
    assert r["ran"] == 1 and len(trials) == 4 and trials[3].state == TrialState.COMPLETE
    assert trials[3].params == trials[1].params and trials[3].system_attrs["retry_history"] == [1]


def test_a_database_storage_opens_without_optunas_deprecated_retry_names(tmp_path):
    """Optuna 4.9 renamed RetryFailedTrialCallback / failed_trial_callback (FutureWarning; gone in 6.0) to
    RetryHeartbeatStaleTrialCallback / heartbeat_stale_trial_callback: with those warnings as errors the storage
    opens and its callback queues a stale trial again, at most `retries` times."""
    import warnings

    from hpcflow.tune.storage import open_storage

    url = f"sqlite:///{tmp_path / 'q.db'}"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        storage = open_storage(url, str(tmp_path), heartbeat=60, retries=2)
    study = optuna.create_study(study_name="tiny", storage=storage)
    stale = study.ask({"flow.dt": DT})
    storage.record_heartbeat(stale._trial_id)
    with sqlite3.connect(tmp_path / "q.db") as con:
        con.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-1 hour')")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING] and trials[1].params == stale.params


def test_an_optuna_before_the_rename_gets_its_own_names(monkeypatch):
    from optuna import storages

    from hpcflow.tune.storage import stale_retry

    class OldRDBStorage:  # the keyword arguments of RDBStorage before Optuna 4.9
        def __init__(self, url, engine_kwargs=None, skip_compatibility_check=False, *, heartbeat_interval=None,
                     grace_period=None, failed_trial_callback=None, skip_table_creation=False):
            pass

    monkeypatch.delattr(storages, "RetryHeartbeatStaleTrialCallback")
    monkeypatch.setattr(storages, "RDBStorage", OldRDBStorage)
    (key, retry), = stale_retry(3).items()
    assert key == "failed_trial_callback" and type(retry) is storages.RetryFailedTrialCallback
    assert stale_retry(0) == {"failed_trial_callback": None}
