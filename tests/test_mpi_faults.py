"""Faults of a real distributed run: a rank killed with SIGKILL ends the job; kill -9 of the whole job loses at
most one checkpoint interval, and --resume finishes it from there."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from hpcflow.jobs.output import is_result
from jobtexts import GAUSSIAN_KERNEL
from test_parallel import each_rank_status, mpiexec, rank_statuses

JOB = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 5000
n_test = 200
seed = 4
""" + GAUSSIAN_KERNEL + """[flow]
dt = 6.5
steps = 60
loss = "ultralocal"
[checkpoint]
every = 1
"""
ENV = dict(os.environ, HPCFLOW_THREADS="1")


def _start(tmp_path, out, steps=60):
    job = tmp_path / "job.toml"
    job.write_text(JOB.replace("steps = 60", f"steps = {steps}"))
    cmd = [mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out)]
    return job, subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV,
                                 start_new_session=True)


def _step(path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["step"])
    except (OSError, KeyError):
        return -1


def _wait_for_step(proc, path, step, timeout=120):
    deadline = time.monotonic() + timeout
    while _step(path) < step:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint in time"
        time.sleep(0.01)


def _ranks_of(out) -> list:
    """PIDs of the python processes of the run writing to `out` (the ranks, not mpiexec itself)."""
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                args = fh.read().split(b"\0")
        except OSError:
            continue
        if str(out).encode() in args and b"hpcflow" in args and b"mpiexec" not in args[0] and not (
                len(args) > 1 and args[1].endswith(b"rank_status.py")):  # the wrapper of each_rank_status
            pids.append(int(pid))
    return pids


def test_a_rank_killed_with_sigkill_ends_the_job(tmp_path):
    out = tmp_path / "out"
    _, proc = _start(tmp_path, out)
    try:
        _wait_for_step(proc, out / "checkpoint.h5", 2)
        ranks = _ranks_of(out)
        assert len(ranks) == 2, ranks
        os.kill(ranks[1], signal.SIGKILL)
        assert proc.wait(timeout=60) != 0  # the launcher ends the job, in bounded time
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    time.sleep(0.5)
    assert not _ranks_of(out)  # no rank left waiting in a collective


def test_kill_9_of_the_whole_job_then_resume(tmp_path):
    # 20 steps, as the SIGTERM test below: killed once step 3 is checkpointed (polled every 10 ms), the job is
    # still far from its end, and the resumed leg has the rest to run
    out = tmp_path / "out"
    job, proc = _start(tmp_path, out, steps=20)
    try:
        _wait_for_step(proc, out / "checkpoint.h5", 3)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # launcher and ranks at once
        proc.wait()
    assert not (out / "summary.json").exists()
    with h5py.File(out / "checkpoint.h5") as f:  # the last checkpoint is readable: at most one interval lost
        killed_at = int(f.attrs["step"])
        hist = f["history/sigma_train"][()]
    assert killed_at >= 3 and len(hist) == killed_at + 1
    r = subprocess.run(["timeout", "120", mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", str(job),
                        "--out", str(out), "--resume"], capture_output=True, text=True, timeout=150, env=ENV)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 20
    with h5py.File(out / "checkpoint.h5") as f:
        np.testing.assert_array_equal(f["history/sigma_train"][: killed_at + 1], hist)
        assert f["history/sigma_train"].shape == (21,)


def test_crash_between_checkpoint_and_summary(tmp_path, monkeypatch, capsys):
    """A crash after checkpoint.h5 but before summary.json: readers call the run incomplete, a plain rerun is
    refused with a pointer to --resume, and --resume completes the directory."""
    from hpcflow.analysis.rundir import completeness
    from hpcflow.cli import main
    from hpcflow.jobs import output

    job = tmp_path / "job.toml"
    job.write_text(JOB.replace("n_train = 5000", "n_train = 300").replace("steps = 60", "steps = 4"))
    out = tmp_path / "out"
    real = output.write_json

    def crash(path, obj, **kw):
        if os.path.basename(path) == "summary.json":
            raise KeyboardInterrupt("injected crash before summary.json")
        return real(path, obj, **kw)

    monkeypatch.setattr(output, "write_json", crash)
    try:
        main(["run", str(job), "--out", str(out)])
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert (out / "checkpoint.h5").exists() and not (out / "summary.json").exists()
    ok, why = completeness(out)
    assert not ok and "--resume" in why
    capsys.readouterr()
    assert main(["run", str(job), "--out", str(out)]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["run", str(job), "--out", str(out), "--resume"]) == 0
    assert completeness(out) == (True, "")
    assert json.loads((out / "summary.json").read_text())["checkpoint_step"] == 4


