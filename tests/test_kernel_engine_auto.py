"""A Gaussian kernel's engine "auto" in a job: Numba's compiled loop only where the run's kernel entries repay its start
in a fresh process (`hpcflow.kernels.jit.AUTO_NUMBA_ENTRIES`), NumPy's passes below (the quickstart spent ~0.45 s
more in its kernel sums with the loop than without, at any number of steps: Numba's import and cache load). The
choice is the whole run's, the same for the run and its estimate, at any rank count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcflow.experiments.flow_job import check_kernel
from hpcflow.jobs import registry
from hpcflow.resources import JIT_BYTES, estimate

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "jobs" / "quickstart.toml"
#: unclustered, 6000 train and test points: neither operator (the train one's 1.95e7 tile-pair entries, the test
#: one's 3.6e7) fits its half of the flow's 256 MiB kept, so both are evaluated every step: 2 steps, 1.1e8 entries
STREAMED = ["clustering.method=none", "geometry.n_train=6000", "geometry.n_test=6000", "flow.steps=2"]


def test_engine_for_takes_numpy_below_the_threshold_only_for_auto():
    from hpcflow.kernels.jit import AUTO_NUMBA_ENTRIES, engine_for

    assert engine_for(AUTO_NUMBA_ENTRIES / 2) == "numpy" and engine_for(AUTO_NUMBA_ENTRIES / 2, None) == "numpy"
    assert engine_for(AUTO_NUMBA_ENTRIES) == "auto" and engine_for(None) == "auto"  # unknown: the loop
    for given in ("numba", "numpy"):  # a job's own choice stands
        assert engine_for(0.0, given) == given and engine_for(1e12, given) == given


def _cfg(sets=(), job=QUICKSTART):
    return registry.load(job, list(sets), memory_check=False)[1]


def test_the_whole_flows_entries_are_counted_at_one_rank():
    """Unclustered 6000 + 6000 points, 2 steps: the train operator's tile pairs ((n^2 + 512 n) / 2: the diagonal
    tiles whole) and the test rows' n^2 entries, every step; the same whatever ranks run it. A noise scan: its levels'
    flows together."""
    from hpcflow.resources import kernel_entries

    n = 6000
    assert kernel_entries(_cfg(STREAMED)) == pytest.approx(2 * ((n * n + 512 * n) / 2 + n * n))
    scan = _cfg(job=ROOT / "jobs" / "noise_scan_gaussian.toml")  # a level: n_train train and as many test points
    one = _cfg(["clustering.method=none", f"geometry.n_train={scan['geometry']['n_train']}",
                f"geometry.n_test={scan['geometry']['n_train']}", f"flow.steps={scan['flow']['steps']}"])
    assert kernel_entries(scan) == pytest.approx(len(scan["noise"]["scales"]) * kernel_entries(one))


@pytest.mark.parametrize("sets, compiled", [([], False), (["kernel.engine=numba"], True), (STREAMED, True),
                                            ([*STREAMED, "kernel.engine=numpy"], False)])
def test_the_run_and_its_estimate_take_the_same_engine(sets, compiled):
    from hpcflow.resources import kernel_entries

    cfg = _cfg(sets)
    kernel = check_kernel(dict(cfg["kernel"]), "job", kernel_entries(cfg))
    assert kernel.engine == ("numba" if compiled else "numpy"), (sets, kernel.engine)
    est = estimate(cfg)
    assert est.parts.get("compiled kernel") == (JIT_BYTES if compiled else None), est.parts


def test_the_quickstart_runs_on_numpys_passes_without_importing_numba(tmp_path):
    """Its ~10^6 kernel entries are formed once and kept: the loop would save ~10 ms of the ~0.45 s its start costs."""
    code = ("import sys\nfrom hpcflow.cli import main\n"
            f"status = main(['run', {str(QUICKSTART)!r}, '--out', {str(tmp_path / 'out')!r}, '--set', 'flow.steps=2'])\n"
            "print('numba' in sys.modules)\nsys.exit(status)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_THREADS="1", HPCFLOW_QUIET="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False", r.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["kernel_params"]["engine"] == "numpy"
    assert summary["per_rank"][0]["kernel_entries"] < 5e7  # (AUTO_NUMBA_ENTRIES)
