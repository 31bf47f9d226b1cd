"""A finished run extended with --resume and killed without a signal handler (SIGKILL, node failure) is an
interrupted run: the resume removed the finished run's summary.json before its first step (a checkpoint past the
step a summary describes is one too, as a network's below), so a requeue continues it with --resume
and a plain rerun is refused with a pointer to --resume; a finished run is not interrupted, and its --resume with
the same steps has nothing to do and rewrites nothing."""

import json
import os
import signal
import subprocess
import sys
import time
import tomllib

import h5py
import pytest

from hpcflow.cli import main
from hpcflow.jobs.output import interrupted
from hpcflow.submit.requeue import command
from jobtexts import GAUSSIAN_KERNEL

JOB = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 3000
n_test = 200
seed = 2
""" + GAUSSIAN_KERNEL + """[flow]
dt = 6.5
steps = 4
loss = "ultralocal"
[checkpoint]
every = 1
"""
ENV = dict(os.environ, HPCFLOW_THREADS="1", HPCFLOW_QUIET="1")


@pytest.fixture
def env_here(monkeypatch):
    """ENV's hpcflow variables in this process, for the runs that need no process of their own (hpcflow.cli.main)."""
    for name in ("HPCFLOW_THREADS", "HPCFLOW_QUIET"):
        monkeypatch.setenv(name, ENV[name])


def _hpcflow(*args, **kw):
    return [sys.executable, "-m", "hpcflow", *map(str, args)]


def _step(path) -> int:
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs["step"])
    except (OSError, KeyError):
        return -1


def test_a_killed_extension_is_resumed_and_a_finished_run_is_not(tmp_path, env_here, capsys, monkeypatch):
    """The runs that are not killed run in this process (hpcflow.cli.main), in Slurm job 31 (SLURM_JOB_ID, which
    summary.json records): its requeued leg continues its finished run with --resume, which has nothing to do; a
    requeued leg of another job (stopped before it replaced that run) runs as given."""
    monkeypatch.setenv("SLURM_JOB_ID", "31")
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    assert main(["run", str(job), "--out", str(out)]) == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["checkpoint_step"] == 4
    assert not interrupted(out, "checkpoint.h5") and command(str(job), str(out), slurm_job="32") == ["run"]
    assert command(str(job), str(out), slurm_job="31") == ["run", "--resume"]
    before = {name: (out / name).read_bytes() for name in ("summary.json", "checkpoint.h5", "job.toml")}
    capsys.readouterr()
    status = main(["run", str(job), "--out", str(out), "--resume"])  # finished, the same steps: nothing to add
    said = capsys.readouterr()
    assert status == 0 and "already finished at step 4" in said.out and "nothing to do" in said.out, said.err
    assert {name: (out / name).read_bytes() for name in before} == before

    _kill_after_checkpoints(_hpcflow("run", job, "--out", out, "--resume", "--set", "flow.steps=100000"),
                            str(out / "checkpoint.h5"), 5)
    killed_at = _step(out / "checkpoint.h5")
    assert killed_at > 4 and not (out / "summary.json").exists()  # the finished run's, out of date: removed
    saved = tomllib.loads((out / "job.toml").read_text())  # the job the checkpoint continues, not the finished run's
    assert saved["flow"]["steps"] == 100000 and "--set flow.steps=100000" in (out / "job.toml").read_text()

    assert interrupted(out, "checkpoint.h5")
    assert command(str(job), str(out)) == ["run", "--resume"] == command(str(job), str(out), slurm_job="31")
    capsys.readouterr()
    status = main(["run", str(job), "--out", str(out), "--set", "flow.steps=100000", "--check"])
    err = capsys.readouterr().err
    assert status == 2 and "--resume" in err and len(err.strip().splitlines()) == 1, err
    assert _step(out / "checkpoint.h5") == killed_at  # the refusal touched nothing


