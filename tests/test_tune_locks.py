"""A study's storage under trouble: a lock left by a killed worker, a storage that cannot be written, the last step
of a trial, odd --study names and SQLite workers starting together."""

from __future__ import annotations

import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hpcflow.tune.study import optimize
from test_tune_records import _digests, _job, _journal, _tune  # tests/ is on sys.path (pytest's default mode)
from test_tune_trials_unwritable import refuse_writes

ROOT = Path(__file__).resolve().parents[1]


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")


def _kill_holding_lock(cwd: Path, journal: str) -> None:
    """A process that takes Optuna's own lock of `journal` (a path relative to `cwd`, as Optuna takes it from a
    relative --out) and is killed (SIGKILL) while holding it: the lock link stays."""
    code = ("import os, signal, sys; from optuna.storages.journal import JournalFileSymlinkLock as L; "
            "L(sys.argv[1]).acquire(); os.kill(os.getpid(), signal.SIGKILL)")
    r = subprocess.run([sys.executable, "-c", code, journal], cwd=cwd, env=_env(), timeout=60)
    assert r.returncode == -signal.SIGKILL
    assert os.path.islink(cwd / f"{journal}.lock") and not os.path.exists(cwd / f"{journal}.lock")  # dangling


def test_a_lock_left_by_a_worker_killed_with_a_relative_out_stops_neither_report_nor_tune(tmp_path, monkeypatch):
    """Optuna's lock link of a relative journal path resolves against the link's own folder (dangling), and its
    wait spun on it forever: the reports' reader and tune remove it (one line each) and go on."""
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    optimize(job.name, trials=1, out="s", log=lambda *_: None)
    _kill_holding_lock(tmp_path, "s/study.journal")
    read = "from hpcflow.analysis.study import load_study; print(len(load_study('s')[0].trials))"
    r = subprocess.run([sys.executable, "-c", read], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and r.stdout == "1\n", r.stderr
    assert r.stderr.count("removed stale lock") == 1 and str(tmp_path / "s" / "study.journal.lock") in r.stderr
    _kill_holding_lock(tmp_path, "s/study.journal")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "tune", job.name, "--trials", "2", "--out", "s"],
                       cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("removed stale lock") == 1
    assert [t.state for t in _journal(tmp_path / "s" / "study.journal").trials] == [TrialState.COMPLETE] * 3
    assert not os.path.lexists(tmp_path / "s" / "study.journal.lock")


def test_a_lock_whose_holder_was_killed_is_taken_over_after_its_grace_period_and_said(tmp_path):
    """A lock link that resolves (an absolute path) but stays unchanged: taken over after the grace period, with a
    line saying it waits and one saying it takes the lock over; the lock is then held by the waiter."""
    from hpcflow.tune.storage import file_lock

    target = tmp_path / "study.journal"
    target.write_text("")
    os.symlink(str(target), str(target) + ".lock")  # as a killed holder left it
    said: list[str] = []
    lock = file_lock(str(target), grace=1.5, log=said.append)
    done = threading.Event()
    waiter = threading.Thread(target=lambda: lock.acquire() and done.set(), daemon=True)
    waiter.start()
    waiter.join(timeout=60)
    assert done.is_set(), said
    assert len(said) == 2 and said[0].startswith("hpcflow: waiting for lock ") and "taking it over" in said[1], said
    held = os.readlink(str(target) + ".lock")  # the waiter's own link now, naming its owner file beside it
    assert held.startswith(".lock~") and os.path.isfile(tmp_path / held)
    lock.release()
    assert sorted(os.listdir(tmp_path)) == ["study.journal"]  # link and owner file removed


