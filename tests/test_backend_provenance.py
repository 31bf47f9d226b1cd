"""Every run records the array backend it computed with (summary.json `provenance.backend`, with the CUDA device
for CuPy and whether the ranks agree; each checkpoint leg's `backend`): `HPCFLOW_BACKEND=auto` on a node without a
usable GPU runs NumPy, and the outputs say so. A resume on another backend than the checkpoint's last leg continues,
its legs giving each leg's backend and the provenance the last leg's; checkpoints whose legs predate the record
still resume; a leg whose backend is not a name is a damaged checkpoint (exit 2, one line)."""

import json
import sys
import types

import h5py
import pytest

from hpcflow import provenance as prov
from hpcflow.cli import main
from jobtexts import DELTA_FLOW, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points

FLOW = flow_points(60, 20) + DELTA_FLOW
NN = NN_POINTS + SMALL_NET + TINY_TRAINING


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")
    monkeypatch.delenv("HPCFLOW_BACKEND", raising=False)


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def _flow_legs(out):
    with h5py.File(out / "checkpoint.h5", "r") as f:
        return json.loads(f.attrs["legs"])


def _no_gpu(monkeypatch):
    """No usable GPU, whatever this machine has: auto resolves to NumPy."""
    import hpcflow.backend as backend

    monkeypatch.setitem(sys.modules, "cupy", None)  # (import cupy raises ImportError)
    monkeypatch.setattr(backend, "gpu_available", lambda: False)


@pytest.mark.parametrize("setting", [None, "auto", "numpy"])
def test_a_flow_on_a_node_without_a_gpu_records_numpy(tmp_path, monkeypatch, setting):
    _no_gpu(monkeypatch)
    if setting is not None:
        monkeypatch.setenv("HPCFLOW_BACKEND", setting)
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(out), "--quiet", "--set", "flow.steps=2"]) == 0
    p = _summary(out)["provenance"]
    assert (p["backend"], p["backend_device"], p["backends_agree"]) == ("numpy", None, True), p
    assert [g["backend"] for g in _flow_legs(out)] == ["numpy"]
    assert [g["backend"] for g in _summary(out)["legs"]] == ["numpy"]


def test_a_network_records_its_backend_beside_its_torch_device(tmp_path, monkeypatch):
    import torch

    _no_gpu(monkeypatch)
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(NN)
    assert main(["nn", str(job), "--out", str(out), "--quiet", "--set", "training.epochs=1"]) == 0
    summary = _summary(out)
    assert summary["provenance"]["backend"] == "numpy" and summary["provenance"]["backends_agree"] is True
    assert [g["backend"] for g in summary["legs"]] == ["numpy"], summary["legs"]
    saved = torch.load(out / "checkpoint.pt", weights_only=False)
    assert [g["backend"] for g in saved["legs"]] == ["numpy"]


def _fake_cupy(name=b"NVIDIA H100 80GB HBM3", major=9, minor=0):
    """A stand-in CuPy whose CUDA device is usable: enough for the device's description."""
    cuda = types.SimpleNamespace(
        is_available=lambda: True,
        Device=lambda: types.SimpleNamespace(id=0),
        runtime=types.SimpleNamespace(getDeviceProperties=lambda i: {"name": name, "major": major, "minor": minor}))
    return types.SimpleNamespace(cuda=cuda)


