"""`hpcflow sample` under MPI: the memory check counts rank 0, which gathers all N points beside its own share,
against the node's memory shared by the ranks on it."""

import os
import shutil
import subprocess
import sys

from hpcflow.resources import SAMPLE_BASE_BYTES, estimate, point_bytes


def _cfg(n, dim=3):
    return {"sample": {"n": n, "dim": dim, "chart": None, "threads": 1}}


def test_sample_estimate_under_mpi_holds_rank_0s_gathered_set_and_its_share():
    n, pb = 10**6, point_bytes(3)
    one = estimate(_cfg(n), "sample", ranks=1).bytes
    for ranks in (2, 3, 8):
        est = estimate(_cfg(n), "sample", ranks=ranks).bytes
        # rank 0 holds the N rows received and the N unpacked from them, and the rows of its own share
        assert est >= SAMPLE_BASE_BYTES + 2 * n * pb + (n // ranks) * pb
        assert est > one  # more ranks raise rank 0's peak, never lower it
    assert estimate(_cfg(n), "sample", ranks=2).bytes > estimate(_cfg(n), "sample", ranks=3).bytes


def test_sample_under_mpiexec_is_refused_when_rank_0_does_not_fit_the_node(tmp_path):
    """3 ranks of a node of 1200 MiB: rank 0 alone peaks above 1.2 GB at 10^6 points (dim 3); refused, exit 2,
    nothing written, with advice that fits sampling (not more nodes)."""
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert mpiexec, "mpiexec not found: install the test extra (mpich wheel)"
    out = tmp_path / "b.h5"
    env = {**os.environ, "SLURM_MEM_PER_NODE": "1200"}
    env.pop("HPCFLOW_IGNORE_MEMORY_CHECK", None)
    r = subprocess.run([mpiexec, "-n", "3", sys.executable, "-m", "hpcflow", "sample", "--n", "1e6", "--out",
                        str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "ranks per node" in lines[0] and "--seed" in lines[0] and "more nodes" not in lines[0]
    assert not out.exists()
