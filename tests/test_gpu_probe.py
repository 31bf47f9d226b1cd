"""CuPy's GPU as the backend finds it (`hpcflow.backend.gpu_problem`): a device that `cupy.cuda.is_available()`
counts but that refuses every allocation (busy in exclusive-process mode, memory full, NVRTC missing) is not usable:
backend auto computes on NumPy with one note on stderr, an explicit cupy is refused in one line (exit 2) before any
work, naming the setting and the cause, and `hpcflow info` says it. The refusals tell a CuPy that is not installed,
one whose import fails, one that sees no device and one whose device fails apart. Sampling takes auto for the host,
GPU or not (its points then depend on the seed alone); an explicit cupy still samples on CuPy. The backend argument
of the Python API is checked like $HPCFLOW_BACKEND.

The GPU is faked by `cupy` packages put first on PYTHONPATH (subprocesses) or sys.path / sys.modules (here)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

import h5py
import numpy as np
import pytest

import hpcflow.backend as backend
from hpcflow.errors import ConfigError, MissingDependencyError
from hpcflow.geometry import Hypersurface

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "jobs" / "quickstart.toml"
BUSY = "cudaErrorDevicesUnavailable: CUDA-capable device(s) is/are busy or unavailable"
NVRTC = "CuPy failed to load libnvrtc.so.12: OSError: libnvrtc.so.12: cannot open shared object file"

#: fake `cupy` packages: a device counted but busy (every attribute but cuda.is_available, the device count and the
#: choice of device raises CUDA's error), an import that fails (a pip CuPy without the CUDA toolkit's NVRTC), a CuPy
#: that sees no device
FAKES = {
    "busy": f'''import contextlib, types
class CUDARuntimeError(RuntimeError):
    pass
def _fail(*a, **k):
    raise CUDARuntimeError({BUSY!r})
cuda = types.SimpleNamespace(is_available=lambda: True, runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                             Device=lambda index=0: contextlib.nullcontext())
def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _fail
''',
    "broken": f"raise RuntimeError({NVRTC!r} + '\\n(more lines of the loader)')\n",
    "nodevice": "import types\ncuda = types.SimpleNamespace(is_available=lambda: False)\n",
}


def fake_cupy(tmp_path: Path, kind: str) -> Path:
    """A directory holding package `cupy` of FAKES[kind], for PYTHONPATH or sys.path."""
    where = tmp_path / f"fake_{kind}"
    (where / "cupy").mkdir(parents=True)
    (where / "cupy" / "__init__.py").write_text(FAKES[kind])
    return where


def hpcflow(*args, cwd, fake: Path | None = None, env=None, mpi: int = 0):
    """`python -m hpcflow ARGS` (under `mpiexec -n MPI` where set) with this checkout, after `fake` on PYTHONPATH."""
    paths = ([str(fake)] if fake else []) + [str(ROOT)]
    full = {k: v for k, v in os.environ.items() if not k.startswith("HPCFLOW_")}
    full.update(PYTHONPATH=os.pathsep.join(paths), HPCFLOW_QUIET="1", **(env or {}))
    cmd = [sys.executable, "-m", "hpcflow", *map(str, args)]
    if mpi:
        cmd = [str(Path(sys.executable).parent / "mpiexec"), "-n", str(mpi), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, env=full, cwd=cwd, timeout=600)


def one_line(r, command: str) -> str:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"hpcflow {command}: error:"), r.stderr
    assert "Traceback" not in r.stderr
    return lines[0]


def _drop_cupy() -> dict:
    dropped = {k: v for k, v in sys.modules.items() if k == "cupy" or k.startswith("cupy.")}
    for k in dropped:
        del sys.modules[k]
    return dropped


@pytest.fixture
def probe(monkeypatch):
    """`probe(cupy)` makes `import cupy` give a fake and empties the probe's cache: a directory of `fake_cupy` (put
    first on sys.path), a module object, or None (no CuPy). Everything is put back at the end."""
    monkeypatch.setattr(backend, "_PROBED", [])
    monkeypatch.setattr(backend, "_FALLBACK_SAID", False)
    saved, paths = _drop_cupy(), []

    def use(cupy):
        _drop_cupy()
        while paths:
            sys.path.remove(paths.pop())
        if isinstance(cupy, Path):
            sys.path.insert(0, str(cupy))
            paths.append(str(cupy))
            importlib.invalidate_caches()
        else:
            sys.modules["cupy"] = cupy
        backend._PROBED.clear()

    yield use
    _drop_cupy()
    for path in paths:
        sys.path.remove(path)
    sys.modules.update(saved)


def test_a_counted_but_busy_gpu_is_not_usable_and_each_cause_is_said_in_the_refusal(tmp_path, probe, monkeypatch):
    """`cupy.cuda.is_available()` alone took a busy device for usable; the refusal said "pip install -e '.[gpu]' ...
    on a GPU node" whatever the cause, which is wrong where CuPy is installed."""
    monkeypatch.delenv("HPCFLOW_BACKEND", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def refusal() -> str:
        with pytest.raises(MissingDependencyError) as exc:
            backend.backend_name("cupy")
        text = str(exc.value)
        assert "\n" not in text and text.startswith("backend=cupy but ") and text.endswith("use backend=numpy")
        return text

    probe(fake_cupy(tmp_path, "busy"))
    assert backend.gpu_available() is False
    text = refusal()
    assert BUSY in text and "pip install" not in text, text
    assert backend.backend_name("auto", note=False) == "numpy" and backend.get_xp() is np

    probe(None)  # not installed: the GPU extra of the checkout
    text = refusal()
    assert "not installed" in text and "pip install -e '.[gpu]'" in text, text

    probe(fake_cupy(tmp_path, "broken"))  # the import's own error, on one line
    text = refusal()
    assert "import cupy failed (RuntimeError: " + NVRTC in text and "more lines" not in text, text

    probe(fake_cupy(tmp_path, "nodevice"))  # installed, no device visible: how devices are given, not pip
    text = refusal()
    assert "no CUDA device" in text and "--gpus" in text and "pip install" not in text, text
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    backend._PROBED.clear()
    text = refusal()
    assert "CUDA_VISIBLE_DEVICES=''" in text and "pip install" not in text, text


def test_auto_falls_back_to_numpy_with_one_note_and_cupy_is_refused_before_any_work(tmp_path):
    """A run, a sample and `hpcflow info` with a busy device counted: they crashed with a traceback (exit 1) under
    auto and HPCFLOW_BACKEND=cupy alike."""
    busy = fake_cupy(tmp_path, "busy")
    r = hpcflow("run", QUICKSTART, "--out", tmp_path / "auto", cwd=tmp_path, fake=busy)
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("hpcflow: note:")]
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert len(notes) == 1 and BUSY in notes[0] and "NumPy" in notes[0], r.stderr
    assert (tmp_path / "auto" / "summary.json").is_file()
    for ranks in (0, 2):
        out = tmp_path / f"cupy{ranks}"
        r = hpcflow("run", QUICKSTART, "--out", out, cwd=tmp_path, fake=busy, env={"HPCFLOW_BACKEND": "cupy"},
                    mpi=ranks)
        line = one_line(r, "run")
        assert "HPCFLOW_BACKEND=cupy" in line and BUSY in line and "HPCFLOW_BACKEND=numpy" in line, line
        assert not out.exists()
    r = hpcflow("sample", "--n", 200, "--out", tmp_path / "s.h5", cwd=tmp_path, fake=busy,
                env={"HPCFLOW_BACKEND": "cupy"})
    line = one_line(r, "sample")
    assert "HPCFLOW_BACKEND=cupy" in line and BUSY in line and not (tmp_path / "s.h5").exists(), line
    r = hpcflow("info", cwd=tmp_path, fake=busy)
    facts = dict(ln.split(None, 1) for ln in r.stdout.splitlines())
    assert r.returncode == 0 and facts["gpu_available"] == "False" and BUSY in facts["gpu_problem"], r.stdout
    assert facts["backend"] == "numpy" and r.stderr == "", r