def test_cupy_is_recorded_with_its_device(monkeypatch):
    import hpcflow.backend as backend

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy())
    monkeypatch.setattr(backend, "gpu_available", lambda: True)  # (the backend's own probe is its tests')
    p = prov.provenance()
    assert p["backend"] == "cupy" and p["backends_agree"] is True
    assert p["backend_device"] == {"id": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    monkeypatch.setenv("HPCFLOW_BACKEND", "numpy")  # a GPU that the run was told not to use: NumPy, no device
    p = prov.provenance()
    assert (p["backend"], p["backend_device"]) == ("numpy", None)


class _MixedRanks:
    """Two ranks, rank 1 on a node whose backend is other than this process's (mixed nodes under auto)."""

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def allgather(self, obj):
        host, backend, _ = obj
        return [obj, ("gpu-node", "cupy", {"id": 0, "name": "x", "compute_capability": "8.0"})]


def test_ranks_on_other_backends_are_said_not_to_agree(monkeypatch):
    _no_gpu(monkeypatch)
    p = prov.provenance(comm=_MixedRanks())
    assert (p["backend"], p["backend_device"], p["backends_agree"]) == ("numpy", None, False), p


def test_a_flow_resumed_on_another_backend_records_each_legs_and_the_last_in_its_provenance(tmp_path, monkeypatch,
                                                                                              capsys):
    _no_gpu(monkeypatch)
    job, out, whole = tmp_path / "job.toml", tmp_path / "out", tmp_path / "whole"
    job.write_text(FLOW)
    with monkeypatch.context() as m:  # the first leg as a CuPy run records it (its arrays are NumPy's here)
        m.setattr(prov, "array_backend", lambda: "cupy")
        assert main(["run", str(job), "--out", str(out), "--quiet", "--set", "flow.steps=2"]) == 0
    assert _summary(out)["provenance"]["backend"] == "cupy"
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=4"]) == 0
    notes = [line for line in capsys.readouterr().err.splitlines() if "note: array backend" in line]
    assert len(notes) == 1 and notes[0].startswith("hpcflow run: note: array backend numpy, where the checkpoint's "
                                                   "last leg ran cupy: "), notes
    assert "not bit for bit" in notes[0]
    summary = _summary(out)
    assert summary["provenance"]["backend"] == "numpy"
    assert [g["backend"] for g in summary["legs"]] == ["cupy", "numpy"] == [g["backend"] for g in _flow_legs(out)]
    assert main(["run", str(job), "--out", str(whole), "--quiet", "--set", "flow.steps=4"]) == 0
    with h5py.File(out / "checkpoint.h5", "r") as a, h5py.File(whole / "checkpoint.h5", "r") as b:
        assert a["history/sigma_train"][:] == pytest.approx(b["history/sigma_train"][:], rel=1e-9)


def test_a_checkpoint_whose_legs_predate_the_backend_resumes(tmp_path, monkeypatch, capsys):
    _no_gpu(monkeypatch)
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(out), "--quiet", "--set", "flow.steps=2"]) == 0
    with h5py.File(out / "checkpoint.h5", "r+") as f:  # legs as written before the backend was recorded
        f.attrs["legs"] = json.dumps([{k: v for k, v in g.items() if k != "backend"} for g in _legs(f)])
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=3"]) == 0
    assert [g.get("backend") for g in _flow_legs(out)] == [None, "numpy"]
    assert "note: array backend" not in capsys.readouterr().err  # (not known: nothing to compare)
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=4"]) == 0
    assert "note: array backend" not in capsys.readouterr().err  # the same backend: nothing to say


def _legs(f):
    return json.loads(f.attrs["legs"])


def test_a_leg_whose_backend_is_not_a_name_is_a_damaged_checkpoint(tmp_path, monkeypatch, capsys):
    _no_gpu(monkeypatch)
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(out), "--quiet", "--set", "flow.steps=2"]) == 0
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        f.attrs["legs"] = json.dumps([{**g, "backend": 5} for g in _legs(f)])
    before = (out / "checkpoint.h5").read_bytes()
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--quiet", "--resume", "--set", "flow.steps=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "legs[0].backend = 5" in err[0] and "Traceback" not in err[0], err
    assert (out / "checkpoint.h5").read_bytes() == before


def test_two_ranks_record_rank_0s_backend_and_that_they_agree(tmp_path):
    import os
    import subprocess
    from pathlib import Path

    from test_parallel import mpiexec

    root = Path(__file__).resolve().parents[1]
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    env = {k: v for k, v in os.environ.items() if k != "HPCFLOW_BACKEND"}
    env.update(PYTHONPATH=str(root), HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", HPCFLOW_BACKEND="auto")
    r = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out),
                        "--quiet", "--set", "flow.steps=2"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    summary = _summary(out)
    assert summary["ranks"] == 2
    p = summary["provenance"]
    from hpcflow.backend import gpu_available

    backend = "cupy" if gpu_available() else "numpy"  # (what auto picks here, asked the way the run asks)
    assert (p["backend"], p["backends_agree"]) == (backend, True), p
