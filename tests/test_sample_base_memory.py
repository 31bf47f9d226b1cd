"""The interpreter part of the sampler's memory model (`resources.SAMPLE_BASE_BYTES`) bounds what `hpcflow sample`
holds resident when its sampling starts (VmRSS: NumPy, h5py, the command's checks, MPI's under mpiexec), so that the
count a memory refusal states leaves the sampling the room the model gives it."""

import os
import subprocess
import sys

import pytest

from hpcflow.resources import SAMPLE_BASE_BYTES
from test_parallel import mpiexec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: `hpcflow sample` with the resident bytes of each rank, as its sampling starts, written to resident.PID
DRIVER = """
import os, sys
import hpcflow.geometry.sampling as sampling

def rss():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmRSS:"))

checked = sampling.sample_checked

def measured(*args, **kw):
    with open(f"resident.{os.getpid()}", "w") as fh:
        fh.write(str(rss()))
    return checked(*args, **kw)

sampling.sample_checked = measured
from hpcflow.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("ranks", [1, 2])
def test_the_base_bounds_what_hpcflow_sample_holds_when_its_sampling_starts(tmp_path, ranks):
    cmd = [sys.executable, "-c", DRIVER, "sample", "--n", "10", "--out", str(tmp_path / "p.h5"), "--quiet"]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    env = dict(os.environ, PYTHONPATH=ROOT, HPCFLOW_THREADS="1")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    said = [int((tmp_path / name).read_text()) for name in os.listdir(tmp_path) if name.startswith("resident.")]
    assert len(said) == ranks, os.listdir(tmp_path)
    assert max(said) <= SAMPLE_BASE_BYTES, [b / 2**20 for b in said]
