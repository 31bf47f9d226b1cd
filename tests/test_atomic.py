"""Safe atomic writes: symlinks planted at the target or swapped in mid-write never redirect the write."""

import errno
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from hpcflow import atomic
from hpcflow.atomic import atomic_file
from hpcflow.errors import WriteFailed
from hpcflow.jobs.output import write_hdf5, write_json


def test_write_replaces_target_only_on_success(tmp_path):
    p = tmp_path / "a.json"
    p.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(p, "w") as fh:
            fh.write("new")
            raise RuntimeError("crash between writing and rename")
    assert p.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.json"]  # the temporary is gone
    with atomic_file(p, "w") as fh:
        fh.write("new")
    assert p.read_text() == "new"


def test_symlink_planted_at_target_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").symlink_to(victim)
    write_json(out / "summary.json", {"x": 1})
    assert victim.read_text() == "precious"
    assert not (out / "summary.json").is_symlink()
    assert (out / "summary.json").read_text().strip().startswith("{")


def test_symlink_swapped_in_at_temporary_name_is_refused(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    fixed = str(tmp_path / ".c.h5.tmp-fixed")
    os.symlink(victim, fixed)  # an attacker guessed (here: forced) the temporary name
    monkeypatch.setattr(atomic, "_tmp_name", lambda path: fixed)
    with pytest.raises(FileExistsError):
        write_hdf5(tmp_path / "c.h5", {"x": np.arange(3)})
    assert victim.read_text() == "precious"


def test_hdf5_written_through_descriptor_survives_rename_swap(tmp_path, monkeypatch):
    """The HDF5 writer never reopens the temporary by name: swapping a symlink in mid-write changes nothing."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    real_file = h5py.File

    def swapping_file(fh, mode, **kw):
        f = real_file(fh, mode, **kw)
        tmp = fh.name if isinstance(fh.name, str) else None
        for name in os.listdir(tmp_path):  # replace the temporary's name by a link to the victim
            if ".tmp-" in name:
                os.replace(tmp_path / name, tmp_path / "moved")
                os.symlink(victim, tmp_path / name)
        del tmp
        return f

    monkeypatch.setattr(h5py, "File", swapping_file)
    try:
        write_hdf5(tmp_path / "c.h5", {"x": np.arange(3.0)})
    except OSError:
        pass
    monkeypatch.undo()
    assert victim.read_text() == "precious"


#: a process whose files may not grow beyond 1000 bytes (RLIMIT_FSIZE, SIGXFSZ ignored: EFBIG, as ENOSPC on a full
#: disk) replaces argv[1]'s JSON or HDF5 file by a larger one; it prints the OSError's errno, file and exit status
LIMITED_WRITE = """
import resource, signal, sys
import numpy as np
from hpcflow.jobs.output import write_hdf5, write_json
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))
try:
    if sys.argv[1].endswith(".h5"):
        write_hdf5(sys.argv[1], {"x": np.arange(1000.0)})
    else:
        write_json(sys.argv[1], {"x": list(range(1000))})
except OSError as exc:
    print(exc.errno, exc.filename, getattr(exc, "exit_status", None))
"""


@pytest.mark.parametrize("name", ["summary.json", "nn.h5"])
def test_a_write_the_file_system_refuses_names_the_file_and_keeps_the_old_one_whole(tmp_path, name):
    """EFBIG in mid-write: an OSError of that errno naming the file, exit status 5 at the CLI; the old file as it
    was and no temporary beside it."""
    target = tmp_path / name
    target.write_bytes(b"the earlier run's file")
    r = subprocess.run([sys.executable, "-c", LIMITED_WRITE, str(target)], capture_output=True, text=True,
                       timeout=60)
    assert r.stdout.split() == [str(errno.EFBIG), str(target), "5"], r.stdout + r.stderr
    assert target.read_bytes() == b"the earlier run's file"
    assert os.listdir(tmp_path) == [name]


class _ReadOnly:
    """The file object of an atomic write on a file system remounted read-only mid-run: every write raises EROFS."""

    def __init__(self, fh):
        self._fh = fh

    def write(self, data):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    def __getattr__(self, name):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._fh.__exit__(*exc)


def _read_only(monkeypatch):
    """Let atomic_file's writes fail with EROFS from now on (its temporary is still created)."""
    fdopen = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, *a, **kw: _ReadOnly(fdopen(fd, *a, **kw)))


@pytest.mark.parametrize("name", ["summary.json", "nn.h5"])
def test_a_file_system_turned_read_only_is_a_write_failure_naming_the_file(tmp_path, monkeypatch, name):
    """EROFS in mid-write is refused as EFBIG is: WriteFailed of that errno naming the file, exit status 5, a fix
    that keeps --out (--resume continues there), the old file as it was and no temporary beside it."""
    target = tmp_path / name
    target.write_bytes(b"the earlier run's file")
    _read_only(monkeypatch)
    with pytest.raises(WriteFailed) as exc:
        if name.endswith(".h5"):
            write_hdf5(target, {"x": np.arange(1000.0)})
        else:
            write_json(target, {"x": list(range(1000))})
    monkeypatch.undo()
    err = exc.value
    assert (err.errno, err.filename, err.exit_status) == (errno.EROFS, str(target), 5)
    assert str(err) == (f"cannot write {target} ({os.strerror(errno.EROFS)}); ask the administrators to make its "
                        "file system writable again, then run it again")
    assert target.read_bytes() == b"the earlier run's file"
    assert os.listdir(tmp_path) == [name]


def test_the_cli_ends_a_write_on_a_read_only_file_system_with_5_in_one_line(tmp_path, monkeypatch, capsys):
    """`hpcflow sample` whose output file the file system refuses (EROFS): status 5 and one line, no traceback."""
    from hpcflow.cli import main

    out = tmp_path / "points.h5"
    _read_only(monkeypatch)
    status = main(["sample", "--n", "10", "--seed", "0", "--quiet", "--out", str(out)])
    monkeypatch.undo()
    lines = capsys.readouterr().err.splitlines()
    assert status == 5 and len(lines) == 1 and f"cannot write {out} ({os.strerror(errno.EROFS)})" in lines[0], lines
    assert os.listdir(tmp_path) == []
