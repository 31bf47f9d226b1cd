"""The writability probe of --out (a file created and removed: `hpcflow.jobs.output.write_probe`) is made by rank 0
alone and its verdict given to the other ranks: every rank made one, which at thousands of ranks is a storm of
creations and removals in one directory for a parallel file system's metadata server. As many probe files at 2 ranks
as at 1."""

import os
import subprocess
import sys

from test_parallel import mpiexec
from test_slurm_script import JOB

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "probe_count_driver.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _probes(tmp_path, ranks, *args):
    """(probe files over all ranks, status) of `hpcflow run JOB --out tmp_path/OUT ARGS` at `ranks` ranks."""
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    env = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_THREADS="1", HPCFLOW_BACKEND="numpy")
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    r = subprocess.run(["timeout", "150", *launch, sys.executable, DRIVER, "run", str(job), *args], env=env,
                       capture_output=True, text=True, timeout=180, cwd=tmp_path)
    said = [s for s in r.stdout.splitlines() if s.startswith("probe files: ")]
    assert len(said) == 1, (r.returncode, r.stdout, r.stderr[-3000:])
    count, status = said[0].removeprefix("probe files: ").split(" status ")
    return int(count), int(status), r


def test_check_of_out_probes_once_at_two_ranks(tmp_path):
    count, status, r = _probes(tmp_path, 2, "--out", "runs/out", "--check")
    assert (count, status) == (1, 0), r.stderr[-3000:]
    assert not (tmp_path / "runs").exists()


def test_a_run_probes_as_often_at_two_ranks_as_at_one(tmp_path):
    one = _probes(tmp_path, 1, "--out", "one", "--quiet")
    two = _probes(tmp_path, 2, "--out", "two", "--quiet")
    assert one[1] == two[1] == 0, (one[2].stderr[-2000:], two[2].stderr[-2000:])
    assert one[0] >= 1 and two[0] == one[0], (one[0], two[0])
    assert not [n for n in os.listdir(tmp_path / "two") if n.startswith(".hpcflow-probe")]
