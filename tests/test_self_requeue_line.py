"""A job that requeues itself after its run stopped with the checkpoint says so in its log, after the run's own last
line "continue with: hpcflow run ... --resume": that the job continues from the checkpoint when Slurm starts it
again, not to run that command by hand as well (both over the same --out). The sbatch templates' batch step
(`hpcflow.submit.step`, its `scontrol requeue` a stand-in here; a `hpcflow submit` leg's: test_submit_requeue_exit);
where scontrol fails, the step says the job is not requeued and how to continue it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: a run step that asks its batch step for the checkpoint (SIGUSR1, as Slurm's --signal=B:USR1) and stops with 4
CHECKPOINTED = [shutil.which("bash"), "-c", f"trap '' USR1; kill -USR1 $PPID; {shutil.which('sleep')} 0.5; exit 4"]


def _step(tmp_path, scontrol_status: int) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" > {bin_dir}/args\nexit {scontrol_status}\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = dict(os.environ, PATH=str(bin_dir), PYTHONPATH=str(ROOT), SLURM_JOB_ID="77", SLURM_RESTART_COUNT="0")
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SUBMITIT_EXECUTOR"):  # (the test's own job's)
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "hpcflow.submit.step", *CHECKPOINTED], capture_output=True,
                          text=True, env=env, timeout=60)


def test_a_template_job_that_requeues_itself_says_it_continues_from_the_checkpoint(tmp_path):
    r = _step(tmp_path, 0)
    assert r.returncode == 4, r.stderr
    assert (tmp_path / "bin" / "args").read_text().split() == ["requeue", "77"]
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcflow.submit.step: "), r.stderr
    assert "the job has requeued itself (scontrol requeue 77)" in lines[0], lines
    assert "continues from the checkpoint" in lines[0] and "do not run the command above by hand" in lines[0], lines


def test_a_template_job_whose_requeue_failed_says_it_is_not_requeued(tmp_path):
    r = _step(tmp_path, 1)
    assert r.returncode == 4, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "could not requeue itself (scontrol requeue 77: exit status 1)" in lines[0], r.stderr
    assert "requeued itself" not in lines[0] and "continue it with: scontrol requeue 77" in lines[0], lines
