"""The writability probe of an existing storage file (`file_refusal`) opens and closes it, and closing any descriptor
of a file releases every POSIX lock this process holds on it (SQLite's own locks too): where this process holds a lock
on the file, no probe is made and its locks stay; a file it holds no lock on is probed as before."""

import errno
import fcntl
import os
import subprocess
import sys


def _locked_by_another(path) -> bool:
    """Whether another process is refused a write lock of `path` (one this process holds)."""
    code = ("import fcntl, sys\nf = open(sys.argv[1], 'r+')\ntry:\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
            "except OSError:\n    sys.exit(7)\nsys.exit(0)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], timeout=60).returncode == 7


def test_the_probe_of_a_file_held_here_keeps_its_locks(tmp_path):
    from hpcflow.tune.storage import file_refusal

    db = tmp_path / "study.db"
    db.write_bytes(b"x" * 16)
    with open(db, "r+") as held:
        fcntl.lockf(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert _locked_by_another(db)
        assert file_refusal(str(db)) is None
        assert _locked_by_another(db)  # (the probe's close released it)
    assert not _locked_by_another(db)


def test_a_file_not_locked_here_is_still_probed(tmp_path, monkeypatch):
    from hpcflow.tune.storage import file_refusal

    db = tmp_path / "study.db"
    db.write_bytes(b"x")
    real_open = os.open

    def refused(path, flags, *args, **kwargs):
        if os.fspath(path) == str(db) and flags & os.O_WRONLY:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    assert file_refusal(str(db)).errno == errno.EROFS
    assert db.read_bytes() == b"x"
