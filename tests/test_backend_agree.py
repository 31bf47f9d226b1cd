"""The ranks of a run compute on one backend: each probes its own GPU (two ranks sharing one in exclusive-process
mode: only the first gets it), auto is CuPy only where every rank's GPU is usable, else NumPy on every rank with one
note naming the failing rank and the cause; an explicit cupy with some rank failing is refused by every rank together
in one line, exit 2, before any work. Processes that only check or estimate a job count the GPU without running a
kernel (no CUDA context stays in them: in exclusive-process mode a submitting parent would hold the GPU its child
needs); `hpcflow info` runs its kernel probe in a child process.

The GPU is faked by a `cupy` package put first on PYTHONPATH: usable on rank 0 (its arrays are NumPy's), busy on
the rank named by FAKE_BUSY_RANK (PMI_RANK, which mpiexec sets), and every call past the device count logged with the
process's argv[0] to FAKE_CUPY_LOG. With FAKE_DEVICES=n it counts n devices; with FAKE_EXCLUSIVE set, device 0 is
rank 0's alone (exclusive-process mode: busy for every other rank); FAKE_DEVICE_LOG records "rank device" for each
kernel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobtexts import DELTA_FLOW, flow_points

ROOT = Path(__file__).resolve().parents[1]
BUSY = "cudaErrorDevicesUnavailable: CUDA-capable device(s) is/are busy or unavailable"
FAKE = f'''import os, sys, numpy, types
class CUDARuntimeError(RuntimeError):
    pass
_current = [0]
class Device:
    def __init__(self, index=0):
        self.index = int(index)
    def use(self):
        _current[0] = self.index
    def __enter__(self):
        self._before = _current[0]
        _current[0] = self.index
        return self
    def __exit__(self, *exc):
        _current[0] = self._before
runtime = types.SimpleNamespace(getDeviceCount=lambda: int(os.environ.get("FAKE_DEVICES", "1")))
cuda = types.SimpleNamespace(is_available=lambda: True, Device=Device, runtime=runtime)
float64 = numpy.float64
def arange(*a, **k):
    log = os.environ.get("FAKE_CUPY_LOG")
    if log:
        with open(log, "a") as f:
            f.write(sys.argv[0] + "\\n")
    rank = os.environ.get("PMI_RANK", "0")
    devices = os.environ.get("FAKE_DEVICE_LOG")
    if devices:
        with open(devices, "a") as f:
            f.write(f"{{rank}} {{_current[0]}}\\n")
    if rank == os.environ.get("FAKE_BUSY_RANK"):
        raise CUDARuntimeError({BUSY!r})
    if os.environ.get("FAKE_EXCLUSIVE") and _current[0] == 0 and rank != "0":
        raise CUDARuntimeError({BUSY!r})
    return numpy.arange(*a, **k)
'''
FLOW = flow_points(60, 20) + DELTA_FLOW


@pytest.fixture
def fake(tmp_path) -> Path:
    where = tmp_path / "fake"
    (where / "cupy").mkdir(parents=True)
    (where / "cupy" / "__init__.py").write_text(FAKE)
    return where


def hpcflow(*args, cwd, fake: Path, env=None, mpi: int = 0):
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HPCFLOW_", "FAKE_"))}
    full.update(PYTHONPATH=os.pathsep.join([str(fake), str(ROOT)]), HPCFLOW_QUIET="1", HPCFLOW_THREADS="1",
                **(env or {}))
    cmd = [sys.executable, "-m", "hpcflow", *map(str, args)]
    if mpi:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(mpi), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, cwd=cwd, timeout=300)


def test_auto_with_one_ranks_gpu_busy_computes_on_numpy_on_every_rank_and_says_why(tmp_path, fake):
    """Rank 1's probe failed while rank 0's passed: rank 0 computed on CuPy and rank 1 on NumPy, and nothing was
    said (the note came from rank 0 only, whose GPU worked)."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    r = hpcflow("run", job, "--out", out, "--set", "flow.steps=2", cwd=tmp_path, fake=fake, mpi=2,
                env={"FAKE_BUSY_RANK": "1"})
    assert r.returncode == 0, r.stderr
    notes = [ln for ln in r.stderr.splitlines() if "backend auto computes on NumPy" in ln]
    assert len(notes) == 1 and BUSY in notes[0] and "on rank 1; 1 of 2 ranks" in notes[0], r.stderr
    summary = json.loads((out / "summary.json").read_text())
    p = summary["provenance"]
    assert (p["backend"], p["backends_agree"]) == ("numpy", True), p
    assert [g["backend"] for g in summary["legs"]] == ["numpy"]