NN_JOB = """
[job]
kind = "nn"
[geometry]
n_train = 400
n_val = 100
seed = 0
[model]
depth = 1
width = 8
[training]
epochs = 2
batch_size = 100
lr = 3e-3
threads = 1
[ntk]
enabled = false
"""


def test_a_network_checkpoint_past_its_summary_is_interrupted(tmp_path, env_here, capsys, monkeypatch):
    """The epochs a real checkpoint.pt holds are read (torch, tensors only): equal to the summary's
    checkpoint_step when finished; a summary describing fewer epochs (the run extended, then killed) marks it.
    Both runs in this process (no kill here): no start-up of torch per run; in Slurm job 31, whose requeued leg
    continues its finished run (--resume: nothing to do), where another job's runs as given."""
    monkeypatch.setenv("SLURM_JOB_ID", "31")
    job, out = tmp_path / "nn.toml", tmp_path / "nn"
    job.write_text(NN_JOB)
    assert main(["nn", str(job), "--out", str(out)]) == 0, capsys.readouterr().err
    assert not interrupted(out, "checkpoint.pt") and command(str(job), str(out), slurm_job="32") == ["nn"]
    assert command(str(job), str(out), slurm_job="31") == ["nn", "--resume"]
    before = {name: (out / name).read_bytes() for name in ("summary.json", "checkpoint.pt", "nn.h5", "model.pt")}
    capsys.readouterr()
    status = main(["nn", str(job), "--out", str(out), "--resume"])  # finished with the same epochs: nothing to add
    said = capsys.readouterr()
    assert status == 0 and "already finished at epoch 2" in said.out and "nothing to do" in said.out, said.err
    assert {name: (out / name).read_bytes() for name in before} == before
    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint_step"] == 2
    (out / "summary.json").write_text(json.dumps({**summary, "checkpoint_step": 1}))
    assert interrupted(out, "checkpoint.pt") and command(str(job), str(out), slurm_job="31") == ["nn", "--resume"]


def _kill_after_checkpoints(cmd, checkpoint, progress: int) -> None:
    """Start `cmd`, SIGKILL it (no handler runs) once `checkpoint` holds more than `progress` steps or epochs."""
    from hpcflow.jobs.output import checkpoint_progress

    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while (done := checkpoint_progress(checkpoint)) is None or done <= progress:  # None: not there (yet)
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, f"no checkpoint past {progress} in time"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()


@pytest.mark.parametrize("command", ["run", "nn"])
def test_a_run_killed_after_its_first_checkpoint_leaves_its_job_toml(tmp_path, command, env_here, capsys):
    """SIGKILL (no handler, no summary) after the first checkpoints: DIR/job.toml is there beside them, the validated
    job with the --set values of the run, and `hpcflow COMMAND DIR/job.toml --out DIR --resume` continues it (in
    this process: only the killed run needs one of its own)."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    if command == "run":
        job.write_text(JOB)
        ckpt, longer, key = out / "checkpoint.h5", "flow.steps=100000", ("flow", "steps")
    else:
        job.write_text(NN_JOB + "[checkpoint]\nevery = 1\n")
        ckpt, longer, key = out / "checkpoint.pt", "training.epochs=100000", ("training", "epochs")
    # killed once its second checkpoint is in place: job.toml follows the first (between the two, a kill leaves the
    # first checkpoint alone, as before)
    _kill_after_checkpoints(_hpcflow(command, job, "--out", out, "--set", longer), str(ckpt), 1)
    assert not (out / "summary.json").exists()
    text = (out / "job.toml").read_text()
    assert f"run with: --set {longer}" in text and tomllib.loads(text)[key[0]][key[1]] == 100000, text
    from hpcflow.jobs.output import checkpoint_progress

    done = checkpoint_progress(str(ckpt))
    status = main([command, str(out / "job.toml"), "--out", str(out), "--resume", "--set",
                   f"{'.'.join(key)}={done + 1}"])
    assert status == 0, capsys.readouterr().err
    assert json.loads((out / "summary.json").read_text())["checkpoint_step"] == done + 1
