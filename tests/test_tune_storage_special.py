"""--storage naming a file that is neither a regular file nor a directory (a device, a FIFO): refused in one line
before any work, as a directory is; none is opened (a FIFO's open blocks until a writer comes, /dev/zero's reads
never end), so each command runs in a process of its own, with a timeout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_tune_records import _job  # tests/ is on sys.path (pytest's default mode)

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("storage, what", [("/dev/null", "a character device"), ("/dev/zero", "a character device"),
                                           ("null.journal", "a character device"),
                                           ("ff.journal", "a named pipe (FIFO)")])
def test_a_device_or_fifo_as_storage_is_refused_in_one_line_before_any_work(tmp_path, storage, what):
    job = _job(tmp_path)
    os.symlink("/dev/null", tmp_path / "null.journal")  # through a link too
    os.mkfifo(tmp_path / "ff.journal")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "tune", job.name, "--trials", "1", "--out", "o", "--storage",
                        storage], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, (r.returncode, r.stderr)
    assert f"--storage {storage} is {what}, not a regular file" in r.stderr, r.stderr
    assert "give a regular file path" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ff.journal", "null.journal", "tiny.toml"]  # no --out
