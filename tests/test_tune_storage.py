"""Journal storage of tune studies: damaged or foreign journals, output paths, stale and preempted trials."""

from __future__ import annotations

import errno
import json
import os
import threading
import time

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hpcflow.analysis.rundir import MissingData
from hpcflow.cli import main
from hpcflow.tune.study import optimize
from test_tune_records import JOB, _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)
from test_tune_trials_unwritable import refuse_writes


def _damaged_copies(tmp_path):
    """A one-trial study, then two copies of its journal: one cut 40 bytes short (the last operation half
    written), one with its second line cut in half (damage inside the file)."""
    job, out = _job(tmp_path), tmp_path / "s"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    data = (out / "study.journal").read_bytes()
    lines = data.split(b"\n")
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / "study.journal").write_bytes(data[:-40])
    (cut / "study.json").write_text((out / "study.json").read_text())
    mid = tmp_path / "mid.journal"
    mid.write_bytes(b"\n".join([lines[0], lines[1][: len(lines[1]) // 2], *lines[2:]]))
    return job, cut, mid


def test_a_damaged_or_foreign_journal_is_refused_before_anything_is_written(tmp_path, capsys):
    job, cut, mid = _damaged_copies(tmp_path)
    with pytest.raises(ValueError):  # the damage is real: Optuna itself cannot read the mid-file cut
        optuna.load_study(study_name="tiny", storage=JournalStorage(JournalFileBackend(str(mid))))
    n_lines = (cut / "study.journal").read_bytes().count(b"\n")
    cases = [(cut, None, f"line {n_lines + 1} is incomplete"), (tmp_path / "m", mid, "line 2 is not an Optuna")]
    foreign = tmp_path / "notes.journal"
    foreign.write_text("hello world\n")
    cases.append((tmp_path / "f", foreign, "line 1 is not an Optuna journal operation (the file is not an Optuna"))
    for out, storage, says in cases:
        journal = storage or out / "study.journal"
        before = journal.read_bytes()
        rc, io = _tune(capsys, job, "--trials", "1", "--out", out, *(["--storage", storage] if storage else []))
        assert rc == 2 and says in io.err and io.err.count("\n") == 1, io.err
        assert journal.read_bytes() == before
        assert not (out / "trials").exists() and io.out == ""


@pytest.mark.parametrize("kind", ["hdf5", "sqlite", "latin1", "unended_text"])
def test_a_file_of_another_kind_is_not_an_optuna_journal_not_a_cut_off_one(tmp_path, capsys, kind):
    """An HDF5 file or an SQLite database given as the journal (binary; its bytes end without a newline) was called
    a journal whose last line a write cut off, with the advice to remove that line (damaging the file): tune and
    optuna_view.py say it is not an Optuna journal, before anything is written; the file is untouched."""
    import sqlite3

    import h5py
    import numpy as np

    from hpcflow.analysis.script import main as script_main

    path = tmp_path / f"given.{kind}"
    if kind == "hdf5":
        with h5py.File(path, "w") as f:
            f["x"] = np.arange(1000.0)
    elif kind == "sqlite":
        with sqlite3.connect(path) as db:
            db.execute("create table t (x)")
    else:
        path.write_bytes("café\n".encode("latin-1") if kind == "latin1" else b"hello\nworld")
    before = path.read_bytes()
    says = "not an Optuna journal (binary content" if kind in ("hdf5", "latin1") else \
        "line 1 is not an Optuna journal operation (the file is not an Optuna journal)"
    if kind == "sqlite":  # tune says how to give it; optuna_view.py opens it as the database it is
        says = f"not an Optuna journal (an SQLite database: give it as the URL sqlite:///{path})"
    rc, io = _tune(capsys, _job(tmp_path), "--trials", "1", "--out", tmp_path / "o", "--storage", path)
    assert rc == 2 and says in io.err and io.err.count("\n") == 1 and "incomplete" not in io.err, io.err
    assert script_main("optuna_view", [str(path), "--out", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    says = "not an Optuna database (it has no table 'studies')" if kind == "sqlite" else says
    assert says in err and err.count("\n") == 1 and "incomplete" not in err, err
    assert path.read_bytes() == before and not (tmp_path / "o").exists() and not (tmp_path / "f").exists()


@pytest.mark.parametrize("op", [{"op_code": 99, "worker_id": "x"},  # an operation this Optuna does not know
                                {"op_code": 0, "worker_id": "x"},  # create a study: without its name
                                {"op_code": 4, "worker_id": "x"}])  # create a trial: without its study
def test_a_journal_line_that_parses_but_optuna_cannot_apply_is_named(tmp_path, capsys, op):
    """JSON with an op_code that Optuna's reader still fails on (AssertionError, KeyError): refused naming the line
    (the message blamed the URL and a server), before anything is written; analysis says the same."""
    from hpcflow.analysis.study import load_study

    job, out = _job(tmp_path), tmp_path / "s"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    journal = out / "study.journal"
    n = journal.read_bytes().count(b"\n")
    with journal.open("a") as fh:
        fh.write(json.dumps(op) + "\n")
    before = journal.read_bytes()
    with pytest.raises(Exception):  # the damage is real: Optuna itself cannot open the study
        optuna.load_study(study_name="tiny", storage=JournalStorage(JournalFileBackend(str(journal))))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    says = f"line {n + 1} is an operation Optuna cannot apply"
    assert rc == 2 and says in io.err and io.err.count("\n") == 1 and "server" not in io.err, io.err
    assert journal.read_bytes() == before and len(list((out / "trials").iterdir())) == 1
    with pytest.raises(MissingData, match=says) as exc:
        load_study(journal)
    assert str(exc.value).count("(") == str(exc.value).count(")"), exc.value  # the reason is given whole


def test_analysis_and_report_of_a_damaged_journal_are_one_line_naming_the_damage_as_tune_does(tmp_path, capsys):
    """A cut-off last line is damage for readers too (Optuna's reader skips it: the study read as 1 running trial);
    the report's row of the study says so, with tune's reason."""
    from hpcflow.analysis.script import main as script_main
    from hpcflow.analysis.study import load_study
    from hpcflow.cli import main
    from hpcflow.report.detect import detect
    from hpcflow.report.runs_table import row

    job, cut, mid = _damaged_copies(tmp_path)
    with pytest.raises(MissingData, match="line 2 is not an Optuna journal operation"):
        load_study(mid)
    assert script_main("table1", [str(mid), "--out", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err
    assert "line 2 is not an Optuna journal operation" in err and err.count("\n") == 1
    n_lines = (cut / "study.journal").read_bytes().count(b"\n")
    says = f"line {n_lines + 1} is incomplete"
    seen = optuna.load_study(study_name="tiny", storage=JournalStorage(JournalFileBackend(str(cut / "study.journal"))))
    assert [t.state for t in seen.trials] == [TrialState.RUNNING]  # what Optuna's reader makes of it
    with pytest.raises(MissingData, match=says):
        load_study(cut)
    cells = row(detect(cut))
    assert cells[2].startswith("unreadable: ") and says in cells[2] and "the file is damaged" in cells[2], cells
    before = (cut / "study.journal").read_bytes()
    assert main(["report", str(cut), "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1, err
    assert (cut / "study.journal").read_bytes() == before and sorted(p.name for p in cut.iterdir()) == [
        "study.journal", "study.json"]  # nothing written, its lock released


@pytest.mark.parametrize("tail", [b"\xff\xfe", b"\0" * 64])
def test_a_journal_with_binary_bytes_after_its_last_operation_names_the_lines_to_keep(tmp_path, capsys, tail):
    """Bytes appended to a good journal (or the NULs a crash leaves at its end) were taken for a file of another
    kind ("binary content, not UTF-8 text"), in tune and report alike: they are its incomplete last line, and the
    lines before it are kept; bytes that are no text inside a journal are named by their line."""
    from hpcflow.cli import main

    job, out = _job(tmp_path), tmp_path / "s"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    journal = out / "study.journal"
    good = journal.read_bytes()
    n = good.count(b"\n")
    journal.write_bytes(good + tail)
    says = f"line {n + 1} is incomplete and not UTF-8 text"
    keep = f"remove that partial last line (keep lines 1-{n})"
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 2 and says in io.err and keep in io.err and io.err.count("\n") == 1, io.err
    assert "binary content" not in io.err and journal.read_bytes() == good + tail
    assert main(["report", str(out), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert says in err and keep in err and "binary content" not in err and err.count("\n") == 1, err
    journal.write_bytes(good)  # the lines said to keep are the whole journal: tune goes on
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    lines = journal.read_bytes().split(b"\n")
    journal.write_bytes(b"\n".join([*lines[:2], tail, *lines[2:]]))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 2 and "line 3 is not an Optuna journal operation (the file is damaged)" in io.err, io.err


def test_binary_bytes_with_newlines_after_the_last_operation_name_every_damaged_line(tmp_path, capsys):
    """Binary bytes holding newlines (an HDF5 file's signature: 0x0d 0x0a 0x1a 0x0a, then NULs) appended to a good
    journal: its last line alone was said incomplete, and the lines of binary before it were kept: the advice left
    the journal damaged. The lines from the first damaged one on are named, and the good lines alone are kept."""
    from hpcflow.cli import main

    job, out = _job(tmp_path), tmp_path / "s"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    journal = out / "study.journal"
    good = journal.read_bytes()
    n = good.count(b"\n")
    journal.write_bytes(good + b"\x89HDF\r\n\x1a\n" + b"\0" * 40)  # lines n+1 (\x89HDF\r), n+2 (\x1a), n+3 (NULs)
    says = f"lines {n + 1}-{n + 3} are not whole operations and not UTF-8 text"
    keep = f"remove those lines (keep lines 1-{n})"
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 2 and says in io.err and keep in io.err and io.err.count("\n") == 1, io.err
    assert main(["report", str(out), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert says in err and keep in err and err.count("\n") == 1, err
    journal.write_bytes(b"".join(journal.read_bytes().splitlines(keepends=True)[:n]))  # the advice, followed
    assert journal.read_bytes() == good
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0


def test_a_journal_line_being_written_is_waited_for_not_taken_for_damage(tmp_path):
    """A worker appending holds the journal's lock: a reader waits for it and reads the whole line."""
    from optuna.storages.journal import JournalFileSymlinkLock

    from hpcflow.analysis.study import load_study

    _, cut, _ = _damaged_copies(tmp_path)
    whole = (tmp_path / "s" / "study.journal").read_bytes()
    lock = JournalFileSymlinkLock(str(cut / "study.journal"))
    assert lock.acquire()

    def finish_write():
        time.sleep(0.5)
        (cut / "study.journal").write_bytes(whole)
        lock.release()

    writer = threading.Thread(target=finish_write)
    writer.start()
    try:
        study, _ = load_study(cut)
        states = [t.state for t in study.trials]  # read now: Optuna reads the journal again at each access
    finally:
        writer.join()
    assert states == [TrialState.COMPLETE]


@pytest.mark.parametrize("args, says", [(["--out", ""], "--out is empty"),
                                        (["--out", "/proc/zz"], "--out /proc/zz lies under /proc"),
                                        (["--out", "o", "--study", ""], "--study is empty"),
                                        (["--out", "o", "--storage", " "], "--storage is empty"),
                                        # a journal's directory is not created outside --out, as an SQLite file's
                                        (["--out", "o", "--storage", "nodir/x.journal"],
                                         "--storage nodir/x.journal: cannot open it (cannot create journal file"),
                                        (["--out", "o", "--storage", "sqlite:///nodir/x.db"],
                                         "--storage sqlite:///nodir/x.db: cannot open it (cannot create database")])
def test_bad_out_study_or_storage_options_are_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, args, says):
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc, io = _tune(capsys, job, "--trials", "1", *args)
    assert rc == 2 and says in io.err and io.err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]  # no study.journal, no directory



@pytest.mark.parametrize("storage, what", [("nodir/x.journal", "journal file"),
                                           ("sqlite:///nodir/x.db", "database file")])
@pytest.mark.parametrize("place, why", [("nodir", "nodir is missing); create that directory first, or pass "),
                                        ("nodir/deeper", "nodir/deeper is missing (nodir does not exist)); create "
                                                         "that directory first, or pass "),
                                        ("a.h5", "a.h5 is not a directory); pass ")])
def test_a_journal_and_an_sqlite_file_in_a_missing_directory_are_refused_alike(tmp_path, monkeypatch, capsys, storage,
                                                                               what, place, why):
    """An SQLite file's missing directory was said to be "not a writable directory" (by its absolute path) where a
    journal's was said to be missing, with the fix to create it; both now say why as the journal's did."""
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.h5").write_bytes(b"x")
    storage = storage.replace("nodir", place)
    path = storage.partition(":///")[2] or storage
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "o", "--storage", storage)
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"--storage {storage}: cannot open it (cannot create {what} {path}: {place} is " in io.err
    assert why in io.err and "writable" not in io.err, io.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "tiny.toml"]  # no study.journal, no directory


def test_an_sqlite_file_in_an_unwritable_directory_is_still_said_to_be_one(tmp_path, monkeypatch, capsys):
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ro").mkdir()
    refuse_writes(monkeypatch, lambda p: os.path.dirname(p) == str(tmp_path / "ro"), errno.EACCES)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "o", "--storage", "sqlite:///ro/x.db")
    assert rc == 2 and "cannot create database file ro/x.db: ro is not a writable directory" in io.err, io.err


def test_an_sqlite_file_in_a_new_directory_inside_out_is_taken_as_a_journal_is(tmp_path, monkeypatch, capsys):
    """Inside --out a missing directory is made for the storage file: for an SQLite file as for a journal, and
    `hpcflow submit --check` of such a command accepts it too (it refused the database's directory as unwritable)."""
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    for storage in ("sqlite:///o/study.db", "sqlite:///o/sub/study.db", "o/sub/s.journal"):
        assert main(["submit", str(job), "--out", "o", "--executor", "local", "--command", "tune", "--trials", "1",
                     "--storage", storage, "--check"]) == 0, capsys.readouterr().err
        assert not (tmp_path / "o").exists()  # the check writes nothing
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "o", "--storage", "sqlite:///o/sub/study.db")
    assert rc == 0, io.err
    assert len(optuna.load_study(study_name="tiny", storage="sqlite:///o/sub/study.db").trials) == 1


@pytest.mark.parametrize("storage, says", [
    ("a.h5/../j.journal", "--storage a.h5/../j.journal: cannot open it (cannot create journal file a.h5/../j.journal: "
                          "a.h5/.. cannot be reached (a.h5 is not a directory)); pass a journal path in an existing "
                          "directory or inside --out"),
    ("o/a.h5/../j.journal", "cannot be reached (o/a.h5 is not a directory)"),
    ("jj.journal/", "--storage jj.journal/ ends with '/', which names a directory; pass the name of the journal "
                    "file without it, e.g. --storage jj.journal"),
    ("dir", "--storage dir is a directory; pass the name of the journal file, e.g. --storage dir/study.journal"),
    ("dir/", "--storage dir/ is a directory; pass the name of the journal file, e.g. --storage dir/study.journal")])
def test_a_storage_path_through_a_file_or_naming_a_directory_is_refused(tmp_path, monkeypatch, capsys, storage,
                                                                        says):
    """os.path.abspath drops a trailing '/' and `NAME/..`, so a journal was created at ./j.journal for a.h5/../j.journal
    (a.h5 a file) and at ./jj.journal for jj.journal/; the OS takes them as written and fails there."""
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.h5").write_bytes(b"x")
    (tmp_path / "dir").mkdir()
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "a.h5").write_bytes(b"x")
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "o", "--storage", storage)
    assert rc == 2 and io.err.count("\n") == 1 and says in io.err, (rc, io.err)
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "a.h5", "dir", "o", "o/a.h5", "tiny.toml"]  # no journal, no trial directory


def _running_trial_of(out, pid, host=None, heartbeat=None):
    """A RUNNING trial whose worker is `pid` on `host` (default: this host), started now, with a last heartbeat at
    time.time() = `heartbeat` (None: none recorded)."""
    import socket

    t = _journal(out / "study.journal").ask({"flow.dt": optuna.distributions.FloatDistribution(0.01, 3.0, log=True)})
    t.set_user_attr("host", host or socket.gethostname())
    t.set_user_attr("pid", pid)
    if heartbeat is not None:
        t.set_user_attr("heartbeat", heartbeat)
    return t


def test_a_live_worker_on_this_host_keeps_its_trial_however_old_and_a_dead_ones_is_requeued_once(tmp_path):
    import subprocess
    import sys

    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 1'))
    out = tmp_path / "s"
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _running_trial_of(out, sleeper.pid, heartbeat=0.0)  # its last heartbeat in 1970
        optimize(str(job), trials=1, out=str(out), log=lambda *_: None)
        assert _journal(out / "study.journal").trials[1].state == TrialState.RUNNING  # alive: not failed
    finally:
        sleeper.kill()
        sleeper.wait()
    optimize(str(job), trials=1, out=str(out), log=lambda *_: None)  # gone: failed, its parameters queued once
    trials = _journal(out / "study.journal").trials
    assert trials[1].state == TrialState.FAIL and "worker gone" in trials[1].user_attrs["failure"]
    retries = [t for t in trials if t.user_attrs.get("retry_of") == 1]
    assert len(retries) == 1 and retries[0].params == trials[1].params


def test_a_trial_failed_by_another_worker_while_it_runs_is_not_requeued_again(tmp_path, monkeypatch):
    """Another host's worker (age only) fails and requeues a trial while it runs: the running worker cannot tell
    its result and says so in one line; the parameters are queued once, not twice."""
    from hpcflow.tune import study as study_mod
    from hpcflow.tune.storage import recover_stale

    job = _job(tmp_path, JOB.replace('pruner = "none"', 'pruner = "none"\nretries = 3'))
    out = tmp_path / "s"
    real = study_mod.execute

    def execute_then_recovered_elsewhere(job_, spec, trial=None, **kw):
        summary = real(job_, spec, trial, **kw)
        trial.set_user_attr("host", "another-node")  # as seen from another host after stale_seconds
        s = _journal(out / "study.journal")
        assert recover_stale(s, s._storage, grace_seconds=0.0, retries=3) == [spec["number"]]
        return summary

    monkeypatch.setattr(study_mod, "execute", execute_then_recovered_elsewhere)
    lines = []
    optimize(str(job), trials=1, out=str(out), log=lines.append)
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.WAITING]
    assert trials[1].user_attrs["retry_of"] == 0
    assert "trial 0 was marked failed by another worker" in lines[0] and not any("Traceback" in x for x in lines)
    assert json.loads((out / "trials" / "0000" / "summary.json").read_text())["status"] == "finished"


def test_a_preempted_trial_says_how_to_continue_and_the_next_worker_runs_its_parameters(tmp_path, capsys, monkeypatch):
    import os
    import signal

    from hpcflow.tune import objective

    job, out = _job(tmp_path, JOB.replace("steps = 3", "steps = 6")), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out)[0] == 0
    (out / "best.toml").unlink()
    real = objective.Tracker.step

    def step_then_sigterm(self, info, sigma0):  # SIGTERM during step 2: the flow stops at the next step boundary
        if info["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, info, sigma0)

    monkeypatch.setattr(objective.Tracker, "step", step_then_sigterm)
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out)
    assert rc == 4 and io.err.count("\n") == 1 and "--resume" not in io.err
    assert "signal received during trial 1" in io.err and "run the same hpcflow tune command" in io.err
    assert (out / "best.toml").exists()  # trial 0 finished: best.toml is written before the worker stops
    trials = _journal(out / "study.journal").trials
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs["failure"] == "preempted"
    assert trials[2].state == TrialState.WAITING and trials[2].user_attrs["retry_of"] == 1  # although retries = 0
    summary = json.loads((out / "trials" / "0001" / "summary.json").read_text())  # as hpcflow run's, with the seeds
    assert summary["status"] == "preempted" and 2 <= summary["checkpoint_step"] < 6 and summary["kind"] == "flow"
    assert summary["seeds"] == trials[1].user_attrs["seeds"] and len(summary["overrides"]) == len(trials[1].params)
    monkeypatch.setattr(objective.Tracker, "step", real)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 0
    trials = _journal(out / "study.journal").trials
    assert trials[2].state == TrialState.COMPLETE and trials[2].params == trials[1].params and len(trials) == 3
    # the preempted trial (Optuna's FAIL) is counted as preempted, not as a failure: nothing failed
    assert "hpcflow tune: study 'tiny': 2 complete, 1 preempted\n" in io.out, io.out
    from hpcflow.analysis.study import overview
    assert overview(out)["states"] == {"complete": 2, "preempted": 1}


def test_a_signal_between_trials_stops_the_worker_with_best_toml_and_no_running_trial(tmp_path, capsys, monkeypatch):
    import os
    import signal

    from hpcflow import stop_signals
    from hpcflow.tune import study as study_mod

    job, out = _job(tmp_path), tmp_path / "s"
    real = study_mod._trial_line

    def line_then_sigterm(*args):  # trial 0 is recorded: SIGTERM before trial 1 starts
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(study_mod, "_trial_line", line_then_sigterm)
    rc, io = _tune(capsys, job, "--trials", "3", "--out", out)
    assert rc == 4 and "signal received between trials" in io.err and io.err.count("\n") == 1
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.COMPLETE]
    assert (out / "best.toml").exists()
    # the worker's handler is gone; a repeat of the honoured request (scancel --full sends it twice), or the SIGTERM
    # of the job's requeue, is ignored until the process ends (`stop_signals.finished`, SIG_IGN at its exit)
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_IGN, stop_signals._after_the_result)


@pytest.mark.parametrize("url, shown", [
    ("postgresql://u:secret@127.0.0.1:1/db", "postgresql://u:***@127.0.0.1:1/db"),
    ("postgresql://u:se/cr:et@127.0.0.1:1/db", "postgresql://u:***@127.0.0.1:1/db"),  # "/" and ":" in the password
    ("mysql://u@127.0.0.1:1/db?password=secret", "mysql://u@127.0.0.1:1/db?password=***")])
def test_a_storage_that_cannot_be_opened_is_named_without_its_password(tmp_path, monkeypatch, capsys, url, shown):
    """--storage with a password that cannot be opened (its driver is not installed here, or no server answers on
    port 1): the one line names the URL with *** for the password, which the command prints nowhere (batch logs
    keep what it prints); nothing is written."""
    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "o", "--storage", url)
    assert rc == 2 and io.err.count("\n") == 1 and f"error: --storage {shown}: cannot open it (" in io.err, io.err
    assert "secret" not in io.out + io.err and "cr:et" not in io.out + io.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]


