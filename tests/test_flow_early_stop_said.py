"""`hpcflow run` of a flow that meets its [flow].early_stop says so on the terminal (the summary alone said it), with
its last step's progress line where that is not one of every 10th step's; --quiet keeps both (plain lines, as the
progress lines)."""

import json
from pathlib import Path

import pytest

from hpcflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
JOB = str(ROOT / "jobs" / "quickstart.toml")


@pytest.mark.parametrize("quiet", [False, True])
def test_the_early_stop_and_its_last_step_are_said(tmp_path, capsys, quiet):
    out = tmp_path / "out"
    argv = ["run", JOB, "--out", str(out), "--set", "flow.early_stop=3", "--set", "flow.dt=40"]
    assert main(argv + ["--quiet"] * quiet) == 0
    said = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    step = summary["steps_taken"]
    assert summary["status"] == "finished" and step % 10 and step < summary["config"]["flow"]["steps"], summary
    assert summary["stopped"] == f"step {step}: no improvement for 3 steps (early stop)"
    lines = said.splitlines()
    stop = lines.index(f"flow[gaussian]: stopped: {summary['stopped']}")
    assert lines[stop - 1].startswith(f"flow[gaussian]: step {step:4d} sigma_train={summary['sigma_train_final']:.4e}")
    assert lines[stop + 1].startswith("hpcflow run: wrote "), said


def test_one_step_is_singular(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", JOB, "--out", str(out), "--set", "flow.early_stop=1", "--set", "flow.dt=40"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stopped"].endswith(": no improvement for 1 step (early stop)"), summary["stopped"]
    assert f"flow[gaussian]: stopped: {summary['stopped']}" in capsys.readouterr().out


def test_a_run_to_its_last_step_says_that_step_once_and_no_stop(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", JOB, "--out", str(out), "--set", "flow.steps=13"]) == 0
    said = capsys.readouterr().out
    assert [line.split()[2] for line in said.splitlines() if line.startswith("flow[gaussian]: step")] == ["10", "13"]
    assert "stopped" not in said
