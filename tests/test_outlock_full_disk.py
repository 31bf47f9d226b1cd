"""A full disk when a command takes its --out lock (the lock file's record cannot be written) ends the command with
exit status 5 and one line naming the lock file and the fix, no traceback, nothing on disk changed: hpcflow run and
hpcflow tune alike (every command takes the lock through hpcflow.jobs.outlock)."""

from __future__ import annotations

import errno
import os

import pytest

from hpcflow.cli import main
from hpcflow.jobs import outlock
from test_tune_records import JOB, _digests

RUN_JOB = JOB.split("[tune]")[0]


def _disk_full_once(monkeypatch):
    """The next os.pwrite (the lock's record) is refused: no space left on the device."""
    real, calls = os.pwrite, []

    def pwrite(fd, data, offset):
        calls.append(data)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    return calls


def _one_line(capsys, verb: str, path) -> None:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"hpcflow {verb}: error: cannot write {path}"), err
    assert "No space left on device" in err and "free space" in err, err
    if verb == "tune":
        assert "run the same command" in err, err


def test_a_run_whose_lock_cannot_be_written_ends_with_status_5_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    job, out = tmp_path / "flow.toml", tmp_path / "new" / "out"
    job.write_text(RUN_JOB)
    _disk_full_once(monkeypatch)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 5
    _one_line(capsys, "run", out / outlock.LOCK_NAME)
    assert not (tmp_path / "new").exists()  # the directories the lock created, and its file, are gone


def test_a_study_whose_lock_cannot_be_written_ends_with_status_5_and_keeps_its_files(tmp_path, capsys, monkeypatch):
    job, out = tmp_path / "tiny.toml", tmp_path / "s"
    job.write_text(JOB)
    assert main(["tune", str(job), "--trials", "1", "--out", str(out), "--quiet"]) == 0
    before = _digests(out)
    capsys.readouterr()
    _disk_full_once(monkeypatch)
    assert main(["tune", str(job), "--trials", "2", "--out", str(out), "--quiet"]) == 5
    _one_line(capsys, "tune", out / outlock.LOCK_NAME)
    assert _digests(out) == before and not (out / outlock.LOCK_NAME).exists()


@pytest.mark.parametrize("shared", [False, True])
def test_a_killed_runs_record_in_the_lock_file_is_kept_when_the_new_one_cannot_be_written(tmp_path, monkeypatch,
                                                                                        shared):
    """The lock file left by a killed run (its record tells that run's end) holds that record still."""
    from hpcflow.errors import WriteFailed

    out = tmp_path / "out"
    out.mkdir()
    old = b'{"command": "hpcflow run", "pid": 1, "host": "h", "slurm_job": null, "since": "t", "own_job": false}\n'
    (out / outlock.LOCK_NAME).write_bytes(old)
    _disk_full_once(monkeypatch)
    with pytest.raises(WriteFailed, match="run the same command") as caught:
        outlock.acquire(out, command="hpcflow report", shared=shared, keep=True)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(out / outlock.LOCK_NAME)
    assert (out / outlock.LOCK_NAME).read_bytes() == old
    outlock.acquire(out, command="hpcflow run").release()  # no lock is left held


def _refused(monkeypatch, name: str, path, code: int) -> None:
    """os.`name` (mkdir or open) refuses `path` with errno `code`; every other path goes on as before."""
    real = getattr(os, name)

    def refuse(target, *args, **kwargs):
        if os.path.abspath(target) == os.path.abspath(path):
            raise OSError(code, os.strerror(code), str(target))
        return real(target, *args, **kwargs)

    monkeypatch.setattr(os, name, refuse)


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES, errno.EPERM])
def test_a_run_whose_out_cannot_be_created_on_a_read_only_file_system_asks_for_a_writable_path(
        tmp_path, capsys, monkeypatch, code):
    """Not a full disk: the --out path is one to choose again (exit status 2), as README says of an unwritable one."""
    job, out = tmp_path / "flow.toml", tmp_path / "out"
    job.write_text(RUN_JOB)
    _refused(monkeypatch, "mkdir", out, code)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"hpcflow run: error: cannot create --out {out} ({os.strerror(code)}); choose a writable " \
                          "path", err
    assert not out.exists()


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_a_lock_file_that_cannot_be_created_on_a_read_only_file_system_asks_for_another_out(
        tmp_path, capsys, monkeypatch, code):
    job, out = tmp_path / "flow.toml", tmp_path / "out"
    job.write_text(RUN_JOB)
    out.mkdir()
    _refused(monkeypatch, "open", out / outlock.LOCK_NAME, code)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.strip().startswith(f"hpcflow run: error: --out {out}: cannot open its lock file") and \
        os.strerror(code) in err and "choose another --out" in err and len(err.strip().splitlines()) == 1, err
    assert os.listdir(out) == []


@pytest.mark.parametrize("code", [errno.EDQUOT, errno.EIO])
def test_a_lock_file_that_a_quota_or_io_error_refuses_ends_with_status_5(tmp_path, capsys, monkeypatch, code):
    job, out = tmp_path / "flow.toml", tmp_path / "out"
    job.write_text(RUN_JOB)
    out.mkdir()
    _refused(monkeypatch, "open", out / outlock.LOCK_NAME, code)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 5
    err = capsys.readouterr().err
    assert err.startswith(f"hpcflow run: error: cannot write {out / outlock.LOCK_NAME} ({os.strerror(code)})"), err
