"""`hpcflow info` answers torch_cuda without importing torch (~2 s) where no GPU driver can answer torch: no GPU
device file (NVIDIA, Jetson, WSL, ROCm), no nvidia-modprobe to make NVIDIA's, no nvidia module root could load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcflow.commands import info

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> str:
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_info_imports_torch_only_where_a_gpu_driver_may_answer_and_says_what_torch_says():
    """Here (no GPU device file) torch is not imported; on a GPU node it is. Either way the torch_cuda line is
    what torch's own torch.cuda.is_available() says in a process of its own."""
    torch_says = _python("import torch; print(torch.cuda.is_available())")
    run = ("import sys\nfrom hpcflow.cli import main\nmain(['info'])\n"
           "print('torch imported', 'torch' in sys.modules)")
    out = _python(run).splitlines()
    assert out[-1] == f"torch imported {info.gpu_device_possible()}"
    assert [line.split() for line in out if line.startswith("torch_cuda ")] == [["torch_cuda", torch_says]]


@pytest.mark.parametrize("possible", [False, True])
def test_torch_is_asked_only_where_the_probe_allows_a_gpu(possible):
    """The rule itself, the probe faked each way in a fresh process: False without importing torch, else
    torch's answer (here faked True: a GPU node)."""
    code = ("import sys\nimport hpcflow.commands.info as info\n"
            f"info.gpu_device_possible = lambda: {possible}\n"
            "if info.gpu_device_possible():\n"
            "    import torch\n    torch.cuda.is_available = lambda: True\n"
            "print(info.torch_cuda(), 'torch' in sys.modules)")
    assert _python(code) == f"{possible} {possible}"


@pytest.fixture
def no_gpu_files(tmp_path, monkeypatch):
    """A Linux node whose device files, nvidia-modprobe and kernel modules live under tmp_path (none yet)."""
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(info, "GPU_DEVICE_FILES", (str(tmp_path / "dev" / "nvidia*"), str(tmp_path / "dev" / "kfd"),
                                                   str(tmp_path / "proc" / "driver" / "nvidia")))
    monkeypatch.setattr(info, "NVIDIA_MODPROBE", (str(tmp_path / "bin" / "nvidia-modprobe"),))
    monkeypatch.setattr(info, "MODULES", str(tmp_path / "modules"))
    monkeypatch.setenv("PATH", str(tmp_path / "path"))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    for d in ("dev", "proc/driver", "bin", "path", f"modules/{os.uname().release}"):
        (tmp_path / d).mkdir(parents=True)
    return tmp_path


@pytest.mark.parametrize("made", ["dev/nvidia0", "dev/nvidiactl", "dev/kfd", "proc/driver/nvidia",
                                  "bin/nvidia-modprobe", "path/nvidia-modprobe"])
def test_any_device_file_or_nvidia_modprobe_means_torch_is_asked(no_gpu_files, made):
    assert info.gpu_device_possible() is False
    (no_gpu_files / made).touch(mode=0o755)
    assert info.gpu_device_possible() is True


def test_root_with_an_nvidia_module_to_load_means_torch_is_asked(no_gpu_files, monkeypatch):
    dep = no_gpu_files / "modules" / os.uname().release / "modules.dep"
    dep.write_text("kernel/drivers/video/fbdev/nvidia/nvidiafb.ko.zst: kernel/drivers/video/fbdev/core/fb.ko.zst\n"
                   "kernel/drivers/net/ethernet/nvidia/forcedeth.ko.zst:\n")
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert info.gpu_device_possible() is False  # no GPU driver module among them
    dep.write_text(dep.read_text() + "updates/dkms/nvidia.ko.zst:\n")
    assert info.gpu_device_possible() is True
    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # a user cannot load it (nvidia-modprobe would)
    assert info.gpu_device_possible() is False


def test_other_systems_always_ask_torch(no_gpu_files, monkeypatch):
    for platform in ("win32", "darwin"):
        monkeypatch.setattr(sys, "platform", platform)
        assert info.gpu_device_possible() is True
