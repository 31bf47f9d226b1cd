"""The seconds of one flow step: said by `hpcflow run --check`, and `hpcflow submit` warns (without refusing) where
one step is estimated to outlast --signal-delay (a flow stops, with its checkpoint, only at a step's end)."""

import re

import pytest

from hpcflow.cli import main
from hpcflow.jobs import registry
from hpcflow.resources import SECONDS_PER_KERNEL_ENTRY, estimate

JOB = "jobs/quickstart.toml"
# 2*10^5 unclustered train points with NumPy's kernel passes: nothing fits the cache, every step evaluates them all
LARGE = ["clustering.method=none", "geometry.n_train=200000", "geometry.n_test=1000", "kernel.engine=numpy",
         "flow.steps=20"]


def _step(said: str) -> float:
    return float(re.search(r"about (\S+) s per flow step", said).group(1))


def test_check_says_the_seconds_of_one_step(tmp_path, capsys, monkeypatch):
    """Unclustered and streamed, the run's kernel entries (the whole run's, evaluated every step) fall evenly on
    its steps at NumPy's rate per entry: one step is the run's entries over its steps at that rate."""
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    argv = [x for s in LARGE for x in ("--set", s)]
    assert main(["run", JOB, "--out", str(tmp_path / "o"), "--check", "--no-memory-check", *argv]) == 0
    said = capsys.readouterr().out
    _, cfg = registry.load(JOB, LARGE, memory_check=False)
    est = estimate(cfg)
    n = 200000
    entries_per_step = (n * n + n * 1000) / 2 + 1000 * n  # train tile pairs I <= J and the test rows, roughly
    assert est.entries / 20 == pytest.approx(entries_per_step, rel=0.01)
    assert _step(said) == pytest.approx(est.entries / 20 * SECONDS_PER_KERNEL_ENTRY, rel=0.01)
    assert _step(said) == pytest.approx(est.seconds / 20, rel=0.01)
    # two threads share each step's entries
    monkeypatch.setenv("HPCFLOW_THREADS", "2")
    assert main(["run", JOB, "--out", str(tmp_path / "o"), "--check", "--no-memory-check", *argv]) == 0
    assert _step(capsys.readouterr().out) == pytest.approx(est.seconds / 40, rel=0.01)


def test_submit_warns_where_a_step_outlasts_the_signal_delay(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    argv = [x for s in LARGE for x in ("--set", s)]
    base = ["submit", JOB, "--out", str(tmp_path / "o"), "--executor", "local", "--check", "--no-memory-check"]
    assert main([*base, "--time", "600", *argv]) == 0
    err = capsys.readouterr().err
    _, cfg = registry.load(JOB, LARGE, memory_check=False)
    step = estimate(cfg).seconds / 20
    assert step > 120
    warned = [line for line in err.splitlines() if "warning" in line and "step" in line]
    assert len(warned) == 1, err
    assert "mid-step" in warned[0] and "--signal-delay 120" in warned[0] and "cluster" in warned[0]
    advised = int(re.search(r"twice the step, (\d+)", warned[0]).group(1))
    assert advised == pytest.approx(2 * step, rel=0.01)
    # a delay that leaves the step its time: no warning; nor for the small clustered quickstart
    assert main([*base, "--time", "600", "--signal-delay", str(int(3 * step)), *argv]) == 0
    assert "mid-step" not in capsys.readouterr().err
    assert main(["submit", JOB, "--out", str(tmp_path / "q"), "--executor", "local", "--check"]) == 0
    assert "mid-step" not in capsys.readouterr().err
