"""On a GPU node the memory estimate of array work counts CuPy's host memory: on an H200 node (CuPy 14.2) the peak RSS
of a Gaussian flow and of a distance-scaling run exceeded their CPU estimates by up to 376 MB (BENCHMARKS.md, "On a
GPU"); the probe is faked present or absent here."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcflow import backend
from hpcflow.jobs import registry
from hpcflow.resources import estimate

JOBS = Path(__file__).resolve().parents[1] / "jobs"
MEASURED_EXCESS = 376e6  # bytes: the largest measured peak RSS above the CPU estimate on the GPU node


@pytest.mark.parametrize("job", ["quickstart.toml", "distance_scaling.toml", "table1_relu.toml"])
def test_array_work_on_a_gpu_is_estimated_above_the_measured_excess(monkeypatch, job):
    _, cfg = registry.load(str(JOBS / job), [])
    monkeypatch.delenv("HPCFLOW_BACKEND", raising=False)
    monkeypatch.setattr(backend, "gpu_counted", lambda: ("none", "no device"))
    cpu = estimate(cfg).bytes
    monkeypatch.setattr(backend, "gpu_counted", lambda: None)
    assert estimate(cfg).bytes - cpu >= MEASURED_EXCESS
    monkeypatch.setattr(backend, "gpu_counted", lambda: ("none", "no device"))
    monkeypatch.setenv("HPCFLOW_BACKEND", "cupy")  # --check on a login node for a GPU job: counted too
    assert estimate(cfg).bytes - cpu >= MEASURED_EXCESS
    monkeypatch.setenv("HPCFLOW_BACKEND", "numpy")  # a GPU node told to compute on the CPU: not counted
    monkeypatch.setattr(backend, "gpu_counted", lambda: None)
    assert estimate(cfg).bytes == cpu