@contextmanager
def _unwritable(path: Path, monkeypatch):
    """File `path` made unwritable while its folder stays writable: chmod 444 for a user; for root, which chmod does
    not stop, chattr +i where the file system has it, else its opening for a write refused (EPERM, as chattr +i)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield
        finally:
            path.chmod(0o644)
        return
    try:
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
    except FileNotFoundError:
        immutable = False
    if immutable:
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        return
    refuse_writes(monkeypatch, lambda p: p == str(path))
    yield


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_storage_file_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys, monkeypatch, kind):
    job, out = _job(tmp_path), tmp_path / "s"
    storage = [] if kind == "journal" else ["--storage", f"sqlite:///{tmp_path / 'q.db'}"]
    assert _tune(capsys, job, "--trials", "1", "--out", out, *storage)[0] == 0
    path = out / "study.journal" if kind == "journal" else tmp_path / "q.db"
    before = _digests(tmp_path)
    with _unwritable(path, monkeypatch):
        rc, io = _tune(capsys, job, "--trials", "2", "--out", out, *storage)
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert str(path) in io.err and "not writable" in io.err and "chmod u+w" in io.err
    assert io.out == "" and _digests(tmp_path) == before  # no trial, best.toml not rewritten


@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_a_storage_file_whose_directory_refuses_new_files_is_refused_before_any_work(tmp_path, capsys, monkeypatch,
                                                                                   kind):
    """A journal's lock (and SQLite's rollback journal) is made beside the file: a directory that takes no new file
    (a read-only mount, chattr +i, an ACL; for root as for a user) is refused up front, naming it, as the file is."""
    job, out, st = _job(tmp_path), tmp_path / "s", tmp_path / "st"
    st.mkdir()
    path = st / ("study.journal" if kind == "journal" else "q.db")
    storage = ["--storage", str(path) if kind == "journal" else f"sqlite:///{path}"]
    assert _tune(capsys, job, "--trials", "1", "--out", out, *storage)[0] == 0
    before = _digests(tmp_path)
    monkeypatch.setattr(os, "access", lambda *a, **k: True)  # as root is answered
    refuse_writes(monkeypatch, lambda p: os.path.dirname(p) == str(st) and p != str(path), errno.EROFS)
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out, *storage)
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"{path}: its directory {st} is not writable (Read-only file system)" in io.err, io.err
    assert "have it remounted read-write" in io.err and "pass another --storage" in io.err, io.err
    assert io.out == "" and _digests(tmp_path) == before


def test_a_storage_write_refused_mid_study_stops_the_worker_with_one_line(tmp_path, capsys, monkeypatch):
    """A journal made read-only while the worker runs: every later write would be refused alike, so the worker
    stops (exit status 5, one line naming the journal and the fix) instead of failing every trial in turn."""
    import hpcflow.tune.study as study_mod

    job, out = _job(tmp_path), tmp_path / "s"
    journal = str(out / "study.journal")
    refused = threading.Event()
    real_append, real_execute = JournalFileBackend.append_logs, study_mod.execute

    def append_logs(self, logs):
        if refused.is_set():
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), self._file_path)
        return real_append(self, logs)

    def execute(*args, **kwargs):
        summary = real_execute(*args, **kwargs)
        refused.set()  # the journal turns read-only while the first trial runs
        return summary

    monkeypatch.setattr(JournalFileBackend, "append_logs", append_logs)
    monkeypatch.setattr(study_mod, "execute", execute)
    rc, io = _tune(capsys, job, "--trials", "3", "--out", out)
    assert rc == 5 and io.err.count("\n") == 1, io.err
    assert f"cannot write {journal} (Permission denied)" in io.err and "make it writable again" in io.err
    assert "run the same hpcflow tune command" in io.err and "Traceback" not in io.out + io.err
    trials = _journal(out / "study.journal").trials
    assert len(trials) == 1 and trials[0].state == TrialState.RUNNING  # its failure could not be recorded either
    assert not (out / "best.toml").exists()


class _PruneAt(optuna.pruners.BasePruner):
    """Prunes a trial whose last reported step is `step`."""

    def __init__(self, step):
        self.step = step

    def prune(self, study, trial) -> bool:
        return trial.last_step == self.step


@pytest.mark.parametrize("prune_at", [2, 3])
def test_a_trial_is_never_pruned_at_its_last_step(tmp_path, monkeypatch, prune_at):
    """A pruner asking to stop at step 3 of [flow].steps = 3 would record a complete run as pruned (it could never
    be the best): the last step is not put to the pruner, so the trial completes; at step 2 it is pruned."""
    import hpcflow.tune.study as study_mod

    monkeypatch.setattr(study_mod, "make_pruner", lambda tune: _PruneAt(prune_at))
    out = tmp_path / "s"
    r = optimize(str(_job(tmp_path)), trials=1, out=str(out), log=lambda *_: None)
    (t,) = _journal(out / "study.journal").trials
    summary = json.loads((out / t.user_attrs["run_dir"] / "summary.json").read_text())
    assert sorted(t.intermediate_values) == list(range(1, prune_at + 1))
    if prune_at == 3:
        assert r["counts"] == {"COMPLETE": 1} and t.state == TrialState.COMPLETE
        assert summary["status"] == "finished" and summary["steps_taken"] == 3
        assert r["best"]["number"] == 0 and (out / "best.toml").is_file()
    else:
        assert r["counts"] == {"PRUNED": 1} and summary["status"] == "stopped" and summary["steps_taken"] == 2


def test_a_study_name_with_a_control_character_is_refused_and_others_are_quoted_in_best_toml(tmp_path, capsys):
    job = _job(tmp_path)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", tmp_path / "n", "--study", "a\nb")
    assert rc == 2 and io.err.count("\n") == 1 and "'a\\nb'" in io.err and "control character" in io.err
    assert not (tmp_path / "n").exists()
    name, out = "my study/../x y", tmp_path / "q"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--study", name)[0] == 0
    header = [line for line in (out / "best.toml").read_text().splitlines() if line.startswith("# Run: ")]
    assert len(header) == 1
    assert shlex.split(header[0][len("# Run: "):]) == ["hpcflow", "run", str(out / "best.toml"), "--out",
                                                       f"{out}_best"]


def test_sqlite_tables_created_by_two_workers_at_once_say_to_rerun_the_worker(tmp_path, monkeypatch):
    """Two workers starting together on a new SQLite database: one fails on Optuna's alembic_version row; the fix
    is running it again (the tables exist then), not checking the URL or a server."""
    import sqlalchemy.exc

    from hpcflow.tune.storage import StorageError, open_storage

    def racing(*args, **kwargs):
        raise sqlalchemy.exc.IntegrityError("INSERT INTO alembic_version (version_num) VALUES (?)", ("v3.2.0.a",),
                                            Exception("UNIQUE constraint failed: alembic_version.version_num"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", racing)
    with pytest.raises(StorageError) as caught:
        open_storage(f"sqlite:///{tmp_path / 'q.db'}", str(tmp_path))
    said = str(caught.value)
    assert "\n" not in said and "run this worker again" in said and "server answers" not in said
    assert said.startswith(f"--storage sqlite:///{tmp_path / 'q.db'}: ")


def test_journal_backends_lock_on_the_absolute_path(tmp_path, monkeypatch):
    """The lock link made for a relative journal path resolves from any folder (to its owner file, named relative to
    the link's own folder: beside it)."""
    from hpcflow.tune.storage import journal_backend

    monkeypatch.chdir(tmp_path)
    (tmp_path / "s").mkdir()
    backend = journal_backend("s/study.journal")
    assert backend._lock.acquire()
    try:
        link = os.readlink(tmp_path / "s" / "study.journal.lock")
        assert os.sep not in link and (tmp_path / "s" / link).is_file()
        monkeypatch.chdir("/")
        assert os.path.exists(tmp_path / "s" / "study.journal.lock")
    finally:
        backend._lock.release()
    storage = JournalStorage(backend)
    optuna.create_study(study_name="x", storage=storage)
    assert optuna.study.get_all_study_names(storage) == ["x"]


def test_a_damaged_journal_found_by_a_heartbeat_ends_the_worker_when_the_computation_ends():
    """A heartbeat write whose lock was taken over and whose journal is damaged (LockLost) is not swallowed by the
    heartbeat thread: the block raises it; a trial finished by another worker only stops the beats."""
    from hpcflow.tune.storage import LockLost, heartbeat

    class Storage:
        def __init__(self, exc):
            self.exc, self.calls = exc, 0

        def set_trial_user_attr(self, trial_id, key, value):
            self.calls += 1
            raise self.exc

    damaged = Storage(LockLost("study journal j: its lock was taken over while this worker wrote to it"))
    with pytest.raises(LockLost, match="taken over"):
        with heartbeat(damaged, 0, 0.01):
            while not damaged.calls:
                time.sleep(0.01)
    finished = Storage(RuntimeError("trial 0 is already finished"))
    with heartbeat(finished, 0, 0.01):
        while not finished.calls:
            time.sleep(0.01)
    assert finished.calls == 1
