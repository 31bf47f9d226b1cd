"""A job that asks for a GPU this node lacks (HPCFLOW_BACKEND=cupy without a usable CuPy device): refused in one
line before any work by the commands that run it here, accepted with a warning by --check and by a submission to
another node. The GPU is faked present or absent through the backend's probe (`hpcflow.backend.gpu_available`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import hpcflow.backend as backend
from hpcflow.cli import main
from hpcflow.jobs import registry

ROOT = Path(__file__).resolve().parents[1]
TUNE_JOB = ROOT / "jobs" / "tune_delta.toml"


@pytest.fixture
def cupy_asked(monkeypatch):
    """HPCFLOW_BACKEND=cupy; the test sets whether a GPU is usable with `gpu(bool)`."""
    monkeypatch.setenv("HPCFLOW_BACKEND", "cupy")

    def gpu(usable: bool) -> None:
        monkeypatch.setattr(backend, "gpu_available", lambda: usable)

    return gpu


def _one_line_refusal(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"hpcflow {command}: error:"), err
    return err[0]


def test_tune_without_a_usable_gpu_is_refused_before_the_study_is_made(tmp_path, cupy_asked, capsys):
    """Every trial failed with MissingDependencyError and the study (journal, trials/0000, ...) was written, exit 3."""
    cupy_asked(False)
    out = tmp_path / "study"
    assert main(["tune", str(TUNE_JOB), "--trials", "2", "--out", str(out)]) == 2
    line = _one_line_refusal(capsys, "tune")
    assert "HPCFLOW_BACKEND=cupy" in line and "HPCFLOW_BACKEND=numpy" in line
    assert list(tmp_path.iterdir()) == []


def test_a_usable_gpu_passes_the_job_checks(tmp_path, cupy_asked):
    """The refusal is for a missing GPU only: with one usable, the same job loads."""
    cupy_asked(True)
    assert backend.backend_name() == "cupy"
    _, cfg = registry.load(TUNE_JOB)
    assert cfg["job"]["kind"] == "flow"


def test_a_submission_checks_the_gpu_where_the_job_runs(tmp_path, cupy_asked, capsys):
    """A local job runs here: refused before anything is queued or written. A Slurm job runs on another node, and
    --check on a login node accepts it, as run --check does."""
    cupy_asked(False)
    out, logs = tmp_path / "out", tmp_path / "logs"
    assert main(["submit", str(TUNE_JOB), "--command", "tune", "--trials", "2", "--out", str(out),
                 "--executor", "local", "--logs", str(logs)]) == 2
    assert "HPCFLOW_BACKEND=cupy" in _one_line_refusal(capsys, "submit")
    assert list(tmp_path.iterdir()) == []
    for executor in ("local", "slurm"):
        assert main(["submit", str(TUNE_JOB), "--command", "tune", "--trials", "2", "--out", str(out),
                     "--executor", executor, "--check"]) == 0, capsys.readouterr().err
    assert main(["run", str(ROOT / "jobs" / "quickstart.toml"), "--out", str(out), "--check"]) == 0
    assert "no usable GPU" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