def test_a_storage_error_and_a_recorded_storage_that_name_a_password_are_shown_without_it(tmp_path, monkeypatch,
                                                                                         capsys):
    """An error whose text names the URL (a driver that repeats it) and a study.json written by hand with a password
    in its storage: the lines that name them show *** for the password."""
    from hpcflow.tune import storage as storage_mod

    job = _job(tmp_path)
    monkeypatch.chdir(tmp_path)
    url = "postgresql://u:secret@db.example/x"

    def says_its_url(given):
        raise RuntimeError(f"could not connect to {given} (timeout)")

    monkeypatch.setattr(storage_mod, "_holds_tables", says_its_url)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "o", "--storage", url)
    assert rc == 2 and io.err.count("\n") == 1 and "secret" not in io.err, io.err
    assert ("--storage postgresql://u:***@db.example/x: cannot open it (RuntimeError: could not connect to "
            "postgresql://u:***@db.example/x (timeout))") in io.err
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "study.json").write_text(json.dumps({"study": "tiny", "storage": url}))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", "s")  # the default journal: another storage
    assert rc == 2 and io.err.count("\n") == 1 and "secret" not in io.err, io.err
    assert "holds the trials of study 'tiny' in storage postgresql://u:***@db.example/x, not s/study.journal" in io.err


