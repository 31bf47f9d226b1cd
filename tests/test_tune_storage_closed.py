"""An SQLite study's database is closed when `hpcflow tune` returns: no file descriptor of the process points to it
(nor to its -journal) after a finished study, a refusal after the storage was read, a Ctrl-C or a SIGTERM in a trial,
and a worker run with ResourceWarning as an error says none. Garbage collection is held off while the command runs,
so that only a close, not a collection of the storage that happens to come, lets the file go."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import pytest

from hpcflow.tune import objective
from test_tune_records import JOB, _job, _tune  # tests/ is on sys.path (pytest's default import mode)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's hpcflow, for the subprocess


def open_files(prefix) -> list[str]:
    """The files this process holds open (its /proc/self/fd entries) whose path starts with `prefix`."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the descriptor listdir itself used, closed meanwhile
            continue
        if target.startswith(str(prefix)):
            found.append(target)
    return found


@contextmanager
def no_collection():
    """Garbage collection held off in the block (a reference cycle's storage is not closed by a collection)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@pytest.fixture
def db(tmp_path):
    return tmp_path / "q.db"


def test_a_finished_study_leaves_its_sqlite_database_closed(tmp_path, capsys, db):
    job, out = _job(tmp_path), tmp_path / "s"
    with no_collection():
        rc, io = _tune(capsys, job, "--trials", "2", "--out", out, "--storage", f"sqlite:///{db}")
        held = open_files(db)
    assert rc == 0, io.err
    assert held == [] and not os.path.exists(f"{db}-journal")
    with no_collection():  # a study continued in the same database: loaded from it, not created
        rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--storage", f"sqlite:///{db}")
        held = open_files(db)
    assert rc == 0 and "3 complete" in io.out, io.out
    assert held == []


@pytest.mark.parametrize("refusal", ["another job", "another study"])
def test_a_refusal_after_the_database_was_read_leaves_it_closed(tmp_path, capsys, db, refusal):
    job, out, url = _job(tmp_path), tmp_path / "s", f"sqlite:///{db}"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--storage", url)[0] == 0
    gc.collect()
    assert open_files(db) == []
    extra = ["--set", "flow.steps=4"] if refusal == "another job" else ["--study", "other"]
    before = db.read_bytes()
    with no_collection():
        rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--storage", url, *extra)
        held = open_files(db)
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert ("this job has" if refusal == "another job" else "holds the trials of study 'tiny'") in io.err, io.err
    assert held == [] and db.read_bytes() == before


STEPS, AT = 12, 5
SPACE = '"flow.dt" = {low = 0.01, high = 3.0, log = true}'


@pytest.mark.parametrize("sig, status", [("SIGINT", 130), ("SIGTERM", 4)])
def test_a_stop_in_a_trial_leaves_the_database_closed(tmp_path, capsys, monkeypatch, db, sig, status):
    """A second Ctrl-C in a trial (interrupted at once) and a SIGTERM (the trial stops at its checkpoint)."""
    assert SPACE in JOB
    job = _job(tmp_path, JOB.replace("steps = 3", f"steps = {STEPS}").replace(SPACE, '"flow.dt" = {choices = [0.5]}')
               + "[checkpoint]\nevery = 2\n")
    real, sent = objective.Tracker.step, []

    def stop(self, info, sigma0):
        if info["step"] == AT and not sent:
            sent.append(sig)
            for _ in range(2 if sig == "SIGINT" else 1):
                os.kill(os.getpid(), getattr(signal, sig))
        return real(self, info, sigma0)

    monkeypatch.setattr(objective.Tracker, "step", stop)
    with no_collection():
        rc, io = _tune(capsys, job, "--trials", "2", "--out", tmp_path / "s", "--storage", f"sqlite:///{db}")
        held = open_files(db)
    assert sent and rc == status, (rc, io.err)
    assert held == [] and not os.path.exists(f"{db}-journal")


def test_a_worker_with_resource_warnings_as_errors_says_none(tmp_path):
    """In a process of its own, as a worker runs: ResourceWarning an error (-X dev shows every warning), the
    database's descriptors looked at before the interpreter's end collects anything."""
    job, out, db = _job(tmp_path), tmp_path / "s", tmp_path / "q.db"
    code = ("import gc, sys; gc.disable(); from hpcflow.cli import main; from test_tune_storage_closed import "
            f"open_files; rc = main(['tune', {str(job)!r}, '--trials', '1', '--out', {str(out)!r}, '--storage', "
            f"'sqlite:///{db}', '--quiet']); print('HELD', open_files({str(db)!r})); sys.exit(rc)")
    paths = [ROOT, os.path.join(ROOT, "tests"), os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
    done = subprocess.run([sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", code], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "HELD []" in done.stdout, done.stdout
    assert "ResourceWarning" not in done.stderr, done.stderr
