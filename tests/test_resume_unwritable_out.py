"""--resume of a run whose --out cannot be written (a read-only mount, or its permissions): the resume continues the
run in that directory, so the line says to make it writable or to copy the run elsewhere and resume the copy, not
to choose another --out (a new run's fix, which a resume cannot follow). Simulated: root writes through permissions,
and a read-only mount needs privileges CI may lack."""

import errno
import os
import shutil

import pytest

from hpcflow.cli import main
from hpcflow.errors import OutputPathError
from hpcflow.jobs import output
from jobtexts import DELTA_FLOW, flow_points

FLOW = flow_points(60, 20) + DELTA_FLOW


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    base = tmp_path_factory.mktemp("finished")
    job, out = base / "flow.toml", base / "out"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 0
    return job, out


def _unwritable(monkeypatch, path, *, read_only: bool):
    """This process may not write into directory `path`: a file created there fails (EACCES, EROFS with
    `read_only`), and with `read_only` os.statvfs says its file system is mounted read-only (as `mount -o
    remount,ro,bind` makes it)."""
    real = os.path.realpath(path)
    real_open, statvfs = os.open, os.statvfs
    code = errno.EROFS if read_only else errno.EACCES

    def no_write(p, flags, *args, **kwargs):
        if flags & os.O_CREAT and os.path.realpath(os.path.dirname(os.path.abspath(p))) == real:
            raise OSError(code, os.strerror(code), p)
        return real_open(p, flags, *args, **kwargs)

    class ReadOnly:
        def __init__(self, st):
            self._st = st

        def __getattr__(self, name):
            return getattr(self._st, name)

        @property
        def f_flag(self):
            return self._st.f_flag | os.ST_RDONLY

    monkeypatch.setattr(os, "open", no_write)
    if read_only:
        monkeypatch.setattr(os, "statvfs", lambda p: ReadOnly(statvfs(p)) if os.path.realpath(p) == real
                            else statvfs(p))


@pytest.mark.parametrize("read_only", [True, False])
def test_resume_of_an_unwritable_out_says_to_make_it_writable(finished, tmp_path, capsys, monkeypatch, read_only):
    job, run = finished
    out = tmp_path / "run"
    shutil.copytree(run, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _unwritable(monkeypatch, out, read_only=read_only)
    why = "lies on a read-only file system" if read_only else "is not writable"
    fix = "made writable again" if read_only else "make it writable"
    for check in ([], ["--check"]):
        assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=5", "--quiet", *check]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--out {out} {why}" in err and fix in err, err
        assert "copy the directory to a writable place and resume the copy" in err, err
        assert "choose another --out" not in err, err
    assert main(["run", str(job), "--out", str(out), "--force", "--quiet"]) == 2  # a new run: another --out
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out} {why}; choose another --out" in err, err
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_writable_dir_names_the_fix_of_a_resume(tmp_path, monkeypatch):
    _unwritable(monkeypatch, tmp_path, read_only=False)
    with pytest.raises(OutputPathError, match="is not writable; choose another --out$"):
        output.writable_dir(str(tmp_path))
    with pytest.raises(OutputPathError, match=r"--resume continues the run in that directory; make it writable"):
        output.writable_dir(str(tmp_path), resume=True)
