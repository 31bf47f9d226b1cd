"""A study directory in which no file can be created (its permissions, chattr +i, a read-only mount) is refused
before any trial (exit 2, one line, nothing changed) with the advice to make it writable: another --out would
start another study, not add trials to this one."""

from __future__ import annotations

import errno
import os

import pytest
from optuna.trial import TrialState

from test_tune_records import _digests, _job, _journal, _tune  # tests/ is on sys.path
from test_tune_trials_unwritable import refuse_writes


@pytest.mark.parametrize("err, fix", [
    (errno.EPERM, "make it writable (chmod u+w, chattr -i), then run the same command"),  # chattr +i
    (errno.EACCES, "make it writable (chmod u+w, chattr -i), then run the same command"),  # chmod a-w
    (errno.EROFS, "its file system is mounted read-only: have it remounted read-write"),
])
def test_an_unwritable_study_directory_is_to_be_made_writable_not_replaced(tmp_path, capsys, monkeypatch, err, fix):
    job, out = _job(tmp_path), tmp_path / "s"
    assert _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")[0] == 0
    before = _digests(out)
    refuse_writes(monkeypatch, lambda p: os.path.dirname(p) == str(out), err)
    rc, io = _tune(capsys, job, "--trials", "2", "--out", out, "--quiet")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"--out {out} is a study directory that is not writable ({os.strerror(err)})" in io.err, io.err
    assert fix in io.err and "choose another --out" not in io.err, io.err
    assert _digests(out) == before
    assert [t.state for t in _journal(out / "study.journal").trials] == [TrialState.COMPLETE]


def test_an_unwritable_directory_that_holds_no_study_is_still_to_be_replaced(tmp_path, capsys, monkeypatch):
    job, out = _job(tmp_path), tmp_path / "empty"
    out.mkdir()
    refuse_writes(monkeypatch, lambda p: os.path.dirname(p) == str(out))
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out, "--quiet")
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert "choose another --out" in io.err and list(out.iterdir()) == [], io.err
