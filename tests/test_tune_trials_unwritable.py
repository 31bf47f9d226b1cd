"""A study's trials/ directory that cannot be written into (its permissions, chattr +i): refused before any trial
(exit 2, one line naming it and the fix); made so while the study runs, the trial whose directory it refuses fails,
its parameters are queued again without counting a retry, and the worker ends with exit status 5 (a refused write),
not failing every later trial in turn."""

from __future__ import annotations

import errno
import os

from optuna.trial import TrialState

from test_tune_records import _digests, _job, _journal, _tune  # tests/ is on sys.path


def _trials_refused(monkeypatch, trials, when=lambda: True):
    """os.access says `trials` is not writable and os.mkdir in it fails with EPERM (chattr +i) while `when()`."""
    real_access, real_mkdir = os.access, os.mkdir

    def access(path, mode, *args, **kwargs):
        if when() and os.path.abspath(path) == str(trials) and mode & os.W_OK:
            return False
        return real_access(path, mode, *args, **kwargs)

    def mkdir(path, *args, **kwargs):
        if when() and os.path.dirname(os.path.abspath(path)) == str(trials):
            raise OSError(errno.EPERM, os.strerror(errno.EPERM), path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(os, "mkdir", mkdir)


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
