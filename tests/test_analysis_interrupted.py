"""A study's trial left RUNNING in the storage by a killed tune worker: the study's row and overview count it as
interrupted (no live process holds its run directory's lock), as the runs table tells a killed run from a live one;
a trial whose worker lives (its lock held, also while stopped) stays running."""

from __future__ import annotations

import signal
import sys

from jobtexts import DELTA_FLOW, flow_points
from test_outdir_lock import _start

#: a study whose trial runs until it is killed: 100000 flow steps
JOB = flow_points(60, 60) + DELTA_FLOW.replace("steps = 3", "steps = 100000") + """[tune]
sampler = "random"
pruner = "none"
[tune.space]
"flow.dt" = {low = 0.01, high = 3.0, log = true}
"""


def _status(study_dir) -> str:
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    return row(detect(study_dir))[2]


def test_a_trial_of_a_killed_worker_is_interrupted_and_one_of_a_live_worker_running(tmp_path):
    """`hpcflow tune` stopped (SIGSTOP) inside its first trial: '1 trial: 1 running'; killed (SIGKILL): '1 trial: 1
    interrupted', naming the trial (it said '1 running' for ever)."""
    from hpcflow.analysis.study import overview

    job, out = tmp_path / "long.toml", tmp_path / "S"
    job.write_text(JOB)
    proc = _start([sys.executable, "-m", "hpcflow", "tune", str(job), "--trials", "1", "--out", str(out), "--quiet"],
                  tmp_path / "tune.log", (out / "trials" / "0000" / "job.toml").exists)
    proc.send_signal(signal.SIGSTOP)  # in its trial, however fast the machine: the lock stays held
    try:
        ov = overview(out)
        assert ov["states"] == {"running": 1} and ov["interrupted"] == [], ov
        assert _status(out) == "1 trial: 1 running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    assert (out / "trials" / "0000" / ".hpcflow.lock").exists()  # the killed worker's lock file stays; its lock is gone
    ov = overview(out)
    assert ov["states"] == {"interrupted": 1} and ov["interrupted"] == [0] and ov["trials"] == 1, ov
    assert _status(out) == ("1 trial: 1 interrupted (trial 0 RUNNING in the storage, but no live process holds its run "
                            "directory's lock: the worker was killed; a later hpcflow tune on the study marks it failed)")


def test_a_running_trial_without_a_run_directory_yet_stays_running(tmp_path):
    """A trial drawn but not yet in its run directory (no user attribute run_dir, or its directory not made): nothing
    tells its worker gone, so it is running; a trial whose directory holds no lock (released, or never taken) is
    interrupted."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from hpcflow.analysis.study import overview

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    study = optuna.create_study(study_name="s", storage=storage)
    study.ask()  # no run_dir yet
    study.ask().set_user_attr("run_dir", "trials/0001")  # its directory not yet made
    for number in (2, 3):
        study.ask().set_user_attr("run_dir", f"trials/{number:04d}")
        (tmp_path / "trials" / f"{number:04d}").mkdir(parents=True)
    ov = overview(tmp_path)
    assert ov["states"] == {"running": 2, "interrupted": 2} and ov["interrupted"] == [2, 3], ov
    assert _status(tmp_path) == ("4 trials: 2 running, 2 interrupted (trials 2, 3 RUNNING in the storage, but no live "
                                 "process holds their run directories' lock: the worker was killed; a later hpcflow "
                                 "tune on the study marks them failed)")
