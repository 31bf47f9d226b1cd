"""Jobs under mpiexec at 1, 2 and 3 ranks: only rank 0 writes, results equal the single-process run."""

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

JOB = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 150
n_test = 150
seed = 3
[kernel]
name = "gaussian"
form = "exp"
width = 0.0333333333333333
normalize = "row"
[flow]
dt = 1.0
steps = 4
loss = "ultralocal"
"""


def _mpiexec():
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    assert exe, "mpiexec not found: install the test extra (mpich wheel)"
    return exe


@pytest.mark.parametrize("ranks", [1, 2, 3])
def test_flow_job_under_mpiexec_writes_once_and_matches_serial(tmp_path, ranks):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    serial = tmp_path / "serial"
    r = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(serial)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = tmp_path / f"mpi{ranks}"
    r = subprocess.run([_mpiexec(), "-n", str(ranks), sys.executable, "-m", "hpcflow", "run", str(job),
                        "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(out)) == sorted(os.listdir(serial))  # no per-rank leftovers or temp files
    a, b = json.loads((serial / "summary.json").read_text()), json.loads((out / "summary.json").read_text())
    assert a["sigma_train_final"] == b["sigma_train_final"] and a["sigma_test_final"] == b["sigma_test_final"]
    with h5py.File(serial / "checkpoint.h5") as f, h5py.File(out / "checkpoint.h5") as g:
        np.testing.assert_array_equal(f["history/sigma_train"][()], g["history/sigma_train"][()])
