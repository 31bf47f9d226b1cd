"""Every command that `hpcflow report` and the analysis scripts advise names its run directory by its absolute path,
quoted for a shell: the report is read later, from anywhere, so a command pasted in another directory must mean the
run it was made for. A run given by a relative path was told to continue with `hpcflow run out/pre/job.toml --out
out/pre --resume`, which from any other directory names no job file (or another run)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import h5py
import pytest

from analysis_runs import JOBS, env, md_rows, run_dirs

#: the small flow job of the analysis runs, 150 steps long and checkpointed every step: stopped part way
FLOW = JOBS["flow"][1].replace("steps = 6\n", "steps = 150\n") + "[checkpoint]\nevery = 1\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return run_dirs(tmp_path_factory)


def _row_status(md: str, name: str) -> str:
    return md_rows(md.split("## Runs")[1].split("\n## ")[0])[name][2]


def _run_pasted(command: str, cwd) -> subprocess.CompletedProcess:
    """`command` as a user pastes it into a shell in `cwd` (its `hpcflow` this checkout's)."""
    argv = shlex.split(command)
    assert argv[0] == "hpcflow", command
    return subprocess.run([sys.executable, "-m", "hpcflow", *argv[1:]], cwd=cwd, env=env(), capture_output=True,
                          text=True, timeout=300)


def _preempted(tmp_path, where: str):
    """A flow run into `where` (relative to tmp_path/a, where it is started) stopped by SIGTERM part way."""
    start = tmp_path / "a"
    start.mkdir()
    (start / "flow.toml").write_text(FLOW)
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow", "run", "flow.toml", "--out", where], cwd=start,
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not os.path.isfile(start / where / "checkpoint.h5") and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    with open(start / where / "summary.json", encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["status"] == "preempted" and summary["checkpoint_step"] < 150, err[-2000:]
    return start, summary["checkpoint_step"]


def test_the_continue_command_of_a_run_given_by_a_relative_path_works_from_another_directory(tmp_path, monkeypatch):
    from hpcflow.report.build import build_report

    start, stopped = _preempted(tmp_path, "out/pre run")
    run = str(start / "out" / "pre run")
    monkeypatch.chdir(start)
    status = _row_status(open(build_report(["out/pre run"], "R")["md"], encoding="utf-8").read(), "pre run")
    assert status.startswith(f"incomplete: preempted at step {stopped}; continue it with "), status
    command = status.split("continue it with ", 1)[1]
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    proc = _run_pasted(command, elsewhere)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert command == (f"hpcflow run {shlex.quote(os.path.join(run, 'job.toml'))} --out {shlex.quote(run)} "
                       "--resume"), command
    with open(os.path.join(run, "summary.json"), encoding="utf-8") as fh:
        summary = json.load(fh)
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 150, summary
    with h5py.File(os.path.join(run, "checkpoint.h5"), "r") as f:
        assert f["history/sigma_train"].shape[0] == 151
    assert not os.listdir(elsewhere)  # nothing made where it was pasted
    assert _row_status(open(build_report(["out/pre run"], "R2")["md"], encoding="utf-8").read(),
                       "pre run") == "finished"


def test_the_command_that_writes_a_missing_nn_h5_again_works_from_another_directory(runs, tmp_path, monkeypatch):
    from hpcflow.report.build import build_report

    start = tmp_path / "a"
    shutil.copytree(runs["nn"], start / "nn copy")
    os.remove(start / "nn copy" / "nn.h5")
    monkeypatch.chdir(start)
    status = _row_status(open(build_report(["nn copy"], "R")["md"], encoding="utf-8").read(), "nn copy")
    assert status.startswith("finished; nn.h5 missing: write it again with "), status
    command = status.split("write it again with ", 1)[1]
    run = str(start / "nn copy")
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    proc = _run_pasted(command, elsewhere)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert command == f"hpcflow nn {shlex.quote(os.path.join(run, 'job.toml'))} --out {shlex.quote(run)} --resume"
    with h5py.File(os.path.join(run, "nn.h5"), "r"), h5py.File(os.path.join(runs["nn"], "nn.h5"), "r"):
        pass
    assert not os.listdir(elsewhere)
    assert _row_status(open(build_report(["nn copy"], "R2")["md"], encoding="utf-8").read(), "nn copy") == "finished"


def test_fig2s_rerun_with_its_heatmaps_names_the_absolute_path(tmp_path, monkeypatch):
    """fig2's refusal of a clustering run made with [quality].fig2 = false, given by a relative path."""
    from hpcflow.analysis import fig2
    from hpcflow.analysis.rundir import MissingData

    monkeypatch.chdir(tmp_path)
    os.makedirs("c l")
    with open("c l/summary.json", "w", encoding="utf-8") as fh:
        json.dump({"kind": "clustering", "config": {"quality": {"fig2": False}}}, fh)
    with pytest.raises(MissingData) as err:
        fig2.load("c l")
    where = shlex.quote(str(tmp_path / "c l"))
    assert f"(`hpcflow run JOB --out {where} --set quality.fig2=true --force`)" in str(err.value), err.value


def test_fig3_noises_rerun_of_a_killed_scan_names_the_absolute_path(tmp_path, monkeypatch):
    from hpcflow.analysis.fig3_noise import _not_written

    monkeypatch.chdir(tmp_path)
    os.makedirs("n s")
    with open("n s/.hpcflow.lock", "w", encoding="utf-8") as fh:
        json.dump({"command": "hpcflow run", "pid": 4242, "host": "node7", "slurm_job": None,
                   "since": "2026-12-06T01:36:33+00:00", "own_job": False}, fh)
    said = _not_written("n s")
    assert f"rerun the noise_scan job into that --out: hpcflow run JOB --out {shlex.quote(str(tmp_path / 'n s'))} " \
           "(JOB:" in said, said


def test_a_studys_tune_command_names_the_absolute_path(tmp_path, monkeypatch):
    from hpcflow.analysis.study import tune_command

    monkeypatch.chdir(tmp_path)
    os.makedirs("s t")
    with open("s t/study.json", "w", encoding="utf-8") as fh:
        json.dump({"study": "tune_delta", "job": "/jobs/tune_delta.toml", "overrides": [],
                   "storage": "study.journal"}, fh)
    command, note = tune_command("s t")
    assert shlex.split(command) == ["hpcflow", "tune", "/jobs/tune_delta.toml", "--trials", "N", "--out",
                                    str(tmp_path / "s t")] and note == "", command
