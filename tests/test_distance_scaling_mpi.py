"""Distance scaling: the single-chart option, and the job under mpiexec giving the serial output bit for bit."""

import json
import os
import subprocess
import sys

import pytest

from h5data import datasets
from hpcflow.errors import ConfigError
from hpcflow.jobs import registry
from test_parallel import mpiexec  # tests/ is on sys.path (pytest's default import mode)

JOB = """
[job]
kind = "distance_scaling"
[geometry]
{chart}
[scaling]
n_points = [60, 700]
method = "{method}"
"""


def _job(chart: str, method: str) -> str:
    """JOB with 200 queried points where the method takes them (brute; tree queries every point)."""
    return JOB.format(chart=chart, method=method) + ("queries = 200\n" if method == "brute" else "")


def run_job(tmp_path, name, text, ranks):
    job = tmp_path / f"{name}.toml"
    job.write_text(text)
    launcher = ["timeout", "100", mpiexec(), "-n", str(ranks)]
    r = subprocess.run(launcher + [sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(tmp_path / name)],
                       capture_output=True, text=True, timeout=120, env=dict(os.environ, HPCFLOW_THREADS="1"))
    assert r.returncode == 0, r.stderr
    return datasets(tmp_path / name / "distances.h5"), json.loads((tmp_path / name / "summary.json").read_text())


@pytest.mark.parametrize("method,ranks", [("brute", 2), ("brute", 3), ("tree", 2)])
def test_distance_scaling_under_mpiexec_equals_serial(tmp_path, method, ranks):
    from hpcflow.experiments import distance_scaling

    text = _job("chart = [1, 3]", method)
    (tmp_path / "serial").mkdir()
    one = distance_scaling.run(registry.load(_write(tmp_path, text))[1], str(tmp_path / "serial"))
    serial = datasets(tmp_path / "serial" / "distances.h5")
    dist, summary = run_job(tmp_path, f"mpi{ranks}", text, ranks)
    assert serial.keys() == dist.keys() and "table/mean" in serial
    for k in serial:
        assert serial[k].tobytes() == dist[k].tobytes(), k
    # the ranks together sample the blocks of lines one rank samples (each block once), not a block each per N
    blocks = [p["sampled_blocks"] for p in summary["per_rank"]]
    assert len(blocks) == ranks and sum(blocks) == one["per_rank"][0]["sampled_blocks"], blocks


def test_single_chart_points_are_denser(tmp_path):
    """At equal N, one chart (~1/20 of the volume of the quintic) holds ~20x the density: distances shrink
    towards 20^(-1/6) = 0.61 of the all-chart ones in 6 real dimensions (less at small N: chart boundaries)."""
    from hpcflow.experiments import distance_scaling

    means = {}
    for chart in (None, [0, 1]):
        text = _job("" if chart is None else f"chart = {chart}", "brute").replace("[60, 700]", "[1500, 1600]")
        cfg = registry.load(_write(tmp_path, text))[1]
        means[str(chart)] = distance_scaling.run(cfg, str(tmp_path))["table"][0]["mean"]
    ratio = means["[0, 1]"] / means["None"]
    assert 0.95 * 20 ** (-1 / 6) < ratio < 0.9


def test_chart_outside_projective_space_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\[geometry\].chart"):
        registry.load(_write(tmp_path, _job("chart = [0, 5]", "brute")))


def _write(tmp_path, text):
    p = tmp_path / "job.toml"
    p.write_text(text)
    return p
