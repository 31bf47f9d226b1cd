"""A job that ends by MPI Abort under mpiexec (an internal error: 1, a write failure: 5, SIGTERM before any
checkpoint: 143) leaves no MPICH shared-memory segment in /dev/shm: MPICH removes it only at Finalize, and each
such job left its 2 MiB file there for good. The ranks record the segments they map; those are gone once the job
ended (other jobs' segments on the machine are never looked at)."""

import os
import subprocess
import sys

import pytest

from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "shm_abort_driver.py")


@pytest.mark.parametrize("mode, status", [("error", 1), ("write", 5), ("stop", 143)])
def test_abort_leaves_no_segment(tmp_path, mode, status):
    record = tmp_path / "segments"
    r = subprocess.run(["timeout", "60", mpiexec(), "-n", "2", sys.executable, DRIVER, mode, str(record)],
                       capture_output=True, text=True, timeout=90, env=dict(os.environ, HPCFLOW_THREADS="1"))
    assert r.returncode == status, r.stdout + r.stderr
    assert "not aborted" not in r.stdout
    segments = set()
    for rank in (0, 1):
        segments.update((tmp_path / f"segments.{rank}").read_text().split())
    try:
        assert segments, "the ranks mapped no /dev/shm/mpich_shm_* segment"  # (so the check below checks something)
        assert not [path for path in segments if os.path.exists(path)]
    finally:
        for path in segments:
            try:
                os.unlink(path)
            except OSError:
                pass
