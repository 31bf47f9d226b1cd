"""Plain progress lines in a batch log (stderr/stdout no terminal): the clustering batches' lines (as sampling's, at
most one a minute, rank 0) and the flow's step lines, with the flow's seconds, an estimate of those left, and a line
for any step that ends over a minute after the last line said. A fake clock stands in for the minutes."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from hpcflow import progress as progress_module
from hpcflow.cluster import batched_clustering
from hpcflow.cluster.distributed import distributed_labels
from hpcflow.experiments.flow_job import progress as flow_progress
from test_parallel import mpiexec  # tests/ is on sys.path (pytest's default import mode)
from test_thread_environment import Clock  # moves its step at every reading


class Set:
    """A clock that reads `now`, set by the test."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _points(n: int) -> np.ndarray:
    t = np.linspace(0.0, 1.2, n)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


@pytest.mark.parametrize("which", ["distributed", "batched"])
def test_clustering_batches_say_plain_lines_in_a_log(monkeypatch, capsys, which):
    monkeypatch.delenv("HPCFLOW_QUIET", raising=False)
    # each batch ends 61 s after the one before (the clock is read once at the start and once per batch)
    monkeypatch.setattr(progress_module, "clock", Clock(61.0))
    z = _points(100)
    if which == "distributed":
        distributed_labels(z, n_clusters=3, batch_size=20, seed=0)
    else:
        batched_clustering(z, n_clusters=3, batch_size=20, seed=0)
    err = capsys.readouterr().err  # pytest's captured stderr is no terminal
    # 100 points in batches of 20: 5 batches; after n of them 61 n s, and 61 s for each of the 5 - n left
    assert err.splitlines() == [f"clustering: {n} of 5 batch ({20 * n}%) after {61 * n} s, about {61 * (5 - n)} s "
                                "left" for n in range(1, 6)], err


def test_clustering_lines_come_at_most_one_a_minute_and_not_with_quiet(monkeypatch, capsys):
    monkeypatch.delenv("HPCFLOW_QUIET", raising=False)
    monkeypatch.setattr(progress_module, "clock", Clock(25.0))  # a line at the 3rd batch (75 s), none at the 5th
    distributed_labels(_points(100), n_clusters=3, batch_size=20, seed=0)
    assert capsys.readouterr().err == "clustering: 3 of 5 batch (60%) after 75 s, about 50 s left\n"
    monkeypatch.setenv("HPCFLOW_QUIET", "1")
    monkeypatch.setattr(progress_module, "clock", Clock(61.0))
    distributed_labels(_points(100), n_clusters=3, batch_size=20, seed=0)
    assert capsys.readouterr().err == ""


def _info(step: int) -> dict:
    return {"step": step, "sigma_train": 0.5 / step, "sigma_test": 0.25 / step, "dt": 1300.0, "rejected": 0}


def _start(step: int) -> str:
    return (f"flow[gaussian]: step {step:4d} sigma_train={0.5 / step:.4e} sigma_test={0.25 / step:.4e} dt=1.3e+03 "
            f"rejected=0 (")


def test_flow_lines_say_the_flow_seconds_and_those_left(monkeypatch, capsys):
    clock = Set()
    monkeypatch.setattr(progress_module, "clock", clock)
    cb = flow_progress("flow[gaussian]", total=100)
    for step in range(1, 21):
        clock.now = 5.0 * step  # 5 s a step
        assert cb(_info(step)) is False
    lines = capsys.readouterr().out.splitlines()
    # steps 10 and 20: 50 s / 100 s of the flow; 90 / 80 steps left at 5 s each
    assert lines == [_start(10) + "50.0 s of the flow, ~450 s left)",
                     _start(20) + "100.0 s of the flow, ~400 s left)"]
    cb = flow_progress("flow[gaussian]")  # no total: no estimate
    clock.now = 107.5
    cb(_info(10))
    assert capsys.readouterr().out == _start(10) + "7.5 s of the flow)\n"


def test_a_step_over_a_minute_after_the_last_line_is_said(monkeypatch, capsys):
    clock = Set()
    monkeypatch.setattr(progress_module, "clock", clock)
    cb = flow_progress("flow[gaussian]", total=40)
    times = {1: 30.0, 2: 59.0, 3: 61.0, 4: 100.0, 5: 121.5, 6: 130.0, 10: 140.0, 11: 199.0, 12: 201.0}
    for step, now in times.items():
        clock.now = now
        cb(_info(step))
    lines = capsys.readouterr().out.splitlines()
    # step 3: 61 s after the start; step 5: 60.5 s after step 3's line; step 10: every 10th; step 12: 61 s after it
    # (the mean step so far: the seconds over the steps this process took, 3, 5, 7 and 9 of them)
    assert lines == [_start(3) + f"61.0 s of the flow, ~{61 / 3 * 37:.0f} s left)",
                     _start(5) + f"121.5 s of the flow, ~{121.5 / 5 * 35:.0f} s left)",
                     _start(10) + f"140.0 s of the flow, ~{140 / 7 * 30:.0f} s left)",
                     _start(12) + f"201.0 s of the flow, ~{201 / 9 * 28:.0f} s left)"], lines
    cb.close(type("R", (), {"stop_kind": None, "stopped": None})())
    assert capsys.readouterr().out == ""  # step 12 was said: not again at the end


def test_clustering_lines_come_from_rank_0_alone_under_mpiexec(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {k: v for k, v in os.environ.items() if k != "HPCFLOW_QUIET"}
    env.update(HPCFLOW_THREADS="1", PYTHONPATH=root)
    with open(tmp_path / "log", "w") as log:  # a batch log: stdout and stderr one file, no terminal
        r = subprocess.run(["timeout", "100", mpiexec(), "-n", "2", sys.executable,
                            os.path.join(root, "tests", "mpi", "cluster_lines_driver.py")],
                           stdout=log, stderr=subprocess.STDOUT, timeout=120, env=env)
    said = (tmp_path / "log").read_text()
    assert r.returncode == 0, said
    # 5 batches over 2 ranks: rank 0 clusters batches 0, 2 and 4, and says each (61 s apart); rank 1 says nothing
    assert said.splitlines() == ["clustering: 1 of 3 batch (33%) after 61 s, about 122 s left",
                                 "clustering: 2 of 3 batch (67%) after 122 s, about 61 s left",
                                 "clustering: 3 of 3 batch (100%) after 183 s, about 0 s left"], said
