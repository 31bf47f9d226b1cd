"""An SQLite --storage URL whose database file is a FIFO or a device: refused in one line (exit 2) before any work by
`hpcflow tune` and by `hpcflow submit --command tune` (--check too), never opened (SQLite's open of a FIFO blocks
until a writer comes; /dev/null failed at the first write with a disk I/O error), so each command runs in a process
of its own, with a timeout."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from test_submit import JOB, ROOT

TUNE_JOB = JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n'


def _hpcflow(cwd, *argv):
    return subprocess.run([sys.executable, "-m", "hpcflow", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
                                               OPENBLAS_NUM_THREADS="1"), stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("storage, db, what", [("sqlite:///f.db", "f.db", "a named pipe (FIFO)"),
                                               ("sqlite:////dev/null", "/dev/null", "a character device"),
                                               ("sqlite:///null.db", "null.db", "a character device")])
@pytest.mark.parametrize("command", ["tune", "submit", "submit --check"])
def test_an_sqlite_database_file_that_is_not_a_regular_file_is_refused_in_one_line(tmp_path, storage, db, what,
                                                                                    command):
    (tmp_path / "tiny.toml").write_text(TUNE_JOB)
    os.mkfifo(tmp_path / "f.db")
    os.symlink("/dev/null", tmp_path / "null.db")  # through a link too
    argv = ["tiny.toml", "--trials", "1", "--out", "o_t", "--storage", storage]
    if command.startswith("submit"):
        argv = ["submit", *argv, "--executor", "local", "--command", "tune", *command.split()[1:]]
    else:
        argv = ["tune", *argv]
    r = _hpcflow(tmp_path, *argv)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and r.stdout == "", (r.returncode, r.stdout + r.stderr)
    assert r.stderr.startswith(f"hpcflow {argv[0]}: error: --storage {storage}: database file {db} is {what}, "
                               "not a regular file"), r.stderr
    assert "give a regular file path" in r.stderr and "--storage sqlite:///" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.db", "null.db", "tiny.toml"]  # nothing queued or made