def test_explicit_cupy_with_one_ranks_gpu_busy_is_refused_together_before_any_work(tmp_path, fake):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    r = hpcflow("run", job, "--out", out, cwd=tmp_path, fake=fake, mpi=2,
                env={"FAKE_BUSY_RANK": "1", "HPCFLOW_BACKEND": "cupy"})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("hpcflow run: error:"), r.stderr
    assert "HPCFLOW_BACKEND=cupy but" in lines[0] and BUSY in lines[0] and "rank 1" in lines[0], lines[0]
    assert lines[0].endswith("or use HPCFLOW_BACKEND=numpy"), lines[0]
    assert not out.exists()


@pytest.mark.parametrize("setting", ["auto", "cupy"])
def test_checks_and_estimates_run_no_kernel_and_info_runs_it_apart(tmp_path, fake, setting):
    """run --check, submit --check (local executor: the parent of the run) and the memory estimate each ran CuPy's
    kernel probe, leaving a CUDA context in a process that computes nothing; `hpcflow info` ran it in itself."""
    job, log = tmp_path / "job.toml", tmp_path / "calls.log"
    job.write_text(FLOW)
    env = {"FAKE_CUPY_LOG": str(log), "HPCFLOW_BACKEND": setting}
    for command in (["run", job, "--out", tmp_path / "o1", "--check"],
                    ["submit", job, "--out", tmp_path / "o2", "--executor", "local", "--check"]):
        r = hpcflow(*command, cwd=tmp_path, fake=fake, env=env)
        assert r.returncode == 0, r.stderr
        assert not log.exists(), (command, log.read_text())
    r = hpcflow("info", cwd=tmp_path, fake=fake, env=env)
    assert r.returncode == 0 and "gpu_available" in r.stdout and " cupy" in r.stdout, r.stdout + r.stderr
    assert log.read_text().splitlines() == ["-c"]  # (the child's, not the info process's)


def test_the_estimate_counts_the_gpu_without_a_kernel(tmp_path, fake, monkeypatch):
    """In-process: `estimate` under auto takes a counted GPU for CuPy's host memory, and calls nothing but the count."""
    import importlib

    import hpcflow.backend as backend
    from hpcflow.jobs import registry
    from hpcflow.resources import CUPY_HOST_BYTES, estimate

    job, log = tmp_path / "job.toml", tmp_path / "calls.log"
    job.write_text(FLOW)
    monkeypatch.setenv("FAKE_CUPY_LOG", str(log))
    monkeypatch.delenv("HPCFLOW_BACKEND", raising=False)
    monkeypatch.setattr(backend, "_PROBED", [])
    monkeypatch.setattr(backend, "_COUNTED", [])
    monkeypatch.setitem(sys.modules, "cupy", None)
    _, cfg = registry.load(str(job), [])
    cpu = estimate(cfg).bytes  # (no CuPy)
    monkeypatch.setattr(backend, "_COUNTED", [])
    monkeypatch.delitem(sys.modules, "cupy")
    monkeypatch.syspath_prepend(str(fake))
    importlib.invalidate_caches()
    try:
        assert estimate(cfg).bytes - cpu == CUPY_HOST_BYTES
        assert not log.exists(), log.read_text()
    finally:
        sys.modules.pop("cupy", None)