def test_a_worker_s_closing_count_says_interrupted_for_a_trial_whose_worker_was_killed(tmp_path, capsys,
                                                                                       monkeypatch):
    """Two other workers draw trials 1 and 2 while this one runs trial 0; the worker of trial 1 is killed (its run
    directory is there, and no live process holds its lock), that of trial 2 lives (it holds its lock). This
    worker's closing line counts trial 1 interrupted, not running (it said '2 running'), as `hpcflow report`
    counts it."""
    from hpcflow.analysis.study import overview
    from hpcflow.jobs import outlock
    from hpcflow.tune import study as study_mod

    job, out = _job(tmp_path), tmp_path / "s"
    real, held = study_mod._trial_line, []

    def line_after_others_started(*args):
        journal = _journal(out / "study.journal")
        for number in (1, 2):
            journal.ask({"flow.dt": optuna.distributions.FloatDistribution(0.01, 3.0, log=True)}).set_user_attr(
                "run_dir", f"trials/{number:04d}")
        (out / "trials" / "0001").mkdir()  # its worker took the lock there and was killed
        held.append(outlock.acquire(out / "trials" / "0002", command="hpcflow tune (trial 2)"))
        return real(*args)

    monkeypatch.setattr(study_mod, "_trial_line", line_after_others_started)
    try:
        rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
        assert rc == 0, io.err
        assert "hpcflow tune: study 'tiny': 1 complete, 1 interrupted, 1 running\n" in io.out, io.out
        ov = overview(out)
        assert ov["interrupted"] == [1] and ov["states"] == {"complete": 1, "running": 1, "interrupted": 1}, ov
    finally:
        for lock in held:
            lock.release()
