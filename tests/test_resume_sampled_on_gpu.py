"""A flow checkpoint that an earlier hpcflow sampled on a GPU under backend auto (CuPy's roundoff put ~1e-4 of the
points in another chart; auto now samples on the host) no longer matches the rows its resume samples: the refusal
says in its one line that such a checkpoint resumes with HPCFLOW_BACKEND=cupy on a GPU node, where its first leg (the
one that sampled the points) records no backend (written before the record) or records cupy, and not where it records
numpy, whatever later legs record."""

import json

import h5py
import numpy as np
import pytest

from jobtexts import DELTA_FLOW, flow_points

FLOW = flow_points(60, 20) + DELTA_FLOW
HINT = "with HPCFLOW_BACKEND=cupy on a GPU node"


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    monkeypatch.setenv("HPCFLOW_QUIET", "1")
    monkeypatch.delenv("HPCFLOW_BACKEND", raising=False)


@pytest.mark.parametrize("backend", [None, "cupy", "numpy"])
def test_a_resume_refused_for_its_rows_names_the_cupy_resume_where_the_legs_allow_it(tmp_path, capsys, backend):
    from hpcflow.cli import main

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(out), "--quiet", "--set", "flow.steps=2"]) == 0
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        legs = json.loads(f.attrs["legs"])
        for g in legs:
            g.pop("backend", None)
            if backend is not None:
                g["backend"] = backend
        f.attrs["legs"] = json.dumps(legs)
        points = f["train/points"][()]
        points[5] = points[5] * (1 + 1e-6)  # beyond the 1e-9 of rounding, as another chart's point would be
        f["train/points"][...] = points
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=4", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train/points at row 5" in err and "does not match" in err, err
    assert "--force" in err, err
    if backend == "numpy":
        assert "HPCFLOW_BACKEND=cupy" not in err, err
    else:
        assert HINT in err and f"its first leg records {backend or 'no backend'}" in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with h5py.File(out / "checkpoint.h5", "r") as f:
        np.testing.assert_array_equal(f["train/points"][5], points[5])


@pytest.mark.parametrize("first, later", [("numpy", "cupy"), ("cupy", "numpy")])
def test_the_hint_follows_the_first_leg_which_sampled_the_points(tmp_path, capsys, first, later):
    """Points sampled by a numpy first leg, then resumed on CuPy: the hint was given (any leg not numpy), although
    the points were never sampled on CuPy; a cupy first leg gets it whatever the later legs record."""
    from hpcflow.cli import main

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(FLOW)
    assert main(["run", str(job), "--out", str(out), "--quiet", "--set", "flow.steps=2"]) == 0
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=3", "--quiet"]) == 0
    with h5py.File(out / "checkpoint.h5", "r+") as f:
        legs = json.loads(f.attrs["legs"])
        assert len(legs) == 2, legs
        legs[0]["backend"], legs[1]["backend"] = first, later
        f.attrs["legs"] = json.dumps(legs)
        points = f["train/points"][()]
        points[5] = points[5] * (1 + 1e-6)
        f["train/points"][...] = points
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out), "--resume", "--set", "flow.steps=4", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "train/points at row 5" in err, err
    assert (HINT in err) == (first == "cupy"), err