def clean_env(fake: Path, env: dict) -> dict:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("HPCFLOW_", "FAKE_"))}
    full.update(PYTHONPATH=os.pathsep.join([str(fake), str(ROOT)]), HPCFLOW_QUIET="1", HPCFLOW_THREADS="1", **env)
    return full


def test_each_rank_probes_the_gpu_it_computes_on(tmp_path, fake):
    """Two GPUs in exclusive-process mode, one per rank: every rank probed device 0, which only rank 0 gets, so the
    agreement put the job on NumPy; each rank probes its node rank's device (node_rank % devices), as the flow uses."""
    log = tmp_path / "devices.log"
    env = clean_env(fake, {"FAKE_DEVICES": "2", "FAKE_EXCLUSIVE": "1", "FAKE_DEVICE_LOG": str(log)})
    code = "from hpcflow.backend import agree_backend, backend_name; print(agree_backend(), backend_name())"
    r = subprocess.run([str(Path(sys.executable).parent / "mpiexec"), "-n", "2", sys.executable, "-c", code],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("cupy") == 4 and "numpy" not in r.stdout, r.stdout + r.stderr  # (the ranks' lines may mix)
    assert sorted(log.read_text().splitlines()) == ["0 0", "1 1"]


@pytest.mark.parametrize("first, second", [("numpy", None), ("cupy", "auto"), ("auto", "numpy")])
def test_ranks_launched_with_different_backends_are_refused_together(tmp_path, fake, first, second):
    """MPMD launch, HPCFLOW_BACKEND set differently per rank: a numpy rank made no collective where the others made
    one (hang); cupy on one rank and auto on the other with a GPU failing raised on the cupy rank only (hang)."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    env = clean_env(fake, {"FAKE_BUSY_RANK": "1"})
    cmd = [sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out)]
    mpiexec = [str(Path(sys.executable).parent / "mpiexec")]
    for i, setting in enumerate((first, second)):
        mpiexec += [*([":"] if i else []), "-n", "1", *(["-env", "HPCFLOW_BACKEND", setting] if setting else []), *cmd]
    r = subprocess.run(mpiexec, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("hpcflow run: error:"), r.stderr
    shown = {None: "auto"}.get(second, second)
    assert f"HPCFLOW_BACKEND differs between ranks ({first} on rank 0, {shown} on rank 1)" in lines[0], lines[0]
    assert not out.exists()


def test_an_agreement_does_not_outlive_its_ranks(monkeypatch):
    """After the ranks agreed on CuPy, a later call at one rank, in a process without a usable GPU, still said cupy."""
    import hpcflow.backend as backend

    monkeypatch.delenv("HPCFLOW_BACKEND", raising=False)
    monkeypatch.setattr(backend, "_PROBED", [("missing", "CuPy is not installed")])
    monkeypatch.setattr(backend, "_AGREED", [None])  # (what an agreement on CuPy at R > 1 leaves)
    monkeypatch.setattr(backend, "_FALLBACK_SAID", True)
    assert backend.agree_backend() == "numpy"
    assert backend.backend_name() == "numpy"


def test_an_nn_job_probes_no_cupy_gpu_for_auto(tmp_path, fake):
    """nn trains with torch and samples on the host under auto: its ranks probed the CuPy GPU all the same, and a
    busy one put a note on stderr that the job computes on NumPy "as the ranks compute alike"."""
    from jobtexts import NN_POINTS, TINY_TRAINING

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(NN_POINTS + TINY_TRAINING)
    r = hpcflow("run", job, "--out", out, cwd=tmp_path, fake=fake, mpi=2, env={"FAKE_BUSY_RANK": "1"})
    assert r.returncode == 0, r.stderr
    assert "backend auto computes on NumPy" not in r.stderr, r.stderr
    assert json.loads((out / "summary.json").read_text())["kind"] == "nn"