def test_the_fallback_note_comes_once_from_rank_0(tmp_path):
    r = hpcflow("run", QUICKSTART, "--out", tmp_path / "o", cwd=tmp_path, fake=fake_cupy(tmp_path, "busy"), mpi=2)
    notes = [ln for ln in r.stderr.splitlines() if ln.startswith("hpcflow: note:")]
    assert r.returncode == 0 and len(notes) == 1 and BUSY in notes[0], r.stderr


class RecordingCupy(types.ModuleType):
    """A `cupy` that is NumPy (its arrays NumPy's) and records the names asked of it: a usable GPU whose use shows."""

    def __init__(self):
        super().__init__("cupy")
        self.asked = []
        self.cuda = types.SimpleNamespace(is_available=lambda: True)

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        self.asked.append(name)
        return getattr(np, name)


def test_sampling_under_auto_stays_on_the_host_where_a_gpu_is_usable(probe, monkeypatch):
    """Every sampler call resolved auto (and no backend given) to CuPy where a GPU was usable, whose points differ
    from NumPy's in roundoff and near-tie charts: the same seed gave other point sets on GPU and CPU nodes."""
    monkeypatch.delenv("HPCFLOW_BACKEND", raising=False)
    fake = RecordingCupy()
    probe(fake)
    assert backend.gpu_available() and backend.get_xp() is fake  # array work other than sampling: the GPU
    X = Hypersurface.fermat(3)
    host = X.sample(300, seed=5, backend="numpy")
    fake.asked.clear()
    for given in ({}, {"backend": "auto"}, {"backend": " AUTO"}):
        ps = X.sample(300, seed=5, **given)
        assert fake.asked == [], (given, fake.asked)
        for name in ("points", "weights", "omega2", "g_fs", "chart"):
            assert getattr(ps, name).tobytes() == getattr(host, name).tobytes(), (given, name)
    from hpcflow.resources import array_work_on_gpu

    assert not array_work_on_gpu("sample") and array_work_on_gpu("flow")
    X.sample(300, seed=5, backend="cupy")  # asked for: CuPy
    assert fake.asked, "backend='cupy' did not sample on CuPy"
    fake.asked.clear()
    monkeypatch.setenv("HPCFLOW_BACKEND", "cupy")
    X.sample(300, seed=5)
    assert fake.asked, "HPCFLOW_BACKEND=cupy did not sample on CuPy"


