"""A flow's numerical stop is said once: as a warning "flow stopped: ..." to a Python API caller, and in `hpcflow
run` only in the CLI's "stopped:" line (at R = 3 in tests/test_mpi.py)."""

import logging
import os
import subprocess
import sys

from hpcflow.flow import kernel_flow, stops_said_by_caller
from hpcflow.geometry import Hypersurface
from hpcflow.kernels import make_kernel
from test_mpi import ENV, JOB


def _stopped_flow():
    """A flow that stops at step 1: dt = 1e9 without halving leaves no positive-definite step."""
    train = Hypersurface.fermat(3).sample(30, seed=5, chart=(0, 1))
    res = kernel_flow(make_kernel("gaussian", width=0.3), train, dt=1e9, steps=3, max_halvings=0)
    assert res.stop_kind == "no_positive_step" and res.stopped.startswith("step 1: no dt >= 1e+09")
    return res


def _said(caplog):
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "hpcflow.flow" and "flow stopped" in
            r.getMessage()]


def test_a_python_caller_is_warned_once(caplog):
    caplog.set_level(logging.INFO, logger="hpcflow.flow")
    res = _stopped_flow()
    assert _said(caplog) == [(logging.WARNING, f"flow stopped: {res.stopped}")]


def test_a_caller_that_says_the_stop_gets_it_at_info_within_the_block(caplog):
    caplog.set_level(logging.INFO, logger="hpcflow.flow")
    with stops_said_by_caller():
        res = _stopped_flow()
    assert _said(caplog) == [(logging.INFO, f"flow stopped: {res.stopped}")]
    caplog.clear()
    _stopped_flow()  # after the block: a warning again
    assert [level for level, _ in _said(caplog)] == [logging.WARNING]


def test_hpcflow_run_says_a_numerical_stop_once(tmp_path):
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    r = subprocess.run(["timeout", "120", sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--set",
                        "flow.dt=1e9", "--set", "flow.max_halvings=0"], capture_output=True, text=True, timeout=150,
                       env=ENV)
    assert r.returncode == 3, r.stdout + r.stderr
    said = r.stdout + r.stderr
    assert said.count("hpcflow run: stopped: step 1: no dt >= 1e+09 keeps all metrics positive definite") == 1, said
    assert said.count("no dt >=") == 1 and "flow stopped:" not in said, said
    assert os.path.exists(out / "summary.json")
