"""The `--check` memory estimate against the measured peak RSS of real flow runs (fresh processes)."""

import json
import os
import subprocess
import sys

import pytest

from hpcflow.jobs import registry
from hpcflow.resources import estimate

JOBS = os.path.join(os.path.dirname(__file__), "..", "jobs")


@pytest.mark.parametrize("sets", [[], ["kernel.engine=\"numpy\""]], ids=["compiled", "numpy"])
def test_gaussian_flow_estimate_bounds_its_peak_rss(tmp_path, sets):
    """The quickstart's peak RSS (summary.json, per rank) lies below the estimate and within 2x of it, with the
    compiled Gaussian tile (Numba and LLVM resident: ~125 MB more) and with the NumPy passes."""
    job = os.path.join(JOBS, "quickstart.toml")
    sets = sets + ["flow.steps=3"]
    args = [a for s in sets for a in ("--set", s)]
    r = subprocess.run([sys.executable, "-m", "hpcflow", "run", job, "--out", str(tmp_path / "run"), *args],
                       capture_output=True, text=True, timeout=300, env=dict(os.environ, HPCFLOW_THREADS="1"))
    assert r.returncode == 0, r.stderr
    peak = json.loads((tmp_path / "run" / "summary.json").read_text())["per_rank"][0]["peak_rss_bytes"]
    _, cfg = registry.load(job, sets)
    est = estimate(cfg).bytes
    assert peak <= est <= 2 * peak, (peak, est)
