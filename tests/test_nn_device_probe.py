"""A network job's torch device: [training].device = 'cuda' with a CPU-only build of torch (torch.version.cuda None)
is refused naming the build and the fix (a CUDA build of torch), not a GPU node, which has no GPU for it either; a
GPU that torch reports available but cannot allocate on (faked here: torch.cuda.is_available True on a torch whose
first CUDA allocation fails) makes 'auto' train on the cpu with one note line and 'cuda' refused in one line, exit 2,
no traceback."""

import json

import pytest

from hpcflow.cli import main
from jobtexts import NN_POINTS, SMALL_NET, TINY_TRAINING

NN = NN_POINTS + SMALL_NET + TINY_TRAINING


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")


@pytest.fixture
def torch():
    import torch

    return torch


def _job(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(NN)
    return job


def _err_lines(capsys):
    return capsys.readouterr().err.strip().splitlines()


def test_cuda_on_a_cpu_only_torch_names_the_build_not_a_gpu_node(tmp_path, monkeypatch, capsys, torch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    job, out = _job(tmp_path), tmp_path / "out"
    assert main(["nn", str(job), "--out", str(out), "--set", "training.device=cuda"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and err[0].startswith("hpcflow nn: error:"), err
    assert f"this torch ({torch.__version__}) is a CPU-only build" in err[0] and "CUDA build of torch" in err[0]
    assert "GPU node" not in err[0], err
    assert not out.exists()
    capsys.readouterr()
    assert main(["nn", str(job), "--out", str(out), "--check", "--set", "training.device=cuda"]) == 0
    said = capsys.readouterr().out
    assert "is a CPU-only build" in said and "run it on a GPU node" not in said, said


def test_cuda_where_torch_sees_no_device_names_a_gpu_node(tmp_path, monkeypatch, capsys, torch):
    monkeypatch.setattr(torch.version, "cuda", "12.4")  # a CUDA build on a node without a GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["nn", str(_job(tmp_path)), "--out", str(tmp_path / "out"), "--set", "training.device=cuda"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and "torch sees no GPU" in err[0] and "GPU node" in err[0] and "CPU-only" not in err[0], err


def _unusable_gpu(monkeypatch, torch, build):
    """torch reports a GPU whose first allocation fails: a CPU-only `build` ("cpu") fails with its own
    AssertionError 'Torch not compiled with CUDA enabled' (real where torch is a CPU-only build, faked elsewhere), a
    CUDA build ("cuda") with the error a GPU busy in exclusive compute mode gives."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.version, "cuda", None if build == "cpu" else "12.4")
    real = torch.zeros

    def zeros(*args, device=None, **kw):
        if device is not None and str(device).startswith("cuda"):
            if build == "cpu":
                raise AssertionError("Torch not compiled with CUDA enabled")
            raise RuntimeError("CUDA error: CUDA-capable device(s) is/are busy or unavailable")
        return real(*args, device=device, **kw)

    monkeypatch.setattr(torch, "zeros", zeros)
    return "AssertionError: Torch not compiled" if build == "cpu" else "RuntimeError: CUDA error: CUDA-capable"


@pytest.mark.parametrize("build", ["cpu", "cuda"])
def test_auto_with_an_unusable_gpu_trains_on_the_cpu_with_a_note(tmp_path, monkeypatch, capsys, torch, build):
    failed = _unusable_gpu(monkeypatch, torch, build)
    out = tmp_path / "out"
    assert main(["nn", str(_job(tmp_path)), "--out", str(out), "--set", "training.epochs=1"]) == 0
    notes = [line for line in _err_lines(capsys) if "cannot use it" in line]
    assert len(notes) == 1, notes
    assert notes[0].startswith(f"hpcflow nn: note: torch sees a GPU but cannot use it ({failed}"), notes
    assert "training on the cpu" in notes[0]
    assert json.loads((out / "summary.json").read_text())["device"] == "cpu"


@pytest.mark.parametrize("build", ["cpu", "cuda"])
def test_cuda_with_an_unusable_gpu_is_refused_in_one_line(tmp_path, monkeypatch, capsys, torch, build):
    failed = _unusable_gpu(monkeypatch, torch, build)
    out = tmp_path / "out"
    assert main(["nn", str(_job(tmp_path)), "--out", str(out), "--set", "training.device=cuda"]) == 2
    err = _err_lines(capsys)
    assert len(err) == 1 and err[0].startswith("hpcflow nn: error: [training].device = 'cuda' but torch cannot use "
                                               f"the GPU it sees ({failed}"), err
    assert "'auto' or 'cpu'" in err[0] and "Traceback" not in err[0]
    assert ("CPU-only build" in err[0]) == (build == "cpu"), err
    assert not (out / "summary.json").exists() and not (out / "checkpoint.pt").exists()
