"""A RUNNING trial of a worker on this host whose pid now belongs to another process (pid reuse on a long-lived login
node) is failed by the next worker, as one whose pid is gone; a live worker's trial is not, however old its
heartbeat."""

from __future__ import annotations

import datetime
import os
import socket
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from hpcflow.tune.study import optimize
from test_tune_records import _job, _journal  # tests/ is on sys.path (pytest's default import mode)


def _started(pid: int) -> str:
    """The kernel's boot id and process `pid`'s start in clock ticks since boot, field 22 of /proc/PID/stat."""
    with open("/proc/sys/kernel/random/boot_id") as fh:
        boot = fh.read().strip()
    with open(f"/proc/{pid}/stat") as fh:
        after_name = fh.read().rsplit(")", 1)[1].split()
    return f"{boot}:{after_name[22 - 3]}"  # fields 3, 4, ... follow the name


def test_a_trial_whose_pid_is_another_process_now_is_failed_and_a_live_workers_is_not(tmp_path):
    """Its pid alive, such a trial stayed RUNNING forever (tune counted it interrupted, the report as running)."""
    job, out = _job(tmp_path), tmp_path / "study"
    r = optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    first = _journal(out / "study.journal").trials[0]
    assert r["counts"] == {"COMPLETE": 1} and first.user_attrs["pid_start"] == _started(os.getpid())
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])  # alive, unrelated
    try:
        real = _started(other.pid)
        boot, ticks = real.rsplit(":", 1)
        study, dist = _journal(out / "study.journal"), {
            "flow.dt": optuna.distributions.FloatDistribution(0.01, 3.0, log=True)}
        started = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=2)
        for pid_start in (f"{boot}:{int(ticks) - 100}", real, None):  # the pid reused; its own worker; older layout
            attrs = {"host": socket.gethostname(), "pid": other.pid, "heartbeat": time.time() - 86400,
                     **({} if pid_start is None else {"pid_start": pid_start})}
            study.add_trial(optuna.trial.FrozenTrial(
                number=0, state=TrialState.RUNNING, value=None, datetime_start=started, datetime_complete=None,
                params={"flow.dt": 1.0}, distributions=dist, user_attrs=attrs, system_attrs={},
                intermediate_values={}, trial_id=0))
        r = optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
        trials = _journal(out / "study.journal").trials
        assert [t.state for t in trials[1:4]] == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
        assert trials[1].user_attrs["failure"] == (f"worker gone (its process ended; pid {other.pid} is another "
                                                   "process's now)")
        assert r["counts"] == {"COMPLETE": 2, "FAIL": 1, "RUNNING": 2}, r["counts"]
    finally:
        other.kill()
        other.wait()
