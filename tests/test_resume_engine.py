"""A Gaussian kernel's engine "auto" is resolved from the whole run's kernel entries (`hpcflow.kernels.jit.engine_for`),
so a --resume that raises [flow].steps could take the other engine than its first leg (NumPy's passes, then Numba's
loop: they differ in the last bits). The checkpoint records the engine a run built its kernel with (attribute
engine), and a resume keeps it: the extended run is bitwise the uninterrupted run with that engine."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpcflow import resources
from hpcflow.cli import main
from hpcflow.jobs import registry
from hpcflow.kernels import jit

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs" / "quickstart.toml")
SETS = ["geometry.n_train=600", "geometry.n_test=100", "clustering.n_clusters=2", "checkpoint.every=1"]


def _args(steps, *more):
    return [arg for s in (*SETS, f"flow.steps={steps}", *more) for arg in ("--set", s)]


def _histories(out):
    with h5py.File(out / "checkpoint.h5", "r") as f:
        return ({k: f[f"history/{k}"][()] for k in ("sigma_train", "sigma_test", "dt")},
                f.attrs.get("engine"), json.loads((out / "summary.json").read_text()))


def test_a_resume_that_adds_steps_keeps_the_recorded_engine(tmp_path, monkeypatch, capsys):
    """Every operator of the job as estimated streamed (FLOW_CACHE_BYTES 0: the flow itself keeps its own cache, so
    only the engine's choice changes) and the threshold between the entries of 2 and of 4 steps: "auto" takes NumPy
    for the 2-step run and Numba for a 4-step one. The 2-step run extended to 4 steps keeps NumPy: its histories are
    bitwise those of the uninterrupted 4-step run on NumPy, and differ from the 4-step run on Numba."""
    assert jit.numba_version() is not None, "numba does not import: the engines cannot be compared"
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setattr(resources, "FLOW_CACHE_BYTES", 0)

    def entries(steps):
        return resources.kernel_entries(registry.load(JOB, [*SETS, f"flow.steps={steps}"], memory_check=False)[1])

    assert entries(2) < entries(3) < entries(4)
    monkeypatch.setattr(jit, "AUTO_NUMBA_ENTRIES", entries(3))
    ext, numpy_run, numba_run = tmp_path / "ext", tmp_path / "numpy", tmp_path / "numba"
    assert main(["run", JOB, "--out", str(ext), *_args(2)]) == 0
    first, engine, summary = _histories(ext)
    assert engine == "numpy" and summary["kernel_params"]["engine"] == "numpy"
    assert main(["run", JOB, "--out", str(ext), *_args(4), "--resume"]) == 0
    assert main(["run", JOB, "--out", str(numpy_run), *_args(4, "kernel.engine=numpy")]) == 0
    assert main(["run", JOB, "--out", str(numba_run), *_args(4)]) == 0
    extended, engine, summary = _histories(ext)
    assert engine == "numpy" and summary["kernel_params"]["engine"] == "numpy"
    assert len(extended["sigma_train"]) == 5
    want, _, _ = _histories(numpy_run)
    for k in want:
        np.testing.assert_array_equal(extended[k], want[k], err_msg=k)
        np.testing.assert_array_equal(extended[k][:len(first[k])], first[k], err_msg=k)
    other, engine, summary = _histories(numba_run)
    assert engine == "numba" and summary["kernel_params"]["engine"] == "numba"
    assert not np.array_equal(extended["sigma_train"], other["sigma_train"])  # (the engines differ in the last bits)


def test_a_recorded_numba_without_numba_resumes_on_numpy_and_says_so(monkeypatch):
    """Where Numba does not import, a checkpoint's "numba" cannot be kept: "auto" resolves as for a new run (NumPy's
    passes) and the resume says in one line that it continues to rounding; a checkpoint without the attribute, or
    another kernel, keeps nothing."""
    from types import SimpleNamespace

    from hpcflow.experiments.flow_job import check_kernel, engine_note, resumed_engine

    kcfg = {"name": "gaussian", "width": 0.5, "engine": None}
    state = SimpleNamespace(engine="numba")
    assert resumed_engine(dict(kcfg), None) is None and resumed_engine({"name": "delta"}, state) is None
    assert resumed_engine(dict(kcfg), SimpleNamespace(engine=None)) is None
    assert resumed_engine(dict(kcfg), SimpleNamespace(engine="numpy")) == "numpy"
    kept = check_kernel(dict(kcfg), "job", 1e12, kept="numpy")  # (1e12 entries: "auto" alone would take Numba)
    assert kept.engine == "numpy" and engine_note(kept, SimpleNamespace(engine="numpy"), "p:") is None
    monkeypatch.setattr(jit, "numba_version", lambda: None)
    assert resumed_engine(dict(kcfg), state) is None
    kernel = check_kernel(dict(kcfg), "job", 1e12, kept=resumed_engine(dict(kcfg), state))
    assert kernel.engine == "numpy"
    note = engine_note(kernel, state, "hpcflow run:")
    assert note.startswith("hpcflow run: note: ") and "'numba'" in note and "install numba" in note, note
    assert "\n" not in note


def test_a_damaged_engine_attribute_is_refused(tmp_path, monkeypatch):
    from hpcflow.checkpoint import load_resume
    from hpcflow.errors import InputFileError

    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    out = tmp_path / "out"
    assert main(["run", JOB, "--out", str(out), *_args(1)]) == 0
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        assert f.attrs["engine"] == "numpy"
        f.attrs["engine"] = "cuda"
    with pytest.raises(InputFileError, match="attribute engine = 'cuda' is not one of numba, numpy"):
        load_resume(out / "checkpoint.h5")
