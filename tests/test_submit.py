"""`hpcflow submit`: validation before queueing, --check, no Slurm on PATH, the local executor, resume argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcflow.cli import main
from hpcflow.submit.task import resume_argv

ROOT = Path(__file__).resolve().parents[1]

JOB = """
[job]
kind = "flow"
[geometry]
n_train = 80
n_test = 40
[kernel]
name = "delta"
[flow]
dt = 2.0
steps = 3
loss = "ultralocal"
"""


@pytest.fixture
def job(tmp_path):
    p = tmp_path / "job.toml"
    p.write_text(JOB)
    return p


def _only(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_slurm_executor_without_slurm_is_one_line_exit_2(tmp_path, job, monkeypatch, capsys):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no sbatch, no srun
    assert main(["submit", str(job), "--out", str(tmp_path / "out"), "--executor", "slurm", "--wait"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "sbatch and srun not on PATH" in err and "--executor local" in err
    assert _only(tmp_path) == ["bin", "job.toml"]  # nothing half-submitted


def test_check_validates_as_run_would_and_writes_nothing(tmp_path, job, capsys):
    out = tmp_path / "out"
    assert main(["submit", str(job), "--out", str(out), "--executor", "slurm", "--check", "--ntasks-per-node", "4"]) == 0
    said = capsys.readouterr().out
    assert "is valid (kind flow)" in said and "1 node(s) x 4 task(s)" in said and f"--out {out}" in said
    bad = tmp_path / "bad.toml"
    bad.write_text(JOB.replace("dt = 2.0", "dt = -2.0"))
    for argv in (["submit", str(bad), "--out", str(out), "--executor", "local"],
                 ["submit", str(bad), "--out", str(out), "--executor", "local", "--check"],
                 ["run", str(bad), "--out", str(out)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "[flow].dt = -2.0: must lie in (0" in err and err.count("\n") == 1
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "summary.json").write_text("{}")
    assert main(["submit", str(job), "--out", str(tmp_path / "full"), "--executor", "local"]) == 2
    assert "already holds results" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--array", "2"]) == 2
    assert "use it with --command tune" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--command", "nn"]) == 2
    assert "runs kind = \"nn\" jobs" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--ntasks-per-node", "2"]) == 2
    assert "one task per job" in capsys.readouterr().err
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--command", "tune", "--trials", "2"]) == 2
    assert "no [tune] table" in capsys.readouterr().err
    tune = tmp_path / "tune.toml"
    tune.write_text(JOB + '[tune.space]\n"flow.dt" = {low = 0.5, high = 4.0}\n')
    assert main(["submit", str(tune), "--out", str(tmp_path / "full"), "--executor", "local", "--command", "tune",
                 "--trials", "2", "--check"]) == 2
    assert "is not a study directory" in capsys.readouterr().err
    assert _only(tmp_path) == ["bad.toml", "full", "job.toml", "tune.toml"]


def test_local_executor_runs_the_job_and_wait_returns_its_status(tmp_path, job):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", str(job), "--out", str(out), "--executor", "local",
                        "--wait"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
    assert f"logs {tmp_path}/out_logs/" in r.stdout and f"results in {out}" in r.stdout
    # a tune whose every trial fails exits 1 (no finished trial); --wait hands that status back
    failing = tmp_path / "failing.toml"
    failing.write_text(JOB + '[tune.space]\n"kernel.name" = {choices = ["relu_ntk"]}\n')
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", str(failing), "--out", str(tmp_path / "t"),
                        "--executor", "local", "--command", "tune", "--trials", "1", "--wait"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "finished with exit status 1" in r.stdout, r.stdout + r.stderr


def test_requeued_commands_continue():
    assert resume_argv(["run", "j.toml", "--out", "d"]) == ["run", "j.toml", "--out", "d", "--resume"]
    assert resume_argv(["run", "j.toml", "--out", "d", "--resume"]).count("--resume") == 1
    assert resume_argv(["tune", "j.toml", "--out", "d", "--trials", "3"])[0] == "tune"
    assert resume_argv(["nn", "j.toml", "--out", "d"]) is None


def test_preemption_signal_reaches_the_run_then_submitit_requeues(monkeypatch):
    """Slurm's USR2 goes to the run's SIGUSR1 checkpoint handler; exit status 4 then hands over to submitit."""
    import signal

    import hpcflow.cli
    from hpcflow.submit.task import HpcflowTask

    events = []
    old = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
    try:
        signal.signal(signal.SIGUSR2, lambda *_: events.append("submitit requeue"))  # as submitit installs it

        def run_with_checkpoint_handler(argv):
            signal.signal(signal.SIGUSR1, lambda *_: events.append("run checkpoints"))  # as the run installs it
            os.kill(os.getpid(), signal.SIGUSR2)  # Slurm's --signal before the time limit
            return 4  # Preempted after the checkpoint

        monkeypatch.setattr(hpcflow.cli, "main", run_with_checkpoint_handler)
        assert HpcflowTask()(["run", "j.toml", "--out", "d"]) == 4
        assert events == ["run checkpoints", "submitit requeue"]

        events.clear()
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        signal.signal(signal.SIGUSR2, lambda *_: events.append("submitit requeue"))
        monkeypatch.setattr(hpcflow.cli, "main", lambda argv: os.kill(os.getpid(), signal.SIGUSR2) or 0)
        assert HpcflowTask()(["nn", "j.toml", "--out", "d"]) == 0  # no checkpoint handler: requeued at once
        assert events == ["submitit requeue"]
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    nxt = HpcflowTask().checkpoint(["run", "j.toml", "--out", "d"])
    assert nxt.args == (["run", "j.toml", "--out", "d", "--resume"],)
    assert HpcflowTask().checkpoint(["nn", "j.toml", "--out", "d"]) is None
