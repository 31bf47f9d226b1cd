"""A task of a template job's run step (`python -m hpcflow.submit.step --task COMMAND`) keeps COMMAND's status when a
SIGTERM reaches it after COMMAND ended: srun --kill-on-bad-exit sends one to every task once another left with 4 (the
run's checkpoint), and a task ended by it made the step's status 143, so the job was not requeued."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_sigterm_after_the_command_ended_leaves_the_task_with_its_status(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("HPCFLOW_STEP_SIGNALS", None)
    for n in range(3):
        started = tmp_path / f"started{n}"
        child = f"import time; open({str(started)!r}, 'w').close(); time.sleep(0.3); raise SystemExit(4)"
        task = subprocess.Popen([sys.executable, "-m", "hpcflow.submit.step", "--task", sys.executable, "-c", child],
                                env=env, cwd=tmp_path)
        deadline = time.monotonic() + 120
        while not started.exists():  # the task's handlers are set before it starts the command
            assert task.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        while task.poll() is None:  # SIGTERMs from the command's start to the task's end, as Slurm's may come
            try:
                os.kill(task.pid, signal.SIGTERM)
            except ProcessLookupError:
                break
            time.sleep(0.0005)
        assert task.wait(timeout=120) == 4, f"try {n}: the task ended with {task.returncode}, not its command's 4"
