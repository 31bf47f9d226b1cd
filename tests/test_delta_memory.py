"""Memory of the unclustered Delta-kernel flow per rank: the estimate (`hpcflow.resources`) has no term of size
n_train, only of a rank's share, and bounds the peak RSS each rank of a 2-rank job measures, not loosely."""

import json
import os
import subprocess
import sys

from hpcflow.resources import estimate
from test_parallel import mpiexec

JOB = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = {n}
n_test = 10000
seed = 0
[kernel]
name = "delta"
[flow]
dt = {dt}
steps = 3
loss = "ultralocal"
"""


def _cfg(n_train, n_test=100_000):
    return {"job": {"kind": "flow"}, "geometry": {"n_train": n_train, "n_test": n_test, "dim": 3},
            "kernel": {"name": "delta"}, "flow": {"steps": 50}, "clustering": {"method": None}}


def test_estimate_per_rank_depends_on_the_share_not_on_n_train():
    one = estimate(_cfg(10**7), ranks=2)
    assert estimate(_cfg(2 * 10**7 + 10**5), ranks=4).bytes == one.bytes  # the same share per rank
    assert estimate(_cfg(10**7 - 10**5), ranks=1).bytes == estimate(_cfg(2 * 10**7 - 10**5), ranks=2).bytes
    assert one.bytes < 0.55 * estimate(_cfg(2 * 10**7), ranks=2).bytes


def test_estimate_bounds_the_peak_rss_of_every_rank(tmp_path):
    """Each rank's peak RSS (summary per_rank) is below the estimate, which is within 3x of it; the growth from
    10^5 to 3*10^5 train points (where each rank's points and flow state dominate) follows the estimate's growth."""
    env = dict(os.environ, HPCFLOW_THREADS="1")
    res = {}
    for n in (100_000, 300_000):
        job = tmp_path / f"delta{n}.toml"
        job.write_text(JOB.format(n=n, dt=6.5e-3 * n))
        out = tmp_path / f"out{n}"
        cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out)]
        r = subprocess.run(["timeout", "150", *cmd], capture_output=True, text=True, timeout=180, env=env)
        assert r.returncode == 0, r.stderr
        peaks = [p["peak_rss_bytes"] for p in json.loads((out / "summary.json").read_text())["per_rank"]]
        res[n] = (estimate(_cfg(n, 10_000), ranks=2).bytes, max(peaks))
    for est, peak in res.values():
        assert peak <= est <= 3 * peak
    # growth with the share: within 1.25x of the estimate's (allocator granularity); the gather-everything path
    # grew ~1.5x as fast (1.78 against 1.13 GB per rank at 10^6 + 10^5 points)
    assert res[300_000][1] - res[100_000][1] <= 1.25 * (res[300_000][0] - res[100_000][0])