def test_hpcflow_sample_under_auto_writes_numpys_points_beside_a_busy_gpu(tmp_path):
    busy = fake_cupy(tmp_path, "busy")
    sets = {}
    for name, fake, env in (("auto", busy, {}), ("numpy", None, {"HPCFLOW_BACKEND": "numpy"})):
        out = tmp_path / f"{name}.h5"
        r = hpcflow("sample", "--n", 300, "--seed", 4, "--out", out, cwd=tmp_path, fake=fake, env=env)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        with h5py.File(out, "r") as f:
            sets[name] = {k: f[k][()] for k in ("points", "weights", "chart")}
    for k in ("points", "weights", "chart"):
        assert sets["auto"][k].tobytes() == sets["numpy"][k].tobytes(), k


@pytest.mark.parametrize("value", [1, True, ["numpy"], 1.5, b"numpy"])
def test_a_backend_argument_of_another_type_is_a_config_error_naming_it(value):
    """backend=1 raised AttributeError: 'int' object has no attribute 'lower'."""
    with pytest.raises(ConfigError, match=r"^backend=.* is invalid; pass 'numpy', 'cupy' or 'auto'"):
        Hypersurface.fermat(3).sample(10, seed=0, backend=value)
    with pytest.raises(ConfigError, match=r"^backend="):
        backend.get_xp(value)


def test_a_backend_argument_is_read_as_the_variable_is(monkeypatch):
    """$HPCFLOW_BACKEND is stripped and blank is unset; backend=" numpy" was refused while backend="" was taken."""
    monkeypatch.setenv("HPCFLOW_BACKEND", "numpy")
    assert backend.backend_name(" numpy ") == "numpy" and backend.backend_name("NumPy") == "numpy"
    assert backend.backend_name("") == "numpy" and backend.backend_name("  ") == "numpy"  # blank: not given
    with pytest.raises(ConfigError, match=r"^backend='Tpu' is not one of numpy, cupy, auto"):
        backend.backend_name("Tpu")


def test_a_bad_backend_variable_is_quoted_as_it_was_set(tmp_path):
    """HPCFLOW_BACKEND=4G was quoted as '4g'."""
    r = hpcflow("sample", "--n", 200, "--out", tmp_path / "x.h5", cwd=tmp_path, env={"HPCFLOW_BACKEND": "4G"})
    line = one_line(r, "sample")
    assert "HPCFLOW_BACKEND='4G' is not one of numpy, cupy, auto" in line and not (tmp_path / "x.h5").exists(), line
