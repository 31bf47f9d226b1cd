"""`hpcflow tune` refuses, before any trial, a study directory whose best.toml or study.json may not be replaced
(chattr +i: not even root may rename over it): one line naming `chattr -i FILE`, exit 2, nothing on disk changed. A
plain read-only best.toml in a writable directory is replaced all the same and is not refused."""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess

import pytest

from hpcflow.cli import main
from test_tune_records import _digests, _journal  # tests/ is on sys.path (pytest's default import mode)
from test_tune_refusals import _refusal
from test_tune_refusals import study as one_trial_study

study = one_trial_study  # the fixture: a study of one finished trial of the tiny job


def _immutable_by_os_calls(monkeypatch, path, how, bit=0x10):
    """The file system's answers for an immutable `path`, as the kernel gives them: its inode flags (lsattr) holding
    FS_IMMUTABLE_FL, or (no flags readable) its open for writing refused with EPERM."""
    real_ioctl, real_open = fcntl.ioctl, os.open

    def ioctl(fd, request, arg=0, mutate=True):
        if how == "open":
            raise OSError(errno.ENOTTY, os.strerror(errno.ENOTTY))
        if os.path.samestat(os.fstat(fd), os.stat(path)) and not isinstance(arg, int):
            arg[0] = bit  # FS_IMMUTABLE_FL (chattr +i), FS_APPEND_FL (chattr +a)
            return 0
        return real_ioctl(fd, request, arg, mutate)

    def opened(p, flags, *args, **kw):
        if how == "open" and flags & (os.O_WRONLY | os.O_RDWR) and os.path.abspath(p) == os.path.abspath(path):
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), p)
        return real_open(p, flags, *args, **kw)

    monkeypatch.setattr(fcntl, "ioctl", ioctl)
    monkeypatch.setattr(os, "open", opened)


def _check_refused(capsys, tmp_path, job, out, name, letter="i"):
    path = out / name
    before = _digests(tmp_path)
    refused = _refusal(capsys, ["tune", job, "--trials", "1", "--out", out])
    assert refused.startswith(f"--out {out}: {path} cannot be replaced (Operation not permitted"), refused
    assert f"chattr -{letter} {path}, then run the same command" in refused, refused
    assert _digests(tmp_path) == before and len(_journal(out / "study.journal").trials) == 1
    assert sorted(os.listdir(out / "trials")) == ["0000"]


@pytest.mark.parametrize("name", ["best.toml", "study.json"])
@pytest.mark.parametrize("how", ["flags", "open"])
def test_an_immutable_file_the_worker_replaces_is_refused_before_any_trial(study, tmp_path, capsys, monkeypatch,
                                                                            name, how):
    """It was found only once the trial had run (exit 5), and the advice named permissions, not chattr -i."""
    job, out = study
    shutil.copytree(out, tmp_path / "s")
    out = tmp_path / "s"
    with monkeypatch.context() as m:
        _immutable_by_os_calls(m, out / name, how)
        _check_refused(capsys, tmp_path, job, out, name)
    # the real flag too, where this file system and this process can set it (root on ext4, xfs, ...)
    made = shutil.which("chattr") and subprocess.run(["chattr", "+i", str(out / name)],
                                                     capture_output=True).returncode == 0
    if made:
        try:
            _check_refused(capsys, tmp_path, job, out, name)
        finally:
            subprocess.run(["chattr", "-i", str(out / name)], check=True)


def test_a_read_only_best_toml_in_a_writable_directory_is_replaced(study, tmp_path, capsys):
    job, out = study
    shutil.copytree(out, tmp_path / "s")
    out = tmp_path / "s"
    os.chmod(out / "best.toml", 0o444)
    inode = os.stat(out / "best.toml").st_ino
    capsys.readouterr()
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert len(_journal(out / "study.journal").trials) == 2
    assert os.stat(out / "best.toml").st_ino != inode  # a new file renamed over it


def test_an_append_only_best_toml_is_refused_naming_chattr_minus_a(study, tmp_path, capsys, monkeypatch):
    """chattr +a forbids a rename over the file as +i does; its flag is cleared by chattr -a."""
    job, out = study
    shutil.copytree(out, tmp_path / "s")
    out = tmp_path / "s"
    with monkeypatch.context() as m:
        _immutable_by_os_calls(m, out / "best.toml", "flags", bit=0x20)
        _check_refused(capsys, tmp_path, job, out, "best.toml", letter="a")
