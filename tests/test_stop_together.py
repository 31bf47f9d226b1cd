"""A stop request that every rank receives at once (SIGTERM before any checkpoint: exit 143) ends the job without
an MPI Abort: each rank leaves with 143 after MPI's Finalize, so MPICH's Hydra removes its
/tmp/hydra_hwloc_xmlfile_* (an Abort left that 5.5 KB file behind for good, as it does MPICH's /dev/shm segment).
A rank that stops alone still aborts the job (tests/test_abort_shm.py)."""

import os
import subprocess
import sys

from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "stop_together_driver.py")


def test_stop_on_every_rank_leaves_nothing(tmp_path):
    record = tmp_path / "held"
    r = subprocess.run(["timeout", "60", mpiexec(), "-n", "2", sys.executable, DRIVER, str(record)],
                       capture_output=True, text=True, timeout=90, env=dict(os.environ, HPCFLOW_THREADS="1"))
    held = set()
    for rank in (0, 1):
        held.update((tmp_path / f"held.{rank}").read_text().split())
    try:
        assert r.returncode == 143, r.stdout + r.stderr
        assert "not stopped" not in r.stdout
        said = [line for line in r.stderr.splitlines() if line.startswith("stop_together_driver")]
        assert said == ["stop_together_driver: stopped by SIGTERM"], r.stderr  # once, by rank 0
        assert "Abort" not in r.stderr, r.stderr
        assert any("hydra_hwloc_xmlfile_" in p for p in held), held  # (so the check below checks something)
        assert any("mpich_shm_" in p for p in held), held
        assert not [p for p in held if os.path.exists(p)]
    finally:
        for path in held:
            try:
                os.unlink(path)
            except OSError:
                pass
