"""A study's trials/ directory that cannot be written into (its permissions, chattr +i): refused before any trial
(exit 2, one line naming it and the fix); made so while the study runs, the trial whose directory it refuses fails,
its parameters are queued again without counting a retry, and the worker ends with exit status 5 (a refused write),
not failing every later trial in turn."""

from __future__ import annotations

import errno
import os

import pytest
from optuna.trial import TrialState

from test_tune_records import _digests, _job, _journal, _tune  # tests/ is on sys.path


def refuse_writes(monkeypatch, refused, err=errno.EPERM, when=lambda: True):
    """The file system refuses (OSError `err`: EPERM as chattr +i, EACCES as permissions or an ACL, EROFS as a
    read-only mount) every file or directory created, and every file opened for writing, at a path for which
    `refused(absolute path)` holds, while `when()`: at the calls themselves (os.open, os.mkdir, os.symlink), so for
    root too, which os.access answers yes whatever the mount or the file's attributes."""
    real_open, real_mkdir, real_symlink = os.open, os.mkdir, os.symlink
    writes = os.O_CREAT | os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC

    def deny(path):
        if when() and refused(os.path.abspath(os.fspath(path))):
            raise OSError(err, os.strerror(err), os.fspath(path))

    def open_(path, flags, *args, **kwargs):
        if flags & writes:
            deny(path)
        return real_open(path, flags, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        deny(path)
        return real_mkdir(path, *args, **kwargs)

    def symlink(src, dst, *args, **kwargs):
        deny(dst)
        return real_symlink(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    monkeypatch.setattr(os, "mkdir", mkdir)
    monkeypatch.setattr(os, "symlink", symlink)


def _trials_refused(monkeypatch, trials, when=lambda: True, err=errno.EPERM):
    """Nothing can be created in `trials` (`refuse_writes`) while `when()`."""
    refuse_writes(monkeypatch, lambda p: os.path.dirname(p) == str(trials), err, when)


def test_an_unwritable_trials_directory_is_refused_before_any_trial(tmp_path, capsys, monkeypatch):
    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")[0] == 0
    before = _digests(out)
    _trials_refused(monkeypatch, out / "trials")
    rc, io = _tune(capsys, job, "--trials", "3", "--out", out, "--quiet")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"{out / 'trials'} is not writable" in io.err and "make it writable" in io.err, io.err
    assert "choose another --out" not in io.err, io.err
    assert _digests(out) == before
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.COMPLETE]


def test_a_trials_directory_made_unwritable_mid_study_fails_one_trial_and_ends_the_worker(tmp_path, capsys,
                                                                                          monkeypatch):
    job, out = _job(tmp_path), tmp_path / "s"
    first_done = lambda: (out / "trials" / "0000" / "summary.json").exists()  # noqa: E731
    _trials_refused(monkeypatch, out / "trials", when=first_done)
    rc, io = _tune(capsys, job, "--trials", "3", "--out", out, "--quiet")
    assert rc == 5 and io.err.count("\n") == 1, io.err
    assert f"cannot write {out / 'trials'}" in io.err and "writable again" in io.err, io.err
    assert "choose another --out" not in io.err, io.err
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING], io.err
    assert trials[1].user_attrs["failure"].startswith("write refused"), trials[1].user_attrs
    queued = trials[2]
    assert queued.user_attrs.get("attempt") == 0 and queued.user_attrs.get("retry_of") == 1  # no retry counted
    assert queued.system_attrs["fixed_params"] == trials[1].params
    assert (out / "best.toml").is_file() and not (out / "trials" / "0001").exists()


@pytest.mark.parametrize("err, reason", [(errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied")])
def test_a_trials_directory_refused_by_its_mount_or_acl_is_refused_for_root_too(tmp_path, capsys, monkeypatch, err,
                                                                                 reason):
    """os.access says yes to root on a read-only mount or with chattr +i, and reads no ACL: the refusal is found by
    creating a file there, whoever runs the study."""
    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")[0] == 0
    before = _digests(out)
    monkeypatch.setattr(os, "access", lambda *a, **k: True)  # as root is answered
    _trials_refused(monkeypatch, out / "trials", err=err)
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out, "--quiet")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"{out / 'trials'} is not writable ({reason})" in io.err and "make it writable" in io.err, io.err
    assert _digests(out) == before and sorted(os.listdir(out / "trials")) == ["0000"]  # no probe left behind
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.COMPLETE]


def test_a_trials_directory_on_a_file_system_remounted_read_only_mid_study_ends_the_worker(tmp_path, capsys,
                                                                                          monkeypatch):
    job, out = _job(tmp_path), tmp_path / "s"
    monkeypatch.setattr(os, "access", lambda *a, **k: True)
    first_done = lambda: (out / "trials" / "0000" / "summary.json").exists()  # noqa: E731
    _trials_refused(monkeypatch, out / "trials", when=first_done, err=errno.EROFS)
    rc, io = _tune(capsys, job, "--trials", "3", "--out", out, "--quiet")
    assert rc == 5 and io.err.count("\n") == 1, io.err
    assert f"cannot write {out / 'trials'} (Read-only file system)" in io.err, io.err
    assert "file system writable again" in io.err, io.err
    trials = _journal(out / "study.journal").trials
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.WAITING], io.err
    assert (out / "best.toml").is_file() and sorted(os.listdir(out / "trials")) == ["0000"]


def test_the_probe_of_a_directory_creates_a_file_there_and_leaves_none(tmp_path, monkeypatch):
    """A directory that takes files is found writable, with nothing left in it; a path under a regular file and a
    directory whose file creation is refused are said with the file system's own error."""
    from hpcflow.tune.storage import dir_refusal, file_refusal

    made = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda p, flags, *a, **k: (made.append((os.fspath(p), flags)),
                                                                real_open(p, flags, *a, **k))[1])
    assert dir_refusal(str(tmp_path)) is None and os.listdir(tmp_path) == []
    assert len(made) == 1 and os.path.dirname(made[0][0]) == str(tmp_path) and made[0][1] & os.O_CREAT
    (tmp_path / "f").write_text("x")
    assert dir_refusal(str(tmp_path / "f")) is None  # ENOTDIR: not a refusal of a directory (said elsewhere)
    assert file_refusal(str(tmp_path / "f")) is None and (tmp_path / "f").read_text() == "x"
    refuse_writes(monkeypatch, lambda p: p.startswith(str(tmp_path)), errno.EROFS)
    assert dir_refusal(str(tmp_path)).errno == errno.EROFS and file_refusal(str(tmp_path / "f")).errno == errno.EROFS
