"""A --resume that runs steps first removes the summary.json of the run it continues, which describes the checkpoint
as it was: a resume killed without a signal left a "preempted at step 1" or "finished at step 2" summary beside a
checkpoint steps further on. The directory then reads as an interrupted run until the resume writes its own."""

import json
from pathlib import Path

import pytest

import hpcflow.flow
from hpcflow.cli import main
from hpcflow.jobs.output import checkpoint_progress, interrupted

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs" / "quickstart.toml")
SETS = ["--set", "geometry.n_train=300", "--set", "geometry.n_test=100", "--set", "clustering.method=none",
        "--set", "checkpoint.every=1"]


class Killed(Exception):
    """Stands in for a kill without a signal (SIGKILL, a node failure) part way into the resumed steps."""


def test_a_resume_killed_part_way_leaves_no_stale_summary(tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert main(["run", JOB, "--out", str(out), *SETS, "--set", "flow.steps=2"]) == 0
    assert json.loads((out / "summary.json").read_text())["checkpoint_step"] == 2
    real = hpcflow.flow.kernel_flow

    def killed_at_step_4(*args, **kw):
        said = kw["callback"]

        def callback(info):
            if info["step"] == 4:
                raise Killed
            return said(info)
        return real(*args, **{**kw, "callback": callback})

    monkeypatch.setattr(hpcflow.flow, "kernel_flow", killed_at_step_4)
    with pytest.raises(Killed):
        main(["run", JOB, "--out", str(out), *SETS, "--set", "flow.steps=6", "--resume"])
    assert checkpoint_progress(str(out / "checkpoint.h5")) == 3  # the resume's steps 3 (and 4: not yet written)
    assert not (out / "summary.json").exists()
    assert interrupted(str(out), "checkpoint.h5")
    monkeypatch.setattr(hpcflow.flow, "kernel_flow", real)
    assert main(["run", JOB, "--out", str(out), *SETS, "--set", "flow.steps=6", "--resume"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 6


def test_a_refused_resume_keeps_the_summary(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", JOB, "--out", str(out), *SETS, "--set", "flow.steps=2"]) == 0
    before = (out / "summary.json").read_bytes()
    # another job (a refused --resume) and one with nothing to do leave the finished run's summary as it was
    assert main(["run", JOB, "--out", str(out), *SETS, "--set", "flow.steps=2", "--set", "flow.dt=1.5",
                 "--resume"]) == 2
    assert main(["run", JOB, "--out", str(out), *SETS, "--set", "flow.steps=2", "--resume"]) == 0
    assert (out / "summary.json").read_bytes() == before