@pytest.mark.parametrize("ranks", [1, 2])
def test_sigusr1_stops_a_job_kind_without_checkpoints_at_once(tmp_path, ranks):
    """Slurm's warning signal before the time limit (SIGUSR1) ends a noise scan (no checkpoints) at once with
    128 + the signal and no partial output, at 1 rank and under mpiexec, although MPI_Init took the signal over;
    on one rank the --out it created is removed, lock file included."""
    out = tmp_path / "out"
    job = os.path.join(os.path.dirname(__file__), "..", "jobs", "noise_scan_gaussian.toml")
    cmd = [sys.executable, "-m", "hpcflow", "run", job, "--out", str(out), "--set", "flow.steps=400", "--quiet"]
    proc = subprocess.Popen(([mpiexec(), "-n", str(ranks)] if ranks > 1 else []) + cmd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=ENV, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (out.is_dir() and len(_ranks_of(out)) == ranks):  # validated: the scan is under way
            assert proc.poll() is None and time.monotonic() < deadline, "the scan did not start"
            time.sleep(0.05)
        time.sleep(1.0)
        for pid in _ranks_of(out):
            os.kill(pid, signal.SIGUSR1)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rc == 128 + signal.SIGUSR1, rc  # the shell's status for the signal, under mpiexec too
    left = os.listdir(out) if out.is_dir() else []
    assert not [name for name in left if is_result(name)], left  # nothing written: no noise_scan.h5, no summary
    assert ranks > 1 or not out.exists(), left  # the directory it created goes with its lock file


def test_a_preempted_run_writes_its_summary_and_job_then_resumes(tmp_path, capsys):
    """SIGTERM to a 2-rank flow (CLI): exit 4, summary.json with status "preempted" describing the checkpoint's step
    and job.toml reading back to the job (with its --set), so the directory says what it holds; a plain rerun is
    refused with a pointer to --resume, and --resume finishes it."""
    from hpcflow.cli import main
    from hpcflow.jobs import registry

    out = tmp_path / "out"
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    cmd = [sys.executable, "-m", "hpcflow", "run", str(job), "--out", str(out), "--set", "flow.steps=20"]
    statuses = tmp_path / "statuses"
    proc = subprocess.Popen(each_rank_status(statuses, 2, cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=ENV, start_new_session=True)
    try:
        _wait_for_step(proc, out / "checkpoint.h5", 2)
        ranks = _ranks_of(out)
        assert len(ranks) == 2, ranks
        for pid in ranks:
            os.kill(pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 4, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert rank_statuses(statuses, 2) == [4, 4]  # each rank's own status (mpiexec's is theirs ORed)
    stopped = [line for line in proc.stderr.read().decode().splitlines() if "stopped:" in line]
    assert len(stopped) == 1 and stopped[0].startswith("hpcflow run: stopped: "), stopped  # once, not per rank
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "preempted" and summary["checkpoint_step"] == _step(out / "checkpoint.h5") >= 2
    assert summary["ranks"] == 2 and summary["overrides"] == ["flow.steps=20"]
    assert registry.load(out / "job.toml")[1] == registry.load(job, ["flow.steps=20"])[1]
    # the plain rerun and the --resume at one rank, in this process
    capsys.readouterr()
    assert main(cmd[3:]) == 2 and "--resume" in capsys.readouterr().err
    assert main(cmd[3:] + ["--resume", "--quiet"]) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["checkpoint_step"] == 20
