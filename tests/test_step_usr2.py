"""SIGUSR2 to an sbatch template's job (`scancel --signal=USR2 JOBID`, the README's checkpoint request for a `hpcflow
submit` job; --full or --batch too) is taken as SIGUSR1 is: the run writes its checkpoint and the job is requeued.
The run takes SIGUSR1 only and starts with SIGUSR2 ignored: the request sent to the steps was lost (no checkpoint, no
line), and one sent to the batch step too ended it by its default action (FAILED, JobLaunchFailure, not requeued)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: a run that says it is ready, and stops with its checkpoint's status 4 on SIGUSR1 (taking SIGUSR2 for nothing)
RUN = ("import signal, sys, time\n"
       "signal.signal(signal.SIGUSR2, signal.SIG_IGN)\n"
       "def stop(signum, frame):\n"
       "    print('run got', signal.Signals(signum).name, flush=True)\n"
       "    sys.exit(4)\n"
       "signal.signal(signal.SIGUSR1, stop)\n"
       "open(sys.argv[1], 'w').close()\n"
       "time.sleep(60)\n")


def _env(tmp_path) -> dict:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {tmp_path}/scontrol.log\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(ROOT), SLURM_JOB_ID="77",
               SLURM_RESTART_COUNT="0")
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SUBMITIT_EXECUTOR", "PMI_JOBID"):
        env.pop(name, None)
    return env


def _signal_when_ready(proc, ready: Path, sig) -> str:
    """Send `sig` to `proc` once `ready` exists; its output once it has ended."""
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        os.kill(proc.pid, sig)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return out


def test_the_batch_step_passes_sigusr2_on_as_sigusr1_and_requeues_on_status_4(tmp_path):
    """`scancel --full --signal=USR2` or --batch: the batch step (hpcflow.submit.step) gets SIGUSR2."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow.submit.step", sys.executable, "-c", RUN, str(ready)],
                            env=_env(tmp_path), stdout=subprocess.PIPE, text=True)
    out = _signal_when_ready(proc, ready, signal.SIGUSR2)
    assert proc.returncode == 4 and out == "run got SIGUSR1\n", out
    assert (tmp_path / "scontrol.log").read_text() == "requeue 77\n"


def test_a_task_passes_sigusr2_on_to_its_run_as_sigusr1_and_notes_it(tmp_path):
    """`scancel --signal=USR2` (the steps' processes): each task (`hpcflow.submit.step --task`) gets it, and its run,
    which ignores it."""
    ready, folder = tmp_path / "ready", tmp_path / "noted"
    folder.mkdir()
    env = dict(_env(tmp_path), HPCFLOW_STEP_SIGNALS=str(folder))
    proc = subprocess.Popen([sys.executable, "-m", "hpcflow.submit.step", "--task", sys.executable, "-c", RUN,
                             str(ready)], env=env, stdout=subprocess.PIPE, text=True)
    out = _signal_when_ready(proc, ready, signal.SIGUSR2)
    assert proc.returncode == 4 and out == "run got SIGUSR1\n", out
    assert sorted(os.listdir(folder)) == ["SIGUSR2"]


def test_a_run_stopped_after_a_sigterm_and_a_sigusr2_is_requeued(tmp_path):
    """The time limit's SIGTERM after a SIGUSR2 that the tasks noted: the job is requeued, as after a SIGUSR1 (a
    SIGTERM alone is the user's stop, not requeued)."""
    run = ("import os, sys\n"
           "for name in ('SIGTERM', 'SIGUSR2'):\n"
           "    open(os.path.join(os.environ['HPCFLOW_STEP_SIGNALS'], name), 'w').close()\n"
           "sys.exit(4)\n")
    r = subprocess.run([sys.executable, "-m", "hpcflow.submit.step", sys.executable, "-c", run], env=_env(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 4, r.stderr
    assert (tmp_path / "scontrol.log").read_text() == "requeue 77\n", r.stderr
    assert "the job is not requeued" not in r.stderr, r.stderr
