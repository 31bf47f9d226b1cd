"""A flow clustered by Birch that finds fewer clusters than [clustering].n_clusters says so in one line from rank 0
(the count found, the one asked for, the key that changes it) at 2 ranks, without scikit-learn's raw warning."""

import json
import os
import re
import subprocess
import sys

import h5py
import numpy as np

from jobtexts import GAUSSIAN_KERNEL, flow_points
from test_parallel import mpiexec

ASKED = 250
DOC = os.path.join(os.path.dirname(__file__), "..", "docs", "outputs.md")
JOB = flow_points(300, 100) + GAUSSIAN_KERNEL + f"""[flow]
dt = 1.0
steps = 1
loss = "ultralocal"
[clustering]
method = "birch"
n_clusters = {ASKED}
"""


def _subclusters(z) -> int:
    """Birch's subclusters (scikit-learn's default threshold) of the points' [Re, Im] features, each point scaled so
    that its largest-modulus coordinate is 1."""
    from sklearn.cluster import Birch

    zc = z / z[np.arange(len(z)), np.argmax(np.abs(z), axis=1)][:, None]
    return len(Birch(n_clusters=None).fit(np.concatenate([zc.real, zc.imag], axis=1)).subcluster_centers_)


def test_birch_finding_fewer_clusters_is_said_once_without_sklearn_warning(tmp_path):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    p = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out),
                        "--quiet"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, HPCFLOW_THREADS="1"))
    assert p.returncode == 0, p.stderr
    assert "Warning" not in p.stderr and "threshold" not in p.stderr, p.stderr
    with h5py.File(out / "checkpoint.h5", "r") as f:
        found = _subclusters(f["train/points"][()])
        owner, labels = f["cluster/owner"][()], f["cluster/labels"][()]
    assert found < ASKED and json.loads((out / "summary.json").read_text())["n_blocks"] == found
    # cluster/owner has one entry per cluster found, as docs/outputs.md gives its shape (not n_clusters)
    assert owner.shape == (found,) and labels.max() + 1 == found
    row = [ln for ln in open(DOC, encoding="utf-8") if ln.startswith("| `cluster/owner` |")]
    assert len(row) == 1 and "n_clusters" not in row[0].split("|")[2] and "found" in row[0], row
    lines = [line for line in p.stdout.splitlines() if f"of the {ASKED} clusters asked for" in line]
    assert len(lines) == 1 and re.search(rf"\bfound {found} of\b", lines[0]), p.stdout
    assert "[clustering].n_clusters" in lines[0], lines[0]
