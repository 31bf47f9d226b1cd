"""`hpcflow sample` under mpiexec: the write probes of --out (its check, then the save's) are made by rank 0 alone,
their verdicts given to the other ranks, so 2 ranks make as many probe files as 1 (every rank made its own)."""

import os
import subprocess
import sys

from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "probe_count_driver.py")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _probes(tmp_path, ranks):
    env = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_THREADS="1", HPCFLOW_BACKEND="numpy")
    out = f"s{ranks}.h5"
    r = subprocess.run(["timeout", "150", mpiexec(), "-n", str(ranks), sys.executable, DRIVER, "sample", "--n",
                        "500", "--out", out, "--quiet"], env=env, capture_output=True, text=True, timeout=180,
                       cwd=tmp_path)
    said = [s for s in r.stdout.splitlines() if s.startswith("probe files: ")]
    assert len(said) == 1, (r.returncode, r.stdout, r.stderr[-3000:])
    count, status = said[0].removeprefix("probe files: ").split(" status ")
    assert int(status) == 0 and (tmp_path / out).is_file(), r.stderr[-3000:]
    return int(count)


def test_sample_probes_as_often_at_two_ranks_as_at_one(tmp_path):
    one, two = _probes(tmp_path, 1), _probes(tmp_path, 2)
    assert one >= 1 and two == one, (one, two)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".hpcflow-probe")]
