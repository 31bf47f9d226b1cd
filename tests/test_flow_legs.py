"""A flow preempted at 2 ranks and resumed at 3 records both runs (`legs`) in checkpoint.h5 and summary.json; a
version 1 checkpoint (no `legs`) still resumes, its earlier steps one leg of unknown ranks."""

import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np

from test_parallel import mpiexec

DRIVER = os.path.join(os.path.dirname(__file__), "mpi", "flow_stop_driver.py")
STEPS, STOP = 6, 2
JOB = f"""
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 120
n_test = 60
seed = 0
[kernel]
name = "delta"
[flow]
dt = 1.0
steps = {STEPS}
loss = "ultralocal"
[checkpoint]
every = 100
"""


def _env():
    return dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1", PYTHONPATH=os.getcwd())


def _mpi(ranks, prog):
    return subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, *prog], capture_output=True, text=True,
                          timeout=180, env=_env())


def _legs(out):
    with h5py.File(os.path.join(out, "checkpoint.h5"), "r") as f:
        return json.loads(f.attrs["legs"]), {k: f[f"history/{k}"][()] for k in ("step_seconds", "comm_bytes")}


def test_a_flow_resumed_at_another_rank_count_records_its_legs(tmp_path):
    from hpcflow import __version__

    job, out = tmp_path / "job.toml", str(tmp_path / "out")
    job.write_text(JOB)
    p = _mpi(2, [DRIVER, str(STOP), "1", "run", str(job), "--out", out])
    assert p.returncode == 4, p.stderr[-2000:]
    legs, _ = _legs(out)
    assert [(g["from_step"], g["to_step"], g["ranks"]) for g in legs] == [(0, STOP, 2)]
    first = json.loads(open(os.path.join(out, "summary.json")).read())
    assert first["status"] == "preempted" and first["resumed"] is False
    assert [(g["from_step"], g["to_step"], g["ranks"]) for g in first["legs"]] == [(0, STOP, 2)]
    old = tmp_path / "v1"  # the same checkpoint as a version 1 file: no legs attribute
    shutil.copytree(out, old)
    with h5py.File(old / "checkpoint.h5", "r+") as f:
        del f.attrs["legs"]
        f.attrs["schema_version"] = 1

    p = _mpi(3, ["-m", "hpcflow", "run", str(job), "--out", out, "--resume"])
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads(open(os.path.join(out, "summary.json")).read())
    legs, per_rank = _legs(out)
    runs = [(0, STOP, 2, __version__), (STOP, STEPS, 3, __version__)]
    assert [(g["from_step"], g["to_step"], g["ranks"], g["hpcflow_version"]) for g in legs] == runs
    assert [(g["from_step"], g["to_step"], g["ranks"]) for g in summary["legs"]] == [r[:3] for r in runs]
    assert summary["resumed"] is True and summary["ranks"] == 3 and summary["checkpoint_step"] == STEPS
    assert legs[0] == first["legs"][0] and legs[0]["wall_seconds"] > 0  # carried over unchanged
    assert summary["legs"] == legs  # the checkpoint's record: each run timed up to its last checkpoint
    assert 0 < legs[-1]["wall_seconds"] <= summary["wall_seconds"]  # this run timed to its summary
    np.testing.assert_allclose(summary["wall_seconds_total"], legs[0]["wall_seconds"] + summary["wall_seconds"],
                               rtol=1e-12)
    assert summary["wall_seconds_total"] >= summary["wall_seconds"]
    for name, table in per_rank.items():  # the steps of the 2-rank leg have no 3-rank columns
        assert table.shape == (STEPS, 3)
        assert np.isnan(table[:STOP]).all() and np.isfinite(table[STOP:]).all(), name

    p = _mpi(1, ["-m", "hpcflow", "run", str(job), "--out", str(old), "--resume"])
    assert p.returncode == 0, p.stderr[-2000:]
    legs, _ = _legs(old)
    assert [(g["from_step"], g["to_step"], g["ranks"], g["wall_seconds"]) for g in legs[:1]] == [(0, STOP, None, None)]
    assert [(g["from_step"], g["to_step"], g["ranks"]) for g in legs[1:]] == [(STOP, STEPS, 1)]
    with h5py.File(old / "checkpoint.h5", "r") as f:
        assert f.attrs["schema_version"] == 2
