"""Memory that runs out mid-run (a MemoryError, a thread that cannot start: what a tight `ulimit -v` gave past the
memory check) ends the run in one line with exit status 5, a limit outside the program as for a refused write, at
one rank and under mpiexec, and leaves no lock file; before, a traceback and exit status 1."""

import os
import subprocess
import sys

import pytest

from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "memory_out_driver.py")
JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "quickstart.toml")
ENV = dict(os.environ, HPCFLOW_THREADS="1")


@pytest.mark.parametrize("ranks", [1, 2])
@pytest.mark.parametrize("kind", ["memory", "thread"])
def test_memory_that_runs_out_mid_run_ends_in_one_line_with_status_5(tmp_path, kind, ranks):
    out = tmp_path / "out"
    cmd = [sys.executable, DRIVER, kind, "run", JOB, "--out", str(out), "--set", "flow.steps=3"]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    assert r.returncode == 5, (r.returncode, r.stderr[-3000:])
    assert "Traceback" not in r.stderr, r.stderr
    said = [line for line in r.stderr.splitlines() if "out of memory mid-run" in line]
    assert said and all("ulimit -v" in line for line in said), r.stderr
    assert len(said) <= ranks, r.stderr  # one line (at R > 1 one a rank, each tagged with it)
    assert not out.exists()  # the lock file and the directory it created are gone
